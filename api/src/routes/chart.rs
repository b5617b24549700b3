//! `GET /price/chart.svg`: recent closes with the champion's forecast and its interval, as an
//! SVG picture a browser shows directly.

use chrono::{DateTime, Utc};
use plotters::prelude::*;
use salvo::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use salvo::oapi::ToParameters;
use salvo::prelude::*;
use serde::Deserialize;

use super::{app_state, series};
use crate::error::ApiError;
use crate::params;
use crate::services::Prediction;

/// Window when `hours` is absent.
const DEFAULT_HOURS: i64 = 48;
/// Longest window, in hours (ten years, as `/price/history`); at most [`MAX_POINTS`] closes are drawn.
const MAX_HOURS: i64 = 87_600;
/// Most closes drawn: a line wider than the picture adds nothing.
const MAX_POINTS: i64 = 2_000;
/// Picture size in pixels.
const SIZE: (u32, u32) = (960, 480);

/// Parameters of `GET /price/chart.svg`.
#[derive(Debug, Deserialize, ToParameters)]
#[salvo(parameters(default_parameter_in = Query))]
pub struct ChartQuery {
    /// Trading pair, such as BTCUSDT (lower case accepted; default BTCUSDT).
    symbol: Option<String>,
    /// Kline interval (default: the finest interval stored for the symbol).
    interval: Option<String>,
    /// Hours of closes before the newest candle, 1 to 87600 (default 48).
    #[salvo(parameter(value_type = Option<i64>))]
    hours: Option<String>,
}

/// Recent closes and, when a champion exists, its forecast with the interval around it.
#[endpoint(
    tags("price"),
    responses((status_code = 200, description = "An SVG picture", content_type = "image/svg+xml"))
)]
pub async fn price_chart(
    query: ChartQuery,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), ApiError> {
    let state = app_state(depot)?;
    let hours = params::integer("hours", query.hours.as_deref(), DEFAULT_HOURS, 1, MAX_HOURS)?;
    let (symbol, interval) =
        series(state, query.symbol.as_deref(), query.interval.as_deref()).await?;
    let closes = state
        .series
        .recent_closes(&symbol, interval, hours, MAX_POINTS)
        .await?;
    // A chart without a forecast is still worth drawing; why there is none goes in the title.
    let (forecast, note) = match state.forecasts.live(&symbol, interval).await {
        Ok(prediction) => (Some(prediction), None),
        Err(e) => match ApiError::from(e) {
            e @ (ApiError::Unavailable(_) | ApiError::BadRequest(_)) => (None, Some(e.to_string())),
            e => return Err(e),
        },
    };
    let title = match (&forecast, &note) {
        (Some(p), _) => format!(
            "{symbol} {interval}: forecast {:.2} for {} ({} v{})",
            p.predicted_price,
            p.target_time.format("%Y-%m-%d %H:%M UTC"),
            p.model.name,
            p.model.version
        ),
        (None, Some(_)) => format!("{symbol} {interval}: no forecast (see /price/predict)"),
        (None, None) => format!("{symbol} {interval}"),
    };
    let svg = draw(&closes, forecast.as_ref(), &title)?;
    res.add_header(CONTENT_TYPE, "image/svg+xml; charset=utf-8", true)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    res.add_header(CACHE_CONTROL, "no-cache", true)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    res.write_body(svg)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(())
}

/// Draws closes, the forecast and its interval.
pub fn draw(
    closes: &[(DateTime<Utc>, f64)],
    forecast: Option<&Prediction>,
    title: &str,
) -> Result<String, ApiError> {
    let fail = |e: &dyn std::fmt::Display| ApiError::Internal(format!("drawing the chart: {e}"));
    let (Some(first), Some(last)) = (closes.first(), closes.last()) else {
        return Err(ApiError::NotFound("no closes to draw".to_owned()));
    };
    let mut lo = closes.iter().map(|c| c.1).fold(f64::INFINITY, f64::min);
    let mut hi = closes.iter().map(|c| c.1).fold(f64::NEG_INFINITY, f64::max);
    let mut end = last.0;
    if let Some(p) = forecast {
        for v in [Some(p.predicted_price), p.lower, p.upper]
            .into_iter()
            .flatten()
        {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        end = end.max(p.target_time);
    }
    let pad = ((hi - lo) * 0.05).max(hi.abs() * 1e-4).max(1e-9);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(72)
            .build_cartesian_2d(first.0..end, (lo - pad)..(hi + pad))
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc("open time (UTC)")
            .y_desc("close")
            .x_labels(8)
            .x_label_formatter(&|t| t.format("%m-%d %H:%M").to_string())
            .draw()
            .map_err(|e| fail(&e))?;
        chart
            .draw_series(LineSeries::new(closes.iter().copied(), &BLUE))
            .map_err(|e| fail(&e))?
            .label("close")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        if let Some(p) = forecast {
            let from = (p.based_on, p.current_price);
            let to = (p.target_time, p.predicted_price);
            chart
                .draw_series(LineSeries::new([from, to], RED.stroke_width(2)))
                .map_err(|e| fail(&e))?
                .label(format!("forecast ({})", p.model.model_type))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
            chart
                .draw_series([Circle::new(to, 4, RED.filled())])
                .map_err(|e| fail(&e))?;
            if let (Some(lower), Some(upper)) = (p.lower, p.upper) {
                chart
                    .draw_series(LineSeries::new(
                        [(p.target_time, lower), (p.target_time, upper)],
                        RED.mix(0.4).stroke_width(6),
                    ))
                    .map_err(|e| fail(&e))?
                    .label("90% interval")
                    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.mix(0.4)));
            }
            chart
                .draw_series(LineSeries::new(
                    [from, (p.target_time, p.baseline_price)],
                    BLACK.mix(0.5),
                ))
                .map_err(|e| fail(&e))?
                .label("baseline (last close)")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(svg)
}
