//! Binance's public market-data REST API: `GET /api/v3/klines`, with its rate limits honoured.
//!
//! * `X-MBX-USED-WEIGHT-1m` is read on every answer; above [`WEIGHT_SLOWDOWN_FRACTION`] of the
//!   per-minute budget the client waits for the next minute before sending more.
//! * 429 waits `Retry-After` and retries; 418 (IP banned) stops with [`Error::Banned`].
//! * 5xx, timeouts and connection failures are retried with exponential backoff and jitter,
//!   within a total time budget; every retry is logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use chrono::Utc;
use pricecast_shared::domain::{Candle, CandleSource, Interval, Symbol};
use pricecast_shared::{Error, Result};
use reqwest::StatusCode;
use url::Url;

use crate::kline;

/// Binance returns at most this many klines per request.
pub const MAX_KLINES_PER_REQUEST: usize = 1000;
/// Binance's default request-weight budget per minute for one IP.
pub const DEFAULT_WEIGHT_LIMIT: u32 = 6000;
/// Slow down once this share of the minute's weight budget is used, leaving room for other
/// clients on the same IP.
pub const WEIGHT_SLOWDOWN_FRACTION: f64 = 0.8;
const USED_WEIGHT_HEADER: &str = "x-mbx-used-weight-1m";

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
    used_weight: Arc<AtomicU32>,
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
            used_weight: Arc::new(AtomicU32::new(0)),
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
        let body = self.get_with_retries(url).await?;
        let candles = kline::parse_page(&body, symbol, interval, CandleSource::Binance.as_str())?;
        kline::validate_page(&candles)?;
        Ok(kline::closed_only(candles, Utc::now()))
    }

    /// Downloads `url` (a file of the bulk archive) with the same retries as the REST calls;
    /// `None` when it does not exist (HTTP 404).
    pub async fn download(&self, url: Url) -> Result<Option<bytes::Bytes>> {
        match self.get_with_retries(url).await {
            Ok(body) => Ok(Some(body)),
            Err(Error::Rejected { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn get_with_retries(&self, url: Url) -> Result<bytes::Bytes> {
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
            self.get_once(&url).await
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

    async fn get_once(&self, url: &Url) -> std::result::Result<bytes::Bytes, Attempt> {
        self.respect_weight_budget().await;
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
            self.used_weight.store(used, Ordering::Relaxed);
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
            StatusCode::IM_A_TEAPOT => Err(Attempt::Fatal(Error::Banned { retry_after })),
            StatusCode::TOO_MANY_REQUESTS => Err(Attempt::Transient {
                message: format!("HTTP 429 rate limited: {body}"),
                retry_after: Some(retry_after.unwrap_or(Duration::from_secs(1))),
            }),
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

    /// Waits for the next minute when the last answer said the weight budget is nearly spent.
    async fn respect_weight_budget(&self) {
        let used = self.used_weight.load(Ordering::Relaxed);
        let Some(wait) = weight_wait(
            used,
            self.config.weight_limit,
            Utc::now().timestamp_millis(),
        ) else {
            return;
        };
        tracing::warn!(
            used_weight = used,
            weight_limit = self.config.weight_limit,
            wait_ms = wait.as_millis() as u64,
            "Binance request weight nearly spent, waiting for the next minute"
        );
        tokio::time::sleep(wait).await;
        self.used_weight.store(0, Ordering::Relaxed);
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
