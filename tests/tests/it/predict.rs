//! Prediction tests: the API serving a champion the real pipeline trained (bundled candles →
//! export → features → train into the local registry), compared with the same model applied
//! offline, plus the what-if POST, the model list, the chart, a champion swap under load and a
//! registry that cannot be reached.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use pricecast_api::AppState;
use pricecast_api::served_models::ServedModels;
use pricecast_shared::champion::RegisteredModel;
use pricecast_shared::domain::{Candle, Interval};
use pricecast_shared::features::{self, FeatureRow, FeatureSpec};
use pricecast_shared::lake::{LakeArgs, LakeUrl};
use pricecast_shared::registry::{ModelRegistry, RegistryArgs};
use pricecast_shared::report::Work;
use pricecast_tests::api::{Reply, TestApp, time};
use pricecast_tests::db::TestDb;
use pricecast_tests::pipeline::TrainedPipeline;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A JSON error answer with `status`, whose detail mentions every one of `words`.
fn assert_error(reply: &Reply, status: u16, words: &[&str]) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert!(
        reply.content_type.starts_with("application/json"),
        "{}: {}",
        reply.content_type,
        reply.text
    );
    let detail = reply.json["detail"].as_str().unwrap_or_else(|| {
        panic!("an error body with a detail, got {}", reply.text);
    });
    assert!(reply.json["error"].is_string(), "{}", reply.text);
    for word in words {
        assert!(detail.contains(word), "{word:?} not in {detail:?}");
    }
}

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("expected a number, got {value}"))
}

/// Equal within `1e-9` relative: rolling sums computed over different spans can differ in the
/// last bits.
fn assert_close(name: &str, got: f64, expected: f64) {
    let tolerance = 1e-9 * got.abs().max(expected.abs()).max(1e-12);
    assert!(
        (got - expected).abs() <= tolerance,
        "{name}: served {got}, offline {expected}"
    );
}

fn serving_spec(champion: &RegisteredModel) -> FeatureSpec {
    FeatureSpec {
        horizons: Vec::new(),
        features: champion.model.feature_names.clone(),
    }
}

/// The champion's feature row of the newest of `candles`, computed offline (polars on a
/// blocking thread, as everywhere outside the runtime's workers).
async fn offline_row(champion: &RegisteredModel, candles: &[Candle]) -> FeatureRow {
    let spec = serving_spec(champion);
    let candles = candles.to_vec();
    tokio::task::spawn_blocking(move || features::latest_row(&candles, Interval::H1, &spec))
        .await
        .expect("feature row task")
        .expect("feature row")
        .expect("enough history")
}

fn close_of(candle: &Candle) -> f64 {
    candle.close.to_string().parse().expect("close")
}

#[tokio::test]
async fn get_predict_answers_with_every_field_and_the_champions_own_forecast() {
    let pipeline = TrainedPipeline::btc_hourly().await;
    let champion = pipeline.champion().await;
    let app =
        TestApp::start(TrainedPipeline::app_state(&pipeline.db, pipeline.served_models()).await)
            .await;

    let reply = app.get("/price/predict").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = &reply.json;
    let newest = pipeline.candles.last().expect("candles");
    let row = offline_row(&champion, &pipeline.candles).await;
    let expected = champion
        .model
        .predict_close(&row.values, row.close)
        .expect("offline forecast");
    assert_eq!(number(&body["predicted_price"]), expected, "{}", reply.text);
    assert_eq!(number(&body["current_price"]), close_of(newest));
    assert_eq!(number(&body["baseline_price"]), close_of(newest));
    assert_eq!(time(&body["based_on"]), newest.open_time);
    assert_eq!(
        time(&body["target_time"]),
        newest.open_time + chrono::Duration::hours(2),
        "the close of the next candle"
    );
    assert!(time(&body["timestamp"]) <= Utc::now());
    assert_eq!(body["horizon"], 1);
    assert_eq!(body["symbol"], "BTCUSDT");
    assert_eq!(body["interval"], "1h");
    let (lower, upper) = (number(&body["lower"]), number(&body["upper"]));
    assert!(lower < expected && expected < upper, "{}", reply.text);

    let used = body["features_used"].as_object().expect("features_used");
    assert_eq!(
        used.keys().cloned().collect::<Vec<_>>(),
        {
            let mut names = champion.model.feature_names.clone();
            names.sort();
            names
        },
        "features by name"
    );
    for (name, value) in champion.model.feature_names.iter().zip(&row.values) {
        assert_eq!(number(&used[name]), *value, "{name}");
    }

    let model = &body["model"];
    assert_eq!(model["name"], "pricecast-BTCUSDT-1h");
    assert_eq!(model["version"], champion.version.version);
    assert_eq!(model["alias"], "champion");
    assert_eq!(model["run_id"], champion.run_id().0.as_str());
    assert_eq!(model["model_type"], champion.model.params.kind.as_str());
    assert_eq!(
        number(&model["mae"]),
        champion.metric("mae").expect("mae metric")
    );
    assert_eq!(
        number(&model["skill"]),
        champion.metric("skill").expect("skill metric")
    );

    let explicit = app
        .get("/price/predict?symbol=btcusdt&interval=1h&horizon=1")
        .await;
    assert_eq!(explicit.status, 200, "{}", explicit.text);
    assert_eq!(explicit.json["predicted_price"], body["predicted_price"]);

    let unknown = app.get("/price/predict?symbol=ETHUSDT").await;
    assert_error(&unknown, 404, &["ETHUSDT"]);
    let unserved = app.get("/price/predict?interval=4h").await;
    assert_error(&unserved, 503, &["BTCUSDT 4h", "PRICECAST_INTERVALS"]);
    let horizon = app.get("/price/predict?horizon=2").await;
    assert_error(&horizon, 400, &["horizon", "1 candle"]);
    let bad_horizon = app.get("/price/predict?horizon=soon").await;
    assert_error(&bad_horizon, 400, &["horizon"]);

    // The bundled history ended long ago: with a freshness limit the forecast is refused.
    let stale = TestApp::start(
        TrainedPipeline::app_state(&pipeline.db, pipeline.served_models())
            .await
            .with_max_stale_candles(Some(1)),
    )
    .await;
    let reply = stale.get("/price/predict").await;
    assert_error(
        &reply,
        503,
        &["PRICECAST_API_MAX_STALE_CANDLES", "2025-04-28T07:00:00"],
    );
}

#[tokio::test]
async fn get_predict_without_a_champion_answers_503_saying_how_to_get_one() {
    let db = TestDb::sqlite().await;
    db.load_bundled("BTCUSDT", 100).await;
    let empty_lake = tempfile::tempdir().expect("lake folder");
    let registry = ModelRegistry::open(
        &RegistryArgs::local(),
        &LakeArgs::for_url(LakeUrl::Local(empty_lake.path().to_path_buf())),
    )
    .await
    .expect("local registry");
    let models = Arc::new(ServedModels::new(
        Arc::new(registry),
        RegistryArgs::local(),
        vec![("BTCUSDT".parse().expect("symbol"), Interval::H1)],
    ));
    let app = TestApp::start(TrainedPipeline::app_state(&db, models).await).await;

    let reply = app.get("/price/predict").await;
    assert_error(
        &reply,
        503,
        &["no champion", "pricecast-BTCUSDT-1h", "pricecast-train"],
    );
    let post = app
        .post_json("/price/predict", &json!({"prices": [1.0, 2.0]}))
        .await;
    assert_error(&post, 503, &["no champion"]);
    let models = app.get("/models").await;
    assert_eq!(models.status, 200, "{}", models.text);
    assert_eq!(models.json["models"][0]["champion"], Value::Null);

    // No registry configured at all.
    let none = TestApp::start(AppState::new(db.read_only_store().await)).await;
    let reply = none.get("/price/predict").await;
    assert_error(&reply, 503, &["no model registry is configured"]);
}

#[tokio::test]
async fn served_features_at_a_past_time_equal_the_training_frame_row() {
    let pipeline = TrainedPipeline::btc_hourly().await;
    let champion = pipeline.champion().await;
    // A database cut at t, on the production backend; the lake's frame saw everything.
    let cut = pipeline.candles.len() - 100;
    let t = pipeline.candles[cut].open_time;
    let db = TestDb::postgres().await;
    db.store
        .upsert_candles(&pipeline.candles[..=cut])
        .await
        .expect("candles up to t");
    let app = TestApp::start(TrainedPipeline::app_state(&db, pipeline.served_models()).await).await;
    let reply = app.get("/price/predict").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(time(&reply.json["based_on"]), t);

    let (_, frame) = features::read_feature_frame(&pipeline.lake, &pipeline.symbol, Interval::H1)
        .await
        .expect("feature frame");
    let rows = features::feature_rows(&frame, &serving_spec(&champion), None).expect("rows");
    let i = rows
        .open_time_ms
        .iter()
        .position(|&ms| ms == t.timestamp_millis())
        .expect("the frame has a row at t");
    let frame_row = rows.row(i);
    let used = &reply.json["features_used"];
    for (name, expected) in champion.model.feature_names.iter().zip(frame_row) {
        assert_close(name, number(&used[name]), *expected);
    }
    assert_eq!(number(&reply.json["current_price"]), rows.close[i]);
    let offline = champion
        .model
        .predict_close(frame_row, rows.close[i])
        .expect("offline forecast");
    assert_close(
        "predicted_price",
        number(&reply.json["predicted_price"]),
        offline,
    );
}

/// `count` closes from `first`, each `step` from the one before.
fn series(first: f64, step: f64, count: usize) -> Vec<f64> {
    (0..count).map(|i| first + step * i as f64).collect()
}

#[tokio::test]
async fn post_predict_computes_what_ifs_and_names_every_bad_input() {
    let pipeline = TrainedPipeline::btc_hourly().await;
    let champion = pipeline.champion().await;
    let app =
        TestApp::start(TrainedPipeline::app_state(&pipeline.db, pipeline.served_models()).await)
            .await;
    let candles_before = pipeline.db.btc_candles(Interval::H1).await;
    let runs_before = pipeline.db.store.job_runs(None, 1000).await.expect("runs");
    let needed = format!("need {}", serving_spec(&champion).history() + 1);

    let mut forecasts = BTreeMap::new();
    for (name, prices) in [
        ("rising", series(90_000.0, 50.0, 60)),
        ("falling", series(93_000.0, -50.0, 60)),
        ("flat", series(90_000.0, 0.0, 60)),
    ] {
        let reply = app
            .post_json("/price/predict", &json!({ "prices": prices }))
            .await;
        assert_eq!(reply.status, 200, "{name}: {}", reply.text);
        let predicted = number(&reply.json["predicted_price"]);
        assert!(predicted.is_finite() && predicted > 0.0, "{name}");
        assert_eq!(
            number(&reply.json["current_price"]),
            *prices.last().expect("prices")
        );
        // What a price series means offline: candles with these closes.
        let candles: Vec<Candle> = pipeline.candles[..prices.len()]
            .iter()
            .zip(&prices)
            .map(|(c, p)| {
                let price = rust_decimal::Decimal::try_from(*p).expect("decimal");
                Candle {
                    open: price,
                    high: price,
                    low: price,
                    close: price,
                    ..c.clone()
                }
            })
            .collect();
        let row = offline_row(&champion, &candles).await;
        let offline = champion
            .model
            .predict_close(&row.values, row.close)
            .expect("offline forecast");
        assert_close(name, predicted, offline);
        forecasts.insert(name, predicted);
    }
    assert_ne!(forecasts["rising"], forecasts["falling"]);
    assert_ne!(forecasts["rising"], forecasts["flat"]);
    assert_ne!(forecasts["falling"], forecasts["flat"]);

    // Exactly the champion's features, with the close they move from.
    let row = offline_row(&champion, &pipeline.candles).await;
    let by_name: serde_json::Map<String, Value> = champion
        .model
        .feature_names
        .iter()
        .cloned()
        .zip(row.values.iter().map(|v| json!(v)))
        .collect();
    let reply = app
        .post_json(
            "/price/predict",
            &json!({"features": by_name, "close": row.close}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let offline = champion
        .model
        .predict_close(&row.values, row.close)
        .expect("offline forecast");
    assert_eq!(number(&reply.json["predicted_price"]), offline);
    assert_eq!(number(&reply.json["current_price"]), row.close);
    assert_eq!(reply.json["model"]["alias"], "champion");

    let first = champion.model.feature_names[0].clone();
    let with = |name: &str, value: Value| {
        let mut features = by_name.clone();
        features.insert(name.to_owned(), value);
        json!({"features": features, "close": row.close})
    };
    let mut missing = by_name.clone();
    missing.remove(&first);
    let mut negative = series(90_000.0, 1.0, 60);
    negative[7] = -3.0;
    let mut text: Vec<Value> = series(90_000.0, 1.0, 60)
        .into_iter()
        .map(Value::from)
        .collect();
    text[3] = json!("90000");
    let bad = [
        (
            "missing feature",
            json!({"features": missing, "close": row.close}),
            vec![first.as_str(), "missing"],
        ),
        (
            "extra feature",
            with("moon_phase", json!(0.5)),
            vec!["features.moon_phase"],
        ),
        (
            "a string",
            with(&first, json!("NaN")),
            vec![first.as_str(), "finite number"],
        ),
        (
            "null",
            with(&first, Value::Null),
            vec![first.as_str(), "finite number"],
        ),
        ("no close", json!({ "features": by_name }), vec!["close"]),
        (
            "negative close",
            json!({"features": by_name, "close": -1.0}),
            vec!["close", "above zero"],
        ),
        (
            "negative price",
            json!({ "prices": negative }),
            vec!["prices[7]", "above zero"],
        ),
        (
            "a price that is not a number",
            json!({ "prices": text }),
            vec!["prices[3]", "finite number"],
        ),
        (
            "too few prices",
            json!({ "prices": series(90_000.0, 1.0, 10) }),
            vec!["prices has 10 values", needed.as_str()],
        ),
        (
            "both",
            json!({"features": by_name, "prices": series(90_000.0, 1.0, 60)}),
            vec!["either features or prices"],
        ),
        ("neither", json!({}), vec!["features", "prices"]),
        (
            "close with prices",
            json!({"prices": series(90_000.0, 1.0, 60), "close": 1.0}),
            vec!["close"],
        ),
        (
            "unknown field",
            json!({"prices": series(90_000.0, 1.0, 60), "horizon": 3}),
            vec!["horizon"],
        ),
        (
            "unknown symbol",
            json!({"symbol": "ETHUSDT", "prices": series(90_000.0, 1.0, 60)}),
            vec!["ETHUSDT"],
        ),
    ];
    for (case, body, words) in bad {
        let reply = app.post_json("/price/predict", &body).await;
        assert!(
            reply.status == 400 || (case == "unknown symbol" && reply.status == 503),
            "{case}: {} {}",
            reply.status,
            reply.text
        );
        assert_error(&reply, reply.status, &words);
    }
    let not_json = app
        .post_raw("/price/predict", "{\"prices\": [1, 2,".to_owned())
        .await;
    assert_error(&not_json, 400, &[]);
    let too_big = app
        .post_raw(
            "/price/predict",
            format!(
                "{{\"prices\": [{}]}}",
                vec!["90000.123456789"; 8_000].join(",")
            ),
        )
        .await;
    assert_error(&too_big, 413, &[]);

    // A computation: nothing was written.
    assert_eq!(
        pipeline.db.btc_candles(Interval::H1).await,
        candles_before,
        "candles unchanged"
    );
    let runs_after = pipeline.db.store.job_runs(None, 1000).await.expect("runs");
    assert_eq!(runs_after.len(), runs_before.len(), "no job run recorded");
}

#[tokio::test]
async fn models_lists_champion_and_challenger_with_their_provenance() {
    let pipeline = TrainedPipeline::btc_hourly().await;
    // A second version: the challenger, champion only when it beats the first.
    pipeline.train(false).await;
    let champion = pipeline.champion().await;
    let app =
        TestApp::start(TrainedPipeline::app_state(&pipeline.db, pipeline.served_models()).await)
            .await;

    let reply = app.get("/models").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        reply.json["registry"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{}",
        reply.text
    );
    assert!(reply.json["last_poll"].is_string(), "{}", reply.text);
    let models = reply.json["models"].as_array().expect("models");
    assert_eq!(models.len(), 1, "{}", reply.text);
    let series = &models[0];
    assert_eq!(series["symbol"], "BTCUSDT");
    assert_eq!(series["interval"], "1h");
    assert_eq!(series["model_name"], "pricecast-BTCUSDT-1h");
    let first = pipeline.candles[0].open_time;
    let last = pipeline.candles.last().expect("candles").open_time;
    for (alias, version) in [("champion", champion.version.version), ("challenger", 2)] {
        let m = &series[alias];
        assert_eq!(m["alias"], alias, "{}", reply.text);
        assert_eq!(m["version"], version, "{alias}");
        assert!(m["run_id"].as_str().is_some_and(|r| !r.is_empty()));
        assert_eq!(m["horizon"], 1);
        assert_eq!(m["features"].as_array().map(Vec::len), Some(12));
        for key in [
            "mae",
            "baseline_mae",
            "skill",
            "residual_q05",
            "residual_q95",
        ] {
            assert!(
                m["metrics"][key].is_number(),
                "{alias} {key}: {}",
                reply.text
            );
        }
        // Trained on the frame's rows: from the first row with full history to the last with
        // a known target.
        let from = time(&m["trained_from"]);
        let to = time(&m["trained_to"]);
        assert!(
            first < from && from < to && to < last,
            "{alias}: {from} .. {to}"
        );
        assert!(
            m["promotion"]["promotion.decision"].is_string(),
            "{alias}: {}",
            reply.text
        );
    }
    let challenger_decision = &series["challenger"]["promotion"]["promotion.decision"];
    if champion.version.version == 2 {
        assert_eq!(challenger_decision, "promoted", "{}", reply.text);
    } else {
        assert_eq!(
            series["champion"]["promotion"]["promotion.decision"],
            "first_champion"
        );
        assert_eq!(challenger_decision, "kept_challenger", "{}", reply.text);
    }
}

#[tokio::test]
async fn chart_svg_draws_closes_and_the_forecast() {
    let pipeline = TrainedPipeline::btc_hourly().await;
    let app =
        TestApp::start(TrainedPipeline::app_state(&pipeline.db, pipeline.served_models()).await)
            .await;
    let reply = app.get("/price/chart.svg?hours=72").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        reply.content_type.starts_with("image/svg+xml"),
        "{}",
        reply.content_type
    );
    let parsed = parse_svg(&reply.text);
    assert_eq!(
        parsed["root"], "{http://www.w3.org/2000/svg}svg",
        "{parsed}"
    );
    let texts: Vec<&str> = parsed["texts"]
        .as_array()
        .expect("texts")
        .iter()
        .filter_map(Value::as_str)
        .map(str::trim)
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("BTCUSDT 1h: forecast") && t.contains("pricecast-BTCUSDT-1h v1")),
        "title in {texts:?}"
    );
    let lines: Vec<usize> = parsed["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter_map(Value::as_u64)
        .map(|n| n as usize)
        .collect();
    // 72 hours back from the newest candle, both ends included.
    assert!(lines.contains(&73), "the closes' line in {lines:?}");
    assert!(lines.contains(&2), "the forecast's line in {lines:?}");

    for bad in ["hours=0", "hours=abc", "hours=100000"] {
        let reply = app.get(&format!("/price/chart.svg?{bad}")).await;
        assert_error(&reply, 400, &["hours"]);
    }
}

/// The root tag, every text and the point count of every polyline or path of an SVG document,
/// read by Python's XML parser.
fn parse_svg(svg: &str) -> Value {
    let python = std::env::var("PRICECAST_TEST_PYTHON").expect(
        "PRICECAST_TEST_PYTHON is not set: run tests/run.sh, which installs the Python tools",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chart.svg");
    std::fs::write(&path, svg).expect("write the chart");
    let script = r#"
import json, re, sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
texts = ["".join(e.itertext()) for e in root.iter(ns + "text")]
lines = [len(e.get("points", "").split()) for e in root.iter(ns + "polyline")]
lines += [len(re.findall(r"[ML]", e.get("d", ""))) for e in root.iter(ns + "path")]
print(json.dumps({"root": root.tag, "texts": texts, "lines": lines}))
"#;
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(&path)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "the chart is not XML: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python prints JSON")
}

#[tokio::test]
async fn champion_swap_under_load_fails_no_request() {
    let pipeline = TrainedPipeline::btc_hourly().await;
    let models = pipeline.served_models();
    let app = Arc::new(
        TestApp::start(TrainedPipeline::app_state(&pipeline.db, models.clone()).await).await,
    );
    let poll = CancellationToken::new();
    let polling = models
        .clone()
        .spawn_polling(Duration::from_millis(100), poll.clone());

    // Each answer: (status, version, whether a v2 answer had been seen before it was sent).
    let stop = Arc::new(AtomicBool::new(false));
    let seen_new = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (app, stop, seen_new) = (app.clone(), stop.clone(), seen_new.clone());
        clients.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let after_swap = seen_new.load(Ordering::SeqCst);
                let reply = app.get("/price/predict").await;
                let version = reply.json["model"]["version"].as_u64();
                if version == Some(2) {
                    seen_new.store(true, Ordering::SeqCst);
                }
                answers.push((reply.status, version, after_swap));
            }
            answers
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let summary = pipeline.train(true).await;
    let retrained = summary
        .items
        .first()
        .and_then(|item| item.work.as_ref())
        .and_then(Work::as_train)
        .expect("a trained series");
    assert_eq!(retrained.version, 2, "{}", summary.detail());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !seen_new.load(Ordering::SeqCst) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new champion was never served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let mut answers = Vec::new();
    for client in clients {
        answers.extend(client.await.expect("client task"));
    }
    poll.cancel();
    polling.await.expect("polling stops");

    let failed: Vec<_> = answers
        .iter()
        .filter(|(status, ..)| *status != 200)
        .collect();
    assert!(failed.is_empty(), "failed during the swap: {failed:?}");
    assert!(
        answers.iter().any(|(_, v, _)| *v == Some(1)),
        "v1 served before"
    );
    let stale: Vec<_> = answers
        .iter()
        .filter(|(_, v, after)| *after && *v != Some(2))
        .collect();
    assert!(stale.is_empty(), "old version after the swap: {stale:?}");
    assert!(answers.iter().filter(|(_, _, after)| *after).count() > 0);
    let listed = app.get("/models").await;
    assert_eq!(listed.json["models"][0]["champion"]["version"], 2);
}

#[tokio::test]
async fn unreachable_mlflow_registry_degrades_health_and_predictions_name_it() {
    let db = TestDb::sqlite().await;
    db.load_bundled("BTCUSDT", 100).await;
    let args = RegistryArgs {
        mlflow_http_request_max_retries: 0,
        mlflow_http_request_timeout: 2,
        ..RegistryArgs::mlflow("http://127.0.0.1:1".parse().expect("URL"))
    };
    let registry = ModelRegistry::open(&args, &LakeArgs::for_url(LakeUrl::Memory))
        .await
        .expect("an MLflow client needs no connection to be built");
    let models = Arc::new(ServedModels::new(
        Arc::new(registry),
        args,
        vec![("BTCUSDT".parse().expect("symbol"), Interval::H1)],
    ));
    let app = TestApp::start(TrainedPipeline::app_state(&db, models).await).await;

    let health = app.get("/health").await;
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(health.json["status"], "degraded", "{}", health.text);
    let registry = &health.json["dependencies"]["registry"];
    assert_eq!(registry["status"], "down", "{}", health.text);
    assert!(
        registry["location"]
            .as_str()
            .is_some_and(|l| l.contains("127.0.0.1:1")),
        "{}",
        health.text
    );
    assert!(
        registry["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{}",
        health.text
    );
    assert_eq!(registry["champions_loaded"], 0);
    assert_eq!(health.json["dependencies"]["database"]["status"], "up");

    let reply = app.get("/price/predict").await;
    assert_error(&reply, 503, &["model registry cannot be read"]);
}

#[tokio::test]
async fn a_registry_failing_after_load_keeps_the_champion_served() {
    let pipeline = TrainedPipeline::btc_hourly().await;
    let models = pipeline.served_models();
    let app = TestApp::start(TrainedPipeline::app_state(&pipeline.db, models.clone()).await).await;
    let health = app.get("/health").await;
    assert_eq!(health.json["status"], "healthy", "{}", health.text);
    assert_eq!(health.json["dependencies"]["registry"]["status"], "up");

    // The registry's folder becomes unreadable: a file where the folder was.
    let folder = pipeline.lake_dir.join("registry");
    let moved = pipeline.lake_dir.join("registry.moved");
    std::fs::rename(&folder, &moved).expect("move the registry away");
    std::fs::write(&folder, b"not a folder").expect("block the registry");
    assert_eq!(models.refresh().await, 0);

    let health = app.get("/health").await;
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(health.json["status"], "degraded", "{}", health.text);
    let registry = &health.json["dependencies"]["registry"];
    assert_eq!(registry["status"], "down", "{}", health.text);
    assert!(registry["error"].is_string(), "{}", health.text);
    assert_eq!(registry["champions_loaded"], 1);
    assert!(registry["last_success"].is_string());
    let reply = app.get("/price/predict").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["model"]["version"], 1);

    // Back: the next poll reports it up again.
    std::fs::remove_file(&folder).expect("unblock");
    std::fs::rename(&moved, &folder).expect("move the registry back");
    models.refresh().await;
    let health = app.get("/health").await;
    assert_eq!(health.json["status"], "healthy", "{}", health.text);
}

#[tokio::test]
async fn a_champion_that_is_also_the_challenger_is_loaded_once() {
    let pipeline = TrainedPipeline::btc_hourly().await;
    let models = pipeline.served_models();
    models.refresh().await;
    let (symbol, interval) = models.series()[0].clone();
    let champion = models.champion(&symbol, interval).expect("a champion");
    let challenger = models.challenger(&symbol, interval).expect("a challenger");
    // The first version takes both aliases.
    assert_eq!(champion.version.version, challenger.version.version);
    assert_eq!(
        (champion.alias.as_str(), challenger.alias.as_str()),
        ("champion", "challenger")
    );
    assert!(
        Arc::ptr_eq(&champion.model, &challenger.model),
        "the same version was read and decoded twice"
    );
}
