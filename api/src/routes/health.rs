//! `GET /health`: whether the service and its database answer, and what the model registry's
//! last poll saw.

use chrono::{DateTime, Utc};
use salvo::http::StatusCode;
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;

use super::app_state;
use crate::error::ApiError;
use crate::services::health::{check_database, check_registry};

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
    let db = check_database(&state.store).await;
    if let Some(error) = &db.failure {
        tracing::warn!(error.message = %error, "health check: database down");
    }
    let up = db.failure.is_none();
    let database = DependencyHealth {
        status: if up { "up" } else { "down" }.into(),
        backend: db.backend.into(),
        latency_ms: up.then_some(db.latency_ms),
        error: db.failure.clone(),
    };
    let registry = check_registry(state.forecasts.models());
    let body = HealthBody {
        status: match (up, registry.degraded) {
            (false, _) => "unhealthy",
            (true, true) => "degraded",
            (true, false) => "healthy",
        }
        .into(),
        database: if up { "connected" } else { "disconnected" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_s: state.started.elapsed().as_secs(),
        dependencies: Dependencies {
            database,
            registry: RegistryHealth {
                status: registry.state.into(),
                location: registry.status.location,
                champions_loaded: registry.status.champions_loaded,
                last_success: registry.status.last_success,
                error: registry.status.last_error,
            },
        },
    };
    res.status_code(if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    });
    res.render(Json(body));
    Ok(())
}
