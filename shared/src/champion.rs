//! A registered model as the train job stores it and the API serves it: the artifact layout of
//! a model version and loading the version an alias (`champion`, `challenger`) points to.
//!
//! A training run's artifacts: the model's MLflow folder (see [`crate::model::mlflow_model`])
//! twice, byte for byte the same but for `MLmodel`'s `artifact_path`, under `model/` (registered
//! as the version, read by the API; older runs have only this one, without the
//! `python_function` flavor) and under `linear_regression_model/`, where the seed app's scripts
//! load it from (`mlflow.pyfunc.load_model("runs:/<id>/linear_regression_model")`):
//!
//! | path | what |
//! |---|---|
//! | `model/model.json` | the fitted model with its scaler and feature names ([`TrainedModel`]) |
//! | `model/MLmodel` | MLflow's description: `pricecast` and `python_function` flavors, signature |
//! | `model/code/pricecast_pyfunc.py` | the `python_function` loader (numpy and pandas) |
//! | `model/requirements.txt`, `model/python_env.yaml`, `model/conda.yaml` | its environment |
//! | `model/feature_schema.json` | the inputs the model takes, in order |
//! | `model/input_example.json` | one real input row |
//! | `linear_regression_model/…` | the same files |
//! | `metrics.json` | walk-forward metrics, per window and pooled, model and baseline |
//! | `charts/last_window.svg` | the last evaluation window: actual, predicted, baseline |

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::TrainedModel;
use crate::registry::{Bytes, ModelRegistry, ModelVersion, RunId};

/// The folder of a run's artifacts that is registered as the model version.
pub const MODEL_DIR: &str = "model";
/// The folder the seed app's scripts load the model from (the artifact path it logged its
/// scikit-learn model at).
pub const SEED_MODEL_DIR: &str = "linear_regression_model";
/// Every folder of a run that holds the model, in the order they are logged.
pub const MODEL_DIRS: [&str; 2] = [MODEL_DIR, SEED_MODEL_DIR];
/// The fitted model.
pub const MODEL_FILE: &str = "model/model.json";
/// MLflow's model description.
pub const MLMODEL_FILE: &str = "model/MLmodel";
/// The feature schema.
pub const FEATURE_SCHEMA_FILE: &str = "model/feature_schema.json";
/// One input row.
pub const INPUT_EXAMPLE_FILE: &str = "model/input_example.json";
/// The evaluation's metrics.
pub const METRICS_FILE: &str = "metrics.json";
/// The chart of the last evaluation window.
pub const CHART_FILE: &str = "charts/last_window.svg";

/// The model artifacts of a training run: the model's MLflow folder under each of
/// [`MODEL_DIRS`], as `(artifact path, contents)`; `input_example` is one input row
/// ([`TrainedModel::input_example_json`]).
pub fn model_artifacts(model: &TrainedModel, input_example: &str) -> Result<Vec<(String, Bytes)>> {
    let mut artifacts = Vec::new();
    for dir in MODEL_DIRS {
        for file in model.mlflow_files(dir, input_example)? {
            artifacts.push((format!("{dir}/{}", file.path), Bytes::from(file.contents)));
        }
    }
    Ok(artifacts)
}

/// Run metric names the train job logs and the API reports.
pub mod metric {
    /// Walk-forward MAE of the model, pooled over the evaluation windows.
    pub const MAE: &str = "mae";
    /// Walk-forward RMSE of the model.
    pub const RMSE: &str = "rmse";
    /// Walk-forward MAPE of the model, in percent.
    pub const MAPE: &str = "mape";
    /// Share of evaluated candles whose direction the model got right.
    pub const DIRECTION_ACCURACY: &str = "direction_accuracy";
    /// MAE of the naive "next close = last close" baseline on the same rows.
    pub const BASELINE_MAE: &str = "baseline_mae";
    /// RMSE of the baseline.
    pub const BASELINE_RMSE: &str = "baseline_rmse";
    /// MAPE of the baseline.
    pub const BASELINE_MAPE: &str = "baseline_mape";
    /// Direction accuracy of the baseline.
    pub const BASELINE_DIRECTION_ACCURACY: &str = "baseline_direction_accuracy";
    /// `1 − MAE / baseline MAE`: above zero when the model beats the baseline.
    pub const SKILL: &str = "skill";
    /// MAE on the most recent window only (what promotion compares).
    pub const LAST_WINDOW_MAE: &str = "last_window_mae";
    /// Lower end of the split-conformal interval, as `actual / predicted − 1`, over the
    /// evaluated candles at `PRICECAST_INTERVAL_LEVEL` (the name is the default level's: the
    /// 5% quantile).
    pub const RESIDUAL_LOW: &str = "residual_q05";
    /// Upper end of that interval (the 95% quantile at the default level).
    pub const RESIDUAL_HIGH: &str = "residual_q95";
    /// Diebold–Mariano statistic of the model's absolute errors against the baseline's
    /// (negative: the model's are smaller).
    pub const DM_STAT: &str = "dm_stat";
    /// Its two-sided p-value.
    pub const DM_P_VALUE: &str = "dm_p_value";
    /// Share of the evaluated candles inside an interval calibrated on earlier windows only.
    pub const COVERAGE: &str = "coverage";
    /// Mean width of those intervals, in percent of the forecast.
    pub const INTERVAL_WIDTH_PCT: &str = "interval_width_pct";
    /// Mean pinball loss of the interval's lower end at its quantile level, in price units.
    pub const PINBALL_LOWER: &str = "pinball_lower";
    /// Mean pinball loss of the upper end.
    pub const PINBALL_UPPER: &str = "pinball_upper";
}

/// A model version loaded from the registry, ready to predict.
#[derive(Debug)]
pub struct RegisteredModel {
    /// Registered model name.
    pub model_name: String,
    /// The alias it was loaded through.
    pub alias: String,
    /// The version.
    pub version: ModelVersion,
    /// The fitted model, shared by every alias that points at this version.
    pub model: Arc<TrainedModel>,
    /// The run's metrics (see [`metric`]).
    pub metrics: BTreeMap<String, f64>,
    /// The run's tags (data range, feature-set hash, promotion decision among them).
    pub tags: BTreeMap<String, String>,
    /// When it was loaded.
    pub loaded_at: DateTime<Utc>,
}

/// What a model version reports about itself (the API's `/models`, the predict response).
#[derive(Clone, Debug, Serialize)]
pub struct ModelSummary {
    /// Registered model name.
    pub name: String,
    /// Version number.
    pub version: u64,
    /// The alias it was loaded through.
    pub alias: String,
    /// The run that trained it.
    pub run_id: String,
    /// Model type (`linear`, `ridge`, …).
    pub model_type: String,
    /// Features it takes, in order.
    pub features: Vec<String>,
    /// Candles ahead it forecasts.
    pub horizon: u32,
    /// The run's metrics.
    pub metrics: BTreeMap<String, f64>,
    /// Version tags: the promotion decision and the numbers it was made on.
    pub promotion: BTreeMap<String, String>,
    /// First and last open time of the candles it was trained on.
    pub trained_from: Option<DateTime<Utc>>,
    /// Last open time it was trained on.
    pub trained_to: Option<DateTime<Utc>>,
    /// When the API loaded it.
    pub loaded_at: DateTime<Utc>,
}

impl RegisteredModel {
    /// Loads the version `alias` points to for `model_name`; `None` when the alias does not
    /// exist (no model trained and promoted yet).
    pub async fn load(
        registry: &ModelRegistry,
        model_name: &str,
        alias: &str,
    ) -> Result<Option<Self>> {
        let Some(version) = registry.get_alias(model_name, alias).await? else {
            return Ok(None);
        };
        Self::load_version(registry, model_name, alias, version)
            .await
            .map(Some)
    }

    /// Loads a known version.
    pub async fn load_version(
        registry: &ModelRegistry,
        model_name: &str,
        alias: &str,
        version: ModelVersion,
    ) -> Result<Self> {
        let bytes = registry.read_artifact(&version.run_id, MODEL_FILE).await?;
        let model = TrainedModel::from_bytes(&bytes).map_err(|e| Error::Model {
            operation: format!(
                "loading {model_name} version {} ({alias}) from run {}",
                version.version, version.run_id
            ),
            message: crate::telemetry::error_chain(&e),
        })?;
        Self::with_model(registry, model_name, alias, version, Arc::new(model)).await
    }

    /// A known version whose fitted model is already held (under another alias): reads only
    /// its run's metrics and tags, which may have changed since (a promotion decision).
    pub async fn with_model(
        registry: &ModelRegistry,
        model_name: &str,
        alias: &str,
        version: ModelVersion,
        model: Arc<TrainedModel>,
    ) -> Result<Self> {
        let run = registry.get_run(&version.run_id).await?;
        Ok(Self {
            model_name: model_name.to_owned(),
            alias: alias.to_owned(),
            version,
            model,
            metrics: run.metrics,
            tags: run.tags,
            loaded_at: Utc::now(),
        })
    }

    /// The run that trained it.
    pub fn run_id(&self) -> &RunId {
        &self.version.run_id
    }

    /// A metric of its training run.
    pub fn metric(&self, key: &str) -> Option<f64> {
        self.metrics.get(key).copied()
    }

    /// What it reports about itself.
    pub fn summary(&self) -> ModelSummary {
        let span = &self.model.trained_on;
        let time = |ms: i64| DateTime::<Utc>::from_timestamp_millis(ms);
        ModelSummary {
            name: self.model_name.clone(),
            version: self.version.version,
            alias: self.alias.clone(),
            run_id: self.version.run_id.0.clone(),
            model_type: self.model.params.kind.as_str().to_owned(),
            features: self.model.feature_names.clone(),
            horizon: self.model.horizon,
            metrics: self.metrics.clone(),
            promotion: self
                .version
                .tags
                .iter()
                .filter(|(k, _)| k.starts_with("promotion."))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            trained_from: time(span.first_open_ms),
            trained_to: time(span.last_open_ms),
            loaded_at: self.loaded_at,
        }
    }
}
