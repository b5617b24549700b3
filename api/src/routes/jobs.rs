//! `GET /jobs`: the most recent job runs.

use chrono::{DateTime, Utc};
use pricecast_shared::store::JobRun;
use salvo::oapi::{ToParameters, ToSchema};
use salvo::prelude::*;
use serde::{Deserialize, Serialize};

use super::app_state;
use crate::error::ApiError;
use crate::params;
use crate::services::job_runs::recent_runs;

/// Most runs one request returns.
const MAX_LIMIT: i64 = 1000;
/// Runs returned when `limit` is absent.
const DEFAULT_LIMIT: i64 = 50;
/// Longest job name accepted.
const MAX_JOB_NAME: usize = 64;

/// Parameters of `GET /jobs`.
#[derive(Debug, Deserialize, ToParameters)]
#[salvo(parameters(default_parameter_in = Query))]
pub struct JobsQuery {
    /// Only runs of this job (`collect`, `export`, …); all jobs when absent.
    job: Option<String>,
    /// Most runs returned, 1 to 1000 (default 50).
    #[salvo(parameter(value_type = Option<i64>))]
    limit: Option<String>,
}

/// One run of a job.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = JobRunBody))]
pub struct JobRunBody {
    /// Run id.
    pub id: i64,
    /// Job name.
    pub job: String,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// End time, absent while running.
    pub finished_at: Option<DateTime<Utc>>,
    /// `running`, `succeeded`, `failed`, `skipped` or `cancelled`.
    pub status: String,
    /// Rows written.
    pub rows: i64,
    /// Summary of what was done, one sentence per item of the report.
    pub detail: Option<String>,
    /// What a finished run did, item by item: `{"items": [{"series": {"symbol", "interval"} |
    /// null, "work": {"<kind>": {…counts}}}]}`, kinds `collect`, `export`, `features`, `train`,
    /// `forecast`, `sync_series`, `sync_model_runs` (see docs/JOBS.md).
    pub report: Option<serde_json::Value>,
    /// Error message of a failed run.
    pub error: Option<String>,
}

impl From<JobRun> for JobRunBody {
    fn from(run: JobRun) -> Self {
        Self {
            id: run.id,
            job: run.job,
            started_at: run.started_at,
            finished_at: run.finished_at,
            status: run.status.as_str().to_owned(),
            rows: run.rows,
            detail: run.detail,
            report: run.report,
            error: run.error,
        }
    }
}

/// Job runs, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = JobRunsBody))]
pub struct JobRunsBody {
    /// The runs.
    pub runs: Vec<JobRunBody>,
}

/// The most recent job runs, newest first, optionally of one job.
#[endpoint(tags("jobs"))]
pub async fn job_runs(query: JobsQuery, depot: &mut Depot) -> Result<Json<JobRunsBody>, ApiError> {
    let limit = params::integer("limit", query.limit.as_deref(), DEFAULT_LIMIT, 1, MAX_LIMIT)?;
    let job = query.job.as_deref().map(str::trim);
    if let Some(job) = job {
        let valid = !job.is_empty()
            && job.len() <= MAX_JOB_NAME
            && job
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(ApiError::BadRequest(format!(
                "job: '{job}' is not a job name (letters, digits, '-' and '_', at most {MAX_JOB_NAME})"
            )));
        }
    }
    let runs = recent_runs(&app_state(depot)?.store, job, limit).await?;
    Ok(Json(JobRunsBody {
        runs: runs.into_iter().map(JobRunBody::from).collect(),
    }))
}
