//! `GET /metrics`: Prometheus text exposition.

use salvo::prelude::*;

use super::app_state;
use crate::error::ApiError;

/// Request counters and durations in the Prometheus text format.
#[endpoint(
    tags("service"),
    responses((status_code = 200, description = "Prometheus text exposition format"))
)]
pub async fn metrics(depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let text = app_state(depot)?
        .metrics
        .render()
        .map_err(|e| ApiError::Internal(format!("cannot encode metrics: {e}")))?;
    res.render(Text::Plain(text));
    Ok(())
}
