//! The forecast ledger against real PostgreSQL and SQLite: a champion the real pipeline trained
//! on all but the newest day of bundled BTCUSDT hourly candles, those candles then collected one
//! by one with `/price/predict` asked after each, and `pricecast-forecast`'s run compared with
//! those answers row for row; then `/forecasts` and `/forecasts/scorecard` compared with numbers
//! computed here from the table itself.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use pricecast_jobs::forecast::{self, ForecastContext, ForecastPlan};
use pricecast_shared::domain::Interval;
use pricecast_shared::registry::RegistryArgs;
use pricecast_shared::report::{ForecastWork, JobReport};
use pricecast_shared::series::SeriesScope;
use pricecast_shared::store::{ForecastQuery, ForecastRecord, Store};
use pricecast_tests::api::{Reply, TestApp, time};
use pricecast_tests::db::TestDb;
use pricecast_tests::pipeline::TrainedPipeline;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Candles kept out of training and collected one by one: a day of hourly candles.
const HELD_BACK: usize = 24;

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("expected a number, got {value}"))
}

/// Equal within `1e-9` relative: the ledger computes a batch's features in one frame, the API
/// from the newest candles alone, and rolling sums over different spans can differ in the last
/// bits.
fn assert_close(name: &str, got: f64, expected: f64) {
    let tolerance = 1e-9 * got.abs().max(expected.abs()).max(1e-12);
    assert!(
        (got - expected).abs() <= tolerance,
        "{name}: got {got}, expected {expected}"
    );
}

fn assert_error(reply: &Reply, status: u16, words: &[&str]) {
    assert_eq!(reply.status, status, "{}", reply.text);
    let detail = reply.json["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("an error body with a detail, got {}", reply.text));
    for word in words {
        assert!(detail.contains(word), "{word:?} not in {detail:?}");
    }
}

fn forecast_work(report: &JobReport) -> ForecastWork {
    report
        .work("BTCUSDT", Interval::H1)
        .and_then(|work| work.as_forecast())
        .cloned()
        .unwrap_or_else(|| panic!("a forecast item for BTCUSDT 1h in {report:?}"))
}

/// A forecast row as the table holds it, read with SQL of the test's own.
#[derive(Debug)]
struct TableRow {
    based_on: DateTime<Utc>,
    target_time: DateTime<Utc>,
    predicted: f64,
    lower: Option<f64>,
    upper: Option<f64>,
    baseline: f64,
    model_version: i64,
}

const TABLE_SQL: &str = "SELECT based_on, target_time, predicted, lower, upper, baseline, \
     model_version FROM forecasts WHERE symbol = 'BTCUSDT' AND interval = '1h' AND horizon = 1 \
     ORDER BY based_on";

/// A row of [`TABLE_SQL`] with times as the backend stores them (`T`).
type RawRow<T> = (T, T, f64, Option<f64>, Option<f64>, f64, i64);

fn table_row<T>(raw: RawRow<T>, time: impl Fn(T) -> DateTime<Utc>) -> TableRow {
    TableRow {
        based_on: time(raw.0),
        target_time: time(raw.1),
        predicted: raw.2,
        lower: raw.3,
        upper: raw.4,
        baseline: raw.5,
        model_version: raw.6,
    }
}

async fn table_rows(db: &TestDb) -> Vec<TableRow> {
    match &db.store {
        Store::Postgres(pg) => {
            let rows: Vec<RawRow<DateTime<Utc>>> = sqlx::query_as(TABLE_SQL)
                .fetch_all(pg.pool())
                .await
                .expect("read forecasts");
            rows.into_iter().map(|r| table_row(r, |t| t)).collect()
        }
        Store::Sqlite(lite) => {
            let rows: Vec<RawRow<i64>> = sqlx::query_as(TABLE_SQL)
                .fetch_all(lite.pool())
                .await
                .expect("read forecasts");
            let ms = |t: i64| DateTime::from_timestamp_millis(t).expect("time");
            rows.into_iter().map(|r| table_row(r, ms)).collect()
        }
    }
}

/// The scorecard's overall numbers computed here, from the table's rows and the stored closes.
struct Expected {
    n: usize,
    mae: f64,
    baseline_mae: f64,
    coverage: f64,
    width: f64,
    pinball: f64,
    dm_stat: f64,
    dm_p_value: f64,
}

fn expected_score(rows: &[TableRow], closes: &BTreeMap<DateTime<Utc>, f64>) -> Expected {
    let scored: Vec<(&TableRow, f64)> = rows
        .iter()
        .filter_map(|r| {
            let target_open = r.target_time - chrono::Duration::hours(1);
            closes.get(&target_open).map(|&actual| (r, actual))
        })
        .collect();
    let n = scored.len();
    let count = n as f64;
    let mae = scored
        .iter()
        .map(|(r, a)| (r.predicted - a).abs())
        .sum::<f64>()
        / count;
    let baseline_mae = scored
        .iter()
        .map(|(r, a)| (r.baseline - a).abs())
        .sum::<f64>()
        / count;
    let mut inside = 0usize;
    let (mut width, mut pinball) = (0.0, 0.0);
    for (r, a) in &scored {
        let (lower, upper) = (r.lower.expect("lower"), r.upper.expect("upper"));
        if lower <= *a && *a <= upper {
            inside += 1;
        }
        width += upper - lower;
        let loss = |tau: f64, q: f64| {
            if *a >= q {
                tau * (a - q)
            } else {
                (1.0 - tau) * (q - a)
            }
        };
        pinball += (loss(0.05, lower) + loss(0.95, upper)) / 2.0;
    }
    // Diebold–Mariano with the Newey–West variance (Bartlett weights), lag ⌊4 (n/100)^(2/9)⌋.
    let d: Vec<f64> = scored
        .iter()
        .map(|(r, a)| (r.predicted - a).abs() - (r.baseline - a).abs())
        .collect();
    let lag = (4.0 * (count / 100.0).powf(2.0 / 9.0)).floor() as usize;
    let d_mean = d.iter().sum::<f64>() / count;
    let gamma = |k: usize| -> f64 {
        (k..n)
            .map(|t| (d[t] - d_mean) * (d[t - k] - d_mean))
            .sum::<f64>()
            / count
    };
    let variance = gamma(0)
        + (1..=lag)
            .map(|k| 2.0 * (1.0 - k as f64 / (lag as f64 + 1.0)) * gamma(k))
            .sum::<f64>();
    let dm_stat = d_mean / (variance / count).sqrt();
    Expected {
        n,
        mae,
        baseline_mae,
        coverage: inside as f64 / count,
        width: width / count,
        pinball: pinball / count,
        dm_stat,
        dm_p_value: erfc(dm_stat.abs() / std::f64::consts::SQRT_2),
    }
}

/// The complementary error function (W. J. Cody's rational approximation as in Numerical
/// Recipes' `erfcc`, relative error below 1.2e-7): the p-value's normal tail, computed here
/// without the service's statistics library.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_holds_what_predict_answered_out_of_sample_and_scores_it() {
    for db in TestDb::both().await {
        let backend = db.store.backend();
        let (pipeline, held_back) = TrainedPipeline::btc_hourly_on(db, HELD_BACK).await;
        let champion = pipeline.champion().await;
        let trained_to = DateTime::from_timestamp_millis(champion.model.trained_on.last_open_ms)
            .expect("trained-to time");
        let app = TestApp::start(
            TrainedPipeline::app_state(&pipeline.db, pipeline.served_models()).await,
        )
        .await;
        let ctx = ForecastContext {
            store: pipeline.db.store.clone(),
            registry: pipeline.registry.clone(),
            cancel: CancellationToken::new(),
        };
        let plan = ForecastPlan {
            symbols: vec![pipeline.symbol.clone()],
            intervals: vec![pipeline.interval],
            registry: RegistryArgs::local(),
            scope: SeriesScope::default(),
        };

        // Nothing scored yet: a 200 with n = 0.
        let empty = app.get("/forecasts/scorecard").await;
        assert_eq!(empty.status, 200, "{backend}: {}", empty.text);
        assert_eq!(empty.json["overall"]["n"], 0, "{backend}: {}", empty.text);
        assert_eq!(empty.json["versions"], Value::Array(Vec::new()));

        // What /price/predict answers now, and after each held-back candle is collected.
        let mut answers = vec![app.get("/price/predict").await.json];
        let first = forecast_work(&forecast::run(&ctx, &plan).await.expect("first run"));
        let in_sample = pipeline
            .candles
            .iter()
            .filter(|c| c.open_time <= trained_to)
            .count() as u64;
        assert_eq!(
            first.skipped_in_sample, in_sample,
            "{backend}: every candle the champion was trained on is skipped"
        );
        assert_eq!(
            first.written, 1,
            "{backend}: only the newest candle, which has no target yet, was not trained on"
        );
        for candle in &held_back {
            pipeline
                .db
                .store
                .upsert_candles(std::slice::from_ref(candle))
                .await
                .expect("collect a candle");
            let reply = app.get("/price/predict").await;
            assert_eq!(reply.status, 200, "{backend}: {}", reply.text);
            answers.push(reply.json);
        }
        let second = forecast_work(&forecast::run(&ctx, &plan).await.expect("second run"));
        assert_eq!(second.written, HELD_BACK as u64, "{backend}");
        assert_eq!(second.skipped_in_sample, 0, "{backend}");
        let newest = held_back.last().expect("held back").open_time;
        assert_eq!(second.watermark, Some(newest), "{backend}");

        // Re-running writes nothing, and the table itself refuses duplicates.
        let third = forecast_work(&forecast::run(&ctx, &plan).await.expect("third run"));
        assert_eq!((third.written, third.already_written), (0, 0), "{backend}");
        let stored = pipeline
            .db
            .store
            .forecasts(&ForecastQuery {
                symbol: pipeline.symbol.clone(),
                interval: pipeline.interval,
                horizon: 1,
                from: None,
                to: None,
                limit: 1000,
            })
            .await
            .expect("ledger");
        let records: Vec<ForecastRecord> = stored.iter().map(|f| f.forecast.clone()).collect();
        assert_eq!(
            pipeline
                .db
                .store
                .insert_forecasts(&records)
                .await
                .expect("insert again"),
            0,
            "{backend}: the primary key keeps one forecast per candle and version"
        );

        // Row for row what /price/predict answered, and none in sample.
        let rows = table_rows(&pipeline.db).await;
        assert_eq!(rows.len(), answers.len(), "{backend}");
        for (row, answer) in rows.iter().zip(&answers) {
            assert!(
                row.based_on > trained_to,
                "{backend}: in-sample row {row:?}"
            );
            assert_eq!(row.based_on, time(&answer["based_on"]), "{backend}");
            assert_eq!(row.target_time, time(&answer["target_time"]), "{backend}");
            assert_close(
                "predicted",
                row.predicted,
                number(&answer["predicted_price"]),
            );
            assert_close("lower", row.lower.expect("lower"), number(&answer["lower"]));
            assert_close("upper", row.upper.expect("upper"), number(&answer["upper"]));
            assert_eq!(row.baseline, number(&answer["baseline_price"]), "{backend}");
            assert_eq!(
                row.model_version,
                answer["model"]["version"].as_i64().expect("version"),
                "{backend}"
            );
        }

        // /forecasts: newest first, the actual close and error once the target is known.
        let page = app.get("/forecasts?limit=1000").await;
        assert_eq!(page.status, 200, "{backend}: {}", page.text);
        let listed = page.json["forecasts"].as_array().expect("forecasts");
        assert_eq!(listed.len(), rows.len(), "{backend}");
        assert_eq!(time(&listed[0]["based_on"]), newest);
        assert_eq!(
            listed[0]["actual"],
            Value::Null,
            "the newest target is not known yet"
        );
        let closes: BTreeMap<DateTime<Utc>, f64> = pipeline
            .db
            .btc_candles(Interval::H1)
            .await
            .iter()
            .map(|c| (c.open_time, c.close.to_string().parse().expect("close")))
            .collect();
        for entry in &listed[1..] {
            let target_open = time(&entry["target_time"]) - chrono::Duration::hours(1);
            let actual = closes[&target_open];
            assert_eq!(number(&entry["actual"]), actual, "{backend}");
            assert_close(
                "error",
                number(&entry["error"]),
                number(&entry["predicted"]) - actual,
            );
            let inside = number(&entry["lower"]) <= actual && actual <= number(&entry["upper"]);
            assert_eq!(entry["inside_interval"], inside, "{backend}");
        }
        let window = app
            .get(&format!(
                "/forecasts?start={}&end={}",
                held_back[2].open_time.to_rfc3339().replace('+', "%2B"),
                held_back[5].open_time.to_rfc3339().replace('+', "%2B")
            ))
            .await;
        assert_eq!(window.status, 200, "{backend}: {}", window.text);
        assert_eq!(window.json["forecasts"].as_array().map(Vec::len), Some(4));

        // The scorecard equals what the table's rows give.
        let expected = expected_score(&rows, &closes);
        assert_eq!(
            expected.n, HELD_BACK,
            "{backend}: every target but the newest is known"
        );
        let card = app.get("/forecasts/scorecard?days=3650").await;
        assert_eq!(card.status, 200, "{backend}: {}", card.text);
        let overall = &card.json["overall"];
        assert_eq!(overall["n"], expected.n, "{backend}: {}", card.text);
        assert_close("mae", number(&overall["mae"]), expected.mae);
        assert_close(
            "baseline_mae",
            number(&overall["baseline_mae"]),
            expected.baseline_mae,
        );
        assert_close(
            "skill",
            number(&overall["skill"]),
            1.0 - expected.mae / expected.baseline_mae,
        );
        assert_close("coverage", number(&overall["coverage"]), expected.coverage);
        assert_eq!(number(&overall["nominal_coverage"]), 0.9);
        assert_close(
            "mean_interval_width",
            number(&overall["mean_interval_width"]),
            expected.width,
        );
        assert_close(
            "pinball_loss",
            number(&overall["pinball_loss"]),
            expected.pinball,
        );
        assert_close("dm_stat", number(&overall["dm_stat"]), expected.dm_stat);
        let p = number(&overall["dm_p_value"]);
        assert!(
            (p - expected.dm_p_value).abs() < 1e-6,
            "{backend}: dm_p_value {p}, computed {}",
            expected.dm_p_value
        );
        let versions = card.json["versions"].as_array().expect("versions");
        assert_eq!(versions.len(), 1, "{backend}: {}", card.text);
        assert_eq!(versions[0]["model_version"], champion.version.version);
        assert_eq!(versions[0]["score"]["n"], expected.n);

        // /metrics shows the live score.
        let metrics = app.get("/metrics").await;
        assert!(
            metrics.text.contains(&format!(
                "pricecast_forecasts_scored{{horizon=\"1\",interval=\"1h\",symbol=\"BTCUSDT\"}} {}",
                expected.n
            )),
            "{backend}: {}",
            metrics.text
        );
        assert!(
            metrics.text.contains(
                "pricecast_forecast_skill{horizon=\"1\",interval=\"1h\",symbol=\"BTCUSDT\"}"
            ),
            "{backend}"
        );
        assert!(
            metrics.text.contains(
                "pricecast_newest_candle_age_seconds{interval=\"1h\",symbol=\"BTCUSDT\"}"
            ),
            "{backend}"
        );

        // A day's window holds the day's targets: every one of them here.
        let day = app.get("/forecasts/scorecard?days=1").await;
        assert_eq!(day.status, 200, "{backend}: {}", day.text);
        assert_eq!(
            day.json["overall"]["n"], expected.n,
            "{backend}: {}",
            day.text
        );
    }
}

#[tokio::test]
async fn the_ledger_endpoints_answer_only_the_horizons_served() {
    let (pipeline, _) = TrainedPipeline::btc_hourly_on(TestDb::sqlite().await, 0).await;
    pipeline.db.load_bundled("ETHUSDT", 100).await;
    let app =
        TestApp::start(TrainedPipeline::app_state(&pipeline.db, pipeline.served_models()).await)
            .await;
    for path in ["/forecasts", "/forecasts/scorecard"] {
        let unknown = app.get(&format!("{path}?horizon=4")).await;
        assert_error(&unknown, 400, &["horizon=4", "horizons served: 1"]);
        assert_error(
            &app.get(&format!("{path}?horizon=x")).await,
            400,
            &["horizon"],
        );
        let no_champion = app.get(&format!("{path}?interval=4h")).await;
        assert_error(&no_champion, 503, &["BTCUSDT 4h"]);
        let other = app.get(&format!("{path}?symbol=ETHUSDT&interval=1h")).await;
        assert_error(&other, 503, &["ETHUSDT 1h"]);
    }
    assert_error(&app.get("/forecasts?limit=0").await, 400, &["limit"]);
    assert_error(
        &app.get("/forecasts?start=2025-04-28&end=2025-04-01").await,
        400,
        &["start", "end"],
    );
    assert_error(
        &app.get("/forecasts/scorecard?days=0").await,
        400,
        &["days"],
    );
    let empty = app.get("/forecasts").await;
    assert_eq!(empty.status, 200, "{}", empty.text);
    assert_eq!(empty.json["forecasts"], Value::Array(Vec::new()));
    assert_eq!(empty.json["horizon"], 1);
}

/// Runs the `pricecast-forecast` binary as a CronJob does, with `env` only.
fn run_binary(env: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(crate::binaries::binary("pricecast-forecast"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run pricecast-forecast")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_records_its_runs_and_exits_2_on_bad_configuration() {
    let (pipeline, held_back) = TrainedPipeline::btc_hourly_on(TestDb::postgres().await, 3).await;
    pipeline
        .db
        .store
        .upsert_candles(&held_back)
        .await
        .expect("collect the held-back candles");
    let lake_url = format!("file://{}", pipeline.lake_dir.display());
    let env = [
        ("DATABASE_URL", pipeline.db.url.as_str()),
        ("LAKE_URL", lake_url.as_str()),
        ("PRICECAST_SYMBOLS", "BTCUSDT,ETHUSDT"),
        ("PRICECAST_INTERVALS", "1h"),
    ];
    for expected_written in [4, 0] {
        let output = run_binary(&env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        let runs = pipeline
            .db
            .store
            .job_runs(Some("forecast"), 1)
            .await
            .expect("runs");
        assert_eq!(
            runs[0].status,
            pricecast_shared::store::JobStatus::Succeeded
        );
        assert_eq!(runs[0].rows, expected_written, "{:?}", runs[0].detail);
        let report: JobReport =
            serde_json::from_value(runs[0].report.clone().expect("a report")).expect("report");
        assert_eq!(forecast_work(&report).written, expected_written as u64);
        let eth = report
            .work("ETHUSDT", Interval::H1)
            .and_then(|w| w.as_forecast())
            .expect("an ETHUSDT item");
        assert_eq!(eth.model, None, "no champion: reported, nothing written");
    }
    let bad = run_binary(&[
        ("DATABASE_URL", pipeline.db.url.as_str()),
        ("PRICECAST_INTERVALS", "7m"),
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("PRICECAST_INTERVALS"));
}
