//! Export job tests: real PostgreSQL (and SQLite) into a real S3 server (moto, credentials
//! checked) through object_store's S3 client as production talks to MinIO, and into local
//! folders; every file read back by pyarrow and polars.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use pricecast_jobs::export::{self, ExportContext, ExportPlan, ExportRange};
use pricecast_shared::Error;
use pricecast_shared::domain::{Candle, Interval, Symbol};
use pricecast_shared::lake::{Lake, LakeUrl};
use pricecast_shared::report::{JobReport, Work};
use pricecast_shared::runner;
use pricecast_shared::series::SeriesScope;
use pricecast_shared::store::{JobStatus, Store};
use pricecast_tests::db::TestDb;
use pricecast_tests::fake_binance::synthetic_series;
use pricecast_tests::lake::{FailingStore, TestS3, etags, read_lake};
use rust_decimal::Decimal;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::binaries::binary;

/// Decimal columns compared value by value with the database.
const DECIMALS: [&str; 8] = [
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "taker_buy_base",
    "taker_buy_quote",
];

fn btc() -> Symbol {
    "BTCUSDT".parse().expect("symbol")
}

fn plan(interval: Interval, range: ExportRange) -> ExportPlan {
    ExportPlan {
        symbols: vec![btc()],
        intervals: vec![interval],
        range,
        // Tests change rows and re-export at once: nothing needs to settle.
        settle: chrono::Duration::zero(),
        scope: SeriesScope::default(),
    }
}

fn context(store: &Store, lake: Lake) -> ExportContext {
    ExportContext {
        store: store.clone(),
        lake,
        cancel: CancellationToken::new(),
    }
}

fn files(read: &Value) -> &serde_json::Map<String, Value> {
    read["files"].as_object().expect("files")
}

/// Checks every file against the database: schema, rows per day, exact values, order.
fn assert_lake_matches(read: &Value, candles: &[Candle]) {
    let mut per_day: BTreeMap<String, Vec<&Candle>> = BTreeMap::new();
    for candle in candles {
        per_day
            .entry(candle.open_time.format("%Y-%m-%d").to_string())
            .or_default()
            .push(candle);
    }
    let files = files(read);
    assert_eq!(
        files.len(),
        per_day.len(),
        "one file per day: {:?}",
        files.keys()
    );
    for (day, expected) in &per_day {
        let path = format!(
            "candles/symbol=BTCUSDT/interval={}/date={day}/part-0.parquet",
            expected[0].interval
        );
        let file = &files[&path];
        assert_eq!(
            file["schema"]["open_time"], "timestamp[ms, tz=UTC]",
            "{path}"
        );
        assert_eq!(file["schema"]["close_time"], "timestamp[ms, tz=UTC]");
        assert_eq!(file["schema"]["open"], "decimal128(38, 8)");
        assert_eq!(file["schema"]["taker_buy_quote"], "decimal128(38, 8)");
        assert_eq!(file["schema"]["trades"], "int64");
        assert_eq!(
            file["schema"]["symbol"],
            "dictionary<values=string, indices=int32, ordered=0>"
        );
        assert_eq!(
            file["polars_dtypes"]["close"],
            "Decimal(precision=38, scale=8)"
        );
        assert_eq!(file["compression"], "ZSTD");
        assert_eq!(file["statistics"], true);
        // Dictionaries for the repeated strings only; the near-unique values are written plain.
        for column in ["symbol", "interval"] {
            assert_eq!(
                file["encodings"][column],
                serde_json::json!(["PLAIN", "RLE", "RLE_DICTIONARY"]),
                "{path} {column}"
            );
        }
        for column in ["open_time", "close", "taker_buy_quote", "trades"] {
            assert_eq!(
                file["encodings"][column],
                serde_json::json!(["PLAIN", "RLE"]),
                "{path} {column}"
            );
        }
        assert_eq!(file["row_groups"], 1);
        assert_eq!(file["sorted"], true);
        assert_eq!(file["duplicates"], 0);
        assert_eq!(file["metadata"]["pricecast.schema_version"], "1");
        assert_eq!(file["rows"], expected.len(), "{path}");
        assert_eq!(file["polars_rows"], expected.len(), "{path}");
        let values = file["values"].as_array().expect("values");
        for (row, candle) in values.iter().zip(expected) {
            assert_eq!(row["open_time_ms"], candle.open_time.timestamp_millis());
            assert_eq!(row["symbol"], "BTCUSDT");
            assert_eq!(row["trades"], serde_json::json!(candle.trades));
            for column in DECIMALS {
                let stored = match column {
                    "open" => Some(candle.open),
                    "high" => Some(candle.high),
                    "low" => Some(candle.low),
                    "close" => Some(candle.close),
                    "volume" => Some(candle.volume),
                    "quote_volume" => candle.quote_volume,
                    "taker_buy_base" => candle.taker_buy_base,
                    _ => candle.taker_buy_quote,
                };
                let read = row[column]
                    .as_str()
                    .map(|s| Decimal::from_str(s).expect("decimal"));
                assert_eq!(read, stored, "{path} {column} at {}", candle.open_time);
            }
        }
    }
}

#[tokio::test]
async fn export_to_s3_is_exact_and_readable_by_pyarrow_and_polars() {
    let db = TestDb::postgres().await;
    // 3 days of real hourly candles, plus collected-style rows with every column set.
    db.load_bundled("BTCUSDT", 60).await;
    let s3 = TestS3::new();
    let lake = Lake::open(&s3.args()).await.expect("open the S3 lake");
    let ctx = context(&db.store, lake.clone());
    let summary = export::run(&ctx, &plan(Interval::H1, ExportRange::Changed))
        .await
        .expect("export");
    assert_eq!(summary.rows(), 60, "{}", summary.detail());

    let candles = db.btc_candles(Interval::H1).await;
    let read = s3.read_back();
    assert_lake_matches(&read, &candles);

    let manifest = &read["manifests"]["candles/symbol=BTCUSDT/interval=1h/_manifest.json"];
    assert_eq!(manifest["schema_version"], 1);
    assert_eq!(manifest["rows"], 60);
    let partitions = manifest["partitions"].as_array().expect("partitions");
    assert_eq!(partitions.len(), files(&read).len());
    for partition in partitions {
        let path = partition["path"].as_str().expect("path");
        assert_eq!(partition["rows"], files(&read)[path]["rows"], "{path}");
        assert_eq!(partition["bytes"], files(&read)[path]["size"], "{path}");
    }
    let last = candles.last().expect("candles");
    let watermark = db
        .store
        .watermark(export::JOB, &btc(), Interval::H1)
        .await
        .expect("watermark");
    assert!(watermark.is_some(), "the watermark moved");
    assert_eq!(
        manifest["max_open_time"]
            .as_str()
            .map(|s| s.parse::<DateTime<Utc>>().ok()),
        Some(Some(last.open_time))
    );
}

/// Inserts candles of BTCUSDT 1h as SQL rows: `(open_time, open, high, low, close, volume,
/// quote_volume, trades, taker_buy_base, taker_buy_quote)`, bypassing `rust_decimal`.
async fn insert_raw(db: &TestDb, rows: &str) {
    sqlx::query(&format!(
        "INSERT INTO candles (symbol, interval, open_time, open, high, low, close, volume, \
         quote_volume, trades, taker_buy_base, taker_buy_quote, close_time, source) \
         SELECT 'BTCUSDT', '1h', t::timestamptz, o::numeric, h::numeric, l::numeric, \
         c::numeric, v::numeric, q::numeric, n::int8, b::numeric, bq::numeric, \
         t::timestamptz + interval '59 minutes 59.999 seconds', 'test' \
         FROM (VALUES {rows}) AS r(t, o, h, l, c, v, q, n, b, bq)"
    ))
    .execute(db.pg_pool())
    .await
    .expect("insert candles");
}

#[tokio::test]
async fn postgres_numerics_reach_the_lake_exactly_and_inexact_ones_stop_the_export() {
    let db = TestDb::postgres().await;
    // Scales as stored (none, short, 8, more with trailing zeros), 0, the smallest step,
    // 28 digits, a negative (no CHECK on quote volumes) and NULLs.
    insert_raw(
        &db,
        "('2025-01-01T00:00:00Z', 0.00000001, 99999999999999999999.99999999, 0.00000001, \
          39610.14000000, 0, -1234.5, NULL, NULL, \
          12345678901234567890.12345678), \
         ('2025-01-01T01:00:00Z', 10000, 10000.0, 9999.99999999, 10000, 1.234567890000, \
          0.1, 7, 0.00000000, NULL), \
         ('2025-01-02T00:00:00Z', 1, 2, 1, 1.5, 3, NULL, NULL, NULL, NULL)",
    )
    .await;
    let s3 = TestS3::new();
    let lake = Lake::open(&s3.args()).await.expect("open the S3 lake");
    let ctx = context(&db.store, lake);
    let summary = export::run(&ctx, &plan(Interval::H1, ExportRange::Changed))
        .await
        .expect("export");
    assert_eq!(summary.rows(), 3, "{}", summary.detail());
    assert_lake_matches(&s3.read_back(), &db.btc_candles(Interval::H1).await);

    insert_raw(
        &db,
        "('2025-01-03T00:00:00Z', 1, 2, 1, 1.123456789, 3, NULL, NULL, NULL, NULL)",
    )
    .await;
    let error = export::run(&ctx, &plan(Interval::H1, ExportRange::Changed))
        .await
        .expect_err("a ninth decimal cannot be exported");
    match error {
        Error::InexactValue {
            column,
            value,
            open_time,
            ..
        } => {
            assert_eq!((column, value.as_str()), ("close", "1.123456789"));
            assert_eq!(open_time, "2025-01-03T00:00:00+00:00");
        }
        other => panic!("expected an inexact value, got {other}"),
    }
}

/// The export plans per UTC day over every candle of a series. With the migration's statistics
/// on the day expression, PostgreSQL expects one group per day (and aggregates in memory)
/// instead of one per candle (and a sort of every candle, on disk for long series).
#[tokio::test]
async fn postgres_plans_the_export_with_one_group_per_day() {
    let db = TestDb::postgres().await;
    let candles = synthetic_series("BTCUSDT", Interval::H1, 24 * 400);
    db.store.upsert_candles(&candles).await.expect("store");
    sqlx::query("ANALYZE candles")
        .execute(db.pg_pool())
        .await
        .expect("analyze");
    let (plan,): (Value,) = sqlx::query_as(
        "EXPLAIN (FORMAT JSON) SELECT (open_time AT TIME ZONE 'UTC')::date AS day, COUNT(*), \
         MAX(ingested_at) FROM candles WHERE symbol = 'BTCUSDT' AND interval = '1h' \
         GROUP BY day ORDER BY day",
    )
    .fetch_one(db.pg_pool())
    .await
    .expect("explain");
    let groups = plan[0]["Plan"]["Plan Rows"].as_f64().expect("plan rows");
    assert!(
        (300.0..=500.0).contains(&groups),
        "expected about 400 day groups, the planner expects {groups}: {plan}"
    );
}

#[tokio::test]
async fn rerun_is_idempotent_and_a_changed_day_rewrites_only_that_day() {
    let db = TestDb::postgres().await;
    let loaded = db.load_bundled("BTCUSDT", 72).await;
    let s3 = TestS3::new();
    let lake = Lake::open(&s3.args()).await.expect("open the S3 lake");
    let ctx = context(&db.store, lake.clone());
    export::run(&ctx, &plan(Interval::H1, ExportRange::Changed))
        .await
        .expect("first export");
    let first = etags(&lake, "candles").await;

    // Nothing changed: nothing is written.
    let again = export::run(&ctx, &plan(Interval::H1, ExportRange::Changed))
        .await
        .expect("second export");
    assert_eq!(again.rows(), 0, "{}", again.detail());
    // --full rewrites every day with identical content.
    export::run(&ctx, &plan(Interval::H1, ExportRange::Full))
        .await
        .expect("full export");
    let full = etags(&lake, "candles").await;
    for (path, tag) in first.iter().filter(|(p, _)| p.ends_with(".parquet")) {
        assert_eq!(full.get(path), Some(tag), "{path}: same bytes, same etag");
    }

    // A correction and a late candle on the middle day.
    let middle = &loaded[36];
    let mut corrected = middle.clone();
    corrected.close = Decimal::from_str("12345.67890123").expect("decimal");
    db.store
        .upsert_candles(&[corrected])
        .await
        .expect("correct");
    let changed = export::run(&ctx, &plan(Interval::H1, ExportRange::Changed))
        .await
        .expect("incremental export");
    let day = middle.open_time.format("%Y-%m-%d").to_string();
    let rewritten = changed
        .work("BTCUSDT", Interval::H1)
        .and_then(Work::as_lake)
        .expect("BTCUSDT 1h exported");
    assert_eq!(rewritten.partitions, 1, "{}", changed.detail());
    let after = etags(&lake, "candles").await;
    for (path, tag) in full.iter().filter(|(p, _)| p.ends_with(".parquet")) {
        if path.contains(&format!("date={day}")) {
            assert_ne!(after.get(path), Some(tag), "{path} should be rewritten");
        } else {
            assert_eq!(after.get(path), Some(tag), "{path} should be untouched");
        }
    }
    assert_lake_matches(&s3.read_back(), &db.btc_candles(Interval::H1).await);
}

#[tokio::test]
async fn a_failure_mid_upload_keeps_the_previous_file_and_the_watermark() {
    let db = TestDb::postgres().await;
    // Two days of 1m candles (three dates): a whole day's file is large enough for a multipart
    // upload.
    let series = synthetic_series("BTCUSDT", Interval::M1, 2 * 1440);
    db.store.upsert_candles(&series).await.expect("load");
    let s3 = TestS3::new();
    let lake = Lake::open(&s3.args()).await.expect("open the S3 lake");
    // Small parts (the test S3 server accepts 16 KiB ones) make every day's file several parts,
    // however well zstd packs it.
    let part_bytes = 16 * 1024;
    let counting = Arc::new(FailingStore::new(lake.store().clone(), usize::MAX, false));
    let counted =
        Lake::from_store(counting.clone(), &s3.prefix, s3.url()).with_upload_part_bytes(part_bytes);
    export::run(
        &context(&db.store, counted),
        &plan(Interval::M1, ExportRange::Changed),
    )
    .await
    .expect("first export");
    assert!(
        counting.parts_seen() >= 2,
        "files went multipart: {} parts",
        counting.parts_seen()
    );
    // The correction goes into a whole day (the series' first and last days are partial, and
    // a short day's file may fit in one part).
    let corrected_at = series
        .iter()
        .position(|c| c.open_time.timestamp_millis() % 86_400_000 == 0)
        .expect("a whole day")
        + 10;
    let day = series[corrected_at].open_time.date_naive();
    let path = format!("candles/symbol=BTCUSDT/interval=1m/date={day}/part-0.parquet");
    let before = lake.get(&path).await.expect("get").expect("written");
    let listing = etags(&lake, "candles").await;
    let watermark = db
        .store
        .watermark(export::JOB, &btc(), Interval::M1)
        .await
        .expect("watermark");

    let mut corrected = series[corrected_at].clone();
    corrected.close += Decimal::ONE;
    db.store
        .upsert_candles(&[corrected])
        .await
        .expect("correct");
    let failing = Arc::new(FailingStore::new(lake.store().clone(), 1, true));
    let broken =
        Lake::from_store(failing.clone(), &s3.prefix, s3.url()).with_upload_part_bytes(part_bytes);
    let ctx = context(&db.store, broken);
    let plan = plan(Interval::M1, ExportRange::Changed);
    let result: Result<_, Error> =
        runner::run_locked(&db.store, export::JOB, || export::run(&ctx, &plan)).await;
    let error = result.expect_err("the upload fails");
    let chain = pricecast_shared::telemetry::error_chain(&error);
    assert!(chain.contains("injected failure"), "{chain}");
    assert!(failing.parts_seen() >= 2, "the failure came mid-upload");

    assert_eq!(
        lake.get(&path).await.expect("get"),
        Some(before),
        "previous file intact"
    );
    assert_eq!(
        etags(&lake, "candles").await,
        listing,
        "no partial or extra objects"
    );
    assert_eq!(
        db.store
            .watermark(export::JOB, &btc(), Interval::M1)
            .await
            .expect("watermark"),
        watermark,
        "watermark unmoved"
    );
    let runs = db.store.job_runs(Some(export::JOB), 1).await.expect("runs");
    assert_eq!(runs[0].status, JobStatus::Failed);

    // The next healthy run exports the correction.
    let summary: JobReport = export::run(&context(&db.store, lake.clone()), &plan)
        .await
        .expect("recovery");
    let rows_that_day = series
        .iter()
        .filter(|c| c.open_time.date_naive() == day)
        .count();
    assert_eq!(summary.rows(), rows_that_day as i64, "{}", summary.detail());
}

#[tokio::test]
async fn unusable_lakes_are_clear_errors() {
    let s3 = TestS3::new();
    let reason = |result: Result<Lake, Error>| match result {
        Err(Error::LakeUnavailable { reason, .. }) => reason,
        other => panic!("expected an unusable lake, got {other:?}"),
    };

    let mut wrong_endpoint = s3.args();
    wrong_endpoint.aws_endpoint_url = Some("http://127.0.0.1:9".parse().expect("url"));
    let text = reason(Lake::open(&wrong_endpoint).await);
    assert!(text.contains("AWS_ENDPOINT_URL"), "{text}");

    let mut bad_key = s3.args();
    bad_key.aws_secret_access_key = Some("not-the-secret".to_owned().into());
    let text = reason(Lake::open(&bad_key).await);
    assert!(text.contains("AWS_SECRET_ACCESS_KEY"), "{text}");

    let bucket = format!("pricecast-missing-{:08x}", rand::random::<u32>());
    let mut missing = s3.args();
    missing.lake_url = format!("s3://{bucket}/lake")
        .parse::<LakeUrl>()
        .expect("url");
    let text = reason(Lake::open(&missing).await);
    assert!(
        text.contains("does not exist") && text.contains("--create-bucket"),
        "{text}"
    );

    missing.create_bucket = true;
    let lake = Lake::open(&missing).await.expect("bucket created");
    lake.put("probe", "ok".into()).await.expect("usable");
}

#[tokio::test]
async fn the_binary_exports_sqlite_to_s3_and_to_a_folder_with_ranges_and_dry_runs() {
    let db = TestDb::sqlite().await;
    db.load_bundled("BTCUSDT", 48).await;
    let s3 = TestS3::new();
    let folder = tempfile::tempdir().expect("temp dir");
    let local = format!("file://{}", folder.path().display());
    let run = |extra_env: Vec<(&'static str, String)>, args: &[&str]| {
        let output = std::process::Command::new(binary("pricecast-export"))
            .args(["--symbols", "BTCUSDT", "--intervals", "1h"])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &db.url)
            .envs(extra_env)
            .output()
            .expect("run pricecast-export");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };

    let (code, stdout, stderr) = run(s3.env(), &["--dry-run"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("dry run"), "{stdout}");
    assert!(
        stdout.contains("partitions to rewrite, 48 candles"),
        "{stdout}"
    );
    assert!(
        s3.read_back()["files"]
            .as_object()
            .expect("files")
            .is_empty(),
        "dry run wrote nothing"
    );

    let (code, stdout, stderr) = run(s3.env(), &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_lake_matches(&s3.read_back(), &db.btc_candles(Interval::H1).await);
    assert!(
        !stdout.contains(&s3.secret_access_key),
        "secret in the logs"
    );

    let first_day = db.btc_candles(Interval::H1).await[0]
        .open_time
        .format("%Y-%m-%d")
        .to_string();
    let (code, stdout, stderr) = run(
        vec![("LAKE_URL", local.clone())],
        &["--from", &first_day, "--to", &first_day],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let read = read_lake(&["--local", &folder.path().display().to_string()], &[]);
    let files = files(&read);
    assert_eq!(files.len(), 1, "{:?}", files.keys());
    assert!(
        files
            .keys()
            .all(|k| k.contains(&format!("date={first_day}")))
    );

    let (code, _, stderr) = run(vec![("LAKE_URL", "ftp://nowhere/lake".to_owned())], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("LAKE_URL"), "{stderr}");

    let mut bad_credentials = s3.env();
    bad_credentials.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    bad_credentials.push(("AWS_SECRET_ACCESS_KEY", "wrong".to_owned()));
    let (code, stdout, stderr) = run(bad_credentials, &[]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        format!("{stdout}{stderr}").contains("AWS_ACCESS_KEY_ID"),
        "{stdout}{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_export_leaves_whole_files_and_the_watermark_unmoved() {
    let db = TestDb::sqlite().await;
    // Three years of hourly candles: 1,096 day files, seconds of uploads to the S3 server.
    db.load_bundled("BTCUSDT", 26_279).await;
    let s3 = TestS3::new();
    let mut child = std::process::Command::new(binary("pricecast-export"))
        .args(["--symbols", "BTCUSDT", "--intervals", "1h"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .envs(s3.env())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start pricecast-export");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let runs = db.store.job_runs(Some("export"), 1).await.expect("runs");
        if runs.first().is_some_and(|r| r.status == JobStatus::Running) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the export never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(killed.success());
    let status = child.wait().expect("export exits");
    let runs = db.store.job_runs(Some("export"), 1).await.expect("runs");
    assert_eq!(
        runs[0].status,
        JobStatus::Cancelled,
        "the export was not interrupted mid-run: {:?}",
        runs[0]
    );
    assert_eq!(status.code(), Some(1), "a cancelled run is not a success");
    assert_eq!(
        db.store
            .watermark("export", &btc(), Interval::H1)
            .await
            .expect("watermark"),
        None,
        "an interrupted export must not move the watermark"
    );
    // Whatever was written is whole: every file present reads back complete and exact.
    let read = s3.read_back();
    let written: Vec<String> = files(&read)
        .keys()
        .filter_map(|path| path.split("date=").nth(1))
        .filter_map(|rest| rest.split('/').next())
        .map(str::to_owned)
        .collect();
    assert!(
        written.len() < 1096,
        "every file was written before the signal"
    );
    let candles: Vec<Candle> = db
        .btc_candles(Interval::H1)
        .await
        .into_iter()
        .filter(|c| written.contains(&c.open_time.format("%Y-%m-%d").to_string()))
        .collect();
    assert_lake_matches(&read, &candles);
}
