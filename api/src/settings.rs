//! The API's settings: the shared database and log settings plus where to listen.
//!
//! | variable | flag | default |
//! |---|---|---|
//! | `DATABASE_URL`, `DATABASE_MAX_CONNECTIONS` | see `pricecast_shared::settings` | |
//! | `PRICECAST_API_ADDR` | `--addr` | `127.0.0.1:8000` |
//! | `PRICECAST_API_REQUEST_TIMEOUT_SECS` | `--request-timeout-secs` | 30 |
//! | `PRICECAST_API_CACHE_TTL_MS` | `--cache-ttl-ms` | 1000 (0 disables) |
//! | `PRICECAST_SYMBOLS`, `PRICECAST_INTERVALS` | `--symbols`, `--intervals` | series whose models are served |
//! | `LAKE_URL`, `AWS_*` | see `pricecast_shared::lake` | the local registry lives in the lake |
//! | `MLFLOW_TRACKING_URI`, `MLFLOW_TRACKING_TOKEN`, … | see `pricecast_shared::registry::config` | unset: the local registry |
//! | `PRICECAST_MODEL_POLL_SECS` | `--model-poll-secs` | 30 |
//! | `PRICECAST_API_MAX_STALE_CANDLES` | `--max-stale-candles` | 60 (0: never stale) |
//! | `PRICECAST_LOG_FORMAT`, `RUST_LOG` | `--log-format` | auto, `info` |

use std::net::SocketAddr;
use std::time::Duration;

use pricecast_shared::domain::{Interval, Symbol};
use pricecast_shared::lake::LakeArgs;
use pricecast_shared::registry::RegistryArgs;
use pricecast_shared::settings::{DatabaseArgs, LogArgs, SeriesArgs};

/// Everything `pricecast-api` is configured with.
#[derive(clap::Args, Clone, Debug)]
pub struct ApiArgs {
    /// Database connection (opened read-only).
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Address and port to listen on.
    #[arg(
        long = "addr",
        env = "PRICECAST_API_ADDR",
        value_name = "PRICECAST_API_ADDR",
        default_value = "127.0.0.1:8000"
    )]
    pub addr: SocketAddr,

    /// Longest time one request may take before it is answered with 503, in seconds.
    #[arg(
        long,
        env = "PRICECAST_API_REQUEST_TIMEOUT_SECS",
        value_name = "PRICECAST_API_REQUEST_TIMEOUT_SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub request_timeout_secs: u64,

    /// How long successful price responses are served from memory, in milliseconds (0: never).
    #[arg(
        long,
        env = "PRICECAST_API_CACHE_TTL_MS",
        value_name = "PRICECAST_API_CACHE_TTL_MS",
        default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(0..=3_600_000)
    )]
    pub cache_ttl_ms: u64,

    /// Series whose champion models are loaded and served.
    #[command(flatten)]
    pub series: SeriesArgs,

    /// The lake (where the local model registry lives).
    #[command(flatten)]
    pub lake: LakeArgs,

    /// The model registry the champions come from.
    #[command(flatten)]
    pub registry: RegistryArgs,

    /// Seconds between two reads of the registry's aliases; a moved `champion` is swapped in.
    #[arg(
        long,
        env = "PRICECAST_MODEL_POLL_SECS",
        value_name = "PRICECAST_MODEL_POLL_SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub model_poll_secs: u64,

    /// Forecasts answer 503 when the newest candle is more than this many intervals old
    /// (0: never; for replayed or archived history).
    #[arg(
        long,
        env = "PRICECAST_API_MAX_STALE_CANDLES",
        value_name = "PRICECAST_API_MAX_STALE_CANDLES",
        default_value_t = 60,
        value_parser = clap::value_parser!(u32)
    )]
    pub max_stale_candles: u32,

    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

impl ApiArgs {
    /// The response cache lifetime as a duration.
    pub fn cache_ttl(&self) -> Duration {
        Duration::from_millis(self.cache_ttl_ms)
    }

    /// The request timeout as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// Time between two polls of the registry.
    pub fn model_poll_interval(&self) -> Duration {
        Duration::from_secs(self.model_poll_secs)
    }

    /// The staleness limit, `None` when disabled.
    pub fn max_stale_candles(&self) -> Option<u32> {
        (self.max_stale_candles > 0).then_some(self.max_stale_candles)
    }

    /// Every configured symbol and interval: the named symbols, and those of `stored` that the
    /// patterns of `PRICECAST_SYMBOLS` select (less `PRICECAST_SYMBOLS_EXCLUDE`).
    pub fn served_series(&self, stored: &[Symbol]) -> Vec<(Symbol, Interval)> {
        let mut symbols = self.series.symbol_names();
        if let Ok(Some(universe)) = self.series.scope().map(|scope| scope.universe) {
            symbols.retain(|s| !universe.excluded.iter().any(|e| e.matches(s.as_str())));
            for symbol in stored {
                if universe.selects(symbol.as_str()) && !symbols.contains(symbol) {
                    symbols.push(symbol.clone());
                }
            }
        }
        symbols
            .iter()
            .flat_map(|s| self.series.intervals.iter().map(move |i| (s.clone(), *i)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        api: ApiArgs,
    }

    #[test]
    fn defaults_and_bad_values() {
        let cli = Cli::try_parse_from(["pricecast-api"]).expect("defaults parse");
        assert_eq!(cli.api.addr.to_string(), "127.0.0.1:8000");
        assert_eq!(cli.api.request_timeout(), Duration::from_secs(30));
        let err = Cli::try_parse_from(["pricecast-api", "--addr", "nowhere"])
            .err()
            .expect("bad address is rejected")
            .to_string();
        assert!(err.contains("PRICECAST_API_ADDR"), "{err}");
    }
}
