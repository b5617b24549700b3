//! One tracing setup for every binary: INFO by default (`RUST_LOG` overrides), JSON lines when
//! stdout is not a terminal (containers, CronJobs), text on a terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

/// INFO for everything, but not PostgreSQL's notices ("relation already exists, skipping").
const DEFAULT_FILTER: &str = "info,sqlx::postgres::notice=warn";

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    // try_init fails only when a subscriber is already installed (tests, a second call).
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.try_init()
    };
}

/// For tests: logs to the test harness's captured output.
pub fn init_for_tests() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER)),
        )
        .with_test_writer()
        .try_init();
}

pub use crate::error::error_chain;
