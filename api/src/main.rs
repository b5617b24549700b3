//! `pricecast-api`: serves Pricecast's read-only REST API until SIGTERM.

use clap::Parser;
use pricecast_api::{ApiArgs, AppState};
use pricecast_shared::store::{AccessMode, Store, StoreOptions};
use pricecast_shared::{runner, settings, telemetry};

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
    let options = StoreOptions {
        mode: AccessMode::ReadOnly,
        max_connections: cli.api.database.database_max_connections,
    };
    let store = match Store::connect(cli.api.database.database_url.expose(), options).await {
        Ok(store) => store,
        Err(e) => {
            tracing::error!(error.message = %telemetry::error_chain(&e), "cannot open the database");
            std::process::exit(runner::exit_code(&Err(e)));
        }
    };
    let state = AppState::new(store)
        .with_request_timeout(cli.api.request_timeout())
        .with_cache_ttl(cli.api.cache_ttl());
    if let Err(e) = pricecast_api::serve(state, cli.api.addr, runner::shutdown_token()).await {
        tracing::error!(error.message = %e, "pricecast-api failed");
        std::process::exit(1);
    }
}
