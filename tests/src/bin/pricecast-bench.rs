//! Pricecast's benchmarks. Each scenario runs the release binaries as child processes against the
//! local fake Binance and a real PostgreSQL, and prints a Markdown row for docs/BENCHMARKS.md.
//!
//! ```text
//! cargo build --release --workspace
//! target/release/pricecast-bench collect-bundled
//! target/release/pricecast-bench collect-synthetic --candles 1000000
//! target/release/pricecast-bench api --seconds 15 --connections 64
//! target/release/pricecast-bench export-synthetic --candles 1000000 --lake s3
//! target/release/pricecast-bench export-synthetic --candles 1000000 --lake s3 --s3-server s3s-fs
//! target/release/pricecast-bench export-synthetic --candles 1000000 --lake s3 --s3-server s3s-fs --s3-root /dev/shm
//! target/release/pricecast-bench export-synthetic --candles 1000000 --lake file
//! target/release/pricecast-bench parquet-encode --candles 1000000
//! target/release/pricecast-bench sync-synthetic --candles 1000000
//! target/release/pricecast-bench linear-fit --rows 500000 --features 20
//! target/release/pricecast-bench features-frame --candles 1000000
//! target/release/pricecast-bench predict --seconds 15 --connections 64
//! ```
//!
//! The lake scenarios use the Python virtualenv tests/run.sh creates (moto for the S3 server,
//! pyarrow for the reference encoder), `$HOME/.cache/pricecast-venv` unless `PRICECAST_VENV`.
//! `--s3-server s3s-fs` uses the `s3s-fs` binary on `PATH` (or `PRICECAST_S3S_FS`) instead of moto:
//! `cargo install s3s-fs --version 0.14.1 --features binary --locked`.
//!
//! Peak memory comes from `/usr/bin/time -f %M` (maximum resident set size of the child);
//! HTTP load from `wrk --latency`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::sync::Arc;

use pricecast_jobs::train::{self, FeatureSelection, TrainContext, TrainPlan};
use pricecast_shared::champion::RegisteredModel;
use pricecast_shared::domain::Interval;
use pricecast_shared::features::{FeatureSpec, latest_row};
use pricecast_shared::lake::{Lake, LakeArgs, LakeUrl};
use pricecast_shared::model::{
    DEFAULT_INTERVAL_LEVEL, Dataset, ModelParams, TrainedModel, walk_forward,
};
use pricecast_shared::registry::{CHAMPION, LocalRegistry, ModelRegistry, RegistryArgs};
use pricecast_shared::series::SeriesScope;
use pricecast_shared::store::CandleQuery;
use pricecast_tests::db::TestDb;
use pricecast_tests::fake_binance::{FakeBinance, synthetic_series};
use pricecast_tests::pipeline::export_and_build_features;
use tokio_util::sync::CancellationToken;

/// Allocates through mimalloc, as polars recommends: the feature pipeline allocates and frees
/// column-sized buffers at a high rate, and glibc's allocator hands those back to the kernel and
/// faults them in again zeroed (about a fifth of the feature frame's time, docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// `pricecast-export` (S3: a local moto or s3s-fs server).
    ExportSynthetic {
        /// Candles in the series.
        #[arg(long, default_value_t = 1_000_000)]
        candles: usize,
        /// `s3` (a local S3 server, see `--s3-server`) or `file` (a temporary folder).
        #[arg(long, default_value = "s3")]
        lake: String,
        /// The local S3 server for `--lake s3`: `moto` (Python, the tests' server) or `s3s-fs`
        /// (Rust, over a temporary folder).
        #[arg(long, default_value = "moto")]
        s3_server: String,
        /// Folder under which s3s-fs keeps its buckets (a temporary folder is made in it);
        /// default: the system's temporary folder. moto keeps objects in memory; `/dev/shm`
        /// does the same for s3s-fs.
        #[arg(long)]
        s3_root: Option<PathBuf>,
    },
    /// Time the Parquet encoding alone (same rows, schema and zstd level) against pyarrow's
    /// `pq.write_table`, in the same run: as one file, and as the export writes them, one file
    /// per UTC day.
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
    /// Fit the linear model on synthetic rows and time it against scikit-learn's
    /// `LinearRegression().fit` on the same data in the same run, then time a whole
    /// walk-forward evaluation.
    LinearFit {
        /// Training rows.
        #[arg(long, default_value_t = 500_000)]
        rows: usize,
        /// Features.
        #[arg(long, default_value_t = 20)]
        features: usize,
        /// Walk-forward windows.
        #[arg(long, default_value_t = 10)]
        windows: usize,
        /// Rows per walk-forward window.
        #[arg(long, default_value_t = 1_000)]
        window_rows: usize,
        /// Python with numpy and scikit-learn (default: `PRICECAST_TEST_PYTHON`, then the
        /// virtualenv's).
        #[arg(long, env = "PRICECAST_TEST_PYTHON")]
        python: Option<PathBuf>,
    },
    /// Time the full feature frame of a synthetic 1m series in polars (in this process) against
    /// pandas computing the same features on the same rows, and the seed app's five lags and
    /// MA10 in pandas, in the same run.
    FeaturesFrame {
        /// Candles in the series.
        #[arg(long, default_value_t = 1_000_000)]
        candles: usize,
        /// Python with pandas and pyarrow (default: `PRICECAST_TEST_PYTHON`, else the virtualenv
        /// tests/run.sh maintains).
        #[arg(long, env = "PRICECAST_TEST_PYTHON")]
        python: Option<PathBuf>,
    },
    /// Train a champion on the bundled BTCUSDT history (local registry), then load the release
    /// `pricecast-api`'s `/price/predict` with wrk, cache on and off, and once more while a new
    /// version is promoted; and time the seed app's way (a registry lookup and a model load per
    /// request) in this process as the anchor.
    Predict {
        /// Seconds of load per run.
        #[arg(long, default_value_t = 15)]
        seconds: u64,
        /// Concurrent connections.
        #[arg(long, default_value_t = 64)]
        connections: u32,
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
        Scenario::ExportSynthetic {
            candles,
            lake,
            s3_server,
            s3_root,
        } => export_synthetic(candles, &lake, &s3_server, s3_root.as_deref()).await,
        Scenario::ParquetEncode { candles } => parquet_encode(candles),
        Scenario::SyncSynthetic { candles } => sync_synthetic(candles).await,
        Scenario::LinearFit {
            rows,
            features,
            windows,
            window_rows,
            python,
        } => linear_fit(rows, features, windows, window_rows, python),
        Scenario::FeaturesFrame { candles, python } => features_frame(candles, python),
        Scenario::Predict {
            seconds,
            connections,
        } => predict(seconds, connections).await,
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

/// Which local S3 server `export-synthetic --lake s3` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum S3ServerKind {
    /// moto's standalone server (Python), the tests' S3 server; accepts any credentials.
    Moto,
    /// s3s-fs (Rust), an S3 server over a folder; checks the credentials it is started with.
    S3sFs,
}

impl S3ServerKind {
    fn parse(name: &str) -> Result<Self> {
        match name {
            "moto" => Ok(Self::Moto),
            "s3s-fs" => Ok(Self::S3sFs),
            other => bail!("--s3-server {other}: use moto or s3s-fs"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Moto => "moto",
            Self::S3sFs => "s3s-fs",
        }
    }
}

/// The `s3s-fs` binary: `PRICECAST_S3S_FS`, else `s3s-fs` on `PATH`, else `~/.cargo/bin/s3s-fs`.
fn s3s_fs_bin() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("PRICECAST_S3S_FS") {
        return Ok(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain(std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo/bin")))
        .map(|folder| folder.join("s3s-fs"))
        .find(|path| path.is_file());
    on_path.context(
        "s3s-fs not found: `cargo install s3s-fs --version 0.14.1 --features binary --locked` \
         (or set PRICECAST_S3S_FS)",
    )
}

/// A local S3 server (moto or s3s-fs) on a free loopback port, path-style, killed on drop.
struct S3Server {
    kind: S3ServerKind,
    child: std::process::Child,
    endpoint: String,
    access_key: &'static str,
    secret_key: &'static str,
    /// s3s-fs's root folder (buckets are its subfolders), removed on drop.
    root: Option<tempfile::TempDir>,
}

impl S3Server {
    /// Starts the server; s3s-fs keeps its buckets in a new folder under `root_parent`
    /// (default: the system's temporary folder).
    async fn start(kind: S3ServerKind, root_parent: Option<&std::path::Path>) -> Result<Self> {
        let (access_key, secret_key) = ("bench", "bench-secret");
        let port = free_port()?;
        let (mut command, root) = match kind {
            S3ServerKind::Moto => {
                if root_parent.is_some() {
                    bail!("--s3-root is for s3s-fs: moto keeps its objects in memory");
                }
                let mut command = Command::new(venv_bin("moto_server")?);
                command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
                (command, None)
            }
            S3ServerKind::S3sFs => {
                let root = match root_parent {
                    Some(parent) => tempfile::tempdir_in(parent)
                        .with_context(|| format!("--s3-root {}", parent.display()))?,
                    None => tempfile::tempdir()?,
                };
                let mut command = Command::new(s3s_fs_bin()?);
                command
                    .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--access-key", access_key, "--secret-key", secret_key])
                    .arg(root.path())
                    // Its tracing goes to stdout; keep it to warnings.
                    .env("RUST_LOG", "warn");
                (command, Some(root))
            }
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", kind.name()))?;
        let mut server = Self {
            kind,
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            access_key,
            secret_key,
            root,
        };
        for _ in 0..150 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("{} exited at start ({status})", kind.name());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("{} did not answer on {}", kind.name(), server.endpoint)
    }

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

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lets a freshly loaded PostgreSQL database reach the state of data loaded long ago: hint bits
/// set and statistics gathered (VACUUM ANALYZE), dirty pages written (CHECKPOINT), so the timed
/// run does not pay for the load's aftermath.
async fn settle(db: &TestDb) -> Result<()> {
    if let pricecast_shared::store::Store::Postgres(pg) = &db.store {
        sqlx::query("VACUUM (ANALYZE) candles")
            .execute(pg.pool())
            .await?;
        sqlx::query("CHECKPOINT").execute(pg.pool()).await?;
    }
    Ok(())
}

async fn export_synthetic(
    candles: usize,
    lake: &str,
    s3_server: &str,
    s3_root: Option<&std::path::Path>,
) -> Result<()> {
    let s3_kind = S3ServerKind::parse(s3_server)?;
    let db = TestDb::postgres().await;
    let series = synthetic_series("BTCUSDT", Interval::M1, candles);
    for chunk in series.chunks(20_000) {
        db.store.upsert_candles(chunk).await?;
    }
    drop(series);
    settle(&db).await?;
    let folder = tempfile::tempdir()?;
    let server = match lake {
        "s3" => Some(S3Server::start(s3_kind, s3_root).await?),
        "file" => None,
        other => bail!("--lake {other}: use s3 or file"),
    };
    let mut env = vec![("DATABASE_URL", db.url.clone())];
    let mut args = vec!["--symbols", "BTCUSDT", "--intervals", "1m"];
    match &server {
        Some(server) => {
            env.extend([
                ("LAKE_URL", "s3://pricecast-bench/lake".to_owned()),
                ("AWS_ENDPOINT_URL", server.endpoint.clone()),
                ("AWS_ACCESS_KEY_ID", server.access_key.to_owned()),
                ("AWS_SECRET_ACCESS_KEY", server.secret_key.to_owned()),
            ]);
            args.push("--create-bucket");
        }
        None => env.push((
            "LAKE_URL",
            format!("file://{}", folder.path().join("lake").display()),
        )),
    }
    let server_cpu_before = server.as_ref().and_then(S3Server::cpu_seconds);
    let run = run_measured("pricecast-export", &args, &env)?;
    let server_cpu = server
        .as_ref()
        .and_then(S3Server::cpu_seconds)
        .zip(server_cpu_before)
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
        "| scenario | candles | wall | candles/s | peak RSS (export process) | S3 server CPU during the export |"
    );
    println!("|---|---|---|---|---|---|");
    let target = server.as_ref().map_or_else(
        || "file://".to_owned(),
        |server| match &server.root {
            Some(root) => format!(
                "S3 ({}, buckets in {})",
                server.kind.name(),
                root.path().parent().unwrap_or(root.path()).display()
            ),
            None => format!("S3 ({})", server.kind.name()),
        },
    );
    println!(
        "| export PostgreSQL → {target} (1m, {} day files) | {candles} | {:.2} s | {:.0} | {:.0} MB | {} |",
        candles.div_ceil(1440),
        run.wall.as_secs_f64(),
        candles as f64 / run.wall.as_secs_f64(),
        run.peak_rss_mb,
        server_cpu.map_or_else(|| "–".to_owned(), |s| format!("{s:.2} s"))
    );
    Ok(())
}

/// pyarrow's side of `parquet-encode`: reads our file, then times `pq.write_table` of the same
/// table with the same compression, level, statistics, dictionaries and row group size, into
/// memory: as one file, then one file per `argv[2]` rows (a UTC day of 1m candles). Prints the
/// best time and the bytes of each.
const PYARROW_ENCODE: &str = r#"
import sys, time, pyarrow as pa, pyarrow.parquet as pq
table = pq.read_table(sys.argv[1])
day, runs = int(sys.argv[2]), int(sys.argv[3])
def encode(parts):
    size = 0
    for part in parts:
        sink = pa.BufferOutputStream()
        pq.write_table(part, sink, compression="zstd", compression_level=1,
                       write_statistics=True, row_group_size=1024 * 1024,
                       use_dictionary=["symbol", "interval"])
        size += sink.getvalue().size
    return size
for parts in ([table], [table.slice(o, day) for o in range(0, table.num_rows, day)]):
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        size = encode(parts)
        best = min(best, time.perf_counter() - start)
    print(best, size)
"#;

/// Best time and total bytes of encoding each batch as its own file, `runs` times.
fn time_encoding(batches: &[arrow::array::RecordBatch], runs: usize) -> Result<(f64, usize)> {
    use pricecast_shared::lake::candles::encode_parquet;
    let mut best = f64::INFINITY;
    let mut bytes = 0;
    for _ in 0..runs {
        let started = Instant::now();
        bytes = 0;
        for batch in batches {
            bytes += encode_parquet(std::slice::from_ref(batch))?.len();
        }
        best = best.min(started.elapsed().as_secs_f64());
    }
    Ok((best, bytes))
}

fn parquet_encode(candles: usize) -> Result<()> {
    use arrow::array::RecordBatch;
    use pricecast_shared::lake::candles::{CandleBatchBuilder, encode_parquet};
    const RUNS: usize = 3;
    const DAY: usize = 1440;
    let series = synthetic_series("BTCUSDT", Interval::M1, candles);
    let first = series.first().context("empty series")?;
    let mut builder = CandleBatchBuilder::new(first.symbol.clone(), Interval::M1, candles);
    for candle in &series {
        builder.push(candle)?;
    }
    let batch = builder.finish()?;
    // Slices of a day's worth of 1m candles: files of the size the export writes.
    let days: Vec<RecordBatch> = (0..candles)
        .step_by(DAY)
        .map(|offset| batch.slice(offset, DAY.min(candles - offset)))
        .collect();
    let ours = [
        time_encoding(std::slice::from_ref(&batch), RUNS)?,
        time_encoding(&days, RUNS)?,
    ];
    let folder = tempfile::tempdir()?;
    let file = folder.path().join("pricecast.parquet");
    std::fs::write(&file, encode_parquet(std::slice::from_ref(&batch))?)?;
    let output = Command::new(venv_bin("python")?)
        .args(["-c", PYARROW_ENCODE])
        .arg(&file)
        .arg(DAY.to_string())
        .arg(RUNS.to_string())
        .output()
        .context("running pyarrow")?;
    if !output.status.success() {
        bail!(
            "pyarrow failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let pyarrow = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| -> Result<(f64, usize)> {
            let (time, size) = line.split_once(' ').context("pyarrow's output")?;
            Ok((time.parse()?, size.parse()?))
        })
        .collect::<Result<Vec<_>>>()?;
    if pyarrow.len() != ours.len() {
        bail!(
            "pyarrow printed {} results, expected {}",
            pyarrow.len(),
            ours.len()
        );
    }
    println!("| encoder (best of {RUNS}) | files | rows | time | rows/s | bytes | vs pyarrow |");
    println!("|---|---|---|---|---|---|---|");
    let shapes = ["1".to_owned(), format!("{} (one per day)", days.len())];
    for ((shape, (time, bytes)), (py_time, py_bytes)) in shapes.iter().zip(ours).zip(pyarrow) {
        println!(
            "| Pricecast (arrow-rs parquet 60) | {shape} | {candles} | {time:.3} s | {:.0} | {:.1} MB | {:.2}× |",
            candles as f64 / time,
            bytes as f64 / 1e6,
            time / py_time
        );
        println!(
            "| pyarrow `pq.write_table` | {shape} | {candles} | {py_time:.3} s | {:.0} | {:.1} MB | 1.00× |",
            candles as f64 / py_time,
            py_bytes as f64 / 1e6
        );
    }
    Ok(())
}

/// Synthetic training data for `linear-fit`: features with different means and scales, and a
/// log return that is a known linear function of them plus noise.
fn linear_fit_data(rows: usize, features: usize) -> Result<Dataset> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(20_240_101);
    let mut normal = move || {
        let u: f64 = rng.random::<f64>().max(1e-300);
        let v: f64 = rng.random();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    };
    let beta: Vec<f64> = (0..features)
        .map(|j| 1e-3 * (j as f64 + 1.0) * if j % 2 == 0 { 1.0 } else { -0.5 })
        .collect();
    let mut x = Vec::with_capacity(rows * features);
    let mut target = Vec::with_capacity(rows);
    for _ in 0..rows {
        let mut r = 2e-4;
        for (j, b) in beta.iter().enumerate() {
            let value = j as f64 + (1.0 + 0.1 * j as f64) * normal();
            r += b * value;
            x.push(value);
        }
        target.push(100.0 * (r + 0.01 * normal()).exp());
    }
    let hour_ms = 3_600_000;
    Ok(Dataset::new(
        (0..features).map(|j| format!("f{j}")).collect(),
        (0..rows as i64)
            .map(|i| 1_600_000_000_000 + i * hour_ms)
            .collect(),
        x,
        vec![100.0; rows],
        target,
        1,
        hour_ms,
    )?)
}

/// Writes a little-endian f64 array in NumPy's `.npy` format (version 1.0).
fn write_npy(path: &std::path::Path, shape: &[usize], values: &[f64]) -> Result<()> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + header length (2) + header, padded to 64 bytes with a newline.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + values.len() * 8);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&u16::try_from(header.len())?.to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes)?;
    Ok(())
}

fn linear_fit(
    rows: usize,
    features: usize,
    windows: usize,
    window_rows: usize,
    python: Option<PathBuf>,
) -> Result<()> {
    const RUNS: usize = 3;
    let python = match python {
        Some(path) => path,
        None => venv_bin("python")?,
    };
    let data = linear_fit_data(rows, features)?;
    let params = ModelParams::default();

    let mut rust_best = f64::INFINITY;
    let mut model = None;
    for _ in 0..RUNS {
        let started = Instant::now();
        model = Some(TrainedModel::fit(&params, &data, 0..rows)?);
        rust_best = rust_best.min(started.elapsed().as_secs_f64());
    }
    let model = model.context("no fit ran")?;
    let (coefficients, intercept) = model.raw_coefficients().context("linear model")?;

    let started = Instant::now();
    let evaluation = walk_forward(&params, &data, windows, window_rows, DEFAULT_INTERVAL_LEVEL)?;
    let walk_forward_s = started.elapsed().as_secs_f64();

    // scikit-learn fits the very same log returns the Rust model derives from the closes.
    let returns: Vec<f64> = data
        .target_close()
        .iter()
        .zip(data.last_close())
        .map(|(target, last)| (target / last).ln())
        .collect();
    let folder = tempfile::tempdir()?;
    let x_path = folder.path().join("x.npy");
    let y_path = folder.path().join("y.npy");
    write_npy(&x_path, &[rows, features], data.x())?;
    write_npy(&y_path, &[rows], &returns)?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/bench_linear_sklearn.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(&x_path)
        .arg(&y_path)
        .arg(RUNS.to_string())
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !output.status.success() {
        bail!(
            "scikit-learn failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let sklearn: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let sklearn_s = sklearn["seconds"].as_f64().context("no seconds")?;
    let sklearn_coef: Vec<f64> = sklearn["coef"]
        .as_array()
        .context("no coef")?
        .iter()
        .map(|c| c.as_f64().context("coef not a number"))
        .collect::<Result<_>>()?;
    let sklearn_intercept = sklearn["intercept"].as_f64().context("no intercept")?;
    let relative = |ours: f64, theirs: f64| (ours - theirs).abs() / theirs.abs().max(1e-300);
    let max_difference = coefficients
        .iter()
        .zip(&sklearn_coef)
        .map(|(&a, &b)| relative(a, b))
        .chain([relative(intercept, sklearn_intercept)])
        .fold(0.0, f64::max);

    println!(
        "| fit (best of {RUNS}) | rows × features | time | vs scikit-learn | max relative coefficient difference |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| Pricecast linear (Gram + eigendecomposition) | {rows} × {features} | {rust_best:.3} s | {:.2}× | {max_difference:.1e} |",
        rust_best / sklearn_s
    );
    println!(
        "| scikit-learn `LinearRegression().fit` | {rows} × {features} | {sklearn_s:.3} s | 1.00× | |"
    );
    println!();
    println!("| walk-forward | windows × rows | time | skill vs last close |");
    println!("|---|---|---|---|");
    println!(
        "| linear, expanding window | {windows} × {window_rows} | {walk_forward_s:.3} s | {} |",
        evaluation
            .skill
            .map_or_else(|| "n/a".to_owned(), |s| format!("{s:.3}"))
    );
    if max_difference > 1e-6 {
        bail!("coefficients differ from scikit-learn's by {max_difference:.1e} (relative)");
    }
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
        pricecast_warehouse::config::DEFAULT_BATCH_SIZE,
        run.wall.as_secs_f64(),
        candles as f64 / run.wall.as_secs_f64(),
        run.peak_rss_mb
    );
    Ok(())
}

/// The process's peak resident set size in MB (`VmHWM`).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn features_frame(candles: usize, python: Option<PathBuf>) -> Result<()> {
    use polars::prelude::IntoLazy;
    use pricecast_shared::features::store::encode_features;
    use pricecast_shared::features::{
        FeatureSpec, SEED_FEATURE_NAMES, candle_frame, feature_frame,
    };
    const RUNS: usize = 3;
    let python = match python {
        Some(path) => path,
        None => venv_bin("python")?,
    };
    let frame = {
        let series = synthetic_series("BTCUSDT", Interval::M1, candles);
        candle_frame(&series)?
    };
    let folder = tempfile::tempdir()?;
    let parquet = folder.path().join("candles.parquet");
    std::fs::write(&parquet, encode_features(&frame)?)?;
    // Peak memory from here on: the feature frame, not the synthetic Candle structs.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let time = |spec: &FeatureSpec| -> Result<(f64, usize)> {
        let mut best = f64::INFINITY;
        let mut rows = 0;
        for _ in 0..RUNS {
            let started = Instant::now();
            let out = feature_frame(frame.clone().lazy(), Interval::M1, spec).collect()?;
            best = best.min(started.elapsed().as_secs_f64());
            rows = out.height();
        }
        Ok((best, rows))
    };
    let (all_s, all_rows) = time(&FeatureSpec::all(vec![1]))?;
    let (seed_s, _) = time(&FeatureSpec::new(&SEED_FEATURE_NAMES, vec![1])?)?;
    let peak = peak_rss_mb().unwrap_or(f64::NAN);
    let output = Command::new(&python)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/bench_features_pandas.py"))
        .arg(&parquet)
        .arg(RUNS.to_string())
        .arg(Interval::M1.duration_ms().to_string())
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !output.status.success() {
        bail!(
            "bench_features_pandas.py failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let pandas: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let pandas_all = pandas["all_s"].as_f64().context("all_s")?;
    let pandas_seed = pandas["seed_s"].as_f64().context("seed_s")?;
    if pandas["all_rows"].as_u64() != Some(all_rows as u64) {
        bail!(
            "pandas kept {} rows, polars {all_rows}: the definitions differ",
            pandas["all_rows"]
        );
    }
    // The same values, not only the same rows: every column's sum within float rounding.
    let ours = feature_frame(
        frame.clone().lazy(),
        Interval::M1,
        &FeatureSpec::all(vec![1]),
    )
    .collect()?;
    let sums = pandas["all_sums"].as_object().context("all_sums")?;
    for (name, theirs) in sums {
        let theirs = theirs.as_f64().context("a column sum")?;
        let column = ours
            .column(name)?
            .cast(&polars::prelude::DataType::Float64)?;
        let sum: f64 = column.f64()?.iter().flatten().sum();
        if (sum - theirs).abs() > 1e-9 * sum.abs().max(theirs.abs()).max(1.0) {
            bail!(
                "column {name} sums to {sum} here and {theirs} in pandas: the definitions differ"
            );
        }
    }
    println!(
        "| implementation (best of {RUNS}) | candles | 24 features + target | rows/s | seed lags + MA10 | peak RSS | speed-up over pandas (all / seed) |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| Pricecast (polars 0.55 lazy) | {candles} | {all_s:.3} s | {:.0} | {seed_s:.3} s | {peak:.0} MB | {:.2}× / {:.2}× |",
        candles as f64 / all_s,
        pandas_all / all_s,
        pandas_seed / seed_s
    );
    println!(
        "| pandas 3.1 | {candles} | {pandas_all:.3} s | {:.0} | {pandas_seed:.3} s | | 1.00× |",
        candles as f64 / pandas_all
    );
    Ok(())
}

/// The bundled BTCUSDT history exported, turned into features and trained on, in a lake folder
/// with the local registry.
struct TrainedLake {
    db: TestDb,
    dir: tempfile::TempDir,
    lake: Lake,
    registry: Arc<ModelRegistry>,
}

const PREDICT_SERIES: &str = "BTCUSDT";

fn predict_train_plan(force: bool) -> Result<TrainPlan> {
    Ok(TrainPlan {
        symbols: vec![PREDICT_SERIES.parse()?],
        intervals: vec![Interval::H1],
        params: ModelParams::default(),
        horizon: 1,
        features: FeatureSelection::Price,
        eval_windows: 4,
        eval_window_rows: 168,
        interval_level: DEFAULT_INTERVAL_LEVEL,
        registry: RegistryArgs::local(),
        force_promote: force,
        scope: SeriesScope::default(),
    })
}

async fn trained_lake() -> Result<TrainedLake> {
    let db = TestDb::postgres().await;
    db.load_bundled(PREDICT_SERIES, 26_279).await;
    let dir = tempfile::tempdir()?;
    let lake = Lake::open(&LakeArgs::for_url(LakeUrl::Local(dir.path().to_path_buf()))).await?;
    export_and_build_features(
        &db.store,
        &lake,
        &PREDICT_SERIES.parse()?,
        Interval::H1,
        FeatureSpec::default(),
    )
    .await?;
    let registry = Arc::new(ModelRegistry::Local(LocalRegistry::new(lake.clone())));
    train::run(
        &TrainContext {
            lake: lake.clone(),
            registry: registry.clone(),
            cancel: CancellationToken::new(),
        },
        &predict_train_plan(false)?,
    )
    .await?;
    Ok(TrainedLake {
        db,
        dir,
        lake,
        registry,
    })
}

/// The seed app's way, per request: find the model in the registry, load it, read the newest
/// candles, build the features and predict. Returns requests/s on one core.
async fn seed_style_predictions(trained: &TrainedLake, requests: usize) -> Result<f64> {
    let symbol = PREDICT_SERIES.parse()?;
    let name = RegistryArgs::local().model_name_for(&symbol, Interval::H1);
    let started = Instant::now();
    for _ in 0..requests {
        let champion = RegisteredModel::load(&trained.registry, &name, CHAMPION)
            .await?
            .context("no champion")?;
        let spec = FeatureSpec {
            horizons: Vec::new(),
            features: champion.model.feature_names.clone(),
        };
        let mut candles = trained
            .db
            .store
            .candles(&CandleQuery {
                symbol: symbol.clone(),
                interval: Interval::H1,
                from: None,
                to: None,
                limit: spec.history() as i64 + 1,
                offset: 0,
                newest_first: true,
            })
            .await?;
        candles.reverse();
        let row = latest_row(&candles, Interval::H1, &spec)?.context("no feature row")?;
        champion.model.predict_close(&row.values, row.close)?;
    }
    Ok(requests as f64 / started.elapsed().as_secs_f64())
}

async fn predict(seconds: u64, connections: u32) -> Result<()> {
    let trained = trained_lake().await?;
    let anchor = seed_style_predictions(&trained, 200).await?;
    println!(
        "seed app's way (registry lookup + model load + features + predict per request, local registry on a folder, one core): {anchor:.0} requests/s"
    );
    println!("| endpoint | response cache | connections | requests/s | p50 | p99 |");
    println!("|---|---|---|---|---|---|");
    let path = format!("/price/predict?symbol={PREDICT_SERIES}&interval=1h");
    for cache_ttl_ms in ["1000", "0"] {
        let server = PredictServer::start(&trained, cache_ttl_ms).await?;
        let cache = if cache_ttl_ms == "0" {
            "off".to_owned()
        } else {
            format!("{cache_ttl_ms} ms")
        };
        let url = format!("{}{path}", server.base);
        let result = tokio::task::spawn_blocking(move || {
            wrk(&url, "/price/predict", &cache, seconds, connections)
        })
        .await?;
        result?;
    }
    // A new champion while under load: wrk fails the run on any non-2xx answer.
    let server = PredictServer::start(&trained, "0").await?;
    let before = server.version(&path).await?;
    let url = format!("{}{path}", server.base);
    let load = tokio::task::spawn_blocking(move || {
        wrk(
            &url,
            "/price/predict (new champion mid-run)",
            "off",
            seconds,
            connections,
        )
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    train::run(
        &TrainContext {
            lake: trained.lake.clone(),
            registry: trained.registry.clone(),
            cancel: CancellationToken::new(),
        },
        &predict_train_plan(true)?,
    )
    .await?;
    load.await??;
    let after = server.version(&path).await?;
    println!("champion swapped under load: version {before} → {after}, no failed request");
    if after == before {
        bail!("the API did not pick up the new champion (still version {before})");
    }
    Ok(())
}

/// A release `pricecast-api` over a trained lake, killed when dropped.
struct PredictServer {
    base: String,
    child: std::process::Child,
}

impl Drop for PredictServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PredictServer {
    async fn start(trained: &TrainedLake, cache_ttl_ms: &str) -> Result<Self> {
        let port = free_port()?;
        let child = Command::new(sibling("pricecast-api")?)
            .env("DATABASE_URL", &trained.db.url)
            .env("PRICECAST_API_ADDR", format!("127.0.0.1:{port}"))
            .env("DATABASE_MAX_CONNECTIONS", "16")
            .env("PRICECAST_API_CACHE_TTL_MS", cache_ttl_ms)
            .env(
                "LAKE_URL",
                format!("file://{}", trained.dir.path().display()),
            )
            .env("PRICECAST_SYMBOLS", PREDICT_SERIES)
            .env("PRICECAST_INTERVALS", "1h")
            .env("PRICECAST_API_MAX_STALE_CANDLES", "0")
            .env("PRICECAST_MODEL_POLL_SECS", "1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("starting pricecast-api")?;
        let server = Self {
            base: format!("http://127.0.0.1:{port}"),
            child,
        };
        wait_ready(&format!("{}/health", server.base)).await?;
        Ok(server)
    }

    async fn version(&self, path: &str) -> Result<u64> {
        let body: serde_json::Value = reqwest::get(format!("{}{path}", self.base))
            .await?
            .error_for_status()?
            .json()
            .await?;
        body["model"]["version"]
            .as_u64()
            .with_context(|| format!("no model version in {body}"))
    }
}
