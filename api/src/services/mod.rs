//! The service layer: what the API answers, computed from the store and the served models
//! without speaking HTTP. Handlers parse a request, call a service and shape its result;
//! failures are [`ServiceError`]s that `crate::error` maps to statuses.

pub mod error;
pub mod forecast;
pub mod forecast_cache;
pub mod health;
pub mod job_runs;
pub mod ledger;
pub mod prediction;
pub mod prices;
pub mod scorecard;
pub mod series;
pub mod what_if;

pub use error::{ServiceError, ServiceResult};
pub use forecast::{ForecastService, WhatIfInputs};
pub use ledger::LedgerService;
pub use prediction::{ModelRef, Prediction};
pub use prices::PriceService;
pub use series::SeriesService;
