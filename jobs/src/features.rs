//! The features job: feature frames from the lake's candles into the lake, one file per UTC
//! day, rebuilt only where their inputs changed.
//!
//! Steps, per symbol and interval: list the candle files and their versions
//! ([`candle_sources`]), decide which feature days are due against the feature manifest
//! ([`due_days`]), group them into chunks of consecutive days ([`chunk_days`]), and for each
//! chunk read the candle days it needs (its own and those its history and targets reach),
//! compute and encode its days off the async runtime ([`build_partitions`]), write each file
//! whole, then record the chunk in the manifest. A definition change (another hash) or
//! `--full` rebuilds every day; a run with nothing new writes nothing. On SIGTERM the files
//! being written are finished, the manifest lists exactly them, and the run stops.

use std::collections::BTreeMap;

use chrono::{NaiveDate, Utc};
use pricecast_shared::domain::{Interval, Symbol};
use pricecast_shared::features::FeatureSpec;
use pricecast_shared::features::store::{
    BuiltPartition, FeatureManifest, FeaturePartition, SourcePartition, build_partitions,
    candle_sources, decode_candles, due_days, feature_partition_path, input_reach, inputs_of,
    read_candle_days,
};
use pricecast_shared::lake::{Lake, LakeArgs};
use pricecast_shared::report::{JobReport, LakeWork, Work};
use pricecast_shared::series::{SeriesScope, cores, run_series};
use pricecast_shared::settings::{DatabaseArgs, RunArgs, SeriesArgs};
use pricecast_shared::{Error, Result};
use tokio_util::sync::CancellationToken;

/// Job name in `job_runs` and the lock.
pub const JOB: &str = "features";
/// Candle rows computed at once: bounds memory (about 250 bytes a row with every feature)
/// while keeping polars' vectorised work large.
const CHUNK_CANDLES: u64 = 500_000;
/// Days from which a progress bar is worth drawing.
const PROGRESS_MIN_DAYS: u64 = 30;

/// Flags and variables of `pricecast-features`.
#[derive(clap::Args, Clone, Debug)]
pub struct FeaturesArgs {
    /// Database settings (the lock and `job_runs`).
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Symbols and intervals.
    #[command(flatten)]
    pub series: SeriesArgs,
    /// Where the lake is.
    #[command(flatten)]
    pub lake: LakeArgs,
    /// Once or on a schedule.
    #[command(flatten)]
    pub run: RunArgs,
    /// The targets written.
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Rebuild every day, whatever the manifest says.
    #[arg(long)]
    pub full: bool,
}

/// The targets a feature frame holds (shared by `pricecast-features` and `pricecast schedule`).
#[derive(clap::Args, Clone, Debug)]
pub struct TargetArgs {
    /// Comma-separated target horizons in candles: `price_t+h` for each.
    #[arg(
        long,
        env = "PRICECAST_HORIZONS",
        value_name = "PRICECAST_HORIZONS",
        value_delimiter = ',',
        default_value = "1",
        value_parser = parse_horizon
    )]
    pub horizons: Vec<u32>,
}

impl TargetArgs {
    /// The feature set written: every feature, with these horizons (sorted, deduplicated).
    pub fn spec(&self) -> Result<FeatureSpec> {
        let mut horizons = self.horizons.clone();
        horizons.sort_unstable();
        horizons.dedup();
        let spec = FeatureSpec::all(horizons);
        spec.validate()?;
        Ok(spec)
    }
}

fn parse_horizon(s: &str) -> std::result::Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(h) if h >= 1 => Ok(h),
        _ => Err(format!(
            "PRICECAST_HORIZONS: {s:?} is not a horizon; use whole numbers of candles ≥ 1, e.g. 1,3"
        )),
    }
}

/// What one features run does.
#[derive(Clone, Debug)]
pub struct FeaturesPlan {
    /// Symbols.
    pub symbols: Vec<Symbol>,
    /// Intervals.
    pub intervals: Vec<Interval>,
    /// The feature set written (every feature, with the configured horizons).
    pub spec: FeatureSpec,
    /// Rebuild every day.
    pub full: bool,
    /// This process's shard of the series, and how many it builds at once.
    pub scope: SeriesScope,
}

impl FeaturesPlan {
    /// The plan the flags describe.
    pub fn from_args(args: &FeaturesArgs) -> Result<Self> {
        let spec = args.targets.spec()?;
        Ok(Self {
            symbols: args.series.symbol_names(),
            intervals: args.series.intervals.clone(),
            spec,
            full: args.full,
            scope: args.series.scope()?,
        })
    }
}

/// What the features job works with.
#[derive(Clone, Debug)]
pub struct FeaturesContext {
    /// The lake read and written.
    pub lake: Lake,
    /// Cancelled on shutdown: no new file starts, the manifest records those written.
    pub cancel: CancellationToken,
}

/// What was built for one series.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeriesReport {
    /// Day files written.
    pub partitions: usize,
    /// Feature rows in them.
    pub rows: u64,
    /// Bytes in them.
    pub bytes: u64,
}

/// `pricecast-features`: connects to the database (for the lock and `job_runs`) and the lake,
/// then runs once or on the cron schedule.
pub async fn execute(args: FeaturesArgs) -> Result<()> {
    let plan = FeaturesPlan::from_args(&args)?;
    let store = crate::connect(&args.database, !args.run.no_migrate).await?;
    let lake = Lake::open(&args.lake).await?;
    let cancel = pricecast_shared::runner::shutdown_token();
    let ctx = FeaturesContext {
        lake,
        cancel: cancel.clone(),
    };
    crate::run_job(JOB, plan.scope.shard, store, &args.run, cancel, move || {
        let ctx = ctx.clone();
        let plan = plan.clone();
        async move { run(&ctx, &plan).await }
    })
    .await
}

/// Runs the job: every series of the plan's shard, one per core (or the plan's concurrency)
/// at once; a failing series does not stop the others.
pub async fn run(ctx: &FeaturesContext, plan: &FeaturesPlan) -> Result<JobReport> {
    let (symbols, resolution) = crate::symbols_for_run(
        &plan.scope,
        &plan.symbols,
        ctx.lake
            .symbols_under(pricecast_shared::lake::candles::CANDLES_DIR),
    )
    .await?;
    let series = plan.scope.series(&symbols, &plan.intervals);
    let concurrency = plan.scope.concurrency_or(cores());
    run_series(
        series,
        concurrency,
        &ctx.cancel,
        |symbol, interval| async move {
            let report = build_series(ctx, plan, &symbol, interval).await?;
            Ok(Work::Features(LakeWork {
                partitions: report.partitions as u64,
                rows: report.rows,
                bytes: report.bytes,
                lake: ctx.lake.url().to_string(),
                watermark: None,
            }))
        },
    )
    .await
    .map(|report| report.with_resolution(resolution))
}

/// Due days cut into chunks of consecutive days holding at most [`CHUNK_CANDLES`] candles
/// (a single larger day is a chunk of its own).
pub fn chunk_days(
    days: &[NaiveDate],
    sources: &BTreeMap<NaiveDate, SourcePartition>,
    max_candles: u64,
) -> Vec<Vec<NaiveDate>> {
    let mut chunks: Vec<Vec<NaiveDate>> = Vec::new();
    let mut candles = 0;
    for &day in days {
        let rows = sources.get(&day).map_or(0, |s| s.rows);
        match chunks.last_mut() {
            Some(chunk)
                if chunk.last().and_then(|d| d.succ_opt()) == Some(day)
                    && candles + rows <= max_candles =>
            {
                chunk.push(day);
                candles += rows;
            }
            _ => {
                chunks.push(vec![day]);
                candles = rows;
            }
        }
    }
    chunks
}

/// Rebuilds the due days of one series and records them in its feature manifest.
pub async fn build_series(
    ctx: &FeaturesContext,
    plan: &FeaturesPlan,
    symbol: &Symbol,
    interval: Interval,
) -> Result<SeriesReport> {
    let spec = &plan.spec;
    let sources = candle_sources(&ctx.lake, symbol, interval).await?;
    let existing = FeatureManifest::read(&ctx.lake, symbol, interval).await?;
    let due = due_days(&sources, existing.as_ref(), spec, interval, plan.full);
    let mut report = SeriesReport::default();
    if due.is_empty() {
        tracing::info!(symbol = %symbol, interval = %interval, "features are up to date");
        return Ok(report);
    }
    if existing
        .as_ref()
        .is_some_and(|m| m.feature_set_hash != spec.hash())
    {
        tracing::info!(symbol = %symbol, interval = %interval, feature_set_hash = %spec.hash(), "feature definition changed, rebuilding every day");
    }
    let mut manifest = match existing {
        Some(m) => m,
        None => FeatureManifest::new(symbol, interval, spec),
    };
    let reach = input_reach(spec, interval);
    let progress = crate::progress_bar(
        due.len() as u64,
        PROGRESS_MIN_DAYS,
        format!("{symbol} {interval} features"),
        "days",
    );
    let mut outcome = Ok(());
    for chunk in chunk_days(&due, &sources, CHUNK_CANDLES) {
        if ctx.cancel.is_cancelled() {
            outcome = Err(Error::Cancelled);
            break;
        }
        let (written, result) =
            build_chunk(ctx, spec, symbol, interval, &chunk, &sources, reach).await;
        progress.inc(written.len() as u64);
        report.partitions += written.len();
        report.rows += written.iter().map(|p| p.rows).sum::<u64>();
        report.bytes += written.iter().map(|p| p.bytes).sum::<u64>();
        if !written.is_empty() {
            manifest.merge(spec, &written, Utc::now());
            let recorded = manifest.write(&ctx.lake, symbol, interval).await;
            if let Err(e) = recorded {
                outcome = Err(e);
                break;
            }
        }
        if let Err(e) = result {
            outcome = Err(e);
            break;
        }
    }
    progress.finish_and_clear();
    tracing::info!(
        symbol = %symbol,
        interval = %interval,
        partitions = report.partitions,
        rows = report.rows,
        bytes = report.bytes,
        "features built"
    );
    outcome.map(|()| report)
}

/// Builds and writes one chunk of consecutive days. Returns the partitions written and how the
/// chunk ended: on shutdown the files already started are finished and the rest skipped.
async fn build_chunk(
    ctx: &FeaturesContext,
    spec: &FeatureSpec,
    symbol: &Symbol,
    interval: Interval,
    chunk: &[NaiveDate],
    sources: &BTreeMap<NaiveDate, SourcePartition>,
    reach: (i64, i64),
) -> (Vec<FeaturePartition>, Result<()>) {
    let (Some(&first), Some(&last)) = (chunk.first(), chunk.last()) else {
        return (Vec::new(), Ok(()));
    };
    let from = first - chrono::Duration::days(reach.0);
    let to = last + chrono::Duration::days(reach.1);
    let input_days: Vec<NaiveDate> = sources.range(from..=to).map(|(d, _)| *d).collect();
    let files = match read_candle_days(&ctx.lake, symbol, interval, &input_days).await {
        Ok(files) => files,
        Err(e) => return (Vec::new(), Err(e)),
    };
    let spec_owned = spec.clone();
    let days = chunk.to_vec();
    let built = tokio::task::spawn_blocking(move || {
        build_partitions(decode_candles(files)?, interval, &spec_owned, &days)
    })
    .await
    .unwrap_or_else(|e| {
        Err(Error::Features {
            operation: format!("computing features of {symbol} {interval}"),
            message: format!("the worker stopped: {e}"),
        })
    });
    let built = match built {
        Ok(built) => built,
        Err(e) => return (Vec::new(), Err(e)),
    };
    let hash = spec.hash();
    let mut written = Vec::with_capacity(built.len());
    for partition in built {
        if ctx.cancel.is_cancelled() {
            return (written, Err(Error::Cancelled));
        }
        match write_partition(
            &ctx.lake, symbol, interval, partition, sources, reach, &hash,
        )
        .await
        {
            Ok(entry) => written.push(entry),
            Err(e) => return (written, Err(e)),
        }
    }
    (written, Ok(()))
}

/// Writes one day's file in one PUT and describes it for the manifest.
async fn write_partition(
    lake: &Lake,
    symbol: &Symbol,
    interval: Interval,
    partition: BuiltPartition,
    sources: &BTreeMap<NaiveDate, SourcePartition>,
    reach: (i64, i64),
    hash: &str,
) -> Result<FeaturePartition> {
    let path = feature_partition_path(symbol, interval, partition.date);
    let bytes = partition.parquet.len() as u64;
    lake.put(&path, partition.parquet).await?;
    Ok(FeaturePartition {
        date: partition.date,
        path,
        rows: partition.rows,
        bytes,
        min_open_time: partition.min_open_time,
        max_open_time: partition.max_open_time,
        feature_set_hash: hash.to_owned(),
        sources: inputs_of(partition.date, sources, reach),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    fn source(date: &str, rows: u64) -> (NaiveDate, SourcePartition) {
        let date = day(date);
        let start = date.and_time(chrono::NaiveTime::MIN).and_utc();
        (
            date,
            SourcePartition {
                date,
                rows,
                bytes: 1000,
                min_open_time: start,
                max_open_time: start,
                version: "v1".to_owned(),
            },
        )
    }

    #[test]
    fn chunks_are_runs_of_consecutive_days_within_the_size() {
        let sources: BTreeMap<_, _> = [
            source("2025-01-01", 24),
            source("2025-01-02", 24),
            source("2025-01-03", 24),
            source("2025-01-05", 24),
        ]
        .into_iter()
        .collect();
        let days: Vec<NaiveDate> = sources.keys().copied().collect();
        assert_eq!(
            chunk_days(&days, &sources, 48),
            vec![
                vec![day("2025-01-01"), day("2025-01-02")],
                vec![day("2025-01-03")],
                vec![day("2025-01-05")],
            ]
        );
        assert_eq!(chunk_days(&days, &sources, 1000).len(), 2);
        assert!(chunk_days(&[], &sources, 10).is_empty());
    }

    #[test]
    fn changed_candle_days_make_exactly_their_reach_due() {
        let spec = FeatureSpec::all(vec![1]);
        let mut sources: BTreeMap<_, _> = (1..=9)
            .map(|d| source(&format!("2025-01-0{d}"), 24))
            .collect();
        let symbol: Symbol = "BTCUSDT".parse().expect("symbol");
        // 1h: 49 candles reach 3 days back, one candle 1 day ahead.
        assert_eq!(input_reach(&spec, Interval::H1), (3, 1));
        assert_eq!(input_reach(&spec, Interval::M1), (1, 1));
        let mut manifest = FeatureManifest::new(&symbol, Interval::H1, &spec);
        let built: Vec<FeaturePartition> = sources
            .keys()
            .map(|&date| FeaturePartition {
                date,
                path: feature_partition_path(&symbol, Interval::H1, date),
                rows: 24,
                bytes: 1,
                min_open_time: None,
                max_open_time: None,
                feature_set_hash: spec.hash(),
                sources: inputs_of(date, &sources, (3, 1)),
            })
            .collect();
        manifest.merge(&spec, &built, Utc::now());
        assert!(due_days(&sources, Some(&manifest), &spec, Interval::H1, false).is_empty());
        assert_eq!(
            due_days(&sources, Some(&manifest), &spec, Interval::H1, true).len(),
            9
        );
        let other = FeatureSpec::all(vec![1, 2]);
        assert_eq!(
            due_days(&sources, Some(&manifest), &other, Interval::H1, false).len(),
            9
        );

        if let Some(changed) = sources.get_mut(&day("2025-01-05")) {
            changed.version = "v2".to_owned();
        }
        assert_eq!(
            due_days(&sources, Some(&manifest), &spec, Interval::H1, false),
            (4..=8)
                .map(|d| day(&format!("2025-01-0{d}")))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn horizons_are_validated() {
        assert_eq!(parse_horizon("3"), Ok(3));
        assert!(parse_horizon("0").is_err());
        assert!(
            parse_horizon("x")
                .expect_err("bad")
                .contains("PRICECAST_HORIZONS")
        );
    }
}
