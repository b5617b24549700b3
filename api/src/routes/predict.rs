//! `/price/predict`: the champion model's forecast from the newest stored candles (GET), or for
//! feature values or a price series the client sends (POST, a computation: nothing is stored),
//! and `/models`: the champion and challenger of each series.
//!
//! The feature row comes from `pricecast_shared::features`, the code that built the training
//! frame, so what is served is what was trained.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use pricecast_shared::champion::{ModelSummary, RegisteredModel, metric};
use pricecast_shared::domain::{Candle, Interval, Symbol};
use pricecast_shared::features::{self, FeatureRow, FeatureSpec};
use pricecast_shared::store::CandleQuery;
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use salvo::http::ParseError;
use salvo::oapi::{ToParameters, ToSchema};
use salvo::prelude::*;
use serde::{Deserialize, Serialize};

use super::app_state;
use super::price::{nothing_stored, series};
use crate::error::ApiError;
use crate::forecast_cache::ForecastKey;
use crate::params;
use crate::state::AppState;

/// `source` of the candles made from posted prices (they are never stored).
const POSTED_SOURCE: &str = "request";
/// Most prices a POST body may hold.
pub const MAX_POSTED_PRICES: usize = 2_000;

/// Parameters of `GET /price/predict`.
#[derive(Debug, Deserialize, ToParameters)]
#[salvo(parameters(default_parameter_in = Query))]
pub struct PredictQuery {
    /// Trading pair, such as BTCUSDT (lower case accepted; default BTCUSDT).
    symbol: Option<String>,
    /// Kline interval (default: the finest interval stored for the symbol).
    interval: Option<String>,
    /// Candles ahead; must be the horizon the champion was trained for (default: its horizon).
    #[salvo(parameter(value_type = Option<u32>))]
    horizon: Option<String>,
}

/// A forecast.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[salvo(schema(name = Prediction))]
pub struct Prediction {
    /// Trading pair.
    pub symbol: String,
    /// Kline interval.
    pub interval: String,
    /// The forecast close of the target candle (the seed app's field).
    pub predicted_price: f64,
    /// The close it predicts from (the seed app's field).
    pub current_price: f64,
    /// When the forecast was made (the seed app's field).
    pub timestamp: DateTime<Utc>,
    /// Open time of the candle whose features were used.
    pub based_on: DateTime<Utc>,
    /// When the forecast close is due: the close time of the candle `horizon` intervals later.
    pub target_time: DateTime<Utc>,
    /// Candles ahead.
    pub horizon: u32,
    /// The naive baseline's forecast: the last close.
    pub baseline_price: f64,
    /// Lower end of the interval around the forecast (from the model's walk-forward residuals).
    pub lower: Option<f64>,
    /// Upper end of that interval.
    pub upper: Option<f64>,
    /// The feature values used, by name (the seed app's `features_used`).
    pub features_used: BTreeMap<String, f64>,
    /// The model that made it.
    pub model: ModelRef,
}

/// The model behind a forecast.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[salvo(schema(name = ModelRef))]
pub struct ModelRef {
    /// Registered model name.
    pub name: String,
    /// Version.
    pub version: u64,
    /// Alias it is served under (`champion`).
    pub alias: String,
    /// Training run (the seed app's `model_run_id`).
    pub run_id: String,
    /// Model type.
    pub model_type: String,
    /// Walk-forward MAE over its recent evaluation windows.
    pub mae: Option<f64>,
    /// `1 − MAE / baseline MAE` over the same windows (negative: worse than the baseline).
    pub skill: Option<f64>,
}

/// `POST /price/predict` body: feature values by name, or recent closes oldest first.
#[derive(Debug, Deserialize, ToSchema)]
#[salvo(schema(name = WhatIf))]
#[serde(deny_unknown_fields)]
pub struct WhatIf {
    /// Trading pair whose champion answers (default BTCUSDT).
    pub symbol: Option<String>,
    /// Kline interval whose champion answers (default: the first served for the symbol).
    pub interval: Option<String>,
    /// Every feature the champion takes, by name (see `GET /models`).
    pub features: Option<BTreeMap<String, serde_json::Value>>,
    /// Recent closes, oldest first, one per interval, ending with the latest: a rising,
    /// falling or flat series. Enough of them for the longest feature window.
    pub prices: Option<Vec<serde_json::Value>>,
    /// With `features`: the close of the candle they describe, which the forecast moves from
    /// (the model forecasts a change from it). Not sent with `prices`: the last one is it.
    #[salvo(schema(value_type = Option<f64>))]
    pub close: Option<serde_json::Value>,
}

/// Champion and challenger of one series.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = SeriesModels))]
pub struct SeriesModelsBody {
    /// Trading pair.
    pub symbol: String,
    /// Kline interval.
    pub interval: String,
    /// Registered model name.
    pub model_name: String,
    /// The version predictions come from.
    #[salvo(schema(value_type = Option<Object>))]
    pub champion: Option<ModelSummary>,
    /// The newest trained version.
    #[salvo(schema(value_type = Option<Object>))]
    pub challenger: Option<ModelSummary>,
}

/// Every served series' models and the registry's state.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = ModelsBody))]
pub struct ModelsBody {
    /// Where the registry is.
    pub registry: String,
    /// When a poll last reached it.
    pub last_poll: Option<DateTime<Utc>>,
    /// Per series.
    pub models: Vec<SeriesModelsBody>,
}

/// The champion of a series, or 503 saying how to get one.
fn champion_of(
    state: &AppState,
    symbol: &Symbol,
    interval: Interval,
) -> Result<Arc<RegisteredModel>, ApiError> {
    let models = &state.models;
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
    Err(ApiError::Unavailable(format!(
        "no champion model for {symbol} {interval}: {why}"
    )))
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

/// The forecast from a feature row.
fn forecast(
    champion: &RegisteredModel,
    symbol: &Symbol,
    interval: Interval,
    row: &FeatureRow,
) -> Result<Prediction, ApiError> {
    let model = &champion.model;
    let predicted = model
        .predict_close(&row.values, row.close)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if !predicted.is_finite() {
        return Err(ApiError::BadRequest(format!(
            "the champion's forecast from these inputs is {predicted}; check the values"
        )));
    }
    let band = |key: &str| champion.metric(key).map(|q| predicted * (1.0 + q));
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
        lower: band(metric::RESIDUAL_LOW),
        upper: band(metric::RESIDUAL_HIGH),
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
fn serving_spec(champion: &RegisteredModel) -> FeatureSpec {
    FeatureSpec {
        horizons: Vec::new(),
        features: champion.model.feature_names.clone(),
    }
}

/// The champion's forecast for the candle(s) after the newest stored one.
#[endpoint(
    tags("predict"),
    responses(
        (status_code = 200, description = "The forecast", body = Prediction),
        (status_code = 400, description = "A bad parameter", body = crate::error::ErrorBody),
        (status_code = 404, description = "No candles for the series", body = crate::error::ErrorBody),
        (status_code = 503, description = "No champion yet, or data too stale or short", body = crate::error::ErrorBody)
    )
)]
pub async fn predict(query: PredictQuery, depot: &mut Depot) -> Result<Json<Prediction>, ApiError> {
    let state = app_state(depot)?;
    let (symbol, interval) =
        series(state, query.symbol.as_deref(), query.interval.as_deref()).await?;
    live_forecast(state, &symbol, interval, query.horizon.as_deref())
        .await
        .map(Json)
}

/// The champion's forecast from the newest stored candles of a series.
pub(crate) async fn live_forecast(
    state: &AppState,
    symbol: &Symbol,
    interval: Interval,
    horizon: Option<&str>,
) -> Result<Prediction, ApiError> {
    let champion = champion_of(state, symbol, interval)?;
    if let Some(horizon) = horizon {
        let horizon = params::integer("horizon", Some(horizon), 1, 1, 1000)?;
        if horizon != i64::from(champion.model.horizon) {
            return Err(ApiError::BadRequest(format!(
                "horizon={horizon}: the champion of {symbol} {interval} forecasts {} candle(s) ahead; train a model for this horizon (PRICECAST_HORIZON={horizon}) to serve it",
                champion.model.horizon
            )));
        }
    }
    // The newest candle alone tells whether the last forecast still holds.
    let Some(newest) = state.store.latest_candle(symbol, interval).await? else {
        return Err(nothing_stored(symbol, interval));
    };
    check_fresh(state, &newest, interval)?;
    let key = ForecastKey {
        symbol: symbol.clone(),
        interval,
        newest_open: newest.open_time,
        newest_close: newest.close,
        version: champion.version.version,
    };
    if let Some(cached) = state.forecasts.get(&key) {
        let mut prediction = Prediction::clone(&cached);
        prediction.timestamp = Utc::now();
        return Ok(prediction);
    }
    let spec = serving_spec(&champion);
    let needed = spec.history() + 1;
    let mut candles = state
        .store
        .candles(&CandleQuery {
            symbol: symbol.clone(),
            interval,
            from: None,
            to: Some(newest.open_time),
            limit: needed as i64,
            offset: 0,
            newest_first: true,
        })
        .await?;
    candles.reverse();
    let row = newest_row(candles, interval, spec)
        .await?
        .ok_or_else(|| {
            ApiError::Unavailable(format!(
                "the newest {symbol} {interval} candles cannot make a feature row: the champion needs {needed} consecutive candles and the newest ones have a gap or there are fewer; collect more (pricecast-collect --repair)"
            ))
        })?;
    let prediction = forecast(&champion, symbol, interval, &row)?;
    state.forecasts.put(key, Arc::new(prediction.clone()));
    Ok(prediction)
}

/// The feature row of the newest of `candles`, computed on a blocking thread: polars work
/// never runs on the runtime's workers (it blocks them, and on a current-thread runtime
/// polars refuses to run at all).
async fn newest_row(
    candles: Vec<Candle>,
    interval: Interval,
    spec: FeatureSpec,
) -> Result<Option<FeatureRow>, ApiError> {
    tokio::task::spawn_blocking(move || features::latest_row(&candles, interval, &spec))
        .await
        .map_err(|e| ApiError::Internal(format!("computing a feature row: {e}")))?
        .map_err(|e| ApiError::Internal(e.to_string()))
}

fn check_fresh(state: &AppState, newest: &Candle, interval: Interval) -> Result<(), ApiError> {
    let Some(max) = state.max_stale_candles else {
        return Ok(());
    };
    let age_ms = (Utc::now() - newest.open_time).num_milliseconds();
    let behind = age_ms / interval.duration_ms();
    if behind > i64::from(max) {
        return Err(ApiError::Unavailable(format!(
            "the newest {} {interval} candle opened at {} ({behind} intervals ago, more than the {max} allowed by PRICECAST_API_MAX_STALE_CANDLES): the collector is behind; forecasts resume when it catches up",
            newest.symbol,
            newest.open_time.to_rfc3339()
        )));
    }
    Ok(())
}

/// The champion's forecast for feature values, or for a price series, sent in the body.
#[endpoint(
    tags("predict"),
    request_body = WhatIf,
    responses(
        (status_code = 200, description = "The forecast", body = Prediction),
        (status_code = 400, description = "A missing, extra or bad input, named", body = crate::error::ErrorBody),
        (status_code = 413, description = "A body over the size limit", body = crate::error::ErrorBody),
        (status_code = 503, description = "No champion yet", body = crate::error::ErrorBody)
    )
)]
pub async fn predict_what_if(
    req: &mut Request,
    depot: &mut Depot,
) -> Result<Json<Prediction>, ApiError> {
    let state = app_state(depot)?;
    // Parsed here rather than by an extractor so that a bad body's answer says what is wrong
    // (an unknown field, a wrong type, where the JSON breaks) instead of only "Bad Request".
    let body: WhatIf = req.parse_json().await.map_err(|e| {
        ApiError::BadRequest(match e {
            ParseError::SerdeJson(e) => format!("the body is not a valid request: {e}"),
            ParseError::InvalidContentType => {
                "the body must be JSON sent with content-type: application/json".to_owned()
            }
            other => format!("the body cannot be read: {other}"),
        })
    })?;
    let symbol = params::symbol(body.symbol.as_deref())?;
    let interval = match params::interval(body.interval.as_deref())? {
        Some(interval) => interval,
        None => state
            .models
            .series()
            .iter()
            .find(|(s, _)| *s == symbol)
            .map(|(_, i)| *i)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "interval: name the interval; {symbol} is not among the served series"
                ))
            })?,
    };
    let champion = champion_of(state, &symbol, interval)?;
    let row = match (body.features, body.prices) {
        (Some(features), None) => row_from_features(&champion, interval, &features, body.close)?,
        (None, Some(_)) if body.close.is_some() => {
            return Err(ApiError::BadRequest(
                "close goes with features; with prices the last price is the close".to_owned(),
            ));
        }
        (None, Some(prices)) => row_from_prices(&champion, &symbol, interval, &prices).await?,
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "send either features or prices, not both".to_owned(),
            ));
        }
        (None, None) => {
            return Err(ApiError::BadRequest(format!(
                "send features (by name: {}, with their close) or prices (recent closes, oldest first)",
                champion.model.feature_names.join(", ")
            )));
        }
    };
    forecast(&champion, &symbol, interval, &row).map(Json)
}

/// A JSON value that must be a finite number.
fn finite(name: &str, value: &serde_json::Value) -> Result<f64, ApiError> {
    match value.as_f64() {
        Some(v) if v.is_finite() => Ok(v),
        _ => Err(ApiError::BadRequest(format!(
            "{name} is {value}; it must be a finite number"
        ))),
    }
}

/// Features that are prices (a negative or zero value is a mistake).
fn is_price_feature(name: &str) -> bool {
    name.starts_with("price_t") || (name.starts_with("ma_") && !name.starts_with("ma_ratio"))
}

fn row_from_features(
    champion: &RegisteredModel,
    interval: Interval,
    features: &BTreeMap<String, serde_json::Value>,
    close: Option<serde_json::Value>,
) -> Result<FeatureRow, ApiError> {
    let names = &champion.model.feature_names;
    if let Some(extra) = features.keys().find(|k| !names.contains(k)) {
        return Err(ApiError::BadRequest(format!(
            "features.{extra}: the champion does not take this feature; it takes {}",
            names.join(", ")
        )));
    }
    let mut values = Vec::with_capacity(names.len());
    for name in names {
        let value = features.get(name).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "features.{name} is missing; the champion takes {}",
                names.join(", ")
            ))
        })?;
        let v = finite(&format!("features.{name}"), value)?;
        if is_price_feature(name) && v <= 0.0 {
            return Err(ApiError::BadRequest(format!(
                "features.{name} is {v}; a price must be above zero"
            )));
        }
        values.push(v);
    }
    // The model forecasts a change from the close of the candle the features describe; no
    // feature is that close (price_t-1 is the one before), so the client sends it.
    let close = close.ok_or_else(|| {
        ApiError::BadRequest(
            "close is missing: with features, send the close of the candle they describe, which the forecast moves from".to_owned(),
        )
    })?;
    let close = finite("close", &close)?;
    if close <= 0.0 {
        return Err(ApiError::BadRequest(format!(
            "close is {close}; a price must be above zero"
        )));
    }
    Ok(FeatureRow {
        open_time: last_closed_open_time(interval)?,
        close,
        values,
    })
}

/// Open time of the newest candle of `interval` that has closed: what a forecast made now
/// from client-sent inputs is based on.
fn last_closed_open_time(interval: Interval) -> Result<DateTime<Utc>, ApiError> {
    let open_ms = interval.floor(Utc::now().timestamp_millis()) - interval.duration_ms();
    Utc.timestamp_millis_opt(open_ms)
        .single()
        .ok_or_else(|| ApiError::Internal(format!("open time {open_ms} out of range")))
}

async fn row_from_prices(
    champion: &RegisteredModel,
    symbol: &Symbol,
    interval: Interval,
    prices: &[serde_json::Value],
) -> Result<FeatureRow, ApiError> {
    let spec = serving_spec(champion);
    let needed = spec.history() + 1;
    if prices.len() < needed || prices.len() > MAX_POSTED_PRICES {
        return Err(ApiError::BadRequest(format!(
            "prices has {} values; the champion's features need {needed} to {MAX_POSTED_PRICES} closes, oldest first",
            prices.len()
        )));
    }
    let step = interval.duration_ms();
    let last_open = last_closed_open_time(interval)?.timestamp_millis();
    let first_open = last_open - step * (prices.len() as i64 - 1);
    let mut candles = Vec::with_capacity(prices.len());
    for (i, value) in prices.iter().enumerate() {
        let name = format!("prices[{i}]");
        let price = finite(&name, value)?;
        if price <= 0.0 {
            return Err(ApiError::BadRequest(format!(
                "{name} is {price}; a price must be above zero"
            )));
        }
        let price = Decimal::from_f64(price).ok_or_else(|| {
            ApiError::BadRequest(format!("{name} is {price}, out of the decimal range"))
        })?;
        let open_ms = first_open + step * i as i64;
        let open_time = Utc
            .timestamp_millis_opt(open_ms)
            .single()
            .ok_or_else(|| ApiError::Internal(format!("open time {open_ms} out of range")))?;
        candles.push(Candle {
            symbol: symbol.clone(),
            interval,
            open_time,
            open: price,
            high: price,
            low: price,
            close: price,
            volume: Decimal::ZERO,
            quote_volume: None,
            trades: None,
            taker_buy_base: None,
            taker_buy_quote: None,
            close_time: open_time + Duration::milliseconds(step - 1),
            source: POSTED_SOURCE.to_owned(),
        });
    }
    newest_row(candles, interval, spec)
        .await?
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "prices: the champion takes {}, which a price series alone cannot give; send features by name",
                champion.model.feature_names.join(", ")
            ))
        })
}

/// Champion and challenger of each served series: version, metrics, trained-on range and the
/// promotion decision.
#[endpoint(tags("predict"))]
pub async fn list_models(depot: &mut Depot) -> Result<Json<ModelsBody>, ApiError> {
    let state = app_state(depot)?;
    let served = &state.models;
    let status = served.status();
    let models = served
        .series()
        .iter()
        .map(|(symbol, interval)| SeriesModelsBody {
            symbol: symbol.to_string(),
            interval: interval.to_string(),
            model_name: served.model_name(symbol, *interval),
            champion: served.champion(symbol, *interval).map(|m| m.summary()),
            challenger: served.challenger(symbol, *interval).map(|m| m.summary()),
        })
        .collect();
    Ok(Json(ModelsBody {
        registry: status.location,
        last_poll: status.last_success,
        models,
    }))
}
