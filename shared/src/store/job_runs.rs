//! `job_runs`: one row per run of a job, from start to outcome.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Store;
use super::columns::{PgTime, SqliteTime, StoredTime};
use crate::error::{Error, Result};
use crate::report::JobReport;

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
    /// One-line summary, derived from the report.
    pub detail: Option<String>,
    /// What the run did, item by item ([`JobReport`] as JSON), when it succeeded.
    pub report: Option<serde_json::Value>,
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
    /// One-line summary.
    pub detail: Option<String>,
    /// What the run did, item by item.
    pub report: Option<JobReport>,
    /// Error message.
    pub error: Option<String>,
}

/// A `job_runs` row with times as the backend stores them (`T`).
#[derive(sqlx::FromRow)]
struct JobRunRow<T> {
    id: i64,
    job: String,
    started_at: T,
    finished_at: Option<T>,
    status: String,
    rows: i64,
    detail: Option<String>,
    report: Option<String>,
    error: Option<String>,
}

impl<T: StoredTime> TryFrom<JobRunRow<T>> for JobRun {
    type Error = Error;

    fn try_from(row: JobRunRow<T>) -> Result<Self> {
        Ok(Self {
            id: row.id,
            job: row.job,
            started_at: row.started_at.into_time()?,
            finished_at: row.finished_at.map(StoredTime::into_time).transpose()?,
            status: row.status.parse()?,
            rows: row.rows,
            detail: row.detail,
            report: row
                .report
                .map(|json| {
                    serde_json::from_str(&json).map_err(|e| {
                        Error::CorruptRow(format!("job run {}: report is not JSON: {e}", row.id))
                    })
                })
                .transpose()?,
            error: row.error,
        })
    }
}

/// The rows as job runs.
fn job_runs_from<T: StoredTime>(rows: Vec<JobRunRow<T>>) -> Result<Vec<JobRun>> {
    rows.into_iter().map(JobRun::try_from).collect()
}

impl Store {
    /// Records the start of a job run; returns its id.
    #[tracing::instrument(skip_all)]
    pub async fn start_job_run(&self, job: &str) -> Result<i64> {
        let (id,): (i64,) = match self {
            Self::Postgres(pg) => {
                sqlx::query_as(
                    "INSERT INTO job_runs (job, status) VALUES ($1, 'running') RETURNING id",
                )
                .bind(job)
                .fetch_one(pg.pool())
                .await?
            }
            Self::Sqlite(lite) => {
                sqlx::query_as(
                    "INSERT INTO job_runs (job, started_at, status) VALUES (?1, ?2, 'running') \
                     RETURNING id",
                )
                .bind(job)
                .bind(Utc::now().timestamp_millis())
                .fetch_one(lite.pool())
                .await?
            }
        };
        Ok(id)
    }

    /// Records how a job run ended.
    #[tracing::instrument(skip_all)]
    pub async fn finish_job_run(&self, id: i64, outcome: &JobOutcome) -> Result<()> {
        let report = outcome
            .report
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| {
                Error::CorruptRow(format!("job run {id}: cannot write its report: {e}"))
            })?;
        match self {
            Self::Postgres(pg) => {
                sqlx::query(
                    "UPDATE job_runs SET finished_at = now(), status = $2, rows = $3, detail = $4, \
                     error = $5, report = $6::jsonb WHERE id = $1",
                )
                .bind(id)
                .bind(outcome.status.as_str())
                .bind(outcome.rows)
                .bind(&outcome.detail)
                .bind(&outcome.error)
                .bind(&report)
                .execute(pg.pool())
                .await?;
            }
            Self::Sqlite(lite) => {
                sqlx::query(
                    "UPDATE job_runs SET finished_at = ?2, status = ?3, rows = ?4, detail = ?5, \
                     error = ?6, report = ?7 WHERE id = ?1",
                )
                .bind(id)
                .bind(Utc::now().timestamp_millis())
                .bind(outcome.status.as_str())
                .bind(outcome.rows)
                .bind(&outcome.detail)
                .bind(&outcome.error)
                .bind(&report)
                .execute(lite.pool())
                .await?;
            }
        }
        Ok(())
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
                report: None,
                error: None,
            },
        )
        .await
    }

    /// The most recent job runs, newest first, optionally of one job only.
    #[tracing::instrument(skip_all)]
    pub async fn job_runs(&self, job: Option<&str>, limit: i64) -> Result<Vec<JobRun>> {
        match self {
            Self::Postgres(pg) => job_runs_from(
                sqlx::query_as::<_, JobRunRow<PgTime>>(
                    "SELECT id, job, started_at, finished_at, status, rows, detail, \
                     report::text AS report, error \
                     FROM job_runs WHERE ($1::text IS NULL OR job = $1) \
                     ORDER BY started_at DESC, id DESC LIMIT $2",
                )
                .bind(job)
                .bind(limit)
                .fetch_all(pg.pool())
                .await?,
            ),
            Self::Sqlite(lite) => job_runs_from(
                sqlx::query_as::<_, JobRunRow<SqliteTime>>(
                    "SELECT id, job, started_at, finished_at, status, rows, detail, report, error \
                     FROM job_runs WHERE (?1 IS NULL OR job = ?1) \
                     ORDER BY started_at DESC, id DESC LIMIT ?2",
                )
                .bind(job)
                .bind(limit)
                .fetch_all(lite.pool())
                .await?,
            ),
        }
    }

    /// The newest run of each job.
    #[tracing::instrument(skip_all)]
    pub async fn last_run_per_job(&self) -> Result<Vec<JobRun>> {
        match self {
            Self::Postgres(pg) => job_runs_from(
                sqlx::query_as::<_, JobRunRow<PgTime>>(
                    "SELECT DISTINCT ON (job) id, job, started_at, finished_at, status, rows, \
                     detail, report::text AS report, error FROM job_runs ORDER BY job, started_at DESC, id DESC",
                )
                .fetch_all(pg.pool())
                .await?,
            ),
            Self::Sqlite(lite) => job_runs_from(
                sqlx::query_as::<_, JobRunRow<SqliteTime>>(
                    "SELECT id, job, started_at, finished_at, status, rows, detail, report, error \
                     FROM job_runs r WHERE id = (SELECT id FROM job_runs l WHERE l.job = r.job \
                     ORDER BY started_at DESC, id DESC LIMIT 1) ORDER BY job",
                )
                .fetch_all(lite.pool())
                .await?,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
