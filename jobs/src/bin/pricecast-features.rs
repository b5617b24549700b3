//! `pricecast-features`: feature frames from the lake's candles into the lake, once or on a
//! schedule.

use std::process::ExitCode;

use clap::Parser;
use pricecast_jobs::features::{self, FeaturesArgs};
use pricecast_shared::settings::{LogArgs, load_dotenv};
use pricecast_shared::telemetry;

/// Allocates through mimalloc, as polars recommends: the feature pipeline allocates and frees
/// column-sized buffers at a high rate, and glibc's allocator hands those back to the kernel and
/// faults them in again zeroed (about a fifth of the feature frame's time, docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Builds feature frames (lags, moving averages, returns, volatility, RSI, volume and calendar
/// features, and the targets price_t+h) from the lake's candles, as
/// features/symbol=S/interval=I/date=D/part-0.parquet: only the days whose candles changed are
/// rebuilt; a new feature definition or --full rebuilds every day.
#[derive(Parser, Debug)]
#[command(name = "pricecast-features", version)]
struct Cli {
    #[command(flatten)]
    features: FeaturesArgs,
    #[command(flatten)]
    log: LogArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    load_dotenv();
    let cli = Cli::parse();
    telemetry::init(cli.log.log_format);
    pricecast_jobs::exit(features::execute(cli.features).await)
}
