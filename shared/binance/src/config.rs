//! Binance's settings: every variable the collector reads to reach Binance, each also a flag.
//!
//! | variable | flag | default |
//! |---|---|---|
//! | `BINANCE_BASE_URL` | `--binance-base-url` | `https://data-api.binance.vision` |
//! | `BINANCE_ARCHIVE_URL` | `--binance-archive-url` | unset (backfills use the REST API only) |
//! | `BINANCE_REQUEST_TIMEOUT_SECS` | `--binance-request-timeout-secs` | 10 |
//! | `BINANCE_RETRY_BUDGET_SECS` | `--binance-retry-budget-secs` | 120 |
//! | `BINANCE_WEIGHT_LIMIT` | `--binance-weight-limit` | 6000 |

use std::time::Duration;

use pricecast_shared::settings::{parse_http_url, with_trailing_slash};
use url::Url;

use crate::client::{BinanceConfig, DEFAULT_WEIGHT_LIMIT, RetryPolicy};

/// Binance's public market-data-only REST host.
pub const DEFAULT_BINANCE_BASE_URL: &str = "https://data-api.binance.vision";

/// Binance connection settings.
#[derive(clap::Args, Clone, Debug)]
pub struct BinanceArgs {
    /// Binance REST base URL (market data needs no key).
    #[arg(
        long,
        env = "BINANCE_BASE_URL",
        value_name = "BINANCE_BASE_URL",
        default_value = DEFAULT_BINANCE_BASE_URL,
        value_parser = parse_http_url("BINANCE_BASE_URL")
    )]
    pub binance_base_url: Url,

    /// Binance's bulk archive (`https://data.binance.vision`): when set, a backfill of at least
    /// 10,000 candles takes the months before the current one from its monthly files (one
    /// download a month, checked against its SHA-256) and the REST API only the rest.
    #[arg(
        long,
        env = "BINANCE_ARCHIVE_URL",
        value_name = "BINANCE_ARCHIVE_URL",
        value_parser = parse_http_url("BINANCE_ARCHIVE_URL")
    )]
    pub binance_archive_url: Option<Url>,

    /// Timeout of one Binance request, in seconds.
    #[arg(
        long,
        env = "BINANCE_REQUEST_TIMEOUT_SECS",
        value_name = "BINANCE_REQUEST_TIMEOUT_SECS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=600)
    )]
    pub binance_request_timeout_secs: u64,

    /// Total time spent waiting between retries of one request before giving up, in seconds.
    #[arg(
        long,
        env = "BINANCE_RETRY_BUDGET_SECS",
        value_name = "BINANCE_RETRY_BUDGET_SECS",
        default_value_t = 120,
        value_parser = clap::value_parser!(u64).range(0..=3600)
    )]
    pub binance_retry_budget_secs: u64,

    /// Request-weight budget per minute (Binance's limit for this IP).
    #[arg(
        long,
        env = "BINANCE_WEIGHT_LIMIT",
        value_name = "BINANCE_WEIGHT_LIMIT",
        default_value_t = DEFAULT_WEIGHT_LIMIT,
        value_parser = clap::value_parser!(u32).range(10..)
    )]
    pub binance_weight_limit: u32,
}

impl BinanceArgs {
    /// The client configuration these settings describe.
    pub fn config(&self) -> BinanceConfig {
        let budget = Duration::from_secs(self.binance_retry_budget_secs);
        BinanceConfig {
            base_url: with_trailing_slash(self.binance_base_url.clone()),
            request_timeout: Duration::from_secs(self.binance_request_timeout_secs),
            retry: RetryPolicy {
                max_total_delay: budget,
                max_delay: RetryPolicy::default()
                    .max_delay
                    .min(budget.max(Duration::from_millis(1))),
                ..RetryPolicy::default()
            },
            weight_limit: self.binance_weight_limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        binance: BinanceArgs,
    }

    #[test]
    fn the_default_base_url_is_binance_market_data_host() {
        let cli = Cli::try_parse_from(["job"]).expect("valid flags");
        assert_eq!(
            cli.binance.config().base_url.as_str(),
            "https://data-api.binance.vision/"
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases = [
            (
                vec!["job", "--binance-base-url", "ftp://x"],
                "BINANCE_BASE_URL",
            ),
            (
                vec!["job", "--binance-archive-url", "s3://bucket"],
                "BINANCE_ARCHIVE_URL",
            ),
        ];
        for (args, variable) in cases {
            let err = Cli::try_parse_from(args).expect_err(variable).to_string();
            assert!(err.contains(variable), "{err}");
        }
    }
}
