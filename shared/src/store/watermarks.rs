//! `watermarks`: how far a job has got in each series.

use chrono::{DateTime, Utc};

use super::Store;
use super::columns::{PgTime, SqliteTime, millis};
use crate::domain::{Interval, Symbol};
use crate::error::Result;

impl Store {
    /// The position a job has reached in a series (the export's newest exported `ingested_at`).
    #[tracing::instrument(skip_all)]
    pub async fn watermark(
        &self,
        job: &str,
        symbol: &Symbol,
        interval: Interval,
    ) -> Result<Option<DateTime<Utc>>> {
        match self {
            Self::Postgres(pg) => {
                let row: Option<(PgTime,)> = sqlx::query_as(
                    "SELECT position FROM watermarks WHERE job = $1 AND symbol = $2 AND interval = $3",
                )
                .bind(job)
                .bind(symbol.as_str())
                .bind(interval.as_str())
                .fetch_optional(pg.pool())
                .await?;
                Ok(row.map(|r| r.0))
            }
            Self::Sqlite(lite) => {
                let row: Option<(SqliteTime,)> = sqlx::query_as(
                    "SELECT position FROM watermarks WHERE job = ?1 AND symbol = ?2 AND interval = ?3",
                )
                .bind(job)
                .bind(symbol.as_str())
                .bind(interval.as_str())
                .fetch_optional(lite.pool())
                .await?;
                row.map(|r| millis(r.0)).transpose()
            }
        }
    }

    /// Moves a job's position in a series.
    #[tracing::instrument(skip_all)]
    pub async fn set_watermark(
        &self,
        job: &str,
        symbol: &Symbol,
        interval: Interval,
        position: DateTime<Utc>,
    ) -> Result<()> {
        match self {
            Self::Postgres(pg) => {
                sqlx::query(
                    "INSERT INTO watermarks (job, symbol, interval, position) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (job, symbol, interval) \
                     DO UPDATE SET position = EXCLUDED.position, updated_at = now()",
                )
                .bind(job)
                .bind(symbol.as_str())
                .bind(interval.as_str())
                .bind(position)
                .execute(pg.pool())
                .await?;
            }
            Self::Sqlite(lite) => {
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
                .execute(lite.pool())
                .await?;
            }
        }
        Ok(())
    }
}
