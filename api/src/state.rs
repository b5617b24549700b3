//! What every handler shares: the read-only store, the metrics and a small cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pricecast_shared::domain::{Interval, Symbol};
use pricecast_shared::store::Store;

use crate::error::ApiError;
use crate::forecast_cache::ForecastCache;
use crate::metrics::ApiMetrics;
use crate::served_models::ServedModels;

/// How long the default interval of a symbol is remembered.
const DEFAULT_INTERVAL_TTL: Duration = Duration::from_secs(30);
/// Default for [`AppState::cache_ttl`]: candles close at most once a second, and a collect run
/// is minutes apart, so a second of caching costs no freshness that matters.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(1);
/// Default for [`AppState::request_timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Shared state of the service; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database, connected read-only.
    pub store: Store,
    /// Request counters and durations, in a registry of this state's own.
    pub metrics: Arc<ApiMetrics>,
    /// When the state was created (for `uptime_s`).
    pub started: Instant,
    /// Longest time a request may take.
    pub request_timeout: Duration,
    /// How long successful price responses are served from memory (zero: never).
    pub cache_ttl: Duration,
    /// The models predictions come from.
    pub models: Arc<ServedModels>,
    /// The newest forecast of each series, reused until a new candle or champion.
    pub forecasts: Arc<ForecastCache>,
    /// Forecasts answer 503 when the newest candle is more than this many intervals old
    /// (`None`: never, as in the demo's replayed history).
    pub max_stale_candles: Option<u32>,
    default_intervals: Arc<Mutex<HashMap<Symbol, (Interval, Instant)>>>,
}

impl AppState {
    /// State over a store (which should be connected with `AccessMode::ReadOnly`).
    pub fn new(store: Store) -> Self {
        Self {
            store,
            metrics: Arc::new(ApiMetrics::new()),
            started: Instant::now(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            cache_ttl: DEFAULT_CACHE_TTL,
            models: Arc::new(ServedModels::none()),
            forecasts: Arc::default(),
            max_stale_candles: None,
            default_intervals: Arc::default(),
        }
    }

    /// Serves predictions from these models.
    #[must_use]
    pub fn with_models(mut self, models: Arc<ServedModels>) -> Self {
        self.models = models;
        self
    }

    /// Sets how many intervals old the newest candle may be for a forecast (`None`: any).
    #[must_use]
    pub fn with_max_stale_candles(mut self, max: Option<u32>) -> Self {
        self.max_stale_candles = max;
        self
    }

    /// Sets how long price responses are cached (zero disables the cache).
    #[must_use]
    pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// Sets the request timeout.
    #[must_use]
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The interval to use when a request names none: the finest one stored for the symbol,
    /// remembered for a short while. 404 when nothing is stored for the symbol.
    pub async fn default_interval(&self, symbol: &Symbol) -> Result<Interval, ApiError> {
        if let Some(interval) = self.cached_interval(symbol) {
            return Ok(interval);
        }
        for interval in Interval::ALL {
            if self.store.last_open_time(symbol, interval).await?.is_some() {
                if let Ok(mut cache) = self.default_intervals.lock() {
                    cache.insert(symbol.clone(), (interval, Instant::now()));
                }
                return Ok(interval);
            }
        }
        Err(ApiError::NotFound(format!(
            "no candles stored for symbol {symbol}; collect it first (pricecast-collect --symbols {symbol})"
        )))
    }

    fn cached_interval(&self, symbol: &Symbol) -> Option<Interval> {
        let cache = self.default_intervals.lock().ok()?;
        cache
            .get(symbol)
            .filter(|(_, at)| at.elapsed() < DEFAULT_INTERVAL_TTL)
            .map(|(interval, _)| *interval)
    }

    /// The requested interval, or the default one of the symbol.
    pub async fn interval_or_default(
        &self,
        symbol: &Symbol,
        interval: Option<Interval>,
    ) -> Result<Interval, ApiError> {
        match interval {
            Some(interval) => Ok(interval),
            None => self.default_interval(symbol).await,
        }
    }
}
