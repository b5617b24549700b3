//! `pricecast-collect`: Binance klines into the database, once or on a cron schedule.

use std::process::ExitCode;

use clap::Parser;
use pricecast_jobs::collect::{self, CollectArgs};
use pricecast_shared::settings::{LogArgs, load_dotenv};
use pricecast_shared::telemetry;

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
