//! Pricecast's benchmarks. Each scenario runs the release binaries as child processes against the
//! local fake Binance and a real PostgreSQL, and prints a Markdown row for docs/BENCHMARKS.md.
//!
//! ```text
//! cargo build --release --workspace
//! target/release/pricecast-bench collect-bundled
//! target/release/pricecast-bench collect-synthetic --candles 1000000
//! target/release/pricecast-bench api --seconds 15 --connections 64
//! ```
//!
//! Peak memory comes from `/usr/bin/time -f %M` (maximum resident set size of the child);
//! HTTP load from `wrk --latency`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use pricecast_shared::domain::Interval;
use pricecast_tests::db::TestDb;
use pricecast_tests::fake_binance::{FakeBinance, synthetic_series};

#[derive(Parser, Debug)]
#[command(name = "pricecast-bench", about = "Pricecast benchmarks")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Backfill the bundled BTCUSDT hourly history (26,279 candles) from the fake Binance into
    /// PostgreSQL with the release `pricecast-collect`.
    CollectBundled {
        /// Repetitions (the best and the median are reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Backfill a synthetic 1m series (closes follow the real hourly returns) into PostgreSQL.
    CollectSynthetic {
        /// Candles in the series.
        #[arg(long, default_value_t = 1_000_000)]
        candles: usize,
    },
    /// Load the release `pricecast-api` with wrk.
    Api {
        /// Seconds of load per endpoint.
        #[arg(long, default_value_t = 15)]
        seconds: u64,
        /// Concurrent connections.
        #[arg(long, default_value_t = 64)]
        connections: u32,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.scenario {
        Scenario::CollectBundled { runs } => collect_bundled(runs).await,
        Scenario::CollectSynthetic { candles } => collect_synthetic(candles).await,
        Scenario::Api {
            seconds,
            connections,
        } => api(seconds, connections).await,
    }
}

/// A release binary next to this one.
fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let path = exe
        .parent()
        .context("bench binary has no folder")?
        .join(name);
    if !path.exists() {
        bail!(
            "{} not found: run `cargo build --release --workspace` first",
            path.display()
        );
    }
    Ok(path)
}

struct ChildRun {
    wall: Duration,
    peak_rss_mb: f64,
    stdout: String,
}

/// Runs a release binary under `/usr/bin/time -f %M` and returns wall time and peak RSS.
fn run_measured(binary: &str, args: &[&str], env: &[(&str, String)]) -> Result<ChildRun> {
    let mut command = Command::new("/usr/bin/time");
    command
        .arg("-f")
        .arg("PEAK_RSS_KB=%M")
        .arg(sibling(binary)?)
        .args(args)
        .env("PRICECAST_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let started = Instant::now();
    let output = command
        .output()
        .with_context(|| format!("running {binary} (is /usr/bin/time installed?)"))?;
    let wall = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!("{binary} failed: {stderr}");
    }
    let peak_kb: f64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("PEAK_RSS_KB="))
        .and_then(|v| v.trim().parse().ok())
        .context("no peak RSS in /usr/bin/time output")?;
    Ok(ChildRun {
        wall,
        peak_rss_mb: peak_kb / 1024.0,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
    })
}

async fn collect_bundled(runs: usize) -> Result<()> {
    let fake = FakeBinance::start().await;
    let mut walls = Vec::new();
    let mut peak = 0f64;
    for _ in 0..runs.max(1) {
        let db = TestDb::postgres().await;
        let run = run_measured(
            "pricecast-collect",
            &[
                "--symbols",
                "BTCUSDT",
                "--intervals",
                "1h",
                "--since",
                "2022-04-29",
            ],
            &[
                ("DATABASE_URL", db.url.clone()),
                ("BINANCE_BASE_URL", fake.base_url()),
            ],
        )?;
        let stored = count_rows(&db).await?;
        if stored != 26_279 {
            bail!(
                "expected 26279 candles stored, found {stored}: {}",
                run.stdout
            );
        }
        walls.push(run.wall.as_secs_f64());
        peak = peak.max(run.peak_rss_mb);
    }
    walls.sort_by(f64::total_cmp);
    let median = walls[walls.len() / 2];
    println!("| scenario | candles | best | median | candles/s (median) | peak RSS |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| collect bundled BTCUSDT 1h → PostgreSQL | 26,279 | {:.2} s | {:.2} s | {:.0} | {:.0} MB |",
        walls[0],
        median,
        26_279.0 / median,
        peak
    );
    Ok(())
}

async fn collect_synthetic(candles: usize) -> Result<()> {
    let fake = FakeBinance::start().await;
    let series = synthetic_series("BTCUSDT", Interval::M1, candles);
    let since = series
        .first()
        .context("empty series")?
        .open_time
        .to_rfc3339();
    fake.set_series(series);
    let db = TestDb::postgres().await;
    let run = run_measured(
        "pricecast-collect",
        &[
            "--symbols",
            "BTCUSDT",
            "--intervals",
            "1m",
            "--since",
            &since,
        ],
        &[
            ("DATABASE_URL", db.url.clone()),
            ("BINANCE_BASE_URL", fake.base_url()),
        ],
    )?;
    let stored = count_rows(&db).await?;
    if stored != candles as i64 {
        bail!("expected {candles} candles stored, found {stored}");
    }
    println!("| scenario | candles | wall | candles/s | peak RSS (collect process) |");
    println!("|---|---|---|---|---|");
    println!(
        "| collect synthetic BTCUSDT 1m → PostgreSQL | {candles} | {:.2} s | {:.0} | {:.0} MB |",
        run.wall.as_secs_f64(),
        candles as f64 / run.wall.as_secs_f64(),
        run.peak_rss_mb
    );
    Ok(())
}

async fn count_rows(db: &TestDb) -> Result<i64> {
    let series = db.store.series().await?;
    Ok(series.iter().map(|s| s.candles).sum())
}

async fn api(seconds: u64, connections: u32) -> Result<()> {
    let db = TestDb::postgres().await;
    let candles = db.load_bundled("BTCUSDT", 26_279).await;
    let newest = candles.last().context("no candles")?.open_time;
    let hours = (chrono::Utc::now() - newest).num_hours() + 24 * 60;
    let port = free_port()?;
    let mut server = Command::new(sibling("pricecast-api")?)
        .env("DATABASE_URL", &db.url)
        .env("PRICECAST_API_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_MAX_CONNECTIONS", "16")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("starting pricecast-api")?;
    let base = format!("http://127.0.0.1:{port}");
    let ready = wait_ready(&format!("{base}/health")).await;
    let result = match ready {
        Ok(()) => {
            println!("| endpoint | connections | requests/s | p50 | p99 |");
            println!("|---|---|---|---|---|");
            let paths = [
                "/price/latest".to_owned(),
                format!("/price/history?hours={hours}&limit=1000"),
            ];
            paths
                .iter()
                .try_for_each(|path| wrk(&format!("{base}{path}"), path, seconds, connections))
        }
        Err(e) => Err(e),
    };
    let _ = server.kill();
    let _ = server.wait();
    result
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

async fn wait_ready(url: &str) -> Result<()> {
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the API did not become healthy at {url}")
}

fn wrk(url: &str, label: &str, seconds: u64, connections: u32) -> Result<()> {
    // Warm-up, then the measured run.
    for (duration, measured) in [(2, false), (seconds, true)] {
        let output = Command::new("wrk")
            .args([
                "--latency",
                "-t2",
                &format!("-c{connections}"),
                &format!("-d{duration}s"),
                url,
            ])
            .output()
            .context("running wrk (apt-get install wrk)")?;
        let text = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!("wrk failed: {text}");
        }
        if text.contains("Non-2xx") {
            bail!("wrk saw non-2xx answers from {url}:\n{text}");
        }
        if measured {
            let rps = text
                .lines()
                .find_map(|l| l.strip_prefix("Requests/sec:"))
                .map(str::trim)
                .context("no Requests/sec in wrk output")?;
            let percentile = |p: &str| {
                text.lines()
                    .map(str::trim)
                    .find_map(|l| l.strip_prefix(p))
                    .map(|v| v.trim().to_owned())
                    .unwrap_or_default()
            };
            println!(
                "| `{label}` | {connections} | {rps} | {} | {} |",
                percentile("50%"),
                percentile("99%")
            );
        }
    }
    Ok(())
}
