//! Job locks: one run of a job at a time. PostgreSQL session-level advisory locks; for SQLite,
//! an OS file lock beside the database file.

use std::fs::File;

use sqlx::Postgres;
use sqlx::pool::PoolConnection;

use super::Store;
use crate::error::Result;

/// Exclusive right to run a job, held until dropped or released.
#[derive(Debug)]
pub enum JobLock {
    /// A PostgreSQL session-level advisory lock, on a connection of its own.
    Postgres(AdvisoryLock),
    /// An OS file lock beside the SQLite database (absent for in-memory databases).
    Sqlite(Option<File>),
}

impl JobLock {
    /// Releases the lock now (dropping it releases it too, by closing its connection or file).
    pub async fn release(self) {
        if let Self::Postgres(lock) = self {
            lock.release().await;
        }
    }
}

/// A session-level advisory lock held on a dedicated connection.
#[derive(Debug)]
pub struct AdvisoryLock {
    conn: Option<PoolConnection<Postgres>>,
    key: i64,
}

impl AdvisoryLock {
    async fn release(mut self) {
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

impl Store {
    /// Tries to take the exclusive lock of a job; `None` when another run holds it.
    #[tracing::instrument(skip_all)]
    pub async fn try_lock_job(&self, job: &str) -> Result<Option<JobLock>> {
        match self {
            Self::Postgres(pg) => {
                let key = lock_key(job);
                let mut conn = pg.pool().acquire().await?;
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
            // SQLite has no advisory locks; an OS lock on a file beside the database does the
            // same job for the processes of one host, which is where an embedded database lives.
            Self::Sqlite(lite) => {
                let Some(path) = lite.path() else {
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
    }
}

/// A stable 64-bit key for a job's advisory lock (FNV-1a of `pricecast:<job>`).
fn lock_key(job: &str) -> i64 {
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
}
