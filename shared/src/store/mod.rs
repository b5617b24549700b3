//! The database: PostgreSQL in production, an embedded SQLite file by default, one interface.
//!
//! SQL lives here only, one file per table or concern, each query written for both backends
//! side by side; jobs and handlers call [`Store`]'s methods.

mod candles;
mod columns;
mod forecasts;
mod gaps;
mod job_runs;
mod lake_candles;
mod locks;
mod pg_binary;
mod pool;
mod watermarks;

pub use candles::{
    CandleQuery, ChangeFilter, ChangedCandle, ChangedDay, SeriesSummary, StoredPrice,
};
pub use forecasts::{ForecastQuery, ForecastRecord, LedgerForecast};
pub use gaps::Gap;
pub use job_runs::{JobOutcome, JobRun, JobStatus};
pub use locks::JobLock;
pub use pool::{AccessMode, PgStore, SqliteStore, StoreOptions};

/// The database behind one interface.
#[derive(Clone, Debug)]
pub enum Store {
    /// PostgreSQL.
    Postgres(PgStore),
    /// SQLite.
    Sqlite(SqliteStore),
}
