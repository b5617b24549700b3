//! `GET /health`: whether the service and its database answer, and what the model registry's
//! last poll saw.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use pricecast_shared::telemetry::error_chain;
use salvo::http::StatusCode;
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;

use super::app_state;
use crate::error::ApiError;

/// Longest wait for the database to answer a ping.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Health of the service and its dependencies.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = HealthBody))]
pub struct HealthBody {
    /// `healthy`, `degraded` (the registry is down; predictions use the models held) or
    /// `unhealthy` (the database is down).
    pub status: String,
    /// The database's state as the seed app named it: `connected` or `disconnected`.
    pub database: String,
    /// Version of this build.
    pub version: String,
    /// Seconds since the service started.
    pub uptime_s: u64,
    /// Each dependency's state.
    pub dependencies: Dependencies,
}

/// The dependencies `/health` checks.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = Dependencies))]
pub struct Dependencies {
    /// The database.
    pub database: DependencyHealth,
    /// The model registry the champions come from.
    pub registry: RegistryHealth,
}

/// The model registry's state as the last poll saw it. Its being down does not make the service
/// unhealthy: the models already loaded keep being served.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = RegistryHealth))]
pub struct RegistryHealth {
    /// `up`, `down`, `not_polled` or `not_configured`.
    pub status: String,
    /// Where it is.
    pub location: String,
    /// Champion models held in memory.
    pub champions_loaded: usize,
    /// When a poll last reached it.
    pub last_success: Option<DateTime<Utc>>,
    /// Why the last poll failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One dependency's state.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = DependencyHealth))]
pub struct DependencyHealth {
    /// `up` or `down`.
    pub status: String,
    /// Which backend (`postgres`, `sqlite`).
    pub backend: String,
    /// How long the check took, when up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Pings the database; 200 when it answers, 503 when it does not. Failures are never cached:
/// the next call tries again.
#[endpoint(
    tags("service"),
    responses(
        (status_code = 200, description = "Healthy", body = HealthBody),
        (status_code = 503, description = "A dependency is down", body = HealthBody)
    )
)]
pub async fn health(depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let state = app_state(depot)?;
    let started = Instant::now();
    let ping = tokio::time::timeout(PING_TIMEOUT, state.store.ping()).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let failure = match ping {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(error_chain(&e)),
        Err(_) => Some(format!("no answer within {}s", PING_TIMEOUT.as_secs())),
    };
    if let Some(error) = &failure {
        tracing::warn!(error.message = %error, "health check: database down");
    }
    let database = DependencyHealth {
        status: if failure.is_none() { "up" } else { "down" }.into(),
        backend: state.store.backend().into(),
        latency_ms: failure.is_none().then_some(latency_ms),
        error: failure.clone(),
    };
    let served = state.forecasts.models();
    let models = served.status();
    let registry = RegistryHealth {
        status: if !served.is_configured() {
            "not_configured"
        } else if models.is_up() {
            "up"
        } else if models.last_attempt.is_none() {
            "not_polled"
        } else {
            "down"
        }
        .into(),
        location: models.location.clone(),
        champions_loaded: models.champions_loaded,
        last_success: models.last_success,
        error: models.last_error.clone(),
    };
    let degraded = served.is_configured() && models.last_error.is_some();
    let body = HealthBody {
        status: match (&failure, degraded) {
            (Some(_), _) => "unhealthy",
            (None, true) => "degraded",
            (None, false) => "healthy",
        }
        .into(),
        database: if failure.is_none() {
            "connected"
        } else {
            "disconnected"
        }
        .into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_s: state.started.elapsed().as_secs(),
        dependencies: Dependencies { database, registry },
    };
    res.status_code(if failure.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    });
    res.render(Json(body));
    Ok(())
}
