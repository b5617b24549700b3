//! An MLflow tracking server and model registry over its REST API (`/api/2.0/mlflow/…`), as
//! served by MLflow 2.x and 3.x.
//!
//! * 5xx, 429, timeouts and refused connections are retried with exponential backoff,
//!   `MLFLOW_HTTP_REQUEST_MAX_RETRIES` times; then [`Error::MlflowUnreachable`] names
//!   `MLFLOW_TRACKING_URI`.
//! * Any other error is [`Error::Mlflow`] with the endpoint and MLflow's `error_code` and
//!   `message`.
//! * Artifacts: a run whose artifact URI is `mlflow-artifacts:/…` goes through the server's
//!   artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/…`); `s3://bucket/prefix` is written
//!   straight to S3/MinIO with the lake's S3 settings, as MLflow's own client does.
//! * The token and password are never logged or printed.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use url::Url;

use super::config::{MlflowAuth, RegistryArgs};
use super::{
    ExperimentId, LoggedMetric, MAX_METRICS_PER_BATCH, MAX_PARAMS_PER_BATCH, MAX_TAGS_PER_BATCH,
    Metric, ModelVersion, Run, RunId, RunSearch, RunStatus, latest_metrics, metric_values, now_ms,
    registry_error,
};
use crate::error::{Error, Result};
use crate::lake::{Lake, LakeArgs, LakeUrl};
use crate::settings::{redact_url, with_trailing_slash};

const API: &str = "api/2.0/mlflow/";
const ARTIFACTS_API: &str = "api/2.0/mlflow-artifacts/artifacts";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MIN_RETRY_DELAY: Duration = Duration::from_millis(200);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// A client of one MLflow tracking server.
pub struct MlflowRegistry {
    http: reqwest::Client,
    base: Url,
    auth: MlflowAuth,
    max_retries: u32,
    /// S3 settings for runs whose artifacts are on `s3://`.
    lake: LakeArgs,
    /// Artifact URIs of the runs seen, so artifact calls need no extra `runs/get`.
    artifact_uris: Mutex<HashMap<RunId, String>>,
}

impl fmt::Debug for MlflowRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MlflowRegistry")
            .field("uri", &self.location())
            .field("auth", &self.auth)
            .finish()
    }
}

/// Where a run's artifacts are.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ArtifactLocation {
    /// Behind the server's artifact proxy, at this path.
    Proxy(String),
    /// In an S3 bucket under a prefix.
    S3 { bucket: String, prefix: String },
}

impl ArtifactLocation {
    /// Parses a run's artifact URI.
    fn parse(uri: &str) -> Result<Self> {
        if let Some(rest) = uri.strip_prefix("mlflow-artifacts:") {
            // `mlflow-artifacts:/1/abc/artifacts` or `mlflow-artifacts://host:port/1/abc/artifacts`.
            let path = match rest.strip_prefix("//") {
                Some(with_host) => with_host.split_once('/').map_or("", |(_, path)| path),
                None => rest,
            };
            return Ok(Self::Proxy(path.trim_matches('/').to_owned()));
        }
        match uri.parse::<LakeUrl>() {
            Ok(LakeUrl::S3 { bucket, prefix }) => Ok(Self::S3 { bucket, prefix }),
            _ => Err(registry_error(
                format!("using artifact location {uri}"),
                "only mlflow-artifacts:/ (start the server with --serve-artifacts) and s3:// artifact roots are supported",
            )),
        }
    }
}

/// One failed attempt, before the retry decision.
#[derive(Debug)]
enum Failure {
    /// Worth retrying: what failed, and the HTTP client's error when it was one.
    Transient(String, Option<reqwest::Error>),
    /// MLflow answered with an error.
    Api {
        status: u16,
        code: String,
        message: String,
    },
}

/// MLflow's error body.
#[derive(Deserialize, Default)]
struct ApiError {
    #[serde(default)]
    error_code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct KeyValue {
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
struct WireExperiment {
    experiment_id: String,
    #[serde(default)]
    lifecycle_stage: String,
}

#[derive(Deserialize)]
struct WireRunInfo {
    run_id: String,
    experiment_id: String,
    status: String,
    #[serde(default)]
    start_time: i64,
    #[serde(default)]
    end_time: Option<i64>,
    #[serde(default)]
    artifact_uri: String,
}

#[derive(Deserialize)]
struct WireMetric {
    key: String,
    value: f64,
    #[serde(default)]
    step: i64,
    #[serde(default)]
    timestamp: i64,
}

#[derive(Deserialize, Default)]
struct WireRunData {
    #[serde(default)]
    metrics: Vec<WireMetric>,
    #[serde(default)]
    params: Vec<KeyValue>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct WireRun {
    info: WireRunInfo,
    #[serde(default)]
    data: WireRunData,
}

impl WireRun {
    fn into_run(self) -> Result<Run> {
        let WireRun { info, data } = self;
        let status = RunStatus::parse(&info.status).ok_or_else(|| {
            registry_error(
                format!("reading run {}", info.run_id),
                format!("unknown run status {:?}", info.status),
            )
        })?;
        let latest = latest_metrics(data.metrics.into_iter().map(|m| LoggedMetric {
            key: m.key,
            value: m.value,
            step: m.step,
            timestamp: m.timestamp,
        }));
        Ok(Run {
            run_id: RunId(info.run_id),
            experiment_id: ExperimentId(info.experiment_id),
            status,
            start_time: info.start_time,
            end_time: info.end_time,
            artifact_uri: info.artifact_uri,
            params: data.params.into_iter().map(|p| (p.key, p.value)).collect(),
            metrics: metric_values(&latest),
            latest_metrics: latest,
            tags: data.tags.into_iter().map(|t| (t.key, t.value)).collect(),
        })
    }
}

/// One page of `runs/search`.
#[derive(Deserialize)]
struct WireRunsPage {
    #[serde(default)]
    runs: Vec<WireRun>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct WireModelVersion {
    name: String,
    version: String,
    #[serde(default)]
    run_id: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

impl WireModelVersion {
    fn into_version(self) -> Result<ModelVersion> {
        let version = self.version.parse().map_err(|_| {
            registry_error(
                format!("reading a version of {}", self.name),
                format!("MLflow sent version {:?}, not a number", self.version),
            )
        })?;
        Ok(ModelVersion {
            name: self.name,
            version,
            run_id: RunId(self.run_id),
            source: self.source,
            tags: self.tags.into_iter().map(|t| (t.key, t.value)).collect(),
        })
    }
}

impl MlflowRegistry {
    /// A client of the server at `MLFLOW_TRACKING_URI`; `lake` gives the S3 settings for runs
    /// whose artifacts are on `s3://`. Fails on missing or half-set credentials.
    pub fn new(args: &RegistryArgs, lake: LakeArgs) -> Result<Self> {
        let Some(uri) = &args.mlflow_tracking_uri else {
            return Err(Error::config(
                "MLFLOW_TRACKING_URI is not set: use the local registry instead",
            ));
        };
        let http = reqwest::Client::builder()
            .timeout(args.request_timeout())
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("pricecast/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: with_trailing_slash(uri.clone()),
            auth: args.auth()?,
            max_retries: args.mlflow_http_request_max_retries,
            lake,
            artifact_uris: Mutex::new(HashMap::new()),
        })
    }

    /// The tracking URI, without any password.
    pub fn location(&self) -> String {
        redact_url(self.base.as_str())
    }

    /// The experiment's id, created when missing. A deleted experiment is an error.
    pub async fn experiment(&self, name: &str) -> Result<ExperimentId> {
        #[derive(Deserialize)]
        struct Found {
            experiment: WireExperiment,
        }
        #[derive(Deserialize)]
        struct Created {
            experiment_id: String,
        }
        let endpoint = "experiments/get-by-name";
        match self
            .call::<Found>(Method::GET, endpoint, &[("experiment_name", name)], None)
            .await
        {
            Ok(found) if found.experiment.lifecycle_stage == "deleted" => Err(registry_error(
                format!("opening experiment {name}"),
                "the experiment is deleted; restore it in MLflow or set another MLFLOW_EXPERIMENT_NAME",
            )),
            Ok(found) => Ok(ExperimentId(found.experiment.experiment_id)),
            Err(Failure::Api { code, .. }) if code == "RESOURCE_DOES_NOT_EXIST" => {
                let body = json!({ "name": name });
                let created: Created = self
                    .call(Method::POST, "experiments/create", &[], Some(body))
                    .await
                    .map_err(|f| self.error("experiments/create", f))?;
                tracing::info!(experiment = name, id = %created.experiment_id, "MLflow experiment created");
                Ok(ExperimentId(created.experiment_id))
            }
            Err(failure) => Err(self.error(endpoint, failure)),
        }
    }

    /// Starts a run with `tags`.
    pub async fn start_run(
        &self,
        experiment: &ExperimentId,
        tags: &[(String, String)],
    ) -> Result<RunId> {
        #[derive(Deserialize)]
        struct Created {
            run: WireRun,
        }
        let body = json!({
            "experiment_id": experiment.0,
            "start_time": now_ms(),
            "tags": key_values(tags),
        });
        let created: Created = self
            .call(Method::POST, "runs/create", &[], Some(body))
            .await
            .map_err(|f| self.error("runs/create", f))?;
        let run = RunId(created.run.info.run_id);
        self.remember(&run, created.run.info.artifact_uri);
        Ok(run)
    }

    /// Logs params, [`MAX_PARAMS_PER_BATCH`] per call.
    pub async fn log_params(&self, run: &RunId, params: &[(String, String)]) -> Result<()> {
        for chunk in params.chunks(MAX_PARAMS_PER_BATCH) {
            self.log_batch(run, json!({ "params": key_values(chunk) }))
                .await?;
        }
        Ok(())
    }

    /// Logs metrics, [`MAX_METRICS_PER_BATCH`] per call.
    pub async fn log_metrics(&self, run: &RunId, metrics: &[Metric]) -> Result<()> {
        let timestamp = now_ms();
        for chunk in metrics.chunks(MAX_METRICS_PER_BATCH) {
            let metrics: Vec<Value> = chunk
                .iter()
                .map(|m| json!({"key": m.key, "value": m.value, "timestamp": timestamp, "step": m.step}))
                .collect();
            self.log_batch(run, json!({ "metrics": metrics })).await?;
        }
        Ok(())
    }

    /// Sets run tags, [`MAX_TAGS_PER_BATCH`] per call.
    pub async fn set_tags(&self, run: &RunId, tags: &[(String, String)]) -> Result<()> {
        for chunk in tags.chunks(MAX_TAGS_PER_BATCH) {
            self.log_batch(run, json!({ "tags": key_values(chunk) }))
                .await?;
        }
        Ok(())
    }

    async fn log_batch(&self, run: &RunId, mut body: Value) -> Result<()> {
        body["run_id"] = json!(run.0);
        self.call::<Value>(Method::POST, "runs/log-batch", &[], Some(body))
            .await
            .map(|_| ())
            .map_err(|f| self.error("runs/log-batch", f))
    }

    /// Stores an artifact of the run, through the artifact proxy or straight to S3.
    pub async fn log_artifact(&self, run: &RunId, path: &str, bytes: Bytes) -> Result<()> {
        match self.artifact_location(run).await? {
            ArtifactLocation::Proxy(root) => {
                let url = self.artifact_url(&root, path)?;
                self.send(Method::PUT, url, Some(Payload::Bytes(bytes)))
                    .await
                    .map(|_| ())
                    .map_err(|f| self.error("mlflow-artifacts/artifacts (upload)", f))
            }
            ArtifactLocation::S3 { bucket, prefix } => {
                self.s3_lake(bucket, prefix).await?.put(path, bytes).await
            }
        }
    }

    /// Reads an artifact of the run back.
    pub async fn read_artifact(&self, run: &RunId, path: &str) -> Result<Bytes> {
        let missing = || {
            registry_error(
                format!("reading artifact {path} of run {run}"),
                "no such artifact",
            )
        };
        match self.artifact_location(run).await? {
            ArtifactLocation::Proxy(root) => {
                let url = self.artifact_url(&root, path)?;
                match self.send(Method::GET, url, None).await {
                    Ok(bytes) => Ok(bytes),
                    Err(Failure::Api { status: 404, .. }) => Err(missing()),
                    Err(f) => Err(self.error("mlflow-artifacts/artifacts (download)", f)),
                }
            }
            ArtifactLocation::S3 { bucket, prefix } => self
                .s3_lake(bucket, prefix)
                .await?
                .get(path)
                .await?
                .ok_or_else(missing),
        }
    }

    /// Reads a run.
    pub async fn get_run(&self, run: &RunId) -> Result<Run> {
        #[derive(Deserialize)]
        struct Found {
            run: WireRun,
        }
        let found: Found = self
            .call(Method::GET, "runs/get", &[("run_id", &run.0)], None)
            .await
            .map_err(|f| self.error("runs/get", f))?;
        self.remember(run, found.run.info.artifact_uri.clone());
        found.run.into_run()
    }

    /// The experiment's id; `None` when there is none by that name, or it is deleted.
    pub async fn find_experiment(&self, name: &str) -> Result<Option<ExperimentId>> {
        #[derive(Deserialize)]
        struct Found {
            experiment: WireExperiment,
        }
        let endpoint = "experiments/get-by-name";
        match self
            .call::<Found>(Method::GET, endpoint, &[("experiment_name", name)], None)
            .await
        {
            Ok(found) if found.experiment.lifecycle_stage == "deleted" => Ok(None),
            Ok(found) => Ok(Some(ExperimentId(found.experiment.experiment_id))),
            Err(Failure::Api { code, .. }) if code == "RESOURCE_DOES_NOT_EXIST" => Ok(None),
            Err(failure) => Err(self.error(endpoint, failure)),
        }
    }

    /// The active runs of `experiment` that ended in the search's window, following
    /// `next_page_token` until the last page.
    pub async fn search_runs(
        &self,
        experiment: &ExperimentId,
        search: &RunSearch,
    ) -> Result<Vec<Run>> {
        let endpoint = "runs/search";
        let mut runs = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut body = json!({
                "experiment_ids": [experiment.0],
                "filter": search_filter(search),
                "run_view_type": "ACTIVE_ONLY",
                "max_results": search.page_size(),
                "order_by": ["attributes.end_time ASC"],
            });
            if let Some(token) = &page_token {
                body["page_token"] = json!(token);
            }
            let page: WireRunsPage = self
                .call(Method::POST, endpoint, &[], Some(body))
                .await
                .map_err(|f| self.error(endpoint, f))?;
            for run in page.runs {
                self.remember(
                    &RunId(run.info.run_id.clone()),
                    run.info.artifact_uri.clone(),
                );
                runs.push(run.into_run()?);
            }
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(token) => page_token = Some(token),
                None => return Ok(runs),
            }
        }
    }

    /// Ends a run.
    pub async fn finish_run(&self, run: &RunId, status: RunStatus) -> Result<()> {
        let body = json!({ "run_id": run.0, "status": status.as_str(), "end_time": now_ms() });
        self.call::<Value>(Method::POST, "runs/update", &[], Some(body))
            .await
            .map(|_| ())
            .map_err(|f| self.error("runs/update", f))
    }

    /// Deletes a run (`runs/delete`: its lifecycle stage becomes `deleted`).
    pub async fn delete_run(&self, run: &RunId) -> Result<()> {
        let body = json!({ "run_id": run.0 });
        self.call::<Value>(Method::POST, "runs/delete", &[], Some(body))
            .await
            .map(|_| ())
            .map_err(|f| self.error("runs/delete", f))
    }

    /// Registers `artifact_path` of a (checked, finished) run as a new version of `model`.
    pub(super) async fn register_version(
        &self,
        model: &str,
        run: &Run,
        artifact_path: &str,
    ) -> Result<ModelVersion> {
        #[derive(Deserialize)]
        struct Created {
            model_version: WireModelVersion,
        }
        let body = json!({ "name": model });
        match self
            .call::<Value>(Method::POST, "registered-models/create", &[], Some(body))
            .await
        {
            Ok(_) => tracing::info!(model, "MLflow registered model created"),
            Err(Failure::Api { code, .. }) if code == "RESOURCE_ALREADY_EXISTS" => {}
            Err(f) => return Err(self.error("registered-models/create", f)),
        }
        let source = format!("{}/{artifact_path}", run.artifact_uri.trim_end_matches('/'));
        let body = json!({ "name": model, "source": source, "run_id": run.run_id.0 });
        let created: Created = self
            .call(Method::POST, "model-versions/create", &[], Some(body))
            .await
            .map_err(|f| self.error("model-versions/create", f))?;
        created.model_version.into_version()
    }

    /// One version of `model`.
    pub async fn get_version(&self, model: &str, version: u64) -> Result<ModelVersion> {
        #[derive(Deserialize)]
        struct Found {
            model_version: WireModelVersion,
        }
        let version = version.to_string();
        let found: Found = self
            .call(
                Method::GET,
                "model-versions/get",
                &[("name", model), ("version", &version)],
                None,
            )
            .await
            .map_err(|f| self.error("model-versions/get", f))?;
        found.model_version.into_version()
    }

    /// The version `alias` points to; `None` when the alias or the model does not exist.
    pub async fn get_alias(&self, model: &str, alias: &str) -> Result<Option<ModelVersion>> {
        #[derive(Deserialize)]
        struct Found {
            model_version: WireModelVersion,
        }
        let endpoint = "registered-models/alias";
        match self
            .call::<Found>(
                Method::GET,
                endpoint,
                &[("name", model), ("alias", alias)],
                None,
            )
            .await
        {
            Ok(found) => found.model_version.into_version().map(Some),
            Err(Failure::Api { code, message, .. }) if alias_missing(&code, &message) => Ok(None),
            Err(f) => Err(self.error(endpoint, f)),
        }
    }

    /// Points `alias` at `version`.
    pub async fn set_alias(&self, model: &str, alias: &str, version: u64) -> Result<()> {
        let body = json!({ "name": model, "alias": alias, "version": version.to_string() });
        self.call::<Value>(Method::POST, "registered-models/alias", &[], Some(body))
            .await
            .map(|_| ())
            .map_err(|f| self.error("registered-models/alias", f))
    }

    /// Sets a version tag.
    pub async fn set_version_tag(
        &self,
        model: &str,
        version: u64,
        key: &str,
        value: &str,
    ) -> Result<()> {
        let body =
            json!({ "name": model, "version": version.to_string(), "key": key, "value": value });
        self.call::<Value>(Method::POST, "model-versions/set-tag", &[], Some(body))
            .await
            .map(|_| ())
            .map_err(|f| self.error("model-versions/set-tag", f))
    }

    fn remember(&self, run: &RunId, artifact_uri: String) {
        if let Ok(mut uris) = self.artifact_uris.lock() {
            uris.insert(run.clone(), artifact_uri);
        }
    }

    async fn artifact_location(&self, run: &RunId) -> Result<ArtifactLocation> {
        let cached = self
            .artifact_uris
            .lock()
            .ok()
            .and_then(|uris| uris.get(run).cloned());
        let uri = match cached {
            Some(uri) => uri,
            None => self.get_run(run).await?.artifact_uri,
        };
        ArtifactLocation::parse(&uri)
    }

    /// `<base>/api/2.0/mlflow-artifacts/artifacts/<root>/<path>`, each segment encoded.
    fn artifact_url(&self, root: &str, path: &str) -> Result<Url> {
        let mut url = self
            .base
            .join(ARTIFACTS_API)
            .map_err(|e| Error::config(format!("MLFLOW_TRACKING_URI cannot take a path: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| Error::config("MLFLOW_TRACKING_URI cannot take a path"))?
            .extend(root.split('/').filter(|s| !s.is_empty()))
            .extend(path.split('/'));
        Ok(url)
    }

    /// The bucket prefix of a run's artifacts as a lake, with the lake's S3 settings.
    async fn s3_lake(&self, bucket: String, prefix: String) -> Result<Lake> {
        let mut args = self.lake.clone();
        args.lake_url = LakeUrl::S3 { bucket, prefix };
        args.create_bucket = false;
        Lake::open(&args).await
    }

    /// Calls a JSON endpoint under `/api/2.0/mlflow/`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        endpoint: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> std::result::Result<T, Failure> {
        let mut url = self
            .base
            .join(API)
            .and_then(|api| api.join(endpoint))
            .map_err(|e| Failure::Transient(format!("bad URL for {endpoint}: {e}"), None))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let bytes = self.send(method, url, body.map(Payload::Json)).await?;
        let bytes = if bytes.is_empty() {
            Bytes::from_static(b"{}")
        } else {
            bytes
        };
        serde_json::from_slice(&bytes).map_err(|e| Failure::Api {
            status: 200,
            code: String::new(),
            message: format!(
                "unexpected answer ({e}): {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            ),
        })
    }

    /// Sends one request with retries of transient failures.
    async fn send(
        &self,
        method: Method,
        url: Url,
        payload: Option<Payload>,
    ) -> std::result::Result<Bytes, Failure> {
        let attempts = AtomicU32::new(0);
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(MIN_RETRY_DELAY)
            .with_max_delay(MAX_RETRY_DELAY)
            .with_max_times(self.max_retries as usize);
        let result = (|| async {
            attempts.fetch_add(1, Ordering::Relaxed);
            self.send_once(method.clone(), url.clone(), payload.clone())
                .await
        })
        .retry(backoff)
        .when(|f| matches!(f, Failure::Transient(..)))
        .notify(|f, delay| {
            tracing::warn!(
                url = %redact_url(url.as_str()),
                attempt = attempts.load(Ordering::Relaxed),
                retry_in_ms = delay.as_millis() as u64,
                error.message = ?f,
                "MLflow request failed, retrying"
            );
        })
        .await;
        result.map_err(|f| match f {
            Failure::Transient(detail, source) => Failure::Transient(
                format!("{detail} (attempts: {})", attempts.load(Ordering::Relaxed)),
                source,
            ),
            api => api,
        })
    }

    async fn send_once(
        &self,
        method: Method,
        url: Url,
        payload: Option<Payload>,
    ) -> std::result::Result<Bytes, Failure> {
        let mut request = self.http.request(method, url);
        request = match &self.auth {
            MlflowAuth::None => request,
            MlflowAuth::Bearer(token) => request.bearer_auth(token.expose_secret()),
            MlflowAuth::Basic { username, password } => {
                request.basic_auth(username, Some(password.expose_secret()))
            }
        };
        request = match payload {
            None => request,
            Some(Payload::Json(body)) => request.json(&body),
            Some(Payload::Bytes(bytes)) => request
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(bytes),
        };
        let response = request
            .send()
            .await
            .map_err(|e| Failure::Transient(request_failure(&e), Some(e)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Failure::Transient("reading the answer failed".to_owned(), Some(e)))?;
        if status.is_success() {
            return Ok(bytes);
        }
        if status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
        {
            return Err(Failure::Transient(
                format!("HTTP {}: {}", status.as_u16(), body_excerpt(&bytes)),
                None,
            ));
        }
        let error: ApiError = serde_json::from_slice(&bytes).unwrap_or_default();
        Err(Failure::Api {
            status: status.as_u16(),
            message: if error.message.is_empty() {
                body_excerpt(&bytes)
            } else {
                error.message
            },
            code: error.error_code,
        })
    }

    /// Turns a final failure into the library's error.
    fn error(&self, endpoint: &str, failure: Failure) -> Error {
        match failure {
            Failure::Transient(detail, source) => {
                let attempts = self.max_retries + 1;
                Error::MlflowUnreachable {
                    uri: self.location(),
                    endpoint: endpoint.to_owned(),
                    attempts,
                    detail,
                    source,
                }
            }
            Failure::Api {
                status,
                code,
                message,
            } => Error::Mlflow {
                endpoint: endpoint.to_owned(),
                status,
                code,
                message,
            },
        }
    }
}

/// What kind of request failure `e` is; its own text follows in the error's chain.
fn request_failure(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the request timed out".to_owned()
    } else if e.is_connect() {
        "the connection failed".to_owned()
    } else {
        "the request failed".to_owned()
    }
}

/// A request body, cheap to clone for retries.
#[derive(Clone)]
enum Payload {
    Json(Value),
    Bytes(Bytes),
}

/// MLflow's `[{"key", "value"}]` form.
fn key_values(pairs: &[(String, String)]) -> Vec<Value> {
    pairs
        .iter()
        .map(|(key, value)| json!({ "key": key, "value": value }))
        .collect()
}

/// The `runs/search` filter of a search window: only ended runs have an end time.
fn search_filter(search: &RunSearch) -> String {
    let mut clauses = vec!["attributes.end_time >= 0".to_owned()];
    if let Some(after) = search.ended_after {
        clauses.push(format!("attributes.end_time > {after}"));
    }
    if let Some(before) = search.ended_at_or_before {
        clauses.push(format!("attributes.end_time <= {before}"));
    }
    clauses.join(" AND ")
}

/// Whether an error from `registered-models/alias` means "no such alias or model" (MLflow
/// answers `RESOURCE_DOES_NOT_EXIST`, or `INVALID_PARAMETER_VALUE` "alias … not found").
fn alias_missing(code: &str, message: &str) -> bool {
    code == "RESOURCE_DOES_NOT_EXIST"
        || (code == "INVALID_PARAMETER_VALUE" && message.contains("not found"))
}

fn body_excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(500)]);
    text.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_uris_are_parsed() {
        assert_eq!(
            ArtifactLocation::parse("mlflow-artifacts:/1/abc/artifacts").expect("proxy"),
            ArtifactLocation::Proxy("1/abc/artifacts".into())
        );
        assert_eq!(
            ArtifactLocation::parse("mlflow-artifacts://mlflow:5000/1/abc/artifacts")
                .expect("proxy with host"),
            ArtifactLocation::Proxy("1/abc/artifacts".into())
        );
        assert_eq!(
            ArtifactLocation::parse("s3://mlflow/runs/1/abc/artifacts").expect("s3"),
            ArtifactLocation::S3 {
                bucket: "mlflow".into(),
                prefix: "runs/1/abc/artifacts".into()
            }
        );
        let err = ArtifactLocation::parse("file:///mlruns/1/abc/artifacts")
            .expect_err("local paths are the server's")
            .to_string();
        assert!(err.contains("--serve-artifacts"), "{err}");
    }

    #[test]
    fn artifact_urls_keep_a_path_prefix_and_encode_segments() {
        let mut args = RegistryArgs::mlflow("https://example.com/mlflow".parse().expect("url"));
        args.mlflow_tracking_token = Some("secret-token".to_owned().into());
        let registry =
            MlflowRegistry::new(&args, LakeArgs::for_url(LakeUrl::Memory)).expect("client");
        let url = registry
            .artifact_url("1/abc/artifacts", "model/my model.json")
            .expect("url");
        assert_eq!(
            url.as_str(),
            "https://example.com/mlflow/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/model/my%20model.json"
        );
        assert!(!format!("{registry:?}").contains("secret-token"));
    }

    #[test]
    fn latest_metric_is_the_last_step() {
        let m = |key: &str, value, step, timestamp| WireMetric {
            key: key.into(),
            value,
            step,
            timestamp,
        };
        let run = WireRun {
            info: WireRunInfo {
                run_id: "r".into(),
                experiment_id: "1".into(),
                status: "FINISHED".into(),
                start_time: 10,
                end_time: Some(20),
                artifact_uri: String::new(),
            },
            data: WireRunData {
                metrics: vec![
                    m("mae", 3.0, 2, 1),
                    m("mae", 1.0, 1, 5),
                    m("rmse", 2.0, 0, 0),
                ],
                ..WireRunData::default()
            },
        }
        .into_run()
        .expect("run");
        assert_eq!(run.metrics["mae"], 3.0);
        assert_eq!(run.metrics["rmse"], 2.0);
        assert_eq!(
            run.latest_metrics[0],
            LoggedMetric {
                key: "mae".into(),
                value: 3.0,
                step: 2,
                timestamp: 1
            }
        );
        assert_eq!((run.start_time, run.end_time), (10, Some(20)));
    }

    #[test]
    fn search_filters_on_the_end_time_window() {
        assert_eq!(
            search_filter(&RunSearch::default()),
            "attributes.end_time >= 0"
        );
        let search = RunSearch {
            ended_after: Some(1_000),
            ended_at_or_before: Some(2_000),
            page_size: 10,
        };
        assert_eq!(
            search_filter(&search),
            "attributes.end_time >= 0 AND attributes.end_time > 1000 AND attributes.end_time <= 2000"
        );
    }

    #[test]
    fn missing_aliases_are_recognised() {
        assert!(alias_missing(
            "RESOURCE_DOES_NOT_EXIST",
            "Registered Model not found"
        ));
        assert!(alias_missing(
            "INVALID_PARAMETER_VALUE",
            "Registered model alias champion not found."
        ));
        assert!(!alias_missing("INVALID_PARAMETER_VALUE", "bad name"));
    }
}
