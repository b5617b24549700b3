//! The staged-MERGE pipeline every mirrored table goes through.
//!
//! A table plugs in as a [`SyncTable`], the warehouse table and where its position is kept, and
//! a [`SyncSource`], how the rows changed since a position are read as [`RowBatch`]es of it.
//! [`Pipeline::merge`] does the rest, the same for every table: read the position, read batches
//! while earlier ones load (a bounded number of them waiting), stage each one, MERGE the staged
//! rows every [`MERGE_EVERY_ROWS`] rows and once more after the last batch, and move the
//! position only after that last MERGE committed. A failure anywhere leaves the position where
//! it was.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use pricecast_shared::domain::{Interval, Symbol};
use pricecast_shared::{Error, Result};
use pricecast_warehouse::{Error as WarehouseError, RowBatch, TableSpec, Warehouse};
use tokio::sync::mpsc;

use super::{SyncContext, SyncPlan};
use crate::export::next_watermark;

/// Batches read ahead of the one being loaded: the source and the warehouse work at once.
const BATCHES_IN_FLIGHT: usize = 2;
/// Staged rows merged at once: one MERGE per batch would cost a full statement (a Delta commit
/// on Databricks) per 10,000 rows; staged rows live in the warehouse, not in memory.
pub const MERGE_EVERY_ROWS: u64 = 100_000;

/// The warehouse connection, shared by the steps of a run.
type SharedWarehouse = Arc<Mutex<Warehouse>>;

/// A series' position, kept in Pricecast's `watermarks` table.
#[derive(Clone, Debug)]
pub struct SeriesWatermark {
    /// The `watermarks.job` it is kept under.
    pub job: Cow<'static, str>,
    /// The series' symbol.
    pub symbol: Symbol,
    /// The series' interval.
    pub interval: Interval,
    /// The watermark stays at least this far behind the database's clock, so rows stamped
    /// within it are sent again next run; `None`: it moves to the newest row merged.
    pub settle: Option<chrono::Duration>,
}

/// Rows read from a source in one step, with the position they reach.
#[derive(Debug)]
pub struct ChangedRows {
    /// The rows, in batches of at most the configured batch size.
    pub batches: Vec<RowBatch>,
    /// The newest position among them; `None` when the source keeps no watermark.
    pub reached: Option<DateTime<Utc>>,
}

/// A warehouse table a source fills, and where its position is kept.
#[derive(Clone, Debug)]
pub struct SyncTable {
    /// The table the rows are merged into.
    pub spec: Arc<TableSpec>,
    /// The watermark the position is kept under; `None` when the merged rows are themselves the
    /// position (model runs: the newest end time merged).
    pub watermark: Option<SeriesWatermark>,
}

/// What the pipeline asks a source for.
#[derive(Clone, Debug)]
pub struct ChangeRequest {
    /// The table the rows are for.
    pub spec: Arc<TableSpec>,
    /// Rows changed after this position; all of them when `None`.
    pub since: Option<DateTime<Utc>>,
    /// Most rows in one batch.
    pub batch_size: usize,
}

/// Where a table's changed rows come from.
pub trait SyncSource: Send + Sync {
    /// The rows the request asks for, in order.
    fn changes(&self, request: ChangeRequest) -> BoxStream<'_, Result<ChangedRows>>;
}

/// What was synced from one source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeriesReport {
    /// Rows merged (or files copied, in `copy-into` mode).
    pub rows: u64,
    /// The watermark before the run.
    pub since: Option<DateTime<Utc>>,
    /// The watermark after the run.
    pub watermark: Option<DateTime<Utc>>,
}

/// One run's way into the warehouse: its connection, with the context and plan it loads by.
#[derive(Debug)]
pub struct Pipeline<'a> {
    /// The database, settings and shutdown signal of the run.
    pub ctx: &'a SyncContext,
    /// What the run does.
    pub plan: &'a SyncPlan,
    warehouse: SharedWarehouse,
}

impl<'a> Pipeline<'a> {
    /// Connects to the warehouse.
    pub async fn connect(ctx: &'a SyncContext, plan: &'a SyncPlan) -> Result<Self> {
        let config = ctx.warehouse.clone();
        let warehouse = blocking_task(move || Ok(Warehouse::connect(&config)?)).await?;
        Ok(Self {
            ctx,
            plan,
            warehouse: Arc::new(Mutex::new(warehouse)),
        })
    }

    /// Runs `work` on the warehouse connection, on a blocking thread (ODBC calls block).
    pub async fn on_warehouse<T: Send + 'static, E: Into<Error>>(
        &self,
        work: impl FnOnce(&Warehouse) -> Result<T, E> + Send + 'static,
    ) -> Result<T> {
        on_warehouse(&self.warehouse, work).await
    }

    /// Creates the table and its staging table when missing, checks their columns and clears
    /// staged rows a crashed run left ([`Warehouse::prepare_table`]).
    pub async fn prepare(&self, spec: &Arc<TableSpec>) -> Result<()> {
        let spec = spec.clone();
        self.on_warehouse(move |w| w.prepare_table(&spec)).await
    }

    /// Streams the rows the source changed since the table's watermark into the table (stage,
    /// then MERGE every [`MERGE_EVERY_ROWS`] rows and at the end), then moves the watermark. No
    /// batch is read once the run is cancelled; the one being loaded finishes.
    pub async fn merge(&self, table: &SyncTable, source: &dyn SyncSource) -> Result<SeriesReport> {
        let (ctx, watermark) = (self.ctx, table.watermark.as_ref());
        let since = match watermark {
            Some(w) => ctx.store.watermark(&w.job, &w.symbol, w.interval).await?,
            None => None,
        };
        let settled_before = match watermark.and_then(|w| w.settle) {
            Some(settle) => ctx.store.database_now().await? - settle,
            None => DateTime::<Utc>::MAX_UTC,
        };
        let (tx, rx) = mpsc::channel(BATCHES_IN_FLIGHT);
        let loader = tokio::spawn(load_batches(
            self.warehouse.clone(),
            table.spec.clone(),
            rx,
            self.plan.stop_after_staging,
        ));
        let mut changes = source.changes(ChangeRequest {
            spec: table.spec.clone(),
            since,
            batch_size: ctx.warehouse.batch_size,
        });
        let mut reached = None;
        let read = 'read: loop {
            if ctx.cancel.is_cancelled() {
                break Err(Error::Cancelled);
            }
            let rows = match changes.next().await {
                None => break Ok(()),
                Some(Err(e)) => break Err(e),
                Some(Ok(rows)) => rows,
            };
            reached = reached.max(rows.reached);
            for batch in rows.batches {
                if tx.send(batch).await.is_err() {
                    break 'read Ok(()); // The loader failed; its error is reported below.
                }
            }
        };
        drop((tx, changes));
        let loaded = loader.await.unwrap_or_else(|e| {
            Err(WarehouseError::Failed {
                operation: "sync".into(),
                message: format!("the loader stopped: {e}"),
            }
            .into())
        });
        let rows = loaded?;
        read?;
        let mut report = SeriesReport {
            rows,
            since,
            watermark: since,
        };
        if let Some(w) = watermark
            && let Some(position) = next_watermark(since, reached, settled_before)
        {
            ctx.store
                .set_watermark(&w.job, &w.symbol, w.interval, position)
                .await?;
            report.watermark = Some(position);
        }
        Ok(report)
    }
}

/// Runs blocking work (ODBC, decoding) off the runtime's workers.
pub(super) async fn blocking_task<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(WarehouseError::Failed {
            operation: "sync".into(),
            message: format!("the warehouse worker stopped: {e}"),
        }
        .into())
    })
}

/// Runs `work` on the warehouse connection, on a blocking thread.
async fn on_warehouse<T: Send + 'static, E: Into<Error>>(
    warehouse: &SharedWarehouse,
    work: impl FnOnce(&Warehouse) -> Result<T, E> + Send + 'static,
) -> Result<T> {
    let warehouse = warehouse.clone();
    blocking_task(move || {
        let guard = warehouse.lock().map_err(|_| WarehouseError::Failed {
            operation: "sync".into(),
            message: "an earlier warehouse operation panicked".into(),
        })?;
        work(&guard).map_err(Into::into)
    })
    .await
}

/// Stages each received batch in turn and merges the staging table once it holds
/// [`MERGE_EVERY_ROWS`] rows, and once more after the last batch; returns the rows merged.
/// Stops at the first failure, leaving the batches after it unloaded (and the staged ones for
/// the next run's [`Warehouse::prepare_table`] to clear).
async fn load_batches(
    warehouse: SharedWarehouse,
    spec: Arc<TableSpec>,
    mut batches: mpsc::Receiver<RowBatch>,
    stop_after_staging: bool,
) -> Result<u64> {
    let mut merged = 0;
    let mut staged = 0;
    while let Some(batch) = batches.recv().await {
        let n = batch.rows() as u64;
        let merge_now = staged + n >= MERGE_EVERY_ROWS;
        let table = spec.clone();
        on_warehouse(&warehouse, move |w| {
            let started = Instant::now();
            w.stage(&batch)?;
            tracing::debug!(
                rows = n,
                duration_ms = started.elapsed().as_millis() as u64,
                "batch staged"
            );
            if stop_after_staging {
                return Err(WarehouseError::Failed {
                    operation: format!("sync of {}", table.name),
                    message: "stopped between staging and MERGE by the test hook".into(),
                }
                .into());
            }
            if merge_now {
                merge_staged(w, &table)
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
        on_warehouse(&warehouse, move |w| merge_staged(w, &spec)).await?;
        merged += staged;
    }
    Ok(merged)
}

/// Merges the staging table into the target, logging how long it took.
fn merge_staged(warehouse: &Warehouse, spec: &TableSpec) -> Result<()> {
    let started = Instant::now();
    warehouse.merge(spec)?;
    tracing::debug!(
        table = &*spec.name,
        duration_ms = started.elapsed().as_millis() as u64,
        "staged rows merged"
    );
    Ok(())
}
