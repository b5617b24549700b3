//! The one error type of the API: every failure becomes a JSON body `{"error", "detail"}` with
//! the matching status, and internal causes are logged, never sent.

use pricecast_shared::telemetry::error_chain;
use salvo::http::StatusCode;
use salvo::oapi::{self, Components, EndpointOutRegister, Operation, ToSchema};
use salvo::prelude::*;
use serde::Serialize;

use crate::services::ServiceError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A parameter is missing, malformed or out of range (400).
    #[error("{0}")]
    BadRequest(String),
    /// Nothing matches the request (404).
    #[error("{0}")]
    NotFound(String),
    /// A dependency (the database) is unreachable or not ready (503).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure (500); the cause is logged and not shown to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = ErrorBody))]
pub struct ErrorBody {
    /// Machine-readable kind: `bad_request`, `not_found`, `service_unavailable`,
    /// `internal_error`, …
    pub error: String,
    /// What went wrong, for a human: which parameter and why, or what is missing.
    pub detail: String,
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body sent to the client.
    pub fn body(&self) -> ErrorBody {
        let detail = match self {
            Self::BadRequest(d) | Self::NotFound(d) | Self::Unavailable(d) => d.clone(),
            Self::Internal(_) => {
                "the server failed to answer this request; the cause is in its logs".to_owned()
            }
        };
        ErrorBody {
            error: error_code(self.status()).to_owned(),
            detail,
        }
    }
}

/// The `error` field for a status.
pub fn error_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::SERVICE_UNAVAILABLE => "service_unavailable",
        StatusCode::INTERNAL_SERVER_ERROR => "internal_error",
        s if s.is_client_error() => "client_error",
        _ => "server_error",
    }
}

impl From<pricecast_shared::Error> for ApiError {
    fn from(error: pricecast_shared::Error) -> Self {
        match &error {
            pricecast_shared::Error::Database(db) => match database_unavailability(db) {
                Some(detail) => Self::Unavailable(detail),
                None => Self::Internal(error_chain(&error)),
            },
            _ => Self::Internal(error_chain(&error)),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Invalid(detail) => Self::BadRequest(detail),
            ServiceError::NotFound(detail) => Self::NotFound(detail),
            ServiceError::Unavailable(detail) => Self::Unavailable(detail),
            ServiceError::Store(error) => error.into(),
            ServiceError::Internal(cause) => Self::Internal(cause),
        }
    }
}

/// PostgreSQL's code for a missing table.
const PG_UNDEFINED_TABLE: &str = "42P01";
/// SQLite's primary result code for a database file that cannot be opened.
const SQLITE_CANTOPEN: &str = "14";

/// When a database error means "not reachable" or "not set up" rather than a bug, what to say.
fn database_unavailability(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => Some("the database is unreachable; try again later".into()),
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if code == PG_UNDEFINED_TABLE || db.message().contains("no such table") {
                Some("database schema missing: run `pricecast migrate`".into())
            } else if code == SQLITE_CANTOPEN
                || code.starts_with("08")
                || code.starts_with("57P")
                || code == "53300"
            {
                Some("the database is unreachable; try again later".into())
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Writes an error response in the API's JSON shape.
pub fn write_error(res: &mut Response, status: StatusCode, body: ErrorBody) {
    res.status_code(status);
    res.render(Json(body));
}

#[async_trait]
impl Writer for ApiError {
    async fn write(self, req: &mut Request, _depot: &mut Depot, res: &mut Response) {
        match &self {
            Self::Internal(cause) => tracing::error!(
                method = %req.method(),
                path = req.uri().path(),
                error.message = %cause,
                "request failed"
            ),
            Self::Unavailable(detail) => tracing::warn!(
                method = %req.method(),
                path = req.uri().path(),
                error.message = %detail,
                "dependency unavailable"
            ),
            Self::BadRequest(_) | Self::NotFound(_) => {}
        }
        write_error(res, self.status(), self.body());
    }
}

impl EndpointOutRegister for ApiError {
    fn register(components: &mut Components, operation: &mut Operation) {
        let cases = [
            ("400", "A parameter is malformed or out of range"),
            ("404", "No data matches the request"),
            ("500", "Internal error (details are in the server's logs)"),
            ("503", "The database is unreachable or not migrated"),
        ];
        for (code, description) in cases {
            operation.responses.insert(
                code,
                oapi::Response::new(description).add_content(
                    "application/json",
                    oapi::Content::new(ErrorBody::to_schema(components)),
                ),
            );
        }
    }
}

/// Catcher goal: turns salvo's own error responses (unknown route, timeout, panic, body too
/// large) into the API's JSON error body.
#[handler]
pub async fn json_error_catcher(req: &Request, res: &mut Response, ctrl: &mut FlowCtrl) {
    let status = res.status_code.unwrap_or(StatusCode::NOT_FOUND);
    let detail = match status {
        StatusCode::NOT_FOUND => format!(
            "no route {} {}; GET / lists the endpoints",
            req.method(),
            req.uri().path()
        ),
        StatusCode::METHOD_NOT_ALLOWED => {
            format!(
                "{} is not allowed here; the API only answers GET",
                req.method()
            )
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            "the request timed out or a dependency is unavailable; try again later".to_owned()
        }
        StatusCode::INTERNAL_SERVER_ERROR => {
            "the server failed to answer this request; the cause is in its logs".to_owned()
        }
        other => other
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned(),
    };
    write_error(
        res,
        status,
        ErrorBody {
            error: error_code(status).to_owned(),
            detail,
        },
    );
    ctrl.skip_rest();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_errors_map_to_statuses_with_their_message() {
        let cases = [
            (
                ServiceError::Invalid("a".into()),
                StatusCode::BAD_REQUEST,
                "a",
            ),
            (
                ServiceError::NotFound("b".into()),
                StatusCode::NOT_FOUND,
                "b",
            ),
            (
                ServiceError::Unavailable("c".into()),
                StatusCode::SERVICE_UNAVAILABLE,
                "c",
            ),
            (
                ServiceError::Internal("secret cause".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
                "the server failed to answer this request; the cause is in its logs",
            ),
        ];
        for (error, status, detail) in cases {
            let api = ApiError::from(error);
            assert_eq!(api.status(), status);
            assert_eq!(api.body().detail, detail);
        }
    }
}
