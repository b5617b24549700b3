//! `pricecast-forecast`: the forecast ledger, once or on a schedule.

use std::process::ExitCode;

use clap::Parser;
use pricecast_jobs::forecast::{self, ForecastArgs};
use pricecast_shared::settings::{LogArgs, load_dotenv};
use pricecast_shared::telemetry;

/// Allocates through mimalloc, as polars recommends: the feature pipeline allocates and frees
/// column-sized buffers at a high rate, and glibc's allocator hands those back to the kernel and
/// faults them in again zeroed (about a fifth of the feature frame's time, docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Writes each series' champion forecast for every closed candle since the last run into the
/// `forecasts` table (the forecast ledger): predicted close, interval, baseline and the model
/// version, for candles after the champion's training data only; candles it was trained on are
/// skipped and counted. Re-running writes nothing new.
#[derive(Parser, Debug)]
#[command(name = "pricecast-forecast", version)]
struct Cli {
    #[command(flatten)]
    forecast: ForecastArgs,
    #[command(flatten)]
    log: LogArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    load_dotenv();
    let cli = Cli::parse();
    telemetry::init(cli.log.log_format);
    pricecast_jobs::exit(forecast::execute(cli.forecast).await)
}
