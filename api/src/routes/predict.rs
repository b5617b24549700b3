//! `/price/predict`: the champion model's forecast from the newest stored candles (GET), or for
//! feature values or a price series the client sends (POST, a computation: nothing is stored).

use std::collections::BTreeMap;

use salvo::http::ParseError;
use salvo::oapi::{ToParameters, ToSchema};
use salvo::prelude::*;
use serde::Deserialize;

use super::{app_state, series};
use crate::error::ApiError;
use crate::params;
use crate::services::{Prediction, WhatIfInputs};

/// Largest `horizon` accepted.
const MAX_HORIZON: i64 = 1000;

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
    let champion = state.forecasts.champion(&symbol, interval)?;
    let horizon = query
        .horizon
        .as_deref()
        .map(|raw| params::integer("horizon", Some(raw), 1, 1, MAX_HORIZON))
        .transpose()?;
    let prediction = state
        .forecasts
        .live_from(&champion, &symbol, interval, horizon)
        .await?;
    Ok(Json(prediction))
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
        None => state.forecasts.served_interval(&symbol)?,
    };
    let inputs = WhatIfInputs {
        features: body.features,
        prices: body.prices,
        close: body.close,
    };
    let prediction = state.forecasts.what_if(&symbol, interval, inputs).await?;
    Ok(Json(prediction))
}
