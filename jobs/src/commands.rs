//! The subcommands of `pricecast`.

use chrono::Utc;

use pricecast_shared::settings::DatabaseArgs;
use pricecast_shared::store::{AccessMode, Store, StoreOptions};
use pricecast_shared::{Error, Result, runner};

use crate::demo::{self, DemoArgs};
use crate::status;

/// Flags of `pricecast status`.
#[derive(clap::Args, Clone, Debug)]
pub struct StatusArgs {
    /// Database settings.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `pricecast migrate`.
pub async fn migrate(args: DatabaseArgs) -> Result<()> {
    crate::connect(&args, true).await?;
    println!("migrations applied to {}", args.database_url.redacted());
    Ok(())
}

/// `pricecast status`.
pub async fn status(args: StatusArgs) -> Result<()> {
    let store = Store::connect(
        args.database.database_url.expose(),
        StoreOptions {
            mode: AccessMode::ReadOnly,
            max_connections: 2,
        },
    )
    .await?;
    let report = status::report(&store, Utc::now()).await?;
    if args.json {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::config(format!("cannot render the report: {e}")))?;
        println!("{json}");
    } else {
        print!("{}", status::render_text(&report));
    }
    Ok(())
}

/// `pricecast demo`: load the bundled history, then serve the API until Ctrl-C.
pub async fn demo(args: DemoArgs) -> Result<()> {
    let cancel = runner::shutdown_token();
    println!(
        "Loading the bundled BTCUSDT and ETHUSDT hourly history into {} …",
        args.data_dir.display()
    );
    let data = demo::load(&args.data_dir, cancel.clone()).await?;
    println!("Collected: {}", demo::describe(&data.collect, "collect"));
    println!("Exported: {}", demo::describe(&data.export, "export"));
    println!("Features: {}", demo::describe(&data.features, "features"));
    println!("Trained: {}", demo::describe(&data.train, "train"));
    println!(
        "Parquet lake: {} (read it with pyarrow, polars, DuckDB or Spark)",
        data.lake_dir.display()
    );
    if args.no_serve {
        return Ok(());
    }
    let store = Store::connect(
        &data.database_url,
        StoreOptions {
            mode: AccessMode::ReadOnly,
            max_connections: 8,
        },
    )
    .await?;
    let state = demo::app_state(&data, store).await;
    let server = pricecast_api::start(state, args.addr, cancel)
        .await
        .map_err(|e| Error::config(format!("PRICECAST_API_ADDR: {e}")))?;
    let base = format!("http://{}", server.local_addr());
    println!("\nThe API is up at {base} (read-only, over the demo database). Try:\n");
    for example in demo::examples(&base, &data, Utc::now()) {
        println!("  {example}");
    }
    println!("\nPress Ctrl-C to stop.");
    server.wait().await?;
    Ok(())
}
