//! Typed settings: every variable Pricecast reads, each also a command-line flag.
//!
//! Values come from flags, then the environment, then `.env` (read by [`load_dotenv`]), then the
//! defaults below. A bad value stops the program before any work, with a message naming the
//! variable, and exit code 2. Secrets are kept in [`SecretString`] and never printed.
//!
//! | variable | flag | default |
//! |---|---|---|
//! | `DATABASE_URL` | `--database-url` | `sqlite://./pricecast-data/pricecast.db` |
//! | `DATABASE_MAX_CONNECTIONS` | `--database-max-connections` | 8 |
//! | `PRICECAST_SYMBOLS` | `--symbols` | `BTCUSDT` |
//! | `PRICECAST_INTERVALS` | `--intervals` | `1m` |
//! | `BINANCE_BASE_URL` | `--binance-base-url` | `https://data-api.binance.vision` |
//! | `BINANCE_ARCHIVE_URL` | `--binance-archive-url` | unset (backfills use the REST API only) |
//! | `BINANCE_REQUEST_TIMEOUT_SECS` | `--binance-request-timeout-secs` | 10 |
//! | `BINANCE_RETRY_BUDGET_SECS` | `--binance-retry-budget-secs` | 120 |
//! | `BINANCE_WEIGHT_LIMIT` | `--binance-weight-limit` | 6000 |
//! | `PRICECAST_CRON` | `--cron` | unset: run once |
//! | `PRICECAST_NO_MIGRATE` | `--no-migrate` | false |
//! | `PRICECAST_LOG_FORMAT` | `--log-format` | `auto`: JSON unless stdout is a terminal |
//! | `RUST_LOG` | | `info` |
//!
//! The model's variables (`PRICECAST_MODEL_TYPE`, `PRICECAST_MODEL_ALPHA`,
//! `PRICECAST_MODEL_L1_RATIO`, `PRICECAST_MODEL_TREES`, `PRICECAST_MODEL_MAX_DEPTH`,
//! `PRICECAST_MODEL_MIN_SAMPLES_LEAF`, `PRICECAST_MODEL_SEED`) and `PRICECAST_INTERVAL_LEVEL`
//! (the nominal coverage of forecast intervals, strictly between 0 and 1, default 0.9) are
//! listed in [`crate::model`].
//! The lake's variables (`LAKE_URL`, `AWS_ENDPOINT_URL`, `MLFLOW_S3_ENDPOINT_URL`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`) are listed in [`crate::lake`].
//! The warehouse's variables (`DATABRICKS_SERVER_HOSTNAME`, `DATABRICKS_HTTP_PATH`,
//! `DATABRICKS_ACCESS_TOKEN`, `DATABRICKS_ODBC_DRIVER`, `SYNC_ODBC_CONNECTION_STRING`, `SYNC_DIALECT`,
//! `SYNC_CATALOG`, `SYNC_SCHEMA`, `SYNC_BATCH_SIZE`) are listed in [`crate::warehouse::config`];
//! `SYNC_MODE` is the sync job's own.
//! The model registry's variables (`MLFLOW_TRACKING_URI`, `MLFLOW_EXPERIMENT_NAME`,
//! `MLFLOW_TRACKING_TOKEN`, `MLFLOW_TRACKING_USERNAME`, `MLFLOW_TRACKING_PASSWORD`,
//! `MLFLOW_HTTP_REQUEST_TIMEOUT`, `MLFLOW_HTTP_REQUEST_MAX_RETRIES`, `PRICECAST_MODEL_NAME`) are
//! listed in [`crate::registry::config`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::binance::{BinanceConfig, DEFAULT_WEIGHT_LIMIT, RetryPolicy};
use crate::domain::{Interval, Symbol};

/// The embedded default database.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./pricecast-data/pricecast.db";
/// Binance's public market-data-only REST host.
pub const DEFAULT_BINANCE_BASE_URL: &str = "https://data-api.binance.vision";

/// Reads `.env` from the working directory when present; real environment variables win.
pub fn load_dotenv() {
    // A missing .env is the normal case in containers.
    let _ = dotenvy::dotenv();
}

/// A database URL; its password never appears in `Debug` or `Display`.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    /// The full URL, password included: pass it to the driver only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(self.expose())
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = ["postgres://", "postgresql://", "sqlite:"]
            .iter()
            .any(|scheme| s.starts_with(scheme));
        if ok {
            Ok(Self(SecretString::from(s.to_owned())))
        } else {
            Err(format!(
                "DATABASE_URL must start with postgres://, postgresql:// or sqlite:// (got {})",
                redact_url(s)
            ))
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Replaces the password of a URL (and any `password=` query value) with `***`.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let secret = ["password", "token", "secret"]
                        .iter()
                        .any(|s| k.to_ascii_lowercase().contains(s));
                    (
                        k.into_owned(),
                        if secret { "***".into() } else { v.into_owned() },
                    )
                })
                .collect();
            if !pairs.is_empty() {
                url.query_pairs_mut().clear().extend_pairs(pairs);
            }
            url.to_string()
        }
        Err(_) => "<unparseable URL>".to_owned(),
    }
}

/// Database connection settings.
#[derive(clap::Args, Clone, Debug)]
pub struct DatabaseArgs {
    /// Database URL: `postgres://user:pass@host/db` or `sqlite://path/to/file.db`.
    #[arg(
        long,
        env = "DATABASE_URL",
        value_name = "DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        hide_default_value = false
    )]
    pub database_url: DatabaseUrl,

    /// Largest number of pooled database connections.
    #[arg(
        long,
        env = "DATABASE_MAX_CONNECTIONS",
        value_name = "DATABASE_MAX_CONNECTIONS",
        default_value_t = 8,
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    pub database_max_connections: u32,
}

/// Which series a job works on.
#[derive(clap::Args, Clone, Debug)]
pub struct SeriesArgs {
    /// Comma-separated Binance symbols.
    #[arg(
        long,
        env = "PRICECAST_SYMBOLS",
        value_name = "PRICECAST_SYMBOLS",
        value_delimiter = ',',
        default_value = "BTCUSDT",
        value_parser = parse_symbol
    )]
    pub symbols: Vec<Symbol>,

    /// Comma-separated Binance intervals (1m, 5m, 1h, 1d, …).
    #[arg(
        long,
        env = "PRICECAST_INTERVALS",
        value_name = "PRICECAST_INTERVALS",
        value_delimiter = ',',
        default_value = "1m",
        value_parser = parse_interval
    )]
    pub intervals: Vec<Interval>,
}

fn parse_symbol(s: &str) -> Result<Symbol, String> {
    s.parse().map_err(|e| format!("PRICECAST_SYMBOLS: {e}"))
}

fn parse_interval(s: &str) -> Result<Interval, String> {
    s.parse().map_err(|e| format!("PRICECAST_INTERVALS: {e}"))
}

/// How a job is scheduled and started.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct RunArgs {
    /// Run once and exit (the default).
    #[arg(long, conflicts_with = "cron")]
    pub once: bool,

    /// Keep running on this cron schedule (5 fields, or 6 with seconds), never overlapping.
    #[arg(long, env = "PRICECAST_CRON", value_name = "PRICECAST_CRON", value_parser = parse_cron)]
    pub cron: Option<CronSchedule>,

    /// Do not apply database migrations at start.
    #[arg(long, env = "PRICECAST_NO_MIGRATE")]
    pub no_migrate: bool,
}

/// A validated cron expression, stored with seconds (6 or 7 fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronSchedule(String);

impl CronSchedule {
    /// The expression with a seconds field.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for CronSchedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fields = s.split_whitespace().count();
        let with_seconds = match fields {
            5 => format!("0 {}", s.trim()),
            6 | 7 => s.trim().to_owned(),
            _ => {
                return Err(format!(
                    "PRICECAST_CRON: {s:?} has {fields} fields; use 5 (min hour day month weekday) or 6 with seconds first"
                ));
            }
        };
        tokio_cron_scheduler::Job::new_async(with_seconds.as_str(), |_, _| Box::pin(async {}))
            .map_err(|e| format!("PRICECAST_CRON: {s:?} is not a valid cron expression ({e})"))?;
        Ok(Self(with_seconds))
    }
}

fn parse_cron(s: &str) -> Result<CronSchedule, String> {
    s.parse()
}

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

/// `Url::join` replaces the last segment unless the base ends in `/`.
pub(crate) fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

/// A clap value parser for an http(s) URL whose errors name `variable`.
pub(crate) fn parse_http_url(
    variable: &'static str,
) -> impl Fn(&str) -> Result<Url, String> + Clone {
    move |s: &str| {
        let url = Url::parse(s).map_err(|e| format!("{variable}: {s:?} is not a URL ({e})"))?;
        if matches!(url.scheme(), "http" | "https") {
            Ok(url)
        } else {
            Err(format!(
                "{variable}: {s:?} must be an http:// or https:// URL"
            ))
        }
    }
}

/// Log output format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON when stdout is not a terminal, text otherwise.
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// Logging settings.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct LogArgs {
    /// Log format: auto, json or text (filter with RUST_LOG).
    #[arg(
        long,
        env = "PRICECAST_LOG_FORMAT",
        value_name = "PRICECAST_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Auto
    )]
    pub log_format: LogFormat,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        series: SeriesArgs,
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        binance: BinanceArgs,
    }

    #[test]
    fn database_passwords_never_print() {
        let url: DatabaseUrl = "postgres://app:hunter2@db:5432/prices?sslmode=require"
            .parse()
            .expect("url");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert!(!url.to_string().contains("hunter2"));
        assert!(url.expose().contains("hunter2"));
        assert!(!redact_url("postgres://h/db?password=hunter2").contains("hunter2"));
    }

    #[test]
    fn flags_parse_lists_and_defaults() {
        let cli = Cli::try_parse_from([
            "job",
            "--symbols",
            "btcusdt,ETHUSDT",
            "--intervals",
            "1m,1h",
            "--cron",
            "*/5 * * * *",
        ])
        .expect("valid flags");
        assert_eq!(cli.series.symbols.len(), 2);
        assert_eq!(cli.series.symbols[0].as_str(), "BTCUSDT");
        assert_eq!(cli.series.intervals, vec![Interval::M1, Interval::H1]);
        assert_eq!(cli.run.cron.map(|c| c.0), Some("0 */5 * * * *".into()));
        assert_eq!(
            cli.binance.config().base_url.as_str(),
            "https://data-api.binance.vision/"
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases = [
            (vec!["job", "--symbols", "BTC-USD"], "PRICECAST_SYMBOLS"),
            (vec!["job", "--intervals", "7m"], "PRICECAST_INTERVALS"),
            (vec!["job", "--cron", "every minute"], "PRICECAST_CRON"),
            (vec!["job", "--database-url", "mysql://x"], "DATABASE_URL"),
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
