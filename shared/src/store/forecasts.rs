//! `forecasts`: the forecast ledger. The forecast job appends the champion's forecast for each
//! closed candle; the API reads them back with the actual close of their target candle, once it
//! is stored, for the scorecard.
//!
//! Forecast values are `f64` in both backends (the model's own outputs, kept bit for bit); the
//! actual close comes from `candles` as the exact decimal. The target candle is the one that
//! opens one interval before `target_time` (the target's close time).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::FromRow;

use super::Store;
use super::columns::{PgDecimal, PgTime, SqliteDecimal, SqliteTime, StoredTime, optional_decimal};
use crate::domain::{Interval, Symbol};
use crate::error::{Error, Result};

/// Rows one PostgreSQL insert statement carries (as arrays): large enough that a statement's
/// round trip is negligible, small enough to keep its parameters a few MB.
const PG_INSERT_CHUNK: usize = 10_000;

/// One forecast of the ledger, as the forecast job writes it.
#[derive(Clone, Debug, PartialEq)]
pub struct ForecastRecord {
    /// Trading pair.
    pub symbol: Symbol,
    /// Kline interval.
    pub interval: Interval,
    /// Candles ahead.
    pub horizon: u32,
    /// Open time of the newest candle the forecast used.
    pub based_on: DateTime<Utc>,
    /// Close time of the target candle, `horizon` candles later.
    pub target_time: DateTime<Utc>,
    /// The forecast close.
    pub predicted: f64,
    /// Lower end of the forecast interval, when the model has one.
    pub lower: Option<f64>,
    /// Upper end of the forecast interval.
    pub upper: Option<f64>,
    /// The naive baseline's forecast: the close of `based_on`.
    pub baseline: f64,
    /// Registered model name.
    pub model_name: String,
    /// Model version.
    pub model_version: u64,
    /// The run that trained it.
    pub run_id: String,
    /// When the forecast was written.
    pub made_at: DateTime<Utc>,
}

/// A ledger forecast with the actual close of its target candle, when that is stored.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerForecast {
    /// The forecast.
    pub forecast: ForecastRecord,
    /// The target candle's close, exact; `None` until it is collected.
    pub actual: Option<Decimal>,
}

/// The forecasts of one series and horizon whose `based_on` lies in a range.
#[derive(Clone, Debug)]
pub struct ForecastQuery {
    /// Trading pair.
    pub symbol: Symbol,
    /// Kline interval.
    pub interval: Interval,
    /// Candles ahead.
    pub horizon: u32,
    /// Earliest `based_on`, inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Latest `based_on`, inclusive.
    pub to: Option<DateTime<Utc>>,
    /// Most rows returned (the newest).
    pub limit: i64,
}

/// A `forecasts` row joined with its target's close, times (`T`) and decimals (`D`) as the
/// backend stores them.
#[derive(FromRow)]
struct LedgerRow<T, D> {
    symbol: String,
    interval: String,
    horizon: i64,
    based_on: T,
    target_time: T,
    predicted: f64,
    lower: Option<f64>,
    upper: Option<f64>,
    baseline: f64,
    model_name: String,
    model_version: i64,
    run_id: String,
    made_at: T,
    actual: Option<D>,
}

impl<T: StoredTime, D: super::columns::StoredDecimal> TryFrom<LedgerRow<T, D>> for LedgerForecast {
    type Error = Error;

    fn try_from(row: LedgerRow<T, D>) -> Result<Self> {
        let corrupt = |what: &str, value: i64| Error::CorruptRow(format!("{what} {value}"));
        Ok(Self {
            forecast: ForecastRecord {
                symbol: row
                    .symbol
                    .parse()
                    .map_err(|e: crate::domain::InvalidSymbol| Error::CorruptRow(e.to_string()))?,
                interval: row
                    .interval
                    .parse()
                    .map_err(|e: crate::domain::InvalidInterval| {
                        Error::CorruptRow(e.to_string())
                    })?,
                horizon: u32::try_from(row.horizon)
                    .map_err(|_| corrupt("forecast horizon", row.horizon))?,
                based_on: row.based_on.into_time()?,
                target_time: row.target_time.into_time()?,
                predicted: row.predicted,
                lower: row.lower,
                upper: row.upper,
                baseline: row.baseline,
                model_name: row.model_name,
                model_version: u64::try_from(row.model_version)
                    .map_err(|_| corrupt("forecast model version", row.model_version))?,
                run_id: row.run_id,
                made_at: row.made_at.into_time()?,
            },
            actual: optional_decimal(row.actual, "actual close")?,
        })
    }
}

/// The ledger's columns with the target candle's close, for PostgreSQL (`f` the forecasts,
/// `c` the target candle).
const PG_LEDGER_COLUMNS: &str = "f.symbol, f.interval, f.horizon::BIGINT AS horizon, f.based_on, \
     f.target_time, f.predicted, f.lower, f.upper, f.baseline, f.model_name, f.model_version, \
     f.run_id, f.made_at, c.close AS actual";
/// The same for SQLite.
const SQLITE_LEDGER_COLUMNS: &str = "f.symbol, f.interval, f.horizon, f.based_on, \
     f.target_time, f.predicted, f.lower, f.upper, f.baseline, f.model_name, f.model_version, \
     f.run_id, f.made_at, c.close AS actual";

fn convert(rows: Vec<impl TryInto<LedgerForecast, Error = Error>>) -> Result<Vec<LedgerForecast>> {
    rows.into_iter().map(TryInto::try_into).collect()
}

impl Store {
    /// Appends forecasts in one transaction; a forecast already in the ledger (same series,
    /// horizon, `based_on` and model version) is left as it is. Returns the rows inserted.
    #[tracing::instrument(skip_all, fields(rows = forecasts.len()))]
    pub async fn insert_forecasts(&self, forecasts: &[ForecastRecord]) -> Result<u64> {
        if forecasts.is_empty() {
            return Ok(0);
        }
        let mut inserted = 0;
        match self {
            Self::Postgres(pg) => {
                let mut tx = pg.pool().begin().await?;
                for chunk in forecasts.chunks(PG_INSERT_CHUNK) {
                    let column = |f: fn(&ForecastRecord) -> String| -> Vec<String> {
                        chunk.iter().map(f).collect()
                    };
                    let times = |f: fn(&ForecastRecord) -> DateTime<Utc>| -> Vec<DateTime<Utc>> {
                        chunk.iter().map(f).collect()
                    };
                    let floats = |f: fn(&ForecastRecord) -> Option<f64>| -> Vec<Option<f64>> {
                        chunk.iter().map(f).collect()
                    };
                    let result = sqlx::query(
                        "INSERT INTO forecasts (symbol, interval, horizon, based_on, target_time, \
                         predicted, lower, upper, baseline, model_name, model_version, run_id, made_at) \
                         SELECT * FROM UNNEST($1::text[], $2::text[], $3::int[], $4::timestamptz[], \
                         $5::timestamptz[], $6::float8[], $7::float8[], $8::float8[], $9::float8[], \
                         $10::text[], $11::bigint[], $12::text[], $13::timestamptz[]) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(column(|f| f.symbol.to_string()))
                    .bind(column(|f| f.interval.as_str().to_owned()))
                    .bind(chunk.iter().map(|f| f.horizon as i32).collect::<Vec<i32>>())
                    .bind(times(|f| f.based_on))
                    .bind(times(|f| f.target_time))
                    .bind(chunk.iter().map(|f| f.predicted).collect::<Vec<f64>>())
                    .bind(floats(|f| f.lower))
                    .bind(floats(|f| f.upper))
                    .bind(chunk.iter().map(|f| f.baseline).collect::<Vec<f64>>())
                    .bind(column(|f| f.model_name.clone()))
                    .bind(
                        chunk
                            .iter()
                            .map(|f| f.model_version as i64)
                            .collect::<Vec<i64>>(),
                    )
                    .bind(column(|f| f.run_id.clone()))
                    .bind(times(|f| f.made_at))
                    .execute(&mut *tx)
                    .await?;
                    inserted += result.rows_affected();
                }
                tx.commit().await?;
            }
            Self::Sqlite(lite) => {
                let mut tx = lite.pool().begin().await?;
                for f in forecasts {
                    let result = sqlx::query(
                        "INSERT INTO forecasts (symbol, interval, horizon, based_on, target_time, \
                         predicted, lower, upper, baseline, model_name, model_version, run_id, made_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(f.symbol.as_str())
                    .bind(f.interval.as_str())
                    .bind(i64::from(f.horizon))
                    .bind(f.based_on.timestamp_millis())
                    .bind(f.target_time.timestamp_millis())
                    .bind(f.predicted)
                    .bind(f.lower)
                    .bind(f.upper)
                    .bind(f.baseline)
                    .bind(f.model_name.as_str())
                    .bind(f.model_version as i64)
                    .bind(f.run_id.as_str())
                    .bind(f.made_at.timestamp_millis())
                    .execute(&mut *tx)
                    .await?;
                    inserted += result.rows_affected();
                }
                tx.commit().await?;
            }
        }
        Ok(inserted)
    }

    /// The newest `based_on` in the ledger of a series and horizon, of any model version: where
    /// the forecast job goes on from.
    #[tracing::instrument(skip_all)]
    pub async fn newest_forecast_based_on(
        &self,
        symbol: &Symbol,
        interval: Interval,
        horizon: u32,
    ) -> Result<Option<DateTime<Utc>>> {
        match self {
            Self::Postgres(pg) => {
                let row: (Option<PgTime>,) = sqlx::query_as(
                    "SELECT MAX(based_on) FROM forecasts \
                     WHERE symbol = $1 AND interval = $2 AND horizon = $3",
                )
                .bind(symbol.as_str())
                .bind(interval.as_str())
                .bind(horizon as i32)
                .fetch_one(pg.pool())
                .await?;
                Ok(row.0)
            }
            Self::Sqlite(lite) => {
                let row: (Option<SqliteTime>,) = sqlx::query_as(
                    "SELECT MAX(based_on) FROM forecasts \
                     WHERE symbol = ?1 AND interval = ?2 AND horizon = ?3",
                )
                .bind(symbol.as_str())
                .bind(interval.as_str())
                .bind(i64::from(horizon))
                .fetch_one(lite.pool())
                .await?;
                row.0.map(StoredTime::into_time).transpose()
            }
        }
    }

    /// The newest `limit` forecasts a query selects, newest `based_on` first (then model
    /// version), each with its actual close when known.
    #[tracing::instrument(skip_all, fields(symbol = %q.symbol, interval = %q.interval))]
    pub async fn forecasts(&self, q: &ForecastQuery) -> Result<Vec<LedgerForecast>> {
        let step_ms = q.interval.duration_ms();
        match self {
            Self::Postgres(pg) => {
                let sql = format!(
                    "SELECT {PG_LEDGER_COLUMNS} FROM forecasts f LEFT JOIN candles c \
                     ON c.symbol = f.symbol AND c.interval = f.interval \
                     AND c.open_time = f.target_time - $4 * interval '1 millisecond' \
                     WHERE f.symbol = $1 AND f.interval = $2 AND f.horizon = $3 \
                     AND ($5::timestamptz IS NULL OR f.based_on >= $5) \
                     AND ($6::timestamptz IS NULL OR f.based_on <= $6) \
                     ORDER BY f.based_on DESC, f.model_version DESC LIMIT $7"
                );
                let rows: Vec<LedgerRow<PgTime, PgDecimal>> = sqlx::query_as(&sql)
                    .bind(q.symbol.as_str())
                    .bind(q.interval.as_str())
                    .bind(q.horizon as i32)
                    .bind(step_ms as f64)
                    .bind(q.from)
                    .bind(q.to)
                    .bind(q.limit)
                    .fetch_all(pg.pool())
                    .await?;
                convert(rows)
            }
            Self::Sqlite(lite) => {
                let sql = format!(
                    "SELECT {SQLITE_LEDGER_COLUMNS} FROM forecasts f LEFT JOIN candles c \
                     ON c.symbol = f.symbol AND c.interval = f.interval \
                     AND c.open_time = f.target_time - ?4 \
                     WHERE f.symbol = ?1 AND f.interval = ?2 AND f.horizon = ?3 \
                     AND (?5 IS NULL OR f.based_on >= ?5) AND (?6 IS NULL OR f.based_on <= ?6) \
                     ORDER BY f.based_on DESC, f.model_version DESC LIMIT ?7"
                );
                let rows: Vec<LedgerRow<SqliteTime, SqliteDecimal>> = sqlx::query_as(&sql)
                    .bind(q.symbol.as_str())
                    .bind(q.interval.as_str())
                    .bind(i64::from(q.horizon))
                    .bind(step_ms)
                    .bind(q.from.map(|t| t.timestamp_millis()))
                    .bind(q.to.map(|t| t.timestamp_millis()))
                    .bind(q.limit)
                    .fetch_all(lite.pool())
                    .await?;
                convert(rows)
            }
        }
    }

    /// The forecasts of a series and horizon whose target candle is stored and whose target
    /// time lies in `(after, until]`, oldest `based_on` first (then model version): what the
    /// scorecard scores.
    #[tracing::instrument(skip_all)]
    pub async fn scored_forecasts(
        &self,
        symbol: &Symbol,
        interval: Interval,
        horizon: u32,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<LedgerForecast>> {
        let step_ms = interval.duration_ms();
        match self {
            Self::Postgres(pg) => {
                let sql = format!(
                    "SELECT {PG_LEDGER_COLUMNS} FROM forecasts f JOIN candles c \
                     ON c.symbol = f.symbol AND c.interval = f.interval \
                     AND c.open_time = f.target_time - $4 * interval '1 millisecond' \
                     WHERE f.symbol = $1 AND f.interval = $2 AND f.horizon = $3 \
                     AND f.target_time > $5 AND f.target_time <= $6 \
                     ORDER BY f.based_on, f.model_version"
                );
                let rows: Vec<LedgerRow<PgTime, PgDecimal>> = sqlx::query_as(&sql)
                    .bind(symbol.as_str())
                    .bind(interval.as_str())
                    .bind(horizon as i32)
                    .bind(step_ms as f64)
                    .bind(after)
                    .bind(until)
                    .fetch_all(pg.pool())
                    .await?;
                convert(rows)
            }
            Self::Sqlite(lite) => {
                let sql = format!(
                    "SELECT {SQLITE_LEDGER_COLUMNS} FROM forecasts f JOIN candles c \
                     ON c.symbol = f.symbol AND c.interval = f.interval \
                     AND c.open_time = f.target_time - ?4 \
                     WHERE f.symbol = ?1 AND f.interval = ?2 AND f.horizon = ?3 \
                     AND f.target_time > ?5 AND f.target_time <= ?6 \
                     ORDER BY f.based_on, f.model_version"
                );
                let rows: Vec<LedgerRow<SqliteTime, SqliteDecimal>> = sqlx::query_as(&sql)
                    .bind(symbol.as_str())
                    .bind(interval.as_str())
                    .bind(i64::from(horizon))
                    .bind(step_ms)
                    .bind(after.timestamp_millis())
                    .bind(until.timestamp_millis())
                    .fetch_all(lite.pool())
                    .await?;
                convert(rows)
            }
        }
    }
}
