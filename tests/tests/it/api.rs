//! API tests: the real server on port 0 against a real database (and salvo's in-process
//! `TestClient` where no socket is needed).

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use pricecast_api::AppState;
use pricecast_api::endpoints::ROUTES;
use pricecast_binance::replay;
use pricecast_shared::domain::{Candle, Interval, Symbol};
use pricecast_shared::features::SEED_MA_WINDOW;
use pricecast_shared::store::{AccessMode, JobOutcome, JobStatus, Store, StoreOptions};
use pricecast_tests::api::{TestApp, digits, time};
use pricecast_tests::db::TestDb;
use rust_decimal::Decimal;
use salvo::test::{ResponseExt, TestClient};
use serde_json::Value;

/// Starts the real server over `store` on a free port.
async fn spawn_app(store: Store) -> TestApp {
    TestApp::start(AppState::new(store)).await
}

fn btc() -> Symbol {
    "BTCUSDT".parse().expect("symbol")
}

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .expect("valid time")
}

/// Loads the bundled BTCUSDT candles opening in `from..=to`.
async fn load_range(db: &TestDb, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Candle> {
    let candles: Vec<Candle> = replay::bundled_candles(&btc())
        .expect("bundled history")
        .into_iter()
        .filter(|c| c.open_time >= from && c.open_time <= to)
        .collect();
    db.store
        .upsert_candles(&candles)
        .await
        .expect("load candles");
    candles
}

/// A window in hours that reaches back to `t` (with an hour to spare).
fn hours_back_to(t: DateTime<Utc>) -> i64 {
    (Utc::now() - t).num_hours() + 1
}

fn read_only_options() -> StoreOptions {
    StoreOptions {
        mode: AccessMode::ReadOnly,
        max_connections: 2,
    }
}

#[tokio::test]
async fn latest_price_keeps_exact_digits_on_both_backends() {
    for db in TestDb::both().await {
        let candles = db.load_bundled("BTCUSDT", 50).await;
        let newest = candles.last().expect("candles");
        let app = spawn_app(db.read_only_store().await).await;

        let reply = app.get("/price/latest").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert!(
            reply.text.contains(&format!("\"price\":{}", newest.close)),
            "{}",
            reply.text
        );
        assert_eq!(reply.json["symbol"], "BTCUSDT");
        assert_eq!(reply.json["interval"], "1h");
        assert_eq!(reply.json["timestamp"], "2025-04-28T07:00:00Z");
        assert_eq!(reply.json["source"], "replay");
        let stored = db.bitcoin_prices().await;
        let stored = stored.last().expect("the view's newest row");
        assert_eq!(time(&reply.json["last_updated"]), stored.created_at);
        assert_eq!(digits(&reply.json["high"]), newest.high.to_string());
        assert_eq!(digits(&reply.json["volume"]), newest.volume.to_string());

        let lower = app.get("/price/latest?symbol=btcusdt&interval=1h").await;
        assert_eq!(lower.status, 200, "{}", lower.text);
        assert_eq!(lower.json["price"], reply.json["price"]);
    }
}

#[tokio::test]
async fn default_interval_is_the_finest_stored() {
    let db = TestDb::sqlite().await;
    let hourly = db.load_bundled("BTCUSDT", 48).await;
    // Daily copies of the midnight candles: BTCUSDT has 1h and 1d, ETHUSDT only 1d.
    let daily: Vec<Candle> = hourly
        .iter()
        .filter(|c| c.open_time.timestamp_millis() % 86_400_000 == 0)
        .flat_map(|c| {
            ["BTCUSDT", "ETHUSDT"].map(|symbol| Candle {
                symbol: symbol.parse().expect("symbol"),
                interval: Interval::D1,
                close_time: c.open_time + chrono::Duration::days(1)
                    - chrono::Duration::milliseconds(1),
                ..c.clone()
            })
        })
        .collect();
    assert!(!daily.is_empty());
    db.store
        .upsert_candles(&daily)
        .await
        .expect("daily candles");
    let app = spawn_app(db.read_only_store().await).await;

    let btc = app.get("/price/latest").await;
    assert_eq!(btc.json["interval"], "1h", "{}", btc.text);
    let eth = app.get("/price/latest?symbol=ethusdt").await;
    assert_eq!(eth.status, 200, "{}", eth.text);
    assert_eq!(eth.json["interval"], "1d");
    assert_eq!(eth.json["symbol"], "ETHUSDT");
}

#[tokio::test]
async fn history_rows_are_the_seed_rows_oldest_first_and_stop_at_the_gap() {
    for db in TestDb::both().await {
        // 2023-03-24 has no 13:00 candle: the exchange had an outage.
        let candles = load_range(&db, at(2023, 3, 23, 0), at(2023, 3, 24, 15)).await;
        let close_at = |t: DateTime<Utc>| {
            candles
                .iter()
                .find(|c| c.open_time == t)
                .expect("candle at time")
                .close
                .to_string()
        };
        let view = db.bitcoin_prices().await;
        let app = spawn_app(db.read_only_store().await).await;
        let hours = hours_back_to(at(2023, 3, 23, 0));

        // The newest five candles: 10:00, 11:00, 12:00, then 14:00 and 15:00 after the gap,
        // which lack lags and are left out as the seed app's dropna() left them out.
        let reply = app
            .get(&format!("/price/history?hours={hours}&limit=5"))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let rows = reply.json.as_array().expect("an array of rows");
        let times: Vec<DateTime<Utc>> = rows.iter().map(|r| time(&r["timestamp"])).collect();
        assert_eq!(
            times,
            [
                at(2023, 3, 24, 10),
                at(2023, 3, 24, 11),
                at(2023, 3, 24, 12)
            ]
        );
        for (row, t) in rows.iter().zip(&times) {
            let seed = view
                .iter()
                .find(|r| r.timestamp == *t)
                .expect("the view's row");
            assert_eq!(row["id"], seed.id);
            assert_eq!(row["id"], t.timestamp());
            assert_eq!(row["source"], "replay");
            assert_eq!(time(&row["created_at"]), seed.created_at);
            assert_eq!(digits(&row["price"]), close_at(*t));
        }
        // price_t+1 is the next candle's close, and null before the gap.
        assert_eq!(digits(&rows[0]["price_t+1"]), close_at(at(2023, 3, 24, 11)));
        assert_eq!(digits(&rows[1]["price_t+1"]), close_at(at(2023, 3, 24, 12)));
        assert!(rows[2]["price_t+1"].is_null(), "{}", reply.text);

        // 12:00 (the newest row with its history) has its full history, fetched beyond the page.
        let row = &rows[2];
        assert!(reply.text.contains("\"price\":28080.0"), "{}", reply.text);
        assert_eq!(digits(&row["price_t-1"]), close_at(at(2023, 3, 24, 11)));
        assert_eq!(digits(&row["price_t-5"]), close_at(at(2023, 3, 24, 7)));
        let window: Decimal = (3..=12)
            .map(|h| {
                close_at(at(2023, 3, 24, h))
                    .parse::<Decimal>()
                    .expect("close")
            })
            .sum();
        let ma_10 = (window / Decimal::from(SEED_MA_WINDOW as u64))
            .round_dp(8)
            .normalize();
        assert_eq!(digits(&row["ma_10"]), ma_10.to_string());

        // Only the candles after the gap in the window: none has its history.
        let after_gap = app
            .get(&format!("/price/history?hours={hours}&limit=2"))
            .await;
        assert_eq!(after_gap.status, 200, "{}", after_gap.text);
        assert_eq!(after_gap.json, serde_json::json!([]));

        // The whole range: every candle from the tenth on (the first with ten closes), up to
        // the gap, oldest first, each price_t+1 the next row's price.
        let all = app
            .get(&format!("/price/history?hours={hours}&limit=100"))
            .await;
        let rows = all.json.as_array().expect("rows");
        let first = at(2023, 3, 23, 9);
        let expected: Vec<DateTime<Utc>> = (0..28)
            .map(|h| first + chrono::Duration::hours(h))
            .collect();
        let times: Vec<DateTime<Utc>> = rows.iter().map(|r| time(&r["timestamp"])).collect();
        assert_eq!(times, expected, "{}", all.text);
        for pair in rows.windows(2) {
            assert_eq!(digits(&pair[0]["price_t+1"]), digits(&pair[1]["price"]));
        }
    }
}

#[tokio::test]
async fn stats_match_a_computation_over_the_candles() {
    for db in TestDb::both().await {
        let candles = db.load_bundled("BTCUSDT", 100).await;
        let app = spawn_app(db.read_only_store().await).await;
        let hours = (Utc::now() - candles[60].open_time).num_hours() + 1;
        let window_start = Utc::now() - chrono::Duration::hours(hours);
        let closes: Vec<Decimal> = candles
            .iter()
            .filter(|c| c.open_time >= window_start)
            .map(|c| c.close)
            .collect();

        let reply = app.get(&format!("/price/stats?hours={hours}")).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let stats = &reply.json;
        assert_eq!(stats["period_hours"], hours);
        assert_eq!(stats["total_records"], closes.len());
        assert_eq!(stats["hours"], hours);
        assert_eq!(stats["count"], closes.len());
        let min = closes.iter().min().expect("closes");
        let max = closes.iter().max().expect("closes");
        let first = closes.first().expect("closes");
        let last = closes.last().expect("closes");
        assert_eq!(digits(&stats["min_price"]), min.to_string());
        assert_eq!(digits(&stats["max_price"]), max.to_string());
        assert_eq!(digits(&stats["latest_price"]), last.to_string());
        assert_eq!(digits(&stats["min"]), min.to_string());
        assert_eq!(digits(&stats["max"]), max.to_string());
        assert_eq!(digits(&stats["first"]), first.to_string());
        assert_eq!(digits(&stats["last"]), last.to_string());
        assert_eq!(digits(&stats["change"]), (last - first).to_string());
        assert_eq!(stats["to"], "2025-04-28T07:00:00Z");
        let sum: Decimal = closes.iter().sum();
        let mean = (sum / Decimal::from(closes.len() as u64)).round_dp(8);
        assert_eq!(digits(&stats["avg_price"]), mean.to_string());
        assert_eq!(digits(&stats["mean"]), mean.to_string());
        let mean_f: f64 = closes
            .iter()
            .map(|c| c.to_string().parse::<f64>().expect("float"))
            .sum::<f64>()
            / closes.len() as f64;
        let variance = closes
            .iter()
            .map(|c| (c.to_string().parse::<f64>().expect("float") - mean_f).powi(2))
            .sum::<f64>()
            / (closes.len() - 1) as f64;
        let std = stats["std"].as_f64().expect("std");
        assert!((std - variance.sqrt()).abs() < 1e-6 * std, "{std}");
    }
}

#[tokio::test]
async fn candles_page_oldest_first_by_time_range() {
    let db = TestDb::postgres().await;
    let candles = db.load_bundled("BTCUSDT", 30).await;
    let app = spawn_app(db.read_only_store().await).await;

    let first_page = app.get("/price/candles?limit=10").await;
    assert_eq!(first_page.status, 200, "{}", first_page.text);
    assert_eq!(first_page.json["count"], 10);
    assert_eq!(first_page.json["next_offset"], 10);
    let rows = first_page.json["candles"].as_array().expect("candles");
    assert_eq!(
        rows[0]["open_time"],
        candles[0]
            .open_time
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    for field in ["open", "high", "low", "close", "volume"] {
        assert!(rows[0][field].is_number(), "{field}");
    }
    assert_eq!(digits(&rows[0]["open"]), candles[0].open.to_string());
    for field in [
        "close_time",
        "quote_volume",
        "trades",
        "taker_buy_base",
        "taker_buy_quote",
        "source",
    ] {
        assert!(rows[0].get(field).is_some(), "{field} missing");
    }

    let last_page = app.get("/price/candles?limit=10&offset=20").await;
    assert_eq!(last_page.json["count"], 10);
    assert!(last_page.json["next_offset"].is_null());

    let start = candles[5].open_time.to_rfc3339();
    let end = candles[7].open_time.timestamp_millis();
    let range = app
        .send(
            app.client
                .get(format!("{}/price/candles", app.base))
                .query(&[("start", start), ("end", end.to_string())]),
        )
        .await;
    assert_eq!(range.status, 200, "{}", range.text);
    assert_eq!(range.json["count"], 3);
    assert_eq!(
        digits(&range.json["candles"][2]["close"]),
        candles[7].close.to_string()
    );

    let backwards = app
        .get("/price/candles?start=2025-04-28&end=2025-04-27")
        .await;
    assert_eq!(backwards.status, 400);
    assert!(
        backwards.json["detail"]
            .as_str()
            .expect("detail")
            .contains("start"),
        "{}",
        backwards.text
    );
}

#[tokio::test]
async fn every_route_is_listed_documented_and_served() {
    let db = TestDb::sqlite().await;
    let candles = db.load_bundled("BTCUSDT", 30).await;
    let app = spawn_app(db.read_only_store().await).await;
    let routes: BTreeSet<String> = ROUTES.iter().map(|r| (*r).to_owned()).collect();

    let index = app.get("/").await;
    assert_eq!(index.status, 200);
    assert_eq!(index.json["name"], "Pricecast");
    assert_eq!(index.json["version"], env!("CARGO_PKG_VERSION"));
    let listed: BTreeSet<String> = index.json["endpoints"]
        .as_object()
        .expect("endpoints")
        .keys()
        .cloned()
        .collect();
    assert_eq!(listed, routes);

    let doc = app.get("/openapi.json").await;
    assert_eq!(doc.status, 200);
    assert!(
        doc.json["openapi"]
            .as_str()
            .expect("version")
            .starts_with("3.")
    );
    let documented: BTreeSet<String> = doc.json["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect();
    assert_eq!(documented, routes);
    let history_params: BTreeSet<&str> = doc.json["paths"]["/price/history"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        history_params,
        BTreeSet::from(["symbol", "interval", "hours", "limit"])
    );
    let responses = &doc.json["paths"]["/price/latest"]["get"]["responses"];
    for code in ["200", "400", "404", "503"] {
        assert!(responses.get(code).is_some(), "{code} not documented");
    }

    let hours = hours_back_to(candles[0].open_time);
    for route in ROUTES {
        let reply = app.get(&format!("{route}?hours={hours}")).await;
        if matches!(
            route,
            "/price/predict" | "/forecasts" | "/forecasts/scorecard"
        ) {
            // No registry behind this service: a clear 503 until a champion exists (the
            // ledger's routes answer only the horizons a champion serves).
            assert_eq!(reply.status, 503, "{route}: {}", reply.text);
            assert!(
                reply.json["detail"]
                    .as_str()
                    .expect("detail")
                    .contains("no champion")
            );
        } else {
            assert_eq!(reply.status, 200, "{route}: {}", reply.text);
        }
    }

    let docs = app.get("/docs").await;
    assert_eq!(docs.status, 200);
    let content_type = docs
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(docs.text.to_lowercase().contains("swagger"));
}

#[tokio::test]
async fn bad_parameters_are_json_400s_naming_the_parameter() {
    let db = TestDb::sqlite().await;
    db.load_bundled("BTCUSDT", 10).await;
    let app = spawn_app(db.read_only_store().await).await;
    let cases = [
        ("/price/history?hours=-5", "hours"),
        ("/price/history?hours=0", "hours"),
        ("/price/history?hours=87601", "hours"),
        ("/price/history?limit=5001", "limit"),
        ("/price/stats?hours=abc", "hours"),
        ("/price/candles?limit=abc", "limit"),
        ("/price/candles?offset=-1", "offset"),
        ("/price/candles?start=yesterday", "start"),
        ("/price/latest?interval=7m", "interval"),
        ("/price/latest?symbol=BTC-USD", "symbol"),
        ("/jobs?limit=1001", "limit"),
        ("/jobs?job=a%20b", "job"),
    ];
    for (path, parameter) in cases {
        let reply = app.get(path).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.text);
        assert_eq!(reply.json["error"], "bad_request", "{path}: {}", reply.text);
        let detail = reply.json["detail"].as_str().expect("detail");
        assert!(detail.starts_with(parameter), "{path}: {detail}");
    }
    let interval = app.get("/price/latest?interval=7m").await;
    assert!(
        interval.json["detail"]
            .as_str()
            .expect("detail")
            .contains("1m, 3m"),
        "{}",
        interval.text
    );
}

#[tokio::test]
async fn missing_data_is_a_json_404_that_says_where_the_data_is() {
    let db = TestDb::postgres().await;
    db.load_bundled("BTCUSDT", 24).await;
    let app = spawn_app(db.read_only_store().await).await;

    let unknown = app.get("/price/latest?symbol=DOGEUSDT").await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert_eq!(unknown.json["error"], "not_found");
    assert!(
        unknown.json["detail"]
            .as_str()
            .expect("detail")
            .contains("DOGEUSDT")
    );

    for endpoint in ["/price/history", "/price/stats"] {
        // The bundled history ended in April 2025: the default 24-hour window is empty.
        let empty = app.get(endpoint).await;
        assert_eq!(empty.status, 404, "{endpoint}: {}", empty.text);
        let detail = empty.json["detail"].as_str().expect("detail");
        assert!(
            detail.starts_with("no BTCUSDT 1h candles in the last 24 hours"),
            "{detail}"
        );
        assert!(
            detail.contains("the newest opened at 2025-04-28T07:00:00Z"),
            "{detail}"
        );
        let suggested = detail
            .split("hours=")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .expect("a suggested hours value");
        let reached = app.get(&format!("{endpoint}?hours={suggested}")).await;
        assert_eq!(reached.status, 200, "{endpoint}: {}", reached.text);
    }

    let no_route = app.get("/price/nowhere").await;
    assert_eq!(no_route.status, 404);
    assert_eq!(no_route.json["error"], "not_found", "{}", no_route.text);
}

#[tokio::test]
async fn unreachable_database_is_503_and_health_says_so() {
    // Nothing listens on port 1.
    let store = Store::connect("postgres://postgres@127.0.0.1:1/x", read_only_options())
        .await
        .expect("lazy connect");
    let app = spawn_app(store).await;

    let health = app.get("/health").await;
    assert_eq!(health.status, 503, "{}", health.text);
    assert_eq!(health.json["status"], "unhealthy");
    assert_eq!(health.json["database"], "disconnected");
    let database = &health.json["dependencies"]["database"];
    assert_eq!(database["status"], "down");
    assert_eq!(database["backend"], "postgres");
    assert!(database["error"].as_str().is_some_and(|e| !e.is_empty()));

    for path in ["/price/latest?interval=1h", "/price/latest", "/jobs"] {
        let reply = app.get(path).await;
        assert_eq!(reply.status, 503, "{path}: {}", reply.text);
        assert_eq!(reply.json["error"], "service_unavailable");
    }
}

#[tokio::test]
async fn health_recovers_when_the_database_appears() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}/late.db", dir.path().display());
    let read_only = Store::connect(&url, read_only_options())
        .await
        .expect("lazy connect");
    let app = spawn_app(read_only).await;

    let missing = app.get("/health").await;
    assert_eq!(missing.status, 503, "{}", missing.text);
    assert_eq!(missing.json["dependencies"]["database"]["status"], "down");
    assert_eq!(missing.json["database"], "disconnected");

    let writer = Store::connect(
        &url,
        StoreOptions {
            mode: AccessMode::ReadWrite,
            max_connections: 1,
        },
    )
    .await
    .expect("connect read-write");
    writer.ping().await.expect("create the database file");

    let up = app.get("/health").await;
    assert_eq!(up.status, 200, "{}", up.text);
    assert_eq!(up.json["status"], "healthy");
    assert_eq!(up.json["database"], "connected");
    assert_eq!(up.json["dependencies"]["database"]["backend"], "sqlite");
    assert!(up.json["dependencies"]["database"]["latency_ms"].is_number());

    let unmigrated = app.get("/price/latest?interval=1h").await;
    assert_eq!(unmigrated.status, 503, "{}", unmigrated.text);
    assert!(
        unmigrated.json["detail"]
            .as_str()
            .expect("detail")
            .contains("pricecast migrate"),
        "{}",
        unmigrated.text
    );

    writer.migrate().await.expect("migrate");
    let empty = app.get("/price/latest?interval=1h").await;
    assert_eq!(empty.status, 404, "{}", empty.text);
}

#[tokio::test]
async fn the_api_store_refuses_writes() {
    for db in TestDb::both().await {
        let store = db.read_only_store().await;
        let insert = "INSERT INTO job_runs(job, status) VALUES ('x', 'running')";
        let result = match &store {
            Store::Postgres(pg) => sqlx::query(insert).execute(pg.pool()).await.map(|_| ()),
            Store::Sqlite(lite) => sqlx::query(insert).execute(lite.pool()).await.map(|_| ()),
        };
        let err = result.expect_err("a read-only store must not write");
        assert!(
            err.to_string().contains("read-only") || err.to_string().contains("readonly"),
            "{}: {err}",
            store.backend()
        );
    }
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern() {
    let db = TestDb::sqlite().await;
    let app = spawn_app(db.read_only_store().await).await;
    assert_eq!(app.get("/health").await.status, 200);
    assert_eq!(app.get("/no/such/page").await.status, 404);
    assert_eq!(app.get("/price/latest?symbol=BTC-USD").await.status, 400);

    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    for line in [
        r#"pricecast_http_requests_total{method="GET",route="/health",status="200"} 1"#,
        r#"pricecast_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        r#"pricecast_http_requests_total{method="GET",route="/price/latest",status="400"} 1"#,
        r#"pricecast_http_request_duration_seconds_count{method="GET",route="/health",status="200"} 1"#,
    ] {
        assert!(metrics.text.contains(line), "{line} in\n{}", metrics.text);
    }
    assert!(!metrics.text.contains("/no/such/page"));
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let db = TestDb::sqlite().await;
    let app = spawn_app(db.read_only_store().await).await;

    let generated = app.get("/health").await;
    let id = generated
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-request-id");
    assert!(!id.is_empty());

    let echoed = app
        .send(
            app.client
                .get(format!("{}/health", app.base))
                .header("x-request-id", "trace-42"),
        )
        .await;
    assert_eq!(
        echoed
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("trace-42")
    );
}

#[tokio::test]
async fn jobs_lists_recorded_runs_in_process() {
    let db = TestDb::postgres().await;
    let id = db.store.start_job_run("collect").await.expect("start run");
    db.store
        .finish_job_run(
            id,
            &JobOutcome {
                status: JobStatus::Succeeded,
                rows: 24,
                detail: Some("24 candles".into()),
                report: None,
                error: None,
            },
        )
        .await
        .expect("finish run");
    db.store.start_job_run("export").await.expect("start run");
    let service = pricecast_api::service(AppState::new(db.read_only_store().await));

    let mut all = TestClient::get("http://127.0.0.1/jobs")
        .send(&service)
        .await;
    let all: Value = all.take_json().await.expect("json");
    assert_eq!(all["runs"].as_array().map(Vec::len), Some(2));

    let mut collect = TestClient::get("http://127.0.0.1/jobs?job=collect&limit=5")
        .send(&service)
        .await;
    assert_eq!(collect.status_code.map(|s| s.as_u16()), Some(200));
    let collect: Value = collect.take_json().await.expect("json");
    let runs = collect["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["job"], "collect");
    assert_eq!(runs[0]["status"], "succeeded");
    assert_eq!(runs[0]["rows"], 24);
}

#[tokio::test]
async fn shutdown_stops_the_server_gracefully() {
    let db = TestDb::sqlite().await;
    let mut app = spawn_app(db.read_only_store().await).await;
    assert_eq!(app.get("/health").await.status, 200);
    let server = app.server.take().expect("server");
    app.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), server.wait())
        .await
        .expect("stops within the grace period")
        .expect("stops cleanly");
    assert!(
        app.client
            .get(format!("{}/health", app.base))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn price_responses_are_cached_for_the_ttl_only() {
    let db = TestDb::postgres().await;
    let candles = db.load_bundled("BTCUSDT", 20).await;
    let (older, newest) = candles.split_at(candles.len() - 1);
    // Start without the newest candle, then let it arrive.
    let delete = sqlx::query("DELETE FROM candles WHERE open_time = $1").bind(newest[0].open_time);
    match &db.store {
        Store::Postgres(pg) => delete.execute(pg.pool()).await.expect("delete"),
        Store::Sqlite(_) => unreachable!("a PostgreSQL test database"),
    };
    let ttl = std::time::Duration::from_millis(600);
    let cached =
        TestApp::start(AppState::new(db.read_only_store().await).with_cache_ttl(ttl)).await;
    let uncached = TestApp::start(
        AppState::new(db.read_only_store().await).with_cache_ttl(std::time::Duration::ZERO),
    )
    .await;
    let before = older.last().expect("older").close.to_string();
    assert_eq!(
        digits(&cached.get("/price/latest").await.json["price"]),
        before
    );
    assert_eq!(
        digits(&uncached.get("/price/latest").await.json["price"]),
        before
    );

    db.store.upsert_candles(newest).await.expect("new candle");
    let now = newest[0].close.to_string();
    assert_eq!(
        digits(&uncached.get("/price/latest").await.json["price"]),
        now
    );
    assert_eq!(
        digits(&cached.get("/price/latest").await.json["price"]),
        before,
        "served from the cache within its lifetime"
    );
    tokio::time::sleep(ttl + std::time::Duration::from_millis(200)).await;
    assert_eq!(
        digits(&cached.get("/price/latest").await.json["price"]),
        now
    );
    // Errors are never cached.
    assert_eq!(
        cached.get("/price/latest?symbol=NOPEUSDT").await.status,
        404
    );
}
