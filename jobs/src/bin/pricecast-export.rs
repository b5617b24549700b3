//! `pricecast-export`: candles from the database into the Parquet lake, once or on a schedule.

use std::process::ExitCode;

use clap::Parser;
use pricecast_jobs::export::{self, ExportArgs};
use pricecast_shared::settings::{LogArgs, load_dotenv};
use pricecast_shared::telemetry;

/// Allocates through mimalloc, as polars recommends: the feature pipeline allocates and frees
/// column-sized buffers at a high rate, and glibc's allocator hands those back to the kernel and
/// faults them in again zeroed (about a fifth of the feature frame's time, docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exports candles to the Parquet lake (S3, MinIO, GCS, Azure or a local folder): every UTC day
/// holding candles new or changed since the last export is rewritten whole, as
/// candles/symbol=S/interval=I/date=D/part-0.parquet; --full rewrites every day, --from/--to a
/// range of days, --dry-run prints the plan.
#[derive(Parser, Debug)]
#[command(name = "pricecast-export", version)]
struct Cli {
    #[command(flatten)]
    export: ExportArgs,
    #[command(flatten)]
    log: LogArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    load_dotenv();
    let cli = Cli::parse();
    telemetry::init(cli.log.log_format);
    pricecast_jobs::exit(export::execute(cli.export).await)
}
