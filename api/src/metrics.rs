//! Prometheus metrics of the service and the hoop that records and logs every request.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use salvo::http::StatusCode;
use salvo::prelude::*;

use crate::endpoints::ROUTES;

/// Label for requests that matched no route (keeps label values bounded).
const UNMATCHED_ROUTE: &str = "unmatched";
/// The prefix of the Swagger UI's pages and assets.
const DOCS_ROUTE: &str = "/docs";
/// The OpenAPI document's path.
pub const OPENAPI_ROUTE: &str = "/openapi.json";
/// Request duration buckets, in seconds: from a cached answer to a slow window scan.
const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Labels of the forecast ledger's gauges.
const FORECAST_LABELS: [&str; 3] = ["symbol", "interval", "horizon"];

/// The live score of one series and horizon, as the gauges show it.
#[derive(Clone, Debug, PartialEq)]
pub struct ForecastGauge {
    /// Trading pair.
    pub symbol: String,
    /// Kline interval.
    pub interval: String,
    /// Candles ahead.
    pub horizon: u32,
    /// `1 − MAE / baseline MAE` of the scored forecasts, when defined.
    pub skill: Option<f64>,
    /// Share of the scored forecasts inside their interval, when any had one.
    pub coverage: Option<f64>,
    /// Forecasts scored.
    pub scored: u64,
    /// Seconds since the series' newest candle closed, when it has one.
    pub newest_candle_age_s: Option<f64>,
}

/// The service's request metrics in a registry of their own (one per [`crate::AppState`]).
pub struct ApiMetrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    forecast_skill: GaugeVec,
    forecast_coverage: GaugeVec,
    forecasts_scored: GaugeVec,
    newest_candle_age: GaugeVec,
}

impl fmt::Debug for ApiMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiMetrics").finish_non_exhaustive()
    }
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiMetrics {
    /// A fresh registry with `pricecast_http_requests_total` and
    /// `pricecast_http_request_duration_seconds`.
    pub fn new() -> Self {
        let labels = ["method", "route", "status"];
        let requests = IntCounterVec::new(
            Opts::new("pricecast_http_requests_total", "HTTP requests answered"),
            &labels,
        )
        .expect("constant metric definition is valid");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "pricecast_http_request_duration_seconds",
                "Time to answer an HTTP request",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &labels,
        )
        .expect("constant metric definition is valid");
        let gauge = |name: &str, help: &str| {
            GaugeVec::new(Opts::new(name, help), &FORECAST_LABELS)
                .expect("constant metric definition is valid")
        };
        let forecast_skill = gauge(
            "pricecast_forecast_skill",
            "1 - MAE / baseline MAE of the ledger's scored forecasts over the last 30 days",
        );
        let forecast_coverage = gauge(
            "pricecast_forecast_coverage",
            "Share of the ledger's scored forecasts of the last 30 days inside their interval",
        );
        let forecasts_scored = gauge(
            "pricecast_forecasts_scored",
            "Forecasts of the ledger whose target closed in the last 30 days",
        );
        let newest_candle_age = GaugeVec::new(
            Opts::new(
                "pricecast_newest_candle_age_seconds",
                "Seconds since the newest stored candle of a served series closed",
            ),
            &FORECAST_LABELS[..2],
        )
        .expect("constant metric definition is valid");
        let registry = Registry::new();
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(forecast_skill.clone()),
            Box::new(forecast_coverage.clone()),
            Box::new(forecasts_scored.clone()),
            Box::new(newest_candle_age.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric registered once in a fresh registry");
        }
        Self {
            registry,
            requests,
            duration,
            forecast_skill,
            forecast_coverage,
            forecasts_scored,
            newest_candle_age,
        }
    }

    /// Replaces the forecast ledger's gauges with these scores (a series no longer served
    /// disappears; an undefined skill, coverage or age is left out).
    pub fn set_forecast_gauges(&self, gauges: &[ForecastGauge]) {
        self.forecast_skill.reset();
        self.forecast_coverage.reset();
        self.forecasts_scored.reset();
        self.newest_candle_age.reset();
        for g in gauges {
            if let Some(age) = g.newest_candle_age_s {
                self.newest_candle_age
                    .with_label_values(&[g.symbol.as_str(), g.interval.as_str()])
                    .set(age);
            }
            let horizon = g.horizon.to_string();
            let labels = [g.symbol.as_str(), g.interval.as_str(), horizon.as_str()];
            self.forecasts_scored
                .with_label_values(&labels)
                .set(g.scored as f64);
            if let Some(skill) = g.skill {
                self.forecast_skill.with_label_values(&labels).set(skill);
            }
            if let Some(coverage) = g.coverage {
                self.forecast_coverage
                    .with_label_values(&labels)
                    .set(coverage);
            }
        }
    }

    /// Records one answered request.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.duration.with_label_values(&labels).observe(seconds);
    }

    /// Everything in the Prometheus text exposition format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// The route pattern a path belongs to, for the `route` label.
pub fn route_label(path: &str) -> &'static str {
    if let Some(route) = ROUTES.iter().find(|route| **route == path) {
        route
    } else if path == OPENAPI_ROUTE {
        OPENAPI_ROUTE
    } else if path == DOCS_ROUTE || path.starts_with("/docs/") {
        DOCS_ROUTE
    } else {
        UNMATCHED_ROUTE
    }
}

/// Service hoop: times every request, records its metrics and logs it with its request id.
pub struct RequestObserver {
    metrics: Arc<ApiMetrics>,
}

impl RequestObserver {
    /// An observer recording into `metrics`.
    pub fn new(metrics: Arc<ApiMetrics>) -> Self {
        Self { metrics }
    }
}

#[async_trait]
impl Handler for RequestObserver {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        let started = Instant::now();
        ctrl.call_next(req, depot, res).await;
        let elapsed = started.elapsed();
        let status = res.status_code.unwrap_or(StatusCode::OK);
        let path = req.uri().path();
        let route = if status == StatusCode::NOT_FOUND && !ROUTES.contains(&path) {
            UNMATCHED_ROUTE
        } else {
            route_label(path)
        };
        self.metrics.observe(
            req.method().as_str(),
            route,
            status.as_u16(),
            elapsed.as_secs_f64(),
        );
        let request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        tracing::info!(
            method = %req.method(),
            path,
            route,
            status = status.as_u16(),
            duration_ms = elapsed.as_micros() as f64 / 1000.0,
            request_id,
            "request answered"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_are_bounded() {
        assert_eq!(route_label("/price/latest"), "/price/latest");
        assert_eq!(route_label("/docs/index.css"), "/docs");
        assert_eq!(route_label("/wp-admin/../etc"), "unmatched");
    }

    #[test]
    fn forecast_gauges_are_rendered_and_replaced() {
        let metrics = ApiMetrics::new();
        let gauge = ForecastGauge {
            symbol: "BTCUSDT".into(),
            interval: "1h".into(),
            horizon: 1,
            skill: Some(-0.25),
            coverage: None,
            scored: 12,
            newest_candle_age_s: Some(90.5),
        };
        metrics.set_forecast_gauges(std::slice::from_ref(&gauge));
        let text = metrics.render().expect("render");
        assert!(
            text.contains(
                r#"pricecast_forecast_skill{horizon="1",interval="1h",symbol="BTCUSDT"} -0.25"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"pricecast_forecasts_scored{horizon="1",interval="1h",symbol="BTCUSDT"} 12"#
            ),
            "{text}"
        );
        assert!(!text.contains("pricecast_forecast_coverage{"), "{text}");
        assert!(
            text.contains(
                r#"pricecast_newest_candle_age_seconds{interval="1h",symbol="BTCUSDT"} 90.5"#
            ),
            "{text}"
        );
        metrics.set_forecast_gauges(&[]);
        let text = metrics.render().expect("render");
        assert!(!text.contains("pricecast_forecasts_scored{"), "{text}");
    }

    #[test]
    fn observed_requests_are_rendered() {
        let metrics = ApiMetrics::new();
        metrics.observe("GET", "/health", 200, 0.01);
        let text = metrics.render().expect("render");
        assert!(
            text.contains(
                r#"pricecast_http_requests_total{method="GET",route="/health",status="200"} 1"#
            ),
            "{text}"
        );
    }
}
