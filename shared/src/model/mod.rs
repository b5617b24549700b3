//! Forecasting models: fit on a feature frame, predict a close `horizon` candles ahead, evaluate
//! walk-forward against the naive "next close = last close" baseline, save and load, chart.
//!
//! `naive` is a kind like the others: it forecasts the last close, and is fitted, evaluated,
//! saved and served through the same code, so the baseline can be registered and served when
//! nothing beats it.
//!
//! Every model predicts the horizon's log return `r = ln(target_close / last_close)` from
//! standardised features; the forecast close is `last_close × exp(r̂)`. The standardiser (feature
//! and target means and scales) is learned on the training rows only and stored with the model.
//!
//! | variable | flag | default |
//! |---|---|---|
//! | `PRICECAST_MODEL_TYPE` | `--model-type` | `linear` (`ridge`, `lasso`, `elastic-net`, `random-forest`, `naive`) |
//! | `PRICECAST_MODEL_ALPHA` | `--model-alpha` | 0.001 |
//! | `PRICECAST_MODEL_L1_RATIO` | `--model-l1-ratio` | 0.5 |
//! | `PRICECAST_MODEL_TREES` | `--model-trees` | 100 |
//! | `PRICECAST_MODEL_MAX_DEPTH` | `--model-max-depth` | 8 |
//! | `PRICECAST_MODEL_MIN_SAMPLES_LEAF` | `--model-min-samples-leaf` | 20 |
//! | `PRICECAST_MODEL_SEED` | `--model-seed` | 42 |
//! | `PRICECAST_INTERVAL_LEVEL` | `--interval-level` | 0.9 (nominal coverage of forecast intervals) |

mod chart;
mod dataset;
mod diebold_mariano;
mod evaluation;
mod interval;
mod least_squares;
pub mod mlflow_model;
mod scaler;
mod trained;

use serde::{Deserialize, Serialize};

pub use chart::chart_svg;
pub use dataset::Dataset;
pub use diebold_mariano::{DieboldMariano, newey_west_lag};
pub use evaluation::{
    Evaluation, Metrics, WindowReport, WindowSeries, evaluate, walk_forward,
    walk_forward_rows_needed,
};
pub use interval::{
    DEFAULT_INTERVAL_LEVEL, IntervalScore, ResidualInterval, parse_interval_level, pinball_loss,
};
pub use mlflow_model::{MlModel, ModelFile};
pub use scaler::Standardiser;
pub use trained::{
    ANCHOR_FEATURE, FittedModel, INPUT_EXAMPLE_FILE, LAST_CLOSE_INPUT, LinearWeights, MODEL_FILE,
    MODEL_FORMAT_VERSION, NaiveForecast, PREDICTED_CLOSE_OUTPUT, TrainedModel, TrainingSpan,
    min_training_rows,
};

use crate::{Error, Result};

/// The smartcore release the models are fitted and serialised with (recorded in `MLmodel`).
pub const SMARTCORE_VERSION: &str = "0.7.0";

/// Which regression the model is.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Ordinary least squares, as the seed app's scikit-learn `LinearRegression`.
    #[default]
    Linear,
    /// Least squares with an L2 penalty (smartcore `RidgeRegression`).
    Ridge,
    /// Least squares with an L1 penalty (smartcore `Lasso`).
    Lasso,
    /// Least squares with L1 and L2 penalties (smartcore `ElasticNet`).
    ElasticNet,
    /// Bagged regression trees (smartcore `RandomForestRegressor`).
    RandomForest,
    /// The naive forecast: the close `horizon` candles ahead is the last close (a log return
    /// of zero). Fitted on nothing; its interval comes from its own walk-forward residuals,
    /// like every other kind's.
    Naive,
}

impl ModelKind {
    /// The name used in settings, MLflow params and `MLmodel` files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Linear => "linear",
            Self::Ridge => "ridge",
            Self::Lasso => "lasso",
            Self::ElasticNet => "elastic-net",
            Self::RandomForest => "random-forest",
            Self::Naive => "naive",
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Default penalty per training row on standardised features and target (ridge, lasso,
/// elastic net): light enough to keep the weak signals of returns.
pub const DEFAULT_ALPHA: f64 = 0.001;
/// Default share of the L1 penalty in the elastic net.
pub const DEFAULT_L1_RATIO: f64 = 0.5;
/// Default number of trees in the random forest.
pub const DEFAULT_TREES: usize = 100;
/// Default depth limit of each tree: deep trees memorise noise in returns.
pub const DEFAULT_MAX_DEPTH: u16 = 8;
/// Default smallest leaf: averages at least this many returns.
pub const DEFAULT_MIN_SAMPLES_LEAF: usize = 20;
/// Default random seed (random forest bootstrap and feature sampling).
pub const DEFAULT_SEED: u64 = 42;

/// Largest number of trees accepted.
const MAX_TREES: usize = 10_000;
/// Largest tree depth accepted.
const MAX_DEPTH_LIMIT: u16 = 64;

/// Hyper-parameters of a model; the fields a kind does not use are ignored by it.
///
/// `alpha` is the penalty per training row: ridge minimises `‖y − Xw‖²/n + alpha·‖w‖²`, lasso
/// `‖y − Xw‖²/n + alpha·‖w‖₁`, elastic net `‖y − Xw‖²/n + alpha·(l1_ratio·‖w‖₁ + (1 −
/// l1_ratio)·‖w‖²)`, all on standardised features and target, so one value means the same
/// strength for any symbol, interval and history length.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelParams {
    /// Which regression.
    pub kind: ModelKind,
    /// Penalty strength (ridge, lasso, elastic net), ≥ 0.
    pub alpha: f64,
    /// Share of the L1 penalty in the elastic net, in [0, 1].
    pub l1_ratio: f64,
    /// Trees in the random forest, ≥ 1.
    pub trees: usize,
    /// Depth limit of each tree, ≥ 1.
    pub max_depth: u16,
    /// Fewest training rows in a leaf, ≥ 1.
    pub min_samples_leaf: usize,
    /// Random seed; the same seed and data give the same forest.
    pub seed: u64,
}

impl Default for ModelParams {
    fn default() -> Self {
        Self {
            kind: ModelKind::Linear,
            alpha: DEFAULT_ALPHA,
            l1_ratio: DEFAULT_L1_RATIO,
            trees: DEFAULT_TREES,
            max_depth: DEFAULT_MAX_DEPTH,
            min_samples_leaf: DEFAULT_MIN_SAMPLES_LEAF,
            seed: DEFAULT_SEED,
        }
    }
}

impl ModelParams {
    /// Default parameters for `kind`.
    pub fn of_kind(kind: ModelKind) -> Self {
        Self {
            kind,
            ..Self::default()
        }
    }

    /// Checks every range; the error names the setting that is out of range.
    pub fn validate(&self) -> Result<()> {
        let bad = |variable: &str, rule: &str, value: String| {
            Err(Error::config(format!(
                "{variable} must be {rule} (got {value})"
            )))
        };
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return bad(
                "PRICECAST_MODEL_ALPHA",
                "a number ≥ 0",
                self.alpha.to_string(),
            );
        }
        if !(0.0..=1.0).contains(&self.l1_ratio) {
            return bad(
                "PRICECAST_MODEL_L1_RATIO",
                "between 0 and 1",
                self.l1_ratio.to_string(),
            );
        }
        if !(1..=MAX_TREES).contains(&self.trees) {
            return bad(
                "PRICECAST_MODEL_TREES",
                "between 1 and 10000",
                self.trees.to_string(),
            );
        }
        if !(1..=MAX_DEPTH_LIMIT).contains(&self.max_depth) {
            return bad(
                "PRICECAST_MODEL_MAX_DEPTH",
                "between 1 and 64",
                self.max_depth.to_string(),
            );
        }
        if self.min_samples_leaf == 0 {
            return bad("PRICECAST_MODEL_MIN_SAMPLES_LEAF", "≥ 1", "0".into());
        }
        Ok(())
    }

    /// The parameters that matter for this kind, as `(name, value)` pairs for MLflow params.
    pub fn relevant(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![("model_type", self.kind.as_str().to_owned())];
        match self.kind {
            ModelKind::Linear | ModelKind::Naive => {}
            ModelKind::Ridge | ModelKind::Lasso => pairs.push(("alpha", self.alpha.to_string())),
            ModelKind::ElasticNet => {
                pairs.push(("alpha", self.alpha.to_string()));
                pairs.push(("l1_ratio", self.l1_ratio.to_string()));
            }
            ModelKind::RandomForest => {
                pairs.push(("trees", self.trees.to_string()));
                pairs.push(("max_depth", self.max_depth.to_string()));
                pairs.push(("min_samples_leaf", self.min_samples_leaf.to_string()));
                pairs.push(("seed", self.seed.to_string()));
            }
        }
        pairs
    }
}

/// The model settings of the train job, each a flag and an environment variable.
#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    /// Model type: linear, ridge, lasso, elastic-net, random-forest or naive.
    #[arg(
        long,
        env = "PRICECAST_MODEL_TYPE",
        value_name = "PRICECAST_MODEL_TYPE",
        value_enum,
        default_value_t = ModelKind::Linear
    )]
    pub model_type: ModelKind,

    /// Penalty per training row on standardised data (ridge, lasso, elastic net), ≥ 0.
    #[arg(
        long,
        env = "PRICECAST_MODEL_ALPHA",
        value_name = "PRICECAST_MODEL_ALPHA",
        default_value_t = DEFAULT_ALPHA,
        value_parser = parse_alpha
    )]
    pub model_alpha: f64,

    /// Share of the L1 penalty in the elastic net, 0 to 1.
    #[arg(
        long,
        env = "PRICECAST_MODEL_L1_RATIO",
        value_name = "PRICECAST_MODEL_L1_RATIO",
        default_value_t = DEFAULT_L1_RATIO,
        value_parser = parse_l1_ratio
    )]
    pub model_l1_ratio: f64,

    /// Trees in the random forest, 1 to 10000.
    #[arg(
        long,
        env = "PRICECAST_MODEL_TREES",
        value_name = "PRICECAST_MODEL_TREES",
        default_value_t = DEFAULT_TREES,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_TREES as u64)
    )]
    pub model_trees: usize,

    /// Depth limit of each random-forest tree, 1 to 64.
    #[arg(
        long,
        env = "PRICECAST_MODEL_MAX_DEPTH",
        value_name = "PRICECAST_MODEL_MAX_DEPTH",
        default_value_t = DEFAULT_MAX_DEPTH,
        value_parser = clap::value_parser!(u16).range(1..=MAX_DEPTH_LIMIT as i64)
    )]
    pub model_max_depth: u16,

    /// Fewest training rows in a random-forest leaf, ≥ 1.
    #[arg(
        long,
        env = "PRICECAST_MODEL_MIN_SAMPLES_LEAF",
        value_name = "PRICECAST_MODEL_MIN_SAMPLES_LEAF",
        default_value_t = DEFAULT_MIN_SAMPLES_LEAF,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub model_min_samples_leaf: usize,

    /// Random seed of the random forest.
    #[arg(
        long,
        env = "PRICECAST_MODEL_SEED",
        value_name = "PRICECAST_MODEL_SEED",
        default_value_t = DEFAULT_SEED
    )]
    pub model_seed: u64,
}

impl ModelArgs {
    /// The parameters these settings describe.
    pub fn params(&self) -> ModelParams {
        ModelParams {
            kind: self.model_type,
            alpha: self.model_alpha,
            l1_ratio: self.model_l1_ratio,
            trees: self.model_trees,
            max_depth: self.model_max_depth,
            min_samples_leaf: self.model_min_samples_leaf,
            seed: self.model_seed,
        }
    }
}

fn parse_alpha(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!(
            "PRICECAST_MODEL_ALPHA must be a number ≥ 0 (got {s})"
        )),
    }
}

fn parse_l1_ratio(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "PRICECAST_MODEL_L1_RATIO must be a number between 0 and 1 (got {s})"
        )),
    }
}

/// Shorthand for a model error.
pub(crate) fn model_error(operation: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Model {
        operation: operation.into(),
        message: message.into(),
    }
}

/// Keeps smartcore's error as the source of a model error.
pub(crate) fn smartcore_error(
    operation: impl Into<String>,
) -> impl Fn(smartcore::error::Failed) -> Error {
    let operation = operation.into();
    move |source| Error::Smartcore {
        operation: operation.clone(),
        source,
    }
}

#[cfg(test)]
mod tests;
