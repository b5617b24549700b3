//! `pricecast`: the demo, migrations, a status report and every job on one schedule.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pricecast_jobs::commands;
use pricecast_jobs::demo::DemoArgs;
use pricecast_jobs::schedule::{self, ScheduleArgs};
use pricecast_shared::settings::{DatabaseArgs, LogArgs, load_dotenv};
use pricecast_shared::telemetry;

/// Allocates through mimalloc, as polars recommends: the feature pipeline allocates and frees
/// column-sized buffers at a high rate, and glibc's allocator hands those back to the kernel and
/// faults them in again zeroed (about a fifth of the feature frame's time, docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Pricecast: crypto prices from Binance into PostgreSQL, served by a read-only API.
#[derive(Parser, Debug)]
#[command(name = "pricecast", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Replay the bundled real BTCUSDT and ETHUSDT history into ./pricecast-data and start the API.
    Demo(DemoArgs),
    /// Apply pending database migrations.
    Migrate(DatabaseArgs),
    /// Show the last run of each job, the freshness of each series and its gaps.
    Status(commands::StatusArgs),
    /// Run every job on its own cron schedule in this one process (collect, export, sync).
    Schedule(Box<ScheduleArgs>),
}

#[tokio::main]
async fn main() -> ExitCode {
    load_dotenv();
    let cli = Cli::parse();
    telemetry::init(cli.log.log_format);
    pricecast_jobs::exit(match cli.command {
        Command::Demo(args) => commands::demo(args).await,
        Command::Migrate(args) => commands::migrate(args).await,
        Command::Status(args) => commands::status(args).await,
        Command::Schedule(args) => schedule::execute(*args).await,
    })
}
