//! The export job: candles from the database into the lake as Parquet, one file per UTC day.
//!
//! Steps, per symbol and interval: decide which candles count as new ([`ExportRange::filter`]
//! over the export watermark), find the days holding them ([`plan_series`]), stream those days
//! from the database on two connections at once ([`split_days`]), in runs of consecutive days,
//! and cut them into one Arrow batch per day ([`read_partitions`], [`day_runs`]), rewrite each day's file whole ([`write_partition`]),
//! list what was written in the series manifest ([`update_manifest`]), and only then advance
//! the watermark ([`next_watermark`]). A day that gets a new or corrected candle is rewritten
//! whole, so re-running is idempotent and late corrections land; a failed run leaves every file
//! either as it was or completely rewritten, and the watermark where it was.

use indicatif::ProgressBar;
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use pricecast_shared::domain::{Interval, Symbol};
use pricecast_shared::lake::candles::{
    CandleBatchBuilder, CandlePartition, partition_date_ms, writer_properties,
};
use pricecast_shared::lake::manifest::{PartitionEntry, SeriesManifest};
use pricecast_shared::lake::{Lake, LakeArgs};
use pricecast_shared::report::{JobReport, LakeWork, Work};
use pricecast_shared::series::{SeriesScope, run_series};
use pricecast_shared::settings::{DatabaseArgs, RunArgs, SeriesArgs};
use pricecast_shared::store::{ChangeFilter, ChangedDay, Store};
use pricecast_shared::telemetry::error_chain;
use pricecast_shared::{Error, Result};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Job name in `job_runs`, the lock and the watermarks.
pub const JOB: &str = "export";
/// Candles ingested less than this long ago stay above the watermark and are exported again
/// next run: a collect transaction that began earlier may still commit rows stamped before
/// the newest row seen, and those must not fall below the watermark unseen.
pub const WATERMARK_SETTLE: chrono::Duration = chrono::Duration::seconds(60);
/// Day partitions read ahead of, and being written by, the uploaders: enough to keep the
/// database and the store busy at once, few enough to bound memory (a day of 1s candles is
/// about 15 MB of Arrow arrays).
const PARTITIONS_IN_FLIGHT: usize = 4;
/// Database connections reading days at once, each a run of consecutive days: PostgreSQL
/// produces rows on one core while the export decodes and encodes on the other.
const READERS: usize = 2;
/// Milliseconds in a UTC day (partitions are UTC days).
const MS_PER_DAY: i64 = 86_400_000;
/// Partitions from which a progress bar is worth drawing.
const PROGRESS_MIN_PARTITIONS: u64 = 30;
/// Partition paths a dry run lists per series before summarising the rest.
const DRY_RUN_LISTED: usize = 20;

/// Flags and variables of `pricecast-export`.
#[derive(clap::Args, Clone, Debug)]
pub struct ExportArgs {
    /// Database settings.
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
    /// Re-export every day, whatever the watermark says.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub full: bool,
    /// Export the days from this date (YYYY-MM-DD, UTC) on; the watermark is left alone.
    #[arg(long, value_parser = parse_date)]
    pub from: Option<NaiveDate>,
    /// Export the days up to this date (YYYY-MM-DD, UTC, inclusive); the watermark is left alone.
    #[arg(long, value_parser = parse_date)]
    pub to: Option<NaiveDate>,
    /// Print the partitions that would be written, write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_date(s: &str) -> std::result::Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("{s:?} is not a date: use YYYY-MM-DD (UTC)"))
}

/// Which candles an export covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportRange {
    /// Those ingested since the watermark (the default).
    Changed,
    /// All of them (`--full`).
    Full,
    /// Those opening on these UTC days, inclusive (`--from`/`--to`).
    Days {
        /// First day, or the beginning.
        from: Option<NaiveDate>,
        /// Last day, or the end.
        to: Option<NaiveDate>,
    },
}

impl ExportRange {
    /// The database filter for this range given the series' watermark.
    pub fn filter(&self, watermark: Option<DateTime<Utc>>) -> ChangeFilter {
        let midnight = |d: NaiveDate| d.and_time(chrono::NaiveTime::MIN).and_utc();
        match self {
            Self::Changed => ChangeFilter {
                ingested_after: watermark,
                ..ChangeFilter::default()
            },
            Self::Full => ChangeFilter::default(),
            Self::Days { from, to } => ChangeFilter {
                ingested_after: None,
                open_from: from.map(midnight),
                open_before: to.and_then(|d| d.succ_opt()).map(midnight),
            },
        }
    }

    /// Whether a run over this range moves the watermark: a partial range does not, since
    /// changes outside it are still to be exported.
    pub fn advances_watermark(&self) -> bool {
        !matches!(self, Self::Days { .. })
    }
}

/// What one export run does.
#[derive(Clone, Debug)]
pub struct ExportPlan {
    /// Symbols to export.
    pub symbols: Vec<Symbol>,
    /// Intervals to export.
    pub intervals: Vec<Interval>,
    /// Which candles.
    pub range: ExportRange,
    /// How recent an `ingested_at` stays above the watermark ([`WATERMARK_SETTLE`]).
    pub settle: chrono::Duration,
    /// This process's shard of the series, and how many it exports at once.
    pub scope: SeriesScope,
}

/// Series exported at once by default: each is a database read and Parquet encoding, so about
/// two keep both the database and the encoder busy.
pub const DEFAULT_CONCURRENCY: usize = 2;

impl ExportPlan {
    /// The plan the flags describe.
    pub fn from_args(args: &ExportArgs) -> Result<Self> {
        let range = if args.full {
            ExportRange::Full
        } else if args.from.is_some() || args.to.is_some() {
            ExportRange::Days {
                from: args.from,
                to: args.to,
            }
        } else {
            ExportRange::Changed
        };
        Ok(Self {
            symbols: args.series.symbol_names(),
            intervals: args.series.intervals.clone(),
            range,
            settle: WATERMARK_SETTLE,
            scope: args.series.scope()?,
        })
    }
}

/// What the export job works with.
#[derive(Clone, Debug)]
pub struct ExportContext {
    /// The database.
    pub store: Store,
    /// The lake written to.
    pub lake: Lake,
    /// Cancelled on shutdown: no new partition starts, those being written finish.
    pub cancel: CancellationToken,
}

/// What is to be exported for one series.
#[derive(Clone, Debug)]
pub struct SeriesPlan {
    /// Trading pair.
    pub symbol: Symbol,
    /// Kline interval.
    pub interval: Interval,
    /// The watermark before this run.
    pub watermark: Option<DateTime<Utc>>,
    /// Days to rewrite, oldest first, with the candles that made them due.
    pub days: Vec<ChangedDay>,
}

/// What was exported for one series.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeriesReport {
    /// Partition files written.
    pub partitions: usize,
    /// Rows in them.
    pub rows: u64,
    /// Bytes in them.
    pub bytes: u64,
    /// The watermark after the run.
    pub watermark: Option<DateTime<Utc>>,
}

/// `pricecast-export`: connects to the database and the lake, then runs once, on the cron
/// schedule, or prints the plan (`--dry-run`).
pub async fn execute(args: ExportArgs) -> Result<()> {
    let store = crate::connect(&args.database, !args.run.no_migrate).await?;
    let lake = Lake::open(&args.lake).await?;
    let cancel = pricecast_shared::runner::shutdown_token();
    let ctx = ExportContext {
        store: store.clone(),
        lake,
        cancel: cancel.clone(),
    };
    let plan = ExportPlan::from_args(&args)?;
    if args.dry_run {
        let mut plans = Vec::new();
        for (symbol, interval) in plan.scope.series(&plan.symbols, &plan.intervals) {
            plans.push(plan_series(&ctx.store, &plan.range, &symbol, interval).await?);
        }
        print!("{}", render_plan(ctx.lake.url(), &plans));
        return Ok(());
    }
    crate::run_job(JOB, plan.scope.shard, store, &args.run, cancel, move || {
        let ctx = ctx.clone();
        let plan = plan.clone();
        async move { run(&ctx, &plan).await }
    })
    .await
}

/// Runs the job: every series of the plan's shard, [`DEFAULT_CONCURRENCY`] (or the plan's
/// concurrency) at once; a failing series does not stop the others.
pub async fn run(ctx: &ExportContext, plan: &ExportPlan) -> Result<JobReport> {
    let (symbols, resolution) =
        crate::symbols_for_run(&plan.scope, &plan.symbols, ctx.store.stored_symbols()).await?;
    let series = plan.scope.series(&symbols, &plan.intervals);
    let concurrency = plan.scope.concurrency_or(DEFAULT_CONCURRENCY);
    run_series(
        series,
        concurrency,
        &ctx.cancel,
        |symbol, interval| async move {
            let series = plan_series(&ctx.store, &plan.range, &symbol, interval).await?;
            let report = export_series(ctx, plan, &series).await?;
            Ok(Work::Export(LakeWork {
                partitions: report.partitions as u64,
                rows: report.rows,
                bytes: report.bytes,
                lake: ctx.lake.url().to_string(),
                watermark: report.watermark,
            }))
        },
    )
    .await
    .map(|report| report.with_resolution(resolution))
}

/// Finds the days of a series to rewrite.
pub async fn plan_series(
    store: &Store,
    range: &ExportRange,
    symbol: &Symbol,
    interval: Interval,
) -> Result<SeriesPlan> {
    let watermark = store.watermark(JOB, symbol, interval).await?;
    let days = store
        .changed_days(symbol, interval, &range.filter(watermark))
        .await?;
    Ok(SeriesPlan {
        symbol: symbol.clone(),
        interval,
        watermark,
        days,
    })
}

/// The dry run's report.
pub fn render_plan(lake_url: &str, plans: &[SeriesPlan]) -> String {
    let mut out = format!("Export plan for {lake_url} (dry run: nothing is written)\n");
    for plan in plans {
        let changed: i64 = plan.days.iter().map(|d| d.rows).sum();
        let since = plan
            .watermark
            .map_or_else(|| "the beginning".to_owned(), |w| w.to_rfc3339());
        let _ = writeln!(
            out,
            "{} {}: {} partitions to rewrite, {changed} candles new or changed since {since}",
            plan.symbol,
            plan.interval,
            plan.days.len()
        );
        for day in plan.days.iter().take(DRY_RUN_LISTED) {
            let partition = CandlePartition {
                symbol: plan.symbol.clone(),
                interval: plan.interval,
                date: day.date,
            };
            let _ = writeln!(out, "  {} ({} changed)", partition.path(), day.rows);
        }
        if plan.days.len() > DRY_RUN_LISTED {
            let _ = writeln!(out, "  … and {} more", plan.days.len() - DRY_RUN_LISTED);
        }
    }
    out
}

/// Rewrites the planned days of one series, updates its manifest and advances its watermark.
pub async fn export_series(
    ctx: &ExportContext,
    plan: &ExportPlan,
    series: &SeriesPlan,
) -> Result<SeriesReport> {
    let mut report = SeriesReport {
        watermark: series.watermark,
        ..SeriesReport::default()
    };
    if series.days.is_empty() {
        tracing::info!(symbol = %series.symbol, interval = %series.interval, "nothing to export");
        return Ok(report);
    }
    let settled_before = ctx.store.database_now().await? - plan.settle;
    let progress = crate::progress_bar(
        series.days.len() as u64,
        PROGRESS_MIN_PARTITIONS,
        format!("{} {}", series.symbol, series.interval),
        "day partitions",
    );
    let (written, outcome) = write_partitions(ctx, series, &progress).await;
    progress.finish_and_clear();
    if !written.is_empty() {
        let manifest = update_manifest(&ctx.lake, &series.symbol, series.interval, &written).await;
        match (&outcome, manifest) {
            (_, Ok(())) => {}
            (Ok(()), Err(e)) => return Err(e),
            (Err(_), Err(e)) => {
                tracing::error!(error.message = %error_chain(&e), "could not update the manifest after a failed run");
            }
        }
    }
    report.partitions = written.len();
    report.rows = written.iter().map(|p| p.rows).sum();
    report.bytes = written.iter().map(|p| p.bytes).sum();
    outcome?;
    if plan.range.advances_watermark() {
        let exported_up_to = series.days.iter().map(|d| d.max_ingested_at).max();
        if let Some(position) = next_watermark(series.watermark, exported_up_to, settled_before) {
            ctx.store
                .set_watermark(JOB, &series.symbol, series.interval, position)
                .await?;
            report.watermark = Some(position);
        }
    }
    tracing::info!(
        symbol = %series.symbol,
        interval = %series.interval,
        partitions = report.partitions,
        rows = report.rows,
        bytes = report.bytes,
        "series exported"
    );
    Ok(report)
}

/// The watermark after exporting candles ingested up to `exported_up_to`: never past
/// `settled_before` (see [`WATERMARK_SETTLE`]), never backwards. `None` when it does not move.
pub fn next_watermark(
    current: Option<DateTime<Utc>>,
    exported_up_to: Option<DateTime<Utc>>,
    settled_before: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let candidate = exported_up_to?.min(settled_before);
    match current {
        Some(current) if current >= candidate => None,
        _ => Some(candidate),
    }
}

/// Consecutive days as `(first, last)` runs, each read from the database in one query.
pub fn day_runs(days: &[NaiveDate]) -> Vec<(NaiveDate, NaiveDate)> {
    let mut runs: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    for &day in days {
        match runs.last_mut() {
            Some((_, last)) if last.succ_opt() == Some(day) => *last = day,
            _ => runs.push((day, day)),
        }
    }
    runs
}

/// One day of candles, ready to write.
#[derive(Debug)]
pub struct DayBatch {
    /// Where it goes.
    pub partition: CandlePartition,
    /// The candles, sorted and unique.
    pub batch: arrow::array::RecordBatch,
    /// Open time of the first and last candle, in ms.
    pub time_range: (i64, i64),
}

/// The days split into at most `parts` runs of consecutive planned days (in order, sizes within
/// one of each other), one per concurrent reader.
pub fn split_days(days: &[NaiveDate], parts: usize) -> Vec<Vec<NaiveDate>> {
    let parts = parts.clamp(1, days.len().max(1));
    let (size, longer) = (days.len() / parts, days.len() % parts);
    let mut rest = days;
    (0..parts)
        .map(|i| {
            let (part, tail) = rest.split_at(size + usize::from(i < longer));
            rest = tail;
            part.to_vec()
        })
        .filter(|part| !part.is_empty())
        .collect()
}

/// The day being collected by a reader.
struct DayInProgress {
    /// Days since the Unix epoch, compared per row (cheaper than a date).
    day: i64,
    date: NaiveDate,
    builder: CandleBatchBuilder,
}

/// Streams the given days of a series from the database and sends one batch per day, until
/// done, `stop` fires or the receiver goes away. A failure is sent as the last item.
pub async fn read_partitions(
    store: Store,
    symbol: Symbol,
    interval: Interval,
    days: Vec<NaiveDate>,
    stop: CancellationToken,
    batches: mpsc::Sender<Result<DayBatch>>,
) {
    let per_day = (MS_PER_DAY / interval.duration_ms()).clamp(1, 86_400) as usize;
    let midnight = |d: NaiveDate| d.and_time(chrono::NaiveTime::MIN).and_utc();
    let read = async {
        for (first, last) in day_runs(&days) {
            let before = last.succ_opt().unwrap_or(last);
            let mut rows =
                store.stream_lake_candles(&symbol, interval, midnight(first), midnight(before));
            let mut current: Option<DayInProgress> = None;
            while let Some(row) = rows.next().await {
                let row = row?;
                let day = row.open_time.div_euclid(MS_PER_DAY);
                if current.as_ref().is_none_or(|c| c.day != day) {
                    if let Some(done) = current.take()
                        && !send_day(&batches, &symbol, interval, done).await?
                    {
                        return Ok(());
                    }
                    if stop.is_cancelled() {
                        return Ok(());
                    }
                    let date = partition_date_ms(row.open_time).ok_or_else(|| {
                        Error::CorruptRow(format!("open time {} ms is out of range", row.open_time))
                    })?;
                    current = Some(DayInProgress {
                        day,
                        date,
                        builder: CandleBatchBuilder::new(symbol.clone(), interval, per_day),
                    });
                }
                if let Some(c) = current.as_mut() {
                    c.builder.push_row(&row)?;
                }
            }
            if let Some(done) = current.take()
                && !send_day(&batches, &symbol, interval, done).await?
            {
                return Ok(());
            }
        }
        Ok::<_, Error>(())
    };
    if let Err(e) = read.await {
        let _ = batches.send(Err(e)).await;
    }
}

/// Sends a finished day; `false` when nobody listens any more.
async fn send_day(
    batches: &mpsc::Sender<Result<DayBatch>>,
    symbol: &Symbol,
    interval: Interval,
    mut done: DayInProgress,
) -> Result<bool> {
    let time_range = done.builder.time_range().unwrap_or_default();
    let day = DayBatch {
        partition: CandlePartition {
            symbol: symbol.clone(),
            interval,
            date: done.date,
        },
        batch: done.builder.finish()?,
        time_range,
    };
    Ok(batches.send(Ok(day)).await.is_ok())
}

/// Writes one day's file whole (streamed, atomic) and describes it for the manifest.
pub async fn write_partition(lake: &Lake, day: DayBatch) -> Result<PartitionEntry> {
    let path = day.partition.path();
    let bytes = lake
        .write_parquet(
            &path,
            std::slice::from_ref(&day.batch),
            writer_properties()?,
        )
        .await?;
    let time = |ms: i64| {
        DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| Error::CorruptRow(format!("time {ms} ms is out of range")))
    };
    Ok(PartitionEntry {
        date: day.partition.date,
        path,
        rows: day.batch.num_rows() as u64,
        bytes,
        min_open_time: time(day.time_range.0)?,
        max_open_time: time(day.time_range.1)?,
    })
}

/// Reads the planned days ([`READERS`] runs at once) and writes them, [`PARTITIONS_IN_FLIGHT`] at
/// a time on the runtime's workers. Returns what was written, and how the run ended: on the first failure or on
/// shutdown no new day starts, and the days being written are finished.
async fn write_partitions(
    ctx: &ExportContext,
    series: &SeriesPlan,
    progress: &ProgressBar,
) -> (Vec<PartitionEntry>, Result<()>) {
    let stop = ctx.cancel.child_token();
    let (tx, rx) = mpsc::channel(PARTITIONS_IN_FLIGHT);
    let days: Vec<NaiveDate> = series.days.iter().map(|d| d.date).collect();
    let readers: Vec<_> = split_days(&days, READERS)
        .into_iter()
        .map(|part| {
            tokio::spawn(read_partitions(
                ctx.store.clone(),
                series.symbol.clone(),
                series.interval,
                part,
                stop.clone(),
                tx.clone(),
            ))
        })
        .collect();
    drop(tx);
    let lake = ctx.lake.clone();
    let uploads =
        futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|day| (day, rx)) },
        )
        .map(|day: Result<DayBatch>| {
            let lake = lake.clone();
            tokio::spawn(async move { write_partition(&lake, day?).await })
        })
        .buffered(PARTITIONS_IN_FLIGHT);
    let mut uploads = std::pin::pin!(uploads);
    let mut written = Vec::with_capacity(series.days.len());
    let mut outcome = Ok(());
    while let Some(result) = uploads.next().await {
        let result = result.unwrap_or_else(|e| {
            Err(Error::Io(std::io::Error::other(format!(
                "a partition writer stopped: {e}"
            ))))
        });
        match result {
            Ok(entry) => {
                progress.inc(1);
                written.push(entry);
            }
            Err(e) => {
                if outcome.is_ok() {
                    outcome = Err(e);
                }
                stop.cancel();
            }
        }
    }
    for reader in readers {
        let _ = reader.await;
    }
    if outcome.is_ok() && ctx.cancel.is_cancelled() && written.len() < series.days.len() {
        outcome = Err(Error::Cancelled);
    }
    (written, outcome)
}

/// Lists the written partitions in the series manifest, written after them.
pub async fn update_manifest(
    lake: &Lake,
    symbol: &Symbol,
    interval: Interval,
    written: &[PartitionEntry],
) -> Result<()> {
    let mut manifest = SeriesManifest::read(lake, symbol, interval).await?;
    manifest.merge(written, Utc::now());
    manifest.write(lake).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        parse_date(s).expect("date")
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn consecutive_days_form_runs() {
        let days = [
            day("2025-02-27"),
            day("2025-02-28"),
            day("2025-03-01"),
            day("2025-03-05"),
        ];
        assert_eq!(
            day_runs(&days),
            vec![
                (day("2025-02-27"), day("2025-03-01")),
                (day("2025-03-05"), day("2025-03-05"))
            ]
        );
        assert!(day_runs(&[]).is_empty());
    }

    #[test]
    fn days_split_into_ordered_parts_of_equal_size() {
        let days: Vec<NaiveDate> = (1..=5).map(|d| day(&format!("2025-03-0{d}"))).collect();
        let parts = split_days(&days, 2);
        assert_eq!(parts, vec![days[..3].to_vec(), days[3..].to_vec()]);
        assert_eq!(split_days(&days[..1], 2), vec![days[..1].to_vec()]);
        assert_eq!(split_days(&days, 1), vec![days.clone()]);
        assert!(split_days(&[], 2).is_empty());
    }

    #[test]
    fn ranges_filter_by_watermark_or_days() {
        let watermark = Some(at("2025-01-01T00:00:00Z"));
        assert_eq!(
            ExportRange::Changed.filter(watermark).ingested_after,
            watermark
        );
        assert_eq!(ExportRange::Full.filter(watermark), ChangeFilter::default());
        let days = ExportRange::Days {
            from: Some(day("2025-01-02")),
            to: Some(day("2025-01-03")),
        };
        let filter = days.filter(watermark);
        assert_eq!(filter.ingested_after, None);
        assert_eq!(filter.open_from, Some(at("2025-01-02T00:00:00Z")));
        assert_eq!(filter.open_before, Some(at("2025-01-04T00:00:00Z")));
        assert!(!days.advances_watermark());
        assert!(ExportRange::Full.advances_watermark());
    }

    #[test]
    fn watermark_moves_forward_and_stays_behind_the_settle_time() {
        let settled = at("2025-01-01T12:00:00Z");
        assert_eq!(
            next_watermark(None, Some(at("2025-01-01T11:00:00Z")), settled),
            Some(at("2025-01-01T11:00:00Z"))
        );
        assert_eq!(
            next_watermark(None, Some(at("2025-01-01T13:00:00Z")), settled),
            Some(settled)
        );
        assert_eq!(
            next_watermark(Some(settled), Some(at("2025-01-01T13:00:00Z")), settled),
            None
        );
        assert_eq!(next_watermark(Some(settled), None, settled), None);
    }

    #[test]
    fn dates_are_validated() {
        assert_eq!(parse_date("2025-11-23"), Ok(day("2025-11-23")));
        assert!(
            parse_date("23/11/2025")
                .expect_err("bad")
                .contains("YYYY-MM-DD")
        );
    }

    #[test]
    fn dry_run_lists_partitions() {
        let plan = SeriesPlan {
            symbol: "BTCUSDT".parse().expect("symbol"),
            interval: Interval::H1,
            watermark: None,
            days: vec![ChangedDay {
                date: day("2025-04-28"),
                rows: 8,
                max_ingested_at: at("2025-04-28T08:00:00Z"),
            }],
        };
        let text = render_plan("s3://lake/prices", &[plan]);
        assert!(
            text.contains("BTCUSDT 1h: 1 partitions to rewrite, 8 candles"),
            "{text}"
        );
        assert!(text.contains("candles/symbol=BTCUSDT/interval=1h/date=2025-04-28/part-0.parquet"));
    }
}
