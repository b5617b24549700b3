//! PostgreSQL queries.

use std::collections::HashSet;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use rust_decimal::Decimal;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolCopyExt, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row};

use super::pg_binary::{
    CopyError, CopyRows, numeric_to_lake_decimal, numeric_to_string, timestamptz_to_millis,
};
use super::{
    ACQUIRE_TIMEOUT, AccessMode, CandleQuery, ChangeFilter, ChangedCandle, ChangedDay, Gap,
    JobLock, JobOutcome, JobRun, JobStatus, SeriesSummary, StoreOptions, StoredPrice, lock_key,
};
use crate::domain::{Candle, Interval, PricePoint, Symbol};
use crate::error::{Error, Result};
use crate::lake::candles::LakeCandle;

/// PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

/// A session-level advisory lock held on a dedicated connection.
#[derive(Debug)]
pub struct AdvisoryLock {
    conn: Option<PoolConnection<Postgres>>,
    key: i64,
}

impl AdvisoryLock {
    pub(super) async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(self.key)
                .execute(&mut *conn)
                .await;
            if unlocked.is_err() {
                // Closing the session releases the lock for certain.
                drop(conn.detach());
            }
        }
    }
}

impl Drop for AdvisoryLock {
    fn drop(&mut self) {
        // Not released explicitly: close the session rather than return a locked one to the pool.
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}

const CANDLE_COLUMNS: &str = "symbol, interval, open_time, open, high, low, close, volume, \
     quote_volume, trades, taker_buy_base, taker_buy_quote, close_time, source";

impl PgStore {
    pub(super) async fn connect(url: &str, options: StoreOptions) -> Result<Self> {
        let mut connect = PgConnectOptions::from_str(url).map_err(|e| {
            Error::config(format!("DATABASE_URL is not a valid PostgreSQL URL: {e}"))
        })?;
        if options.mode == AccessMode::ReadOnly {
            connect = connect.options([("default_transaction_read_only", "on")]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(connect);
        Ok(Self { pool })
    }

    /// The connection pool (for tests and tools).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(super) async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("../migrations/postgres")
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
        let mut tx = self.pool.begin().await?;
        let mut changed = 0;
        for series in candles.chunk_by(|a, b| a.symbol == b.symbol && a.interval == b.interval) {
            changed += upsert_series(&mut tx, series).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    pub(super) async fn last_open_time(
        &self,
        symbol: &Symbol,
        interval: Interval,
    ) -> Result<Option<DateTime<Utc>>> {
        let row: Option<(DateTime<Utc>,)> = sqlx::query_as(
            "SELECT open_time FROM candles WHERE symbol = $1 AND interval = $2 \
             ORDER BY open_time DESC LIMIT 1",
        )
        .bind(symbol.as_str())
        .bind(interval.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.0))
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
                    open_time: r.try_get("open_time")?,
                    close: r.try_get("close")?,
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
                    open_time: r.try_get("open_time")?,
                    close: r.try_get("close")?,
                    source: r.try_get("source")?,
                    ingested_at: r.try_get("ingested_at")?,
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
                    ingested_at: r.try_get("ingested_at")?,
                })
            })
            .collect()
    }

    /// `columns` of the candles a query selects, in its order, limit and offset.
    async fn range_rows(&self, q: &CandleQuery, columns: &str) -> Result<Vec<PgRow>> {
        let order = if q.newest_first { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {columns} FROM candles WHERE symbol = $1 AND interval = $2 \
             AND ($3::timestamptz IS NULL OR open_time >= $3) \
             AND ($4::timestamptz IS NULL OR open_time <= $4) \
             ORDER BY open_time {order} LIMIT $5 OFFSET $6"
        );
        Ok(sqlx::query(&sql)
            .bind(q.symbol.as_str())
            .bind(q.interval.as_str())
            .bind(q.from)
            .bind(q.to)
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
                    first_open_time: r.try_get("first")?,
                    last_open_time: r.try_get("last")?,
                })
            })
            .collect()
    }

    pub(super) async fn holes(
        &self,
        symbol: &Symbol,
        interval: Interval,
    ) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
        let step_ms = interval.duration_ms();
        let rows: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT open_time + make_interval(secs => $3::double precision / 1000), \
                    next_open - make_interval(secs => $3::double precision / 1000) \
             FROM (SELECT open_time, LEAD(open_time) OVER (ORDER BY open_time) AS next_open \
                   FROM candles WHERE symbol = $1 AND interval = $2) t \
             WHERE next_open - open_time > make_interval(secs => $3::double precision / 1000) \
             ORDER BY open_time",
        )
        .bind(symbol.as_str())
        .bind(interval.as_str())
        .bind(step_ms)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    pub(super) async fn known_gap_starts(
        &self,
        symbol: &Symbol,
        interval: Interval,
    ) -> Result<HashSet<DateTime<Utc>>> {
        let rows: Vec<(DateTime<Utc>,)> = sqlx::query_as(
            "SELECT gap_start FROM exchange_gaps WHERE symbol = $1 AND interval = $2",
        )
        .bind(symbol.as_str())
        .bind(interval.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    pub(super) async fn record_exchange_gap(&self, gap: &Gap) -> Result<()> {
        sqlx::query(
            "INSERT INTO exchange_gaps (symbol, interval, gap_start, gap_end) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (symbol, interval, gap_start) DO UPDATE SET gap_end = EXCLUDED.gap_end",
        )
        .bind(gap.symbol.as_str())
        .bind(gap.interval.as_str())
        .bind(gap.start)
        .bind(gap.end)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn start_job_run(&self, job: &str) -> Result<i64> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO job_runs (job, status) VALUES ($1, 'running') RETURNING id",
        )
        .bind(job)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    pub(super) async fn finish_job_run(&self, id: i64, outcome: &JobOutcome) -> Result<()> {
        sqlx::query(
            "UPDATE job_runs SET finished_at = now(), status = $2, rows = $3, detail = $4, \
             error = $5 WHERE id = $1",
        )
        .bind(id)
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
             WHERE ($1::text IS NULL OR job = $1) ORDER BY started_at DESC, id DESC LIMIT $2",
        )
        .bind(job)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_run_from_row).collect()
    }

    pub(super) async fn last_run_per_job(&self) -> Result<Vec<JobRun>> {
        let rows = sqlx::query(
            "SELECT DISTINCT ON (job) id, job, started_at, finished_at, status, rows, detail, error \
             FROM job_runs ORDER BY job, started_at DESC, id DESC",
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
        let row: Option<(DateTime<Utc>,)> = sqlx::query_as(
            "SELECT position FROM watermarks WHERE job = $1 AND symbol = $2 AND interval = $3",
        )
        .bind(job)
        .bind(symbol.as_str())
        .bind(interval.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.0))
    }

    pub(super) async fn set_watermark(
        &self,
        job: &str,
        symbol: &Symbol,
        interval: Interval,
        position: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO watermarks (job, symbol, interval, position) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (job, symbol, interval) \
             DO UPDATE SET position = EXCLUDED.position, updated_at = now()",
        )
        .bind(job)
        .bind(symbol.as_str())
        .bind(interval.as_str())
        .bind(position)
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
        // The day expression has statistics of its own (migration candles_day_statistics):
        // keep the two the same, or the planner sorts every candle of the series.
        let rows: Vec<(NaiveDate, i64, DateTime<Utc>)> = sqlx::query_as(
            "SELECT (open_time AT TIME ZONE 'UTC')::date AS day, COUNT(*), MAX(ingested_at) \
             FROM candles WHERE symbol = $1 AND interval = $2 \
             AND ($3::timestamptz IS NULL OR ingested_at > $3) \
             AND ($4::timestamptz IS NULL OR open_time >= $4) \
             AND ($5::timestamptz IS NULL OR open_time < $5) \
             GROUP BY day ORDER BY day",
        )
        .bind(symbol.as_str())
        .bind(interval.as_str())
        .bind(filter.ingested_after)
        .bind(filter.open_from)
        .bind(filter.open_before)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(date, rows, max_ingested_at)| ChangedDay {
                date,
                rows,
                max_ingested_at,
            })
            .collect())
    }

    pub(super) async fn database_now(&self) -> Result<DateTime<Utc>> {
        let (now,): (DateTime<Utc>,) = sqlx::query_as("SELECT now()").fetch_one(&self.pool).await?;
        Ok(now)
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
             WHERE symbol = $1 AND interval = $2 AND open_time >= $3 AND open_time < $4 \
             ORDER BY open_time",
        )
        .bind(symbol.as_str())
        .bind(interval.as_str())
        .bind(from)
        .bind(before)
        .fetch(&self.pool)
        .map_err(Error::from)
        .and_then(|row| std::future::ready(candle_from_row(&row)))
        .boxed()
    }

    /// A binary COPY rather than a query: PostgreSQL sends the rows as one stream, decoded here
    /// field by field without sqlx rows. COPY takes no bind parameters, so the values are
    /// written as literals: a validated symbol, an interval name and two UTC timestamps.
    pub(super) fn stream_lake_candles<'a>(
        &'a self,
        symbol: &'a Symbol,
        interval: Interval,
        from: DateTime<Utc>,
        before: DateTime<Utc>,
    ) -> BoxStream<'a, Result<LakeCandle>> {
        let statement = format!(
            "COPY (SELECT {LAKE_CANDLE_COLUMNS} FROM candles WHERE symbol = {} AND interval = {} \
             AND open_time >= {} AND open_time < {} ORDER BY open_time) TO STDOUT (FORMAT binary)",
            sql_literal(symbol.as_str()),
            sql_literal(interval.as_str()),
            timestamp_literal(from),
            timestamp_literal(before),
        );
        futures::stream::once(async move { self.pool.copy_out_raw(&statement).await })
            .map_ok(move |chunks| lake_candles_from_copy(chunks, symbol, interval))
            .map_err(Error::from)
            .try_flatten()
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
             FROM candles WHERE symbol = $1 AND interval = $2 \
             AND ($3::timestamptz IS NULL OR ingested_at > $3) ORDER BY open_time",
        )
        .bind(symbol.as_str())
        .bind(interval.as_str())
        .bind(ingested_after)
        .fetch(&self.pool)
        .map_err(Error::from)
        .and_then(|row| {
            std::future::ready(candle_from_row(&row).and_then(|candle| {
                Ok(ChangedCandle {
                    candle,
                    ingested_at: row.try_get("ingested_at")?,
                })
            }))
        })
        .boxed()
    }

    pub(super) async fn try_lock_job(&self, job: &str) -> Result<Option<JobLock>> {
        let key = lock_key(job);
        let mut conn = self.pool.acquire().await?;
        let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut *conn)
            .await?;
        Ok(locked.then(|| {
            JobLock::Postgres(AdvisoryLock {
                conn: Some(conn),
                key,
            })
        }))
    }
}

async fn upsert_series(tx: &mut sqlx::Transaction<'_, Postgres>, series: &[Candle]) -> Result<u64> {
    let Some(first) = series.first() else {
        return Ok(0);
    };
    let column = |f: fn(&Candle) -> Decimal| series.iter().map(f).collect::<Vec<_>>();
    let optional = |f: fn(&Candle) -> Option<Decimal>| series.iter().map(f).collect::<Vec<_>>();
    let result = sqlx::query(
        "INSERT INTO candles (symbol, interval, open_time, open, high, low, close, volume, \
             quote_volume, trades, taker_buy_base, taker_buy_quote, close_time, source) \
         SELECT $1, $2, * FROM UNNEST($3::timestamptz[], $4::numeric[], $5::numeric[], \
             $6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[], $10::int8[], \
             $11::numeric[], $12::numeric[], $13::timestamptz[], $14::text[]) \
         ON CONFLICT (symbol, interval, open_time) DO UPDATE SET \
             open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, \
             close = EXCLUDED.close, volume = EXCLUDED.volume, \
             quote_volume = EXCLUDED.quote_volume, trades = EXCLUDED.trades, \
             taker_buy_base = EXCLUDED.taker_buy_base, taker_buy_quote = EXCLUDED.taker_buy_quote, \
             close_time = EXCLUDED.close_time, source = EXCLUDED.source, ingested_at = now() \
         WHERE (candles.open::text, candles.high::text, candles.low::text, candles.close::text, \
                candles.volume::text, candles.quote_volume::text, candles.trades, \
                candles.taker_buy_base::text, candles.taker_buy_quote::text) \
           IS DISTINCT FROM \
               (EXCLUDED.open::text, EXCLUDED.high::text, EXCLUDED.low::text, EXCLUDED.close::text, \
                EXCLUDED.volume::text, EXCLUDED.quote_volume::text, EXCLUDED.trades, \
                EXCLUDED.taker_buy_base::text, EXCLUDED.taker_buy_quote::text)",
    )
    .bind(first.symbol.as_str())
    .bind(first.interval.as_str())
    .bind(series.iter().map(|c| c.open_time).collect::<Vec<_>>())
    .bind(column(|c| c.open))
    .bind(column(|c| c.high))
    .bind(column(|c| c.low))
    .bind(column(|c| c.close))
    .bind(column(|c| c.volume))
    .bind(optional(|c| c.quote_volume))
    .bind(series.iter().map(|c| c.trades).collect::<Vec<_>>())
    .bind(optional(|c| c.taker_buy_base))
    .bind(optional(|c| c.taker_buy_quote))
    .bind(series.iter().map(|c| c.close_time).collect::<Vec<_>>())
    .bind(series.iter().map(|c| c.source.as_str()).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(result.rows_affected())
}

fn candle_from_row(r: &PgRow) -> Result<Candle> {
    let symbol: String = r.try_get("symbol")?;
    let interval: String = r.try_get("interval")?;
    Ok(Candle {
        symbol: symbol
            .parse()
            .map_err(|e: crate::domain::InvalidSymbol| Error::CorruptRow(e.to_string()))?,
        interval: interval
            .parse()
            .map_err(|e: crate::domain::InvalidInterval| Error::CorruptRow(e.to_string()))?,
        open_time: r.try_get("open_time")?,
        open: r.try_get("open")?,
        high: r.try_get("high")?,
        low: r.try_get("low")?,
        close: r.try_get("close")?,
        volume: r.try_get("volume")?,
        quote_volume: r.try_get("quote_volume")?,
        trades: r.try_get("trades")?,
        taker_buy_base: r.try_get("taker_buy_base")?,
        taker_buy_quote: r.try_get("taker_buy_quote")?,
        close_time: r.try_get("close_time")?,
        source: r.try_get("source")?,
    })
}

/// Columns of [`PgStore::stream_lake_candles`], in [`LakeCandle`]'s order.
const LAKE_CANDLE_COLUMNS: &str = "open_time, open, high, low, close, volume, close_time, \
     quote_volume, trades, taker_buy_base, taker_buy_quote";
/// Number of [`LAKE_CANDLE_COLUMNS`].
const LAKE_CANDLE_FIELDS: usize = 11;

impl From<CopyError> for Error {
    fn from(e: CopyError) -> Self {
        Self::CorruptRow(e.0)
    }
}

/// A text literal, quotes doubled.
fn sql_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A UTC timestamp literal with microseconds, PostgreSQL's precision.
fn timestamp_literal(at: DateTime<Utc>) -> String {
    format!("'{}'::timestamptz", at.format("%Y-%m-%dT%H:%M:%S%.6fZ"))
}

/// The candles of a binary COPY of [`LAKE_CANDLE_COLUMNS`], one per row.
fn lake_candles_from_copy<'a>(
    chunks: BoxStream<'static, sqlx::Result<bytes::Bytes>>,
    symbol: &'a Symbol,
    interval: Interval,
) -> BoxStream<'a, Result<LakeCandle>> {
    let rows = CopyRows::<LAKE_CANDLE_FIELDS>::default();
    futures::stream::try_unfold((chunks, rows), move |(mut chunks, mut rows)| async move {
        loop {
            let candle =
                rows.next_row(|fields| lake_candle_from_fields(fields, symbol, interval))?;
            if let Some(candle) = candle {
                return Ok(Some((candle, (chunks, rows))));
            }
            match chunks.try_next().await? {
                Some(chunk) => rows.push(&chunk),
                None => {
                    rows.finish()?;
                    return Ok(None);
                }
            }
        }
    })
    .boxed()
}

/// One row of [`LAKE_CANDLE_COLUMNS`] from its binary fields; a value that is not exact at the
/// lake's scale is an error naming the series, candle and column.
fn lake_candle_from_fields(
    fields: [Option<&[u8]>; LAKE_CANDLE_FIELDS],
    symbol: &Symbol,
    interval: Interval,
) -> Result<LakeCandle> {
    let required = |index: usize, column: &'static str| {
        fields[index].ok_or_else(|| Error::CorruptRow(format!("{column} is NULL")))
    };
    let time = |index: usize, column: &'static str| {
        timestamptz_to_millis(required(index, column)?)
            .ok_or_else(|| Error::CorruptRow(format!("{column} is out of range")))
    };
    let open_time = time(0, "open_time")?;
    let decimal = |column: &'static str, bytes: &[u8]| {
        numeric_to_lake_decimal(bytes).map_err(|e| Error::InexactValue {
            series: format!("{symbol} {interval}"),
            open_time: DateTime::from_timestamp_millis(open_time)
                .map_or_else(|| format!("{open_time} ms"), |t| t.to_rfc3339()),
            column,
            value: numeric_to_string(bytes),
            reason: e.reason(),
        })
    };
    let exact = |index, column| decimal(column, required(index, column)?);
    let optional = |index: usize, column| fields[index].map(|b| decimal(column, b)).transpose();
    let trades = fields[8]
        .map(|b| {
            b.try_into()
                .map(i64::from_be_bytes)
                .map_err(|_| Error::CorruptRow("trades is not an int8".into()))
        })
        .transpose()?;
    Ok(LakeCandle {
        open_time,
        open: exact(1, "open")?,
        high: exact(2, "high")?,
        low: exact(3, "low")?,
        close: exact(4, "close")?,
        volume: exact(5, "volume")?,
        close_time: time(6, "close_time")?,
        quote_volume: optional(7, "quote_volume")?,
        trades,
        taker_buy_base: optional(9, "taker_buy_base")?,
        taker_buy_quote: optional(10, "taker_buy_quote")?,
    })
}

fn job_run_from_row(r: &PgRow) -> Result<JobRun> {
    let status: String = r.try_get("status")?;
    Ok(JobRun {
        id: r.try_get("id")?,
        job: r.try_get("job")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        status: status.parse::<JobStatus>()?,
        rows: r.try_get("rows")?,
        detail: r.try_get("detail")?,
        error: r.try_get("error")?,
    })
}
