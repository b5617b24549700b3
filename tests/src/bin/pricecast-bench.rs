//! Pricecast's benchmarks. Each scenario runs the release binaries as child processes against the
//! local fake Binance and a real PostgreSQL, and prints a Markdown row for docs/BENCHMARKS.md.
//!
//! ```text
//! cargo build --release --workspace
//! target/release/pricecast-bench collect-bundled
//! target/release/pricecast-bench collect-synthetic --candles 1000000
//! target/release/pricecast-bench api --seconds 15 --connections 64
//! target/release/pricecast-bench export-synthetic --candles 1000000 --lake s3
//! target/release/pricecast-bench export-synthetic --candles 1000000 --lake file
//! target/release/pricecast-bench parquet-encode --candles 1000000
//! target/release/pricecast-bench sync-synthetic --candles 1000000
//! ```
//!
//! The lake scenarios use the Python virtualenv tests/run.sh creates (moto for the S3 server,
//! pyarrow for the reference encoder), `$HOME/.cache/pricecast-venv` unless `PRICECAST_VENV`.
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
    /// Export a synthetic 1m series from PostgreSQL to the lake with the release
    /// `pricecast-export` (S3: a local moto server).
    ExportSynthetic {
        /// Candles in the series.
        #[arg(long, default_value_t = 1_000_000)]
        candles: usize,
        /// `s3` (local moto server) or `file` (a temporary folder).
        #[arg(long, default_value = "s3")]
        lake: String,
    },
    /// Time the Parquet encoding alone (same rows, schema and zstd level) against pyarrow's
    /// `pq.write_table`, in the same run.
    ParquetEncode {
        /// Rows encoded.
        #[arg(long, default_value_t = 1_000_000)]
        candles: usize,
    },
    /// Sync a synthetic 1m series from PostgreSQL into a fresh warehouse database over ODBC
    /// (unixODBC + the PostgreSQL ODBC driver) with the release `pricecast-sync`.
    SyncSynthetic {
        /// Candles in the series.
        #[arg(long, default_value_t = 1_000_000)]
        candles: usize,
    },
    /// Load the release `pricecast-api` with wrk, with its response cache on (the default) and off.
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
        Scenario::ExportSynthetic { candles, lake } => export_synthetic(candles, &lake).await,
        Scenario::ParquetEncode { candles } => parquet_encode(candles),
        Scenario::SyncSynthetic { candles } => sync_synthetic(candles).await,
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

/// The virtualenv with moto and pyarrow that tests/run.sh maintains.
fn venv_bin(name: &str) -> Result<PathBuf> {
    let venv = std::env::var("PRICECAST_VENV")
        .map(PathBuf::from)
        .or_else(|_| {
            std::env::var("HOME").map(|home| PathBuf::from(home).join(".cache/pricecast-venv"))
        })?;
    let path = venv.join("bin").join(name);
    if !path.exists() {
        bail!(
            "{} not found: run tests/run.sh once to create the virtualenv",
            path.display()
        );
    }
    Ok(path)
}

/// A moto S3 server on a free loopback port, killed on drop.
struct MotoServer {
    child: std::process::Child,
    endpoint: String,
}

impl MotoServer {
    async fn start() -> Result<Self> {
        let port = free_port()?;
        let child = Command::new(venv_bin("moto_server")?)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting moto_server")?;
        let server = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..150 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("moto_server did not answer on {}", server.endpoint)
    }
}

impl MotoServer {
    /// CPU seconds (user + system) the server has used so far, from `/proc` (Linux; `/proc`
    /// counts in USER_HZ, 100 per second); `None` elsewhere.
    fn cpu_seconds(&self) -> Option<f64> {
        const USER_HZ: f64 = 100.0;
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        Some((ticks(11)? + ticks(12)?) / USER_HZ)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn export_synthetic(candles: usize, lake: &str) -> Result<()> {
    let db = TestDb::postgres().await;
    let series = synthetic_series("BTCUSDT", Interval::M1, candles);
    for chunk in series.chunks(20_000) {
        db.store.upsert_candles(chunk).await?;
    }
    drop(series);
    let folder = tempfile::tempdir()?;
    let moto = match lake {
        "s3" => Some(MotoServer::start().await?),
        "file" => None,
        other => bail!("--lake {other}: use s3 or file"),
    };
    let mut env = vec![("DATABASE_URL", db.url.clone())];
    let mut args = vec!["--symbols", "BTCUSDT", "--intervals", "1m"];
    match &moto {
        Some(moto) => {
            env.extend([
                ("LAKE_URL", "s3://pricecast-bench/lake".to_owned()),
                ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
                ("AWS_ACCESS_KEY_ID", "bench".to_owned()),
                ("AWS_SECRET_ACCESS_KEY", "bench-secret".to_owned()),
            ]);
            args.push("--create-bucket");
        }
        None => env.push((
            "LAKE_URL",
            format!("file://{}", folder.path().join("lake").display()),
        )),
    }
    let moto_cpu_before = moto.as_ref().and_then(MotoServer::cpu_seconds);
    let run = run_measured("pricecast-export", &args, &env)?;
    let moto_cpu = moto
        .as_ref()
        .and_then(MotoServer::cpu_seconds)
        .zip(moto_cpu_before)
        .map(|(after, before)| after - before);
    let (partitions, rows) = {
        let runs = db.store.job_runs(Some("export"), 1).await?;
        let run = runs.first().context("no export run recorded")?;
        (run.detail.clone().unwrap_or_default(), run.rows)
    };
    if rows != candles as i64 {
        bail!("expected {candles} rows exported, the run says {rows}: {partitions}");
    }
    println!(
        "| scenario | candles | wall | candles/s | peak RSS (export process) | moto CPU during the export |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| export PostgreSQL → {} (1m, {} day files) | {candles} | {:.2} s | {:.0} | {:.0} MB | {} |",
        if moto.is_some() {
            "S3 (moto)"
        } else {
            "file://"
        },
        candles.div_ceil(1440),
        run.wall.as_secs_f64(),
        candles as f64 / run.wall.as_secs_f64(),
        run.peak_rss_mb,
        moto_cpu.map_or_else(|| "–".to_owned(), |s| format!("{s:.2} s"))
    );
    Ok(())
}

/// pyarrow's side of `parquet-encode`: reads our file, then times `pq.write_table` of the same
/// table with the same compression, level, statistics and row group size.
const PYARROW_ENCODE: &str = r#"
import sys, time, pyarrow.parquet as pq
table = pq.read_table(sys.argv[1])
best = float("inf")
for _ in range(int(sys.argv[3])):
    start = time.perf_counter()
    pq.write_table(table, sys.argv[2], compression="zstd", compression_level=1,
                   write_statistics=True, row_group_size=1024 * 1024)
    best = min(best, time.perf_counter() - start)
print(best)
"#;

fn parquet_encode(candles: usize) -> Result<()> {
    use pricecast_shared::lake::candles::{CandleBatchBuilder, encode_parquet};
    const RUNS: usize = 3;
    let series = synthetic_series("BTCUSDT", Interval::M1, candles);
    let first = series.first().context("empty series")?;
    let mut builder = CandleBatchBuilder::new(first.symbol.clone(), Interval::M1, candles);
    for candle in &series {
        builder.push(candle)?;
    }
    let batch = builder.finish()?;
    let mut best = f64::INFINITY;
    let mut encoded = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        encoded = encode_parquet(std::slice::from_ref(&batch))?;
        best = best.min(started.elapsed().as_secs_f64());
    }
    let folder = tempfile::tempdir()?;
    let ours = folder.path().join("pricecast.parquet");
    std::fs::write(&ours, &encoded)?;
    let output = Command::new(venv_bin("python")?)
        .args(["-c", PYARROW_ENCODE])
        .arg(&ours)
        .arg(folder.path().join("pyarrow.parquet"))
        .arg(RUNS.to_string())
        .output()
        .context("running pyarrow")?;
    if !output.status.success() {
        bail!(
            "pyarrow failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let pyarrow: f64 = String::from_utf8_lossy(&output.stdout).trim().parse()?;
    let pyarrow_size = std::fs::metadata(folder.path().join("pyarrow.parquet"))?.len();
    println!("| encoder (best of {RUNS}) | rows | time | rows/s | file size | vs pyarrow |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| Pricecast (arrow-rs parquet 60) | {candles} | {best:.3} s | {:.0} | {:.1} MB | {:.2}× |",
        candles as f64 / best,
        encoded.len() as f64 / 1e6,
        best / pyarrow
    );
    println!(
        "| pyarrow `pq.write_table` | {candles} | {pyarrow:.3} s | {:.0} | {:.1} MB | 1.00× |",
        candles as f64 / pyarrow,
        pyarrow_size as f64 / 1e6
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
    println!("| endpoint | response cache | connections | requests/s | p50 | p99 |");
    println!("|---|---|---|---|---|---|");
    for cache_ttl_ms in ["1000", "0"] {
        api_with_cache(&db, hours, cache_ttl_ms, seconds, connections).await?;
    }
    Ok(())
}

async fn api_with_cache(
    db: &TestDb,
    hours: i64,
    cache_ttl_ms: &str,
    seconds: u64,
    connections: u32,
) -> Result<()> {
    let port = free_port()?;
    let mut server = Command::new(sibling("pricecast-api")?)
        .env("DATABASE_URL", &db.url)
        .env("PRICECAST_API_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_MAX_CONNECTIONS", "16")
        .env("PRICECAST_API_CACHE_TTL_MS", cache_ttl_ms)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("starting pricecast-api")?;
    let base = format!("http://127.0.0.1:{port}");
    let ready = wait_ready(&format!("{base}/health")).await;
    let result = match ready {
        Ok(()) => {
            let paths = [
                "/price/latest".to_owned(),
                format!("/price/history?hours={hours}&limit=1000"),
            ];
            let cache = if cache_ttl_ms == "0" {
                "off".to_owned()
            } else {
                format!("{cache_ttl_ms} ms")
            };
            paths.iter().try_for_each(|path| {
                wrk(&format!("{base}{path}"), path, &cache, seconds, connections)
            })
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

fn wrk(url: &str, label: &str, cache: &str, seconds: u64, connections: u32) -> Result<()> {
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
                "| `{label}` | {cache} | {connections} | {rps} | {} | {} |",
                percentile("50%"),
                percentile("99%")
            );
        }
    }
    Ok(())
}

async fn sync_synthetic(candles: usize) -> Result<()> {
    let db = TestDb::postgres().await;
    let series = synthetic_series("BTCUSDT", Interval::M1, candles);
    for chunk in series.chunks(10_000) {
        db.store.upsert_candles(chunk).await?;
    }
    drop(series);
    let warehouse = pricecast_tests::warehouse::TestWarehouse::new().await;
    let env = vec![
        ("DATABASE_URL", db.url.clone()),
        (
            "SYNC_ODBC_CONNECTION_STRING",
            warehouse.connection_string.clone(),
        ),
    ];
    let run = run_measured(
        "pricecast-sync",
        &["--symbols", "BTCUSDT", "--intervals", "1m"],
        &env,
    )?;
    let (synced,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM pricecast.candles")
        .fetch_one(&warehouse.pool)
        .await?;
    if synced != candles as i64 {
        bail!("expected {candles} rows in the warehouse, found {synced}");
    }
    println!("| scenario | candles | wall | rows/s | peak RSS (sync process) |");
    println!("|---|---|---|---|---|");
    println!(
        "| sync PostgreSQL → ODBC PostgreSQL warehouse (1m, batches of {}) | {candles} | {:.2} s | {:.0} | {:.0} MB |",
        pricecast_shared::warehouse::config::DEFAULT_BATCH_SIZE,
        run.wall.as_secs_f64(),
        candles as f64 / run.wall.as_secs_f64(),
        run.peak_rss_mb
    );
    Ok(())
}
