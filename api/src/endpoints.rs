//! The endpoint table: every route's path and one-line description. A leaf module, read by
//! the router, `GET /` and the metrics' route labels.

/// Every API route (path, description), as served, documented and listed by `GET /`.
pub const ENDPOINTS: [(&str, &str); 13] = [
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
        "/forecasts",
        "The forecast ledger: the champion's forecast for each closed candle after its training data, newest first, with the actual close once known, the error and whether it fell inside the interval (?symbol=&interval=&horizon=&start=&end=&limit=500)",
    ),
    (
        "/forecasts/scorecard",
        "How the ledger's forecasts did, per model version and overall: n, MAE, the baseline's MAE, skill, Diebold-Mariano p-value, interval coverage against the nominal level, mean interval width, pinball loss (?symbol=&interval=&horizon=&days=30)",
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
pub const ROUTES: [&str; 13] = {
    let mut routes = [""; 13];
    let mut i = 0;
    while i < ENDPOINTS.len() {
        routes[i] = ENDPOINTS[i].0;
        i += 1;
    }
    routes
};
