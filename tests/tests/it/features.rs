//! Features job tests: real candles exported by the export job to a real S3 server (moto,
//! credentials checked), turned into feature files by the features job, read back and checked
//! by pyarrow, polars and a plain-Python recomputation from the candle files.

use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};
use pricecast_binance::replay::bundled_candles;
use pricecast_jobs::export::{self, ExportContext, ExportPlan, ExportRange};
use pricecast_jobs::features::{self, FeaturesContext, FeaturesPlan};
use pricecast_shared::domain::{Candle, Interval, Symbol};
use pricecast_shared::features::{
    FEATURE_SET_VERSION, FeatureSpec, feature_rows, read_feature_frame,
};
use pricecast_shared::lake::Lake;
use pricecast_shared::report::{JobReport, Work};
use pricecast_shared::series::SeriesScope;
use pricecast_shared::store::{JobStatus, Store};
use pricecast_tests::db::TestDb;
use pricecast_tests::lake::{TestS3, etags};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::binaries::binary;

fn btc() -> Symbol {
    "BTCUSDT".parse().expect("symbol")
}

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .expect("time")
}

/// Real BTCUSDT 1h candles opening in `[from, to)`.
fn bundled(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Candle> {
    bundled_candles(&btc())
        .expect("bundled")
        .into_iter()
        .filter(|c| c.open_time >= from && c.open_time < to)
        .collect()
}

async fn export(store: &Store, lake: &Lake) {
    let plan = ExportPlan {
        symbols: vec![btc()],
        intervals: vec![Interval::H1],
        range: ExportRange::Changed,
        settle: chrono::Duration::zero(),
        scope: SeriesScope::default(),
    };
    let ctx = ExportContext {
        store: store.clone(),
        lake: lake.clone(),
        cancel: CancellationToken::new(),
    };
    export::run(&ctx, &plan).await.expect("export");
}

fn plan() -> FeaturesPlan {
    FeaturesPlan {
        symbols: vec![btc()],
        intervals: vec![Interval::H1],
        spec: FeatureSpec::all(vec![1]),
        full: false,
        scope: SeriesScope::default(),
    }
}

fn context(lake: &Lake) -> FeaturesContext {
    FeaturesContext {
        lake: lake.clone(),
        cancel: CancellationToken::new(),
    }
}

/// Runs `tests/python/read_features.py` against the test prefix.
fn read_features(s3: &TestS3) -> Value {
    let python = std::env::var("PRICECAST_TEST_PYTHON")
        .expect("PRICECAST_TEST_PYTHON is not set: run tests/run.sh");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/read_features.py");
    let output = std::process::Command::new(&python)
        .arg(&script)
        .args([&s3.endpoint, &s3.bucket, &s3.prefix])
        .env("AWS_ACCESS_KEY_ID", &s3.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &s3.secret_access_key)
        .output()
        .expect("run read_features.py");
    assert!(
        output.status.success(),
        "read_features.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("read_features.py prints JSON")
}

fn path(date: &str) -> String {
    format!("features/symbol=BTCUSDT/interval=1h/date={date}/part-0.parquet")
}

#[tokio::test]
async fn features_from_exported_candles_are_exact_gap_aware_and_incremental() {
    let db = TestDb::postgres().await;
    // 2023-03-20 .. 2023-03-27: eight days around the real gap (no 13:00 candle on the 24th).
    let candles = bundled(at(2023, 3, 20, 0), at(2023, 3, 28, 0));
    assert_eq!(candles.len(), 8 * 24 - 1);
    db.store.upsert_candles(&candles).await.expect("load");
    let s3 = TestS3::new();
    let lake = Lake::open(&s3.args()).await.expect("open the S3 lake");
    export(&db.store, &lake).await;

    let summary = features::run(&context(&lake), &plan())
        .await
        .expect("features");
    let read = read_features(&s3);
    let mismatches = read["mismatches"].as_array().expect("mismatches");
    assert!(mismatches.is_empty(), "{mismatches:?}");
    assert!(read["checked"].as_u64().expect("checked") > 500);
    let files = read["files"].as_object().expect("files");
    assert_eq!(
        files.len(),
        8,
        "one file per candle day: {:?}",
        files.keys()
    );
    let total: u64 = files
        .values()
        .map(|f| f["rows"].as_u64().expect("rows"))
        .sum();
    assert_eq!(
        total, read["expected_rows"],
        "rows with 49 candles of history"
    );
    assert_eq!(summary.rows(), total as i64, "{}", summary.detail());

    let spec = FeatureSpec::all(vec![1]);
    let mut columns = vec!["open_time".to_owned(), "close".to_owned()];
    columns.extend(spec.features.iter().cloned());
    columns.push("price_t+1".to_owned());
    for (name, file) in files {
        assert_eq!(file["columns"], serde_json::json!(columns), "{name}");
        assert_eq!(file["rows"], file["polars_rows"], "{name}");
        assert_eq!(file["schema"]["open_time"], "timestamp[ms, tz=UTC]");
        assert_eq!(file["schema"]["rsi_14"], "double");
    }
    // The first 49 hours lack history: the 20th and 21st are empty, the 22nd starts at 01:00.
    assert_eq!(files[&path("2023-03-20")]["rows"], 0);
    assert_eq!(files[&path("2023-03-21")]["rows"], 0);
    assert_eq!(files[&path("2023-03-22")]["rows"], 23);
    assert_eq!(files[&path("2023-03-22")]["compression"], "ZSTD");

    // The gap: 12:00's target would be 13:00 (missing), so it is null but the row is kept;
    // from 14:00 the lags cross the gap and rows are dropped until 49 candles follow it.
    let row = |date: &str, t: DateTime<Utc>| {
        files[&path(date)]["rows_by_time"]
            .get(t.timestamp_millis().to_string())
            .cloned()
    };
    let noon = row("2023-03-24", at(2023, 3, 24, 12)).expect("12:00 row");
    assert_eq!(noon["price_t+1"], Value::Null);
    assert!(noon["volume_z_20"].is_number(), "12:00 has zero volume");
    assert!(row("2023-03-24", at(2023, 3, 24, 11)).expect("11:00")["price_t+1"].is_number());
    for hours in 0..49 {
        let t = at(2023, 3, 24, 14) + chrono::Duration::hours(hours);
        let date = t.format("%Y-%m-%d").to_string();
        assert!(
            row(&date, t).is_none(),
            "{t} is within 49 candles after the gap"
        );
    }
    let first_after = at(2023, 3, 24, 14) + chrono::Duration::hours(49);
    assert!(row("2023-03-26", first_after).is_some());

    // The manifest: definition, days with rows and the candle files each was built from.
    let manifest = &read["manifests"]["features/symbol=BTCUSDT/interval=1h/_manifest.json"];
    assert_eq!(manifest["definition_version"], FEATURE_SET_VERSION);
    assert_eq!(manifest["feature_set_hash"], spec.hash());
    assert_eq!(manifest["features"], serde_json::json!(spec.features));
    assert_eq!(manifest["horizons"], serde_json::json!([1]));
    assert_eq!(manifest["targets"], serde_json::json!(["price_t+1"]));
    assert_eq!(manifest["history"], 49);
    assert_eq!(manifest["rows"], total);
    let partitions = manifest["partitions"].as_array().expect("partitions");
    assert_eq!(partitions.len(), 8);
    for partition in partitions {
        let file = &files[partition["path"].as_str().expect("path")];
        assert_eq!(partition["rows"], file["rows"]);
        assert_eq!(partition["feature_set_hash"], spec.hash());
    }
    // The 25th reads the 22nd to the 26th.
    let sources: Vec<&str> = partitions[5]["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .map(|s| s["date"].as_str().expect("date"))
        .collect();
    assert_eq!(
        sources,
        [
            "2023-03-22",
            "2023-03-23",
            "2023-03-24",
            "2023-03-25",
            "2023-03-26"
        ]
    );

    // Training reads the same frame back.
    let (read_manifest, frame) = read_feature_frame(&lake, &btc(), Interval::H1)
        .await
        .expect("feature frame");
    assert_eq!(read_manifest.rows, total);
    let rows = feature_rows(&frame, &read_manifest.spec(), Some(1)).expect("rows");
    assert_eq!(rows.len() as u64, total);
    assert_eq!(rows.width(), 24);
    assert_eq!(rows.target.iter().filter(|t| t.is_none()).count(), 2);

    // Nothing new: nothing is written.
    let before = etags(&lake, "features").await;
    let again = features::run(&context(&lake), &plan())
        .await
        .expect("re-run");
    assert_eq!(again.rows(), 0, "{}", again.detail());
    assert_eq!(etags(&lake, "features").await, before);

    // A new candle on the 28th: that day is built, and the 27th gets its last target.
    let next = bundled(at(2023, 3, 28, 0), at(2023, 3, 28, 1));
    db.store.upsert_candles(&next).await.expect("new candle");
    export(&db.store, &lake).await;
    let incremental = features::run(&context(&lake), &plan())
        .await
        .expect("incremental");
    assert_eq!(
        feature_partitions(&incremental),
        2,
        "{}",
        incremental.detail()
    );
    let after = etags(&lake, "features").await;
    for (object, tag) in before.iter().filter(|(p, _)| p.ends_with(".parquet")) {
        let rewritten = object.contains("date=2023-03-27");
        assert_eq!(after.get(object) != Some(tag), rewritten, "{object}");
    }
    assert!(after.contains_key(&path("2023-03-28")));
    let read = read_features(&s3);
    assert!(read["mismatches"].as_array().expect("m").is_empty());
    let last = at(2023, 3, 27, 23).timestamp_millis().to_string();
    assert!(read["files"][path("2023-03-27")]["rows_by_time"][&last]["price_t+1"].is_number());

    // A new definition (another horizon) rebuilds every day.
    let mut two = plan();
    two.spec = FeatureSpec::all(vec![1, 2]);
    let rebuilt = features::run(&context(&lake), &two).await.expect("rebuild");
    assert_eq!(feature_partitions(&rebuilt), 9, "{}", rebuilt.detail());
}

#[tokio::test]
async fn the_binary_needs_exported_candles_and_builds_features_in_a_folder() {
    let db = TestDb::sqlite().await;
    db.load_bundled("BTCUSDT", 72).await;
    let folder = tempfile::tempdir().expect("temp dir");
    let lake_url = format!("file://{}", folder.path().display());
    let run = |name: &str, args: &[&str]| {
        let output = std::process::Command::new(binary(name))
            .args(["--symbols", "BTCUSDT", "--intervals", "1h"])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &db.url)
            .env("LAKE_URL", &lake_url)
            .output()
            .expect("run the binary");
        (
            output.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };

    let (code, text) = run("pricecast-features", &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("no candles for BTCUSDT 1h") && text.contains("run pricecast-export"),
        "{text}"
    );
    let runs = db
        .store
        .job_runs(Some(features::JOB), 1)
        .await
        .expect("runs");
    assert_eq!(runs[0].status, JobStatus::Failed);

    let (code, text) = run("pricecast-features", &["--horizons", "0"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("PRICECAST_HORIZONS"), "{text}");

    let (code, text) = run("pricecast-export", &[]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = run("pricecast-features", &["--horizons", "1,3"]);
    assert_eq!(code, Some(0), "{text}");
    let lake = Lake::open(&pricecast_shared::lake::LakeArgs::for_url(
        lake_url.parse().expect("url"),
    ))
    .await
    .expect("lake");
    let (manifest, frame) = read_feature_frame(&lake, &btc(), Interval::H1)
        .await
        .expect("features");
    assert_eq!(manifest.horizons, vec![1, 3]);
    // 72 consecutive candles: the last 23 have 49 before them.
    assert_eq!(frame.height(), 23);
    assert_eq!(frame.width(), 2 + 24 + 2);
}

/// Feature day files a run wrote for BTCUSDT 1h.
fn feature_partitions(report: &JobReport) -> u64 {
    match report.work("BTCUSDT", Interval::H1) {
        Some(Work::Features(work)) => work.partitions,
        other => panic!("BTCUSDT 1h features, got {other:?}"),
    }
}
