//! An SVG chart of a window's forecasts: actual, model and baseline closes over time.

use chrono::{DateTime, Utc};
use plotters::prelude::*;

use super::{WindowSeries, model_error};
use crate::Result;

/// Chart size in pixels.
const SIZE: (u32, u32) = (960, 480);
/// Colour of the actual closes.
const ACTUAL: RGBColor = RGBColor(33, 33, 33);
/// Colour of the model's forecasts.
const PREDICTED: RGBColor = RGBColor(31, 119, 180);
/// Colour of the naive baseline.
const BASELINE: RGBColor = RGBColor(255, 127, 14);

/// Draws the actual, forecast and baseline closes of a window against the time each forecast is
/// for (the target candle's open time), with a legend and labelled axes, as an SVG document.
pub fn chart_svg(window: &WindowSeries, title: &str) -> Result<String> {
    let operation = "drawing the forecast chart";
    let fail = |message: String| model_error(operation, message);
    let ahead = i64::from(window.horizon) * window.interval_ms;
    let times: Vec<DateTime<Utc>> = window
        .open_time_ms
        .iter()
        .map(|&ms| DateTime::from_timestamp_millis(ms + ahead))
        .collect::<Option<_>>()
        .ok_or_else(|| fail("a time is out of range".into()))?;
    let (Some(&first), Some(&last)) = (times.first(), times.last()) else {
        return Err(fail("the window has no rows".into()));
    };
    let values = || {
        window
            .actual
            .iter()
            .chain(&window.predicted)
            .chain(&window.baseline)
            .copied()
    };
    let low = values().fold(f64::INFINITY, f64::min);
    let high = values().fold(f64::NEG_INFINITY, f64::max);
    if !(low.is_finite() && high.is_finite()) {
        return Err(fail("the window has no finite closes".into()));
    }
    let pad = ((high - low) * 0.05).max(high.abs() * 1e-4);
    // A one-row window still needs a time range to draw.
    let last = if last > first {
        last
    } else {
        first + chrono::Duration::milliseconds(window.interval_ms.max(1))
    };

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(80)
            .build_cartesian_2d(first..last, (low - pad)..(high + pad))
            .map_err(|e| fail(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("time of the forecast close (UTC)")
            .y_desc("close")
            .x_label_formatter(&|t| t.format("%Y-%m-%d %H:%M").to_string())
            .y_label_formatter(&|v| format!("{v:.2}"))
            .draw()
            .map_err(|e| fail(e.to_string()))?;
        for (label, colour, series) in [
            ("actual", ACTUAL, &window.actual),
            ("model", PREDICTED, &window.predicted),
            ("baseline (last close)", BASELINE, &window.baseline),
        ] {
            let points = times.iter().copied().zip(series.iter().copied());
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                .map_err(|e| fail(e.to_string()))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(e.to_string()))?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    Ok(svg)
}
