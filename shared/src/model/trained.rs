//! A fitted model with everything needed to serve it: parameters, feature names, standardiser.

use std::ops::Range;

use serde::{Deserialize, Serialize};
use smartcore::ensemble::random_forest_regressor::{
    RandomForestRegressor, RandomForestRegressorParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::elastic_net::{ElasticNet, ElasticNetParameters};
use smartcore::linear::lasso::{Lasso, LassoParameters};
use smartcore::linear::ridge_regression::{
    RidgeRegression, RidgeRegressionParameters, RidgeRegressionSolverName,
};

use super::interval::ResidualInterval;
use super::least_squares::{centred_gram, solve_symmetric};
use super::{
    Dataset, ModelKind, ModelParams, SMARTCORE_VERSION, Standardiser, model_error, smartcore_error,
};
use crate::Result;

/// File name of the serialised model next to the `MLmodel` file.
pub const MODEL_FILE: &str = "model.json";
/// File name of the input example next to the `MLmodel` file.
pub const INPUT_EXAMPLE_FILE: &str = "input_example.json";
/// Version of the layout [`TrainedModel::to_bytes`] writes; loading another version fails.
pub const MODEL_FORMAT_VERSION: u32 = 1;
/// Name of the input after the features in the `MLmodel` signature: the close forecasts start from.
pub const LAST_CLOSE_INPUT: &str = "last_close";
/// The feature a forecast starts from when [`LAST_CLOSE_INPUT`] is not given (MLflow's
/// `python_function` flavor only): the previous close, the newest one a frame of the seed
/// app's columns holds.
pub const ANCHOR_FEATURE: &str = "price_t-1";
/// Name of the output in the `MLmodel` signature.
pub const PREDICTED_CLOSE_OUTPUT: &str = "predicted_close";

/// Fewest training rows a model is fitted on: ten per coefficient, and never under 100.
pub fn min_training_rows(features: usize) -> usize {
    (10 * (features + 1)).max(100)
}

type Matrix = DenseMatrix<f64>;

/// Least-squares weights on standardised features for a standardised target (no intercept:
/// both sides are centred on the training rows).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearWeights {
    /// One weight per feature.
    pub weights: Vec<f64>,
}

/// The naive forecast has nothing fitted: it forecasts the last close.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NaiveForecast {}

/// The fitted regression, one variant per [`ModelKind`], all on standardised data.
#[derive(Debug, Serialize, Deserialize)]
pub enum FittedModel {
    /// Ordinary least squares.
    Linear(LinearWeights),
    /// smartcore ridge regression.
    Ridge(RidgeRegression<f64, f64, Matrix, Vec<f64>>),
    /// smartcore lasso.
    Lasso(Lasso<f64, f64, Matrix, Vec<f64>>),
    /// smartcore elastic net.
    ElasticNet(ElasticNet<f64, f64, Matrix, Vec<f64>>),
    /// smartcore random forest.
    RandomForest(RandomForestRegressor<f64, f64, Matrix, Vec<f64>>),
    /// "Next close = last close".
    Naive(NaiveForecast),
}

/// Which rows a model was trained on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingSpan {
    /// Open time of the first training row (ms since the epoch).
    pub first_open_ms: i64,
    /// Open time of the last training row (ms since the epoch).
    pub last_open_ms: i64,
    /// Number of training rows.
    pub rows: usize,
}

/// A model ready to predict: the regression and everything needed to feed it.
#[derive(Debug, Serialize, Deserialize)]
pub struct TrainedModel {
    /// The parameters it was fitted with.
    pub params: ModelParams,
    /// The features it expects, in this order.
    pub feature_names: Vec<String>,
    /// How many candles ahead it forecasts.
    pub horizon: u32,
    /// The candle interval of its training data, in milliseconds.
    pub interval_ms: i64,
    /// Feature and target standardisation learned on the training rows.
    pub scaler: Standardiser,
    /// The fitted regression.
    pub fitted: FittedModel,
    /// The training rows.
    pub trained_on: TrainingSpan,
    /// Relative forecast errors seen in walk-forward evaluation, for an interval around a
    /// forecast; set by the caller from [`super::Evaluation::residual_interval`].
    pub residual_interval: Option<ResidualInterval>,
}

#[derive(Serialize)]
struct SavedModelRef<'a> {
    format: u32,
    smartcore_version: &'a str,
    model: &'a TrainedModel,
}

#[derive(Deserialize)]
struct SavedModel {
    model: TrainedModel,
}

impl TrainedModel {
    /// Fits `params` on `rows` of `data`; nothing outside `rows` is read, the standardiser
    /// included.
    pub fn fit(params: &ModelParams, data: &Dataset, rows: Range<usize>) -> Result<Self> {
        let operation = format!("fitting a {} model", params.kind);
        params.validate()?;
        data.check_rows(&rows, &operation)?;
        let p = data.features();
        let n = rows.len();
        let needed = min_training_rows(p);
        if n < needed {
            return Err(model_error(
                operation,
                format!(
                    "{n} training rows are too few for {p} features: at least {needed} are needed"
                ),
            ));
        }
        let x = &data.x()[rows.start * p..rows.end * p];
        let returns = data.log_returns(rows.clone());
        let scaler = Standardiser::fit(x, &returns, p);
        let failed = smartcore_error(operation.as_str());
        let standardised = || -> Result<(Matrix, Vec<f64>)> {
            let z = Matrix::new(n, p, scaler.transform(x), false).map_err(&failed)?;
            Ok((z, returns.iter().map(|&r| scaler.target(r)).collect()))
        };
        // smartcore's penalties are on the sum of squares over rows (lasso and elastic net
        // multiply alpha by the row count themselves, ridge does not); ours are per row.
        let per_row = params.alpha * n as f64;
        let fitted = match params.kind {
            ModelKind::Linear => FittedModel::Linear(fit_least_squares(x, &returns, &scaler)?),
            ModelKind::Ridge => {
                let (z, t) = standardised()?;
                let ridge = RidgeRegressionParameters::default()
                    .with_alpha(per_row)
                    .with_normalize(false)
                    .with_solver(RidgeRegressionSolverName::SVD);
                FittedModel::Ridge(RidgeRegression::fit(&z, &t, ridge).map_err(&failed)?)
            }
            ModelKind::Lasso => {
                let (z, t) = standardised()?;
                let lasso = LassoParameters::default()
                    .with_alpha(params.alpha)
                    .with_normalize(false);
                FittedModel::Lasso(Lasso::fit(&z, &t, lasso).map_err(&failed)?)
            }
            ModelKind::ElasticNet => {
                let (z, t) = standardised()?;
                let net = ElasticNetParameters::default()
                    .with_alpha(params.alpha)
                    .with_l1_ratio(params.l1_ratio)
                    .with_normalize(false);
                FittedModel::ElasticNet(ElasticNet::fit(&z, &t, net).map_err(&failed)?)
            }
            ModelKind::RandomForest => {
                let (z, t) = standardised()?;
                let forest = RandomForestRegressorParameters::default()
                    .with_n_trees(params.trees)
                    .with_max_depth(params.max_depth)
                    .with_min_samples_leaf(params.min_samples_leaf)
                    .with_seed(params.seed);
                FittedModel::RandomForest(
                    RandomForestRegressor::fit(&z, &t, forest).map_err(&failed)?,
                )
            }
            ModelKind::Naive => FittedModel::Naive(NaiveForecast {}),
        };
        let times = data.open_time_ms();
        Ok(Self {
            params: params.clone(),
            feature_names: data.feature_names().to_vec(),
            horizon: data.horizon(),
            interval_ms: data.interval_ms(),
            scaler,
            fitted,
            trained_on: TrainingSpan {
                first_open_ms: times[rows.start],
                last_open_ms: times[rows.end - 1],
                rows: n,
            },
            residual_interval: None,
        })
    }

    /// The forecast close `horizon` candles after a candle with these features (in
    /// [`TrainedModel::feature_names`] order) and this close.
    pub fn predict_close(&self, features: &[f64], last_close: f64) -> Result<f64> {
        self.check_input(features, last_close)?;
        if self.is_naive() {
            return Ok(last_close);
        }
        let standardised = match self.linear_form() {
            Some((weights, intercept)) => {
                let mut sum = intercept;
                for (((w, v), m), s) in weights
                    .iter()
                    .zip(features)
                    .zip(&self.scaler.feature_mean)
                    .zip(&self.scaler.feature_scale)
                {
                    sum += w * ((v - m) / s);
                }
                sum
            }
            None => {
                let mut z = vec![0.0; features.len()];
                self.scaler.transform_into(features, &mut z);
                let predicted = self.predict_forest(z, 1)?;
                predicted.first().copied().unwrap_or(f64::NAN)
            }
        };
        self.close_of(standardised, last_close)
    }

    /// Forecast closes for `rows` of `data`.
    pub fn predict(&self, data: &Dataset, rows: Range<usize>) -> Result<Vec<f64>> {
        let operation = format!("predicting with a {} model", self.params.kind);
        data.check_rows(&rows, &operation)?;
        if data.feature_names() != self.feature_names.as_slice() {
            return Err(model_error(
                operation,
                format!(
                    "the data's features [{}] are not the model's [{}]",
                    data.feature_names().join(", "),
                    self.feature_names.join(", ")
                ),
            ));
        }
        if data.horizon() != self.horizon || data.interval_ms() != self.interval_ms {
            return Err(model_error(
                operation,
                format!(
                    "the data's horizon {} × {} ms is not the model's {} × {} ms",
                    data.horizon(),
                    data.interval_ms(),
                    self.horizon,
                    self.interval_ms
                ),
            ));
        }
        let closes = &data.last_close()[rows.clone()];
        if self.is_naive() {
            return Ok(closes.to_vec());
        }
        if self.linear_form().is_some() {
            return rows
                .clone()
                .zip(closes)
                .map(|(i, &last)| self.predict_close(data.row(i), last))
                .collect();
        }
        let p = data.features();
        let z = self
            .scaler
            .transform(&data.x()[rows.start * p..rows.end * p]);
        let standardised = self.predict_forest(z, rows.len())?;
        standardised
            .iter()
            .zip(closes)
            .map(|(&s, &last)| self.close_of(s, last))
            .collect()
    }

    /// The model as bytes (JSON) for the registry; [`TrainedModel::from_bytes`] reads it back
    /// and predicts exactly the same values.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(&SavedModelRef {
            format: MODEL_FORMAT_VERSION,
            smartcore_version: SMARTCORE_VERSION,
            model: self,
        })
        .map_err(|e| model_error("saving the model", e.to_string()))
    }

    /// Reads a model written by [`TrainedModel::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let operation = "loading the model";
        let not_a_model = |e: serde_json::Error| {
            model_error(
                operation,
                format!("not a Pricecast model file ({MODEL_FILE}): {e}"),
            )
        };
        // Through a `Value`: its numbers keep their text and are parsed by `str::parse`, which
        // rounds correctly, so every f64 comes back bit for bit.
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(not_a_model)?;
        let format = value.get("format").and_then(serde_json::Value::as_u64);
        if format != Some(u64::from(MODEL_FORMAT_VERSION)) {
            return Err(model_error(
                operation,
                format!(
                    "the file has format version {}, this build reads version {MODEL_FORMAT_VERSION}; retrain the model",
                    format.map_or_else(|| "(none)".to_owned(), |f| f.to_string())
                ),
            ));
        }
        let saved: SavedModel = serde_json::from_value(value).map_err(not_a_model)?;
        Ok(saved.model)
    }

    /// An MLflow input example (pandas `split` orient) made of row `row` of `data`.
    pub fn input_example_json(&self, data: &Dataset, row: usize) -> Result<String> {
        if row >= data.rows() || data.feature_names() != self.feature_names.as_slice() {
            return Err(model_error(
                "writing the input example",
                format!(
                    "row {row} of {} rows with features [{}] does not fit the model",
                    data.rows(),
                    data.feature_names().join(", ")
                ),
            ));
        }
        let columns: Vec<&str> = self
            .feature_names
            .iter()
            .map(String::as_str)
            .chain([LAST_CLOSE_INPUT])
            .collect();
        let mut values = data.row(row).to_vec();
        values.push(data.last_close()[row]);
        Ok(serde_json::json!({"columns": columns, "data": [values]}).to_string())
    }

    /// Whether it is the naive forecast (the last close, whatever the features).
    pub fn is_naive(&self) -> bool {
        matches!(self.fitted, FittedModel::Naive(_))
    }

    /// Weights (on standardised features, for the standardised target) and intercept, for
    /// the linear kinds; `None` for the random forest and the naive forecast.
    pub fn linear_form(&self) -> Option<(&[f64], f64)> {
        match &self.fitted {
            FittedModel::Linear(linear) => Some((&linear.weights, 0.0)),
            FittedModel::Ridge(model) => Some((column(model.coefficients()), *model.intercept())),
            FittedModel::Lasso(model) => Some((column(model.coefficients()), *model.intercept())),
            FittedModel::ElasticNet(model) => {
                Some((column(model.coefficients()), *model.intercept()))
            }
            FittedModel::RandomForest(_) | FittedModel::Naive(_) => None,
        }
    }

    /// Coefficients and intercept of the linear kinds in the original units: the log return
    /// `r̂ = intercept + Σ coefficient_j · feature_j`.
    pub fn raw_coefficients(&self) -> Option<(Vec<f64>, f64)> {
        let (weights, intercept) = self.linear_form()?;
        let s = &self.scaler;
        let coefficients: Vec<f64> = weights
            .iter()
            .zip(&s.feature_scale)
            .map(|(w, scale)| s.target_scale * w / scale)
            .collect();
        let offset: f64 = coefficients
            .iter()
            .zip(&s.feature_mean)
            .map(|(c, m)| c * m)
            .sum();
        Some((
            coefficients,
            s.target_mean + s.target_scale * intercept - offset,
        ))
    }

    fn predict_forest(&self, z: Vec<f64>, rows: usize) -> Result<Vec<f64>> {
        let operation = "predicting with a random-forest model";
        let FittedModel::RandomForest(forest) = &self.fitted else {
            return Err(model_error(operation, "the model is not a random forest"));
        };
        let matrix = Matrix::new(rows, self.feature_names.len(), z, false)
            .map_err(smartcore_error(operation))?;
        forest.predict(&matrix).map_err(smartcore_error(operation))
    }

    fn check_input(&self, features: &[f64], last_close: f64) -> Result<()> {
        let operation = "predicting a close";
        if features.len() != self.feature_names.len() {
            return Err(model_error(
                operation,
                format!(
                    "{} feature values given, the model takes {} ({})",
                    features.len(),
                    self.feature_names.len(),
                    self.feature_names.join(", ")
                ),
            ));
        }
        if let Some(j) = features.iter().position(|v| !v.is_finite()) {
            return Err(model_error(
                operation,
                format!("feature {} is {}", self.feature_names[j], features[j]),
            ));
        }
        if !(last_close.is_finite() && last_close > 0.0) {
            return Err(model_error(
                operation,
                format!("the last close is {last_close}; it must be positive"),
            ));
        }
        Ok(())
    }

    fn close_of(&self, standardised: f64, last_close: f64) -> Result<f64> {
        let close = last_close * self.scaler.log_return(standardised).exp();
        if close.is_finite() && close > 0.0 {
            Ok(close)
        } else {
            Err(model_error(
                "predicting a close",
                format!("the model produced {close} from the last close {last_close}"),
            ))
        }
    }
}

/// The values of a p × 1 coefficient matrix.
fn column(matrix: &Matrix) -> &[f64] {
    // A single column is stored contiguously whatever the layout.
    matrix.iter().as_slice()
}

fn fit_least_squares(x: &[f64], returns: &[f64], scaler: &Standardiser) -> Result<LinearWeights> {
    let p = scaler.feature_mean.len();
    let q = p + 1;
    let n = returns.len() as f64;
    let gram = centred_gram(x, returns, &scaler.feature_mean, scaler.target_mean);
    let s = &scaler.feature_scale;
    let mut a = vec![0.0; p * p];
    for j in 0..p {
        for k in 0..p {
            a[j * p + k] = gram[j * q + k] / (n * s[j] * s[k]);
        }
    }
    let b: Vec<f64> = (0..p)
        .map(|j| gram[j * q + p] / (n * s[j] * scaler.target_scale))
        .collect();
    let weights = solve_symmetric(&a, &b).map_err(|e| model_error("fitting a linear model", e))?;
    Ok(LinearWeights { weights })
}
