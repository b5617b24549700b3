//! Forecasts from the champion models: the champion set read from [`ServedModels`], the
//! newest forecast of each series kept in a [`ForecastCache`], the freshness check on the
//! newest candle, and forecasts for inputs a client sends (a what-if: nothing is stored).
//!
//! The feature row comes from `pricecast_shared::features`, the code that built the training
//! frame, so what is served is what was trained.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use pricecast_shared::champion::{RegisteredModel, metric};
use pricecast_shared::domain::{Candle, Interval, Symbol};
use pricecast_shared::features::{self, FeatureRow, FeatureSpec};

use super::error::{ServiceError, ServiceResult};
use super::forecast_cache::{ForecastCache, ForecastKey};
use super::prediction::{ModelRef, Prediction};
use super::series::{SeriesService, newest_first};
use super::what_if;
use crate::served_models::ServedModels;

/// Forecasts of the served series; cheap to clone.
#[derive(Clone, Debug)]
pub struct ForecastService {
    series: SeriesService,
    models: Arc<ServedModels>,
    cache: Arc<ForecastCache>,
    max_stale_candles: Option<u32>,
}

impl ForecastService {
    /// Forecasts from `models` over the candles of `series`, with no freshness limit.
    pub fn new(series: SeriesService, models: Arc<ServedModels>) -> Self {
        Self {
            series,
            models,
            cache: Arc::default(),
            max_stale_candles: None,
        }
    }

    /// Serves forecasts from these models.
    #[must_use]
    pub fn with_models(mut self, models: Arc<ServedModels>) -> Self {
        self.models = models;
        self
    }

    /// Forecasts are unavailable when the newest candle is more than `max` intervals old
    /// (`None`: never, as in the demo's replayed history).
    #[must_use]
    pub fn with_max_stale_candles(mut self, max: Option<u32>) -> Self {
        self.max_stale_candles = max;
        self
    }

    /// The models forecasts come from.
    pub fn models(&self) -> &Arc<ServedModels> {
        &self.models
    }

    /// The champion of a series, or unavailable saying how to get one.
    pub fn champion(
        &self,
        symbol: &Symbol,
        interval: Interval,
    ) -> ServiceResult<Arc<RegisteredModel>> {
        let models = &self.models;
        if let Some(champion) = models.champion(symbol, interval) {
            return Ok(champion);
        }
        let name = models.model_name(symbol, interval);
        let why = if !models.is_configured() {
            "no model registry is configured for this service".to_owned()
        } else if !models
            .series()
            .iter()
            .any(|(s, i)| s == symbol && *i == interval)
        {
            format!(
                "{symbol} {interval} is not among the served series; set PRICECAST_SYMBOLS and PRICECAST_INTERVALS"
            )
        } else {
            match models.status().last_error {
                Some(error) => format!("the model registry cannot be read: {error}"),
                None => format!(
                    "{name} has no champion yet; run pricecast-features and pricecast-train for {symbol} {interval}"
                ),
            }
        };
        Err(ServiceError::Unavailable(format!(
            "no champion model for {symbol} {interval}: {why}"
        )))
    }

    /// The champion's forecast from the newest stored candles of a series.
    pub async fn live(&self, symbol: &Symbol, interval: Interval) -> ServiceResult<Prediction> {
        let champion = self.champion(symbol, interval)?;
        self.live_from(&champion, symbol, interval, None).await
    }

    /// `champion`'s forecast from the newest stored candles of a series, for `horizon` candles
    /// ahead (invalid unless it is the champion's own horizon; `None`: the champion's). Reused
    /// from the cache while the newest candle and the champion stay the same.
    pub async fn live_from(
        &self,
        champion: &RegisteredModel,
        symbol: &Symbol,
        interval: Interval,
        horizon: Option<i64>,
    ) -> ServiceResult<Prediction> {
        if let Some(horizon) = horizon
            && horizon != i64::from(champion.model.horizon)
        {
            return Err(ServiceError::Invalid(format!(
                "horizon={horizon}: the champion of {symbol} {interval} forecasts {} candle(s) ahead; train a model for this horizon (PRICECAST_HORIZON={horizon}) to serve it",
                champion.model.horizon
            )));
        }
        // The newest candle alone tells whether the last forecast still holds.
        let newest = self.series.newest_candle(symbol, interval).await?;
        self.check_fresh(&newest, interval)?;
        let key = ForecastKey {
            symbol: symbol.clone(),
            interval,
            newest_open: newest.open_time,
            newest_close: newest.close,
            version: champion.version.version,
        };
        if let Some(cached) = self.cache.get(&key) {
            let mut prediction = Prediction::clone(&cached);
            prediction.timestamp = Utc::now();
            return Ok(prediction);
        }
        let spec = serving_spec(champion);
        let needed = spec.history() + 1;
        let mut candles = self
            .series
            .store()
            .candles(&newest_first(
                symbol,
                interval,
                None,
                Some(newest.open_time),
                needed as i64,
            ))
            .await?;
        candles.reverse();
        let row = newest_row(candles, interval, spec)
            .await?
            .ok_or_else(|| {
                ServiceError::Unavailable(format!(
                    "the newest {symbol} {interval} candles cannot make a feature row: the champion needs {needed} consecutive candles and the newest ones have a gap or there are fewer; collect more (pricecast-collect --repair)"
                ))
            })?;
        let prediction = forecast(champion, symbol, interval, &row)?;
        self.cache.put(key, Arc::new(prediction.clone()));
        Ok(prediction)
    }

    /// Unavailable when the newest candle is older than the freshness limit allows.
    fn check_fresh(&self, newest: &Candle, interval: Interval) -> ServiceResult<()> {
        let Some(max) = self.max_stale_candles else {
            return Ok(());
        };
        let age_ms = (Utc::now() - newest.open_time).num_milliseconds();
        let behind = age_ms / interval.duration_ms();
        if behind > i64::from(max) {
            return Err(ServiceError::Unavailable(format!(
                "the newest {} {interval} candle opened at {} ({behind} intervals ago, more than the {max} allowed by PRICECAST_API_MAX_STALE_CANDLES): the collector is behind; forecasts resume when it catches up",
                newest.symbol,
                newest.open_time.to_rfc3339()
            )));
        }
        Ok(())
    }

    /// The interval of `symbol` a what-if is answered for when the request names none: the
    /// first served for it.
    pub fn served_interval(&self, symbol: &Symbol) -> ServiceResult<Interval> {
        self.models
            .series()
            .iter()
            .find(|(s, _)| s == symbol)
            .map(|(_, i)| *i)
            .ok_or_else(|| {
                ServiceError::Invalid(format!(
                    "interval: name the interval; {symbol} is not among the served series"
                ))
            })
    }

    /// The champion's forecast for inputs a client sends: feature values by name with the
    /// close they describe, or recent closes oldest first (exactly one of the two).
    pub async fn what_if(
        &self,
        symbol: &Symbol,
        interval: Interval,
        inputs: WhatIfInputs,
    ) -> ServiceResult<Prediction> {
        let champion = self.champion(symbol, interval)?;
        let row = match (inputs.features, inputs.prices) {
            (Some(features), None) => {
                what_if::row_from_features(&champion, interval, &features, inputs.close)?
            }
            (None, Some(_)) if inputs.close.is_some() => {
                return Err(ServiceError::Invalid(
                    "close goes with features; with prices the last price is the close".to_owned(),
                ));
            }
            (None, Some(prices)) => {
                let spec = serving_spec(&champion);
                let candles = what_if::candles_from_prices(&spec, symbol, interval, &prices)?;
                newest_row(candles, interval, spec).await?.ok_or_else(|| {
                    ServiceError::Invalid(format!(
                        "prices: the champion takes {}, which a price series alone cannot give; send features by name",
                        champion.model.feature_names.join(", ")
                    ))
                })?
            }
            (Some(_), Some(_)) => {
                return Err(ServiceError::Invalid(
                    "send either features or prices, not both".to_owned(),
                ));
            }
            (None, None) => {
                return Err(ServiceError::Invalid(format!(
                    "send features (by name: {}, with their close) or prices (recent closes, oldest first)",
                    champion.model.feature_names.join(", ")
                )));
            }
        };
        forecast(&champion, symbol, interval, &row)
    }
}

/// What a what-if forecast is made from, as the client sent it.
#[derive(Debug, Default)]
pub struct WhatIfInputs {
    /// Every feature the champion takes, by name.
    pub features: Option<BTreeMap<String, serde_json::Value>>,
    /// Recent closes, oldest first, ending with the latest.
    pub prices: Option<Vec<serde_json::Value>>,
    /// With `features`: the close of the candle they describe.
    pub close: Option<serde_json::Value>,
}

fn model_ref(champion: &RegisteredModel) -> ModelRef {
    ModelRef {
        name: champion.model_name.clone(),
        version: champion.version.version,
        alias: champion.alias.clone(),
        run_id: champion.run_id().0.clone(),
        model_type: champion.model.params.kind.as_str().to_owned(),
        mae: champion.metric(metric::MAE),
        skill: champion.metric(metric::SKILL),
    }
}

/// The champion's forecast from a feature row: what `/price/predict` answers, and what the
/// forecast job writes to the ledger for each candle.
pub fn forecast(
    champion: &RegisteredModel,
    symbol: &Symbol,
    interval: Interval,
    row: &FeatureRow,
) -> ServiceResult<Prediction> {
    let model = &champion.model;
    let predicted = model
        .predict_close(&row.values, row.close)
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    if !predicted.is_finite() {
        return Err(ServiceError::Invalid(format!(
            "the champion's forecast from these inputs is {predicted}; check the values"
        )));
    }
    // The interval the model carries (split-conformal from its walk-forward residuals); a
    // model saved without one falls back on its run's residual quantiles.
    let (lower, upper) = match &model.residual_interval {
        Some(interval) => {
            let (lower, upper) = interval.around(predicted);
            (Some(lower), Some(upper))
        }
        None => {
            let band = |key: &str| champion.metric(key).map(|q| predicted * (1.0 + q));
            (band(metric::RESIDUAL_LOW), band(metric::RESIDUAL_HIGH))
        }
    };
    let step = interval.duration_ms();
    let target_close_ms = row.open_time.timestamp_millis() + i64::from(model.horizon) * step + step;
    Ok(Prediction {
        symbol: symbol.to_string(),
        interval: interval.to_string(),
        predicted_price: predicted,
        current_price: row.close,
        timestamp: Utc::now(),
        based_on: row.open_time,
        target_time: Utc
            .timestamp_millis_opt(target_close_ms)
            .single()
            .unwrap_or(row.open_time),
        horizon: model.horizon,
        baseline_price: row.close,
        lower,
        upper,
        features_used: model
            .feature_names
            .iter()
            .cloned()
            .zip(row.values.iter().copied())
            .collect(),
        model: model_ref(champion),
    })
}

/// The features the champion takes, without targets.
pub fn serving_spec(champion: &RegisteredModel) -> FeatureSpec {
    FeatureSpec {
        horizons: Vec::new(),
        features: champion.model.feature_names.clone(),
    }
}

/// The feature row of the newest of `candles`, computed on a blocking thread: polars work
/// never runs on the runtime's workers (it blocks them, and on a current-thread runtime
/// polars refuses to run at all).
async fn newest_row(
    candles: Vec<Candle>,
    interval: Interval,
    spec: FeatureSpec,
) -> ServiceResult<Option<FeatureRow>> {
    tokio::task::spawn_blocking(move || features::latest_row(&candles, interval, &spec))
        .await
        .map_err(|e| ServiceError::Internal(format!("computing a feature row: {e}")))?
        .map_err(|e| ServiceError::Internal(e.to_string()))
}
