//! Connecting to either backend: pools, access modes, migrations and the database's clock.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::Store;
use crate::error::{Error, Result};

/// How long a request waits for a pooled connection before the database counts as unreachable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a SQLite writer waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

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

/// PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    async fn connect(url: &str, options: StoreOptions) -> Result<Self> {
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
}

/// SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The database file, absent for in-memory databases.
    path: Option<PathBuf>,
}

impl SqliteStore {
    async fn connect(url: &str, options: StoreOptions) -> Result<Self> {
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

    /// The database file, absent for in-memory databases.
    pub(super) fn path(&self) -> Option<&PathBuf> {
        self.path.as_ref()
    }
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
    #[tracing::instrument(skip_all)]
    pub async fn migrate(&self) -> Result<()> {
        match self {
            Self::Postgres(pg) => {
                sqlx::migrate!("../migrations/postgres")
                    .run(pg.pool())
                    .await?
            }
            Self::Sqlite(lite) => {
                sqlx::migrate!("../migrations/sqlite")
                    .run(lite.pool())
                    .await?
            }
        }
        Ok(())
    }

    /// Checks that the database answers.
    #[tracing::instrument(skip_all)]
    pub async fn ping(&self) -> Result<()> {
        match self {
            Self::Postgres(pg) => {
                sqlx::query("SELECT 1").execute(pg.pool()).await?;
            }
            Self::Sqlite(lite) => {
                sqlx::query("SELECT 1").execute(lite.pool()).await?;
            }
        }
        Ok(())
    }

    /// The database's clock (the one `ingested_at` is stamped with; the client's for SQLite).
    #[tracing::instrument(skip_all)]
    pub async fn database_now(&self) -> Result<DateTime<Utc>> {
        match self {
            Self::Postgres(pg) => {
                let (now,): (DateTime<Utc>,) =
                    sqlx::query_as("SELECT now()").fetch_one(pg.pool()).await?;
                Ok(now)
            }
            // Rows are stamped with the client's clock; so is the answer.
            Self::Sqlite(_) => Ok(Utc::now()),
        }
    }
}
