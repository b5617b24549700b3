//! Sync job tests: real PostgreSQL (and SQLite) stores, and the model runs of two real MLflow
//! servers and the local registry, into a real warehouse reached through unixODBC and the
//! PostgreSQL ODBC driver (a PostgreSQL 15 database standing in for Databricks: same staging +
//! MERGE path).

use std::process::Command;
use std::sync::Arc;

use pricecast_jobs::sync::{
    self, CANDLES_WATERMARK, ModelRunsSource, SyncContext, SyncMode, SyncPlan, SyncTables,
};
use pricecast_shared::domain::{Candle, Interval, Symbol};
use pricecast_shared::features::{FeatureSpec, feature_rows, read_feature_frame};
use pricecast_shared::lake::{Lake, LakeArgs, LakeUrl};
use pricecast_shared::registry::{
    Metric, MlflowRegistry, ModelRegistry, RegistryArgs, RunId, RunStatus, tags,
};
use pricecast_shared::report::SyncedRows;
use pricecast_shared::runner;
use pricecast_shared::series::SeriesScope;
use pricecast_shared::store::{CandleQuery, JobStatus, Store};
use pricecast_tests::db::TestDb;
use pricecast_tests::pipeline::{self, export_and_build_features};
use pricecast_tests::warehouse::TestWarehouse;
use pricecast_warehouse::{Error as WarehouseError, WarehouseConfig};
use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;

use crate::binaries::binary;

fn btc() -> Symbol {
    "BTCUSDT".parse().expect("symbol")
}

fn plan() -> SyncPlan {
    SyncPlan {
        symbols: vec![btc()],
        intervals: vec![Interval::H1],
        mode: SyncMode::Push,
        // Tests change rows and sync again at once: nothing needs to settle.
        settle: chrono::Duration::zero(),
        stop_after_staging: false,
        scope: SeriesScope::default(),
    }
}

fn context(store: &Store, warehouse: WarehouseConfig) -> SyncContext {
    SyncContext {
        store: store.clone(),
        warehouse,
        lake: None,
        cancel: CancellationToken::new(),
    }
}

async fn stored(store: &Store) -> Vec<Candle> {
    store
        .candles(&CandleQuery {
            symbol: btc(),
            interval: Interval::H1,
            from: None,
            to: None,
            limit: 10_000_000,
            offset: 0,
            newest_first: false,
        })
        .await
        .expect("candles")
}

/// The warehouse's candles as text, in key order.
async fn warehouse_rows(wh: &TestWarehouse, table: &str) -> Vec<Vec<Option<String>>> {
    let sql = format!(
        "SELECT symbol, interval, to_char(open_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS'), \
         open::text, high::text, low::text, close::text, volume::text, quote_volume::text, \
         trades::text, taker_buy_base::text, taker_buy_quote::text, \
         to_char(close_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS'), source \
         FROM pricecast.{table} ORDER BY symbol, interval, open_time"
    );
    let rows: Vec<sqlx::postgres::PgRow> = sqlx::query(&sql)
        .fetch_all(&wh.pool)
        .await
        .expect("read the warehouse");
    rows.iter()
        .map(|r| {
            use sqlx::Row;
            (0..14)
                .map(|i| r.try_get::<Option<String>, _>(i).expect("text"))
                .collect()
        })
        .collect()
}

fn expected_rows(candles: &[Candle]) -> Vec<Vec<Option<String>>> {
    let time =
        |t: chrono::DateTime<chrono::Utc>| Some(t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string());
    let dec = |d: Option<Decimal>| d.map(|d| d.to_string());
    candles
        .iter()
        .map(|c| {
            vec![
                Some(c.symbol.as_str().to_owned()),
                Some(c.interval.as_str().to_owned()),
                time(c.open_time),
                dec(Some(c.open)),
                dec(Some(c.high)),
                dec(Some(c.low)),
                dec(Some(c.close)),
                dec(Some(c.volume)),
                dec(c.quote_volume),
                c.trades.map(|t| t.to_string()),
                dec(c.taker_buy_base),
                dec(c.taker_buy_quote),
                time(c.close_time),
                Some(c.source.clone()),
            ]
        })
        .collect()
}

async fn count(wh: &TestWarehouse, table: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM pricecast.{table}"))
        .fetch_one(&wh.pool)
        .await
        .expect("count");
    n
}

#[tokio::test]
async fn first_sync_copies_everything_and_second_sync_nothing() {
    for db in TestDb::both().await {
        let wh = TestWarehouse::new().await;
        db.load_bundled("BTCUSDT", 1500).await;
        let ctx = context(&db.store, wh.config(400));
        let first = sync::run(&ctx, &plan()).await.expect("first sync");
        assert_eq!(first.rows(), 1500, "{}", first.detail());
        let candles = first
            .synced("candles", "BTCUSDT", Interval::H1)
            .expect("BTCUSDT 1h synced");
        assert_eq!(
            (candles.rows, candles.unit),
            (1500, SyncedRows::Candles),
            "{}",
            first.detail()
        );
        assert!(candles.target.contains("Pwd=***"), "{}", candles.target);
        assert!(first.detail().contains("Pwd=***"), "{}", first.detail());
        assert_eq!(
            warehouse_rows(&wh, "candles").await,
            expected_rows(&stored(&db.store).await),
            "{}",
            db.store.backend()
        );
        assert_eq!(count(&wh, "candles_staging").await, 0);
        let second = sync::run(&ctx, &plan()).await.expect("second sync");
        assert_eq!(second.rows(), 0, "{}", second.detail());
        assert_eq!(count(&wh, "candles").await, 1500);
    }
}

#[tokio::test]
async fn new_candles_are_copied_alone_and_a_changed_candle_is_updated_not_duplicated() {
    let db = TestDb::postgres().await;
    let wh = TestWarehouse::new().await;
    let all = db.load_bundled("BTCUSDT", 1000).await;
    // Start with all but the newest 10.
    sqlx::query("DELETE FROM candles WHERE open_time > $1")
        .bind(all[989].open_time)
        .execute(db.pg_pool())
        .await
        .expect("trim");
    let ctx = context(&db.store, wh.config(300));
    assert_eq!(sync::run(&ctx, &plan()).await.expect("sync").rows(), 990);

    let mut corrected = all[500].clone();
    corrected.close += Decimal::new(1, 2);
    corrected.volume = Decimal::new(4242, 3);
    db.store
        .upsert_candles(&all[990..])
        .await
        .expect("new candles");
    db.store
        .upsert_candles(std::slice::from_ref(&corrected))
        .await
        .expect("correction");
    let summary = sync::run(&ctx, &plan()).await.expect("sync");
    assert_eq!(summary.rows(), 11, "{}", summary.detail());
    assert_eq!(count(&wh, "candles").await, 1000);
    assert_eq!(
        warehouse_rows(&wh, "candles").await,
        expected_rows(&stored(&db.store).await)
    );
    let (close,): (String,) =
        sqlx::query_as("SELECT close::text FROM pricecast.candles WHERE open_time = $1")
            .bind(corrected.open_time)
            .fetch_one(&wh.pool)
            .await
            .expect("corrected row");
    assert_eq!(close, corrected.close.to_string());
}

#[tokio::test]
async fn a_sync_killed_between_staging_and_merge_reruns_to_exactly_the_right_rows() {
    let db = TestDb::postgres().await;
    let wh = TestWarehouse::new().await;
    db.load_bundled("BTCUSDT", 700).await;
    let ctx = context(&db.store, wh.config(250));
    // A run dies right after staging its first batch, before the MERGE.
    let crashing = SyncPlan {
        stop_after_staging: true,
        ..plan()
    };
    let err = sync::run(&ctx, &crashing).await.expect_err("stopped");
    assert!(
        err.to_string().contains("between staging and MERGE"),
        "{err}"
    );
    assert_eq!(
        count(&wh, "candles_staging").await,
        250,
        "staged, not merged"
    );
    assert_eq!(count(&wh, "candles").await, 0);
    assert_eq!(
        db.store
            .watermark(CANDLES_WATERMARK, &btc(), Interval::H1)
            .await
            .expect("watermark"),
        None
    );
    let summary = sync::run(&ctx, &plan()).await.expect("re-run");
    assert_eq!(summary.rows(), 700);
    assert_eq!(
        warehouse_rows(&wh, "candles").await,
        expected_rows(&stored(&db.store).await)
    );
    assert_eq!(count(&wh, "candles_staging").await, 0);
    // And again after a crash with everything already merged: still no duplicates.
    db.load_bundled("BTCUSDT", 710).await;
    let err = sync::run(&ctx, &crashing).await.expect_err("stopped");
    assert!(
        matches!(
            WarehouseError::of(&err),
            Some(WarehouseError::Failed { .. })
        ),
        "{err}"
    );
    sync::run(&ctx, &plan()).await.expect("re-run");
    assert_eq!(count(&wh, "candles").await, 710);
    assert_eq!(
        warehouse_rows(&wh, "candles").await,
        expected_rows(&stored(&db.store).await)
    );
}

#[tokio::test]
async fn a_missing_column_in_an_existing_table_is_a_clear_error() {
    let db = TestDb::postgres().await;
    let wh = TestWarehouse::new().await;
    db.load_bundled("BTCUSDT", 10).await;
    for sql in [
        "CREATE SCHEMA pricecast",
        "CREATE TABLE pricecast.candles (symbol TEXT, interval TEXT, open_time TIMESTAMPTZ, \
         open NUMERIC, high NUMERIC, low NUMERIC, close NUMERIC, volume NUMERIC, \
         quote_volume NUMERIC, taker_buy_base NUMERIC, taker_buy_quote NUMERIC, \
         close_time TIMESTAMPTZ, source TEXT)",
    ] {
        sqlx::query(sql).execute(&wh.pool).await.expect("old table");
    }
    let err = sync::run(&context(&db.store, wh.default_config()), &plan())
        .await
        .expect_err("schema drift");
    let message = err.to_string();
    assert!(
        matches!(
            WarehouseError::of(&err),
            Some(WarehouseError::Schema { .. })
        ),
        "{message}"
    );
    assert!(
        message.contains("\"pricecast\".\"candles\"") && message.contains("trades, ingested_at"),
        "{message}"
    );
}

#[tokio::test]
async fn an_unreachable_warehouse_is_a_clear_error_and_the_watermark_stays() {
    let db = TestDb::postgres().await;
    let wh = TestWarehouse::new().await;
    db.load_bundled("BTCUSDT", 10).await;
    let mut config = wh.default_config();
    config.connection_string = wh
        .connection_string
        .replace("Port=5432", "Port=1")
        .replace("Pwd=;", "Pwd=hunter2;")
        .parse()
        .expect("connection string");
    let ctx = context(&db.store, config);
    let plan = plan();
    let err = runner::run_locked(&db.store, sync::JOB, || sync::run(&ctx, &plan))
        .await
        .expect_err("unreachable");
    let message = err.to_string();
    assert!(
        matches!(
            WarehouseError::of(&err),
            Some(WarehouseError::Failed { .. })
        ),
        "{message}"
    );
    assert!(
        message.contains("connecting to") && message.contains("Port=1"),
        "{message}"
    );
    assert!(
        !message.contains("hunter2") && message.contains("Pwd=***"),
        "{message}"
    );
    assert_eq!(
        db.store
            .watermark(CANDLES_WATERMARK, &btc(), Interval::H1)
            .await
            .expect("watermark"),
        None
    );
    let runs = db.store.job_runs(Some(sync::JOB), 1).await.expect("runs");
    assert_eq!(runs[0].status, JobStatus::Failed);
    assert!(!runs[0].error.as_deref().unwrap_or("").contains("hunter2"));
}

#[tokio::test]
async fn the_binary_syncs_over_odbc_and_never_logs_the_databricks_token() {
    let db = TestDb::postgres().await;
    let wh = TestWarehouse::new().await;
    db.load_bundled("BTCUSDT", 50).await;
    let run = |env: &[(&str, &str)]| {
        let mut command = Command::new(binary("pricecast-sync"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("DATABASE_URL", &db.url)
            .env("PRICECAST_INTERVALS", "1h");
        for (key, value) in env {
            command.env(key, value);
        }
        let output = command.output().expect("run pricecast-sync");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code(), text)
    };

    let (code, text) = run(&[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("sync is not configured"), "{text}");

    // Every table by default; the local registry in this lake has no experiment yet.
    let lake = tempfile::tempdir().expect("lake folder");
    let lake_url = format!("file://{}", lake.path().display());
    let (code, text) = run(&[
        ("SYNC_ODBC_CONNECTION_STRING", &wh.connection_string),
        ("LAKE_URL", &lake_url),
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(count(&wh, "candles").await, 50);
    assert!(text.contains("the experiment does not exist yet"), "{text}");

    // Model runs alone, from MLflow (the candles stay as they were).
    let experiment = format!("sync-binary-{:012x}", rand::random::<u64>() >> 16);
    let registry = mlflow_registry("PRICECAST_TEST_MLFLOW_URI");
    let id = registry.experiment(&experiment).await.expect("experiment");
    let ended = registry.start_run(&id, &[]).await.expect("run");
    registry
        .log_metrics(&ended, &[Metric::new("mae", 1.25)])
        .await
        .expect("metric");
    registry
        .finish_run(&ended, RunStatus::Finished)
        .await
        .expect("finish");
    let mlflow_uri = required("PRICECAST_TEST_MLFLOW_URI");
    let (code, text) = run(&[
        ("SYNC_ODBC_CONNECTION_STRING", &wh.connection_string),
        ("SYNC_TABLES", "model-runs"),
        ("MLFLOW_TRACKING_URI", &mlflow_uri),
        ("MLFLOW_EXPERIMENT_NAME", &experiment),
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("model runs synced"), "{text}");
    // It ended less than the settle margin ago: it waits for a later run.
    assert!(!warehouse_run_ids(&wh).await.contains(&ended.0));
    assert_eq!(count(&wh, "model_metrics").await, 0);

    let (code, text) = run(&[
        ("SYNC_ODBC_CONNECTION_STRING", &wh.connection_string),
        ("SYNC_TABLES", "candles,predictions"),
    ]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("SYNC_TABLES"), "{text}");

    // The Databricks driver is not installed here: the connection fails, naming the driver
    // and redacting the token everywhere.
    const TOKEN: &str = "dapi-secret-0123456789";
    let (code, text) = run(&[
        ("DATABRICKS_SERVER_HOSTNAME", "adb-1.azuredatabricks.net"),
        ("DATABRICKS_HTTP_PATH", "/sql/1.0/warehouses/abc"),
        ("DATABRICKS_ACCESS_TOKEN", TOKEN),
    ]);
    assert_eq!(code, Some(1), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
    assert!(
        text.contains("Driver=Simba Spark ODBC Driver;Host=adb-1.azuredatabricks.net")
            && text.contains("PWD=***"),
        "{text}"
    );
    let runs = db.store.job_runs(Some(sync::JOB), 1).await.expect("runs");
    assert!(!runs[0].error.as_deref().unwrap_or("").contains(TOKEN));

    let (code, text) = run(&[("SYNC_BATCH_SIZE", "0")]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("SYNC_BATCH_SIZE"), "{text}");
}

#[tokio::test]
async fn text_with_quotes_backslashes_and_braces_and_null_columns_arrive_unchanged() {
    let db = TestDb::postgres().await;
    let wh = TestWarehouse::new().await;
    let mut candles = db.load_bundled("BTCUSDT", 3).await;
    let sources = [r#"bin"ance\{a,b}"#, "NULL", "  spaced é "];
    for (candle, source) in candles.iter_mut().zip(sources) {
        candle.source = source.to_owned();
        candle.quote_volume = None;
        candle.trades = None;
    }
    db.store
        .upsert_candles(&candles)
        .await
        .expect("odd candles");
    let ctx = context(&db.store, wh.config(2));
    assert_eq!(sync::run(&ctx, &plan()).await.expect("sync").rows(), 3);
    assert_eq!(
        warehouse_rows(&wh, "candles").await,
        expected_rows(&stored(&db.store).await)
    );
    assert_eq!(count(&wh, "candles_staging").await, 0);
}

fn required(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: the model-run sync tests need the MLflow servers that tests/run.sh starts; run tests/run.sh")
    })
}

/// A client of the MLflow server named by `variable` (artifacts are not used here).
fn mlflow_registry(variable: &str) -> ModelRegistry {
    let args = RegistryArgs::mlflow(required(variable).parse().expect("MLflow URI"));
    let lake = LakeArgs::for_url(LakeUrl::Memory);
    ModelRegistry::Mlflow(Box::new(
        MlflowRegistry::new(&args, lake).expect("MLflow client"),
    ))
}

async fn local_registry(folder: &std::path::Path) -> ModelRegistry {
    let lake = LakeArgs::for_url(
        format!("file://{}", folder.display())
            .parse::<LakeUrl>()
            .expect("lake URL"),
    );
    ModelRegistry::open(&RegistryArgs::local(), &lake)
        .await
        .expect("local registry")
}

fn model_runs_only(registry: &Arc<ModelRegistry>, experiment: &str) -> SyncTables {
    SyncTables {
        candles: false,
        model_runs: Some(ModelRunsSource {
            registry: registry.clone(),
            experiment: experiment.to_owned(),
        }),
        features: None,
    }
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn warehouse_run_ids(wh: &TestWarehouse) -> Vec<String> {
    sqlx::query_scalar("SELECT run_id FROM pricecast.model_runs ORDER BY run_id")
        .fetch_all(&wh.pool)
        .await
        .expect("model runs")
}

/// `(run_id, status, model_type, symbol, interval, data_from, feature_set_hash, params)` of the
/// warehouse's model runs, by run id.
type RunRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    serde_json::Value,
);

async fn warehouse_runs(wh: &TestWarehouse) -> Vec<RunRow> {
    sqlx::query_as(
        "SELECT run_id, status, model_type, symbol, interval, \
         to_char(data_from AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS'), feature_set_hash, \
         params::jsonb FROM pricecast.model_runs ORDER BY run_id",
    )
    .fetch_all(&wh.pool)
    .await
    .expect("model runs")
}

/// `(run_id, key, value, step)` of the warehouse's model metrics, by run id and key.
async fn warehouse_metrics(wh: &TestWarehouse) -> Vec<(String, String, f64, i64)> {
    sqlx::query_as(
        "SELECT run_id, key, value, step FROM pricecast.model_metrics ORDER BY run_id, key",
    )
    .fetch_all(&wh.pool)
    .await
    .expect("model metrics")
}

/// A run of the series with `mae` logged at steps 0 and 1 (the latest is `mae`) and `rmse`.
async fn logged_run(
    registry: &ModelRegistry,
    experiment: &pricecast_shared::registry::ExperimentId,
    mae: f64,
) -> RunId {
    let run = registry
        .start_run(
            experiment,
            &pairs(&[
                (tags::SERIES, "BTCUSDT 1h"),
                (tags::MODEL_TYPE, "linear_regression"),
                (
                    tags::DATA_RANGE,
                    "2024-01-01T00:00:00Z..2024-02-01T00:00:00Z",
                ),
                (tags::FEATURE_SET_HASH, "f00d"),
            ]),
        )
        .await
        .expect("run");
    registry
        .log_params(&run, &pairs(&[("alpha", "0.5"), ("window", "10")]))
        .await
        .expect("params");
    let metrics = [
        Metric::new("mae", mae + 100.0),
        Metric {
            key: "mae".into(),
            value: mae,
            step: 1,
        },
        Metric::new("rmse", mae * 2.0),
    ];
    registry.log_metrics(&run, &metrics).await.expect("metrics");
    run
}

fn expected_run(run: &RunId, status: &str) -> RunRow {
    (
        run.0.clone(),
        status.to_owned(),
        Some("linear_regression".into()),
        Some("BTCUSDT".into()),
        Some("1h".into()),
        Some("2024-01-01T00:00:00".into()),
        Some("f00d".into()),
        serde_json::json!({"alpha": "0.5", "window": "10"}),
    )
}

fn expected_metrics(run: &RunId, mae: f64) -> Vec<(String, String, f64, i64)> {
    vec![
        (run.0.clone(), "mae".into(), mae, 1),
        (run.0.clone(), "rmse".into(), mae * 2.0, 0),
    ]
}

fn sorted<T: Ord>(mut rows: Vec<T>) -> Vec<T> {
    rows.sort();
    rows
}

fn sorted_runs(mut rows: Vec<RunRow>) -> Vec<RunRow> {
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

fn sorted_metrics(mut rows: Vec<(String, String, f64, i64)>) -> Vec<(String, String, f64, i64)> {
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    rows
}

/// The whole life of model runs in the warehouse, against one registry.
async fn model_runs_are_mirrored(registry: ModelRegistry) {
    let registry = Arc::new(registry);
    let db = TestDb::postgres().await;
    let wh = TestWarehouse::new().await;
    let ctx = context(&db.store, wh.config(2));
    let name = format!("sync-{:012x}", rand::random::<u64>() >> 16);
    let tables = model_runs_only(&registry, &name);
    let location = registry.location();

    // No experiment yet: nothing to do, and no error.
    let none = sync::run_tables(&ctx, &plan(), &tables)
        .await
        .expect("sync without the experiment");
    assert_eq!(none.rows(), 0, "{}", none.detail());
    let missing = none.synced_model_runs().expect("model runs item");
    assert!(!missing.experiment_found, "{}", none.detail());
    assert!(
        none.detail().contains("no such experiment yet"),
        "{}",
        none.detail()
    );

    let experiment = registry.experiment(&name).await.expect("experiment");
    let first = logged_run(&registry, &experiment, 1.5).await;
    let second = logged_run(&registry, &experiment, 2.5).await;
    let failed = logged_run(&registry, &experiment, 3.5).await;
    let running = logged_run(&registry, &experiment, 4.5).await;
    for (run, status) in [
        (&first, RunStatus::Finished),
        (&second, RunStatus::Finished),
        (&failed, RunStatus::Failed),
    ] {
        registry.finish_run(run, status).await.expect("finish");
    }

    // Exactly the ended runs, with the latest value of each metric.
    let summary = sync::run_tables(&ctx, &plan(), &tables)
        .await
        .expect("first sync");
    assert_eq!(summary.rows(), 3 + 6, "{location}: {}", summary.detail());
    let mirrored = summary.synced_model_runs().expect("model runs item");
    assert_eq!(
        (mirrored.experiment_found, mirrored.runs, mirrored.metrics),
        (true, 3, 6),
        "{location}: {}",
        summary.detail()
    );
    assert!(mirrored.target.contains("Pwd=***"), "{}", mirrored.target);
    let mut runs = vec![
        expected_run(&first, "FINISHED"),
        expected_run(&second, "FINISHED"),
        expected_run(&failed, "FAILED"),
    ];
    let mut metrics = [
        expected_metrics(&first, 1.5),
        expected_metrics(&second, 2.5),
        expected_metrics(&failed, 3.5),
    ]
    .concat();
    assert_eq!(
        warehouse_runs(&wh).await,
        sorted_runs(runs.clone()),
        "{location}"
    );
    assert_eq!(
        warehouse_metrics(&wh).await,
        sorted_metrics(metrics.clone())
    );
    assert_eq!(count(&wh, "model_runs_staging").await, 0);
    assert_eq!(count(&wh, "model_metrics_staging").await, 0);

    // Nothing new: nothing copied.
    let again = sync::run_tables(&ctx, &plan(), &tables)
        .await
        .expect("second sync");
    assert_eq!(again.rows(), 0, "{location}: {}", again.detail());

    // A new finished run: exactly it.
    let third = logged_run(&registry, &experiment, 5.5).await;
    registry
        .finish_run(&third, RunStatus::Finished)
        .await
        .expect("finish");
    let added = sync::run_tables(&ctx, &plan(), &tables)
        .await
        .expect("third sync");
    assert_eq!(added.rows(), 1 + 2, "{location}: {}", added.detail());
    runs.push(expected_run(&third, "FINISHED"));
    metrics.extend(expected_metrics(&third, 5.5));
    assert_eq!(warehouse_runs(&wh).await, sorted_runs(runs.clone()));
    assert_eq!(
        warehouse_metrics(&wh).await,
        sorted_metrics(metrics.clone())
    );

    // A metric logged again on an ended run, which is ended again: updated, not duplicated.
    registry
        .log_metrics(
            &first,
            &[Metric {
                key: "mae".into(),
                value: 0.75,
                step: 2,
            }],
        )
        .await
        .expect("new value");
    registry
        .finish_run(&first, RunStatus::Finished)
        .await
        .expect("ended again");
    let updated = sync::run_tables(&ctx, &plan(), &tables)
        .await
        .expect("fourth sync");
    assert_eq!(updated.rows(), 1 + 2, "{location}: {}", updated.detail());
    metrics.retain(|m| !(m.0 == first.0 && m.1 == "mae"));
    metrics.push((first.0.clone(), "mae".into(), 0.75, 2));
    assert_eq!(
        warehouse_metrics(&wh).await,
        sorted_metrics(metrics.clone())
    );
    assert_eq!(count(&wh, "model_runs").await, 4);

    // The running run is picked up once it ends.
    assert!(!warehouse_run_ids(&wh).await.contains(&running.0));
    registry
        .finish_run(&running, RunStatus::Finished)
        .await
        .expect("finish");
    let ended = sync::run_tables(&ctx, &plan(), &tables)
        .await
        .expect("fifth sync");
    assert_eq!(ended.rows(), 1 + 2, "{location}: {}", ended.detail());
    runs.push(expected_run(&running, "FINISHED"));
    metrics.extend(expected_metrics(&running, 4.5));
    assert_eq!(warehouse_runs(&wh).await, sorted_runs(runs));
    assert_eq!(warehouse_metrics(&wh).await, sorted_metrics(metrics));
    assert_eq!(sorted(warehouse_run_ids(&wh).await).len(), 5);
}

#[tokio::test]
async fn model_runs_of_mlflow_with_the_artifact_proxy_are_mirrored() {
    model_runs_are_mirrored(mlflow_registry("PRICECAST_TEST_MLFLOW_URI")).await;
}

#[tokio::test]
async fn model_runs_of_mlflow_with_s3_artifacts_are_mirrored() {
    model_runs_are_mirrored(mlflow_registry("PRICECAST_TEST_MLFLOW_S3_URI")).await;
}

#[tokio::test]
async fn model_runs_of_the_local_registry_are_mirrored() {
    let lake = tempfile::tempdir().expect("lake folder");
    model_runs_are_mirrored(local_registry(lake.path()).await).await;
}

#[tokio::test]
async fn model_runs_that_ended_within_the_settle_margin_wait_for_the_next_sync() {
    let lake = tempfile::tempdir().expect("lake folder");
    let registry = Arc::new(local_registry(lake.path()).await);
    let db = TestDb::postgres().await;
    let wh = TestWarehouse::new().await;
    let ctx = context(&db.store, wh.default_config());
    let name = "bitcoin_prediction_s3";
    let experiment = registry.experiment(name).await.expect("experiment");
    let run = logged_run(&registry, &experiment, 1.0).await;
    registry
        .finish_run(&run, RunStatus::Finished)
        .await
        .expect("finish");
    let settling = SyncPlan {
        settle: chrono::Duration::hours(1),
        ..plan()
    };
    let tables = model_runs_only(&registry, name);
    let summary = sync::run_tables(&ctx, &settling, &tables)
        .await
        .expect("sync");
    assert_eq!(summary.rows(), 0, "{}", summary.detail());
    assert_eq!(count(&wh, "model_runs").await, 0);
    // Both kinds of table in one run.
    db.load_bundled("BTCUSDT", 5).await;
    let both = SyncTables {
        candles: true,
        ..tables
    };
    let summary = sync::run_tables(&ctx, &plan(), &both).await.expect("sync");
    assert_eq!(summary.rows(), 5 + 1 + 2, "{}", summary.detail());
    assert_eq!(warehouse_run_ids(&wh).await, vec![run.0]);
}

fn features_only(lake: &Lake) -> SyncTables {
    SyncTables {
        candles: false,
        model_runs: None,
        features: Some(lake.clone()),
    }
}

async fn file_lake(dir: &std::path::Path) -> Lake {
    let url = format!("file://{}", dir.display());
    Lake::open(&LakeArgs::for_url(url.parse().expect("lake url")))
        .await
        .expect("lake")
}

/// Exports the store's new candles to the lake and builds their features with `horizons`.
async fn export_and_build(store: &Store, lake: &Lake, horizons: Vec<u32>) {
    export_and_build_features(
        store,
        lake,
        &btc(),
        Interval::H1,
        FeatureSpec::all(horizons),
    )
    .await
    .expect("export and features");
}

/// Builds the features of the lake's candles with `horizons`.
async fn build_features(lake: &Lake, horizons: Vec<u32>) {
    pipeline::build_features(lake, &btc(), Interval::H1, FeatureSpec::all(horizons))
        .await
        .expect("features");
}

/// One feature row as text and numbers: open time, then close, features and targets.
type FeatureRowValues = (String, Vec<Option<f64>>);

/// The lake's feature frame of BTCUSDT 1h as rows, with the names of its value columns.
async fn lake_features(lake: &Lake) -> (Vec<String>, String, Vec<FeatureRowValues>) {
    let (manifest, frame) = read_feature_frame(lake, &btc(), Interval::H1)
        .await
        .expect("feature frame");
    let spec = manifest.spec();
    let targets: Vec<_> = manifest
        .horizons
        .iter()
        .map(|&h| feature_rows(&frame, &spec, Some(h)).expect("rows").target)
        .collect();
    let rows = feature_rows(&frame, &spec, None).expect("rows");
    let mut columns = vec!["close".to_owned()];
    columns.extend(manifest.features.iter().cloned());
    columns.extend(manifest.targets.iter().cloned());
    let values = (0..rows.len())
        .map(|i| {
            let time = chrono::DateTime::from_timestamp_millis(rows.open_time_ms[i])
                .expect("open time")
                .format("%Y-%m-%dT%H:%M:%S%.3f")
                .to_string();
            let mut values = vec![Some(rows.close[i])];
            values.extend(rows.row(i).iter().map(|&x| Some(x)));
            values.extend(targets.iter().map(|t| t[i]));
            (time, values)
        })
        .collect();
    (columns, manifest.feature_set_hash, values)
}

/// The warehouse's feature rows of BTCUSDT 1h, in open-time order, with the hash of each.
async fn warehouse_features(
    wh: &TestWarehouse,
    columns: &[String],
) -> (Vec<String>, Vec<FeatureRowValues>) {
    let list: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    let sql = format!(
        "SELECT to_char(open_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS'), \
         feature_set_hash, {} FROM pricecast.features \
         WHERE symbol = 'BTCUSDT' AND interval = '1h' ORDER BY open_time",
        list.join(", ")
    );
    let rows: Vec<sqlx::postgres::PgRow> = sqlx::query(&sql)
        .fetch_all(&wh.pool)
        .await
        .expect("read the warehouse");
    use sqlx::Row;
    let hashes = rows
        .iter()
        .map(|r| r.try_get::<String, _>(1).expect("hash"))
        .collect();
    let values = rows
        .iter()
        .map(|r| {
            let time: String = r.try_get(0).expect("time");
            let values = (0..columns.len())
                .map(|i| r.try_get::<Option<f64>, _>(i + 2).expect("double"))
                .collect();
            (time, values)
        })
        .collect();
    (hashes, values)
}

async fn distinct_feature_keys(wh: &TestWarehouse) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM (SELECT DISTINCT symbol, interval, open_time FROM pricecast.features) k",
    )
    .fetch_one(&wh.pool)
    .await
    .expect("count");
    n
}

#[tokio::test]
async fn feature_frames_are_mirrored_and_new_candles_add_their_rows_without_duplicates() {
    let db = TestDb::postgres().await;
    let wh = TestWarehouse::new().await;
    let dir = tempfile::tempdir().expect("lake dir");
    let lake = file_lake(dir.path()).await;
    let all = db.load_bundled("BTCUSDT", 1000).await;
    sqlx::query("DELETE FROM candles WHERE open_time > $1")
        .bind(all[899].open_time)
        .execute(db.pg_pool())
        .await
        .expect("trim");
    let ctx = context(&db.store, wh.config(300));
    let tables = features_only(&lake);

    let before = sync::run_tables(&ctx, &plan(), &tables)
        .await
        .expect("a series without features is skipped");
    assert_eq!(before.rows(), 0, "{}", before.detail());

    export_and_build(&db.store, &lake, vec![1, 3]).await;
    let (columns, hash, expected) = lake_features(&lake).await;
    assert!(expected.len() > 800, "{} feature rows", expected.len());
    let first = sync::run_tables(&ctx, &plan(), &tables)
        .await
        .expect("first sync");
    assert_eq!(
        first.rows(),
        expected.len() as u64 as i64,
        "{}",
        first.detail()
    );
    let (hashes, rows) = warehouse_features(&wh, &columns).await;
    assert_eq!(rows.len(), expected.len());
    assert_eq!(rows[0], expected[0]);
    assert_eq!(rows[400], expected[400]);
    assert_eq!(rows.last(), expected.last());
    assert_eq!(rows, expected);
    assert!(hashes.iter().all(|h| *h == hash));
    assert_eq!(count(&wh, "features_staging").await, 0);
    let watermark = db
        .store
        .watermark(&sync::features::watermark_job(&hash), &btc(), Interval::H1)
        .await
        .expect("watermark");
    let newest = all[899].open_time;
    assert_eq!(watermark, Some(newest));

    let again = sync::run_tables(&ctx, &plan(), &tables)
        .await
        .expect("second sync");
    assert!(
        (again.rows() as usize) < 24 * 6,
        "only the days a rebuild may have touched are sent again: {}",
        again.detail()
    );
    assert_eq!(count(&wh, "features").await, expected.len() as i64);
    assert_eq!(distinct_feature_keys(&wh).await, expected.len() as i64);
    assert_eq!(warehouse_features(&wh, &columns).await.1, expected);

    db.store
        .upsert_candles(&all[900..])
        .await
        .expect("new candles");
    export_and_build(&db.store, &lake, vec![1, 3]).await;
    let (_, _, grown) = lake_features(&lake).await;
    assert_eq!(grown.len(), expected.len() + 100);
    let third = sync::run_tables(&ctx, &plan(), &tables)
        .await
        .expect("third sync");
    assert!(third.rows() >= 100, "{}", third.detail());
    assert_eq!(count(&wh, "features").await, grown.len() as i64);
    assert_eq!(distinct_feature_keys(&wh).await, grown.len() as i64);
    // The rows that were newest before now have their targets, sent again with the new rows.
    let rows = warehouse_features(&wh, &columns).await.1;
    assert_eq!(rows, grown);
    assert!(rows[expected.len() - 1].1.iter().all(Option::is_some));
}

#[tokio::test]
async fn a_feature_definition_the_warehouse_table_does_not_match_is_a_clear_error() {
    let db = TestDb::postgres().await;
    let wh = TestWarehouse::new().await;
    db.load_bundled("BTCUSDT", 200).await;
    let ctx = context(&db.store, wh.config(300));

    let dir = tempfile::tempdir().expect("lake dir");
    let lake = file_lake(dir.path()).await;
    let tables = features_only(&lake);
    export_and_build(&db.store, &lake, vec![1]).await;
    sync::run_tables(&ctx, &plan(), &tables)
        .await
        .expect("first definition");

    build_features(&lake, vec![1, 3]).await;
    let err = sync::run_tables(&ctx, &plan(), &tables)
        .await
        .expect_err("a new target column");
    let message = err.to_string();
    assert!(
        matches!(
            WarehouseError::of(&err),
            Some(WarehouseError::Schema { .. })
        ),
        "{message}"
    );
    assert!(
        message.contains("\"pricecast\".\"features\"") && message.contains("price_t+3"),
        "{message}"
    );

    sqlx::query("DROP TABLE pricecast.features, pricecast.features_staging")
        .execute(&wh.pool)
        .await
        .expect("drop");
    sync::run_tables(&ctx, &plan(), &tables)
        .await
        .expect("the wider definition");
    build_features(&lake, vec![1]).await;
    let err = sync::run_tables(&ctx, &plan(), &tables)
        .await
        .expect_err("a dropped target column");
    let message = err.to_string();
    assert!(
        message.contains("\"pricecast\".\"features\"") && message.contains("price_t+3"),
        "{message}"
    );
}
