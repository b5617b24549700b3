//! The sync job: mirrors Pricecast's tables into the analytics warehouse (Databricks SQL, or any
//! ODBC data source with MERGE) so analysts query them next to their own tables.
//!
//! Steps, per table, symbol and interval in `push` mode: make sure the warehouse table and its
//! staging table exist with every needed column ([`Warehouse::prepare_table`]), stream the rows
//! changed since the table's watermark in batches ([`SyncTable::batches`]), bulk-insert each
//! batch into the staging table, MERGE the staged rows into the target on the key every
//! [`MERGE_EVERY_ROWS`] rows and clear them ([`load_batches`]), and only after the last MERGE
//! committed advance the watermark, kept in Pricecast's own database ([`next_watermark`]). Any
//! crash leaves the watermark where it was, and re-sending rows only re-merges them: a re-run
//! gives the same rows, never duplicates.
//!
//! `copy-into` mode ([`copy_into_series`]) lets Databricks read the lake's Parquet partitions
//! itself, for the days exported since the last copy: `COPY INTO` the staging table, then the
//! same MERGE.
//!
//! Tables (`--tables`, [`SyncTableKind`]): candles, per symbol and interval as above; model
//! runs with their metrics, read from the model registry rather than the database, with their
//! own steps and position ([`model_runs`]); and the feature frames of the lake, per symbol and
//! interval, with a table shaped by their definition ([`features`]).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use pricecast_shared::domain::{Interval, Symbol};
use pricecast_shared::lake::candles::series_dir;
use pricecast_shared::lake::manifest::SeriesManifest;
use pricecast_shared::lake::{Lake, LakeArgs};
use pricecast_shared::registry::{ModelRegistry, RegistryArgs};
use pricecast_shared::runner::JobSummary;
use pricecast_shared::settings::{DatabaseArgs, RunArgs, SeriesArgs};
use pricecast_shared::store::{ChangeFilter, ChangedCandle, Store};
use pricecast_shared::warehouse::dialect::copy_into_staging;
use pricecast_shared::warehouse::{
    ColumnSpec, ColumnType, ColumnValues, Dialect, Namespace, RowBatch, TableSpec, Warehouse,
    WarehouseArgs, WarehouseConfig,
};
use pricecast_shared::{Error, Result};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use crate::export::next_watermark;
pub use features::{FEATURES_TABLE_NAME, FEATURES_WATERMARK, push_features};
pub use model_runs::{MODEL_METRICS_TABLE, MODEL_RUNS_TABLE, ModelRunsReport, ModelRunsSource};

pub mod features;
pub mod model_runs;

/// Job name in `job_runs` and the lock.
pub const JOB: &str = "sync";
/// Watermark of the candles pushed to the warehouse (their newest `ingested_at`).
pub const CANDLES_WATERMARK: &str = "sync:candles";
/// Watermark of the candles copied from the lake (the export watermark they were copied at).
pub const COPY_INTO_WATERMARK: &str = "sync:copy-into:candles";
/// Candles ingested less than this long ago stay above the watermark and are sent again next
/// run: a collect transaction that began earlier may still commit rows stamped before the
/// newest row seen.
pub const WATERMARK_SETTLE: chrono::Duration = chrono::Duration::seconds(60);
/// Batches read ahead of the one being loaded: the database and the warehouse work at once.
const BATCHES_IN_FLIGHT: usize = 2;
/// Staged rows merged at once: one MERGE per batch would cost a full statement (a Delta commit
/// on Databricks) per 10,000 rows; staged rows live in the warehouse, not in memory.
pub const MERGE_EVERY_ROWS: u64 = 100_000;
/// Most files one `COPY INTO` may list (Databricks' limit).
const COPY_INTO_MAX_FILES: usize = 1000;

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
}

impl SyncPlan {
    /// The plan the flags describe.
    pub fn from_args(args: &SyncArgs) -> Self {
        Self {
            symbols: args.series.symbols.clone(),
            intervals: args.series.intervals.clone(),
            mode: args.mode,
            settle: WATERMARK_SETTLE,
            stop_after_staging: false,
        }
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

/// Rows of one table read from Pricecast, with the newest change marker among them.
#[derive(Debug)]
pub struct SourceBatch {
    /// The rows, column by column.
    pub rows: RowBatch,
    /// Newest change marker (`ingested_at`) in the batch.
    pub max_marker: DateTime<Utc>,
}

/// A table mirrored into the warehouse: its shape and where its changed rows come from.
pub trait SyncTable: Send + Sync {
    /// The warehouse table.
    fn spec(&self) -> &'static TableSpec;
    /// The `watermarks.job` its position is kept under.
    fn watermark_job(&self) -> &'static str;
    /// Rows of a series changed after `since` (all when `None`), `batch_size` at a time.
    fn batches<'a>(
        &'a self,
        store: &'a Store,
        symbol: &'a Symbol,
        interval: Interval,
        since: Option<DateTime<Utc>>,
        batch_size: usize,
    ) -> BoxStream<'a, Result<SourceBatch>>;
}

/// The warehouse's `candles` table.
pub static CANDLES_TABLE: TableSpec = TableSpec {
    name: "candles",
    columns: &[
        text("symbol", 32, false),
        text("interval", 8, false),
        column("open_time", ColumnType::Timestamp, false),
        column("open", ColumnType::Decimal, false),
        column("high", ColumnType::Decimal, false),
        column("low", ColumnType::Decimal, false),
        column("close", ColumnType::Decimal, false),
        column("volume", ColumnType::Decimal, false),
        column("quote_volume", ColumnType::Decimal, true),
        column("trades", ColumnType::BigInt, true),
        column("taker_buy_base", ColumnType::Decimal, true),
        column("taker_buy_quote", ColumnType::Decimal, true),
        column("close_time", ColumnType::Timestamp, false),
        // NULL for rows copied from the lake, which does not keep it.
        text("source", 64, true),
        column("ingested_at", ColumnType::Timestamp, false),
    ],
    key: &["symbol", "interval", "open_time"],
};

const fn column(name: &'static str, ty: ColumnType, nullable: bool) -> ColumnSpec {
    ColumnSpec { name, ty, nullable }
}

const fn text(name: &'static str, max_len: usize, nullable: bool) -> ColumnSpec {
    column(name, ColumnType::Text { max_len }, nullable)
}

/// Candles from the store, changed since the watermark.
#[derive(Clone, Copy, Debug, Default)]
pub struct CandlesSource;

impl SyncTable for CandlesSource {
    fn spec(&self) -> &'static TableSpec {
        &CANDLES_TABLE
    }

    fn watermark_job(&self) -> &'static str {
        CANDLES_WATERMARK
    }

    fn batches<'a>(
        &'a self,
        store: &'a Store,
        symbol: &'a Symbol,
        interval: Interval,
        since: Option<DateTime<Utc>>,
        batch_size: usize,
    ) -> BoxStream<'a, Result<SourceBatch>> {
        store
            .stream_changed_candles(symbol, interval, since)
            .chunks(batch_size)
            .map(|chunk| {
                let candles = chunk.into_iter().collect::<Result<Vec<_>>>()?;
                let max_marker = candles
                    .iter()
                    .map(|c| c.ingested_at)
                    .max()
                    .ok_or_else(|| Error::CorruptRow("an empty batch of candles".into()))?;
                Ok(SourceBatch {
                    rows: candle_rows(&candles),
                    max_marker,
                })
            })
            .boxed()
    }
}

/// Candles as rows of [`CANDLES_TABLE`].
pub fn candle_rows(candles: &[ChangedCandle]) -> RowBatch {
    let text = |f: fn(&ChangedCandle) -> Option<String>| {
        ColumnValues::Text(candles.iter().map(f).collect())
    };
    let decimal = |f: fn(&ChangedCandle) -> Option<rust_decimal::Decimal>| {
        ColumnValues::Decimal(candles.iter().map(f).collect())
    };
    let time = |f: fn(&ChangedCandle) -> DateTime<Utc>| {
        ColumnValues::Timestamp(candles.iter().map(|c| Some(f(c))).collect())
    };
    RowBatch {
        spec: &CANDLES_TABLE,
        columns: vec![
            text(|c| Some(c.candle.symbol.as_str().to_owned())),
            text(|c| Some(c.candle.interval.as_str().to_owned())),
            time(|c| c.candle.open_time),
            decimal(|c| Some(c.candle.open)),
            decimal(|c| Some(c.candle.high)),
            decimal(|c| Some(c.candle.low)),
            decimal(|c| Some(c.candle.close)),
            decimal(|c| Some(c.candle.volume)),
            decimal(|c| c.candle.quote_volume),
            ColumnValues::BigInt(candles.iter().map(|c| c.candle.trades).collect()),
            decimal(|c| c.candle.taker_buy_base),
            decimal(|c| c.candle.taker_buy_quote),
            time(|c| c.candle.close_time),
            text(|c| Some(c.candle.source.clone())),
            time(|c| c.ingested_at),
        ],
    }
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
    let plan = SyncPlan::from_args(&args);
    if plan.mode == SyncMode::CopyInto {
        check_copy_into(warehouse.dialect, &args.lake.lake_url.to_string())?;
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
    crate::run_job(JOB, store, &args.run, cancel, move || {
        let (ctx, plan, tables) = (ctx.clone(), plan.clone(), tables.clone());
        async move { run_tables(&ctx, &plan, &tables).await }
    })
    .await
}

/// `copy-into` needs Databricks, and a lake Databricks can read.
pub fn check_copy_into(dialect: Dialect, lake_url: &str) -> Result<()> {
    if dialect != Dialect::Databricks {
        return Err(Error::config(
            "SYNC_MODE=copy-into needs a Databricks warehouse (SYNC_DIALECT=databricks)",
        ));
    }
    let readable = ["s3://", "s3a://", "gs://", "abfss://", "az://", "wasbs://"];
    if !readable.iter().any(|scheme| lake_url.starts_with(scheme)) {
        return Err(Error::config(format!(
            "SYNC_MODE=copy-into needs a LAKE_URL Databricks can read (s3://, gs://, abfss://), not {lake_url}"
        )));
    }
    Ok(())
}

/// Runs the job for the candles: connects to the warehouse, then syncs every configured series.
pub async fn run(ctx: &SyncContext, plan: &SyncPlan) -> Result<JobSummary> {
    run_tables(ctx, plan, &SyncTables::candles()).await
}

/// Runs the job: connects to the warehouse, then syncs the selected tables: the candles of every
/// configured series, the model runs, then the feature frames of every configured series.
pub async fn run_tables(
    ctx: &SyncContext,
    plan: &SyncPlan,
    tables: &SyncTables,
) -> Result<JobSummary> {
    let config = ctx.warehouse.clone();
    let warehouse = Arc::new(Mutex::new(
        blocking_task(move || Warehouse::connect(&config)).await?,
    ));
    let mut summary = JobSummary {
        rows: 0,
        detail: String::new(),
    };
    if tables.candles {
        sync_candles(ctx, plan, &warehouse, &mut summary).await?;
    }
    if let Some(source) = &tables.model_runs {
        let report = model_runs::push_model_runs(ctx, plan, &warehouse, source).await?;
        summary.rows += (report.runs + report.metrics) as i64;
        let detail = &mut summary.detail;
        let _ = write!(
            detail,
            "{}model runs of experiment {}: ",
            if detail.is_empty() { "" } else { "; " },
            source.experiment
        );
        if report.experiment_found {
            let _ = write!(
                detail,
                "{} runs into {} and {} metrics into {} on {}",
                report.runs,
                MODEL_RUNS_TABLE.name,
                report.metrics,
                MODEL_METRICS_TABLE.name,
                ctx.warehouse.connection_string.redacted()
            );
            if let Some(end) = report
                .newest_end_ms
                .and_then(DateTime::<Utc>::from_timestamp_millis)
            {
                let _ = write!(detail, ", newest end time {}", end.to_rfc3339());
            }
        } else {
            detail.push_str("no such experiment yet");
        }
    }
    if let Some(lake) = &tables.features {
        sync_features(ctx, plan, &warehouse, lake, &mut summary).await?;
    }
    Ok(summary)
}

/// Syncs the feature frames of every configured series, adding to `summary`.
async fn sync_features(
    ctx: &SyncContext,
    plan: &SyncPlan,
    warehouse: &SharedWarehouse,
    lake: &Lake,
    summary: &mut JobSummary,
) -> Result<()> {
    for symbol in &plan.symbols {
        for &interval in &plan.intervals {
            let report = push_features(ctx, plan, warehouse, lake, symbol, interval).await?;
            summary.rows += report.rows as i64;
            let detail = &mut summary.detail;
            let _ = write!(
                detail,
                "{}{symbol} {interval}: {} feature rows merged into {FEATURES_TABLE_NAME} on {}",
                if detail.is_empty() { "" } else { "; " },
                report.rows,
                ctx.warehouse.connection_string.redacted()
            );
            if let Some(watermark) = report.watermark {
                let _ = write!(detail, ", newest feature row {}", watermark.to_rfc3339());
            }
        }
    }
    Ok(())
}

/// Syncs the candles of every configured series, adding to `summary`.
async fn sync_candles(
    ctx: &SyncContext,
    plan: &SyncPlan,
    warehouse: &SharedWarehouse,
    summary: &mut JobSummary,
) -> Result<()> {
    let table = CandlesSource;
    let spec = table.spec();
    on_warehouse(warehouse, move |w| w.prepare_table(spec)).await?;
    let detail = &mut summary.detail;
    for symbol in &plan.symbols {
        for &interval in &plan.intervals {
            let report = match plan.mode {
                SyncMode::Push => {
                    push_series(ctx, plan, warehouse, &table, symbol, interval).await?
                }
                SyncMode::CopyInto => copy_into_series(ctx, warehouse, symbol, interval).await?,
            };
            summary.rows += report.rows as i64;
            let _ = write!(
                detail,
                "{}{symbol} {interval}: {} {} into {} on {}",
                if detail.is_empty() { "" } else { "; " },
                report.rows,
                match plan.mode {
                    SyncMode::Push => "rows merged",
                    SyncMode::CopyInto => "lake files copied",
                },
                spec.name,
                ctx.warehouse.connection_string.redacted()
            );
            if let Some(watermark) = report.watermark {
                let _ = write!(detail, ", watermark {}", watermark.to_rfc3339());
            }
        }
    }
    Ok(())
}

/// What was synced for one series.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeriesReport {
    /// Rows merged (or files copied, in `copy-into` mode).
    pub rows: u64,
    /// The watermark after the run.
    pub watermark: Option<DateTime<Utc>>,
}

type SharedWarehouse = Arc<Mutex<Warehouse>>;

/// Runs blocking ODBC work off the runtime's workers.
async fn blocking_task<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(Error::Warehouse {
            operation: "sync".into(),
            message: format!("the warehouse worker stopped: {e}"),
        })
    })
}

/// Runs `work` on the warehouse connection, on a blocking thread.
async fn on_warehouse<T: Send + 'static>(
    warehouse: &SharedWarehouse,
    work: impl FnOnce(&Warehouse) -> Result<T> + Send + 'static,
) -> Result<T> {
    let warehouse = warehouse.clone();
    blocking_task(move || {
        let guard = warehouse.lock().map_err(|_| Error::Warehouse {
            operation: "sync".into(),
            message: "an earlier warehouse operation panicked".into(),
        })?;
        work(&guard)
    })
    .await
}

/// Streams the changed rows of one series into the warehouse and advances its watermark.
pub async fn push_series(
    ctx: &SyncContext,
    plan: &SyncPlan,
    warehouse: &SharedWarehouse,
    table: &dyn SyncTable,
    symbol: &Symbol,
    interval: Interval,
) -> Result<SeriesReport> {
    let job = table.watermark_job();
    let watermark = ctx.store.watermark(job, symbol, interval).await?;
    let settled_before = ctx.store.database_now().await? - plan.settle;
    let (tx, rx) = mpsc::channel(BATCHES_IN_FLIGHT);
    let loader = tokio::spawn(load_batches(
        warehouse.clone(),
        table.spec(),
        rx,
        plan.stop_after_staging,
    ));
    let mut batches = table.batches(
        &ctx.store,
        symbol,
        interval,
        watermark,
        ctx.warehouse.batch_size,
    );
    let mut newest: Option<DateTime<Utc>> = None;
    let mut read = Ok(());
    while let Some(batch) = batches.next().await {
        match batch {
            Ok(batch) => {
                newest = newest.max(Some(batch.max_marker));
                if tx.send(batch.rows).await.is_err() {
                    break; // The loader failed; its error is reported below.
                }
            }
            Err(e) => {
                read = Err(e);
                break;
            }
        }
        if ctx.cancel.is_cancelled() {
            read = Err(Error::Cancelled);
            break;
        }
    }
    drop(tx);
    let loaded = loader.await.unwrap_or_else(|e| {
        Err(Error::Warehouse {
            operation: "sync".into(),
            message: format!("the loader stopped: {e}"),
        })
    });
    let rows = loaded?;
    read?;
    let mut report = SeriesReport { rows, watermark };
    if let Some(position) = next_watermark(watermark, newest, settled_before) {
        ctx.store
            .set_watermark(job, symbol, interval, position)
            .await?;
        report.watermark = Some(position);
    }
    tracing::info!(%symbol, %interval, table = table.spec().name, rows, "series synced");
    Ok(report)
}

/// Stages each received batch in turn and merges the staging table once it holds
/// [`MERGE_EVERY_ROWS`] rows, and once more after the last batch; returns the rows merged.
/// Stops at the first failure, leaving the batches after it unloaded (and the staged ones for
/// the next run's [`Warehouse::prepare_table`] to clear).
pub async fn load_batches(
    warehouse: SharedWarehouse,
    spec: &'static TableSpec,
    mut batches: mpsc::Receiver<RowBatch>,
    stop_after_staging: bool,
) -> Result<u64> {
    let mut merged = 0;
    let mut staged = 0;
    while let Some(batch) = batches.recv().await {
        let n = batch.rows() as u64;
        let merge_now = staged + n >= MERGE_EVERY_ROWS;
        on_warehouse(&warehouse, move |w| {
            let started = Instant::now();
            w.stage(&batch)?;
            tracing::debug!(
                rows = n,
                duration_ms = started.elapsed().as_millis() as u64,
                "batch staged"
            );
            if stop_after_staging {
                return Err(Error::Warehouse {
                    operation: format!("sync of {}", spec.name),
                    message: "stopped between staging and MERGE by the test hook".into(),
                });
            }
            if merge_now {
                merge_staged(w, spec)
            } else {
                Ok(())
            }
        })
        .await?;
        staged += n;
        if merge_now {
            merged += staged;
            staged = 0;
        }
    }
    if staged > 0 {
        on_warehouse(&warehouse, move |w| merge_staged(w, spec)).await?;
        merged += staged;
    }
    Ok(merged)
}

/// Merges the staging table into the target, logging how long it took.
fn merge_staged(warehouse: &Warehouse, spec: &TableSpec) -> Result<()> {
    let started = Instant::now();
    warehouse.merge(spec)?;
    tracing::debug!(
        table = spec.name,
        duration_ms = started.elapsed().as_millis() as u64,
        "staged rows merged"
    );
    Ok(())
}

/// Copies the lake partitions of one series exported since the last copy: `COPY INTO` the
/// staging table, MERGE, then move the copy watermark to the export watermark.
pub async fn copy_into_series(
    ctx: &SyncContext,
    warehouse: &SharedWarehouse,
    symbol: &Symbol,
    interval: Interval,
) -> Result<SeriesReport> {
    let lake = ctx
        .lake
        .as_ref()
        .ok_or_else(|| Error::config("SYNC_MODE=copy-into needs LAKE_URL"))?;
    let copied = ctx
        .store
        .watermark(COPY_INTO_WATERMARK, symbol, interval)
        .await?;
    let mut report = SeriesReport {
        rows: 0,
        watermark: copied,
    };
    let exported = ctx
        .store
        .watermark(crate::export::JOB, symbol, interval)
        .await?;
    let Some(exported) = exported.filter(|e| copied.is_none_or(|c| c < *e)) else {
        tracing::info!(%symbol, %interval, "nothing exported since the last copy");
        return Ok(report);
    };
    let days = ctx
        .store
        .changed_days(
            symbol,
            interval,
            &ChangeFilter {
                ingested_after: copied,
                ..ChangeFilter::default()
            },
        )
        .await?;
    let manifest = SeriesManifest::read(lake, symbol, interval).await?;
    let dir = series_dir(symbol, interval);
    let files: Vec<String> = manifest
        .partitions
        .iter()
        .filter(|p| days.iter().any(|d| d.date == p.date))
        .filter_map(|p| p.path.strip_prefix(&format!("{dir}/")).map(str::to_owned))
        .collect();
    let source_dir = format!("{}/{dir}", lake.url().trim_end_matches('/'));
    for chunk in files.chunks(COPY_INTO_MAX_FILES) {
        let ns = on_warehouse(warehouse, |w| Ok(w.namespace().clone())).await?;
        let sql = copy_candles_sql(&ns, &source_dir, chunk);
        on_warehouse(warehouse, move |w| {
            w.execute(&sql)?;
            w.merge(&CANDLES_TABLE)
        })
        .await?;
        report.rows += chunk.len() as u64;
    }
    ctx.store
        .set_watermark(COPY_INTO_WATERMARK, symbol, interval, exported)
        .await?;
    report.watermark = Some(exported);
    Ok(report)
}

/// The `COPY INTO` of lake candle files (relative to `source_dir`) into the candles staging
/// table, casting the lake's columns to the warehouse's types.
pub fn copy_candles_sql(ns: &Namespace, source_dir: &str, files: &[String]) -> String {
    let q = |name: &str| Dialect::Databricks.quote(name);
    let select: Vec<String> = CANDLES_TABLE
        .columns
        .iter()
        .map(|c| match (c.name, c.ty) {
            ("source", _) => "CAST(NULL AS STRING)".to_owned(),
            ("ingested_at", _) => "current_timestamp()".to_owned(),
            (name, ty) => format!(
                "CAST({} AS {})",
                q(name),
                Dialect::Databricks.column_type(ty)
            ),
        })
        .collect();
    copy_into_staging(ns, &CANDLES_TABLE, source_dir, &select, files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pricecast_shared::domain::Candle;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn candle() -> ChangedCandle {
        let d = |s: &str| Decimal::from_str(s).expect("decimal");
        ChangedCandle {
            candle: Candle {
                symbol: "BTCUSDT".parse().expect("symbol"),
                interval: Interval::H1,
                open_time: at("2025-04-28T13:00:00Z"),
                open: d("94000.10000000"),
                high: d("94100.00000000"),
                low: d("93900.00000000"),
                close: d("94050.50000000"),
                volume: d("12.34500000"),
                quote_volume: None,
                trades: Some(1234),
                taker_buy_base: None,
                taker_buy_quote: None,
                close_time: at("2025-04-28T13:59:59.999Z"),
                source: "binance".into(),
            },
            ingested_at: at("2025-04-28T14:00:01.123456Z"),
        }
    }

    #[test]
    fn candles_become_rows_of_the_candles_table() {
        let rows = candle_rows(&[candle(), candle()]);
        rows.validate().expect("valid batch");
        assert_eq!(rows.rows(), 2);
        assert_eq!(
            rows.columns[1],
            ColumnValues::Text(vec![Some("1h".into()), Some("1h".into())])
        );
        assert_eq!(
            rows.columns[3],
            ColumnValues::Decimal(vec![Some(candle().candle.open); 2])
        );
        assert_eq!(rows.columns[8], ColumnValues::Decimal(vec![None, None]));
        assert_eq!(
            rows.columns[14],
            ColumnValues::Timestamp(vec![Some(candle().ingested_at); 2])
        );
    }

    #[test]
    fn candles_table_is_keyed_by_series_and_open_time() {
        assert_eq!(CANDLES_TABLE.key, ["symbol", "interval", "open_time"]);
        assert!(CANDLES_TABLE.key.iter().all(|k| {
            CANDLES_TABLE
                .columns
                .iter()
                .any(|c| c.name == *k && !c.nullable)
        }));
    }

    #[test]
    fn copy_into_casts_lake_columns_and_lists_the_files() {
        let ns = Namespace {
            catalog: "main".into(),
            schema: "pricecast".into(),
        };
        let sql = copy_candles_sql(
            &ns,
            "s3://lake/prices/candles/symbol=BTCUSDT/interval=1h",
            &[
                "date=2025-04-27/part-0.parquet".into(),
                "date=2025-04-28/part-0.parquet".into(),
            ],
        );
        assert!(
            sql.starts_with(
                "COPY INTO `main`.`pricecast`.`candles_staging` FROM (SELECT \
                 CAST(`symbol` AS STRING) AS `symbol`, CAST(`interval` AS STRING) AS `interval`, \
                 CAST(`open_time` AS TIMESTAMP) AS `open_time`, \
                 CAST(`open` AS DECIMAL(38,10)) AS `open`"
            ),
            "{sql}"
        );
        assert!(
            sql.contains("CAST(`trades` AS BIGINT) AS `trades`"),
            "{sql}"
        );
        assert!(
            sql.contains(
                "CAST(NULL AS STRING) AS `source`, current_timestamp() AS `ingested_at` \
             FROM 's3://lake/prices/candles/symbol=BTCUSDT/interval=1h') FILEFORMAT = PARQUET \
             FILES = ('date=2025-04-27/part-0.parquet', 'date=2025-04-28/part-0.parquet') \
             COPY_OPTIONS ('force' = 'true')"
            ),
            "{sql}"
        );
    }

    #[test]
    fn copy_into_needs_databricks_and_a_readable_lake() {
        assert!(check_copy_into(Dialect::Databricks, "s3://bucket/prefix").is_ok());
        let err = check_copy_into(Dialect::Databricks, "file:///tmp/lake").expect_err("local");
        assert!(err.to_string().contains("LAKE_URL"), "{err}");
        let err = check_copy_into(Dialect::Postgres, "s3://bucket").expect_err("postgres");
        assert!(err.to_string().contains("SYNC_DIALECT"), "{err}");
    }
}
