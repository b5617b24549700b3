//! The registry's settings: where MLflow is, how to authenticate, and how models are named.
//!
//! | variable | flag | default |
//! |---|---|---|
//! | `MLFLOW_TRACKING_URI` | `--mlflow-tracking-uri` | unset: the local registry inside the lake (`<LAKE_URL>/registry/`) |
//! | `MLFLOW_EXPERIMENT_NAME` | `--mlflow-experiment-name` | `bitcoin_prediction_s3` |
//! | `MLFLOW_TRACKING_TOKEN` | `--mlflow-tracking-token` | unset (bearer token; a secret, never printed) |
//! | `MLFLOW_TRACKING_USERNAME` | `--mlflow-tracking-username` | unset (basic auth, with the password) |
//! | `MLFLOW_TRACKING_PASSWORD` | `--mlflow-tracking-password` | unset (a secret, never printed) |
//! | `MLFLOW_HTTP_REQUEST_TIMEOUT` | `--mlflow-http-request-timeout` | 120 (seconds per request) |
//! | `MLFLOW_HTTP_REQUEST_MAX_RETRIES` | `--mlflow-http-request-max-retries` | 5 (retries of a 5xx, 429, timeout or refused connection) |
//! | `PRICECAST_MODEL_NAME` | `--model-name` | `pricecast-{symbol}-{interval}` |
//! | | `--force-promote` | off: `champion` moves only to a better model |
//!
//! Artifacts of runs whose artifact URI is `s3://…` are written with the lake's S3 settings
//! (`AWS_ENDPOINT_URL` or `MLFLOW_S3_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, …; see [`crate::lake`]).

use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::domain::{Interval, Symbol};
use crate::error::{Error, Result};
use crate::settings::parse_http_url;

/// The seed app's experiment name.
pub const DEFAULT_EXPERIMENT_NAME: &str = "bitcoin_prediction_s3";
/// Registered model name pattern; `{symbol}` and `{interval}` are replaced.
pub const DEFAULT_MODEL_NAME: &str = "pricecast-{symbol}-{interval}";
/// MLflow's own default request timeout, in seconds.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 120;
/// Retries of one transient MLflow failure.
pub const DEFAULT_MAX_RETRIES: u32 = 5;

/// Model registry settings.
#[derive(clap::Args, Clone, Debug)]
pub struct RegistryArgs {
    /// MLflow tracking server (http://mlflow:5000); unset keeps runs and models in the lake.
    #[arg(
        long,
        env = "MLFLOW_TRACKING_URI",
        value_name = "MLFLOW_TRACKING_URI",
        value_parser = parse_http_url("MLFLOW_TRACKING_URI")
    )]
    pub mlflow_tracking_uri: Option<Url>,

    /// MLflow experiment the runs are logged to (created when missing).
    #[arg(
        long,
        env = "MLFLOW_EXPERIMENT_NAME",
        value_name = "MLFLOW_EXPERIMENT_NAME",
        default_value = DEFAULT_EXPERIMENT_NAME
    )]
    pub mlflow_experiment_name: String,

    /// Bearer token for the tracking server (never printed).
    #[arg(
        long,
        env = "MLFLOW_TRACKING_TOKEN",
        value_name = "MLFLOW_TRACKING_TOKEN",
        hide_env_values = true
    )]
    pub mlflow_tracking_token: Option<SecretString>,

    /// User name for the tracking server's basic auth.
    #[arg(
        long,
        env = "MLFLOW_TRACKING_USERNAME",
        value_name = "MLFLOW_TRACKING_USERNAME"
    )]
    pub mlflow_tracking_username: Option<String>,

    /// Password for the tracking server's basic auth (never printed).
    #[arg(
        long,
        env = "MLFLOW_TRACKING_PASSWORD",
        value_name = "MLFLOW_TRACKING_PASSWORD",
        hide_env_values = true
    )]
    pub mlflow_tracking_password: Option<SecretString>,

    /// Timeout of one request to the tracking server, in seconds.
    #[arg(
        long,
        env = "MLFLOW_HTTP_REQUEST_TIMEOUT",
        value_name = "MLFLOW_HTTP_REQUEST_TIMEOUT",
        default_value_t = DEFAULT_REQUEST_TIMEOUT_SECS,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub mlflow_http_request_timeout: u64,

    /// Retries of a request that failed transiently (5xx, 429, timeout, refused connection).
    #[arg(
        long,
        env = "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        value_name = "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        default_value_t = DEFAULT_MAX_RETRIES,
        value_parser = clap::value_parser!(u32).range(0..=20)
    )]
    pub mlflow_http_request_max_retries: u32,

    /// Registered model name pattern; `{symbol}` and `{interval}` are replaced.
    #[arg(
        long,
        env = "PRICECAST_MODEL_NAME",
        value_name = "PRICECAST_MODEL_NAME",
        default_value = DEFAULT_MODEL_NAME,
        value_parser = parse_model_name
    )]
    pub model_name: String,
}

impl RegistryArgs {
    /// Defaults with no tracking server: the local registry in the lake.
    pub fn local() -> Self {
        Self {
            mlflow_tracking_uri: None,
            mlflow_experiment_name: DEFAULT_EXPERIMENT_NAME.to_owned(),
            mlflow_tracking_token: None,
            mlflow_tracking_username: None,
            mlflow_tracking_password: None,
            mlflow_http_request_timeout: DEFAULT_REQUEST_TIMEOUT_SECS,
            mlflow_http_request_max_retries: DEFAULT_MAX_RETRIES,
            model_name: DEFAULT_MODEL_NAME.to_owned(),
        }
    }

    /// Defaults with the tracking server at `uri`.
    pub fn mlflow(uri: Url) -> Self {
        Self {
            mlflow_tracking_uri: Some(uri),
            ..Self::local()
        }
    }

    /// The registered model name of one series.
    pub fn model_name_for(&self, symbol: &Symbol, interval: Interval) -> String {
        self.model_name
            .replace("{symbol}", symbol.as_str())
            .replace("{interval}", interval.as_str())
    }

    /// Timeout of one request.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.mlflow_http_request_timeout)
    }

    /// How to authenticate, checked: a user name needs a password and the other way round.
    /// Basic auth wins over a token when both are set, as in MLflow's own client.
    pub fn auth(&self) -> Result<MlflowAuth> {
        match (
            &self.mlflow_tracking_username,
            &self.mlflow_tracking_password,
            &self.mlflow_tracking_token,
        ) {
            (Some(user), Some(password), _) => Ok(MlflowAuth::Basic {
                username: user.clone(),
                password: password.clone(),
            }),
            (Some(_), None, _) | (None, Some(_), _) => Err(Error::config(
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD must be set together",
            )),
            (None, None, Some(token)) => Ok(MlflowAuth::Bearer(token.clone())),
            (None, None, None) => Ok(MlflowAuth::None),
        }
    }
}

/// How requests to the tracking server authenticate. `Debug` never shows a secret.
#[derive(Clone)]
pub enum MlflowAuth {
    /// No credentials.
    None,
    /// `Authorization: Bearer <MLFLOW_TRACKING_TOKEN>`.
    Bearer(SecretString),
    /// HTTP basic auth.
    Basic {
        /// `MLFLOW_TRACKING_USERNAME`.
        username: String,
        /// `MLFLOW_TRACKING_PASSWORD`.
        password: SecretString,
    },
}

impl std::fmt::Debug for MlflowAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Bearer(_) => f.write_str("Bearer(***)"),
            Self::Basic { username, .. } => write!(f, "Basic({username}:***)"),
        }
    }
}

/// Accepts a model name pattern whose only placeholders are `{symbol}` and `{interval}`.
fn parse_model_name(s: &str) -> Result<String, String> {
    let stripped = s.replace("{symbol}", "").replace("{interval}", "");
    if s.trim().is_empty() {
        Err("PRICECAST_MODEL_NAME: must not be empty".to_owned())
    } else if stripped.contains(['{', '}']) {
        Err(format!(
            "PRICECAST_MODEL_NAME: {s:?} has an unknown placeholder; only {{symbol}} and {{interval}} are replaced"
        ))
    } else if s.contains(['/', '\\']) {
        Err(format!(
            "PRICECAST_MODEL_NAME: {s:?} must not contain slashes"
        ))
    } else {
        Ok(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        registry: RegistryArgs,
    }

    #[test]
    fn defaults_are_the_local_registry_and_the_seed_experiment() {
        let cli = Cli::try_parse_from(["job"]).expect("defaults");
        assert!(cli.registry.mlflow_tracking_uri.is_none());
        assert_eq!(cli.registry.mlflow_experiment_name, "bitcoin_prediction_s3");
        let name = cli.registry.model_name_for(
            &"BTCUSDT".parse().expect("symbol"),
            "1h".parse().expect("interval"),
        );
        assert_eq!(name, "pricecast-BTCUSDT-1h");
        assert!(matches!(cli.registry.auth(), Ok(MlflowAuth::None)));
    }

    #[test]
    fn secrets_never_print_and_auth_is_checked() {
        let cli = Cli::try_parse_from([
            "job",
            "--mlflow-tracking-uri",
            "http://mlflow:5000",
            "--mlflow-tracking-token",
            "tok-hunter2",
            "--mlflow-tracking-username",
            "alice",
            "--mlflow-tracking-password",
            "pw-hunter2",
        ])
        .expect("flags");
        let auth = cli.registry.auth().expect("auth");
        assert!(matches!(auth, MlflowAuth::Basic { .. }));
        for text in [format!("{cli:?}"), format!("{auth:?}")] {
            assert!(!text.contains("hunter2"), "{text}");
        }
        let mut half = cli.registry.clone();
        half.mlflow_tracking_password = None;
        let err = half.auth().expect_err("user without password").to_string();
        assert!(err.contains("MLFLOW_TRACKING_PASSWORD"), "{err}");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases = [
            (
                vec!["job", "--mlflow-tracking-uri", "file:///mlruns"],
                "MLFLOW_TRACKING_URI",
            ),
            (
                vec!["job", "--model-name", "m-{sym}"],
                "PRICECAST_MODEL_NAME",
            ),
            (vec!["job", "--model-name", "a/b"], "PRICECAST_MODEL_NAME"),
        ];
        for (args, variable) in cases {
            let err = Cli::try_parse_from(args).expect_err(variable).to_string();
            assert!(err.contains(variable), "{err}");
        }
    }
}
