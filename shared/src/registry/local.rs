//! The local registry: MLflow's concepts as JSON documents and objects in the lake, for
//! deployments without an MLflow server. Works on every store the lake opens (`file://`,
//! `s3://`, …). Layout under `<LAKE_URL>/registry/`:
//!
//! ```text
//! experiments/<name>.json                        {"experiment_id", "name", "created_ms"}
//! runs/<run_id>/run.json                         status, times, params, metrics, tags
//! runs/<run_id>/artifacts/<path>                 artifacts as plain objects
//! models/<name>/versions/<n>.json                {"name", "version", "run_id", "source", "tags"}
//! models/<name>/aliases/<alias>.json             {"version"}
//! ```
//!
//! Each document is written whole in one PUT. Training holds the train job's lock, so there
//! is one writer at a time.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{
    ExperimentId, LoggedMetric, Metric, ModelVersion, Run, RunId, RunSearch, RunStatus,
    latest_metrics, metric_values, now_ms, registry_error,
};
use crate::error::{Error, Result};
use crate::lake::Lake;

/// The folder of the registry inside the lake.
pub const REGISTRY_PREFIX: &str = "registry";

/// A registry inside the lake.
#[derive(Clone)]
pub struct LocalRegistry {
    lake: Lake,
}

impl fmt::Debug for LocalRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalRegistry({})", self.location())
    }
}

#[derive(Serialize, Deserialize)]
struct ExperimentDoc {
    experiment_id: String,
    name: String,
    created_ms: i64,
}

#[derive(Serialize, Deserialize, Clone)]
struct MetricDoc {
    key: String,
    value: f64,
    step: i64,
    timestamp: i64,
}

#[derive(Serialize, Deserialize)]
struct RunDoc {
    run_id: String,
    experiment_id: String,
    status: RunStatus,
    start_time: i64,
    end_time: Option<i64>,
    params: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
    metrics: Vec<MetricDoc>,
    /// Deleted runs are kept but not listed, as MLflow's deleted lifecycle stage.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
}

#[derive(Serialize, Deserialize)]
struct AliasDoc {
    version: u64,
}

impl LocalRegistry {
    /// A registry in `lake` (already opened and checked).
    pub fn new(lake: Lake) -> Self {
        Self { lake }
    }

    /// `<LAKE_URL>/registry`.
    pub fn location(&self) -> String {
        format!(
            "{}/{REGISTRY_PREFIX}",
            self.lake.url().trim_end_matches('/')
        )
    }

    /// The experiment's id (its name made path-safe), created when missing.
    pub async fn experiment(&self, name: &str) -> Result<ExperimentId> {
        let id = path_safe(name);
        let path = format!("{REGISTRY_PREFIX}/experiments/{id}.json");
        match self.read_doc::<ExperimentDoc>(&path).await? {
            Some(doc) if doc.name == name => Ok(ExperimentId(doc.experiment_id)),
            Some(doc) => Err(registry_error(
                format!("opening experiment {name}"),
                format!(
                    "its id {id} is taken by experiment {:?}; choose another MLFLOW_EXPERIMENT_NAME",
                    doc.name
                ),
            )),
            None => {
                let doc = ExperimentDoc {
                    experiment_id: id.clone(),
                    name: name.to_owned(),
                    created_ms: now_ms(),
                };
                self.write_doc(&path, &doc).await?;
                tracing::info!(experiment = name, registry = %self.location(), "experiment created");
                Ok(ExperimentId(id))
            }
        }
    }

    /// The experiment's id; `None` when it was never created.
    pub async fn find_experiment(&self, name: &str) -> Result<Option<ExperimentId>> {
        let path = format!("{REGISTRY_PREFIX}/experiments/{}.json", path_safe(name));
        Ok(self
            .read_doc::<ExperimentDoc>(&path)
            .await?
            .filter(|doc| doc.name == name)
            .map(|doc| ExperimentId(doc.experiment_id)))
    }

    /// The active runs of `experiment` that ended in the search's window: every `run.json` under
    /// `runs/` is read (the local registry holds a few thousand runs at most).
    pub async fn search_runs(
        &self,
        experiment: &ExperimentId,
        search: &RunSearch,
    ) -> Result<Vec<Run>> {
        let objects = self.lake.list(&format!("{REGISTRY_PREFIX}/runs/")).await?;
        let mut runs = Vec::new();
        for meta in objects {
            if meta.location.filename() != Some(RUN_DOC) {
                continue;
            }
            let path = self.lake.relative(&meta.location).to_owned();
            let Some(doc) = self.read_doc::<RunDoc>(&path).await? else {
                continue; // Gone since the listing.
            };
            if doc.experiment_id == experiment.0 && !doc.deleted {
                let run = self.run_from_doc(doc);
                if search.matches(&run) {
                    runs.push(run);
                }
            }
        }
        Ok(runs)
    }

    /// Starts a run.
    pub async fn start_run(
        &self,
        experiment: &ExperimentId,
        tags: &[(String, String)],
    ) -> Result<RunId> {
        let run_id = format!("{:032x}", rand::random::<u128>());
        let doc = RunDoc {
            run_id: run_id.clone(),
            experiment_id: experiment.0.clone(),
            status: RunStatus::Running,
            start_time: now_ms(),
            end_time: None,
            params: BTreeMap::new(),
            tags: tags.iter().cloned().collect(),
            metrics: Vec::new(),
            deleted: false,
        };
        let run = RunId(run_id);
        self.write_doc(&run_doc_path(&run), &doc).await?;
        Ok(run)
    }

    /// Logs params; a param that already has another value is an error, as in MLflow.
    pub async fn log_params(&self, run: &RunId, params: &[(String, String)]) -> Result<()> {
        let mut doc = self.run_doc(run).await?;
        for (key, value) in params {
            match doc.params.get(key) {
                Some(old) if old != value => {
                    return Err(registry_error(
                        format!("logging param {key} of run {run}"),
                        format!("it is already {old:?}; params cannot change (got {value:?})"),
                    ));
                }
                _ => {
                    doc.params.insert(key.clone(), value.clone());
                }
            }
        }
        self.write_doc(&run_doc_path(run), &doc).await
    }

    /// Logs metrics (every step is kept).
    pub async fn log_metrics(&self, run: &RunId, metrics: &[Metric]) -> Result<()> {
        let mut doc = self.run_doc(run).await?;
        let timestamp = now_ms();
        doc.metrics.extend(metrics.iter().map(|m| MetricDoc {
            key: m.key.clone(),
            value: m.value,
            step: m.step,
            timestamp,
        }));
        self.write_doc(&run_doc_path(run), &doc).await
    }

    /// Sets run tags.
    pub async fn set_tags(&self, run: &RunId, tags: &[(String, String)]) -> Result<()> {
        let mut doc = self.run_doc(run).await?;
        doc.tags.extend(tags.iter().cloned());
        self.write_doc(&run_doc_path(run), &doc).await
    }

    /// Stores an artifact of an existing run.
    pub async fn log_artifact(&self, run: &RunId, path: &str, bytes: Bytes) -> Result<()> {
        self.run_doc(run).await?;
        self.lake.put(&artifact_path(run, path), bytes).await
    }

    /// Reads an artifact back.
    pub async fn read_artifact(&self, run: &RunId, path: &str) -> Result<Bytes> {
        self.lake
            .get(&artifact_path(run, path))
            .await?
            .ok_or_else(|| {
                registry_error(
                    format!("reading artifact {path} of run {run}"),
                    "no such artifact",
                )
            })
    }

    /// Reads a run.
    pub async fn get_run(&self, run: &RunId) -> Result<Run> {
        let doc = self.run_doc(run).await?;
        Ok(self.run_from_doc(doc))
    }

    fn run_from_doc(&self, doc: RunDoc) -> Run {
        let latest = latest_metrics(doc.metrics.into_iter().map(|m| LoggedMetric {
            key: m.key,
            value: m.value,
            step: m.step,
            timestamp: m.timestamp,
        }));
        Run {
            artifact_uri: format!("{}/runs/{}/artifacts", self.location(), doc.run_id),
            run_id: RunId(doc.run_id),
            experiment_id: ExperimentId(doc.experiment_id),
            status: doc.status,
            start_time: doc.start_time,
            end_time: doc.end_time,
            params: doc.params,
            metrics: metric_values(&latest),
            latest_metrics: latest,
            tags: doc.tags,
        }
    }

    /// Ends a run.
    pub async fn finish_run(&self, run: &RunId, status: RunStatus) -> Result<()> {
        let mut doc = self.run_doc(run).await?;
        doc.status = status;
        doc.end_time = Some(now_ms());
        self.write_doc(&run_doc_path(run), &doc).await
    }

    /// Deletes a run: it stays readable but is no longer listed.
    pub async fn delete_run(&self, run: &RunId) -> Result<()> {
        let mut doc = self.run_doc(run).await?;
        doc.deleted = true;
        self.write_doc(&run_doc_path(run), &doc).await
    }

    /// Registers a (checked, finished) run's artifact folder as the next version of `model`.
    /// The folder must hold at least one artifact.
    pub(super) async fn register_version(
        &self,
        model: &str,
        run: &Run,
        artifact_path: &str,
    ) -> Result<ModelVersion> {
        let files = self
            .lake
            .list(&artifact_path_of(&run.run_id, artifact_path))
            .await?;
        if files.is_empty() {
            return Err(registry_error(
                format!(
                    "registering {artifact_path} of run {} as {model}",
                    run.run_id
                ),
                "the run has no artifacts there; log the model first",
            ));
        }
        let versions = self
            .lake
            .list(&format!("{}/versions/", model_path(model)))
            .await?;
        let next = versions
            .iter()
            .filter_map(|meta| {
                meta.location
                    .filename()?
                    .strip_suffix(".json")?
                    .parse::<u64>()
                    .ok()
            })
            .max()
            .unwrap_or(0)
            + 1;
        let version = ModelVersion {
            name: model.to_owned(),
            version: next,
            run_id: run.run_id.clone(),
            source: format!("{}/{artifact_path}", run.artifact_uri),
            tags: BTreeMap::new(),
        };
        self.write_doc(&version_path(model, next), &version).await?;
        Ok(version)
    }

    /// One version of `model`.
    pub async fn get_version(&self, model: &str, version: u64) -> Result<ModelVersion> {
        self.read_doc(&version_path(model, version))
            .await?
            .ok_or_else(|| {
                registry_error(
                    format!("reading version {version} of {model}"),
                    "no such model version",
                )
            })
    }

    /// The version `alias` points to.
    pub async fn get_alias(&self, model: &str, alias: &str) -> Result<Option<ModelVersion>> {
        match self.read_doc::<AliasDoc>(&alias_path(model, alias)).await? {
            Some(doc) => self.get_version(model, doc.version).await.map(Some),
            None => Ok(None),
        }
    }

    /// Points `alias` at an existing `version`.
    pub async fn set_alias(&self, model: &str, alias: &str, version: u64) -> Result<()> {
        self.get_version(model, version).await?;
        self.write_doc(&alias_path(model, alias), &AliasDoc { version })
            .await
    }

    /// Sets a version tag.
    pub async fn set_version_tag(
        &self,
        model: &str,
        version: u64,
        key: &str,
        value: &str,
    ) -> Result<()> {
        let mut doc = self.get_version(model, version).await?;
        doc.tags.insert(key.to_owned(), value.to_owned());
        self.write_doc(&version_path(model, version), &doc).await
    }

    async fn run_doc(&self, run: &RunId) -> Result<RunDoc> {
        self.read_doc(&run_doc_path(run)).await?.ok_or_else(|| {
            registry_error(
                format!("using run {run}"),
                format!("no such run in {}", self.location()),
            )
        })
    }

    async fn read_doc<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        let Some(bytes) = self.lake.get(path).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            registry_error(
                format!("reading {path} in {}", self.lake.url()),
                format!("the document is corrupt: {e}"),
            )
        })
    }

    async fn write_doc<T: Serialize>(&self, path: &str, doc: &T) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(doc)
            .map_err(|e| Error::config(format!("cannot encode {path}: {e}")))?;
        self.lake.put(path, Bytes::from(bytes)).await
    }
}

/// Keeps letters, digits, `-`, `_` and `.`; anything else becomes `_`.
fn path_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The file name of a run's document.
const RUN_DOC: &str = "run.json";

fn run_doc_path(run: &RunId) -> String {
    format!("{REGISTRY_PREFIX}/runs/{}/{RUN_DOC}", path_safe(&run.0))
}

fn artifact_path_of(run: &RunId, path: &str) -> String {
    format!(
        "{REGISTRY_PREFIX}/runs/{}/artifacts/{path}",
        path_safe(&run.0)
    )
}

fn artifact_path(run: &RunId, path: &str) -> String {
    artifact_path_of(run, path)
}

fn model_path(model: &str) -> String {
    format!("{REGISTRY_PREFIX}/models/{}", path_safe(model))
}

fn version_path(model: &str, version: u64) -> String {
    format!("{}/versions/{version}.json", model_path(model))
}

fn alias_path(model: &str, alias: &str) -> String {
    format!("{}/aliases/{}.json", model_path(model), path_safe(alias))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ModelRegistry;

    fn registry() -> ModelRegistry {
        ModelRegistry::Local(LocalRegistry::new(Lake::in_memory()))
    }

    #[test]
    fn names_become_safe_paths() {
        assert_eq!(path_safe("bitcoin_prediction_s3"), "bitcoin_prediction_s3");
        assert_eq!(path_safe("a/b c..d"), "a_b_c..d");
        assert_eq!(
            version_path("pricecast-BTCUSDT-1m", 3),
            "registry/models/pricecast-BTCUSDT-1m/versions/3.json"
        );
    }

    #[tokio::test]
    async fn ended_runs_of_one_experiment_are_listed_in_their_window() {
        let registry = registry();
        assert_eq!(registry.find_experiment("exp").await.expect("find"), None);
        let experiment = registry.experiment("exp").await.expect("experiment");
        assert_eq!(
            registry.find_experiment("exp").await.expect("find"),
            Some(experiment.clone())
        );
        let other = registry.experiment("other").await.expect("other");
        let finished = registry.start_run(&experiment, &[]).await.expect("run");
        registry
            .log_metrics(&finished, &[Metric::new("mae", 2.0)])
            .await
            .expect("metric");
        registry
            .log_artifact(&finished, "model/model.json", Bytes::from_static(b"{}"))
            .await
            .expect("artifact");
        registry
            .finish_run(&finished, RunStatus::Finished)
            .await
            .expect("finish");
        let deleted = registry.start_run(&experiment, &[]).await.expect("deleted");
        registry
            .finish_run(&deleted, RunStatus::Failed)
            .await
            .expect("fail");
        registry.delete_run(&deleted).await.expect("delete");
        let running = registry.start_run(&experiment, &[]).await.expect("running");
        let elsewhere = registry.start_run(&other, &[]).await.expect("elsewhere");
        registry
            .finish_run(&elsewhere, RunStatus::Failed)
            .await
            .expect("fail");
        let all = RunSearch {
            page_size: 10,
            ..RunSearch::default()
        };
        let found = registry
            .search_runs(&experiment, &all)
            .await
            .expect("search");
        assert_eq!(
            found.len(),
            1,
            "not the running or the deleted run: {found:?}"
        );
        assert_eq!(found[0].run_id, finished);
        let kept = registry
            .get_run(&deleted)
            .await
            .expect("a deleted run is still read");
        assert_eq!(kept.status, RunStatus::Failed);
        assert!(found[0].has_ended() && found[0].start_time <= found[0].end_time.unwrap_or(0));
        assert_eq!(found[0].latest_metrics[0].value, 2.0);
        assert_ne!(found[0].run_id, running);
        let end = found[0].end_time.expect("ended");
        let later = RunSearch {
            ended_after: Some(end),
            ..all
        };
        assert!(
            registry
                .search_runs(&experiment, &later)
                .await
                .expect("search")
                .is_empty()
        );
        let before = RunSearch {
            ended_at_or_before: Some(end - 1),
            ..all
        };
        assert!(
            registry
                .search_runs(&experiment, &before)
                .await
                .expect("search")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_full_cycle_in_memory() {
        let registry = registry();
        let experiment = registry.experiment("exp").await.expect("experiment");
        assert_eq!(registry.experiment("exp").await.expect("again"), experiment);
        let run = registry
            .start_run(&experiment, &[("t".into(), "1".into())])
            .await
            .expect("run");
        registry
            .log_params(&run, &[("alpha".into(), "0.5".into())])
            .await
            .expect("params");
        assert!(
            registry
                .log_params(&run, &[("alpha".into(), "0.7".into())])
                .await
                .is_err()
        );
        registry
            .log_metrics(
                &run,
                &[
                    Metric::new("mae", 2.0),
                    Metric {
                        key: "mae".into(),
                        value: 1.5,
                        step: 1,
                    },
                ],
            )
            .await
            .expect("metrics");
        registry
            .log_artifact(&run, "model/model.json", Bytes::from_static(b"{}"))
            .await
            .expect("artifact");
        let unfinished = registry.register_version("m", &run, "model").await;
        assert!(unfinished.is_err(), "a running run is not registered");
        registry
            .finish_run(&run, RunStatus::Finished)
            .await
            .expect("finish");
        let found = registry.get_run(&run).await.expect("run");
        assert_eq!(found.metrics["mae"], 1.5);
        assert_eq!(found.status, RunStatus::Finished);
        assert!(
            registry
                .register_version("m", &run, "nothing")
                .await
                .is_err()
        );
        let v1 = registry
            .register_version("m", &run, "model")
            .await
            .expect("v1");
        let v2 = registry
            .register_version("m", &run, "model")
            .await
            .expect("v2");
        assert_eq!((v1.version, v2.version), (1, 2));
        assert_eq!(
            registry.get_alias("m", "champion").await.expect("none"),
            None
        );
        registry.set_alias("m", "champion", 2).await.expect("alias");
        let champion = registry.get_alias("m", "champion").await.expect("alias");
        assert_eq!(champion.map(|v| v.version), Some(2));
        assert!(registry.set_alias("m", "champion", 9).await.is_err());
        let bytes = registry
            .read_artifact(&run, "model/model.json")
            .await
            .expect("read");
        assert_eq!(&bytes[..], b"{}");
    }
}
