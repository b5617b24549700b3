//! The handlers, one file per concern, and the router that serves them at the paths of
//! [`crate::endpoints`].

pub mod chart;
pub mod forecasts;
pub mod health;
pub mod index;
pub mod jobs;
pub mod metrics;
pub mod models;
pub mod predict;
pub mod price;

use std::time::Duration;

use pricecast_shared::domain::{Interval, Symbol};
use salvo::cache::{Cache, MokaStore, RequestIssuer};
use salvo::prelude::*;

use crate::error::ApiError;
use crate::params;
use crate::state::AppState;

/// Most distinct price responses kept in the response cache.
const CACHE_CAPACITY: u64 = 10_000;

/// The API's routes without middleware or documentation routes. Successful price responses are
/// cached in memory for `cache_ttl`, keyed by the full URI (zero disables the cache).
pub fn api_router(cache_ttl: Duration) -> Router {
    let mut price = Router::with_path("price")
        .push(Router::with_path("latest").get(price::latest))
        .push(Router::with_path("history").get(price::history))
        .push(Router::with_path("stats").get(price::stats))
        .push(Router::with_path("candles").get(price::candles))
        .push(
            Router::with_path("predict")
                .get(predict::predict)
                .post(predict::predict_what_if),
        )
        .push(Router::with_path("chart.svg").get(chart::price_chart));
    if !cache_ttl.is_zero() {
        price = price.hoop(Cache::new(
            MokaStore::builder()
                .time_to_live(cache_ttl)
                .max_capacity(CACHE_CAPACITY)
                .build(),
            RequestIssuer::default(),
        ));
    }
    Router::new()
        .get(index::index)
        .push(price)
        .push(
            Router::with_path("forecasts")
                .get(forecasts::list_forecasts)
                .push(Router::with_path("scorecard").get(forecasts::scorecard)),
        )
        .push(Router::with_path("models").get(models::list_models))
        .push(Router::with_path("jobs").get(jobs::job_runs))
        .push(Router::with_path("health").get(health::health))
        .push(Router::with_path("metrics").get(metrics::metrics))
}

/// The state injected by [`crate::router`].
pub(crate) fn app_state(depot: &Depot) -> Result<&AppState, ApiError> {
    depot
        .get_typed::<AppState>()
        .map_err(|_| ApiError::Internal("AppState is not injected into the depot".into()))
}

/// The series a request names: its symbol and (requested or default) interval.
pub(crate) async fn series(
    state: &AppState,
    symbol: Option<&str>,
    interval: Option<&str>,
) -> Result<(Symbol, Interval), ApiError> {
    let symbol = params::symbol(symbol)?;
    let interval = params::interval(interval)?;
    let interval = state.series.interval_or_default(&symbol, interval).await?;
    Ok((symbol, interval))
}
