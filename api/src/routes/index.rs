//! `GET /`: what this service is and which endpoints it has.

use std::collections::BTreeMap;

use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;

use crate::endpoints::ENDPOINTS;

/// The service's name, version and endpoints.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = IndexBody))]
pub struct IndexBody {
    /// Always `Pricecast`.
    pub name: String,
    /// What the service does.
    pub message: String,
    /// Version of this build.
    pub version: String,
    /// Every endpoint with a one-line description.
    pub endpoints: BTreeMap<String, String>,
}

/// Lists the endpoints.
#[endpoint(tags("service"))]
pub async fn index() -> Json<IndexBody> {
    Json(IndexBody {
        name: "Pricecast".into(),
        message: "Pricecast price tracking and forecasting API".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        endpoints: ENDPOINTS
            .iter()
            .map(|(path, description)| ((*path).to_owned(), (*description).to_owned()))
            .collect(),
    })
}
