//! SQLite queries. Times are stored as milliseconds since the epoch, decimals as exact text.

use std::collections::HashSet;
use std::fs::File;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use rust_decimal::Decimal;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use super::{
    ACQUIRE_TIMEOUT, AccessMode, CandleQuery, ChangeFilter, ChangedCandle, ChangedDay, Gap,
    JobLock, JobOutcome, JobRun, JobStatus, SeriesSummary, StoreOptions, StoredPrice,
};
use crate::domain::{Candle, Interval, PricePoint, Symbol};
use crate::error::{Error, Result};

/// How long a writer waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The database file, absent for in-memory databases.
    path: Option<PathBuf>,
}

const CANDLE_COLUMNS: &str = "symbol, interval, open_time, open, high, low, close, volume, \
     quote_volume, trades, taker_buy_base, taker_buy_quote, close_time, source";

impl SqliteStore {
    pub(super) async fn connect(url: &str, options: StoreOptions) -> Result<Self> {
        let mut connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::config(format!("DATABASE_URL is not a valid SQLite URL: {e}")))?
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let path = {
            let filename = connect.get_filename();
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            (!in_memory).then(|| filename.to_path_buf())
        };
        connect = match options.mode {
            AccessMode::ReadOnly => connect.read_only(true),
            AccessMode::ReadWrite => {
                if let Some(parent) = path.as_ref().and_then(|p| p.parent())
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent)?;
                }
                connect
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
            }
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(connect);
        Ok(Self { pool, path })
    }

    /// The connection pool (for tests and tools).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(super) async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("../migrations/sqlite")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(rows = candles.len()))]
    pub(super) async fn upsert_candles(&self, candles: &[Candle]) -> Result<u64> {
        let now = Utc::now().timestamp_millis();
        let mut tx = self.pool.begin().await?;
        let mut changed = 0;
        for c in candles {
            let text = |d: Option<Decimal>| d.map(|d| d.to_string());
            let result = sqlx::query(
                "INSERT INTO candles (symbol, interval, open_time, open, high, low, close, volume, \
                     quote_volume, trades, taker_buy_base, taker_buy_quote, close_time, source, \
                     ingested_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) \
                 ON CONFLICT (symbol, interval, open_time) DO UPDATE SET \
                     open = excluded.open, high = excluded.high, low = excluded.low, \
                     close = excluded.close, volume = excluded.volume, \
                     quote_volume = excluded.quote_volume, trades = excluded.trades, \
                     taker_buy_base = excluded.taker_buy_base, \
                     taker_buy_quote = excluded.taker_buy_quote, close_time = excluded.close_time, \
                     source = excluded.source, ingested_at = excluded.ingested_at \
                 WHERE (candles.open, candles.high, candles.low, candles.close, candles.volume, \
                        candles.quote_volume, candles.trades, candles.taker_buy_base, \
                        candles.taker_buy_quote) \
                   IS NOT (excluded.open, excluded.high, excluded.low, excluded.close, \
                        excluded.volume, excluded.quote_volume, excluded.trades, \
                        excluded.taker_buy_base, excluded.taker_buy_quote)",
            )
            .bind(c.symbol.as_str())
            .bind(c.interval.as_str())
            .bind(c.open_time.timestamp_millis())
            .bind(c.open.to_string())
            .bind(c.high.to_string())
            .bind(c.low.to_string())
            .bind(c.close.to_string())
            .bind(c.volume.to_string())
            .bind(text(c.quote_volume))
            .bind(c.trades)
            .bind(text(c.taker_buy_base))
            .bind(text(c.taker_buy_quote))
            .bind(c.close_time.timestamp_millis())
            .bind(c.source.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            changed += result.rows_affected();
        }
        tx.commit().await?;
        Ok(changed)
    }

    pub(super) async fn last_open_time(
        &self,
        symbol: &Symbol,
        interval: Interval,
    ) -> Result<Option<DateTime<Utc>>> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT open_time FROM candles WHERE symbol = ?1 AND interval = ?2 \
             ORDER BY open_time DESC LIMIT 1",
        )
        .bind(symbol.as_str())
        .bind(interval.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| millis(r.0)).transpose()
    }

    pub(super) async fn candles(&self, q: &CandleQuery) -> Result<Vec<Candle>> {
        let rows = self.range_rows(q, CANDLE_COLUMNS).await?;
        rows.iter().map(candle_from_row).collect()
    }

    pub(super) async fn closes(&self, q: &CandleQuery) -> Result<Vec<PricePoint>> {
        let rows = self.range_rows(q, "open_time, close").await?;
        rows.iter()
            .map(|r| {
                Ok(PricePoint {
                    open_time: millis(r.try_get("open_time")?)?,
                    close: decimal(r, "close")?,
                })
            })
            .collect()
    }

    #[tracing::instrument(skip_all, fields(symbol = %q.symbol, interval = %q.interval))]
    pub(super) async fn stored_prices(&self, q: &CandleQuery) -> Result<Vec<StoredPrice>> {
        let rows = self
            .range_rows(q, "open_time, close, source, ingested_at")
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredPrice {
                    open_time: millis(r.try_get("open_time")?)?,
                    close: decimal(r, "close")?,
                    source: r.try_get("source")?,
                    ingested_at: millis(r.try_get("ingested_at")?)?,
                })
            })
            .collect()
    }

    #[tracing::instrument(skip_all, fields(symbol = %q.symbol, interval = %q.interval))]
    pub(super) async fn changed_candles(&self, q: &CandleQuery) -> Result<Vec<ChangedCandle>> {
        let rows = self
            .range_rows(q, &format!("{CANDLE_COLUMNS}, ingested_at"))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ChangedCandle {
                    candle: candle_from_row(r)?,
                    ingested_at: millis(r.try_get("ingested_at")?)?,
                })
            })
            .collect()
    }

    /// `columns` of the candles a query selects, in its order, limit and offset.
    async fn range_rows(&self, q: &CandleQuery, columns: &str) -> Result<Vec<SqliteRow>> {
        let order = if q.newest_first { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {columns} FROM candles WHERE symbol = ?1 AND interval = ?2 \
             AND (?3 IS NULL OR open_time >= ?3) AND (?4 IS NULL OR open_time <= ?4) \
             ORDER BY open_time {order} LIMIT ?5 OFFSET ?6"
        );
        Ok(sqlx::query(&sql)
            .bind(q.symbol.as_str())
            .bind(q.interval.as_str())
            .bind(q.from.map(|t| t.timestamp_millis()))
            .bind(q.to.map(|t| t.timestamp_millis()))
            .bind(q.limit)
            .bind(q.offset)
            .fetch_all(&self.pool)
            .await?)
    }

    pub(super) async fn series(&self) -> Result<Vec<SeriesSummary>> {
        let rows = sqlx::query(
            "SELECT symbol, interval, COUNT(*) AS candles, MIN(open_time) AS first, \
             MAX(open_time) AS last FROM candles GROUP BY symbol, interval ORDER BY symbol, interval",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SeriesSummary {
                    symbol: r.try_get("symbol")?,
                    interval: r.try_get("interval")?,
                    candles: r.try_get("candles")?,
                    first_open_time: millis(r.try_get("first")?)?,
                    last_open_time: millis(r.try_get("last")?)?,
                })
            })
            .collect()
    }

    pub(super) async fn holes(
        &self,
        symbol: &Symbol,
        interval: Interval,
    ) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT open_time + ?3, next_open - ?3 \
             FROM (SELECT open_time, LEAD(open_time) OVER (ORDER BY open_time) AS next_open \
                   FROM candles WHERE symbol = ?1 AND interval = ?2) \
             WHERE next_open - open_time > ?3 ORDER BY open_time",
        )
        .bind(symbol.as_str())
        .bind(interval.as_str())
        .bind(interval.duration_ms())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(start, end)| Ok((millis(start)?, millis(end)?)))
            .collect()
    }

    pub(super) async fn known_gap_starts(
        &self,
        symbol: &Symbol,
        interval: Interval,
    ) -> Result<HashSet<DateTime<Utc>>> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT gap_start FROM exchange_gaps WHERE symbol = ?1 AND interval = ?2",
        )
        .bind(symbol.as_str())
        .bind(interval.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|r| millis(r.0)).collect()
    }

    pub(super) async fn record_exchange_gap(&self, gap: &Gap) -> Result<()> {
        sqlx::query(
            "INSERT INTO exchange_gaps (symbol, interval, gap_start, gap_end, detected_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (symbol, interval, gap_start) DO UPDATE SET gap_end = excluded.gap_end",
        )
        .bind(gap.symbol.as_str())
        .bind(gap.interval.as_str())
        .bind(gap.start.timestamp_millis())
        .bind(gap.end.timestamp_millis())
        .bind(Utc::now().timestamp_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn start_job_run(&self, job: &str) -> Result<i64> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO job_runs (job, started_at, status) VALUES (?1, ?2, 'running') RETURNING id",
        )
        .bind(job)
        .bind(Utc::now().timestamp_millis())
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    pub(super) async fn finish_job_run(&self, id: i64, outcome: &JobOutcome) -> Result<()> {
        sqlx::query(
            "UPDATE job_runs SET finished_at = ?2, status = ?3, rows = ?4, detail = ?5, error = ?6 \
             WHERE id = ?1",
        )
        .bind(id)
        .bind(Utc::now().timestamp_millis())
        .bind(outcome.status.as_str())
        .bind(outcome.rows)
        .bind(&outcome.detail)
        .bind(&outcome.error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn job_runs(&self, job: Option<&str>, limit: i64) -> Result<Vec<JobRun>> {
        let rows = sqlx::query(
            "SELECT id, job, started_at, finished_at, status, rows, detail, error FROM job_runs \
             WHERE (?1 IS NULL OR job = ?1) ORDER BY started_at DESC, id DESC LIMIT ?2",
        )
        .bind(job)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_run_from_row).collect()
    }

    pub(super) async fn last_run_per_job(&self) -> Result<Vec<JobRun>> {
        let rows = sqlx::query(
            "SELECT id, job, started_at, finished_at, status, rows, detail, error FROM job_runs r \
             WHERE id = (SELECT id FROM job_runs l WHERE l.job = r.job \
                         ORDER BY started_at DESC, id DESC LIMIT 1) \
             ORDER BY job",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_run_from_row).collect()
    }

    pub(super) async fn watermark(
        &self,
        job: &str,
        symbol: &Symbol,
        interval: Interval,
    ) -> Result<Option<DateTime<Utc>>> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT position FROM watermarks WHERE job = ?1 AND symbol = ?2 AND interval = ?3",
        )
        .bind(job)
        .bind(symbol.as_str())
        .bind(interval.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| millis(r.0)).transpose()
    }

    pub(super) async fn set_watermark(
        &self,
        job: &str,
        symbol: &Symbol,
        interval: Interval,
        position: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO watermarks (job, symbol, interval, position, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (job, symbol, interval) \
             DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
        )
        .bind(job)
        .bind(symbol.as_str())
        .bind(interval.as_str())
        .bind(position.timestamp_millis())
        .bind(Utc::now().timestamp_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(symbol = %symbol, interval = %interval))]
    pub(super) async fn changed_days(
        &self,
        symbol: &Symbol,
        interval: Interval,
        filter: &ChangeFilter,
    ) -> Result<Vec<ChangedDay>> {
        let ms = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_millis());
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT open_time / 86400000 AS day, COUNT(*), MAX(ingested_at) FROM candles \
             WHERE symbol = ?1 AND interval = ?2 AND (?3 IS NULL OR ingested_at > ?3) \
             AND (?4 IS NULL OR open_time >= ?4) AND (?5 IS NULL OR open_time < ?5) \
             GROUP BY day ORDER BY day",
        )
        .bind(symbol.as_str())
        .bind(interval.as_str())
        .bind(ms(filter.ingested_after))
        .bind(ms(filter.open_from))
        .bind(ms(filter.open_before))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(day, rows, max_ingested_at)| {
                Ok(ChangedDay {
                    date: millis(day * 86_400_000)?.date_naive(),
                    rows,
                    max_ingested_at: millis(max_ingested_at)?,
                })
            })
            .collect()
    }

    pub(super) async fn database_now(&self) -> Result<DateTime<Utc>> {
        // Rows are stamped with the client's clock; so is the answer.
        Ok(Utc::now())
    }

    pub(super) fn stream_candles<'a>(
        &'a self,
        symbol: &'a Symbol,
        interval: Interval,
        from: DateTime<Utc>,
        before: DateTime<Utc>,
    ) -> BoxStream<'a, Result<Candle>> {
        sqlx::query(
            "SELECT symbol, interval, open_time, open, high, low, close, volume, quote_volume, \
             trades, taker_buy_base, taker_buy_quote, close_time, source FROM candles \
             WHERE symbol = ?1 AND interval = ?2 AND open_time >= ?3 AND open_time < ?4 \
             ORDER BY open_time",
        )
        .bind(symbol.as_str())
        .bind(interval.as_str())
        .bind(from.timestamp_millis())
        .bind(before.timestamp_millis())
        .fetch(&self.pool)
        .map_err(Error::from)
        .and_then(|row| std::future::ready(candle_from_row(&row)))
        .boxed()
    }

    pub(super) fn stream_changed_candles<'a>(
        &'a self,
        symbol: &'a Symbol,
        interval: Interval,
        ingested_after: Option<DateTime<Utc>>,
    ) -> BoxStream<'a, Result<ChangedCandle>> {
        sqlx::query(
            "SELECT symbol, interval, open_time, open, high, low, close, volume, quote_volume, \
             trades, taker_buy_base, taker_buy_quote, close_time, source, ingested_at \
             FROM candles WHERE symbol = ?1 AND interval = ?2 \
             AND (?3 IS NULL OR ingested_at > ?3) ORDER BY open_time",
        )
        .bind(symbol.as_str())
        .bind(interval.as_str())
        .bind(ingested_after.map(|t| t.timestamp_millis()))
        .fetch(&self.pool)
        .map_err(Error::from)
        .and_then(|row| {
            std::future::ready(candle_from_row(&row).and_then(|candle| {
                Ok(ChangedCandle {
                    candle,
                    ingested_at: millis(row.try_get("ingested_at")?)?,
                })
            }))
        })
        .boxed()
    }

    /// SQLite has no advisory locks; an OS lock on a file beside the database does the same job
    /// for the processes of one host, which is where an embedded database lives.
    pub(super) async fn try_lock_job(&self, job: &str) -> Result<Option<JobLock>> {
        let Some(path) = &self.path else {
            return Ok(Some(JobLock::Sqlite(None)));
        };
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(format!(".{job}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(JobLock::Sqlite(Some(file)))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }
}

fn millis(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| Error::CorruptRow(format!("time {ms} ms is out of range")))
}

fn decimal(r: &SqliteRow, column: &str) -> Result<Decimal> {
    let text: String = r.try_get(column)?;
    Decimal::from_str(&text)
        .map_err(|e| Error::CorruptRow(format!("{column} {text:?} is not a decimal: {e}")))
}

fn optional_decimal(r: &SqliteRow, column: &str) -> Result<Option<Decimal>> {
    let text: Option<String> = r.try_get(column)?;
    text.map(|t| {
        Decimal::from_str(&t)
            .map_err(|e| Error::CorruptRow(format!("{column} {t:?} is not a decimal: {e}")))
    })
    .transpose()
}

fn candle_from_row(r: &SqliteRow) -> Result<Candle> {
    let symbol: String = r.try_get("symbol")?;
    let interval: String = r.try_get("interval")?;
    Ok(Candle {
        symbol: symbol
            .parse()
            .map_err(|e: crate::domain::InvalidSymbol| Error::CorruptRow(e.to_string()))?,
        interval: interval
            .parse()
            .map_err(|e: crate::domain::InvalidInterval| Error::CorruptRow(e.to_string()))?,
        open_time: millis(r.try_get("open_time")?)?,
        open: decimal(r, "open")?,
        high: decimal(r, "high")?,
        low: decimal(r, "low")?,
        close: decimal(r, "close")?,
        volume: decimal(r, "volume")?,
        quote_volume: optional_decimal(r, "quote_volume")?,
        trades: r.try_get("trades")?,
        taker_buy_base: optional_decimal(r, "taker_buy_base")?,
        taker_buy_quote: optional_decimal(r, "taker_buy_quote")?,
        close_time: millis(r.try_get("close_time")?)?,
        source: r.try_get("source")?,
    })
}

fn job_run_from_row(r: &SqliteRow) -> Result<JobRun> {
    let status: String = r.try_get("status")?;
    let finished: Option<i64> = r.try_get("finished_at")?;
    Ok(JobRun {
        id: r.try_get("id")?,
        job: r.try_get("job")?,
        started_at: millis(r.try_get("started_at")?)?,
        finished_at: finished.map(millis).transpose()?,
        status: status.parse::<JobStatus>()?,
        rows: r.try_get("rows")?,
        detail: r.try_get("detail")?,
        error: r.try_get("error")?,
    })
}
