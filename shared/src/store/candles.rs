//! `candles`: writing batches, reading ranges, prices and per-day changes, streaming series.

use chrono::{DateTime, NaiveDate, Utc};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{FromRow, Postgres};

use super::Store;
use super::columns::{
    PgDecimal, PgTime, SqliteDecimal, SqliteTime, StoredDecimal, StoredTime, millis,
    optional_decimal,
};
use super::pg_binary::CopyWriter;
use crate::domain::{Candle, Interval, PricePoint, Symbol};
use crate::error::{Error, Result};

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

impl CandleQuery {
    /// The query selecting the newest candle of a series.
    fn newest(symbol: &Symbol, interval: Interval) -> Self {
        Self {
            symbol: symbol.clone(),
            interval,
            from: None,
            to: None,
            limit: 1,
            offset: 0,
            newest_first: true,
        }
    }
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

/// Columns of [`CandleRow`], in the table's order.
const CANDLE_COLUMNS: &str = "symbol, interval, open_time, open, high, low, close, volume, \
     quote_volume, trades, taker_buy_base, taker_buy_quote, close_time, source";
/// Columns of [`ChangedCandleRow`].
const CHANGED_CANDLE_COLUMNS: &str = "symbol, interval, open_time, open, high, low, close, \
     volume, quote_volume, trades, taker_buy_base, taker_buy_quote, close_time, source, \
     ingested_at";
/// Columns of [`PriceRow`].
const PRICE_COLUMNS: &str = "open_time, close";
/// Columns of [`StoredPriceRow`].
const STORED_PRICE_COLUMNS: &str = "open_time, close, source, ingested_at";

/// A `candles` row with times (`T`) and decimals (`D`) as the backend stores them.
#[derive(FromRow)]
struct CandleRow<T, D> {
    symbol: String,
    interval: String,
    open_time: T,
    open: D,
    high: D,
    low: D,
    close: D,
    volume: D,
    quote_volume: Option<D>,
    trades: Option<i64>,
    taker_buy_base: Option<D>,
    taker_buy_quote: Option<D>,
    close_time: T,
    source: String,
}

impl<T: StoredTime, D: StoredDecimal> TryFrom<CandleRow<T, D>> for Candle {
    type Error = Error;

    fn try_from(row: CandleRow<T, D>) -> Result<Self> {
        Ok(Self {
            symbol: row
                .symbol
                .parse()
                .map_err(|e: crate::domain::InvalidSymbol| Error::CorruptRow(e.to_string()))?,
            interval: row
                .interval
                .parse()
                .map_err(|e: crate::domain::InvalidInterval| Error::CorruptRow(e.to_string()))?,
            open_time: row.open_time.into_time()?,
            open: row.open.into_decimal("open")?,
            high: row.high.into_decimal("high")?,
            low: row.low.into_decimal("low")?,
            close: row.close.into_decimal("close")?,
            volume: row.volume.into_decimal("volume")?,
            quote_volume: optional_decimal(row.quote_volume, "quote_volume")?,
            trades: row.trades,
            taker_buy_base: optional_decimal(row.taker_buy_base, "taker_buy_base")?,
            taker_buy_quote: optional_decimal(row.taker_buy_quote, "taker_buy_quote")?,
            close_time: row.close_time.into_time()?,
            source: row.source,
        })
    }
}

/// A `candles` row with its `ingested_at`.
#[derive(FromRow)]
struct ChangedCandleRow<T, D> {
    #[sqlx(flatten)]
    candle: CandleRow<T, D>,
    ingested_at: T,
}

impl<T: StoredTime, D: StoredDecimal> TryFrom<ChangedCandleRow<T, D>> for ChangedCandle {
    type Error = Error;

    fn try_from(row: ChangedCandleRow<T, D>) -> Result<Self> {
        Ok(Self {
            candle: row.candle.try_into()?,
            ingested_at: row.ingested_at.into_time()?,
        })
    }
}

/// An open time and close.
#[derive(FromRow)]
struct PriceRow<T, D> {
    open_time: T,
    close: D,
}

impl<T: StoredTime, D: StoredDecimal> TryFrom<PriceRow<T, D>> for PricePoint {
    type Error = Error;

    fn try_from(row: PriceRow<T, D>) -> Result<Self> {
        Ok(Self {
            open_time: row.open_time.into_time()?,
            close: row.close.into_decimal("close")?,
        })
    }
}

/// A close with its candle's `source` and `ingested_at`.
#[derive(FromRow)]
struct StoredPriceRow<T, D> {
    #[sqlx(flatten)]
    price: PriceRow<T, D>,
    source: String,
    ingested_at: T,
}

impl<T: StoredTime, D: StoredDecimal> TryFrom<StoredPriceRow<T, D>> for StoredPrice {
    type Error = Error;

    fn try_from(row: StoredPriceRow<T, D>) -> Result<Self> {
        let PricePoint { open_time, close } = row.price.try_into()?;
        Ok(Self {
            open_time,
            close,
            source: row.source,
            ingested_at: row.ingested_at.into_time()?,
        })
    }
}

/// One series' size and time range.
#[derive(FromRow)]
struct SeriesRow<T> {
    symbol: String,
    interval: String,
    candles: i64,
    first: T,
    last: T,
}

impl<T: StoredTime> TryFrom<SeriesRow<T>> for SeriesSummary {
    type Error = Error;

    fn try_from(row: SeriesRow<T>) -> Result<Self> {
        Ok(Self {
            symbol: row.symbol,
            interval: row.interval,
            candles: row.candles,
            first_open_time: row.first.into_time()?,
            last_open_time: row.last.into_time()?,
        })
    }
}

/// Every row converted, or the first error.
fn convert<R, T: TryFrom<R, Error = Error>>(rows: Vec<R>) -> Result<Vec<T>> {
    rows.into_iter().map(T::try_from).collect()
}

/// `columns` of the PostgreSQL candles a query selects, in its order, limit and offset.
async fn pg_range<R>(pool: &PgPool, q: &CandleQuery, columns: &str) -> Result<Vec<R>>
where
    R: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let order = if q.newest_first { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT {columns} FROM candles WHERE symbol = $1 AND interval = $2 \
         AND ($3::timestamptz IS NULL OR open_time >= $3) \
         AND ($4::timestamptz IS NULL OR open_time <= $4) \
         ORDER BY open_time {order} LIMIT $5 OFFSET $6"
    );
    Ok(sqlx::query_as(&sql)
        .bind(q.symbol.as_str())
        .bind(q.interval.as_str())
        .bind(q.from)
        .bind(q.to)
        .bind(q.limit)
        .bind(q.offset)
        .fetch_all(pool)
        .await?)
}

/// `columns` of the SQLite candles a query selects, in its order, limit and offset.
async fn sqlite_range<R>(pool: &SqlitePool, q: &CandleQuery, columns: &str) -> Result<Vec<R>>
where
    R: for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
{
    let order = if q.newest_first { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT {columns} FROM candles WHERE symbol = ?1 AND interval = ?2 \
         AND (?3 IS NULL OR open_time >= ?3) AND (?4 IS NULL OR open_time <= ?4) \
         ORDER BY open_time {order} LIMIT ?5 OFFSET ?6"
    );
    Ok(sqlx::query_as(&sql)
        .bind(q.symbol.as_str())
        .bind(q.interval.as_str())
        .bind(q.from.map(|t| t.timestamp_millis()))
        .bind(q.to.map(|t| t.timestamp_millis()))
        .bind(q.limit)
        .bind(q.offset)
        .fetch_all(pool)
        .await?)
}

/// The rows a query selects from either backend, converted: `$pg` and `$lite` are the row types.
macro_rules! range {
    ($store:expr, $q:expr, $columns:expr, $pg:ty, $lite:ty) => {
        match $store {
            Store::Postgres(pg) => convert(pg_range::<$pg>(pg.pool(), $q, $columns).await?),
            Store::Sqlite(lite) => convert(sqlite_range::<$lite>(lite.pool(), $q, $columns).await?),
        }
    };
}

impl Store {
    /// Inserts or updates a batch of candles in one transaction; returns rows inserted or changed.
    #[tracing::instrument(skip_all, fields(rows = candles.len()))]
    pub async fn upsert_candles(&self, candles: &[Candle]) -> Result<u64> {
        if candles.is_empty() {
            return Ok(0);
        }
        match self {
            Self::Postgres(pg) => {
                let mut tx = pg.pool().begin().await?;
                let mut changed = 0;
                for series in
                    candles.chunk_by(|a, b| a.symbol == b.symbol && a.interval == b.interval)
                {
                    changed += pg_upsert_series(&mut tx, series).await?;
                }
                tx.commit().await?;
                Ok(changed)
            }
            Self::Sqlite(lite) => {
                let now = Utc::now().timestamp_millis();
                let mut tx = lite.pool().begin().await?;
                let mut changed = 0;
                for c in candles {
                    changed += sqlite_upsert(&mut tx, c, now).await?;
                }
                tx.commit().await?;
                Ok(changed)
            }
        }
    }

    /// Like [`Store::upsert_candles`], for long backfills: on PostgreSQL the batch goes through
    /// a binary `COPY` into a staging table dropped at commit, then one upsert from staging into
    /// `candles` (same rules, same count); all in one transaction, so the batch is stored whole
    /// or not at all. SQLite keeps its batched inserts.
    #[tracing::instrument(skip_all, fields(rows = candles.len()))]
    pub async fn upsert_candles_bulk(&self, candles: &[Candle]) -> Result<u64> {
        match self {
            Self::Postgres(pg) if !candles.is_empty() => {
                let mut tx = pg.pool().begin().await?;
                let changed = pg_copy_upsert(&mut tx, candles).await?;
                tx.commit().await?;
                Ok(changed)
            }
            _ => self.upsert_candles(candles).await,
        }
    }

    /// Open time of the newest stored candle of a series.
    #[tracing::instrument(skip_all)]
    pub async fn last_open_time(
        &self,
        symbol: &Symbol,
        interval: Interval,
    ) -> Result<Option<DateTime<Utc>>> {
        match self {
            Self::Postgres(pg) => {
                let row: Option<(PgTime,)> = sqlx::query_as(
                    "SELECT open_time FROM candles WHERE symbol = $1 AND interval = $2 \
                     ORDER BY open_time DESC LIMIT 1",
                )
                .bind(symbol.as_str())
                .bind(interval.as_str())
                .fetch_optional(pg.pool())
                .await?;
                Ok(row.map(|r| r.0))
            }
            Self::Sqlite(lite) => {
                let row: Option<(SqliteTime,)> = sqlx::query_as(
                    "SELECT open_time FROM candles WHERE symbol = ?1 AND interval = ?2 \
                     ORDER BY open_time DESC LIMIT 1",
                )
                .bind(symbol.as_str())
                .bind(interval.as_str())
                .fetch_optional(lite.pool())
                .await?;
                row.map(|r| millis(r.0)).transpose()
            }
        }
    }

    /// How many candles of a series opened in `(after, until]` (from the first when `after` is
    /// `None`).
    #[tracing::instrument(skip_all)]
    pub async fn count_candles(
        &self,
        symbol: &Symbol,
        interval: Interval,
        after: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
    ) -> Result<u64> {
        let count: i64 = match self {
            Self::Postgres(pg) => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM candles WHERE symbol = $1 AND interval = $2 \
                     AND ($3::timestamptz IS NULL OR open_time > $3) AND open_time <= $4",
                )
                .bind(symbol.as_str())
                .bind(interval.as_str())
                .bind(after)
                .bind(until)
                .fetch_one(pg.pool())
                .await?
            }
            Self::Sqlite(lite) => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM candles WHERE symbol = ?1 AND interval = ?2 \
                     AND (?3 IS NULL OR open_time > ?3) AND open_time <= ?4",
                )
                .bind(symbol.as_str())
                .bind(interval.as_str())
                .bind(after.map(|t| t.timestamp_millis()))
                .bind(until.timestamp_millis())
                .fetch_one(lite.pool())
                .await?
            }
        };
        Ok(count.max(0) as u64)
    }

    /// Candles matching a query.
    #[tracing::instrument(skip_all, fields(symbol = %q.symbol, interval = %q.interval))]
    pub async fn candles(&self, q: &CandleQuery) -> Result<Vec<Candle>> {
        range!(
            self,
            q,
            CANDLE_COLUMNS,
            CandleRow<PgTime, PgDecimal>,
            CandleRow<SqliteTime, SqliteDecimal>
        )
    }

    /// Open times and closes matching a query: far cheaper than whole candles for price queries.
    #[tracing::instrument(skip_all, fields(symbol = %q.symbol, interval = %q.interval))]
    pub async fn closes(&self, q: &CandleQuery) -> Result<Vec<PricePoint>> {
        range!(
            self,
            q,
            PRICE_COLUMNS,
            PriceRow<PgTime, PgDecimal>,
            PriceRow<SqliteTime, SqliteDecimal>
        )
    }

    /// Closes matching a query with their candles' `source` and `ingested_at`.
    #[tracing::instrument(skip_all, fields(symbol = %q.symbol, interval = %q.interval))]
    pub async fn stored_prices(&self, q: &CandleQuery) -> Result<Vec<StoredPrice>> {
        range!(
            self,
            q,
            STORED_PRICE_COLUMNS,
            StoredPriceRow<PgTime, PgDecimal>,
            StoredPriceRow<SqliteTime, SqliteDecimal>
        )
    }

    /// Candles matching a query, each with its `ingested_at`.
    #[tracing::instrument(skip_all, fields(symbol = %q.symbol, interval = %q.interval))]
    async fn changed_candles(&self, q: &CandleQuery) -> Result<Vec<ChangedCandle>> {
        range!(
            self,
            q,
            CHANGED_CANDLE_COLUMNS,
            ChangedCandleRow<PgTime, PgDecimal>,
            ChangedCandleRow<SqliteTime, SqliteDecimal>
        )
    }

    /// The newest candle of a series.
    pub async fn latest_candle(
        &self,
        symbol: &Symbol,
        interval: Interval,
    ) -> Result<Option<Candle>> {
        Ok(self
            .candles(&CandleQuery::newest(symbol, interval))
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
        let candles = self
            .changed_candles(&CandleQuery::newest(symbol, interval))
            .await?;
        Ok(candles.into_iter().next())
    }

    /// The symbols with candles stored, sorted: one index probe per symbol (a loose scan of
    /// the primary key's leading column), not a pass over every candle.
    #[tracing::instrument(skip_all)]
    pub async fn stored_symbols(&self) -> Result<Vec<Symbol>> {
        const SQL: &str = "WITH RECURSIVE stored(symbol) AS ( \
                 SELECT MIN(symbol) FROM candles \
                 UNION ALL \
                 SELECT (SELECT MIN(symbol) FROM candles WHERE symbol > stored.symbol) \
                 FROM stored WHERE stored.symbol IS NOT NULL) \
             SELECT symbol FROM stored WHERE symbol IS NOT NULL";
        let names: Vec<(String,)> = match self {
            Self::Postgres(pg) => sqlx::query_as(SQL).fetch_all(pg.pool()).await?,
            Self::Sqlite(lite) => sqlx::query_as(SQL).fetch_all(lite.pool()).await?,
        };
        Ok(names
            .into_iter()
            .filter_map(|(name,)| name.parse().ok())
            .collect())
    }

    /// Every stored series with its size and time range.
    #[tracing::instrument(skip_all)]
    pub async fn series(&self) -> Result<Vec<SeriesSummary>> {
        const SQL: &str = "SELECT symbol, interval, COUNT(*) AS candles, MIN(open_time) AS first, \
             MAX(open_time) AS last FROM candles GROUP BY symbol, interval ORDER BY symbol, interval";
        match self {
            Self::Postgres(pg) => convert(
                sqlx::query_as::<_, SeriesRow<PgTime>>(SQL)
                    .fetch_all(pg.pool())
                    .await?,
            ),
            Self::Sqlite(lite) => convert(
                sqlx::query_as::<_, SeriesRow<SqliteTime>>(SQL)
                    .fetch_all(lite.pool())
                    .await?,
            ),
        }
    }

    /// The UTC days of a series holding candles that match `filter`, oldest first.
    #[tracing::instrument(skip_all, fields(symbol = %symbol, interval = %interval))]
    pub async fn changed_days(
        &self,
        symbol: &Symbol,
        interval: Interval,
        filter: &ChangeFilter,
    ) -> Result<Vec<ChangedDay>> {
        match self {
            Self::Postgres(pg) => {
                // The day expression has statistics of its own (migration
                // candles_day_statistics): keep the two the same, or the planner sorts every
                // candle of the series.
                let rows: Vec<(NaiveDate, i64, PgTime)> = sqlx::query_as(
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
                .fetch_all(pg.pool())
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
            Self::Sqlite(lite) => {
                let ms = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_millis());
                let rows: Vec<(i64, i64, SqliteTime)> = sqlx::query_as(
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
                .fetch_all(lite.pool())
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
        }
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
        match self {
            Self::Postgres(pg) => sqlx::query_as::<_, CandleRow<PgTime, PgDecimal>>(
                "SELECT symbol, interval, open_time, open, high, low, close, volume, \
                 quote_volume, trades, taker_buy_base, taker_buy_quote, close_time, source \
                 FROM candles WHERE symbol = $1 AND interval = $2 AND open_time >= $3 \
                 AND open_time < $4 ORDER BY open_time",
            )
            .bind(symbol.as_str())
            .bind(interval.as_str())
            .bind(from)
            .bind(before)
            .fetch(pg.pool())
            .map_err(Error::from)
            .and_then(|row| std::future::ready(row.try_into()))
            .boxed(),
            Self::Sqlite(lite) => sqlx::query_as::<_, CandleRow<SqliteTime, SqliteDecimal>>(
                "SELECT symbol, interval, open_time, open, high, low, close, volume, \
                 quote_volume, trades, taker_buy_base, taker_buy_quote, close_time, source \
                 FROM candles WHERE symbol = ?1 AND interval = ?2 AND open_time >= ?3 \
                 AND open_time < ?4 ORDER BY open_time",
            )
            .bind(symbol.as_str())
            .bind(interval.as_str())
            .bind(from.timestamp_millis())
            .bind(before.timestamp_millis())
            .fetch(lite.pool())
            .map_err(Error::from)
            .and_then(|row| std::future::ready(row.try_into()))
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
        match self {
            Self::Postgres(pg) => sqlx::query_as::<_, ChangedCandleRow<PgTime, PgDecimal>>(
                "SELECT symbol, interval, open_time, open, high, low, close, volume, \
                 quote_volume, trades, taker_buy_base, taker_buy_quote, close_time, source, \
                 ingested_at FROM candles WHERE symbol = $1 AND interval = $2 \
                 AND ($3::timestamptz IS NULL OR ingested_at > $3) ORDER BY open_time",
            )
            .bind(symbol.as_str())
            .bind(interval.as_str())
            .bind(ingested_after)
            .fetch(pg.pool())
            .map_err(Error::from)
            .and_then(|row| std::future::ready(row.try_into()))
            .boxed(),
            Self::Sqlite(lite) => sqlx::query_as::<_, ChangedCandleRow<SqliteTime, SqliteDecimal>>(
                "SELECT symbol, interval, open_time, open, high, low, close, volume, \
                     quote_volume, trades, taker_buy_base, taker_buy_quote, close_time, source, \
                     ingested_at FROM candles WHERE symbol = ?1 AND interval = ?2 \
                     AND (?3 IS NULL OR ingested_at > ?3) ORDER BY open_time",
            )
            .bind(symbol.as_str())
            .bind(interval.as_str())
            .bind(ingested_after.map(|t| t.timestamp_millis()))
            .fetch(lite.pool())
            .map_err(Error::from)
            .and_then(|row| std::future::ready(row.try_into()))
            .boxed(),
        }
    }
}

/// Upserts one series' candles in one statement (arrays unnested); returns rows changed.
async fn pg_upsert_series(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    series: &[Candle],
) -> Result<u64> {
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

/// Bytes of COPY data buffered before they are sent: large enough to keep round trips few,
/// small enough that a month of candles is never held twice in memory.
const COPY_CHUNK_BYTES: usize = 1 << 20;
/// Fields of a staging row: every `candles` column but `ingested_at`.
const STAGING_FIELDS: i16 = 14;

/// Copies `candles` into a staging table (binary COPY) and upserts them from there into
/// `candles` in one statement; returns rows inserted or changed, as [`pg_upsert_series`].
async fn pg_copy_upsert(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    candles: &[Candle],
) -> Result<u64> {
    sqlx::query(
        "CREATE TEMP TABLE candles_staging (LIKE candles INCLUDING DEFAULTS) ON COMMIT DROP",
    )
    .execute(&mut **tx)
    .await?;
    let mut copy = tx
        .copy_in_raw(
            "COPY candles_staging (symbol, interval, open_time, open, high, low, close, volume, \
                 quote_volume, trades, taker_buy_base, taker_buy_quote, close_time, source) \
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let mut rows = CopyWriter::new();
    for c in candles {
        rows.row(STAGING_FIELDS);
        rows.text(c.symbol.as_str());
        rows.text(c.interval.as_str());
        rows.timestamptz(c.open_time);
        rows.numeric(c.open);
        rows.numeric(c.high);
        rows.numeric(c.low);
        rows.numeric(c.close);
        rows.numeric(c.volume);
        rows.optional_numeric(c.quote_volume);
        rows.int8(c.trades);
        rows.optional_numeric(c.taker_buy_base);
        rows.optional_numeric(c.taker_buy_quote);
        rows.timestamptz(c.close_time);
        rows.text(c.source.as_str());
        if rows.buffered() >= COPY_CHUNK_BYTES {
            copy.send(rows.take()).await?;
        }
    }
    copy.send(rows.finish()).await?;
    copy.finish().await?;
    let result = sqlx::query(
        "INSERT INTO candles (symbol, interval, open_time, open, high, low, close, volume, \
             quote_volume, trades, taker_buy_base, taker_buy_quote, close_time, source) \
         SELECT symbol, interval, open_time, open, high, low, close, volume, quote_volume, \
             trades, taker_buy_base, taker_buy_quote, close_time, source FROM candles_staging \
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
    .execute(&mut **tx)
    .await?;
    Ok(result.rows_affected())
}

/// Upserts one candle stamped `now_ms`, decimals as their exact text; returns rows changed.
async fn sqlite_upsert(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    c: &Candle,
    now_ms: i64,
) -> Result<u64> {
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
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(result.rows_affected())
}
