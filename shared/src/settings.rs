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
//! | `PRICECAST_SYMBOLS` | `--symbols` | `BTCUSDT` (names, `*` patterns, `all`) |
//! | `PRICECAST_SYMBOLS_EXCLUDE` | `--symbols-exclude` | unset |
//! | `PRICECAST_INTERVALS` | `--intervals` | `1m` |
//! | `PRICECAST_CONCURRENCY` | `--concurrency` | per job: collect 8, export 2, features and train the cores, sync 1 |
//! | `PRICECAST_SHARD` | `--shard` | unset: every series (`i/n`: shard `i` of `n`, from 0) |
//! | `PRICECAST_SHARDS` + `JOB_COMPLETION_INDEX` | | unset; `n` and an Indexed Job's pod index, as `--shard index/n` |
//! | `PRICECAST_CRON` | `--cron` | unset: run once |
//! | `PRICECAST_NO_MIGRATE` | `--no-migrate` | false |
//! | `PRICECAST_LOG_FORMAT` | `--log-format` | `auto`: JSON unless stdout is a terminal |
//! | `RUST_LOG` | | `info` |
//!
//! Binance's variables (`BINANCE_BASE_URL`, `BINANCE_ARCHIVE_URL`, `BINANCE_REQUEST_TIMEOUT_SECS`,
//! `BINANCE_RETRY_BUDGET_SECS`, `BINANCE_WEIGHT_LIMIT`) are listed in `pricecast_binance::config`.
//! The model's variables (`PRICECAST_MODEL_TYPE`, `PRICECAST_MODEL_ALPHA`,
//! `PRICECAST_MODEL_L1_RATIO`, `PRICECAST_MODEL_TREES`, `PRICECAST_MODEL_MAX_DEPTH`,
//! `PRICECAST_MODEL_MIN_SAMPLES_LEAF`, `PRICECAST_MODEL_SEED`) and `PRICECAST_INTERVAL_LEVEL`
//! (the nominal coverage of forecast intervals, strictly between 0 and 1, default 0.9) are
//! listed in [`crate::model`].
//! The lake's variables (`LAKE_URL`, `AWS_ENDPOINT_URL`, `MLFLOW_S3_ENDPOINT_URL`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`) are listed in [`crate::lake`].
//! The warehouse's variables (`DATABRICKS_SERVER_HOSTNAME`, `DATABRICKS_HTTP_PATH`,
//! `DATABRICKS_ACCESS_TOKEN`, `DATABRICKS_ODBC_DRIVER`, `SYNC_ODBC_CONNECTION_STRING`, `SYNC_DIALECT`,
//! `SYNC_CATALOG`, `SYNC_SCHEMA`, `SYNC_BATCH_SIZE`) are listed in `pricecast_warehouse::config`;
//! `SYNC_MODE` is the sync job's own.
//! The model registry's variables (`MLFLOW_TRACKING_URI`, `MLFLOW_EXPERIMENT_NAME`,
//! `MLFLOW_TRACKING_TOKEN`, `MLFLOW_TRACKING_USERNAME`, `MLFLOW_TRACKING_PASSWORD`,
//! `MLFLOW_HTTP_REQUEST_TIMEOUT`, `MLFLOW_HTTP_REQUEST_MAX_RETRIES`, `PRICECAST_MODEL_NAME`) are
//! listed in [`crate::registry::config`].

use std::fmt;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};

use crate::error::Error;
use crate::series::{MAX_CONCURRENCY, SeriesScope, Universe};
use crate::shard::{MAX_SHARDS, Shard};
use crate::universe::{SymbolSelector, names, only_names};
use url::Url;

use crate::domain::{Interval, Symbol};

/// The embedded default database.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./pricecast-data/pricecast.db";

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
    /// Comma-separated Binance symbols and patterns: names (`BTCUSDT`), `*` patterns
    /// (`*USDT`, `BTC*`) or `all`, resolved against the exchange's trading symbols.
    #[arg(
        long,
        env = "PRICECAST_SYMBOLS",
        value_name = "PRICECAST_SYMBOLS",
        value_delimiter = ',',
        default_value = "BTCUSDT",
        value_parser = parse_symbol
    )]
    pub symbols: Vec<SymbolSelector>,

    /// Comma-separated names or patterns left out of `PRICECAST_SYMBOLS`.
    #[arg(
        long,
        env = "PRICECAST_SYMBOLS_EXCLUDE",
        value_name = "PRICECAST_SYMBOLS_EXCLUDE",
        value_delimiter = ',',
        value_parser = parse_excluded
    )]
    pub symbols_exclude: Vec<String>,

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

    /// Series worked on at once (default: the job's own, see the job's documentation).
    #[arg(
        long,
        env = "PRICECAST_CONCURRENCY",
        value_name = "PRICECAST_CONCURRENCY",
        value_parser = parse_concurrency
    )]
    pub concurrency: Option<usize>,

    /// Work on shard `i` of `n` of the series only (`i/n`, `i` from 0), so `n` processes share
    /// them; each shard has its own lock.
    #[arg(
        long,
        env = "PRICECAST_SHARD",
        value_name = "PRICECAST_SHARD",
        value_parser = parse_shard
    )]
    pub shard: Option<Shard>,

    /// How many shards the series are cut into when the shard's index comes from a Kubernetes
    /// Indexed Job (`JOB_COMPLETION_INDEX`).
    #[arg(
        long,
        env = "PRICECAST_SHARDS",
        value_name = "PRICECAST_SHARDS",
        value_parser = clap::value_parser!(u32).range(1..=MAX_SHARDS as i64)
    )]
    pub shards: Option<u32>,

    /// This pod's index in an Indexed Job, set by Kubernetes.
    #[arg(
        long,
        env = "JOB_COMPLETION_INDEX",
        value_name = "JOB_COMPLETION_INDEX",
        hide = true
    )]
    pub job_completion_index: Option<String>,
}

impl SeriesArgs {
    /// How the job's series are shared out and run: the shard from `--shard`/`PRICECAST_SHARD`,
    /// or from `PRICECAST_SHARDS` and `JOB_COMPLETION_INDEX`, and the concurrency.
    pub fn scope(&self) -> Result<SeriesScope, Error> {
        let indexed = match (self.shards, self.job_completion_index.as_deref()) {
            (None, _) => None,
            (Some(count), Some(index)) => {
                let index = index.trim().parse::<u32>().map_err(|_| {
                    Error::config(format!(
                        "JOB_COMPLETION_INDEX: '{index}' is not a pod index (a number from 0)"
                    ))
                })?;
                Some(Shard::new(index, count).map_err(|e| {
                    Error::config(format!("PRICECAST_SHARDS with JOB_COMPLETION_INDEX: {e}"))
                })?)
            }
            (Some(count), None) => {
                return Err(Error::config(format!(
                    "PRICECAST_SHARDS is {count} but JOB_COMPLETION_INDEX is not set: run the job \
                     as a Kubernetes Indexed Job, or give the shard itself with --shard i/{count}"
                )));
            }
        };
        let shard = match (self.shard, indexed) {
            (Some(given), Some(indexed)) if given != indexed => {
                return Err(Error::config(format!(
                    "PRICECAST_SHARD is {given} but PRICECAST_SHARDS and JOB_COMPLETION_INDEX \
                     say {indexed}: set one of the two"
                )));
            }
            (given, indexed) => given.or(indexed),
        };
        let excluded: Vec<SymbolSelector> = self
            .symbols_exclude
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse().ok())
            .collect();
        let universe = (!only_names(&self.symbols, &excluded)).then(|| Universe {
            selectors: self.symbols.clone(),
            excluded,
        });
        Ok(SeriesScope {
            shard,
            concurrency: self.concurrency,
            universe,
        })
    }

    /// The symbols named one by one (patterns and `all` are resolved by each run).
    pub fn symbol_names(&self) -> Vec<Symbol> {
        names(&self.symbols)
    }
}

fn parse_concurrency(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => Ok(n),
        _ => Err(format!(
            "PRICECAST_CONCURRENCY: '{s}' is not a number of series from 1 to {MAX_CONCURRENCY}"
        )),
    }
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    s.parse().map_err(|e| format!("PRICECAST_SHARD: {e}"))
}

fn parse_symbol(s: &str) -> Result<SymbolSelector, String> {
    s.parse().map_err(|e| format!("PRICECAST_SYMBOLS: {e}"))
}

/// An exclusion, checked; empty (an empty `PRICECAST_SYMBOLS_EXCLUDE`) excludes nothing.
fn parse_excluded(s: &str) -> Result<String, String> {
    let s = s.trim();
    if !s.is_empty() {
        s.parse::<SymbolSelector>()
            .map_err(|e| format!("PRICECAST_SYMBOLS_EXCLUDE: {e}"))?;
    }
    Ok(s.to_owned())
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

/// `Url::join` replaces the last segment unless the base ends in `/`.
pub fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

/// A clap value parser for an http(s) URL whose errors name `variable`.
pub fn parse_http_url(variable: &'static str) -> impl Fn(&str) -> Result<Url, String> + Clone {
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
        assert_eq!(cli.series.symbol_names()[0].as_str(), "BTCUSDT");
        assert_eq!(cli.series.intervals, vec![Interval::M1, Interval::H1]);
        assert_eq!(cli.run.cron.map(|c| c.0), Some("0 */5 * * * *".into()));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases = [
            (vec!["job", "--symbols", "BTC-USD"], "PRICECAST_SYMBOLS"),
            (vec!["job", "--intervals", "7m"], "PRICECAST_INTERVALS"),
            (vec!["job", "--cron", "every minute"], "PRICECAST_CRON"),
            (vec!["job", "--database-url", "mysql://x"], "DATABASE_URL"),
        ];
        for (args, variable) in cases {
            let err = Cli::try_parse_from(args).expect_err(variable).to_string();
            assert!(err.contains(variable), "{err}");
        }
    }
}
