//! The state of the service's dependencies: whether the database answers a ping, and what the
//! model registry's last poll saw.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pricecast_shared::store::Store;
use pricecast_shared::telemetry::error_chain;

use crate::served_models::{RegistryStatus, ServedModels};

/// Longest wait for the database to answer a ping.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// What a database ping found.
#[derive(Debug)]
pub struct DatabaseCheck {
    /// Which backend (`postgres`, `sqlite`).
    pub backend: &'static str,
    /// How long the ping took, in milliseconds.
    pub latency_ms: f64,
    /// Why the database is down; `None` when it answered.
    pub failure: Option<String>,
}

/// The model registry's state.
#[derive(Debug)]
pub struct RegistryCheck {
    /// `up`, `down`, `not_polled` or `not_configured`.
    pub state: &'static str,
    /// Whether the registry is configured and its last poll failed: the models held are
    /// served, but new champions are not seen.
    pub degraded: bool,
    /// What the last poll saw.
    pub status: RegistryStatus,
}

/// Pings the database, never for longer than [`PING_TIMEOUT`].
pub async fn check_database(store: &Store) -> DatabaseCheck {
    let started = Instant::now();
    let ping = tokio::time::timeout(PING_TIMEOUT, store.ping()).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let failure = match ping {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(error_chain(&e)),
        Err(_) => Some(format!("no answer within {}s", PING_TIMEOUT.as_secs())),
    };
    DatabaseCheck {
        backend: store.backend(),
        latency_ms,
        failure,
    }
}

/// The registry's state as the last poll of `models` saw it.
pub fn check_registry(models: &Arc<ServedModels>) -> RegistryCheck {
    let status = models.status();
    let configured = models.is_configured();
    let state = if !configured {
        "not_configured"
    } else if status.is_up() {
        "up"
    } else if status.last_attempt.is_none() {
        "not_polled"
    } else {
        "down"
    };
    RegistryCheck {
        state,
        degraded: configured && status.last_error.is_some(),
        status,
    }
}
