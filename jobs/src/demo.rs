//! `pricecast demo`: the whole pipeline, embedded and offline. The bundled real history is
//! replayed through the collect job into an SQLite database, exported to a local Parquet lake,
//! turned into feature frames, and a model per series is trained, evaluated and registered as
//! `champion` in the local registry inside the lake, ready for the API's predictions.
//! Needs no network and nothing installed.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use std::sync::Arc;

use pricecast_api::AppState;
use pricecast_api::served_models::ServedModels;
use pricecast_binance::replay::{BUNDLED_INTERVAL, BUNDLED_SYMBOLS, ReplaySource};
use pricecast_binance::source::KlineSource;
use pricecast_shared::Result;
use pricecast_shared::domain::{Interval, Symbol};
use pricecast_shared::features::FeatureSpec;
use pricecast_shared::lake::{Lake, LakeArgs, LakeUrl};
use pricecast_shared::model::{DEFAULT_INTERVAL_LEVEL, ModelParams};
use pricecast_shared::registry::{LocalRegistry, ModelRegistry, RegistryArgs};
use pricecast_shared::runner::{self, RunOutcome};
use pricecast_shared::series::SeriesScope;
use pricecast_shared::store::{AccessMode, Store, StoreOptions};
use tokio_util::sync::CancellationToken;

use crate::collect::{self, CollectContext, CollectPlan};
use crate::export::{self, ExportContext, ExportPlan, ExportRange};
use crate::features::{self, FeaturesContext, FeaturesPlan};
use crate::train::{self, FeatureSelection, TrainContext, TrainPlan};

/// Connections for the demo's embedded database.
const DEMO_CONNECTIONS: u32 = 4;

/// Flags of `pricecast demo`.
#[derive(clap::Args, Clone, Debug)]
pub struct DemoArgs {
    /// Folder for the demo's SQLite database and its Parquet lake (`lake/`).
    #[arg(
        long,
        env = "PRICECAST_DEMO_DIR",
        value_name = "PRICECAST_DEMO_DIR",
        default_value = "./pricecast-data"
    )]
    pub data_dir: PathBuf,

    /// Address the API listens on.
    #[arg(
        long = "addr",
        env = "PRICECAST_API_ADDR",
        value_name = "PRICECAST_API_ADDR",
        default_value = "127.0.0.1:8000"
    )]
    pub addr: std::net::SocketAddr,

    /// Load the data and exit instead of starting the API.
    #[arg(long)]
    pub no_serve: bool,
}

/// The loaded demo database.
#[derive(Clone, Debug)]
pub struct DemoData {
    /// `sqlite://…` URL of the demo database.
    pub database_url: String,
    /// Open time of the newest candle loaded.
    pub newest_open_time: DateTime<Utc>,
    /// What the collect run did.
    pub collect: RunOutcome,
    /// The local lake the candles were exported to.
    pub lake_dir: PathBuf,
    /// What the export run did.
    pub export: RunOutcome,
    /// What the features run did.
    pub features: RunOutcome,
    /// What the train run did.
    pub train: RunOutcome,
    /// The series a model was trained for.
    pub series: Vec<(Symbol, Interval)>,
    /// The local registry in the lake, holding the champions.
    pub registry: Arc<ModelRegistry>,
}

/// Candles per evaluation window of the demo's models: a week of hourly candles.
const DEMO_EVAL_WINDOW_ROWS: usize = 168;
/// Evaluation windows of the demo's models.
const DEMO_EVAL_WINDOWS: usize = 4;

/// The demo's lake folder inside `data_dir`.
pub fn lake_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("lake")
}

/// The SQLite URL of the demo database inside `data_dir`.
pub fn database_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("pricecast.db").display())
}

/// Replays the bundled history through the collect job (gaps repaired, the exchange's own gap
/// recorded) into the demo database, exports it, builds the feature frames and trains a model
/// per series. Idempotent but for training: a second run changes no candle, partition or
/// feature file, and registers new model versions that become champion only when better.
pub async fn load(data_dir: &Path, cancel: CancellationToken) -> Result<DemoData> {
    let url = database_url(data_dir);
    let store = Store::connect(
        &url,
        StoreOptions {
            mode: AccessMode::ReadWrite,
            max_connections: DEMO_CONNECTIONS,
        },
    )
    .await?;
    store.migrate().await?;
    let replay = ReplaySource::bundled()?;
    let symbols: Vec<Symbol> = BUNDLED_SYMBOLS
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let since = symbols
        .iter()
        .filter_map(|s| replay.first_open_ms(s))
        .min()
        .and_then(DateTime::from_timestamp_millis);
    let newest = symbols
        .iter()
        .filter_map(|s| replay.last_open_ms(s))
        .max()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_else(Utc::now);
    let ctx = CollectContext {
        store: store.clone(),
        source: KlineSource::Replay(replay),
        archive: None,
        cancel,
    };
    let plan = CollectPlan {
        symbols: symbols.clone(),
        intervals: vec![BUNDLED_INTERVAL],
        since,
        check_gaps: true,
        repair: true,

        scope: SeriesScope::default(),
    };
    let collected = runner::run_locked(&store, collect::JOB, || collect::run(&ctx, &plan)).await?;

    let lake_dir = lake_dir(data_dir);
    let lake = Lake::open(&LakeArgs::for_url(LakeUrl::Local(lake_dir.clone()))).await?;
    let export_ctx = ExportContext {
        store: store.clone(),
        lake,
        cancel: ctx.cancel.clone(),
    };
    let export_plan = ExportPlan {
        symbols: symbols.clone(),
        intervals: vec![BUNDLED_INTERVAL],
        range: ExportRange::Changed,
        settle: export::WATERMARK_SETTLE,

        scope: SeriesScope::default(),
    };
    let exported = runner::run_locked(&store, export::JOB, || {
        export::run(&export_ctx, &export_plan)
    })
    .await?;

    let features_ctx = FeaturesContext {
        lake: export_ctx.lake.clone(),
        cancel: ctx.cancel.clone(),
    };
    let features_plan = FeaturesPlan {
        symbols: symbols.clone(),
        intervals: vec![BUNDLED_INTERVAL],
        spec: FeatureSpec::default(),
        full: false,

        scope: SeriesScope::default(),
    };
    let built = runner::run_locked(&store, features::JOB, || {
        features::run(&features_ctx, &features_plan)
    })
    .await?;

    let registry = Arc::new(ModelRegistry::Local(LocalRegistry::new(
        export_ctx.lake.clone(),
    )));
    let train_ctx = TrainContext {
        lake: export_ctx.lake.clone(),
        registry: registry.clone(),
        cancel: ctx.cancel.clone(),
    };
    let train_plan = TrainPlan {
        symbols: symbols.clone(),
        intervals: vec![BUNDLED_INTERVAL],
        params: ModelParams::default(),
        horizon: 1,
        features: FeatureSelection::Price,
        eval_windows: DEMO_EVAL_WINDOWS,
        eval_window_rows: DEMO_EVAL_WINDOW_ROWS,
        interval_level: DEFAULT_INTERVAL_LEVEL,
        registry: RegistryArgs::local(),
        force_promote: false,

        scope: SeriesScope::default(),
    };
    let trained =
        runner::run_locked(&store, train::JOB, || train::run(&train_ctx, &train_plan)).await?;
    Ok(DemoData {
        database_url: url,
        newest_open_time: newest,
        collect: collected,
        lake_dir,
        export: exported,
        features: built,
        train: trained,
        series: symbols.into_iter().map(|s| (s, BUNDLED_INTERVAL)).collect(),
        registry,
    })
}

/// The API's state over the demo database (opened read-only by the caller), serving the
/// champions of the local registry. The replayed history ends in 2025, so forecasts from it
/// are never refused as stale.
pub async fn app_state(data: &DemoData, store: Store) -> AppState {
    let models = Arc::new(ServedModels::new(
        data.registry.clone(),
        RegistryArgs::local(),
        data.series.clone(),
    ));
    models.refresh().await;
    AppState::new(store).with_models(models)
}

/// What a step of the demo did, as a sentence: its report's detail, or why it did not run.
pub fn describe(outcome: &RunOutcome, job: &str) -> String {
    match outcome {
        RunOutcome::Completed(report) => report.detail(),
        RunOutcome::Skipped => format!("another {job} run holds the demo data"),
    }
}

/// Hours to ask for so that a window counted back from now reaches the newest demo candle
/// with a day of candles in it.
pub fn hours_to_reach(newest: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let behind = (now - newest).num_hours().max(0);
    behind + 24
}

/// The curl examples printed once the API is up, all returning data from the demo database.
pub fn examples(base: &str, data: &DemoData, now: DateTime<Utc>) -> Vec<String> {
    let hours = hours_to_reach(data.newest_open_time, now);
    let day_before =
        (data.newest_open_time - chrono::Duration::days(1)).format("%Y-%m-%dT%H:%M:%SZ");
    vec![
        format!("curl {base}/"),
        format!("curl {base}/price/latest"),
        format!("curl '{base}/price/history?hours={hours}&limit=5'"),
        format!("curl '{base}/price/stats?hours={hours}'"),
        format!(
            "curl '{base}/price/candles?symbol=ETHUSDT&interval=1h&start={day_before}&limit=3'"
        ),
        format!("curl {base}/price/predict"),
        format!("curl '{base}/price/predict?symbol=ETHUSDT&interval=1h'"),
        format!(
            "curl -X POST {base}/price/predict -H 'content-type: application/json' -d '{{\"prices\": [{}]}}'",
            rising_prices()
        ),
        format!("curl {base}/models"),
        format!("open '{base}/price/chart.svg?hours=72'   # recent closes with the forecast"),
        format!("curl {base}/jobs"),
        format!("curl {base}/health"),
        format!("curl {base}/metrics"),
        format!("open {base}/docs   # interactive API docs (OpenAPI at {base}/openapi.json)"),
    ]
}

/// A gently rising series of closes, long enough for every price feature, for the what-if
/// example.
fn rising_prices() -> String {
    (0..60)
        .map(|i| format!("{}", 90_000 + i * 25))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_reach_back_past_the_newest_candle() {
        let newest = DateTime::parse_from_rfc3339("2025-04-28T07:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let now = newest + chrono::Duration::hours(100);
        assert_eq!(hours_to_reach(newest, now), 124);
        assert_eq!(hours_to_reach(newest, newest), 24);
    }
}
