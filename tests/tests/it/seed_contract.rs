//! The seed app's contract: every seed endpoint of the real server, over real stored candles on
//! PostgreSQL and SQLite with a trained champion, answers in the seed's JSON shapes. The shapes
//! are judged by the seed's pydantic models in `tests/python/seed_contract.py` (strict mode, run
//! by the MLflow virtualenv's Python, which has pydantic); the values by the database itself.

use std::path::PathBuf;

use chrono::Utc;
use pricecast_shared::domain::Candle;
use pricecast_tests::api::{Reply, TestApp, digits, time};
use pricecast_tests::db::{BitcoinPrice, TestDb};
use pricecast_tests::pipeline::{PIPELINE_CANDLES, TrainedPipeline};
use serde_json::{Value, json};

/// History rows asked for: fewer than the window holds, so `limit` decides.
const HISTORY_LIMIT: usize = 50;
/// Candles in the asked window: more than [`HISTORY_LIMIT`].
const WINDOW_CANDLES: usize = 60;

/// Runs `tests/python/seed_contract.py` over `replies` (case name, path, reply); panics with
/// every failure it reports.
fn hold_against_the_seed_models(backend: &str, replies: &[(&str, String, Reply)]) {
    let python = std::env::var("PRICECAST_TEST_MLFLOW_PYTHON").expect(
        "PRICECAST_TEST_MLFLOW_PYTHON is not set: run tests/run.sh, which installs MLflow and pydantic",
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/seed_contract.py");
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("replies.json");
    let cases: Vec<Value> = replies
        .iter()
        .map(|(case, path, reply)| {
            json!({"case": case, "path": path, "status": reply.status, "body": reply.text})
        })
        .collect();
    std::fs::write(&input, Value::Array(cases).to_string()).expect("write the replies");
    let output = std::process::Command::new(&python)
        .arg(&script)
        .arg(&input)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}; run tests/run.sh"));
    assert!(
        output.status.success(),
        "{backend}: answers differ from the seed app's models:\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("the script prints JSON");
    let held = report["replies"].as_object().expect("replies").len();
    assert_eq!(held, replies.len(), "{backend}: {report}");
}

/// The seed endpoints of one backend, held against the seed models and the `bitcoin_prices`
/// view.
async fn seed_endpoints_hold(db: &TestDb, pipeline: &TrainedPipeline, candles: &[Candle]) {
    let backend = db.store.backend();
    let app = TestApp::start(TrainedPipeline::app_state(db, pipeline.served_models()).await).await;
    let view = db.bitcoin_prices().await;
    assert_eq!(
        view.len(),
        candles.len(),
        "{backend}: the view shows every candle"
    );
    let newest = view.last().expect("rows in the view");
    let window_start = candles[candles.len() - WINDOW_CANDLES].open_time;
    let hours = (Utc::now() - window_start).num_hours() + 1;

    let history_path = format!("/price/history?hours={hours}&limit={HISTORY_LIMIT}");
    let stats_path = format!("/price/stats?hours={hours}");
    let paths = [
        ("root", "/".to_owned()),
        ("latest", "/price/latest".to_owned()),
        ("history", history_path),
        ("stats", stats_path),
        ("predict", "/price/predict".to_owned()),
        ("health", "/health".to_owned()),
        // The default 24-hour window ended long ago: nothing in it.
        ("not_found", "/price/history".to_owned()),
        ("not_found", "/price/stats".to_owned()),
        ("not_found", "/price/latest?symbol=DOGEUSDT".to_owned()),
        ("not_found", "/price/nowhere".to_owned()),
    ];
    let mut replies = Vec::new();
    for (case, path) in paths {
        let reply = app.get(&path).await;
        replies.push((case, path, reply));
    }
    hold_against_the_seed_models(backend, &replies);
    let body = |case: &str| {
        &replies
            .iter()
            .find(|(c, _, _)| *c == case)
            .unwrap_or_else(|| panic!("a {case} reply"))
            .2
            .json
    };

    // /price/latest: the newest row of the view.
    let latest = body("latest");
    assert_eq!(
        digits(&latest["price"]),
        newest.price.to_string(),
        "{backend}"
    );
    assert_eq!(time(&latest["timestamp"]), newest.timestamp, "{backend}");
    assert_eq!(latest["source"], newest.source.as_str(), "{backend}");
    assert_eq!(
        time(&latest["last_updated"]),
        newest.created_at,
        "{backend}"
    );

    // /price/history: the window's newest rows, oldest first, each the view's row.
    let rows = body("history").as_array().expect("an array of rows");
    let expected: &[BitcoinPrice] = &view[view.len() - HISTORY_LIMIT..];
    assert_eq!(rows.len(), expected.len(), "{backend}");
    for (row, seed) in rows.iter().zip(expected) {
        assert_eq!(row["id"], seed.id, "{backend}: {row}");
        assert_eq!(digits(&row["price"]), seed.price.to_string(), "{backend}");
        assert_eq!(time(&row["timestamp"]), seed.timestamp, "{backend}");
        assert_eq!(row["source"], seed.source.as_str(), "{backend}");
        assert_eq!(time(&row["created_at"]), seed.created_at, "{backend}");
    }
    for (pair, seed) in rows.windows(2).zip(&view[view.len() - HISTORY_LIMIT - 1..]) {
        assert_eq!(digits(&pair[0]["price_t+1"]), digits(&pair[1]["price"]));
        assert_eq!(digits(&pair[0]["price_t-1"]), seed.price.to_string());
    }
    let newest_row = rows.last().expect("rows");
    assert_eq!(newest_row["id"], newest.id, "{backend}");
    assert!(newest_row["price_t+1"].is_null(), "{backend}: {newest_row}");

    // /price/stats: the window's closes.
    let stats = body("stats");
    let window = &view[view.len() - WINDOW_CANDLES..];
    let min = window.iter().map(|r| r.price).min().expect("prices");
    let max = window.iter().map(|r| r.price).max().expect("prices");
    assert_eq!(stats["period_hours"], hours, "{backend}");
    assert_eq!(stats["total_records"], WINDOW_CANDLES, "{backend}");
    assert_eq!(digits(&stats["min_price"]), min.to_string(), "{backend}");
    assert_eq!(digits(&stats["max_price"]), max.to_string(), "{backend}");
    assert_eq!(
        digits(&stats["latest_price"]),
        newest.price.to_string(),
        "{backend}"
    );
    assert_eq!(stats["avg_price"], stats["mean"], "{backend}");

    // /price/predict and /health.
    assert!(
        body("predict")["predicted_price"]
            .as_f64()
            .is_some_and(f64::is_finite),
        "{backend}"
    );
    assert_eq!(body("health")["status"], "healthy", "{backend}");
    assert_eq!(body("health")["database"], "connected", "{backend}");
}

#[tokio::test]
async fn seed_endpoints_answer_in_the_seed_apps_shapes_on_both_backends() {
    let pipeline = TrainedPipeline::btc_hourly().await;
    let postgres = TestDb::postgres().await;
    let candles = postgres.load_bundled("BTCUSDT", PIPELINE_CANDLES).await;
    assert_eq!(candles, pipeline.candles);
    seed_endpoints_hold(&pipeline.db, &pipeline, &pipeline.candles).await;
    seed_endpoints_hold(&postgres, &pipeline, &candles).await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_seed_shapes() {
    let db = TestDb::sqlite().await;
    let app = TestApp::start(pricecast_api::AppState::new(db.read_only_store().await)).await;
    let doc = app.get("/openapi.json").await;
    assert_eq!(doc.status, 200, "{}", doc.text);
    let schemas = &doc.json["components"]["schemas"];
    let resolve = |schema: &Value| -> Value {
        let name = schema["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .unwrap_or_else(|| panic!("a component reference, got {schema}"));
        schemas[name].clone()
    };
    let ok_schema = |path: &str| {
        doc.json["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
            .clone()
    };
    let required = |schema: &Value| -> Vec<String> {
        schema["required"]
            .as_array()
            .expect("required keys")
            .iter()
            .map(|k| k.as_str().expect("key").to_owned())
            .collect()
    };
    let types = |schema: &Value, key: &str| -> Vec<String> {
        match &schema["properties"][key]["type"] {
            Value::String(t) => vec![t.clone()],
            Value::Array(ts) => ts
                .iter()
                .map(|t| t.as_str().expect("a type name").to_owned())
                .collect(),
            other => panic!("{key}: no type in {other}"),
        }
    };
    let holds = |schema: &Value, fields: &[(&str, &[&str])]| {
        let keys = required(schema);
        for (key, expected) in fields {
            assert!(
                keys.iter().any(|k| k == key),
                "{key} not required: {schema}"
            );
            assert_eq!(types(schema, key), *expected, "{key}: {schema}");
        }
    };
    const NUMBER: &[&str] = &["number"];
    const NULLABLE_NUMBER: &[&str] = &["number", "null"];
    const INTEGER: &[&str] = &["integer"];
    const STRING: &[&str] = &["string"];

    let history = ok_schema("/price/history");
    assert_eq!(history["type"], "array", "{history}");
    let row = resolve(&history["items"]);
    holds(
        &row,
        &[
            ("id", INTEGER),
            ("price", NUMBER),
            ("timestamp", STRING),
            ("source", STRING),
            ("created_at", STRING),
            ("price_t+1", NULLABLE_NUMBER),
            ("price_t-1", NUMBER),
            ("price_t-2", NUMBER),
            ("price_t-3", NUMBER),
            ("price_t-4", NUMBER),
            ("price_t-5", NUMBER),
            ("ma_10", NUMBER),
        ],
    );
    for key in ["timestamp", "created_at"] {
        assert_eq!(row["properties"][key]["format"], "date-time", "{key}");
    }
    holds(
        &resolve(&ok_schema("/price/latest")),
        &[
            ("price", NUMBER),
            ("timestamp", STRING),
            ("source", STRING),
            ("last_updated", STRING),
        ],
    );
    holds(
        &resolve(&ok_schema("/price/stats")),
        &[
            ("period_hours", INTEGER),
            ("total_records", INTEGER),
            ("min_price", NUMBER),
            ("max_price", NUMBER),
            ("avg_price", NUMBER),
            ("latest_price", NUMBER),
        ],
    );
    holds(
        &resolve(&ok_schema("/price/predict")),
        &[("predicted_price", NUMBER)],
    );
    holds(
        &resolve(&ok_schema("/health")),
        &[("status", STRING), ("database", STRING)],
    );
    let error = &doc.json["paths"]["/price/history"]["get"]["responses"]["404"]["content"]["application/json"]
        ["schema"];
    holds(&resolve(error), &[("detail", STRING)]);
}
