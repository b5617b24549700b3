//! `GET /models`: the champion and challenger of each served series.

use chrono::{DateTime, Utc};
use pricecast_shared::champion::ModelSummary;
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;

use super::app_state;
use crate::error::ApiError;

/// Champion and challenger of one series.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = SeriesModels))]
pub struct SeriesModelsBody {
    /// Trading pair.
    pub symbol: String,
    /// Kline interval.
    pub interval: String,
    /// Registered model name.
    pub model_name: String,
    /// The version predictions come from.
    #[salvo(schema(value_type = Option<Object>))]
    pub champion: Option<ModelSummary>,
    /// The newest trained version.
    #[salvo(schema(value_type = Option<Object>))]
    pub challenger: Option<ModelSummary>,
}

/// Every served series' models and the registry's state.
#[derive(Debug, Serialize, ToSchema)]
#[salvo(schema(name = ModelsBody))]
pub struct ModelsBody {
    /// Where the registry is.
    pub registry: String,
    /// When a poll last reached it.
    pub last_poll: Option<DateTime<Utc>>,
    /// Per series.
    pub models: Vec<SeriesModelsBody>,
}

/// Champion and challenger of each served series: version, metrics, trained-on range and the
/// promotion decision.
#[endpoint(tags("predict"))]
pub async fn list_models(depot: &mut Depot) -> Result<Json<ModelsBody>, ApiError> {
    let state = app_state(depot)?;
    let served = state.forecasts.models();
    let status = served.status();
    let models = served
        .series()
        .iter()
        .map(|(symbol, interval)| SeriesModelsBody {
            symbol: symbol.to_string(),
            interval: interval.to_string(),
            model_name: served.model_name(symbol, *interval),
            champion: served.champion(symbol, *interval).map(|m| m.summary()),
            challenger: served.challenger(symbol, *interval).map(|m| m.summary()),
        })
        .collect();
    Ok(Json(ModelsBody {
        registry: status.location,
        last_poll: status.last_success,
        models,
    }))
}
