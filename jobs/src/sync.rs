//! The sync job: mirrors Pricecast's tables into the analytics warehouse (Databricks SQL, or any
//! ODBC data source with MERGE) so analysts query them next to their own tables.
//!
//! Every table goes through one staged-MERGE pipeline ([`pipeline`]): make sure the warehouse
//! table and its staging table exist with every needed column ([`Pipeline::prepare`]), read the
//! rows changed since the table's position in batches ([`SyncSource::changes`]), bulk-insert
//! each batch into the staging table, MERGE the staged rows into the target on the key every
//! [`MERGE_EVERY_ROWS`] rows and once more at the end, and only after the last MERGE committed
//! move the position ([`Pipeline::merge`]). Any crash leaves the position where it was, and
//! re-sending rows only re-merges them: a re-run gives the same rows, never duplicates.
//!
//! Tables (`--tables`, [`SyncTableKind`]), one module and source each: [`candles`] from the
//! database, per symbol and interval, behind a watermark kept in Pricecast's own database;
//! [`model_runs`] with their metrics, from the model registry, whose position is the newest end
//! time already merged; and [`features`], the lake's feature frames per symbol and interval, in
//! a table shaped by their definition.
//!
//! `copy-into` mode ([`copy_into`]) lets Databricks read the lake's candle partitions itself,
//! for the days exported since the last copy: `COPY INTO` the staging table, then the same MERGE.

use std::sync::Arc;

use pricecast_shared::Result;
use pricecast_shared::domain::{Interval, Symbol};
use pricecast_shared::lake::{Lake, LakeArgs};
use pricecast_shared::registry::{ModelRegistry, RegistryArgs};
use pricecast_shared::report::JobReport;
use pricecast_shared::series::SeriesScope;
use pricecast_shared::settings::{DatabaseArgs, RunArgs, SeriesArgs};
use pricecast_shared::store::Store;
use pricecast_warehouse::{WarehouseArgs, WarehouseConfig};
use tokio_util::sync::CancellationToken;

pub use candles::CANDLES_WATERMARK;
pub use copy_into::COPY_INTO_WATERMARK;
pub use features::FEATURES_WATERMARK;
pub use model_runs::{ModelRunsReport, ModelRunsSource};
pub use pipeline::{MERGE_EVERY_ROWS, Pipeline, SeriesReport, SyncSource, SyncTable};

pub mod candles;
pub mod copy_into;
pub mod features;
pub mod model_runs;
pub mod pipeline;
pub mod summary;

/// Job name in `job_runs` and the lock.
pub const JOB: &str = "sync";
/// Candles ingested less than this long ago stay above the watermark and are sent again next
/// run: a collect transaction that began earlier may still commit rows stamped before the
/// newest row seen.
pub const WATERMARK_SETTLE: chrono::Duration = chrono::Duration::seconds(60);

/// How rows reach the warehouse.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncMode {
    /// Stream changed rows from the database over ODBC (bulk insert + MERGE).
    #[default]
    Push,
    /// Let Databricks read new lake partitions itself (`COPY INTO` + MERGE); needs a lake the
    /// warehouse can read (s3://, gs://, abfss://).
    CopyInto,
}

/// A kind of table the sync job mirrors.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SyncTableKind {
    /// `candles`, from the database, per symbol and interval.
    Candles,
    /// `model_runs` and `model_metrics`, from the model registry.
    ModelRuns,
    /// `features`, the feature frames of the lake, per symbol and interval.
    Features,
}

/// Flags and variables of `pricecast-sync`.
#[derive(clap::Args, Clone, Debug)]
pub struct SyncArgs {
    /// Database settings.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Symbols and intervals.
    #[command(flatten)]
    pub series: SeriesArgs,
    /// The warehouse.
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    /// The lake (`copy-into` mode, the feature frames and the local model registry).
    #[command(flatten)]
    pub lake: LakeArgs,
    /// The model registry the model runs are read from.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The tables to mirror, comma-separated.
    #[arg(
        long,
        env = "SYNC_TABLES",
        value_name = "SYNC_TABLES",
        value_enum,
        value_delimiter = ',',
        default_values_t = [SyncTableKind::Candles, SyncTableKind::ModelRuns, SyncTableKind::Features]
    )]
    pub tables: Vec<SyncTableKind>,
    /// Once or on a schedule.
    #[command(flatten)]
    pub run: RunArgs,
    /// push: rows over ODBC; copy-into: Databricks loads the lake's Parquet files.
    #[arg(
        long,
        env = "SYNC_MODE",
        value_name = "SYNC_MODE",
        value_enum,
        default_value_t = SyncMode::Push
    )]
    pub mode: SyncMode,
}

/// What one sync run does.
#[derive(Clone, Debug)]
pub struct SyncPlan {
    /// Symbols to sync.
    pub symbols: Vec<Symbol>,
    /// Intervals to sync.
    pub intervals: Vec<Interval>,
    /// Push rows or copy lake files.
    pub mode: SyncMode,
    /// How recent an `ingested_at` stays above the watermark, and how long ago a model run must
    /// have ended to be mirrored ([`WATERMARK_SETTLE`]).
    pub settle: chrono::Duration,
    /// Test hook, not reachable from the command line: fail right after the first batch is
    /// staged and before its MERGE, as a crash there would.
    pub stop_after_staging: bool,
    /// This process's shard of the series (series are synced one at a time, over one
    /// connection).
    pub scope: SeriesScope,
}

impl SyncPlan {
    /// Every configured series, symbol by symbol.
    pub fn series(&self) -> impl Iterator<Item = (&Symbol, Interval)> {
        self.symbols
            .iter()
            .flat_map(|symbol| {
                self.intervals
                    .iter()
                    .map(move |&interval| (symbol, interval))
            })
            .filter(|(symbol, interval)| self.scope.owns(symbol, *interval))
    }

    /// The plan the flags describe.
    pub fn from_args(args: &SyncArgs) -> Result<Self> {
        Ok(Self {
            symbols: args.series.symbol_names(),
            intervals: args.series.intervals.clone(),
            mode: args.mode,
            settle: WATERMARK_SETTLE,
            stop_after_staging: false,
            scope: args.series.scope()?,
        })
    }
}

/// Which tables one run mirrors.
#[derive(Clone, Debug)]
pub struct SyncTables {
    /// Mirror the candles of the plan's series.
    pub candles: bool,
    /// Mirror the runs and metrics of this registry experiment; `None`: not mirrored.
    pub model_runs: Option<ModelRunsSource>,
    /// Mirror the feature frames of the plan's series from this lake; `None`: not mirrored.
    pub features: Option<Lake>,
}

impl SyncTables {
    /// The candles alone.
    pub fn candles() -> Self {
        Self {
            candles: true,
            model_runs: None,
            features: None,
        }
    }

    /// The tables `--tables` selects; the registry is opened when model runs are among them, the
    /// lake when the feature frames are.
    pub async fn from_args(args: &SyncArgs) -> Result<Self> {
        let model_runs = if args.tables.contains(&SyncTableKind::ModelRuns) {
            let registry = ModelRegistry::open(&args.registry, &args.lake).await?;
            Some(ModelRunsSource {
                registry: Arc::new(registry),
                experiment: args.registry.mlflow_experiment_name.clone(),
            })
        } else {
            None
        };
        let features = if args.tables.contains(&SyncTableKind::Features) {
            Some(Lake::open(&args.lake).await?)
        } else {
            None
        };
        Ok(Self {
            candles: args.tables.contains(&SyncTableKind::Candles),
            model_runs,
            features,
        })
    }
}

/// What the sync job works with.
#[derive(Clone, Debug)]
pub struct SyncContext {
    /// Pricecast's database: the source of rows and the keeper of the watermarks.
    pub store: Store,
    /// The warehouse, connected at the start of every run.
    pub warehouse: WarehouseConfig,
    /// The lake, for `copy-into` mode.
    pub lake: Option<Lake>,
    /// Cancelled on shutdown: the batch being loaded finishes, no new one starts.
    pub cancel: CancellationToken,
}

/// `pricecast-sync`: exits 0 saying so when no warehouse is configured; otherwise connects to
/// the database (and the lake for `copy-into`) and runs once or on the cron schedule.
pub async fn execute(args: SyncArgs) -> Result<()> {
    let Some(warehouse) = args.warehouse.config()? else {
        tracing::info!(
            "sync is not configured: set DATABRICKS_SERVER_HOSTNAME, DATABRICKS_HTTP_PATH and \
             DATABRICKS_ACCESS_TOKEN, or SYNC_ODBC_CONNECTION_STRING; nothing to do"
        );
        return Ok(());
    };
    let plan = SyncPlan::from_args(&args)?;
    if plan.mode == SyncMode::CopyInto {
        copy_into::check_copy_into(warehouse.dialect, &args.lake.lake_url.to_string())?;
    }
    let store = crate::connect(&args.database, !args.run.no_migrate).await?;
    let lake = match plan.mode {
        SyncMode::CopyInto => Some(Lake::open(&args.lake).await?),
        SyncMode::Push => None,
    };
    let tables = SyncTables::from_args(&args).await?;
    let cancel = pricecast_shared::runner::shutdown_token();
    let ctx = SyncContext {
        store: store.clone(),
        warehouse,
        lake,
        cancel: cancel.clone(),
    };
    crate::run_job(JOB, plan.scope.shard, store, &args.run, cancel, move || {
        let (ctx, plan, tables) = (ctx.clone(), plan.clone(), tables.clone());
        async move { run_tables(&ctx, &plan, &tables).await }
    })
    .await
}

/// Runs the job for the candles: connects to the warehouse, then syncs every configured series.
pub async fn run(ctx: &SyncContext, plan: &SyncPlan) -> Result<JobReport> {
    run_tables(ctx, plan, &SyncTables::candles()).await
}

/// Runs the job: connects to the warehouse, then syncs the selected tables: the candles of every
/// configured series, the model runs, then the feature frames of every configured series.
pub async fn run_tables(
    ctx: &SyncContext,
    plan: &SyncPlan,
    tables: &SyncTables,
) -> Result<JobReport> {
    let pipeline = Pipeline::connect(ctx, plan).await?;
    let mut summary = summary::RunSummary::new(ctx.warehouse.connection_string.redacted());
    if tables.candles {
        candles::sync_candles(&pipeline, &mut summary).await?;
    }
    if let Some(source) = &tables.model_runs {
        model_runs::sync_model_runs(&pipeline, source, &mut summary).await?;
    }
    if let Some(lake) = &tables.features {
        features::sync_features(&pipeline, lake, &mut summary).await?;
    }
    summary.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_lists_every_series_symbol_by_symbol() {
        let symbol = |s: &str| s.parse::<Symbol>().expect("symbol");
        let plan = SyncPlan {
            symbols: vec![symbol("BTCUSDT"), symbol("ETHUSDT")],
            intervals: vec![Interval::H1, Interval::H4],
            mode: SyncMode::Push,
            settle: WATERMARK_SETTLE,
            stop_after_staging: false,
            scope: SeriesScope::default(),
        };
        let series: Vec<String> = plan.series().map(|(s, i)| format!("{s} {i}")).collect();
        assert_eq!(
            series,
            ["BTCUSDT 1h", "BTCUSDT 4h", "ETHUSDT 1h", "ETHUSDT 4h"]
        );
    }
}
