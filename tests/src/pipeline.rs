//! The whole pipeline for prediction tests: bundled BTCUSDT hourly candles in a fresh database,
//! exported to a lake in a temporary folder, turned into a feature frame and trained into a
//! champion in the local registry inside that lake, as `pricecast demo` does, but with a few
//! months of data and small evaluation windows so that a test stays fast.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pricecast_api::AppState;
use pricecast_api::served_models::ServedModels;
use pricecast_jobs::export::{self, ExportContext, ExportPlan, ExportRange};
use pricecast_jobs::features::{self, FeaturesContext, FeaturesPlan};
use pricecast_jobs::train::{self, FeatureSelection, TrainContext, TrainPlan};
use pricecast_shared::champion::RegisteredModel;
use pricecast_shared::domain::{Candle, Interval, Symbol};
use pricecast_shared::features::FeatureSpec;
use pricecast_shared::lake::{Lake, LakeArgs, LakeUrl};
use pricecast_shared::model::{DEFAULT_INTERVAL_LEVEL, ModelParams};
use pricecast_shared::registry::{CHAMPION, LocalRegistry, ModelRegistry, RegistryArgs};
use pricecast_shared::report::JobReport;
use pricecast_shared::series::SeriesScope;
use pricecast_shared::store::Store;
use tokio_util::sync::CancellationToken;

use crate::db::TestDb;

/// Hourly candles the pipeline is fed: about three months, enough for the features' 49
/// candles of history, a training set and the evaluation windows.
pub const PIPELINE_CANDLES: usize = 24 * 90;
/// Evaluation windows of the test models.
const EVAL_WINDOWS: usize = 2;
/// Rows per evaluation window: two days of hourly candles.
const EVAL_WINDOW_ROWS: usize = 48;

/// A database, a lake with a feature frame and a local registry with a champion, all of one
/// test.
pub struct TrainedPipeline {
    /// The database the candles were loaded into (read-write).
    pub db: TestDb,
    /// The candles loaded, oldest first.
    pub candles: Vec<Candle>,
    /// The lake (a local folder) holding candles, features and the registry.
    pub lake: Lake,
    /// The lake's folder.
    pub lake_dir: PathBuf,
    /// The local registry in the lake.
    pub registry: Arc<ModelRegistry>,
    /// The series trained.
    pub symbol: Symbol,
    /// Its interval.
    pub interval: Interval,
    _lake_tmp: tempfile::TempDir,
}

impl TrainedPipeline {
    /// Loads the newest [`PIPELINE_CANDLES`] bundled BTCUSDT hourly candles into a new SQLite
    /// database, exports them, builds the feature frame and trains the first model, which
    /// becomes champion.
    pub async fn btc_hourly() -> Self {
        Self::btc_hourly_on(TestDb::sqlite().await, 0).await.0
    }

    /// The same pipeline on `db` (PostgreSQL or SQLite), with the newest `held_back` of the
    /// [`PIPELINE_CANDLES`] candles kept out of the database, the lake and the training data:
    /// returned, oldest first, for a test to collect one by one after the champion is trained.
    pub async fn btc_hourly_on(db: TestDb, held_back: usize) -> (Self, Vec<Candle>) {
        pricecast_shared::telemetry::init_for_tests();
        let symbol: Symbol = "BTCUSDT".parse().expect("symbol");
        let all = pricecast_binance::replay::bundled_candles(&symbol).expect("bundled history");
        let newest = &all[all.len() - PIPELINE_CANDLES..];
        let (candles, held) = newest.split_at(PIPELINE_CANDLES - held_back);
        for chunk in candles.chunks(1000) {
            db.store.upsert_candles(chunk).await.expect("load candles");
        }
        let candles = candles.to_vec();
        let lake_tmp = tempfile::tempdir().expect("lake folder");
        let lake_dir = lake_tmp.path().join("lake");
        let lake = Lake::open(&LakeArgs::for_url(LakeUrl::Local(lake_dir.clone())))
            .await
            .expect("open the lake");
        let interval = Interval::H1;
        export_and_build_features(&db.store, &lake, &symbol, interval, FeatureSpec::default())
            .await
            .expect("export the candles and build the feature frame");
        let registry = Arc::new(ModelRegistry::Local(LocalRegistry::new(lake.clone())));
        let pipeline = Self {
            db,
            candles,
            lake,
            lake_dir,
            registry,
            symbol,
            interval,
            _lake_tmp: lake_tmp,
        };
        pipeline.train(false).await;
        (pipeline, held.to_vec())
    }

    /// Trains a new version of the series' model (the default model type and price
    /// features); it becomes champion when better, or always with `force_promote`.
    pub async fn train(&self, force_promote: bool) -> JobReport {
        let ctx = TrainContext {
            lake: self.lake.clone(),
            registry: self.registry.clone(),
            cancel: CancellationToken::new(),
        };
        let plan = TrainPlan {
            symbols: vec![self.symbol.clone()],
            intervals: vec![self.interval],
            params: ModelParams::default(),
            horizon: 1,
            features: FeatureSelection::Price,
            eval_windows: EVAL_WINDOWS,
            eval_window_rows: EVAL_WINDOW_ROWS,
            interval_level: DEFAULT_INTERVAL_LEVEL,
            registry: RegistryArgs::local(),
            force_promote,
            scope: SeriesScope::default(),
        };
        train::run(&ctx, &plan).await.expect("train a model")
    }

    /// The registered model name of the series.
    pub fn model_name(&self) -> String {
        RegistryArgs::local().model_name_for(&self.symbol, self.interval)
    }

    /// The champion as the registry holds it now, loaded offline.
    pub async fn champion(&self) -> RegisteredModel {
        RegisteredModel::load(&self.registry, &self.model_name(), CHAMPION)
            .await
            .expect("read the registry")
            .expect("a champion")
    }

    /// The API's served models over the local registry, not yet refreshed.
    pub fn served_models(&self) -> Arc<ServedModels> {
        Arc::new(ServedModels::new(
            self.registry.clone(),
            RegistryArgs::local(),
            vec![(self.symbol.clone(), self.interval)],
        ))
    }

    /// API state over a read-only store of `db`, serving `models` (refreshed first), with the
    /// response cache off so that every answer is computed.
    pub async fn app_state(db: &TestDb, models: Arc<ServedModels>) -> AppState {
        models.refresh().await;
        AppState::new(db.read_only_store().await)
            .with_cache_ttl(Duration::ZERO)
            .with_models(models)
    }
}

/// Exports the candles of one series that `store` has not exported yet (all of them the first
/// time; no settle delay, so candles just loaded count) to `lake`, then builds the features
/// of what changed with `spec`: the export and features jobs as their cron runs would.
pub async fn export_and_build_features(
    store: &Store,
    lake: &Lake,
    symbol: &Symbol,
    interval: Interval,
    spec: FeatureSpec,
) -> pricecast_shared::Result<()> {
    export::run(
        &ExportContext {
            store: store.clone(),
            lake: lake.clone(),
            cancel: CancellationToken::new(),
        },
        &ExportPlan {
            symbols: vec![symbol.clone()],
            intervals: vec![interval],
            range: ExportRange::Changed,
            settle: chrono::Duration::zero(),
            scope: SeriesScope::default(),
        },
    )
    .await?;
    build_features(lake, symbol, interval, spec).await
}

/// Builds the features of one series' lake candles with `spec` (only what changed).
pub async fn build_features(
    lake: &Lake,
    symbol: &Symbol,
    interval: Interval,
    spec: FeatureSpec,
) -> pricecast_shared::Result<()> {
    features::run(
        &FeaturesContext {
            lake: lake.clone(),
            cancel: CancellationToken::new(),
        },
        &FeaturesPlan {
            symbols: vec![symbol.clone()],
            intervals: vec![interval],
            spec,
            full: false,
            scope: SeriesScope::default(),
        },
    )
    .await?;
    Ok(())
}
