//! Sync job tests: real PostgreSQL (and SQLite) stores into a real warehouse reached through
//! unixODBC and the PostgreSQL ODBC driver (a PostgreSQL 15 database standing in for Databricks:
//! same staging + MERGE path).

use std::process::Command;

use pricecast_jobs::sync::{self, CANDLES_WATERMARK, SyncContext, SyncMode, SyncPlan};
use pricecast_shared::Error;
use pricecast_shared::domain::{Candle, Interval, Symbol};
use pricecast_shared::runner;
use pricecast_shared::store::{CandleQuery, JobStatus, Store};
use pricecast_shared::warehouse::WarehouseConfig;
use pricecast_tests::db::TestDb;
use pricecast_tests::warehouse::TestWarehouse;
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
        assert_eq!(first.rows, 1500, "{}", first.detail);
        assert!(first.detail.contains("Pwd=***"), "{}", first.detail);
        assert_eq!(
            warehouse_rows(&wh, "candles").await,
            expected_rows(&stored(&db.store).await),
            "{}",
            db.store.backend()
        );
        assert_eq!(count(&wh, "candles_staging").await, 0);
        let second = sync::run(&ctx, &plan()).await.expect("second sync");
        assert_eq!(second.rows, 0, "{}", second.detail);
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
        .execute(match &db.store {
            Store::Postgres(pg) => pg.pool(),
            Store::Sqlite(_) => unreachable!("a PostgreSQL store"),
        })
        .await
        .expect("trim");
    let ctx = context(&db.store, wh.config(300));
    assert_eq!(sync::run(&ctx, &plan()).await.expect("sync").rows, 990);

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
    assert_eq!(summary.rows, 11, "{}", summary.detail);
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
    assert_eq!(summary.rows, 700);
    assert_eq!(
        warehouse_rows(&wh, "candles").await,
        expected_rows(&stored(&db.store).await)
    );
    assert_eq!(count(&wh, "candles_staging").await, 0);
    // And again after a crash with everything already merged: still no duplicates.
    db.load_bundled("BTCUSDT", 710).await;
    let err = sync::run(&ctx, &crashing).await.expect_err("stopped");
    assert!(matches!(err, Error::Warehouse { .. }), "{err}");
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
    assert!(matches!(err, Error::WarehouseSchema { .. }), "{message}");
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
    assert!(matches!(err, Error::Warehouse { .. }), "{message}");
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

    let (code, text) = run(&[("SYNC_ODBC_CONNECTION_STRING", &wh.connection_string)]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(count(&wh, "candles").await, 50);

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
    assert_eq!(sync::run(&ctx, &plan()).await.expect("sync").rows, 3);
    assert_eq!(
        warehouse_rows(&wh, "candles").await,
        expected_rows(&stored(&db.store).await)
    );
    assert_eq!(count(&wh, "candles_staging").await, 0);
}
