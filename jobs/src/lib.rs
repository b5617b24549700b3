//! Pricecast's jobs. Each binary is a thin `main` over an `execute` function here, so tests run
//! the same code: parse flags, connect, then run once or on a cron schedule under the job's lock.

pub mod collect;
pub mod commands;
pub mod demo;
pub mod export;
pub mod features;
pub mod forecast;
pub mod schedule;
pub mod status;
pub mod sync;
pub mod train;

use std::future::Future;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use pricecast_shared::domain::Symbol;
use pricecast_shared::report::JobReport;
use pricecast_shared::runner;
use pricecast_shared::series::{SeriesScope, stored_as_listed};
use pricecast_shared::settings::{DatabaseArgs, RunArgs};
use pricecast_shared::shard::Shard;
use pricecast_shared::store::{AccessMode, Store, StoreOptions};
use pricecast_shared::telemetry::error_chain;
use pricecast_shared::universe::Resolution;
use pricecast_shared::{Error, Result};
use tokio_util::sync::CancellationToken;

/// Connects read-write and, unless told not to, applies pending migrations.
pub async fn connect(database: &DatabaseArgs, migrate: bool) -> Result<Store> {
    let store = Store::connect(
        database.database_url.expose(),
        StoreOptions {
            mode: AccessMode::ReadWrite,
            max_connections: database.database_max_connections,
        },
    )
    .await?;
    if migrate {
        store.migrate().await?;
    }
    Ok(store)
}

/// Runs `work` once, or on `run.cron` until shutdown, always under the lock of the job's
/// `shard`.
pub async fn run_job<F, Fut>(
    job: &'static str,
    shard: Option<Shard>,
    store: Store,
    run: &RunArgs,
    cancel: CancellationToken,
    work: F,
) -> Result<()>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<JobReport>> + Send + 'static,
{
    match &run.cron {
        None => runner::run_locked_shard(&store, job, shard, work)
            .await
            .map(|_| ()),
        Some(schedule) => {
            runner::run_on_schedule(job, schedule, cancel, move || {
                let store = store.clone();
                let work = work.clone();
                async move { runner::run_locked_shard(&store, job, shard, work).await }
            })
            .await
        }
    }
}

/// The symbols one run of a job after collect works on: the plan's `names`, or the scope's
/// patterns resolved against the symbols `stored` finds (in the database or the lake) — what
/// collect stored is what the later jobs follow. `stored` is only awaited when there are
/// patterns to resolve.
pub async fn symbols_for_run(
    scope: &SeriesScope,
    names: &[Symbol],
    stored: impl Future<Output = Result<Vec<Symbol>>>,
) -> Result<(Vec<Symbol>, Option<Resolution>)> {
    if scope.universe.is_none() {
        return Ok((names.to_vec(), None));
    }
    let stored = stored.await?;
    let listed = stored_as_listed(&stored);
    let (symbols, resolution) = scope.resolve(names, &listed, &stored)?;
    Ok((symbols, Some(resolution)))
}

/// Logs a failure once and maps it to the exit code a CronJob understands:
/// 0 success (or nothing to do), 2 bad configuration, 1 any other failure.
pub fn exit(result: Result<()>) -> ExitCode {
    if let Err(e) = &result {
        if matches!(e, Error::Config(_)) {
            eprintln!("error: {}", error_chain(e));
        }
        tracing::error!(error.message = %error_chain(e), "exiting with failure");
    }
    ExitCode::from(runner::exit_code(&result) as u8)
}

/// A progress bar of `len` `unit`s on stderr, labelled `prefix`: hidden below `min_len` and
/// whenever stderr is not a terminal (indicatif draws nothing then).
pub fn progress_bar(len: u64, min_len: u64, prefix: String, unit: &str) -> ProgressBar {
    if len < min_len {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let template =
        format!("{{prefix}} [{{bar:40}}] {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}})");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(prefix);
    bar
}
