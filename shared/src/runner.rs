//! What every job shares: the lock, the `job_runs` record, running once or on a cron schedule
//! without overlapping, and stopping cleanly on SIGTERM.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::report::JobReport;
use crate::settings::CronSchedule;
use crate::shard::Shard;
use crate::store::{JobOutcome, JobStatus, Store};
use crate::telemetry::error_chain;

/// How one run ended, for the exit code.
#[derive(Clone, Debug, PartialEq)]
pub enum RunOutcome {
    /// The work ran and finished.
    Completed(JobReport),
    /// Another run held the lock; nothing was done.
    Skipped,
}

impl RunOutcome {
    /// The report of a run that completed.
    pub fn report(&self) -> Option<&JobReport> {
        match self {
            Self::Completed(report) => Some(report),
            Self::Skipped => None,
        }
    }
}

/// A token cancelled on SIGTERM or Ctrl-C, so jobs stop between batches.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        wait_for_shutdown_signal().await;
        tracing::info!("shutdown signal received, finishing the current batch");
        trigger.cancel();
    });
    token
}

/// Resolves on SIGTERM or SIGINT.
pub async fn wait_for_shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error.message = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Runs `work` once under the job's lock, recording the run in `job_runs`.
///
/// When another run holds the lock, records a `skipped` run and returns [`RunOutcome::Skipped`].
pub async fn run_locked<F, Fut>(store: &Store, job: &str, work: F) -> Result<RunOutcome>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<JobReport>>,
{
    run_locked_shard(store, job, None, work).await
}

/// [`run_locked`] for one shard of the job's series: the shards of a job lock apart, so they run
/// at once but no shard runs twice.
pub async fn run_locked_shard<F, Fut>(
    store: &Store,
    job: &str,
    shard: Option<Shard>,
    work: F,
) -> Result<RunOutcome>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<JobReport>>,
{
    let lock_name = Shard::lock_name(shard, job);
    let Some(lock) = store.try_lock_job(&lock_name).await? else {
        tracing::info!(job, lock = %lock_name, "another run holds the lock; nothing to do");
        store
            .record_skipped_run(job, "another run holds the lock")
            .await?;
        return Ok(RunOutcome::Skipped);
    };
    let run_id = store.start_job_run(job).await?;
    let started = Instant::now();
    tracing::info!(
        job,
        run_id,
        shard = shard.map(|s| s.to_string()),
        "job started"
    );
    let result = work().await.map(|report| report.with_shard(shard));
    let duration_ms = started.elapsed().as_millis() as u64;
    let outcome = match &result {
        Ok(report) => JobOutcome {
            status: JobStatus::Succeeded,
            rows: report.rows(),
            detail: Some(report.detail()),
            report: Some(report.clone()),
            error: None,
        },
        Err(Error::SeriesFailed { report, .. }) => {
            let report = report.as_ref().clone().with_shard(shard);
            JobOutcome {
                status: JobStatus::Failed,
                rows: report.rows(),
                detail: Some(report.detail()),
                error: result.as_ref().err().map(|e| error_chain(e)),
                report: Some(report),
            }
        }
        Err(e) => JobOutcome {
            status: if matches!(e, Error::Cancelled) {
                JobStatus::Cancelled
            } else {
                JobStatus::Failed
            },
            rows: 0,
            detail: None,
            report: None,
            error: Some(error_chain(e)),
        },
    };
    if let Err(e) = store.finish_job_run(run_id, &outcome).await {
        tracing::error!(job, run_id, error.message = %error_chain(&e), "could not record the end of the run");
    }
    lock.release().await;
    match result {
        Ok(report) => {
            tracing::info!(job, run_id, rows = report.rows(), duration_ms, detail = %report, "job succeeded");
            Ok(RunOutcome::Completed(report))
        }
        Err(e) => {
            tracing::error!(job, run_id, duration_ms, status = outcome.status.as_str(), error.message = %error_chain(&e), "job failed");
            Err(e)
        }
    }
}

/// Calls `tick` on a cron schedule until `cancel` fires; a tick that finds the previous one still
/// running is skipped. Failed ticks are logged and the schedule goes on.
pub async fn run_on_schedule<F, Fut>(
    job: &str,
    schedule: &CronSchedule,
    cancel: CancellationToken,
    tick: F,
) -> Result<()>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<RunOutcome>> + Send + 'static,
{
    let scheduler_error = |e: tokio_cron_scheduler::JobSchedulerError| {
        Error::config(format!("cannot start the cron scheduler: {e}"))
    };
    let mut scheduler = JobScheduler::new().await.map_err(scheduler_error)?;
    let running = Arc::new(tokio::sync::Mutex::new(()));
    let tick = Arc::new(tick);
    let job_name: Arc<str> = Arc::from(job);
    let cron_job = {
        let running = running.clone();
        Job::new_async(schedule.as_str(), move |_, _| {
            let running = running.clone();
            let tick = tick.clone();
            let job_name = job_name.clone();
            Box::pin(async move {
                let Ok(_guard) = running.try_lock() else {
                    tracing::warn!(job = %job_name, "previous run still in progress; skipping this tick");
                    return;
                };
                if let Err(e) = tick().await {
                    tracing::error!(job = %job_name, error.message = %error_chain(&e), "scheduled run failed; will retry on the next tick");
                }
            })
        })
        .map_err(scheduler_error)?
    };
    scheduler.add(cron_job).await.map_err(scheduler_error)?;
    scheduler.start().await.map_err(scheduler_error)?;
    tracing::info!(job, cron = schedule.as_str(), "running on schedule");
    cancel.cancelled().await;
    scheduler.shutdown().await.map_err(scheduler_error)?;
    // Wait for a run in progress to finish its batch.
    let _idle = running.lock().await;
    tracing::info!(job, "schedule stopped");
    Ok(())
}

/// Exit code for a job's result: 0 success or skipped, 2 bad configuration, 1 any other failure.
pub fn exit_code(result: &Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(Error::Config(_)) => 2,
        Err(_) => 1,
    }
}
