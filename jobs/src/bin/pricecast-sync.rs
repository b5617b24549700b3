//! `pricecast-sync`: mirrors candles, model runs and feature frames into the analytics
//! warehouse, once or on a schedule.

use std::process::ExitCode;

use clap::Parser;
use pricecast_jobs::sync::{self, SyncArgs};
use pricecast_shared::settings::{LogArgs, load_dotenv};
use pricecast_shared::telemetry;

/// Allocates through mimalloc, as polars recommends: the feature pipeline allocates and frees
/// column-sized buffers at a high rate, and glibc's allocator hands those back to the kernel and
/// faults them in again zeroed (about a fifth of the feature frame's time, docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Mirrors candles, model runs and feature frames into a Databricks SQL warehouse
/// (DATABRICKS_SERVER_HOSTNAME, DATABRICKS_HTTP_PATH, DATABRICKS_ACCESS_TOKEN) or any ODBC data
/// source with MERGE (SYNC_ODBC_CONNECTION_STRING): rows changed since the last sync are
/// bulk-inserted into a staging table and merged on their key, so re-running never duplicates.
/// Model runs that ended since the last sync, with their metrics, are read from the model
/// registry (MLflow, or the local registry in the lake) the same way, and the feature frames
/// from the lake; --tables chooses. --mode copy-into lets Databricks load new lake candle
/// partitions itself. Does nothing when no warehouse is configured.
#[derive(Parser, Debug)]
#[command(name = "pricecast-sync", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    sync: SyncArgs,
    #[command(flatten)]
    log: LogArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    load_dotenv();
    let cli = Cli::parse();
    telemetry::init(cli.log.log_format);
    pricecast_jobs::exit(sync::execute(cli.sync).await)
}
