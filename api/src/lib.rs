//! Pricecast's read-only REST service: the seed app's endpoints (`/`, `/price/latest`,
//! `/price/history`, `/price/stats`, `/price/predict`, `/health`) plus candles, the served
//! models, a forecast chart, job runs, Prometheus metrics and an OpenAPI document with Swagger
//! UI, over the store connected read-only and the registry's champion models held in memory.
//!
//! Start it with [`start`] (binds, then serves in the background until a token is cancelled)
//! or [`serve`]; build the in-process service for tests with [`service`].
//!
//! Layers, each using only the ones below it (no module imports one that imports it back):
//! - [`routes`]: handlers that parse parameters ([`params`]), call a service and shape JSON;
//! - [`state`]: what handlers share (store, services, metrics), injected into the depot;
//! - [`error`]: the HTTP error, mapping [`services::ServiceError`] to 400/404/503/500;
//! - [`services`]: prices, series and forecasts, free of HTTP, over the store and
//!   [`served_models`] (the champion set polled from the registry);
//! - leaves: [`endpoints`] (the route table, read by the router and [`metrics`]), [`settings`].

pub mod endpoints;
pub mod error;
pub mod metrics;
pub mod params;
pub mod routes;
pub mod served_models;
pub mod services;
pub mod settings;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pricecast_shared::domain::Symbol;
use pricecast_shared::registry::ModelRegistry;
use pricecast_shared::store::{AccessMode, Store, StoreOptions};

use salvo::catch_panic::CatchPanic;
use salvo::catcher::Catcher;
use salvo::conn::TcpListener;
use salvo::oapi::OpenApi;
use salvo::oapi::swagger_ui::SwaggerUi;
use salvo::prelude::*;
use salvo::request_id::RequestId;
use salvo::size_limiter::max_size;
use salvo::timeout::Timeout;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use settings::ApiArgs;
pub use state::AppState;

use crate::metrics::{OPENAPI_ROUTE, RequestObserver};
use crate::served_models::ServedModels;

/// How long in-flight requests may finish after shutdown is requested.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long start-up waits for the registry before serving without models (polls go on).
const INITIAL_MODEL_LOAD: Duration = Duration::from_secs(5);
/// Largest request body accepted (only `POST /price/predict` takes one; this bounds abuse).
const MAX_REQUEST_BODY: u64 = 64 * 1024;

/// The routes, their middleware (state, panic catching, timeout, size limit) and the
/// documentation routes (`/openapi.json`, `/docs`).
pub fn router(state: AppState) -> Router {
    let api = routes::api_router(state.cache_ttl);
    let doc = OpenApi::new("Pricecast API", env!("CARGO_PKG_VERSION")).merge_router(&api);
    Router::new()
        .hoop(affix_state::inject(state.clone()))
        .hoop(CatchPanic::new())
        .hoop(Timeout::new(state.request_timeout))
        .hoop(max_size(MAX_REQUEST_BODY))
        .push(api)
        .push(doc.into_router(OPENAPI_ROUTE))
        .push(SwaggerUi::new(OPENAPI_ROUTE).into_router("docs"))
}

/// The whole service: [`router`] plus request ids (`x-request-id`, kept when the client sends one), request logging and metrics
/// for every request (unknown routes included) and JSON bodies for salvo's own errors.
pub fn service(state: AppState) -> Service {
    let observer = RequestObserver::new(state.metrics.clone());
    Service::new(router(state))
        .hoop(RequestId::new().overwrite(false))
        .hoop(observer)
        .catcher(Catcher::new(error::json_error_catcher))
}

/// A server running in the background.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// The address the server listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits until the server has stopped (after the shutdown token is cancelled and in-flight
    /// requests have finished, or [`SHUTDOWN_GRACE`] has passed).
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Connects to the database read-only, opens the model registry, loads the served series'
/// champions and starts polling for new ones until `shutdown`: the state [`serve`] needs.
/// The registry being unreachable at start is not fatal: after [`INITIAL_MODEL_LOAD`] the
/// service starts anyway, predictions answer 503 and `/health` says why until a poll succeeds.
/// A database that cannot be opened is fatal.
pub async fn open(
    args: &ApiArgs,
    shutdown: CancellationToken,
) -> pricecast_shared::Result<AppState> {
    let options = StoreOptions {
        mode: AccessMode::ReadOnly,
        max_connections: args.database.database_max_connections,
    };
    let store = Store::connect(args.database.database_url.expose(), options).await?;
    let registry = ModelRegistry::open(&args.registry, &args.lake).await?;
    let models = Arc::new(ServedModels::new(
        Arc::new(registry),
        args.registry.clone(),
        args.served_series(&stored_symbols(&store).await),
    ));
    match tokio::time::timeout(INITIAL_MODEL_LOAD, models.refresh()).await {
        Ok(loaded) => tracing::info!(
            registry = %models.status().location,
            models = loaded,
            poll_s = args.model_poll_secs,
            "models loaded"
        ),
        Err(_) => tracing::warn!(
            registry = %models.status().location,
            wait_s = INITIAL_MODEL_LOAD.as_secs(),
            "the model registry did not answer in time; serving without models until a poll succeeds"
        ),
    }
    models
        .clone()
        .spawn_polling(args.model_poll_interval(), shutdown);
    Ok(AppState::new(store)
        .with_request_timeout(args.request_timeout())
        .with_cache_ttl(args.cache_ttl())
        .with_models(models)
        .with_max_stale_candles(args.max_stale_candles()))
}

/// Binds `addr` and serves in the background until `shutdown` is cancelled, then stops
/// gracefully. Fails only when the address cannot be bound.
pub async fn start(
    state: AppState,
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> std::io::Result<RunningServer> {
    let acceptor = TcpListener::new(addr)
        .try_bind()
        .await
        .map_err(|e| std::io::Error::other(format!("cannot listen on {addr}: {e}")))?;
    let local_addr = acceptor.local_addr()?;
    let server = Server::new(acceptor);
    let handle = server.handle();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        tracing::info!(
            grace_s = SHUTDOWN_GRACE.as_secs(),
            "stopping: finishing in-flight requests"
        );
        handle.stop_graceful(SHUTDOWN_GRACE);
    });
    let service = service(state);
    tracing::info!(addr = %local_addr, "pricecast-api listening");
    let task = tokio::spawn(server.try_serve(service));
    Ok(RunningServer { local_addr, task })
}

/// [`start`], then waits until the server has stopped.
pub async fn serve(
    state: AppState,
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    start(state, addr, shutdown).await?.wait().await
}

/// The symbols the database stores, for the patterns of `PRICECAST_SYMBOLS`; none when the
/// database cannot say yet (the API still starts and serves the named symbols).
async fn stored_symbols(store: &Store) -> Vec<Symbol> {
    match store.stored_symbols().await {
        Ok(symbols) => symbols,
        Err(e) => {
            tracing::warn!(error.message = %pricecast_shared::telemetry::error_chain(&e), "cannot list the stored symbols; serving the named ones");
            Vec::new()
        }
    }
}
