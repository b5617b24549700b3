//! `pricecast-train`: fits, evaluates and registers a model per series, once or on a schedule.

use std::process::ExitCode;

use clap::Parser;
use pricecast_jobs::train::{self, TrainArgs};
use pricecast_shared::settings::{LogArgs, load_dotenv};
use pricecast_shared::telemetry;

/// Allocates through mimalloc, as polars recommends: the feature pipeline allocates and frees
/// column-sized buffers at a high rate, and glibc's allocator hands those back to the kernel and
/// faults them in again zeroed (about a fifth of the feature frame's time, docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Trains a model per symbol and interval on the lake's feature frame, evaluates it
/// walk-forward against the naive "next close = last close" baseline, logs the run (params,
/// metrics, model, chart) to MLflow or the local registry, registers a new model version as
/// `challenger`, and moves `champion` to it only when it beats the champion on the most recent
/// window (--force-promote overrides).
#[derive(Parser, Debug)]
#[command(name = "pricecast-train", version)]
struct Cli {
    #[command(flatten)]
    train: TrainArgs,
    #[command(flatten)]
    log: LogArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    load_dotenv();
    let cli = Cli::parse();
    telemetry::init(cli.log.log_format);
    pricecast_jobs::exit(train::execute(cli.train).await)
}
