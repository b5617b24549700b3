//! `GET /metrics`: Prometheus text exposition.

use salvo::prelude::*;

use super::app_state;
use crate::error::ApiError;
use crate::metrics::ForecastGauge;

/// Request counters and durations, the forecast ledger's live skill, coverage and scored
/// forecasts per served series and horizon, and the age of each served series' newest candle,
/// in the Prometheus text format.
#[endpoint(
    tags("service"),
    responses((status_code = 200, description = "Prometheus text exposition format"))
)]
pub async fn metrics(depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let state = app_state(depot)?;
    // The ledger failing to answer leaves its gauges as they were: the request metrics are
    // still worth scraping.
    match state.ledger.live_scores().await {
        Ok(scores) => {
            let gauges: Vec<ForecastGauge> = scores
                .iter()
                .map(|live| ForecastGauge {
                    symbol: live.symbol.to_string(),
                    interval: live.interval.to_string(),
                    horizon: live.horizon,
                    skill: live.score.skill,
                    coverage: live.score.coverage,
                    scored: live.score.n,
                    newest_candle_age_s: live.newest_candle_age_s,
                })
                .collect();
            state.metrics.set_forecast_gauges(&gauges);
        }
        Err(e) => {
            tracing::warn!(error.message = %e, "cannot score the forecast ledger for /metrics")
        }
    }
    let text = state
        .metrics
        .render()
        .map_err(|e| ApiError::Internal(format!("cannot encode metrics: {e}")))?;
    res.render(Text::Plain(text));
    Ok(())
}
