//! The model registry: experiments, runs (params, metrics, tags, artifacts), registered model
//! versions and their aliases, with one interface over two backends.
//!
//! * [`MlflowRegistry`]: an MLflow tracking server and model registry over its REST API
//!   (MLflow 2.x and 3.x). Artifacts go through the server's artifact proxy when a run's
//!   artifact URI is `mlflow-artifacts:`, or straight to S3/MinIO with object_store when it is
//!   `s3://` (the lake's S3 settings are used).
//! * [`LocalRegistry`]: the same things as JSON documents and objects under
//!   `<LAKE_URL>/registry/`, used when `MLFLOW_TRACKING_URI` is unset, so the demo and small
//!   deployments need no MLflow.
//!
//! Promotion ([`ModelRegistry::promote`]): a new version always gets the alias `challenger`;
//! `champion` goes to whichever of the current champion, the new version and the naive forecast
//! has the lowest MAE on the same window (the naive forecast wins ties and is registered as a
//! version when it wins), or to the new version when forced. Every decision is recorded on the
//! versions as tags ([`promotion`]).
//!
//! Settings are in [`config`].

pub mod config;
pub mod local;
pub mod mlflow;
pub mod promotion;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Artifact contents.
pub use bytes::Bytes;
pub use config::RegistryArgs;
pub use local::LocalRegistry;
pub use mlflow::MlflowRegistry;
pub use promotion::{Decision, GateScores, PromotionDecision, Winner};

use crate::error::{Error, Result};
use crate::lake::{Lake, LakeArgs};

/// The alias of the model version the API serves.
pub const CHAMPION: &str = "champion";
/// The alias of the newest trained version.
pub const CHALLENGER: &str = "challenger";
/// MLflow's `runs/log-batch` takes at most this many metrics per call.
pub const MAX_METRICS_PER_BATCH: usize = 1000;
/// MLflow's `runs/log-batch` takes at most this many params per call.
pub const MAX_PARAMS_PER_BATCH: usize = 100;
/// MLflow's `runs/log-batch` takes at most this many tags per call.
pub const MAX_TAGS_PER_BATCH: usize = 100;
/// MLflow's `runs/search` returns at most this many runs per page.
pub const MAX_RUNS_PER_PAGE: usize = 50_000;

/// Run tag names the train job sets.
pub mod tags {
    /// The git revision the model was trained from (MLflow's own tag).
    pub const GIT_REVISION: &str = "mlflow.source.git.commit";
    /// The run's display name (MLflow's own tag).
    pub const RUN_NAME: &str = "mlflow.runName";
    /// The time range of the training data (`<first>..<last>`, RFC 3339).
    pub const DATA_RANGE: &str = "pricecast.data_range";
    /// Hash of the feature definitions the model was trained on.
    pub const FEATURE_SET_HASH: &str = "pricecast.feature_set_hash";
    /// The model family (`linear_regression`, …).
    pub const MODEL_TYPE: &str = "pricecast.model_type";
    /// The series, `SYMBOL interval`.
    pub const SERIES: &str = "pricecast.series";
    /// Why a training run failed. Such a run is also deleted (MLflow's soft delete), so that
    /// the newest active run of the experiment always holds a model.
    pub const FAILURE: &str = "pricecast.failure";
}

/// An experiment's id (MLflow's, or the local registry's).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExperimentId(pub String);

/// A run's id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RunId(pub String);

impl fmt::Display for ExperimentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A run's lifecycle state, spelled as MLflow spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RunStatus {
    /// Still being logged to.
    Running,
    /// Queued (MLflow only).
    Scheduled,
    /// Completed; its model may be registered.
    Finished,
    /// Its work failed; never registered.
    Failed,
    /// Stopped from outside.
    Killed,
}

impl RunStatus {
    /// MLflow's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Scheduled => "SCHEDULED",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::Killed => "KILLED",
        }
    }

    /// Parses MLflow's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Running,
            Self::Scheduled,
            Self::Finished,
            Self::Failed,
            Self::Killed,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One metric value at one step.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// Metric name (`mae`, `rmse`, …).
    pub key: String,
    /// Its value; must be finite.
    pub value: f64,
    /// Step (fold, epoch); 0 for a single value.
    pub step: i64,
}

impl Metric {
    /// A metric at step 0.
    pub fn new(key: impl Into<String>, value: f64) -> Self {
        Self {
            key: key.into(),
            value,
            step: 0,
        }
    }
}

/// A metric value as the registry keeps it: with its step and when it was logged.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedMetric {
    /// Metric name.
    pub key: String,
    /// Its value.
    pub value: f64,
    /// Step (fold, epoch).
    pub step: i64,
    /// When it was logged, in milliseconds since the Unix epoch.
    pub timestamp: i64,
}

/// A run as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// Its id.
    pub run_id: RunId,
    /// Its experiment.
    pub experiment_id: ExperimentId,
    /// Its state.
    pub status: RunStatus,
    /// When it started, in milliseconds since the Unix epoch.
    pub start_time: i64,
    /// When it ended (milliseconds since the Unix epoch); `None` while it runs.
    pub end_time: Option<i64>,
    /// Where its artifacts are (`mlflow-artifacts:/…`, `s3://…`, or the lake's location).
    pub artifact_uri: String,
    /// Params.
    pub params: BTreeMap<String, String>,
    /// The latest value of each metric.
    pub metrics: BTreeMap<String, f64>,
    /// The latest value of each metric with its step and time, ordered by key.
    pub latest_metrics: Vec<LoggedMetric>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

impl Run {
    /// Whether it has ended (finished, failed or killed) and nothing more is logged to it.
    pub fn has_ended(&self) -> bool {
        self.end_time.is_some()
            && matches!(
                self.status,
                RunStatus::Finished | RunStatus::Failed | RunStatus::Killed
            )
    }
}

/// Which runs [`ModelRegistry::search_runs`] returns: those that ended in a time window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunSearch {
    /// Only runs that ended strictly after this (ms since the Unix epoch); `None`: any time.
    pub ended_after: Option<i64>,
    /// Only runs that ended at or before this (ms since the Unix epoch); `None`: up to now.
    pub ended_at_or_before: Option<i64>,
    /// Runs fetched per request (at most [`MAX_RUNS_PER_PAGE`]).
    pub page_size: usize,
}

impl RunSearch {
    /// Whether a run's end time falls in the window; a run that has not ended never does.
    pub fn matches(&self, run: &Run) -> bool {
        run.end_time.is_some_and(|end| {
            self.ended_after.is_none_or(|after| end > after)
                && self.ended_at_or_before.is_none_or(|before| end <= before)
        })
    }

    /// The page size within MLflow's bounds.
    fn page_size(&self) -> usize {
        self.page_size.clamp(1, MAX_RUNS_PER_PAGE)
    }
}

/// A registered model version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// Registered model name.
    pub name: String,
    /// Version number, from 1.
    pub version: u64,
    /// The run that produced it.
    pub run_id: RunId,
    /// Where its files are: the run's artifact URI joined with the artifact path.
    pub source: String,
    /// Version tags (promotion decisions among them).
    pub tags: BTreeMap<String, String>,
}

/// One registry, MLflow or local, behind one interface.
#[derive(Debug)]
pub enum ModelRegistry {
    /// An MLflow tracking server.
    Mlflow(Box<MlflowRegistry>),
    /// The registry inside the lake.
    Local(LocalRegistry),
}

macro_rules! dispatch {
    ($self:ident, $registry:ident => $call:expr) => {
        match $self {
            Self::Mlflow($registry) => $call,
            Self::Local($registry) => $call,
        }
    };
}

impl ModelRegistry {
    /// The registry the settings describe: MLflow when `MLFLOW_TRACKING_URI` is set, else the
    /// local registry in the lake (which is opened and checked). `lake` also gives the S3
    /// settings for MLflow runs whose artifacts are on `s3://`.
    pub async fn open(args: &RegistryArgs, lake: &LakeArgs) -> Result<Self> {
        match &args.mlflow_tracking_uri {
            Some(_) => Ok(Self::Mlflow(Box::new(MlflowRegistry::new(
                args,
                lake.clone(),
            )?))),
            None => Ok(Self::Local(LocalRegistry::new(Lake::open(lake).await?))),
        }
    }

    /// Where the registry is, for logs (no secrets).
    pub fn location(&self) -> String {
        dispatch!(self, r => r.location())
    }

    /// The id of the experiment `name`, created when missing.
    pub async fn experiment(&self, name: &str) -> Result<ExperimentId> {
        dispatch!(self, r => r.experiment(name).await)
    }

    /// The id of the experiment `name`; `None` when it does not exist (or is deleted). Never
    /// creates it.
    pub async fn find_experiment(&self, name: &str) -> Result<Option<ExperimentId>> {
        dispatch!(self, r => r.find_experiment(name).await)
    }

    /// The active (not deleted) runs of `experiment` that ended in the window `search` gives (a
    /// run still running has no end time and is never listed), oldest end first, read page by page. Each run
    /// comes with its params, tags and the latest value of each metric.
    pub async fn search_runs(
        &self,
        experiment: &ExperimentId,
        search: &RunSearch,
    ) -> Result<Vec<Run>> {
        let mut runs = dispatch!(self, r => r.search_runs(experiment, search).await)?;
        runs.retain(|run| search.matches(run));
        runs.sort_by(|a, b| (a.end_time, &a.run_id).cmp(&(b.end_time, &b.run_id)));
        Ok(runs)
    }

    /// Starts a run in `experiment` with `tags`.
    pub async fn start_run(
        &self,
        experiment: &ExperimentId,
        tags: &[(String, String)],
    ) -> Result<RunId> {
        dispatch!(self, r => r.start_run(experiment, tags).await)
    }

    /// Logs params (in batches of [`MAX_PARAMS_PER_BATCH`]). A param cannot change value.
    pub async fn log_params(&self, run: &RunId, params: &[(String, String)]) -> Result<()> {
        dispatch!(self, r => r.log_params(run, params).await)
    }

    /// Logs metrics (in batches of [`MAX_METRICS_PER_BATCH`]); values must be finite.
    pub async fn log_metrics(&self, run: &RunId, metrics: &[Metric]) -> Result<()> {
        check_finite(run, metrics)?;
        dispatch!(self, r => r.log_metrics(run, metrics).await)
    }

    /// Sets run tags (in batches of [`MAX_TAGS_PER_BATCH`]).
    pub async fn set_tags(&self, run: &RunId, tags: &[(String, String)]) -> Result<()> {
        dispatch!(self, r => r.set_tags(run, tags).await)
    }

    /// Stores `bytes` as the run's artifact `path` (relative, `/`-separated).
    pub async fn log_artifact(&self, run: &RunId, path: &str, bytes: Bytes) -> Result<()> {
        check_artifact_path(path)?;
        dispatch!(self, r => r.log_artifact(run, path, bytes).await)
    }

    /// Reads the run's artifact `path` back.
    pub async fn read_artifact(&self, run: &RunId, path: &str) -> Result<Bytes> {
        check_artifact_path(path)?;
        dispatch!(self, r => r.read_artifact(run, path).await)
    }

    /// Reads a run: status, params, latest metrics, tags, artifact URI.
    pub async fn get_run(&self, run: &RunId) -> Result<Run> {
        dispatch!(self, r => r.get_run(run).await)
    }

    /// Ends a run as [`RunStatus::Finished`] or [`RunStatus::Failed`].
    pub async fn finish_run(&self, run: &RunId, status: RunStatus) -> Result<()> {
        if !matches!(
            status,
            RunStatus::Finished | RunStatus::Failed | RunStatus::Killed
        ) {
            return Err(registry_error(
                format!("ending run {run}"),
                format!("{status} is not an end state; use FINISHED or FAILED"),
            ));
        }
        dispatch!(self, r => r.finish_run(run, status).await)
    }

    /// Deletes a run the way MLflow's `runs/delete` does: it is kept, with everything logged to
    /// it, but no longer listed ([`ModelRegistry::search_runs`] and MLflow's `search_runs`
    /// list active runs only); [`ModelRegistry::get_run`] still reads it.
    pub async fn delete_run(&self, run: &RunId) -> Result<()> {
        dispatch!(self, r => r.delete_run(run).await)
    }

    /// Registers the run's artifact folder `artifact_path` as a new version of `model`
    /// (created when missing). Only a FINISHED run is registered; anything else, or a run that
    /// does not exist, is an error and nothing is created.
    pub async fn register_version(
        &self,
        model: &str,
        run: &RunId,
        artifact_path: &str,
    ) -> Result<ModelVersion> {
        check_artifact_path(artifact_path)?;
        let found = self.get_run(run).await?;
        if found.status != RunStatus::Finished {
            return Err(registry_error(
                format!("registering run {run} as a version of {model}"),
                format!(
                    "the run is {}; only a FINISHED run is registered",
                    found.status
                ),
            ));
        }
        dispatch!(self, r => r.register_version(model, &found, artifact_path).await)
    }

    /// One version of `model`.
    pub async fn get_version(&self, model: &str, version: u64) -> Result<ModelVersion> {
        dispatch!(self, r => r.get_version(model, version).await)
    }

    /// The version `alias` points to, `None` when the alias (or the model) does not exist.
    pub async fn get_alias(&self, model: &str, alias: &str) -> Result<Option<ModelVersion>> {
        dispatch!(self, r => r.get_alias(model, alias).await)
    }

    /// Points `alias` at `version` of `model`.
    pub async fn set_alias(&self, model: &str, alias: &str, version: u64) -> Result<()> {
        dispatch!(self, r => r.set_alias(model, alias, version).await)
    }

    /// Sets a tag on a model version.
    pub async fn set_version_tag(
        &self,
        model: &str,
        version: u64,
        key: &str,
        value: &str,
    ) -> Result<()> {
        dispatch!(self, r => r.set_version_tag(model, version, key, value).await)
    }

    /// Gives `version` the alias `challenger`, then decides who holds `champion`
    /// ([`PromotionDecision::decide`] on `scores`, against the version `champion` points to
    /// now). When the naive forecast wins, `register_naive` registers a naive model and returns
    /// its version. The decision and all three numbers are recorded as tags on the new version
    /// (and on the naive one) before the champion moves, so a failure leaves the champion where
    /// it was.
    pub async fn promote(
        &self,
        model: &str,
        version: u64,
        scores: &GateScores,
        force: bool,
        register_naive: impl AsyncFnOnce() -> Result<u64>,
    ) -> Result<PromotionDecision> {
        self.set_alias(model, CHALLENGER, version).await?;
        let champion = self.get_alias(model, CHAMPION).await?;
        let mut decision = PromotionDecision::decide(
            model,
            version,
            scores,
            champion.as_ref().map(|c| c.version),
            force,
        );
        if decision.needs_naive_version() {
            decision.naive_version = Some(register_naive().await?);
        }
        let tagged = std::iter::once(version).chain(decision.naive_version);
        for tagged_version in tagged {
            for (key, value) in decision.tags() {
                self.set_version_tag(model, tagged_version, &key, &value)
                    .await?;
            }
        }
        let moved = decision
            .champion_after()
            .filter(|&winner| Some(winner) != decision.champion_version);
        if let Some(winner) = moved {
            self.set_alias(model, CHAMPION, winner).await?;
        }
        tracing::info!(
            model,
            version,
            decision = decision.decision.as_str(),
            winner = decision.winner.as_str(),
            new_mae = scores.new_mae,
            champion_mae = ?decision.champion_mae,
            naive_mae = ?decision.naive_mae,
            champion_version = ?decision.champion_version,
            naive_version = ?decision.naive_version,
            "promotion decided"
        );
        Ok(decision)
    }
}

/// A registry error.
pub(crate) fn registry_error(operation: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Registry {
        operation: operation.into(),
        message: message.into(),
    }
}

/// Artifact paths are relative, `/`-separated, without `.`/`..` or empty segments.
pub(crate) fn check_artifact_path(path: &str) -> Result<()> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && path
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..");
    if ok {
        Ok(())
    } else {
        Err(registry_error(
            format!("using artifact path {path:?}"),
            "artifact paths are relative and /-separated, without empty, . or .. segments",
        ))
    }
}

/// MLflow cannot store NaN or infinite values through JSON; refuse them with the metric's name.
fn check_finite(run: &RunId, metrics: &[Metric]) -> Result<()> {
    match metrics.iter().find(|m| !m.value.is_finite()) {
        None => Ok(()),
        Some(bad) => Err(registry_error(
            format!("logging metrics of run {run}"),
            format!(
                "metric {} is {} at step {}; only finite values can be logged",
                bad.key, bad.value, bad.step
            ),
        )),
    }
}

/// The latest value of each metric: the highest step, then the newest timestamp, then the
/// last logged. Ordered by key.
pub(crate) fn latest_metrics(metrics: impl IntoIterator<Item = LoggedMetric>) -> Vec<LoggedMetric> {
    let mut latest: BTreeMap<String, LoggedMetric> = BTreeMap::new();
    for m in metrics {
        match latest.get(&m.key) {
            Some(kept) if (m.step, m.timestamp) < (kept.step, kept.timestamp) => {}
            _ => {
                latest.insert(m.key.clone(), m);
            }
        }
    }
    latest.into_values().collect()
}

/// Latest metric values as a map of key to value.
pub(crate) fn metric_values(latest: &[LoggedMetric]) -> BTreeMap<String, f64> {
    latest.iter().map(|m| (m.key.clone(), m.value)).collect()
}

/// Milliseconds since the Unix epoch, as MLflow timestamps are.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_paths_are_checked() {
        for good in ["model/model.json", "MLmodel", "charts/forecast.svg"] {
            assert!(check_artifact_path(good).is_ok(), "{good}");
        }
        for bad in ["", "/abs", "a//b", "../up", "a/./b", "a\\b", "dir/"] {
            assert!(check_artifact_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn non_finite_metrics_are_refused_by_name() {
        let run = RunId("r1".into());
        assert!(check_finite(&run, &[Metric::new("mae", 1.5)]).is_ok());
        let err = check_finite(
            &run,
            &[Metric::new("mae", 1.0), Metric::new("rmse", f64::NAN)],
        )
        .expect_err("NaN")
        .to_string();
        assert!(err.contains("rmse"), "{err}");
    }

    #[test]
    fn run_statuses_round_trip_mlflow_spelling() {
        for status in [
            RunStatus::Running,
            RunStatus::Scheduled,
            RunStatus::Finished,
            RunStatus::Failed,
            RunStatus::Killed,
        ] {
            assert_eq!(RunStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(RunStatus::parse("DONE"), None);
    }
}
