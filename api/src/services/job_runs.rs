//! The runs the jobs record.

use pricecast_shared::store::{JobRun, Store};

use super::error::ServiceResult;

/// The most recent `limit` runs, newest first, of `job` or of every job.
pub async fn recent_runs(
    store: &Store,
    job: Option<&str>,
    limit: i64,
) -> ServiceResult<Vec<JobRun>> {
    Ok(store.job_runs(job, limit).await?)
}
