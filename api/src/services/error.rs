//! Why a service could not answer, in the service layer's own terms; `crate::error` maps each
//! case to an HTTP status.

/// A failure of a service call.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request asks for something invalid (a horizon no champion serves, inputs a model
    /// cannot use); the message says which and why.
    #[error("{0}")]
    Invalid(String),
    /// Nothing is stored for what the request names.
    #[error("{0}")]
    NotFound(String),
    /// Something the answer needs is not there yet: a champion model, fresh or enough candles.
    #[error("{0}")]
    Unavailable(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] pricecast_shared::Error),
    /// A bug or an unexpected failure.
    #[error("{0}")]
    Internal(String),
}

/// The result of a service call.
pub type ServiceResult<T> = Result<T, ServiceError>;
