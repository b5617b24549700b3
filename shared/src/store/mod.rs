//! The database: PostgreSQL in production, an embedded SQLite file by default, one interface.
//!
//! SQL lives here only, one file per backend; jobs and handlers call these methods.

mod pg_binary;
mod postgres;
mod sqlite;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::domain::{Candle, Interval, PricePoint, Symbol};
use crate::error::{Error, Result};
use crate::lake::candles::LakeCandle;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// How long a request waits for a pooled connection before the database counts as unreachable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether the connection may write. The API always connects read-only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessMode {
    /// Jobs: read and write.
    ReadWrite,
    /// The API: every transaction is read-only, enforced by the database.
    ReadOnly,
}

/// Pool sizing and access mode.
#[derive(Clone, Copy, Debug)]
pub struct StoreOptions {
    /// Read-only or read-write.
    pub mode: AccessMode,
    /// Largest number of pooled connections.
    pub max_connections: u32,
}

/// Candles selected by series and time range.
#[derive(Clone, Debug)]
pub struct CandleQuery {
    /// Trading pair.
    pub symbol: Symbol,
    /// Kline interval.
    pub interval: Interval,
    /// Earliest open time, inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Latest open time, inclusive.
    pub to: Option<DateTime<Utc>>,
    /// Most rows returned.
    pub limit: i64,
    /// Rows skipped (for paging).
    pub offset: i64,
    /// Newest first instead of oldest first.
    pub newest_first: bool,
}

/// Which candles an export looks at: changed after a watermark, within open times, or both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeFilter {
    /// Only candles ingested (inserted or changed) strictly after this time.
    pub ingested_after: Option<DateTime<Utc>>,
    /// Earliest open time, inclusive.
    pub open_from: Option<DateTime<Utc>>,
    /// Open times strictly before this.
    pub open_before: Option<DateTime<Utc>>,
}

/// A UTC day of a series with candles matching a [`ChangeFilter`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChangedDay {
    /// The UTC date of the candles' open times.
    pub date: NaiveDate,
    /// Matching candles that day.
    pub rows: i64,
    /// Newest `ingested_at` among them.
    pub max_ingested_at: DateTime<Utc>,
}

/// A stored candle with the time it was last inserted or changed (its change marker).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangedCandle {
    /// The candle.
    pub candle: Candle,
    /// When the row was last inserted or changed (`ingested_at`).
    pub ingested_at: DateTime<Utc>,
}

/// A close with where its candle came from and when it was stored: a row of the seed app's
/// price table (the `bitcoin_prices` view's `price`, `source` and `created_at`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPrice {
    /// Open time of the candle.
    pub open_time: DateTime<Utc>,
    /// Close of the candle.
    pub close: Decimal,
    /// Where the candle came from (`binance`, `replay`).
    pub source: String,
    /// When the row was last inserted or changed (`ingested_at`).
    pub ingested_at: DateTime<Utc>,
}

impl From<&StoredPrice> for PricePoint {
    fn from(p: &StoredPrice) -> Self {
        Self {
            open_time: p.open_time,
            close: p.close,
        }
    }
}

/// A run of missing candles: every open time from `start` to `end` (inclusive) is absent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// Trading pair.
    pub symbol: Symbol,
    /// Kline interval.
    pub interval: Interval,
    /// Open time of the first missing candle.
    pub start: DateTime<Utc>,
    /// Open time of the last missing candle.
    pub end: DateTime<Utc>,
    /// Whether the exchange itself is known to have no data here.
    pub known_exchange_gap: bool,
}

impl Gap {
    /// Number of missing candles.
    pub fn missing(&self) -> i64 {
        (self.end - self.start).num_milliseconds() / self.interval.duration_ms() + 1
    }
}

/// What is stored for one symbol and interval.
#[derive(Clone, Debug, Serialize)]
pub struct SeriesSummary {
    /// Trading pair.
    pub symbol: String,
    /// Kline interval.
    pub interval: String,
    /// Number of candles.
    pub candles: i64,
    /// Oldest open time.
    pub first_open_time: DateTime<Utc>,
    /// Newest open time.
    pub last_open_time: DateTime<Utc>,
}

/// Outcome of a job run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Still running (or died without recording an end).
    Running,
    /// Finished without error.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Did not run: another run held the lock.
    Skipped,
    /// Stopped by a shutdown signal between batches.
    Cancelled,
}

impl JobStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Cancelled => "cancelled",
        }
    }
}

impl FromStr for JobStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "skipped" => Self::Skipped,
            "cancelled" => Self::Cancelled,
            other => return Err(Error::CorruptRow(format!("unknown job status {other:?}"))),
        })
    }
}

/// One row of `job_runs`.
#[derive(Clone, Debug, Serialize)]
pub struct JobRun {
    /// Run id.
    pub id: i64,
    /// Job name (`collect`, `export`, …).
    pub job: String,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// End time, when finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Outcome.
    pub status: JobStatus,
    /// Rows written.
    pub rows: i64,
    /// Free-form summary.
    pub detail: Option<String>,
    /// Error message, when failed.
    pub error: Option<String>,
}

/// How a finished run is recorded.
#[derive(Clone, Debug)]
pub struct JobOutcome {
    /// Outcome.
    pub status: JobStatus,
    /// Rows written.
    pub rows: i64,
    /// Free-form summary.
    pub detail: Option<String>,
    /// Error message.
    pub error: Option<String>,
}

/// The database behind one interface.
#[derive(Clone, Debug)]
pub enum Store {
    /// PostgreSQL.
    Postgres(PgStore),
    /// SQLite.
    Sqlite(SqliteStore),
}

macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Store::Postgres($store) => $call,
            Store::Sqlite($store) => $call,
        }
    };
}

impl Store {
    /// Connects to `postgres://…` or `sqlite://…` (a SQLite file and its folder are created when
    /// writable). Fails with a message naming `DATABASE_URL` when the URL is not understood.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(PgStore::connect(url, options).await?))
        } else if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(SqliteStore::connect(url, options).await?))
        } else {
            Err(Error::config(
                "DATABASE_URL must start with postgres:// or sqlite:// (for example sqlite://./pricecast-data/pricecast.db)",
            ))
        }
    }

    /// Which backend this is (`postgres`, `sqlite`).
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgres",
            Self::Sqlite(_) => "sqlite",
        }
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<()> {
        dispatch!(self, s => s.migrate().await)
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        dispatch!(self, s => s.ping().await)
    }

    /// Inserts or updates a batch of candles in one transaction; returns rows inserted or changed.
    pub async fn upsert_candles(&self, candles: &[Candle]) -> Result<u64> {
        if candles.is_empty() {
            return Ok(0);
        }
        dispatch!(self, s => s.upsert_candles(candles).await)
    }

    /// Open time of the newest stored candle of a series.
    pub async fn last_open_time(
        &self,
        symbol: &Symbol,
        interval: Interval,
    ) -> Result<Option<DateTime<Utc>>> {
        dispatch!(self, s => s.last_open_time(symbol, interval).await)
    }

    /// Candles matching a query.
    pub async fn candles(&self, query: &CandleQuery) -> Result<Vec<Candle>> {
        dispatch!(self, s => s.candles(query).await)
    }

    /// Open times and closes matching a query: far cheaper than whole candles for price queries.
    pub async fn closes(&self, query: &CandleQuery) -> Result<Vec<PricePoint>> {
        dispatch!(self, s => s.closes(query).await)
    }

    /// Closes matching a query with their candles' `source` and `ingested_at`.
    pub async fn stored_prices(&self, query: &CandleQuery) -> Result<Vec<StoredPrice>> {
        dispatch!(self, s => s.stored_prices(query).await)
    }

    /// The newest candle of a series.
    pub async fn latest_candle(
        &self,
        symbol: &Symbol,
        interval: Interval,
    ) -> Result<Option<Candle>> {
        Ok(self
            .candles(&newest_candle_query(symbol, interval))
            .await?
            .into_iter()
            .next())
    }

    /// The newest candle of a series with the time it was stored.
    pub async fn latest_changed_candle(
        &self,
        symbol: &Symbol,
        interval: Interval,
    ) -> Result<Option<ChangedCandle>> {
        let query = newest_candle_query(symbol, interval);
        let candles = dispatch!(self, s => s.changed_candles(&query).await)?;
        Ok(candles.into_iter().next())
    }

    /// Every stored series with its size and time range.
    pub async fn series(&self) -> Result<Vec<SeriesSummary>> {
        dispatch!(self, s => s.series().await)
    }

    /// Missing ranges inside the stored range of a series, with known exchange gaps flagged.
    pub async fn gaps(&self, symbol: &Symbol, interval: Interval) -> Result<Vec<Gap>> {
        if interval == Interval::Mo1 {
            // Months differ in length; a month series has no fixed step to test against.
            return Ok(Vec::new());
        }
        let holes = dispatch!(self, s => s.holes(symbol, interval).await)?;
        let known = dispatch!(self, s => s.known_gap_starts(symbol, interval).await)?;
        Ok(holes
            .into_iter()
            .map(|(start, end)| Gap {
                symbol: symbol.clone(),
                interval,
                start,
                end,
                known_exchange_gap: known.contains(&start),
            })
            .collect())
    }

    /// Records that the exchange has no data for a gap, so it is not re-fetched.
    pub async fn record_exchange_gap(&self, gap: &Gap) -> Result<()> {
        dispatch!(self, s => s.record_exchange_gap(gap).await)
    }

    /// Records the start of a job run; returns its id.
    pub async fn start_job_run(&self, job: &str) -> Result<i64> {
        dispatch!(self, s => s.start_job_run(job).await)
    }

    /// Records how a job run ended.
    pub async fn finish_job_run(&self, id: i64, outcome: &JobOutcome) -> Result<()> {
        dispatch!(self, s => s.finish_job_run(id, outcome).await)
    }

    /// Records a run that did not happen because another run held the lock.
    pub async fn record_skipped_run(&self, job: &str, detail: &str) -> Result<()> {
        let id = self.start_job_run(job).await?;
        self.finish_job_run(
            id,
            &JobOutcome {
                status: JobStatus::Skipped,
                rows: 0,
                detail: Some(detail.to_owned()),
                error: None,
            },
        )
        .await
    }

    /// The most recent job runs, newest first, optionally of one job only.
    pub async fn job_runs(&self, job: Option<&str>, limit: i64) -> Result<Vec<JobRun>> {
        dispatch!(self, s => s.job_runs(job, limit).await)
    }

    /// The newest run of each job.
    pub async fn last_run_per_job(&self) -> Result<Vec<JobRun>> {
        dispatch!(self, s => s.last_run_per_job().await)
    }

    /// The position a job has reached in a series (the export's newest exported `ingested_at`).
    pub async fn watermark(
        &self,
        job: &str,
        symbol: &Symbol,
        interval: Interval,
    ) -> Result<Option<DateTime<Utc>>> {
        dispatch!(self, s => s.watermark(job, symbol, interval).await)
    }

    /// Moves a job's position in a series.
    pub async fn set_watermark(
        &self,
        job: &str,
        symbol: &Symbol,
        interval: Interval,
        position: DateTime<Utc>,
    ) -> Result<()> {
        dispatch!(self, s => s.set_watermark(job, symbol, interval, position).await)
    }

    /// The UTC days of a series holding candles that match `filter`, oldest first.
    pub async fn changed_days(
        &self,
        symbol: &Symbol,
        interval: Interval,
        filter: &ChangeFilter,
    ) -> Result<Vec<ChangedDay>> {
        dispatch!(self, s => s.changed_days(symbol, interval, filter).await)
    }

    /// The database's clock (the one `ingested_at` is stamped with; the client's for SQLite).
    pub async fn database_now(&self) -> Result<DateTime<Utc>> {
        dispatch!(self, s => s.database_now().await)
    }

    /// Streams the candles of a series with open times in `[from, before)`, oldest first,
    /// without holding them all in memory.
    pub fn stream_candles<'a>(
        &'a self,
        symbol: &'a Symbol,
        interval: Interval,
        from: DateTime<Utc>,
        before: DateTime<Utc>,
    ) -> BoxStream<'a, Result<Candle>> {
        dispatch!(self, s => s.stream_candles(symbol, interval, from, before))
    }

    /// Streams the candles of a series with open times in `[from, before)`, oldest first, as the
    /// lake stores them ([`LakeCandle`]); a value not exact at the lake's scale is an error.
    /// PostgreSQL decodes its binary columns straight into lake integers (the export's hot path);
    /// SQLite converts [`Store::stream_candles`]' candles.
    pub fn stream_lake_candles<'a>(
        &'a self,
        symbol: &'a Symbol,
        interval: Interval,
        from: DateTime<Utc>,
        before: DateTime<Utc>,
    ) -> BoxStream<'a, Result<LakeCandle>> {
        match self {
            Self::Postgres(s) => s.stream_lake_candles(symbol, interval, from, before),
            Self::Sqlite(s) => s
                .stream_candles(symbol, interval, from, before)
                .map(|candle| candle.and_then(|c| LakeCandle::from_candle(&c)))
                .boxed(),
        }
    }

    /// Streams the candles of a series ingested (inserted or changed) strictly after
    /// `ingested_after` (all of them when `None`), oldest open time first, each with its
    /// `ingested_at`, without holding them all in memory.
    pub fn stream_changed_candles<'a>(
        &'a self,
        symbol: &'a Symbol,
        interval: Interval,
        ingested_after: Option<DateTime<Utc>>,
    ) -> BoxStream<'a, Result<ChangedCandle>> {
        dispatch!(self, s => s.stream_changed_candles(symbol, interval, ingested_after))
    }

    /// Tries to take the exclusive lock of a job; `None` when another run holds it.
    pub async fn try_lock_job(&self, job: &str) -> Result<Option<JobLock>> {
        dispatch!(self, s => s.try_lock_job(job).await)
    }
}

/// The query selecting the newest candle of a series.
fn newest_candle_query(symbol: &Symbol, interval: Interval) -> CandleQuery {
    CandleQuery {
        symbol: symbol.clone(),
        interval,
        from: None,
        to: None,
        limit: 1,
        offset: 0,
        newest_first: true,
    }
}

/// Exclusive right to run a job, held until dropped or released.
#[derive(Debug)]
pub enum JobLock {
    /// A PostgreSQL session-level advisory lock, on a connection of its own.
    Postgres(postgres::AdvisoryLock),
    /// An OS file lock beside the SQLite database (absent for in-memory databases).
    Sqlite(Option<std::fs::File>),
}

impl JobLock {
    /// Releases the lock now (dropping it releases it too, by closing its connection or file).
    pub async fn release(self) {
        if let Self::Postgres(lock) = self {
            lock.release().await;
        }
    }
}

/// A stable 64-bit key for a job's advisory lock (FNV-1a of `pricecast:<job>`).
pub(crate) fn lock_key(job: &str) -> i64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = format!("pricecast:{job}").bytes().fold(FNV_OFFSET, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    });
    i64::from_ne_bytes(hash.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_stable_and_distinct() {
        assert_eq!(lock_key("collect"), lock_key("collect"));
        assert_ne!(lock_key("collect"), lock_key("export"));
    }

    #[test]
    fn gap_counts_missing_candles() {
        let start = DateTime::from_timestamp_millis(3_600_000).expect("time");
        let gap = Gap {
            symbol: "BTCUSDT".parse().expect("symbol"),
            interval: Interval::H1,
            start,
            end: start + chrono::Duration::hours(2),
            known_exchange_gap: false,
        };
        assert_eq!(gap.missing(), 3);
    }

    #[test]
    fn job_status_round_trips() {
        for status in [
            JobStatus::Running,
            JobStatus::Succeeded,
            JobStatus::Failed,
            JobStatus::Skipped,
            JobStatus::Cancelled,
        ] {
            assert_eq!(status.as_str().parse::<JobStatus>().ok(), Some(status));
        }
    }
}
