//! The bulk path (binary COPY into staging, one upsert) against the per-series upsert, on
//! real PostgreSQL: same rows, same decimal text, same source, same counts.

use chrono::{DateTime, TimeZone, Utc};
use pricecast_binance::archive::{BulkArchive, Month};
use pricecast_binance::client::{BinanceClient, BinanceConfig, RetryPolicy};
use pricecast_binance::replay::bundled_candles;
use pricecast_binance::source::KlineSource;
use pricecast_jobs::collect::{self, CollectContext, CollectPlan};
use pricecast_shared::domain::{Candle, Interval, Symbol};
use pricecast_shared::series::SeriesScope;
use pricecast_tests::db::TestDb;
use pricecast_tests::fake_binance::FakeBinance;
use rust_decimal::Decimal;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn btc() -> Symbol {
    "BTCUSDT".parse().expect("symbol")
}

/// Every stored column as PostgreSQL prints it, oldest first.
async fn stored_as_text(db: &TestDb) -> Vec<Vec<Option<String>>> {
    let rows: Vec<(Vec<Option<String>>,)> = sqlx::query_as(
        "SELECT ARRAY[symbol, interval, open_time::text, open::text, high::text, low::text, \
             close::text, volume::text, quote_volume::text, trades::text, \
             taker_buy_base::text, taker_buy_quote::text, close_time::text, source] \
         FROM candles ORDER BY symbol, interval, open_time",
    )
    .fetch_all(db.pg_pool())
    .await
    .expect("stored candles");
    rows.into_iter().map(|(row,)| row).collect()
}

#[tokio::test]
async fn the_copy_path_stores_exactly_what_the_upsert_path_stores() {
    let candles = bundled_candles(&btc()).expect("bundled history");
    let by_upsert = TestDb::postgres().await;
    let by_copy = TestDb::postgres().await;
    let mut upserted = 0;
    for chunk in candles.chunks(1000) {
        upserted += by_upsert.store.upsert_candles(chunk).await.expect("upsert");
    }
    let copied = by_copy
        .store
        .upsert_candles_bulk(&candles)
        .await
        .expect("bulk load");
    assert_eq!(copied, candles.len() as u64);
    assert_eq!(copied, upserted);
    let expected = stored_as_text(&by_upsert).await;
    assert_eq!(expected.len(), candles.len());
    let got = stored_as_text(&by_copy).await;
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g, e, "first differing row");
    }
    assert_eq!(got, expected);
    assert_eq!(
        expected[0][3].as_deref(),
        Some(candles[0].open.to_string().as_str()),
        "Binance's scale is kept"
    );

    // Equal values change nothing; one changed value changes one row.
    let rerun = by_copy
        .store
        .upsert_candles_bulk(&candles)
        .await
        .expect("re-run");
    assert_eq!(rerun, 0);
    let mut changed = candles.clone();
    changed[10].close = changed[10].high;
    changed[10].volume += Decimal::new(1, 8);
    let rerun = by_copy
        .store
        .upsert_candles_bulk(&changed)
        .await
        .expect("one change");
    assert_eq!(rerun, 1);
    let after = stored_as_text(&by_copy).await;
    assert_eq!(
        after[10][7].as_deref(),
        Some(changed[10].volume.to_string().as_str())
    );
    assert_eq!(after.len(), candles.len());
}

#[tokio::test]
async fn numerics_sent_through_copy_come_back_as_the_same_text() {
    let db = TestDb::postgres().await;
    let template = bundled_candles(&btc()).expect("bundled history")[0].clone();
    let values = [
        "0",
        "0.00000001",
        "0.0000000000000000000000000001",
        "-0.00000001",
        "1",
        "1.0",
        "10000",
        "9999.9999",
        "12345678.12345678",
        "39610.14000000",
        "100000000.00000000",
        "79228162514264337593543950335",
        "-79228162514264337593543950335",
        "7.9228162514264337593543950335",
        "0.1000",
        "1000.0001",
    ];
    let candles: Vec<Candle> = values
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let mut c = template.clone();
            let step = chrono::Duration::hours(i as i64);
            c.open_time += step;
            c.close_time += step;
            c.quote_volume = Some(text.parse().expect("decimal"));
            c.taker_buy_base = None;
            c.trades = if i % 2 == 0 {
                None
            } else {
                Some(i64::MAX - i as i64)
            };
            c
        })
        .collect();
    db.store
        .upsert_candles_bulk(&candles)
        .await
        .expect("bulk load");
    let rows: Vec<(Option<String>, Option<String>, Option<i64>)> = sqlx::query_as(
        "SELECT quote_volume::text, taker_buy_base::text, trades FROM candles ORDER BY open_time",
    )
    .fetch_all(db.pg_pool())
    .await
    .expect("read back");
    assert_eq!(rows.len(), values.len());
    for ((text, c), (back, null, trades)) in values.iter().zip(&candles).zip(rows) {
        assert_eq!(back.as_deref(), Some(*text));
        assert_eq!(null, None, "{text}");
        assert_eq!(trades, c.trades, "{text}");
    }
}

fn archive_context(db: &TestDb, fake: &FakeBinance) -> CollectContext {
    let client = BinanceClient::new(BinanceConfig {
        base_url: fake.base_url().parse().expect("url"),
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(400),
            max_total_delay: Duration::from_secs(2),
        },
        weight_limit: 6000,
    })
    .expect("client");
    CollectContext {
        store: db.store.clone(),
        source: KlineSource::Binance(client.clone()),
        archive: Some(BulkArchive::new(
            client,
            fake.archive_url().parse().expect("url"),
        )),
        cancel: CancellationToken::new(),
    }
}

fn plan(since: DateTime<Utc>) -> CollectPlan {
    CollectPlan {
        symbols: vec![btc()],
        intervals: vec![Interval::H1],
        since: Some(since),
        check_gaps: false,
        repair: false,
        scope: SeriesScope::default(),
    }
}

#[tokio::test]
async fn an_archive_backfill_into_postgres_is_whole_months_and_a_rerun_changes_nothing() {
    let fake = FakeBinance::start().await;
    let db = TestDb::postgres().await;
    let since = Utc
        .with_ymd_and_hms(2024, 11, 1, 0, 0, 0)
        .single()
        .expect("date");
    let ctx = archive_context(&db, &fake);
    let first = collect::run(&ctx, &plan(since)).await.expect("backfill");
    let stored = stored_as_text(&db).await;
    assert_eq!(first.rows(), stored.len() as i64);
    assert!(
        stored
            .iter()
            .any(|row| row[13].as_deref() == Some("binance_archive"))
    );
    let again = collect::run(&ctx, &plan(since)).await.expect("re-run");
    assert_eq!(again.rows(), 0);
    assert_eq!(stored_as_text(&db).await, stored);
}

#[tokio::test]
async fn a_corrupt_archive_month_stores_nothing_of_it_in_postgres() {
    let fake = FakeBinance::start().await;
    fake.corrupt_archive_month(Month {
        year: 2024,
        month: 12,
    });
    let db = TestDb::postgres().await;
    let since = Utc
        .with_ymd_and_hms(2024, 11, 1, 0, 0, 0)
        .single()
        .expect("date");
    collect::run(&archive_context(&db, &fake), &plan(since))
        .await
        .expect_err("checksum mismatch");
    let december = Month {
        year: 2024,
        month: 12,
    }
    .start_ms();
    let stored = db.btc_candles(Interval::H1).await;
    assert_eq!(stored.len(), 30 * 24, "November whole");
    assert!(
        stored
            .iter()
            .all(|c| c.open_time.timestamp_millis() < december)
    );
}
