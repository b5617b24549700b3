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
    // Listed, so the run starts, but its klines are refused, as for a symbol being delisted.
    fake.list_symbol("NOPEUSDT", "TRADING");
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
        let stored: Vec<String> = db
            .store
            .stored_symbols()
            .await
            .expect("stored symbols")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(stored, ["AAAUSDT", "CCCUSDT"], "{}", db.store.backend());

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_resolve_against_exchange_info_and_unknown_names_stop_the_run() {
    let fake = FakeBinance::start().await;
    serve(&fake, &["AAAUSDT", "BBBUSDT", "CCCBTC", "DDDUSDT"]);
    fake.list_symbol("HALTUSDT", "BREAK");
    let base = fake.base_url();
    let db = TestDb::sqlite().await;
    let env = |symbols: &'static str, exclude: &'static str| {
        vec![
            ("DATABASE_URL", db.url.clone()),
            ("BINANCE_BASE_URL", base.clone()),
            ("PRICECAST_INTERVALS", "1h".to_owned()),
            ("PRICECAST_SYMBOLS", symbols.to_owned()),
            ("PRICECAST_SYMBOLS_EXCLUDE", exclude.to_owned()),
        ]
    };
    let call = |env: Vec<(&str, String)>| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run("pricecast-collect", &[], &env)
    };

    // *USDT less DDD* (and the bundled pairs the fake also serves), plus a name: the trading
    // symbols that match, never the halted one.
    let output = call(env("*USDT,CCCBTC", "DDD*,BTCUSDT,ETHUSDT"));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    let runs = db.store.job_runs(Some("collect"), 1).await.expect("runs");
    let report = report_of(&runs[0]);
    let resolution = report.resolution.clone().expect("resolution recorded");
    let resolved: Vec<&str> = resolution.symbols.iter().map(Symbol::as_str).collect();
    assert_eq!(resolved, ["AAAUSDT", "BBBUSDT", "CCCBTC"]);
    assert_eq!(resolution.selected, "*USDT,CCCBTC");
    assert_eq!(resolution.excluded, "DDD*,BTCUSDT,ETHUSDT");
    assert_eq!(
        symbols_in(&report),
        ["AAAUSDT", "BBBUSDT", "CCCBTC"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    for symbol in ["AAAUSDT", "BBBUSDT", "CCCBTC"] {
        assert_eq!(stored_candles(&db.store, symbol).await, CANDLES, "{symbol}");
    }
    assert_eq!(stored_candles(&db.store, "DDDUSDT").await, 0);

    // A name the exchange does not list (or lists as halted) and the database does not store:
    // exit 2 before any series, naming both.
    let output = call(env("AAAUSDT,ZZZUSDT,HALTUSDT", ""));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("PRICECAST_SYMBOLS: ZZZUSDT, HALTUSDT (listed as BREAK) not listed"),
        "{stderr}"
    );

    // A stored symbol the exchange has since delisted is skipped and reported, not an error.
    fake.delist("BBBUSDT");
    let output = call(env("AAAUSDT,BBBUSDT", ""));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    let runs = db.store.job_runs(Some("collect"), 1).await.expect("runs");
    let report = report_of(&runs[0]);
    let delisted: Vec<String> = report
        .resolution
        .as_ref()
        .expect("resolution")
        .delisted
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(delisted, ["BBBUSDT"]);
    assert!(
        runs[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.ends_with("delisted, skipped: BBBUSDT")),
        "{:?}",
        runs[0].detail
    );
    assert_eq!(
        symbols_in(&report),
        ["AAAUSDT"].into_iter().map(String::from).collect()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_series_share_one_weight_budget_and_honour_429_together() {
    let names: Vec<String> = (0..200).map(|i| format!("S{i:03}USDT")).collect();
    let fake = FakeBinance::start().await;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    for symbol in &refs {
        fake.set_series(synthetic_series(symbol, Interval::H1, 4));
    }
    // Past 300 weight a minute (150 pages) the fake answers 429 until the next minute, as
    // Binance does; the client believes the budget is the default 6000.
    fake.set_weight_budget(300);
    fake.set_latency(std::time::Duration::from_millis(20));
    let base = fake.base_url();
    let db = TestDb::postgres().await;
    let list = names.join(",");
    // Start well inside a minute, so that the budget runs out before the minute does.
    while chrono::Utc::now().timestamp() % 60 >= 55 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let output = run(
        "pricecast-collect",
        &[],
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("BINANCE_BASE_URL", base.as_str()),
            ("PRICECAST_SYMBOLS", list.as_str()),
            ("PRICECAST_INTERVALS", "1h"),
            ("PRICECAST_CONCURRENCY", "16"),
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    // Once the first 429 says so, every task waits: only requests already on the wire when
    // it arrived can meet another 429.
    let limited = fake.rate_limited();
    assert!((1..=16).contains(&limited), "{limited} answers of 429");
    // No request is lost: every series is stored whole.
    let stored = db.store.series().await.expect("series");
    assert_eq!(stored.len(), 200);
    assert!(stored.iter().all(|s| s.candles == 4), "{stored:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_stops_every_series_at_once() {
    let names: Vec<String> = (0..40).map(|i| format!("B{i:03}USDT")).collect();
    let fake = FakeBinance::start().await;
    for symbol in &names {
        fake.set_series(synthetic_series(symbol, Interval::H1, 4));
    }
    fake.push_fault(pricecast_tests::fake_binance::Fault::Banned);
    let base = fake.base_url();
    let db = TestDb::sqlite().await;
    let list = names.join(",");
    let output = run(
        "pricecast-collect",
        &[],
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("BINANCE_BASE_URL", base.as_str()),
            ("PRICECAST_SYMBOLS", list.as_str()),
            ("PRICECAST_INTERVALS", "1h"),
            ("PRICECAST_CONCURRENCY", "1"),
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    // After the 418 no other klines request goes out.
    assert_eq!(fake.requests().len(), 1);
    let runs = db.store.job_runs(Some("collect"), 1).await.expect("runs");
    let report = report_of(&runs[0]);
    assert_eq!(report.failed().count(), 40);
    assert!(
        report
            .failed()
            .all(|item| item.error.as_deref().is_some_and(|e| e.contains("banned"))),
        "{:?}",
        report.items.first()
    );
}
