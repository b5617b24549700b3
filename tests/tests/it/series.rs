//! Many series in one run: a failing series does not stop the others, and shards split the
//! series between processes that run at once, each under its own lock.

use std::collections::BTreeSet;

use pricecast_shared::domain::{Interval, Symbol};
use pricecast_shared::report::{JobReport, Work};
use pricecast_shared::series::owner;
use pricecast_shared::store::{JobRun, JobStatus, Store};
use pricecast_tests::db::TestDb;
use pricecast_tests::fake_binance::{FakeBinance, synthetic_series};

use crate::binaries::{run, text};

/// Candles each synthetic series has.
const CANDLES: usize = 48;

/// A fake Binance serving `symbols` on 1h, and their names.
fn serve(fake: &FakeBinance, symbols: &[&str]) {
    for symbol in symbols {
        fake.set_series(synthetic_series(symbol, Interval::H1, CANDLES));
    }
}

/// The report of a stored run.
fn report_of(run: &JobRun) -> JobReport {
    serde_json::from_value(run.report.clone().expect("a stored report")).expect("a typed report")
}

/// The series a report has items for, as `SYMBOL`.
fn symbols_in(report: &JobReport) -> BTreeSet<String> {
    report
        .items
        .iter()
        .filter_map(|item| item.series.as_ref())
        .map(|series| series.symbol.to_string())
        .collect()
}

/// Candles stored for `symbol` 1h.
async fn stored_candles(store: &Store, symbol: &str) -> usize {
    store
        .series()
        .await
        .expect("series")
        .iter()
        .find(|s| s.symbol == symbol && s.interval == "1h")
        .map_or(0, |s| s.candles as usize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_series_is_reported_and_the_others_are_collected() {
    let fake = FakeBinance::start().await;
    serve(&fake, &["AAAUSDT", "CCCUSDT"]);
    let base = fake.base_url();
    for db in TestDb::both().await {
        let output = run(
            "pricecast-collect",
            &["--symbols", "AAAUSDT,NOPEUSDT,CCCUSDT", "--intervals", "1h"],
            &[
                ("DATABASE_URL", db.url.as_str()),
                ("BINANCE_BASE_URL", &base),
                ("PRICECAST_CONCURRENCY", "2"),
            ],
        );
        let stderr = text(&output.stderr);
        let stdout = text(&output.stdout);
        assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
        assert!(
            stdout.contains("NOPEUSDT"),
            "the failure names the series: {stdout}"
        );

        // The two good series are stored in full; nothing of the bad one.
        for symbol in ["AAAUSDT", "CCCUSDT"] {
            assert_eq!(
                stored_candles(&db.store, symbol).await,
                CANDLES,
                "{symbol} on {}",
                db.store.backend()
            );
        }
        assert_eq!(stored_candles(&db.store, "NOPEUSDT").await, 0);

        // The run is failed, names the series, and keeps the report of all three.
        let runs = db.store.job_runs(Some("collect"), 1).await.expect("runs");
        let run = &runs[0];
        assert_eq!(run.status, JobStatus::Failed);
        let error = run.error.clone().unwrap_or_default();
        assert!(
            error.starts_with("1 of 3 series failed: NOPEUSDT 1h:")
                && error.contains("Invalid symbol"),
            "{error}"
        );
        let report = report_of(run);
        assert_eq!(run.rows, 2 * CANDLES as i64);
        assert_eq!(report.rows(), run.rows);
        let order: Vec<String> = report
            .items
            .iter()
            .map(|item| item.series.as_ref().expect("series").symbol.to_string())
            .collect();
        assert_eq!(
            order,
            ["AAAUSDT", "NOPEUSDT", "CCCUSDT"],
            "the plan's order"
        );
        let failed: Vec<_> = report.failed().collect();
        assert_eq!(failed.len(), 1);
        assert!(failed[0].work.is_none());
        assert!(
            failed[0]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("Invalid symbol")),
            "{:?}",
            failed[0].error
        );
        for symbol in ["AAAUSDT", "CCCUSDT"] {
            let work = report
                .work(symbol, Interval::H1)
                .and_then(Work::as_collect)
                .expect("collected");
            assert_eq!(work.written, CANDLES as u64, "{symbol}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_split_the_series_and_run_at_once_each_under_its_own_lock() {
    let symbols = [
        "AAAUSDT", "BBBUSDT", "CCCUSDT", "DDDUSDT", "EEEUSDT", "FFFUSDT", "GGGUSDT", "HHHUSDT",
    ];
    let fake = FakeBinance::start().await;
    serve(&fake, &symbols);
    let base = fake.base_url();
    let db = TestDb::postgres().await;
    let list = symbols.join(",");
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("BINANCE_BASE_URL", base.as_str()),
        ("PRICECAST_SYMBOLS", list.as_str()),
        ("PRICECAST_INTERVALS", "1h"),
    ];

    // Shard 0 of 2 is held by another run: it skips, while shard 1 runs.
    let held = db
        .store
        .try_lock_job("collect:shard-0-of-2")
        .await
        .expect("lock")
        .expect("free");
    let skipped = run("pricecast-collect", &["--shard", "0/2"], &env);
    assert_eq!(skipped.status.code(), Some(0), "{}", text(&skipped.stderr));
    let mut indexed = env.to_vec();
    indexed.extend([("PRICECAST_SHARDS", "2"), ("JOB_COMPLETION_INDEX", "1")]);
    let second = run("pricecast-collect", &[], &indexed);
    assert_eq!(
        second.status.code(),
        Some(0),
        "{}{}",
        text(&second.stdout),
        text(&second.stderr)
    );
    held.release().await;
    let first = run("pricecast-collect", &["--shard", "0/2"], &env);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));

    let runs = db.store.job_runs(Some("collect"), 10).await.expect("runs");
    let statuses: Vec<JobStatus> = runs.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            JobStatus::Succeeded,
            JobStatus::Succeeded,
            JobStatus::Skipped
        ]
    );
    let shard_one = report_of(&runs[1]);
    let shard_zero = report_of(&runs[0]);
    assert_eq!(
        shard_one.shard.map(|s| s.to_string()).as_deref(),
        Some("1/2")
    );
    assert_eq!(
        shard_zero.shard.map(|s| s.to_string()).as_deref(),
        Some("0/2")
    );
    let (zero, one) = (symbols_in(&shard_zero), symbols_in(&shard_one));
    assert!(zero.is_disjoint(&one), "{zero:?} {one:?}");
    let all: BTreeSet<String> = zero.union(&one).cloned().collect();
    assert_eq!(all.len(), symbols.len(), "every series has a shard");
    assert!(!zero.is_empty() && !one.is_empty(), "{zero:?} {one:?}");
    for (shard, names) in [(0, &zero), (1, &one)] {
        for name in names {
            let symbol: Symbol = name.parse().expect("symbol");
            assert_eq!(owner(&symbol, Interval::H1, 2), shard, "{name}");
        }
    }
    for symbol in symbols {
        assert_eq!(stored_candles(&db.store, symbol).await, CANDLES, "{symbol}");
    }
}

#[test]
fn a_shard_that_cannot_be_is_a_configuration_error() {
    for (args, env, expected) in [
        (vec!["--shard", "2/2"], vec![], "PRICECAST_SHARD"),
        (vec!["--shard", "x"], vec![], "PRICECAST_SHARD"),
        (
            vec![],
            vec![("PRICECAST_SHARDS", "3")],
            "JOB_COMPLETION_INDEX is not set",
        ),
        (
            vec![],
            vec![("PRICECAST_SHARDS", "3"), ("JOB_COMPLETION_INDEX", "3")],
            "numbered 0 to 2",
        ),
        (
            vec!["--shard", "0/3"],
            vec![("PRICECAST_SHARDS", "3"), ("JOB_COMPLETION_INDEX", "1")],
            "set one of the two",
        ),
        (
            vec![],
            vec![("PRICECAST_CONCURRENCY", "0")],
            "PRICECAST_CONCURRENCY",
        ),
    ] {
        let mut all = vec![("DATABASE_URL", "sqlite::memory:")];
        all.extend(env.iter().copied());
        let output = run("pricecast-collect", &args, &all);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?} {env:?}: {stderr}");
    }
}
