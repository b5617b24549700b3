//! The library's error type: one variant per upstream failure, each saying what to do.

use std::time::Duration;

use crate::report::{JobReport, SeriesKey};

/// Formats an error with its chain of causes, for the `error.message` log field. Our errors
/// never print their source, so each cause is added here; a cause whose text is already there
/// (an upstream error that prints its own source) is skipped so that nothing is said twice.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !message.contains(&cause_text) {
            message.push_str(": ");
            message.push_str(&cause_text);
        }
        source = cause.source();
    }
    message
}

/// One series that failed in a run of many.
#[derive(Debug)]
pub struct SeriesFailure {
    /// The series.
    pub series: SeriesKey,
    /// Why it failed.
    pub error: Box<Error>,
}

/// `BTCUSDT 1h: <error chain>; ETHUSDT 1h: …`.
fn describe_failures(failures: &[SeriesFailure]) -> String {
    failures
        .iter()
        .map(|f| {
            format!(
                "{} {}: {}",
                f.series.symbol,
                f.series.interval,
                error_chain(f.error.as_ref())
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting has a value that cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The database refused or failed a query.
    #[error("database error")]
    Database(#[from] sqlx::Error),

    /// Applying the schema migrations failed.
    #[error("could not apply database migrations")]
    Migrate(#[from] sqlx::migrate::MigrateError),

    /// A value stored in the database cannot be read back as the domain type.
    #[error("corrupt row in the database: {0}")]
    CorruptRow(String),

    /// A kline page from the price source is not in Binance's format.
    #[error("malformed kline page from {source_name}: {detail}")]
    MalformedPage {
        /// Where the page came from.
        source_name: String,
        /// What is wrong with it.
        detail: String,
    },

    /// A candle breaks an invariant (high below low, non-positive price, misaligned time, …).
    #[error(
        "invalid candle {symbol} {interval} opening {open_time}: {reason}; nothing of this page was written"
    )]
    InvalidCandle {
        /// Trading pair.
        symbol: String,
        /// Kline interval.
        interval: String,
        /// Open time of the offending candle (RFC 3339).
        open_time: String,
        /// Which field or rule is broken.
        reason: String,
    },

    /// Binance answered 418: this IP is banned for ignoring rate limits.
    #[error(
        "Binance banned this IP address (HTTP 418) for exceeding its rate limits{retry}; stop all collectors on this IP and wait before retrying",
        retry = .retry_after.map(|d| format!(" for {}s", d.as_secs())).unwrap_or_default()
    )]
    Banned {
        /// How long Binance said the ban lasts.
        retry_after: Option<Duration>,
    },

    /// Binance answered with an error that retrying will not fix.
    #[error("Binance rejected the request {url} with HTTP {status}: {body}")]
    Rejected {
        /// The request's URL (without secrets: market data needs none).
        url: String,
        /// HTTP status.
        status: u16,
        /// Binance's error body (`{"code":…,"msg":…}`).
        body: String,
    },

    /// A file of Binance's bulk archive is not what it should be.
    #[error("Binance archive file {file}: {detail}")]
    Archive {
        /// The file's URL.
        file: String,
        /// What is wrong with it.
        detail: String,
    },

    /// A transient failure persisted past the retry budget.
    #[error("gave up on {url} after {attempts} attempts over {elapsed_s:.1}s: {last_error}")]
    RetriesExhausted {
        /// The request's URL.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// Time spent retrying.
        elapsed_s: f64,
        /// The last failure seen.
        last_error: String,
    },

    /// Some series of a run failed; the others were done, as `report` records.
    #[error("{} of {total} series failed: {}", failures.len(), describe_failures(failures))]
    SeriesFailed {
        /// Series the run worked on.
        total: usize,
        /// The series that failed, each with its error.
        failures: Vec<SeriesFailure>,
        /// What the run did, failed series included.
        report: Box<JobReport>,
    },

    /// The run was cancelled (SIGTERM / Ctrl-C) between batches.
    #[error("cancelled by a shutdown signal; every committed batch is kept")]
    Cancelled,

    /// The lake (S3, MinIO, GCS, Azure or a local folder) refused or failed an operation.
    #[error("lake {operation} failed")]
    Lake {
        /// What was being done, with the object's location.
        operation: String,
        /// The object store's error.
        #[source]
        source: object_store::Error,
    },

    /// The lake cannot be used as configured (missing bucket, wrong endpoint, bad credentials).
    #[error("lake {url} is not usable: {reason}")]
    LakeUnavailable {
        /// The lake URL (no secrets: credentials never appear in it).
        url: String,
        /// What is wrong and what to do.
        reason: String,
    },

    /// Encoding or decoding Parquet failed.
    #[error("Parquet error")]
    Parquet(#[from] parquet::errors::ParquetError),

    /// Building Arrow arrays failed.
    #[error("Arrow error")]
    Arrow(#[from] arrow::error::ArrowError),

    /// A value cannot be written to the lake without changing it.
    #[error("cannot export {column} = {value} of {series} opening {open_time}: {reason}")]
    InexactValue {
        /// `SYMBOL interval`.
        series: String,
        /// Open time of the candle (RFC 3339).
        open_time: String,
        /// The column.
        column: &'static str,
        /// The value as stored.
        value: String,
        /// Why it does not fit.
        reason: String,
    },

    /// The warehouse failed: `pricecast-warehouse`'s error, read and printed as it is (its own
    /// source, the driver's error, stays in the chain). Kept boxed so that this library, and so
    /// the API, never builds or links ODBC.
    #[error(transparent)]
    Warehouse(Box<dyn std::error::Error + Send + Sync + 'static>),

    /// The model registry (MLflow or the local one in the lake) cannot do what was asked.
    #[error("model registry: {operation} failed: {message}")]
    Registry {
        /// What was being done (run, model and version named).
        operation: String,
        /// Why, and what to do.
        message: String,
    },

    /// The MLflow tracking server did not answer, or kept failing, within the retries.
    #[error(
        "MLflow at {uri} did not answer {endpoint} after {attempts} attempt(s): {detail}; check MLFLOW_TRACKING_URI and that the tracking server is up"
    )]
    MlflowUnreachable {
        /// The tracking URI (never holds a password).
        uri: String,
        /// The API endpoint called.
        endpoint: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure seen.
        detail: String,
        /// The HTTP client's error of the last attempt, when it was one (not an HTTP status).
        #[source]
        source: Option<reqwest::Error>,
    },

    /// The MLflow tracking server answered with an error that retrying will not fix.
    #[error(
        "MLflow rejected {endpoint} with HTTP {status} {code}: {message}{hint}",
        hint = crate::error::mlflow_hint(*status, code)
    )]
    Mlflow {
        /// The API endpoint called.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// MLflow's `error_code` (`RESOURCE_DOES_NOT_EXIST`, …), empty when there was none.
        code: String,
        /// MLflow's `message`, or the start of the body.
        message: String,
    },

    /// Reading the bundled data or a local file failed.
    #[error("I/O error")]
    Io(#[from] std::io::Error),

    /// Building or storing feature frames failed (polars, or data that cannot make features).
    #[error("features: {operation} failed: {message}")]
    Features {
        /// What was being done (series and partition named).
        operation: String,
        /// Why, and what to do.
        message: String,
    },

    /// Polars failed while building, reading or writing feature frames.
    #[error("features: {operation} failed")]
    Polars {
        /// What was being done (series and partition named).
        operation: String,
        /// Polars' error.
        #[source]
        source: polars::error::PolarsError,
    },

    /// Writing a model's MLflow description or environment file as YAML failed.
    #[error("model: writing {file} as YAML failed")]
    Yaml {
        /// The file (`MLmodel`, `python_env.yaml`, `conda.yaml`).
        file: &'static str,
        /// The YAML serialiser's error.
        #[source]
        source: serde_norway::Error,
    },

    /// Fitting, evaluating, saving or loading a model failed.
    #[error("model: {operation} failed: {message}")]
    Model {
        /// What was being done (model type and series named).
        operation: String,
        /// Why, and what to do.
        message: String,
    },

    /// Smartcore failed to build a matrix, fit or predict.
    #[error("model: {operation} failed")]
    Smartcore {
        /// What was being done (model type named).
        operation: String,
        /// Smartcore's error.
        #[source]
        source: smartcore::error::Failed,
    },
}

impl Error {
    /// Shorthand for a configuration error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::Config(message.into())
    }
}

/// Advice for an MLflow HTTP status that usually means a wrong setting.
pub(crate) fn mlflow_hint(status: u16, code: &str) -> &'static str {
    match status {
        401 | 403 => {
            "; check MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        }
        404 | 405 if code.is_empty() => {
            "; check that MLFLOW_TRACKING_URI points at an MLflow tracking server"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::error_chain;

    fn io_cause() -> std::io::Error {
        std::io::Error::other("connection reset by peer")
    }

    #[test]
    fn a_variant_with_a_source_does_not_repeat_it_and_the_chain_names_each_cause_once() {
        let lake = Error::Lake {
            operation: "read of candles/x.parquet".to_owned(),
            source: object_store::Error::Generic {
                store: "S3",
                source: Box::new(io_cause()),
            },
        };
        let polars = Error::Polars {
            operation: "computing features (1h)".to_owned(),
            source: polars::error::PolarsError::ColumnNotFound("close".into()),
        };
        let database = Error::from(sqlx::Error::Io(io_cause()));
        let smartcore = Error::Smartcore {
            operation: "fitting a ridge model".to_owned(),
            source: smartcore::error::Failed::fit("the matrix is singular"),
        };
        for error in [lake, polars, database, smartcore] {
            let chain = error_chain(&error);
            let mut cause = std::error::Error::source(&error);
            assert!(cause.is_some(), "{error:?} keeps its source");
            while let Some(c) = cause {
                let text = c.to_string();
                // An upstream error may print its own source; the innermost text is what counts.
                if c.source().is_none() {
                    assert_eq!(chain.matches(&text).count(), 1, "{text:?} in {chain:?}");
                }
                assert!(!error.to_string().contains(&text), "{error} repeats {text}");
                cause = c.source();
            }
            assert!(chain.starts_with(&error.to_string()), "{chain}");
        }
    }

    #[test]
    fn the_chain_of_a_lake_error_reads_as_before() {
        let error = Error::Lake {
            operation: "write of candles/x.parquet".to_owned(),
            source: object_store::Error::NotImplemented {
                operation: "put".to_owned(),
                implementer: "test".to_owned(),
            },
        };
        assert_eq!(error.to_string(), "lake write of candles/x.parquet failed");
        assert!(
            error_chain(&error).starts_with("lake write of candles/x.parquet failed: "),
            "{}",
            error_chain(&error)
        );
    }
}
