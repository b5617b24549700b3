//! Prometheus metrics of the service and the hoop that records and logs every request.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
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

/// The service's request metrics in a registry of their own (one per [`crate::AppState`]).
pub struct ApiMetrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
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
        let registry = Registry::new();
        registry
            .register(Box::new(requests.clone()))
            .expect("metric registered once in a fresh registry");
        registry
            .register(Box::new(duration.clone()))
            .expect("metric registered once in a fresh registry");
        Self {
            registry,
            requests,
            duration,
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
