//! `pricecast-api`: serves Pricecast's read-only REST API until SIGTERM.

use clap::Parser;
use pricecast_api::ApiArgs;
use pricecast_shared::{runner, settings, telemetry};

/// Allocates through mimalloc, as polars recommends: the feature pipeline allocates and frees
/// column-sized buffers at a high rate, and glibc's allocator hands those back to the kernel and
/// faults them in again zeroed (about a fifth of the feature frame's time, docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(version, about = "Pricecast's read-only REST API")]
struct Cli {
    #[command(flatten)]
    api: ApiArgs,
}

#[tokio::main]
async fn main() {
    settings::load_dotenv();
    let cli = Cli::parse();
    telemetry::init(cli.api.log.log_format);
    let shutdown = runner::shutdown_token();
    let state = match pricecast_api::open(&cli.api, shutdown.clone()).await {
        Ok(state) => state,
        Err(e) => {
            tracing::error!(error.message = %telemetry::error_chain(&e), "cannot start");
            std::process::exit(runner::exit_code(&Err(e)));
        }
    };
    if let Err(e) = pricecast_api::serve(state, cli.api.addr, shutdown).await {
        tracing::error!(error.message = %telemetry::error_chain(&e), "pricecast-api failed");
        std::process::exit(1);
    }
}
