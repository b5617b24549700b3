//! A trained model as an MLflow model folder, loadable by Pricecast and by
//! `mlflow.pyfunc.load_model` alike.
//!
//! | file | what |
//! |---|---|
//! | `MLmodel` | MLflow's description: flavors `pricecast` and `python_function`, the signature |
//! | `model.json` | the fitted model ([`TrainedModel::to_bytes`]), read by both flavors |
//! | `code/pricecast_pyfunc.py` | the `python_function` loader (numpy and pandas only) |
//! | `requirements.txt`, `python_env.yaml`, `conda.yaml` | the loader's Python environment |
//! | `feature_schema.json` | the signature's inputs, in order |
//! | `input_example.json` | one real input row (pandas `split` orient) |
//!
//! The signature's inputs are the features, then [`LAST_CLOSE_INPUT`], the close the forecast
//! starts from. `last_close` is optional exactly when the model takes [`ANCHOR_FEATURE`]
//! (`price_t-1`): the loader then anchors a frame without it on `price_t-1`, so a frame of the
//! seed app's columns alone is enough input. For other models it is required, and MLflow's
//! schema enforcement rejects a frame without it. The output is [`PREDICTED_CLOSE_OUTPUT`]; the
//! loader's `predict` returns a 1-D array of closes, as scikit-learn models do.

use serde::Serialize;

use super::trained::{
    ANCHOR_FEATURE, INPUT_EXAMPLE_FILE, LAST_CLOSE_INPUT, MODEL_FILE, PREDICTED_CLOSE_OUTPUT,
};
use super::{MODEL_FORMAT_VERSION, SMARTCORE_VERSION, TrainedModel};
use crate::{Error, Result};

/// MLflow's description of the model, next to the model file.
pub const MLMODEL_FILE: &str = "MLmodel";
/// The signature's inputs as a JSON column schema.
pub const FEATURE_SCHEMA_FILE: &str = "feature_schema.json";
/// The folder of the model that MLflow puts on `sys.path` before importing the loader.
pub const PYFUNC_CODE_DIR: &str = "code";
/// The loader module `mlflow.pyfunc.load_model` imports.
pub const PYFUNC_LOADER_MODULE: &str = "pricecast_pyfunc";
/// The loader's file in the model folder.
pub const PYFUNC_LOADER_FILE: &str = "code/pricecast_pyfunc.py";
/// The loader's source, logged with every model.
pub const PYFUNC_LOADER_SOURCE: &str = include_str!("../../python/pricecast_pyfunc.py");
/// The loader's pip requirements.
pub const REQUIREMENTS_FILE: &str = "requirements.txt";
/// The loader's virtualenv description (MLflow's `python_env.yaml`).
pub const PYTHON_ENV_FILE: &str = "python_env.yaml";
/// The loader's conda environment (MLflow's `conda.yaml`).
pub const CONDA_ENV_FILE: &str = "conda.yaml";
/// The Python the loader is tested with (the `python_function` flavor's `python_version`);
/// MLflow only warns when another minor version loads it.
pub const PYFUNC_PYTHON_VERSION: &str = "3.11";
/// What the loader imports besides the standard library.
pub const PYFUNC_REQUIREMENTS: [&str; 2] = ["numpy", "pandas"];

/// One file of a model folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelFile {
    /// Its path inside the folder (`/`-separated).
    pub path: &'static str,
    /// Its contents.
    pub contents: Vec<u8>,
}

/// The `MLmodel` file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MlModel {
    /// The folder's path among the run's artifacts.
    pub artifact_path: String,
    /// How to load the model.
    pub flavors: Flavors,
    /// Where the input example is.
    pub saved_input_example_info: InputExampleInfo,
    /// Inputs and outputs.
    pub signature: Signature,
    /// When the file was written (UTC, MLflow's format).
    pub utc_time_created: String,
}

/// The model's two flavors.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Flavors {
    /// Pricecast's own: what the model is.
    pub pricecast: PricecastFlavor,
    /// MLflow's generic one, loaded by `mlflow.pyfunc.load_model`.
    pub python_function: PyfuncFlavor,
}

/// The `pricecast` flavor.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PricecastFlavor {
    /// `linear`, `ridge`, `lasso`, `elastic-net`, `random-forest` or `naive`.
    pub model_type: String,
    /// The model file.
    pub model_file: String,
    /// Its layout version.
    pub format_version: u32,
    /// The smartcore release it was fitted with.
    pub smartcore_version: String,
    /// The Pricecast release that trained it.
    pub pricecast_version: String,
    /// Candles ahead.
    pub horizon: u32,
    /// Candle interval in milliseconds.
    pub interval_ms: i64,
    /// What the regression predicts.
    pub target: String,
    /// The features, in order.
    pub feature_names: Vec<String>,
    /// The input holding the close the forecast starts from.
    pub last_close_input: String,
    /// The feature a forecast starts from when that input is absent; `None` when the model
    /// does not take it (the input is then required).
    pub anchor_without_last_close: Option<String>,
}

/// The `python_function` flavor.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PyfuncFlavor {
    /// The module whose `_load_pyfunc(data)` returns the model.
    pub loader_module: String,
    /// The folder put on `sys.path` first.
    pub code: String,
    /// The file handed to `_load_pyfunc`.
    pub data: String,
    /// The environment files.
    pub env: PyfuncEnv,
    /// The method MLflow calls.
    pub predict_fn: String,
    /// The Python the loader is tested with.
    pub python_version: String,
}

/// The environment files of the `python_function` flavor.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PyfuncEnv {
    /// `conda.yaml`.
    pub conda: String,
    /// `python_env.yaml`.
    pub virtualenv: String,
}

/// Where the input example is and how it is encoded.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InputExampleInfo {
    /// The file, in the model folder.
    pub artifact_path: String,
    /// `dataframe`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `split`.
    pub pandas_orient: String,
}

/// The signature: column schemas as JSON text, as MLflow stores them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Signature {
    /// The input columns.
    pub inputs: String,
    /// The output columns.
    pub outputs: String,
    /// No inference parameters.
    pub params: Option<String>,
}

/// MLflow's `python_env.yaml`.
#[derive(Serialize)]
struct PythonEnv {
    python: &'static str,
    build_dependencies: Vec<&'static str>,
    dependencies: Vec<String>,
}

/// MLflow's `conda.yaml`.
#[derive(Serialize)]
struct CondaEnv {
    name: &'static str,
    channels: Vec<&'static str>,
    dependencies: Vec<CondaDependency>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum CondaDependency {
    Package(String),
    Pip { pip: Vec<&'static str> },
}

impl TrainedModel {
    /// Whether a forecast needs [`LAST_CLOSE_INPUT`]: only when the model does not take
    /// [`ANCHOR_FEATURE`].
    pub fn needs_last_close(&self) -> bool {
        !self.feature_names.iter().any(|f| f == ANCHOR_FEATURE)
    }

    /// The MLflow column schema of the inputs: the features (required), then
    /// [`LAST_CLOSE_INPUT`] (required only when [`TrainedModel::needs_last_close`]).
    pub fn feature_schema_json(&self) -> String {
        let columns: Vec<serde_json::Value> = self
            .feature_names
            .iter()
            .map(|name| double_column(name, true))
            .chain([double_column(LAST_CLOSE_INPUT, self.needs_last_close())])
            .collect();
        serde_json::Value::Array(columns).to_string()
    }

    /// The `MLmodel` description of the model logged at `artifact_path`.
    pub fn mlmodel(&self, artifact_path: &str) -> MlModel {
        let outputs = serde_json::Value::Array(vec![double_column(PREDICTED_CLOSE_OUTPUT, true)]);
        MlModel {
            artifact_path: artifact_path.to_owned(),
            flavors: Flavors {
                pricecast: PricecastFlavor {
                    model_type: self.params.kind.as_str().to_owned(),
                    model_file: MODEL_FILE.to_owned(),
                    format_version: MODEL_FORMAT_VERSION,
                    smartcore_version: SMARTCORE_VERSION.to_owned(),
                    pricecast_version: env!("CARGO_PKG_VERSION").to_owned(),
                    horizon: self.horizon,
                    interval_ms: self.interval_ms,
                    target: "log_return".to_owned(),
                    feature_names: self.feature_names.clone(),
                    last_close_input: LAST_CLOSE_INPUT.to_owned(),
                    anchor_without_last_close: (!self.needs_last_close())
                        .then(|| ANCHOR_FEATURE.to_owned()),
                },
                python_function: PyfuncFlavor {
                    loader_module: PYFUNC_LOADER_MODULE.to_owned(),
                    code: PYFUNC_CODE_DIR.to_owned(),
                    data: MODEL_FILE.to_owned(),
                    env: PyfuncEnv {
                        conda: CONDA_ENV_FILE.to_owned(),
                        virtualenv: PYTHON_ENV_FILE.to_owned(),
                    },
                    predict_fn: "predict".to_owned(),
                    python_version: PYFUNC_PYTHON_VERSION.to_owned(),
                },
            },
            saved_input_example_info: InputExampleInfo {
                artifact_path: INPUT_EXAMPLE_FILE.to_owned(),
                kind: "dataframe".to_owned(),
                pandas_orient: "split".to_owned(),
            },
            signature: Signature {
                inputs: self.feature_schema_json(),
                outputs: outputs.to_string(),
                params: None,
            },
            utc_time_created: chrono::Utc::now()
                .format("%Y-%m-%d %H:%M:%S%.6f")
                .to_string(),
        }
    }

    /// Every file of the model's MLflow folder logged at `artifact_path`, with `input_example`
    /// (see [`TrainedModel::input_example_json`]). `MLmodel` comes last: a folder being
    /// uploaded in this order is not a loadable MLflow model until it is complete.
    pub fn mlflow_files(&self, artifact_path: &str, input_example: &str) -> Result<Vec<ModelFile>> {
        let requirements: String = PYFUNC_REQUIREMENTS
            .iter()
            .map(|r| format!("{r}\n"))
            .collect();
        let python_env = PythonEnv {
            python: PYFUNC_PYTHON_VERSION,
            build_dependencies: vec!["pip"],
            dependencies: vec![format!("-r {REQUIREMENTS_FILE}")],
        };
        let conda_env = CondaEnv {
            name: "mlflow-env",
            channels: vec!["conda-forge"],
            dependencies: vec![
                CondaDependency::Package(format!("python={PYFUNC_PYTHON_VERSION}")),
                CondaDependency::Package("pip".to_owned()),
                CondaDependency::Pip {
                    pip: PYFUNC_REQUIREMENTS.to_vec(),
                },
            ],
        };
        Ok(vec![
            ModelFile {
                path: MODEL_FILE,
                contents: self.to_bytes()?,
            },
            ModelFile {
                path: PYFUNC_LOADER_FILE,
                contents: PYFUNC_LOADER_SOURCE.as_bytes().to_vec(),
            },
            ModelFile {
                path: REQUIREMENTS_FILE,
                contents: requirements.into_bytes(),
            },
            ModelFile {
                path: PYTHON_ENV_FILE,
                contents: yaml(PYTHON_ENV_FILE, &python_env)?,
            },
            ModelFile {
                path: CONDA_ENV_FILE,
                contents: yaml(CONDA_ENV_FILE, &conda_env)?,
            },
            ModelFile {
                path: FEATURE_SCHEMA_FILE,
                contents: self.feature_schema_json().into_bytes(),
            },
            ModelFile {
                path: INPUT_EXAMPLE_FILE,
                contents: input_example.as_bytes().to_vec(),
            },
            ModelFile {
                path: MLMODEL_FILE,
                contents: yaml(MLMODEL_FILE, &self.mlmodel(artifact_path))?,
            },
        ])
    }
}

/// One `double` column of an MLflow column schema.
fn double_column(name: &str, required: bool) -> serde_json::Value {
    serde_json::json!({"type": "double", "name": name, "required": required})
}

fn yaml(file: &'static str, value: &impl Serialize) -> Result<Vec<u8>> {
    serde_norway::to_string(value)
        .map(String::into_bytes)
        .map_err(|source| Error::Yaml { file, source })
}
