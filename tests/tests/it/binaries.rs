//! The job binaries as a CronJob runs them: exit codes, logs, locks and SIGTERM; and what the
//! binaries link.
//! (`tests/run.sh` builds the binaries before the tests.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pricecast_shared::domain::Interval;
use pricecast_shared::report::{JobReport, Work};
use pricecast_shared::store::JobStatus;
use pricecast_tests::db::TestDb;
use pricecast_tests::fake_binance::{FakeBinance, Fault};

pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/it-<hash> → target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target folder")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins, as tests/run.sh does)",
        path.display()
    );
    path
}

pub(crate) fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(binary(name));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run binary")
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn bad_configuration_exits_2_naming_the_variable_before_any_work() {
    let cases = [
        ("PRICECAST_SYMBOLS", "BTC-USD"),
        ("PRICECAST_INTERVALS", "7m"),
        ("DATABASE_URL", "mysql://localhost/prices"),
        ("BINANCE_BASE_URL", "not a url"),
        ("PRICECAST_CRON", "every minute"),
    ];
    for (variable, value) in cases {
        let output = run("pricecast-collect", &[], &[(variable, value)]);
        assert_eq!(output.status.code(), Some(2), "{variable}={value}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_binary_backfills_logs_json_and_records_its_run() {
    let fake = FakeBinance::start().await;
    let db = TestDb::postgres().await;
    let base = fake.base_url();
    let output = run(
        "pricecast-collect",
        &["--intervals", "1h", "--since", "2025-04-01"],
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("BINANCE_BASE_URL", &base),
        ],
    );
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    // Not a terminal: one JSON object per line.
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let parsed: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        assert!(parsed.get("level").is_some(), "{line}");
    }
    assert!(stdout.contains("job succeeded"), "{stdout}");
    let runs = db.store.job_runs(Some("collect"), 1).await.expect("runs");
    assert_eq!(runs[0].status, JobStatus::Succeeded);
    assert_eq!(runs[0].rows, 27 * 24 + 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_binary_backfills_past_months_from_binance_archive_url() {
    let fake = FakeBinance::start().await;
    let db = TestDb::postgres().await;
    let base = fake.base_url();
    let archive = fake.archive_url();
    let output = run(
        "pricecast-collect",
        &["--intervals", "1h", "--since", "2025-02-01"],
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("BINANCE_BASE_URL", &base),
            ("BINANCE_ARCHIVE_URL", &archive),
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    let runs = db.store.job_runs(Some("collect"), 1).await.expect("runs");
    // February, March and April 2025 from the archive; May on has no file, and REST has no more.
    assert_eq!(runs[0].rows, (28 + 31 + 27) * 24 + 8);
    let detail = runs[0].detail.clone().unwrap_or_default();
    assert!(detail.contains("and 3 archive months"), "{detail}");
    assert_eq!(fake.archive_downloads()[0], "BTCUSDT-1h-2025-02.zip");

    // The typed report the process stored, read back as the job returned it.
    let stored = runs[0].report.clone().expect("a stored report");
    let report: JobReport = serde_json::from_value(stored).expect("a typed report");
    let work = report
        .work("BTCUSDT", Interval::H1)
        .and_then(Work::as_collect)
        .expect("BTCUSDT 1h collected");
    assert_eq!(work.archive_months, 3);
    assert_eq!(work.written as i64, runs[0].rows);
    assert_eq!(report.rows(), runs[0].rows);
    assert_eq!(
        report.detail(),
        detail,
        "the detail is the report's sentence"
    );
    // PostgreSQL keeps it as JSONB, so SQL can query it.
    let (months,): (Option<String>,) = sqlx::query_as(
        "SELECT report #>> '{items,0,work,collect,archive_months}' FROM job_runs WHERE id = $1",
    )
    .bind(runs[0].id)
    .fetch_one(db.pg_pool())
    .await
    .expect("query the report");
    assert_eq!(months.as_deref(), Some("3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_exits_0_when_another_holds_the_lock() {
    let fake = FakeBinance::start().await;
    let db = TestDb::postgres().await;
    let held = db
        .store
        .try_lock_job("collect")
        .await
        .expect("lock")
        .expect("free");
    let base = fake.base_url();
    let output = run(
        "pricecast-collect",
        &["--intervals", "1h", "--since", "2025-04-01"],
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("BINANCE_BASE_URL", &base),
        ],
    );
    assert_eq!(output.status.code(), Some(0));
    assert!(text(&output.stdout).contains("another run holds the lock"));
    assert!(fake.requests().is_empty(), "the second run fetched data");
    held.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_run_keeps_whole_batches_and_records_the_cancellation() {
    let fake = FakeBinance::start().await;
    let db = TestDb::postgres().await;
    fake.push_fault(Fault::Pass);
    fake.push_fault(Fault::Pass);
    fake.push_fault(Fault::Slow(Duration::from_secs(20)));
    let mut child = Command::new(binary("pricecast-collect"))
        .args(["--intervals", "1h", "--since", "2022-04-29"])
        .env("DATABASE_URL", &db.url)
        .env("BINANCE_BASE_URL", fake.base_url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start collect");
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.requests().len() < 3 {
        assert!(
            Instant::now() < deadline,
            "collect never reached the slow page"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("send SIGTERM");
    assert!(killed.success());
    let started = Instant::now();
    let status = child.wait().expect("collect exits");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "SIGTERM did not stop the job promptly"
    );
    assert_eq!(status.code(), Some(1), "a cancelled run is not a success");
    let stored: i64 = db
        .store
        .series()
        .await
        .expect("series")
        .iter()
        .map(|s| s.candles)
        .sum();
    assert!(
        stored > 0 && stored % 1000 == 0,
        "only whole pages are kept, found {stored} rows"
    );
    let runs = db.store.job_runs(Some("collect"), 1).await.expect("runs");
    assert_eq!(runs[0].status, JobStatus::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pricecast_migrate_and_status_report_series_and_gaps() {
    let fake = FakeBinance::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/status.db", dir.path().display());
    let output = run("pricecast", &["migrate"], &[("DATABASE_URL", url.as_str())]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let base = fake.base_url();
    let output = run(
        "pricecast-collect",
        &[
            "--no-migrate",
            "--intervals",
            "1h",
            "--since",
            "2023-03-20",
            "--check-gaps",
        ],
        &[("DATABASE_URL", url.as_str()), ("BINANCE_BASE_URL", &base)],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("2023-03-24T13:00:00+00:00"), "{stdout}");

    let output = run("pricecast", &["status"], &[("DATABASE_URL", url.as_str())]);
    let report = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{report}");
    assert!(report.contains("collect"), "{report}");
    assert!(report.contains("BTCUSDT"), "{report}");
    assert!(
        report.contains("gap 2023-03-24 13:00 .. 2023-03-24 13:00 (1 missing)"),
        "{report}"
    );

    let output = run(
        "pricecast",
        &["status", "--json"],
        &[("DATABASE_URL", url.as_str())],
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(json["series"][0]["symbol"], "BTCUSDT");
    assert_eq!(json["jobs"][0]["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_runs_every_job_and_a_failing_one_does_not_stop_the_others() {
    let fake = FakeBinance::start().await;
    for _ in 0..1000 {
        fake.push_fault(Fault::Banned);
    }
    let db = TestDb::sqlite().await;
    let lake = tempfile::tempdir().expect("lake dir");
    let mut child = Command::new(binary("pricecast"))
        .arg("schedule")
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("BINANCE_BASE_URL", fake.base_url())
        .env("PRICECAST_INTERVALS", "1h")
        .env("LAKE_URL", format!("file://{}", lake.path().display()))
        .env("COLLECT_CRON", "* * * * * *")
        .env("EXPORT_CRON", "* * * * * *")
        // No candles reach the lake, so every features run fails too, next to the exports.
        .env("FEATURES_CRON", "* * * * * *")
        // No champion is trained: every forecast run succeeds with nothing to forecast.
        .env("FORECAST_CRON", "* * * * * *")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pricecast schedule");
    let deadline = Instant::now() + Duration::from_secs(30);
    let (failed_collects, exports, failed_features, forecasts) = loop {
        let runs = db.store.job_runs(None, 100).await.expect("runs");
        let count = |job: &str, status: JobStatus| {
            runs.iter()
                .filter(|r| r.job == job && r.status == status)
                .count()
        };
        let failed = count("collect", JobStatus::Failed);
        let exported = count("export", JobStatus::Succeeded);
        let features = count("features", JobStatus::Failed);
        let forecasts = count("forecast", JobStatus::Succeeded);
        let enough = failed >= 2 && exported >= 2 && features >= 2 && forecasts >= 2;
        if enough || Instant::now() > deadline {
            break (failed, exported, features, forecasts);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        child.try_wait().expect("status").is_none(),
        "a failing job stopped the scheduler"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("SIGTERM");
    assert!(killed.success());
    let output = child.wait_with_output().expect("scheduler exits");
    let stdout = text(&output.stdout);
    assert!(
        failed_collects >= 2,
        "collect failed {failed_collects} times: {stdout}"
    );
    assert!(exports >= 2, "export succeeded {exports} times: {stdout}");
    assert!(
        failed_features >= 2,
        "features failed {failed_features} times: {stdout}"
    );
    assert!(
        forecasts >= 2,
        "forecast succeeded {forecasts} times: {stdout}"
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert!(
        stdout.contains("sync is not configured; it is not scheduled"),
        "{stdout}"
    );
    assert!(stdout.contains("HTTP 418"), "{stdout}");
}

/// Shared libraries of the C runtime, which every Linux system has: a binary may need these and
/// nothing else, so it runs on a machine with none of unixODBC, libpq, OpenSSL or SQLite.
/// (The dynamic loader, `ld-linux-*`, is named per architecture.)
const C_RUNTIME_LIBRARIES: [&str; 7] = [
    "linux-vdso.so.1",
    "libc.so.6",
    "libm.so.6",
    "libgcc_s.so.1",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
];

#[test]
fn binaries_need_no_system_library_beyond_the_c_runtime() {
    let binaries = super::deploy::workspace_binaries();
    assert!(binaries.contains("pricecast-sync"), "{binaries:?}");
    for name in &binaries {
        let output = Command::new("ldd")
            .arg(binary(name))
            .output()
            .expect("run ldd");
        let listing = text(&output.stdout);
        assert!(
            output.status.success(),
            "ldd {name}: {listing}{}",
            text(&output.stderr)
        );
        let needed: Vec<&str> = listing
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .collect();
        assert!(needed.contains(&"libc.so.6"), "ldd {name}: {listing}");
        for library in needed {
            let file = library.rsplit('/').next().unwrap_or(library);
            assert!(
                C_RUNTIME_LIBRARIES.contains(&file) || file.starts_with("ld-linux"),
                "{name} needs {library}, which a fresh machine may not have:\n{listing}"
            );
        }
    }
}

/// The function every ODBC client calls first, so a binary with the driver manager built in
/// holds its name.
const ODBC_MARKER: &str = "SQLAllocHandle";

/// Crates the API never uses, so never builds: the ODBC stack and the warehouse and Binance
/// crates above it.
const NOT_IN_THE_API: [&str; 5] = [
    "odbc-api",
    "odbc-sys",
    "unix-odbc",
    "pricecast-warehouse",
    "pricecast-binance",
];

/// The names of the crates `package` builds for its normal (not dev or build) dependencies.
fn normal_dependencies(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["tree", "--offline", "-e", "normal", "--prefix", "none"])
        .args(["--format", "{p}", "-p", package])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .expect("cargo tree");
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_api_neither_builds_nor_links_odbc() {
    let dependencies = normal_dependencies("pricecast-api");
    assert!(
        dependencies.contains("pricecast-shared"),
        "{dependencies:?}"
    );
    for package in NOT_IN_THE_API {
        assert!(
            !dependencies.contains(package),
            "pricecast-api depends on {package}: {dependencies:?}"
        );
    }
    let holds_marker = |name: &str| {
        let bytes = std::fs::read(binary(name)).expect("read the binary");
        String::from_utf8_lossy(&bytes).contains(ODBC_MARKER)
    };
    // The marker is found where the driver manager is, so its absence below means something.
    assert!(
        holds_marker("pricecast-sync"),
        "no {ODBC_MARKER} in pricecast-sync"
    );
    assert!(!holds_marker("pricecast-api"), "pricecast-api links ODBC");
}
