//! Missing candles: holes in a stored series and `exchange_gaps`, the holes the exchange itself
//! has no data for.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Store;
use super::columns::{PgTime, SqliteTime, millis};
use crate::domain::{Interval, Symbol};
use crate::error::Result;

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

impl Store {
    /// Missing ranges inside the stored range of a series, with known exchange gaps flagged.
    #[tracing::instrument(skip_all)]
    pub async fn gaps(&self, symbol: &Symbol, interval: Interval) -> Result<Vec<Gap>> {
        if interval == Interval::Mo1 {
            // Months differ in length; a month series has no fixed step to test against.
            return Ok(Vec::new());
        }
        let holes = self.holes(symbol, interval).await?;
        let known = self.known_gap_starts(symbol, interval).await?;
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

    /// The first and last missing open time of each hole between stored candles of a series.
    async fn holes(
        &self,
        symbol: &Symbol,
        interval: Interval,
    ) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
        let step_ms = interval.duration_ms();
        match self {
            Self::Postgres(pg) => {
                let rows: Vec<(PgTime, PgTime)> = sqlx::query_as(
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
                .fetch_all(pg.pool())
                .await?;
                Ok(rows)
            }
            Self::Sqlite(lite) => {
                let rows: Vec<(SqliteTime, SqliteTime)> = sqlx::query_as(
                    "SELECT open_time + ?3, next_open - ?3 \
                     FROM (SELECT open_time, LEAD(open_time) OVER (ORDER BY open_time) AS next_open \
                           FROM candles WHERE symbol = ?1 AND interval = ?2) \
                     WHERE next_open - open_time > ?3 ORDER BY open_time",
                )
                .bind(symbol.as_str())
                .bind(interval.as_str())
                .bind(step_ms)
                .fetch_all(lite.pool())
                .await?;
                rows.into_iter()
                    .map(|(start, end)| Ok((millis(start)?, millis(end)?)))
                    .collect()
            }
        }
    }

    /// Start times of the recorded exchange gaps of a series.
    async fn known_gap_starts(
        &self,
        symbol: &Symbol,
        interval: Interval,
    ) -> Result<HashSet<DateTime<Utc>>> {
        match self {
            Self::Postgres(pg) => {
                let rows: Vec<(PgTime,)> = sqlx::query_as(
                    "SELECT gap_start FROM exchange_gaps WHERE symbol = $1 AND interval = $2",
                )
                .bind(symbol.as_str())
                .bind(interval.as_str())
                .fetch_all(pg.pool())
                .await?;
                Ok(rows.into_iter().map(|r| r.0).collect())
            }
            Self::Sqlite(lite) => {
                let rows: Vec<(SqliteTime,)> = sqlx::query_as(
                    "SELECT gap_start FROM exchange_gaps WHERE symbol = ?1 AND interval = ?2",
                )
                .bind(symbol.as_str())
                .bind(interval.as_str())
                .fetch_all(lite.pool())
                .await?;
                rows.into_iter().map(|r| millis(r.0)).collect()
            }
        }
    }

    /// Records that the exchange has no data for a gap, so it is not re-fetched.
    #[tracing::instrument(skip_all)]
    pub async fn record_exchange_gap(&self, gap: &Gap) -> Result<()> {
        match self {
            Self::Postgres(pg) => {
                sqlx::query(
                    "INSERT INTO exchange_gaps (symbol, interval, gap_start, gap_end) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (symbol, interval, gap_start) \
                     DO UPDATE SET gap_end = EXCLUDED.gap_end",
                )
                .bind(gap.symbol.as_str())
                .bind(gap.interval.as_str())
                .bind(gap.start)
                .bind(gap.end)
                .execute(pg.pool())
                .await?;
            }
            Self::Sqlite(lite) => {
                sqlx::query(
                    "INSERT INTO exchange_gaps (symbol, interval, gap_start, gap_end, detected_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (symbol, interval, gap_start) \
                     DO UPDATE SET gap_end = excluded.gap_end",
                )
                .bind(gap.symbol.as_str())
                .bind(gap.interval.as_str())
                .bind(gap.start.timestamp_millis())
                .bind(gap.end.timestamp_millis())
                .bind(Utc::now().timestamp_millis())
                .execute(lite.pool())
                .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
