//! `/forecasts`: the forecast ledger (what the champions forecast for each closed candle, with
//! what happened) and `/forecasts/scorecard`, how those forecasts did against the naive
//! baseline and how their intervals held.

use salvo::oapi::{ToParameters, ToSchema};
use salvo::prelude::*;
use serde::{Deserialize, Serialize};

use pricecast_shared::store::ForecastQuery;

use super::{app_state, series};
use crate::error::ApiError;
use crate::params;
use crate::services::ledger::{LedgerEntry, Scorecard};

/// Largest `horizon` accepted (only the served horizon is answered).
const MAX_HORIZON: i64 = 1000;
/// Most forecasts one request returns.
const MAX_LIMIT: i64 = 5_000;
/// Forecasts returned when `limit` is absent.
const DEFAULT_LIMIT: i64 = 500;
/// Longest scorecard window, in days (ten years).
const MAX_DAYS: i64 = 3_650;
/// Scorecard window when `days` is absent.
const DEFAULT_DAYS: i64 = 30;

/// Parameters of `GET /forecasts`.
#[derive(Debug, Deserialize, ToParameters)]
#[salvo(parameters(default_parameter_in = Query))]
pub struct ForecastsQuery {
    /// Trading pair, such as BTCUSDT (lower case accepted; default BTCUSDT).
    symbol: Option<String>,
    /// Kline interval (default: the finest interval stored for the symbol).
    interval: Option<String>,
    /// Candles ahead, 1 to 1000; only the horizon the series' champion serves is answered
    /// (default: that one).
    #[salvo(parameter(value_type = Option<i64>, minimum = 1, maximum = 1000))]
    horizon: Option<String>,
    /// Earliest `based_on`, inclusive: RFC 3339, a date or milliseconds since the epoch.
    start: Option<String>,
    /// Latest `based_on`, inclusive.
    end: Option<String>,
    /// Most forecasts returned (the newest), 1 to 5000 (default 500).
    #[salvo(parameter(value_type = Option<i64>, minimum = 1, maximum = 5000))]
    limit: Option<String>,
}

/// Parameters of `GET /forecasts/scorecard`.
#[derive(Debug, Deserialize, ToParameters)]
#[salvo(parameters(default_parameter_in = Query))]
pub struct ScorecardQuery {
    /// Trading pair, such as BTCUSDT (lower case accepted; default BTCUSDT).
    symbol: Option<String>,
    /// Kline interval (default: the finest interval stored for the symbol).
    interval: Option<String>,
    /// Candles ahead, 1 to 1000; only the horizon the series' champion serves is answered
    /// (default: that one).
    #[salvo(parameter(value_type = Option<i64>, minimum = 1, maximum = 1000))]
    horizon: Option<String>,
    /// Window: forecasts whose target closed in the last `days` days of the series (up to its
    /// newest candle), 1 to 3650 (default 30).
    #[salvo(parameter(value_type = Option<i64>, minimum = 1, maximum = 3650))]
    days: Option<String>,
}

/// Forecasts of one series and horizon, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = LedgerPage))]
pub struct LedgerPage {
    /// Trading pair.
    pub symbol: String,
    /// Kline interval.
    pub interval: String,
    /// Candles ahead.
    pub horizon: u32,
    /// The forecasts, newest `based_on` first.
    pub forecasts: Vec<LedgerEntry>,
}

/// The forecasts the champions made for each closed candle, with the actual close once known,
/// the error and whether it fell inside the interval.
#[endpoint(
    tags("forecasts"),
    responses(
        (status_code = 200, description = "The forecasts, newest first", body = LedgerPage),
        (status_code = 400, description = "A bad parameter, or a horizon not served", body = crate::error::ErrorBody),
        (status_code = 404, description = "No candles for the series", body = crate::error::ErrorBody),
        (status_code = 503, description = "No champion for the series", body = crate::error::ErrorBody)
    )
)]
pub async fn list_forecasts(
    query: ForecastsQuery,
    depot: &mut Depot,
) -> Result<Json<LedgerPage>, ApiError> {
    let state = app_state(depot)?;
    let limit = params::integer("limit", query.limit.as_deref(), DEFAULT_LIMIT, 1, MAX_LIMIT)?;
    let horizon = horizon(query.horizon.as_deref())?;
    let from = params::time("start", query.start.as_deref())?;
    let to = params::time("end", query.end.as_deref())?;
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        return Err(ApiError::BadRequest(format!(
            "start ({}) is after end ({})",
            from.to_rfc3339(),
            to.to_rfc3339()
        )));
    }
    let (symbol, interval) =
        series(state, query.symbol.as_deref(), query.interval.as_deref()).await?;
    let horizon = state.ledger.served_horizon(&symbol, interval, horizon)?;
    let forecasts = state
        .ledger
        .forecasts(&ForecastQuery {
            symbol: symbol.clone(),
            interval,
            horizon,
            from,
            to,
            limit,
        })
        .await?;
    Ok(Json(LedgerPage {
        symbol: symbol.to_string(),
        interval: interval.to_string(),
        horizon,
        forecasts,
    }))
}

/// How the ledger's forecasts did once their targets were known, per model version and
/// overall: n, MAE, the baseline's MAE, skill, a Diebold–Mariano p-value, interval coverage
/// against the nominal level, mean interval width and pinball loss. Nothing scored is n = 0.
#[endpoint(
    tags("forecasts"),
    responses(
        (status_code = 200, description = "The scorecard (n = 0 when nothing is scored)", body = Scorecard),
        (status_code = 400, description = "A bad parameter, or a horizon not served", body = crate::error::ErrorBody),
        (status_code = 404, description = "No candles for the series", body = crate::error::ErrorBody),
        (status_code = 503, description = "No champion for the series", body = crate::error::ErrorBody)
    )
)]
pub async fn scorecard(
    query: ScorecardQuery,
    depot: &mut Depot,
) -> Result<Json<Scorecard>, ApiError> {
    let state = app_state(depot)?;
    let days = params::integer("days", query.days.as_deref(), DEFAULT_DAYS, 1, MAX_DAYS)?;
    let horizon = horizon(query.horizon.as_deref())?;
    let (symbol, interval) =
        series(state, query.symbol.as_deref(), query.interval.as_deref()).await?;
    let horizon = state.ledger.served_horizon(&symbol, interval, horizon)?;
    let card = state
        .ledger
        .scorecard(&symbol, interval, horizon, days)
        .await?;
    Ok(Json(card))
}

/// `horizon`, when given.
fn horizon(raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    raw.map(|raw| params::integer("horizon", Some(raw), 1, 1, MAX_HORIZON))
        .transpose()
}
