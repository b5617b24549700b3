//! `pricecast-collect`: Binance klines into the database, once or on a cron schedule.

use std::process::ExitCode;

use clap::Parser;
use pricecast_jobs::collect::{self, CollectArgs};
use pricecast_shared::settings::{LogArgs, load_dotenv};
use pricecast_shared::telemetry;

/// Allocates through mimalloc, as polars recommends: the feature pipeline allocates and frees
/// column-sized buffers at a high rate, and glibc's allocator hands those back to the kernel and
/// faults them in again zeroed (about a fifth of the feature frame's time, docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Collects closed candles from Binance into the database: incrementally from the newest stored
/// candle, or from --since; --check-gaps lists missing ranges and --repair re-fetches them.
#[derive(Parser, Debug)]
#[command(name = "pricecast-collect", version)]
struct Cli {
    #[command(flatten)]
    collect: CollectArgs,
    #[command(flatten)]
    log: LogArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    load_dotenv();
    let cli = Cli::parse();
    telemetry::init(cli.log.log_format);
    pricecast_jobs::exit(collect::execute(cli.collect).await)
}
