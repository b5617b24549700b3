//! Binance's public market-data REST API: `GET /api/v3/klines` and `GET /api/v3/exchangeInfo`,
//! with its rate limits honoured by every clone of a client at once (the concurrent series of a
//! process share one budget).
//!
//! * Each request reserves its weight in the current minute before it is sent, and
//!   `X-MBX-USED-WEIGHT-1m` is read on every answer; past [`WEIGHT_SLOWDOWN_FRACTION`] of the
//!   per-minute budget every request waits for the next minute.
//! * 429 pauses every request until `Retry-After` has passed, then retries; 418 (IP banned)
//!   stops this request and every later one with [`Error::Banned`].
//! * 5xx, timeouts and connection failures are retried with exponential backoff and jitter,
//!   within a total time budget; every retry is logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use backon::{ExponentialBuilder, Retryable};
use chrono::Utc;
use pricecast_shared::domain::{Candle, CandleSource, Interval, Symbol};
use pricecast_shared::{Error, Result};
use reqwest::StatusCode;
use url::Url;

use crate::kline;
use pricecast_shared::universe::ListedSymbol;

/// Binance returns at most this many klines per request.
pub const MAX_KLINES_PER_REQUEST: usize = 1000;
/// Binance's default request-weight budget per minute for one IP.
pub const DEFAULT_WEIGHT_LIMIT: u32 = 6000;
/// Slow down once this share of the minute's weight budget is used, leaving room for other
/// clients on the same IP.
pub const WEIGHT_SLOWDOWN_FRACTION: f64 = 0.8;
const USED_WEIGHT_HEADER: &str = "x-mbx-used-weight-1m";
/// Weight of one klines request of up to 1000 candles.
const KLINES_WEIGHT: u32 = 2;
/// Weight of `GET /api/v3/exchangeInfo` for every symbol.
const EXCHANGE_INFO_WEIGHT: u32 = 20;

/// How hard to retry transient failures.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// First backoff delay.
    pub min_delay: Duration,
    /// Longest single backoff delay.
    pub max_delay: Duration,
    /// Total time spent waiting between attempts before giving up.
    pub max_total_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_total_delay: Duration::from_secs(120),
        }
    }
}

/// Connection settings of the Binance client.
#[derive(Clone, Debug)]
pub struct BinanceConfig {
    /// REST base URL, e.g. `https://data-api.binance.vision`.
    pub base_url: Url,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Retry budget for transient failures.
    pub retry: RetryPolicy,
    /// Request-weight budget per minute.
    pub weight_limit: u32,
}

/// A Binance REST client.
#[derive(Clone, Debug)]
pub struct BinanceClient {
    http: reqwest::Client,
    config: BinanceConfig,
    limiter: Arc<Mutex<WeightBudget>>,
}

/// The request weight of the current minute, shared by every clone of a client.
#[derive(Debug, Default)]
struct WeightBudget {
    /// The calendar minute `used` counts (ms since the epoch / 60,000).
    minute: i64,
    /// Weight reserved or reported used this minute, whichever is more.
    used: u32,
    /// No request is sent before this (a 429's `Retry-After`).
    paused_until: Option<Instant>,
    /// Set by a 418: every later request fails at once.
    banned: Option<Option<Duration>>,
}

impl WeightBudget {
    /// Moves to the current minute, starting its count at zero.
    fn roll(&mut self, now_ms: i64) {
        let minute = now_ms.div_euclid(60_000);
        if minute != self.minute {
            self.minute = minute;
            self.used = 0;
        }
    }
}

/// One failed attempt, before the retry decision.
#[derive(Debug)]
enum Attempt {
    /// Worth retrying after the given delay (or the backoff's).
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Retrying will not help.
    Fatal(Error),
}

impl BinanceClient {
    /// Builds a client; fails only when TLS cannot be initialised.
    pub fn new(config: BinanceConfig) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .user_agent(concat!("pricecast/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            config,
            limiter: Arc::new(Mutex::new(WeightBudget::default())),
        })
    }

    /// Every symbol Binance lists for spot trading, with its status (`TRADING`, `BREAK`, …).
    pub async fn exchange_symbols(&self) -> Result<Vec<ListedSymbol>> {
        let url = self
            .config
            .base_url
            .join("api/v3/exchangeInfo")
            .map_err(|e| Error::config(format!("BINANCE_BASE_URL cannot take a path: {e}")))?;
        let body = self
            .get_with_retries(url.clone(), EXCHANGE_INFO_WEIGHT)
            .await?;
        parse_exchange_info(&body).map_err(|detail| Error::MalformedPage {
            source_name: url.to_string(),
            detail,
        })
    }

    /// The configured base URL.
    pub fn base_url(&self) -> &Url {
        &self.config.base_url
    }

    /// Fetches up to `limit` klines opening at or after `start_ms` (and at or before `end_ms`),
    /// parsed and validated.
    pub async fn klines(
        &self,
        symbol: &Symbol,
        interval: Interval,
        start_ms: i64,
        end_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Candle>> {
        let mut url = self
            .config
            .base_url
            .join("api/v3/klines")
            .map_err(|e| Error::config(format!("BINANCE_BASE_URL cannot take a path: {e}")))?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("symbol", symbol.as_str())
                .append_pair("interval", interval.as_str())
                .append_pair("startTime", &start_ms.to_string())
                .append_pair("limit", &limit.min(MAX_KLINES_PER_REQUEST).to_string());
            if let Some(end) = end_ms {
                query.append_pair("endTime", &end.to_string());
            }
        }
        let body = self.get_with_retries(url, KLINES_WEIGHT).await?;
        let candles = kline::parse_page(&body, symbol, interval, CandleSource::Binance.as_str())?;
        kline::validate_page(&candles)?;
        Ok(kline::closed_only(candles, Utc::now()))
    }

    /// Downloads `url` (a file of the bulk archive) with the same retries as the REST calls;
    /// `None` when it does not exist (HTTP 404).
    pub async fn download(&self, url: Url) -> Result<Option<bytes::Bytes>> {
        // The bulk archive is a file server, outside the REST weight budget.
        match self.get_with_retries(url, 0).await {
            Ok(body) => Ok(Some(body)),
            Err(Error::Rejected { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn get_with_retries(&self, url: Url, weight: u32) -> Result<bytes::Bytes> {
        let started = Instant::now();
        let attempts = AtomicU32::new(0);
        let policy = &self.config.retry;
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(policy.min_delay)
            .with_max_delay(policy.max_delay)
            .with_total_delay(Some(policy.max_total_delay))
            .without_max_times();
        let result = (|| async {
            attempts.fetch_add(1, Ordering::Relaxed);
            self.get_once(&url, weight).await
        })
        .retry(backoff)
        .when(|e| matches!(e, Attempt::Transient { .. }))
        .adjust(|e, delay| match e {
            Attempt::Transient {
                retry_after: Some(wait),
                ..
            } => delay.map(|_| *wait),
            _ => delay,
        })
        .notify(|e, delay| {
            if let Attempt::Transient { message, .. } = e {
                tracing::warn!(
                    url = %url,
                    attempt = attempts.load(Ordering::Relaxed),
                    retry_in_ms = delay.as_millis() as u64,
                    error.message = %message,
                    "Binance request failed, retrying"
                );
            }
        })
        .await;
        result.map_err(|e| match e {
            Attempt::Fatal(error) => error,
            Attempt::Transient { message, .. } => Error::RetriesExhausted {
                url: url.to_string(),
                attempts: attempts.load(Ordering::Relaxed),
                elapsed_s: started.elapsed().as_secs_f64(),
                last_error: message,
            },
        })
    }

    async fn get_once(&self, url: &Url, weight: u32) -> std::result::Result<bytes::Bytes, Attempt> {
        self.admit(weight).await?;
        let response = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| Attempt::Transient {
                message: describe_reqwest_error(&e),
                retry_after: None,
            })?;
        if let Some(used) = response
            .headers()
            .get(USED_WEIGHT_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u32>().ok())
        {
            let mut budget = self.limiter.lock().await;
            budget.roll(Utc::now().timestamp_millis());
            budget.used = budget.used.max(used);
        }
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        if status.is_success() {
            return response.bytes().await.map_err(|e| Attempt::Transient {
                message: format!("reading the body failed: {}", describe_reqwest_error(&e)),
                retry_after: None,
            });
        }
        let body = response.text().await.unwrap_or_default();
        match status {
            StatusCode::IM_A_TEAPOT => {
                self.limiter.lock().await.banned = Some(retry_after);
                Err(Attempt::Fatal(Error::Banned { retry_after }))
            }
            StatusCode::TOO_MANY_REQUESTS => {
                let wait = retry_after.unwrap_or(Duration::from_secs(1));
                let until = Instant::now() + wait;
                let mut budget = self.limiter.lock().await;
                budget.paused_until = Some(budget.paused_until.map_or(until, |u| u.max(until)));
                Err(Attempt::Transient {
                    message: format!("HTTP 429 rate limited: {body}"),
                    retry_after: Some(wait),
                })
            }
            s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
                Err(Attempt::Transient {
                    message: format!("HTTP {}: {body}", s.as_u16()),
                    retry_after: None,
                })
            }
            s => Err(Attempt::Fatal(Error::Rejected {
                url: url.to_string(),
                status: s.as_u16(),
                body,
            })),
        }
    }

    /// Waits until a request of `weight` may be sent, and reserves its weight: after a 429's
    /// pause, and into the next minute once the budget is nearly spent. Fails at once after a
    /// 418.
    async fn admit(&self, weight: u32) -> std::result::Result<(), Attempt> {
        loop {
            let wait = {
                let mut budget = self.limiter.lock().await;
                if let Some(retry_after) = budget.banned {
                    return Err(Attempt::Fatal(Error::Banned { retry_after }));
                }
                let now_ms = Utc::now().timestamp_millis();
                budget.roll(now_ms);
                let paused = budget
                    .paused_until
                    .and_then(|until| until.checked_duration_since(Instant::now()));
                match paused {
                    Some(wait) => Some((wait, budget.used, "Binance asked to wait (429)")),
                    None if weight == 0 => return Ok(()),
                    None => {
                        match weight_wait(budget.used + weight, self.config.weight_limit, now_ms) {
                            Some(wait) => Some((
                                wait,
                                budget.used,
                                "Binance request weight nearly spent, waiting for the next minute",
                            )),
                            None => {
                                budget.used += weight;
                                return Ok(());
                            }
                        }
                    }
                }
            };
            if let Some((wait, used, why)) = wait {
                tracing::warn!(
                    used_weight = used,
                    weight_limit = self.config.weight_limit,
                    wait_ms = wait.as_millis() as u64,
                    "{why}"
                );
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// How long to wait before the next request, given the weight used in the current minute:
/// nothing below [`WEIGHT_SLOWDOWN_FRACTION`] of the limit, else until the next minute starts
/// (Binance's weight window is the calendar minute).
pub fn weight_wait(used: u32, limit: u32, now_ms: i64) -> Option<Duration> {
    let threshold = (f64::from(limit) * WEIGHT_SLOWDOWN_FRACTION) as u32;
    if used < threshold {
        return None;
    }
    /// Margin past the minute boundary, for clock skew with Binance.
    const SKEW_MS: i64 = 50;
    let wait_ms = 60_000 - now_ms.rem_euclid(60_000) + SKEW_MS;
    Some(Duration::from_millis(wait_ms as u64))
}

/// The spot symbols of an `exchangeInfo` answer; symbols Pricecast cannot name are left out.
fn parse_exchange_info(body: &[u8]) -> std::result::Result<Vec<ListedSymbol>, String> {
    let info: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("exchangeInfo is not JSON: {e}"))?;
    let symbols = info["symbols"]
        .as_array()
        .ok_or("exchangeInfo has no symbols list")?;
    Ok(symbols
        .iter()
        .filter(|s| s["isSpotTradingAllowed"].as_bool().unwrap_or(true))
        .filter_map(|s| {
            Some(ListedSymbol {
                symbol: s["symbol"].as_str()?.parse().ok()?,
                status: s["status"].as_str()?.to_owned(),
            })
        })
        .collect())
}

fn describe_reqwest_error(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut message = format!("{kind}: {e}");
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slows_down_only_near_the_weight_limit() {
        assert_eq!(weight_wait(100, 6000, 0), None);
        assert_eq!(weight_wait(4799, 6000, 0), None);
        assert_eq!(
            weight_wait(4800, 6000, 45_000),
            Some(Duration::from_millis(15_050))
        );
        assert_eq!(
            weight_wait(6000, 6000, 119_990),
            Some(Duration::from_millis(60))
        );
    }
}
