//! The real API server on a free loopback port, and its answers as tests read them.

use chrono::{DateTime, Utc};
use pricecast_api::{AppState, RunningServer};
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A `pricecast-api` server on 127.0.0.1:0, stopped when dropped.
pub struct TestApp {
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// A client for requests the helpers below do not cover.
    pub client: reqwest::Client,
    /// Cancelling it starts the graceful shutdown.
    pub shutdown: CancellationToken,
    /// The running server, for tests that wait for it to stop.
    pub server: Option<RunningServer>,
}

/// One answer: status, content type, raw body (to check exact digits), parsed body (`Null`
/// when not JSON) and headers.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The `content-type` header, empty when absent.
    pub content_type: String,
    /// The body as sent.
    pub text: String,
    /// The body parsed as JSON, `Null` when it is not JSON.
    pub json: Value,
    /// Every header.
    pub headers: HeaderMap,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestApp {
    /// Starts the real server over `state` on a free port.
    pub async fn start(state: AppState) -> Self {
        pricecast_shared::telemetry::init_for_tests();
        let shutdown = CancellationToken::new();
        let server = pricecast_api::start(
            state,
            "127.0.0.1:0".parse().expect("address"),
            shutdown.clone(),
        )
        .await
        .expect("bind a free port");
        Self {
            base: format!("http://{}", server.local_addr()),
            client: reqwest::Client::new(),
            shutdown,
            server: Some(server),
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.post_raw(path, body.to_string()).await
    }

    /// `POST path` with `body` sent as is, declared as JSON.
    pub async fn post_raw(&self, path: &str, body: String) -> Reply {
        self.send(
            self.client
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    /// Sends any request built on [`TestApp::client`].
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request reaches the server");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("response body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            text,
            json,
            headers,
        }
    }
}

/// The exact digits of a JSON number (serde_json keeps them: arbitrary_precision); panics on
/// anything else.
pub fn digits(value: &Value) -> String {
    assert!(value.is_number(), "expected a number, got {value}");
    value.to_string()
}

/// An RFC 3339 time in a JSON answer; panics on anything else.
pub fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(|| panic!("expected an RFC 3339 time, got {value}"))
        .with_timezone(&Utc)
}
