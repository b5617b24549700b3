//! Collect job tests: the fake Binance server into real PostgreSQL and SQLite, through every
//! fault Binance can throw at it.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use pricecast_binance::archive::{BulkArchive, Month};
use pricecast_binance::client::{BinanceClient, BinanceConfig, RetryPolicy};
use pricecast_binance::source::KlineSource;
use pricecast_jobs::collect::{self, CollectContext, CollectPlan};
use pricecast_shared::Error;
use pricecast_shared::domain::{Interval, Symbol};
use pricecast_shared::report::{GapCounts, JobReport, Work};
use pricecast_shared::runner::{self, RunOutcome};
use pricecast_shared::series::SeriesScope;
use pricecast_shared::store::{CandleQuery, JobStatus, Store};
use pricecast_tests::db::TestDb;
use pricecast_tests::fake_binance::{FakeBinance, Fault, synthetic_series};
use tokio_util::sync::CancellationToken;

const BUNDLED_CANDLES: usize = 26_279;

fn btc() -> Symbol {
    "BTCUSDT".parse().expect("symbol")
}

fn bundled_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2022, 4, 29, 0, 0, 0)
        .single()
        .expect("date")
}

fn client(fake: &FakeBinance, request_timeout: Duration, retry_budget: Duration) -> KlineSource {
    KlineSource::Binance(
        BinanceClient::new(BinanceConfig {
            base_url: fake.base_url().parse().expect("url"),
            request_timeout,
            retry: RetryPolicy {
                min_delay: Duration::from_millis(50),
                max_delay: Duration::from_millis(400),
                max_total_delay: retry_budget,
            },
            weight_limit: 6000,
        })
        .expect("client"),
    )
}

fn context(store: &Store, fake: &FakeBinance) -> CollectContext {
    CollectContext {
        store: store.clone(),
        source: client(fake, Duration::from_secs(5), Duration::from_secs(10)),
        archive: None,
        cancel: CancellationToken::new(),
    }
}

fn plan(interval: Interval, since: Option<DateTime<Utc>>) -> CollectPlan {
    CollectPlan {
        symbols: vec![btc()],
        intervals: vec![interval],
        since,
        check_gaps: false,
        repair: false,
        scope: SeriesScope::default(),
    }
}

#[tokio::test]
async fn backfill_stores_every_bundled_candle_exactly_and_reruns_change_nothing() {
    let fake = FakeBinance::start().await;
    for db in TestDb::both().await {
        let ctx = context(&db.store, &fake);
        let summary = collect::run(&ctx, &plan(Interval::H1, Some(bundled_start())))
            .await
            .expect("backfill");
        assert_eq!(
            summary.rows(),
            BUNDLED_CANDLES as i64,
            "{}",
            db.store.backend()
        );
        assert_eq!(db.btc_candles(Interval::H1).await.len(), BUNDLED_CANDLES);

        let served = fake.series("BTCUSDT", Interval::H1);
        let stored = db
            .store
            .candles(&CandleQuery {
                symbol: btc(),
                interval: Interval::H1,
                from: None,
                to: None,
                limit: 3,
                offset: 0,
                newest_first: false,
            })
            .await
            .expect("candles");
        assert_eq!(stored[0], served[0]);
        assert_eq!(stored[0].open.to_string(), "39610.14000000");
        assert_eq!(stored[0].trades, served[0].trades);

        // Same range again: nothing new, nothing duplicated.
        let again = collect::run(&ctx, &plan(Interval::H1, Some(bundled_start())))
            .await
            .expect("re-run");
        assert_eq!(again.rows(), 0);
        assert_eq!(db.btc_candles(Interval::H1).await.len(), BUNDLED_CANDLES);
    }
}

#[tokio::test]
async fn a_changed_candle_is_updated_not_duplicated() {
    let fake = FakeBinance::start().await;
    let db = TestDb::postgres().await;
    let ctx = context(&db.store, &fake);
    let since = Utc
        .with_ymd_and_hms(2025, 4, 1, 0, 0, 0)
        .single()
        .expect("date");
    collect::run(&ctx, &plan(Interval::H1, Some(since)))
        .await
        .expect("first run");
    let before = db.btc_candles(Interval::H1).await.len();

    let mut series = fake.series("BTCUSDT", Interval::H1);
    let index = series.len() - 10;
    series[index].close = series[index].high;
    series[index].volume += rust_decimal::Decimal::ONE;
    let changed = series[index].clone();
    fake.set_series(series);

    let summary = collect::run(&ctx, &plan(Interval::H1, Some(since)))
        .await
        .expect("second run");
    assert_eq!(summary.rows(), 1);
    assert_eq!(db.btc_candles(Interval::H1).await.len(), before);
    let stored = db
        .store
        .candles(&CandleQuery {
            symbol: btc(),
            interval: Interval::H1,
            from: Some(changed.open_time),
            to: Some(changed.open_time),
            limit: 1,
            offset: 0,
            newest_first: false,
        })
        .await
        .expect("candle");
    assert_eq!(stored, vec![changed]);
}

#[tokio::test]
async fn runs_are_incremental_from_the_newest_stored_candle() {
    let fake = FakeBinance::start().await;
    let db = TestDb::sqlite().await;
    let loaded = db.load_bundled("BTCUSDT", 50).await;
    let ctx = context(&db.store, &fake);
    let summary = collect::run(&ctx, &plan(Interval::H1, None))
        .await
        .expect("incremental run");
    assert_eq!(summary.rows(), 0);
    let requests = fake.requests();
    let newest = loaded.last().expect("loaded").open_time.timestamp_millis();
    assert_eq!(requests[0].start_time, Some(newest + 3_600_000));
    assert_eq!(requests[0].limit, 1000);
}

#[tokio::test]
async fn only_closed_candles_are_stored() {
    let fake = FakeBinance::start().await;
    let db = TestDb::postgres().await;
    let mut series = synthetic_series("BTCUSDT", Interval::M1, 30);
    // Binance also returns the candle in progress: one that closes in the future.
    let mut open = series.last().expect("series").clone();
    let now_floor = Interval::M1.floor(Utc::now().timestamp_millis());
    open.open_time = DateTime::from_timestamp_millis(now_floor).expect("time");
    open.close_time = DateTime::from_timestamp_millis(now_floor + 59_999).expect("time");
    series.push(open);
    fake.set_series(series);
    let ctx = context(&db.store, &fake);
    let since = Utc::now() - chrono::Duration::hours(2);
    collect::run(&ctx, &plan(Interval::M1, Some(since)))
        .await
        .expect("run");
    let stored = db.btc_candles(Interval::M1).await.len();
    assert_eq!(stored, 30);
    let newest = db
        .store
        .latest_candle(&btc(), Interval::M1)
        .await
        .expect("query")
        .expect("candle");
    assert!(newest.close_time < Utc::now());
}

#[tokio::test]
async fn rate_limited_requests_wait_retry_after_then_succeed() {
    let fake = FakeBinance::start().await;
    let db = TestDb::sqlite().await;
    fake.push_fault(Fault::RateLimited {
        retry_after_secs: 1,
    });
    let ctx = context(&db.store, &fake);
    let started = Instant::now();
    let since = Utc
        .with_ymd_and_hms(2025, 4, 20, 0, 0, 0)
        .single()
        .expect("date");
    collect::run(&ctx, &plan(Interval::H1, Some(since)))
        .await
        .expect("retried after 429");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
    assert!(!db.btc_candles(Interval::H1).await.is_empty());
    let requests = fake.requests();
    assert_eq!(requests[0].start_time, requests[1].start_time);
}

#[tokio::test]
async fn server_errors_and_timeouts_are_retried() {
    let fake = FakeBinance::start().await;
    let db = TestDb::sqlite().await;
    fake.push_fault(Fault::ServerError);
    fake.push_fault(Fault::Slow(Duration::from_secs(3)));
    fake.push_fault(Fault::ServerError);
    let ctx = CollectContext {
        source: client(&fake, Duration::from_millis(800), Duration::from_secs(10)),
        ..context(&db.store, &fake)
    };
    let since = Utc
        .with_ymd_and_hms(2025, 4, 27, 0, 0, 0)
        .single()
        .expect("date");
    collect::run(&ctx, &plan(Interval::H1, Some(since)))
        .await
        .expect("succeeds after retries");
    assert_eq!(db.btc_candles(Interval::H1).await.len(), 32);
    assert!(fake.requests().len() >= 4);
}

#[tokio::test]
async fn retries_stop_within_the_time_budget_with_a_clear_error() {
    let fake = FakeBinance::start().await;
    let db = TestDb::sqlite().await;
    for _ in 0..200 {
        fake.push_fault(Fault::ServerError);
    }
    let ctx = CollectContext {
        source: client(&fake, Duration::from_secs(2), Duration::from_secs(2)),
        ..context(&db.store, &fake)
    };
    let started = Instant::now();
    let err = collect::run(&ctx, &plan(Interval::H1, Some(bundled_start())))
        .await
        .expect_err("persistent 500s");
    assert!(matches!(err, Error::RetriesExhausted { .. }), "{err}");
    assert!(err.to_string().contains("HTTP 500"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(db.btc_candles(Interval::H1).await.len(), 0);
}

#[tokio::test]
async fn a_ban_stops_the_job_with_a_clear_error_and_a_failed_run() {
    let fake = FakeBinance::start().await;
    let db = TestDb::postgres().await;
    fake.push_fault(Fault::Banned);
    let ctx = context(&db.store, &fake);
    let p = plan(Interval::H1, Some(bundled_start()));
    let err = runner::run_locked(&db.store, collect::JOB, || collect::run(&ctx, &p))
        .await
        .expect_err("banned");
    assert!(matches!(err, Error::Banned { .. }), "{err}");
    assert!(err.to_string().contains("HTTP 418"), "{err}");
    assert_eq!(fake.requests().len(), 1, "a ban must not be retried");
    let runs = db.store.job_runs(Some("collect"), 5).await.expect("runs");
    assert_eq!(runs[0].status, JobStatus::Failed);
    assert!(runs[0].error.as_deref().unwrap_or_default().contains("418"));
}

#[tokio::test]
async fn bad_pages_are_rejected_whole_naming_the_problem() {
    let fake = FakeBinance::start().await;
    let cases = [
        (Fault::Malformed, "malformed kline page"),
        (Fault::HighBelowLow(5), "is below low"),
        (Fault::ZeroPrice(7), "close must be > 0"),
        (Fault::Misaligned(3), "not aligned to the 1h interval"),
        (Fault::Duplicate(2), "duplicate open_time"),
        (Fault::OutOfOrder(4), "out of order"),
    ];
    for (fault, expected) in cases {
        for db in TestDb::both().await {
            // The first page is good and kept; the second is bad and none of it is written.
            fake.push_fault(Fault::Pass);
            fake.push_fault(fault.clone());
            let ctx = context(&db.store, &fake);
            let err = collect::run(&ctx, &plan(Interval::H1, Some(bundled_start())))
                .await
                .expect_err(expected);
            assert!(err.to_string().contains(expected), "{fault:?}: {err}");
            assert_eq!(
                db.btc_candles(Interval::H1).await.len(),
                1000,
                "{fault:?} on {}",
                db.store.backend()
            );
        }
    }
}

#[tokio::test]
async fn gaps_are_listed_repaired_and_exchange_gaps_remembered() {
    let fake = FakeBinance::start().await;
    for db in TestDb::both().await {
        let ctx = context(&db.store, &fake);
        collect::run(&ctx, &plan(Interval::H1, Some(bundled_start())))
            .await
            .expect("backfill");
        // Lose three stored candles, as after an outage of ours.
        let lost_from = Utc
            .with_ymd_and_hms(2024, 6, 1, 10, 0, 0)
            .single()
            .expect("date");
        delete_range(&db.store, lost_from, lost_from + chrono::Duration::hours(2)).await;

        let gaps = db.store.gaps(&btc(), Interval::H1).await.expect("gaps");
        assert_eq!(gaps.len(), 2, "{gaps:?}");
        let exchange_gap_start = Utc
            .with_ymd_and_hms(2023, 3, 24, 13, 0, 0)
            .single()
            .expect("date");
        assert_eq!(gaps[0].start, exchange_gap_start);
        assert_eq!(gaps[0].missing(), 1);
        assert_eq!(gaps[1].start, lost_from);
        assert_eq!(gaps[1].missing(), 3);

        let repair = CollectPlan {
            repair: true,
            ..plan(Interval::H1, None)
        };
        let summary = collect::run(&ctx, &repair).await.expect("repair");
        let repaired = summary
            .work("BTCUSDT", Interval::H1)
            .and_then(Work::as_collect)
            .expect("BTCUSDT 1h collected");
        assert_eq!(
            repaired.gaps,
            Some(GapCounts {
                open: 0,
                known_exchange_gaps: 1
            }),
            "{}",
            summary.detail()
        );
        let gaps = db.store.gaps(&btc(), Interval::H1).await.expect("gaps");
        assert_eq!(gaps.len(), 1);
        assert!(gaps[0].known_exchange_gap);
        assert_eq!(db.btc_candles(Interval::H1).await.len(), BUNDLED_CANDLES);

        // The known exchange gap is not fetched again.
        let before = fake.requests().len();
        collect::run(&ctx, &repair).await.expect("second repair");
        let asked_for_gap = fake.requests()[before..]
            .iter()
            .any(|r| r.start_time == Some(exchange_gap_start.timestamp_millis()));
        assert!(!asked_for_gap, "a known exchange gap was re-fetched");
    }
}

async fn delete_range(store: &Store, from: DateTime<Utc>, to: DateTime<Utc>) {
    match store {
        Store::Postgres(pg) => {
            sqlx::query("DELETE FROM candles WHERE open_time BETWEEN $1 AND $2")
                .bind(from)
                .bind(to)
                .execute(pg.pool())
                .await
                .expect("delete");
        }
        Store::Sqlite(lite) => {
            sqlx::query("DELETE FROM candles WHERE open_time BETWEEN ?1 AND ?2")
                .bind(from.timestamp_millis())
                .bind(to.timestamp_millis())
                .execute(lite.pool())
                .await
                .expect("delete");
        }
    }
}

#[tokio::test]
async fn a_second_concurrent_run_skips_and_says_so() {
    for db in TestDb::both().await {
        let held = db
            .store
            .try_lock_job(collect::JOB)
            .await
            .expect("lock")
            .expect("free");
        let outcome = runner::run_locked(&db.store, collect::JOB, || async {
            panic!("must not run while another run holds the lock")
        })
        .await
        .expect("skip is not an error");
        assert_eq!(outcome, RunOutcome::Skipped);
        let runs = db.store.job_runs(Some("collect"), 5).await.expect("runs");
        assert_eq!(runs[0].status, JobStatus::Skipped);
        held.release().await;
        let outcome = runner::run_locked(&db.store, collect::JOB, || async {
            Ok(JobReport::default())
        })
        .await
        .expect("runs once the lock is free");
        assert!(matches!(outcome, RunOutcome::Completed(_)));
    }
}

#[tokio::test]
async fn cancellation_keeps_whole_batches_only() {
    let fake = FakeBinance::start().await;
    let db = TestDb::postgres().await;
    fake.push_fault(Fault::Pass);
    fake.push_fault(Fault::Slow(Duration::from_secs(5)));
    let ctx = context(&db.store, &fake);
    let cancel = ctx.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        cancel.cancel();
    });
    let err = collect::run(&ctx, &plan(Interval::H1, Some(bundled_start())))
        .await
        .expect_err("cancelled");
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert_eq!(db.btc_candles(Interval::H1).await.len(), 1000);
}

#[tokio::test]
async fn the_seed_apps_bitcoin_prices_view_shows_the_finest_btc_series() {
    for db in TestDb::both().await {
        let candles = db.load_bundled("BTCUSDT", 30).await;
        let newest = candles.last().expect("candles");
        let sql = "SELECT id, price, source FROM bitcoin_prices ORDER BY id DESC LIMIT 1";
        let (id, price, source): (i64, String, String) = match &db.store {
            Store::Postgres(pg) => {
                let (id, price, source): (i64, rust_decimal::Decimal, String) = sqlx::query_as(sql)
                    .fetch_one(pg.pool())
                    .await
                    .expect("view");
                (id, price.to_string(), source)
            }
            Store::Sqlite(lite) => sqlx::query_as(sql)
                .fetch_one(lite.pool())
                .await
                .expect("view"),
        };
        assert_eq!(id, newest.open_time.timestamp(), "{}", db.store.backend());
        assert_eq!(price, newest.close.to_string());
        assert_eq!(source, "replay");
        let rows: i64 = match &db.store {
            Store::Postgres(pg) => sqlx::query_scalar("SELECT COUNT(*) FROM bitcoin_prices")
                .fetch_one(pg.pool())
                .await
                .expect("count"),
            Store::Sqlite(lite) => sqlx::query_scalar("SELECT COUNT(*) FROM bitcoin_prices")
                .fetch_one(lite.pool())
                .await
                .expect("count"),
        };
        assert_eq!(rows, 30);
    }
}

fn archive_context(store: &Store, fake: &FakeBinance) -> CollectContext {
    let KlineSource::Binance(client) = client(fake, Duration::from_secs(5), Duration::from_secs(2))
    else {
        unreachable!("client() builds a Binance source")
    };
    CollectContext {
        archive: Some(BulkArchive::new(
            client,
            fake.archive_url().parse().expect("url"),
        )),
        ..context(store, fake)
    }
}

fn month(year: i32, month: u32) -> Month {
    Month { year, month }
}

#[tokio::test]
async fn a_backfill_takes_whole_months_from_the_archive_and_the_rest_from_rest() {
    let fake = FakeBinance::start().await;
    // April 2025 is not published yet: the REST API fetches it.
    fake.unpublish_archive_month(month(2025, 4));
    let since = Utc
        .with_ymd_and_hms(2024, 11, 15, 6, 0, 0)
        .single()
        .expect("date");
    let served: Vec<_> = fake
        .series("BTCUSDT", Interval::H1)
        .into_iter()
        .filter(|c| c.open_time >= since)
        .collect();
    let april = month(2025, 4).start_ms();
    for db in TestDb::both().await {
        let before = fake.requests().len();
        let summary = collect::run(
            &archive_context(&db.store, &fake),
            &plan(Interval::H1, Some(since)),
        )
        .await
        .expect("backfill");
        assert_eq!(
            summary.rows(),
            served.len() as i64,
            "{}",
            db.store.backend()
        );
        let backfilled = summary
            .work("BTCUSDT", Interval::H1)
            .and_then(Work::as_collect)
            .expect("BTCUSDT 1h collected");
        assert_eq!(backfilled.archive_months, 5, "{}", summary.detail());
        assert!(
            summary.detail().contains("and 5 archive months"),
            "the detail says it too: {}",
            summary.detail()
        );

        // Exactly what REST alone would have stored, decimals and all; only the source differs.
        let stored = db.btc_candles(Interval::H1).await;
        assert_eq!(stored.len(), served.len());
        for (stored, served) in stored.iter().zip(&served) {
            let from_archive = stored.open_time.timestamp_millis() < april;
            let expected_source = if from_archive {
                "binance_archive"
            } else {
                "binance"
            };
            assert_eq!(stored.source, expected_source, "{}", stored.open_time);
            let mut stored = stored.clone();
            stored.source = served.source.clone();
            assert_eq!(&stored, served);
        }
        // REST started where the archive stopped: the first unpublished month.
        let rest = &fake.requests()[before..];
        assert_eq!(rest[0].start_time, Some(april), "{rest:?}");
    }
    let downloads = fake.archive_downloads();
    for name in [
        "BTCUSDT-1h-2024-11.zip",
        "BTCUSDT-1h-2025-01.zip.CHECKSUM",
        "BTCUSDT-1h-2025-04.zip",
    ] {
        assert!(
            downloads.iter().any(|d| d == name),
            "{name} in {downloads:?}"
        );
    }
    assert!(
        !downloads
            .iter()
            .any(|d| d == "BTCUSDT-1h-2025-04.zip.CHECKSUM")
    );
}

#[tokio::test]
async fn a_corrupt_archive_month_fails_naming_the_file_and_stores_nothing_of_it() {
    let fake = FakeBinance::start().await;
    fake.corrupt_archive_month(month(2024, 12));
    let db = TestDb::sqlite().await;
    let since = Utc
        .with_ymd_and_hms(2024, 11, 1, 0, 0, 0)
        .single()
        .expect("date");
    let err = collect::run(
        &archive_context(&db.store, &fake),
        &plan(Interval::H1, Some(since)),
    )
    .await
    .expect_err("checksum mismatch");
    let text = err.to_string();
    assert!(matches!(err, Error::Archive { .. }), "{text}");
    assert!(
        text.contains("BTCUSDT-1h-2024-12.zip") && text.contains("SHA-256"),
        "{text}"
    );
    // November was verified and stored whole; nothing of December, nothing after it.
    let stored = db.btc_candles(Interval::H1).await;
    assert_eq!(stored.len(), 30 * 24);
    assert!(
        stored
            .iter()
            .all(|c| c.open_time.timestamp_millis() < month(2024, 12).start_ms())
    );
    assert!(
        fake.requests().is_empty(),
        "no REST request after a failed archive month"
    );
}

#[tokio::test]
async fn a_short_range_crossing_a_month_comes_from_rest_alone() {
    let fake = FakeBinance::start().await;
    let db = TestDb::sqlite().await;
    // About 1,440 hourly candles: ten REST requests at most, though it reaches into an
    // earlier month.
    let since = Utc::now() - chrono::Duration::days(60);
    collect::run(
        &archive_context(&db.store, &fake),
        &plan(Interval::H1, Some(since)),
    )
    .await
    .expect("collect");
    assert!(
        fake.archive_downloads().is_empty(),
        "{:?}",
        fake.archive_downloads()
    );
    assert_eq!(
        fake.requests().len(),
        1,
        "one REST request finds nothing newer"
    );
}
