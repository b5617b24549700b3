//! What every handler shares: the read-only store, the services over it and the metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pricecast_shared::store::Store;

use crate::metrics::ApiMetrics;
use crate::served_models::ServedModels;
use crate::services::{ForecastService, LedgerService, PriceService, SeriesService};

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
    /// Series resolution over the store.
    pub series: SeriesService,
    /// Stored prices: newest, history, statistics, candles.
    pub prices: PriceService,
    /// Forecasts from the served champion models.
    pub forecasts: ForecastService,
    /// The forecast ledger and its scorecard.
    pub ledger: LedgerService,
}

impl AppState {
    /// State over a store (which should be connected with `AccessMode::ReadOnly`).
    pub fn new(store: Store) -> Self {
        let series = SeriesService::new(store.clone());
        let forecasts = ForecastService::new(series.clone(), Arc::new(ServedModels::none()));
        Self {
            ledger: LedgerService::new(store.clone(), forecasts.clone()),
            forecasts,
            prices: PriceService::new(series.clone()),
            series,
            store,
            metrics: Arc::new(ApiMetrics::new()),
            started: Instant::now(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            cache_ttl: DEFAULT_CACHE_TTL,
        }
    }

    /// Serves predictions from these models.
    #[must_use]
    pub fn with_models(mut self, models: Arc<ServedModels>) -> Self {
        self.forecasts = self.forecasts.with_models(models);
        self.ledger = LedgerService::new(self.store.clone(), self.forecasts.clone());
        self
    }

    /// Sets how many intervals old the newest candle may be for a forecast (`None`: any); an
    /// older one makes forecasts answer 503.
    #[must_use]
    pub fn with_max_stale_candles(mut self, max: Option<u32>) -> Self {
        self.forecasts = self.forecasts.with_max_stale_candles(max);
        self.ledger = LedgerService::new(self.store.clone(), self.forecasts.clone());
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
}
