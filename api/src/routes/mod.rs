//! The endpoints, one file per concern, and the table of routes they are served at.

pub mod chart;
pub mod health;
pub mod index;
pub mod jobs;
pub mod metrics;
pub mod predict;
pub mod price;

use std::time::Duration;

use salvo::cache::{Cache, MokaStore, RequestIssuer};
use salvo::prelude::*;

use crate::error::ApiError;
use crate::state::AppState;

/// Every API route (path, description), as served, documented and listed by `GET /`.
pub const ENDPOINTS: [(&str, &str); 11] = [
    ("/", "This list of endpoints"),
    (
        "/price/latest",
        "Newest price of a series: price (close), timestamp, source, last_updated (when it was stored) and the candle's OHLCV (?symbol=&interval=)",
    ),
    (
        "/price/history",
        "Array of the newest `limit` closes of the last `hours` hours, oldest first, each with id, source, created_at and the seed features price_t+1, price_t-1..price_t-5 and ma_10 (?hours=24&limit=100&symbol=&interval=)",
    ),
    (
        "/price/stats",
        "period_hours, total_records, min_price, max_price, avg_price and latest_price of the closes of the last `hours` hours, with their standard deviation and change (?hours=24&symbol=&interval=)",
    ),
    (
        "/price/candles",
        "OHLCV candles oldest first, by time range and page (?start=&end=&limit=500&offset=0&symbol=&interval=)",
    ),
    (
        "/price/predict",
        "The champion model's forecast of the next close, with the baseline, an interval and the model's walk-forward MAE and skill (?symbol=&interval=&horizon=); POST feature values or recent prices for a what-if forecast",
    ),
    (
        "/price/chart.svg",
        "Picture of recent closes with the forecast and its interval (?hours=48&symbol=&interval=)",
    ),
    (
        "/models",
        "Champion and challenger model of each served series: version, metrics, trained-on range, promotion decision",
    ),
    (
        "/jobs",
        "Most recent runs of the collection and pipeline jobs (?job=&limit=50)",
    ),
    (
        "/health",
        "Service and database health: status, database (connected/disconnected) and each dependency (503 when the database is down)",
    ),
    ("/metrics", "Prometheus metrics"),
];

/// Paths of [`ENDPOINTS`].
pub const ROUTES: [&str; 11] = {
    let mut routes = [""; 11];
    let mut i = 0;
    while i < ENDPOINTS.len() {
        routes[i] = ENDPOINTS[i].0;
        i += 1;
    }
    routes
};

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
        .push(Router::with_path("models").get(predict::list_models))
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
