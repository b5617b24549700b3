//! The collect job: Binance klines into the `candles` table.
//!
//! Steps, per symbol and interval: decide where to start ([`start_position`]); with
//! `BINANCE_ARCHIVE_URL` set and at least [`ARCHIVE_MIN_CANDLES`] to fetch, take the months
//! before the current one from the bulk archive ([`archive_backfill`]); fetch the rest in REST
//! pages of up to 1000 closed, validated candles while the previous page is being written
//! ([`collect_series`]), upsert each page in one transaction, then find gaps and, with
//! `--repair`, re-fetch them, recording what the exchange itself has no data for
//! ([`repair_gaps`]). Re-running never duplicates a candle and updates a changed one.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use indicatif::ProgressBar;
use pricecast_binance::BinanceArgs;
use pricecast_binance::archive::{BulkArchive, Month};
use pricecast_binance::client::{BinanceClient, MAX_KLINES_PER_REQUEST};
use pricecast_binance::source::KlineSource;
use pricecast_shared::domain::{Candle, Interval, Symbol};
use pricecast_shared::report::{CollectWork, GapCounts, JobReport, Work};
use pricecast_shared::series::{SeriesScope, run_series};
use pricecast_shared::settings::{DatabaseArgs, RunArgs, SeriesArgs};
use pricecast_shared::store::{Gap, Store};
use pricecast_shared::universe::{Resolution, TRADING};
use pricecast_shared::{Error, Result};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Job name in `job_runs` and the lock.
pub const JOB: &str = "collect";
/// Without `--since` and with nothing stored, start this many candles back from now.
pub const DEFAULT_LOOKBACK_CANDLES: i64 = 1000;
/// A range of fewer candles takes at most ten REST requests, and the bulk archive would only
/// add downloads of whole months (an incremental run's look-back crossing into the previous
/// month, say): such ranges always come from the REST API.
pub const ARCHIVE_MIN_CANDLES: u64 = 10 * MAX_KLINES_PER_REQUEST as u64;
/// Pages fetched ahead of the writer: enough to hide request latency, small enough for memory.
const PAGES_IN_FLIGHT: usize = 4;
/// Most REST pages written in one bulk load: the page received and all those queued behind
/// it. Pages queue up only during a long backfill, where one COPY and one upsert beat a
/// statement per page; a lone page (the incremental run every minute) keeps the plain upsert,
/// which skips the staging table.
const PAGES_PER_BULK_WRITE: usize = PAGES_IN_FLIGHT + 1;

/// Flags and variables of `pricecast-collect`.
#[derive(clap::Args, Clone, Debug)]
pub struct CollectArgs {
    /// Database settings.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Symbols and intervals.
    #[command(flatten)]
    pub series: SeriesArgs,
    /// Binance settings.
    #[command(flatten)]
    pub binance: BinanceArgs,
    /// Once or on a schedule.
    #[command(flatten)]
    pub run: RunArgs,
    /// Backfill from this date (`2024-01-01` or RFC 3339) instead of the last stored candle.
    #[arg(long, value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,
    /// List missing ranges in the stored candles.
    #[arg(long)]
    pub check_gaps: bool,
    /// Re-fetch missing ranges; ranges the exchange has no data for are recorded and skipped
    /// from then on.
    #[arg(long)]
    pub repair: bool,
}

fn parse_since(s: &str) -> std::result::Result<DateTime<Utc>, String> {
    if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return date
            .and_hms_opt(0, 0, 0)
            .map(|t| Utc.from_utc_datetime(&t))
            .ok_or_else(|| format!("--since {s:?} is out of range"));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("--since {s:?} is not a date: use YYYY-MM-DD or RFC 3339"))
}

/// What one collect run does.
#[derive(Clone, Debug)]
pub struct CollectPlan {
    /// Symbols to collect.
    pub symbols: Vec<Symbol>,
    /// Intervals to collect.
    pub intervals: Vec<Interval>,
    /// Backfill start, overriding the last stored candle.
    pub since: Option<DateTime<Utc>>,
    /// List gaps after collecting.
    pub check_gaps: bool,
    /// Re-fetch gaps after collecting.
    pub repair: bool,
    /// This process's shard of the series, and how many it collects at once.
    pub scope: SeriesScope,
}

/// Series collected at once by default: the work is waiting on Binance, and the request weight
/// is shared by the whole process.
pub const DEFAULT_CONCURRENCY: usize = 8;

impl CollectPlan {
    /// The plan the flags describe.
    pub fn from_args(args: &CollectArgs) -> Result<Self> {
        Ok(Self {
            symbols: args.series.symbol_names(),
            intervals: args.series.intervals.clone(),
            since: args.since,
            check_gaps: args.check_gaps,
            repair: args.repair,
            scope: args.series.scope()?,
        })
    }
}

/// What the collect job works with.
#[derive(Clone, Debug)]
pub struct CollectContext {
    /// The database.
    pub store: Store,
    /// Where candles come from.
    pub source: KlineSource,
    /// Binance's bulk archive, for the whole months of a backfill (`BINANCE_ARCHIVE_URL`).
    pub archive: Option<BulkArchive>,
    /// Cancelled on shutdown: the job stops between batches.
    pub cancel: CancellationToken,
}

impl CollectContext {
    /// A context collecting from Binance with the given settings.
    pub fn binance(store: Store, args: &BinanceArgs, cancel: CancellationToken) -> Result<Self> {
        let client = BinanceClient::new(args.config())?;
        Ok(Self {
            store,
            archive: args
                .binance_archive_url
                .clone()
                .map(|url| BulkArchive::new(client.clone(), url)),
            source: KlineSource::Binance(client),
            cancel,
        })
    }
}

/// What was done for one series.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeriesReport {
    /// Candles received.
    pub fetched: u64,
    /// Rows inserted or changed.
    pub written: u64,
    /// Requests made.
    pub pages: u64,
    /// Monthly files taken from the bulk archive.
    pub archive_months: u64,
    /// Gaps found after collecting.
    pub gaps: Vec<Gap>,
    /// Gaps recorded as exchange gaps by `--repair`.
    pub exchange_gaps_recorded: usize,
}

/// `pricecast-collect`: connects, then runs once or on the cron schedule.
pub async fn execute(args: CollectArgs) -> Result<()> {
    let store = crate::connect(&args.database, !args.run.no_migrate).await?;
    let cancel = pricecast_shared::runner::shutdown_token();
    let ctx = CollectContext::binance(store.clone(), &args.binance, cancel.clone())?;
    let plan = CollectPlan::from_args(&args)?;
    crate::run_job(JOB, plan.scope.shard, store, &args.run, cancel, move || {
        let ctx = ctx.clone();
        let plan = plan.clone();
        async move { run(&ctx, &plan).await }
    })
    .await
}

/// Runs the job: every series of the plan's shard, [`DEFAULT_CONCURRENCY`] (or the plan's
/// concurrency) at once; a failing series does not stop the others.
pub async fn run(ctx: &CollectContext, plan: &CollectPlan) -> Result<JobReport> {
    let (symbols, resolution) = resolve_symbols(ctx, plan).await?;
    let series = plan.scope.series(&symbols, &plan.intervals);
    let concurrency = plan.scope.concurrency_or(DEFAULT_CONCURRENCY);
    run_series(
        series,
        concurrency,
        &ctx.cancel,
        |symbol, interval| async move {
            collect_and_check(ctx, plan, &symbol, interval)
                .await
                .map(Work::Collect)
        },
    )
    .await
    .map(|report| report.with_resolution(resolution))
}

/// The symbols this run collects: `PRICECAST_SYMBOLS` resolved against what the source lists
/// (Binance's spot `exchangeInfo`), once per run. A named symbol the exchange no longer lists
/// but the database stores is skipped as delisted; one that neither knows is a configuration
/// error naming it.
async fn resolve_symbols(
    ctx: &CollectContext,
    plan: &CollectPlan,
) -> Result<(Vec<Symbol>, Option<Resolution>)> {
    let listed = ctx.source.listed_symbols().await?;
    // The database is asked only about names the exchange does not list as trading.
    let unlisted = plan.symbols.iter().any(|name| {
        !listed
            .iter()
            .any(|l| &l.symbol == name && l.status == TRADING)
    });
    let stored = if unlisted {
        ctx.store.stored_symbols().await?
    } else {
        Vec::new()
    };
    let (symbols, resolution) = plan.scope.resolve(&plan.symbols, &listed, &stored)?;
    if !resolution.delisted.is_empty() {
        let names: Vec<&str> = resolution.delisted.iter().map(Symbol::as_str).collect();
        tracing::warn!(delisted = %names.join(","), "no longer listed by the exchange; skipped");
    }
    Ok((symbols, Some(resolution)))
}

/// Collects one series, then checks or repairs its gaps as the plan says.
async fn collect_and_check(
    ctx: &CollectContext,
    plan: &CollectPlan,
    symbol: &Symbol,
    interval: Interval,
) -> Result<CollectWork> {
    let last = ctx.store.last_open_time(symbol, interval).await?;
    let start = start_position(last, plan.since, interval, Utc::now());
    let mut report = collect_series(ctx, symbol, interval, start).await?;
    if plan.repair {
        report.exchange_gaps_recorded = repair_gaps(ctx, symbol, interval).await?;
    }
    if plan.check_gaps || plan.repair {
        report.gaps = ctx.store.gaps(symbol, interval).await?;
        log_gaps(symbol, interval, &report.gaps);
    }
    let gaps = (plan.check_gaps || plan.repair).then(|| {
        let open = report.gaps.iter().filter(|g| !g.known_exchange_gap).count();
        GapCounts {
            open: open as u64,
            known_exchange_gaps: (report.gaps.len() - open) as u64,
        }
    });
    Ok(CollectWork {
        fetched: report.fetched,
        written: report.written,
        requests: report.pages,
        archive_months: report.archive_months,
        gaps,
        exchange_gaps_recorded: report.exchange_gaps_recorded as u64,
    })
}

/// Where to start fetching, in milliseconds: `--since` (its candle included), else the candle
/// after the newest stored one, else [`DEFAULT_LOOKBACK_CANDLES`] back from `now`.
pub fn start_position(
    last_stored: Option<DateTime<Utc>>,
    since: Option<DateTime<Utc>>,
    interval: Interval,
    now: DateTime<Utc>,
) -> i64 {
    match (since, last_stored) {
        (Some(since), _) => interval.floor(since.timestamp_millis()),
        (None, Some(last)) => interval.next_open(last.timestamp_millis()),
        (None, None) => interval
            .floor(now.timestamp_millis() - DEFAULT_LOOKBACK_CANDLES * interval.duration_ms()),
    }
}

/// Fetches every closed candle from `start_ms` to now and upserts it, one transaction per page.
/// A page is fetched while the previous one is written.
pub async fn collect_series(
    ctx: &CollectContext,
    symbol: &Symbol,
    interval: Interval,
    start_ms: i64,
) -> Result<SeriesReport> {
    let now_ms = Utc::now().timestamp_millis();
    let expected = ((now_ms - start_ms) / interval.duration_ms()).max(0) as u64;
    // Pointless for a page or two.
    let progress = crate::progress_bar(
        expected,
        2 * MAX_KLINES_PER_REQUEST as u64,
        format!("{symbol} {interval}"),
        "candles",
    );
    let mut report = SeriesReport::default();
    let start_ms = match &ctx.archive {
        Some(archive) if expected >= ARCHIVE_MIN_CANDLES => {
            let archived = archive_backfill(
                ctx,
                archive,
                symbol,
                interval,
                start_ms,
                &progress,
                &mut report,
            )
            .await;
            match archived {
                Ok(next) => next,
                Err(e) => {
                    progress.finish_and_clear();
                    return Err(e);
                }
            }
        }
        _ => start_ms,
    };
    let (pages_tx, mut pages_rx) = mpsc::channel::<Result<Vec<Candle>>>(PAGES_IN_FLIGHT);
    let fetcher = {
        let source = ctx.source.clone();
        let cancel = ctx.cancel.clone();
        let symbol = symbol.clone();
        tokio::spawn(async move {
            let mut cursor = start_ms;
            loop {
                let page = tokio::select! {
                    () = cancel.cancelled() => break,
                    page = source.klines(&symbol, interval, cursor, None, MAX_KLINES_PER_REQUEST) => page,
                };
                let (done, next) = match &page {
                    Ok(candles) => match candles.last() {
                        Some(last) => (
                            candles.len() < MAX_KLINES_PER_REQUEST - 1,
                            interval.next_open(last.open_time.timestamp_millis()),
                        ),
                        None => (true, cursor),
                    },
                    Err(_) => (true, cursor),
                };
                let empty = page.as_ref().is_ok_and(Vec::is_empty);
                if !empty && pages_tx.send(page).await.is_err() {
                    break;
                }
                if done {
                    break;
                }
                cursor = next;
            }
        })
    };

    let mut outcome = Ok(());
    while let Some(page) = pages_rx.recv().await {
        let mut candles = match page {
            Ok(candles) => candles,
            Err(e) => {
                outcome = Err(e);
                break;
            }
        };
        // Pages already waiting (a long backfill) are written together, through the bulk path.
        let mut pages = 1;
        while pages < PAGES_PER_BULK_WRITE {
            match pages_rx.try_recv() {
                Ok(Ok(more)) => {
                    candles.extend(more);
                    pages += 1;
                }
                Ok(Err(e)) => {
                    outcome = Err(e);
                    break;
                }
                Err(_) => break,
            }
        }
        // Pages already received are written whole; cancellation is honoured between writes.
        report.pages += pages as u64;
        report.fetched += candles.len() as u64;
        report.written += if pages > 1 {
            ctx.store.upsert_candles_bulk(&candles).await?
        } else {
            ctx.store.upsert_candles(&candles).await?
        };
        progress.inc(candles.len() as u64);
        if outcome.is_err() {
            break;
        }
        if ctx.cancel.is_cancelled() {
            outcome = Err(Error::Cancelled);
            break;
        }
    }
    drop(pages_rx);
    // The fetcher ends on its own once the channel is closed or the source is exhausted.
    let _ = fetcher.await;
    progress.finish_and_clear();
    if outcome.is_ok() && ctx.cancel.is_cancelled() {
        outcome = Err(Error::Cancelled);
    }
    outcome?;
    tracing::info!(
        symbol = %symbol,
        interval = %interval,
        fetched = report.fetched,
        written = report.written,
        requests = report.pages,
        archive_months = report.archive_months,
        "series collected"
    );
    Ok(report)
}

/// Backfills from the bulk archive: the months from the one holding `start_ms` up to, not
/// including, the current one (the newest complete month may not be published yet), oldest
/// first; each month's candles from `start_ms` on are bulk-loaded in one transaction, so a
/// month is stored whole or not at all; cancellation is honoured between months. Stops at the first month the archive has no file for. Returns where the
/// REST API should continue: the start of the month after the last one taken, or `start_ms`.
pub async fn archive_backfill(
    ctx: &CollectContext,
    archive: &BulkArchive,
    symbol: &Symbol,
    interval: Interval,
    start_ms: i64,
    progress: &ProgressBar,
    report: &mut SeriesReport,
) -> Result<i64> {
    if !BulkArchive::covers(interval) {
        return Ok(start_ms);
    }
    let current = Month::containing(Utc::now().timestamp_millis());
    let mut cursor = start_ms;
    let mut month = Month::containing(start_ms);
    while month < current {
        if ctx.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let Some(candles) = archive.month(symbol, interval, month).await? else {
            tracing::info!(
                symbol = %symbol,
                interval = %interval,
                month = %month,
                "the bulk archive has no file for this month; the REST API fetches from here"
            );
            break;
        };
        let from = candles.partition_point(|c| c.open_time.timestamp_millis() < cursor);
        let month_candles = &candles[from..];
        report.fetched += month_candles.len() as u64;
        report.written += ctx.store.upsert_candles_bulk(month_candles).await?;
        progress.inc(month_candles.len() as u64);
        report.archive_months += 1;
        month = month.next();
        cursor = cursor.max(month.start_ms());
    }
    Ok(cursor)
}

/// Re-fetches every gap not known to be an exchange gap; what is still missing afterwards is
/// recorded as an exchange gap. Returns how many exchange gaps were recorded.
pub async fn repair_gaps(
    ctx: &CollectContext,
    symbol: &Symbol,
    interval: Interval,
) -> Result<usize> {
    let mut recorded = 0;
    for gap in ctx.store.gaps(symbol, interval).await? {
        if gap.known_exchange_gap {
            continue;
        }
        if ctx.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let start = gap.start.timestamp_millis();
        let end = gap.end.timestamp_millis();
        let mut cursor = start;
        let mut refetched = 0usize;
        while cursor <= end {
            let page = ctx
                .source
                .klines(symbol, interval, cursor, Some(end), MAX_KLINES_PER_REQUEST)
                .await?;
            let Some(last) = page.last() else { break };
            cursor = interval.next_open(last.open_time.timestamp_millis());
            refetched += page.len();
            ctx.store.upsert_candles(&page).await?;
        }
        // Whatever is still missing inside the gap, the exchange does not have.
        for hole in ctx.store.gaps(symbol, interval).await? {
            let inside = hole.start >= gap.start && hole.end <= gap.end;
            if inside && !hole.known_exchange_gap {
                ctx.store.record_exchange_gap(&hole).await?;
                recorded += 1;
                tracing::info!(
                    symbol = %symbol,
                    interval = %interval,
                    start = %hole.start.to_rfc3339(),
                    end = %hole.end.to_rfc3339(),
                    missing = hole.missing(),
                    "the exchange has no candles here; recorded as a known exchange gap"
                );
            }
        }
        tracing::info!(symbol = %symbol, interval = %interval, start = %gap.start.to_rfc3339(), refetched, "gap repaired");
    }
    Ok(recorded)
}

fn log_gaps(symbol: &Symbol, interval: Interval, gaps: &[Gap]) {
    if gaps.is_empty() {
        tracing::info!(symbol = %symbol, interval = %interval, "no gaps");
    }
    for gap in gaps {
        tracing::info!(
            symbol = %symbol,
            interval = %interval,
            start = %gap.start.to_rfc3339(),
            end = %gap.end.to_rfc3339(),
            missing = gap.missing(),
            known_exchange_gap = gap.known_exchange_gap,
            "gap"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn start_prefers_since_then_last_then_lookback() {
        let now = at("2025-01-02T00:30:00Z");
        let since = at("2024-01-01T00:20:00Z");
        let last = at("2025-01-01T23:00:00Z");
        assert_eq!(
            start_position(Some(last), Some(since), Interval::H1, now),
            at("2024-01-01T00:00:00Z").timestamp_millis()
        );
        assert_eq!(
            start_position(Some(last), None, Interval::H1, now),
            at("2025-01-02T00:00:00Z").timestamp_millis()
        );
        assert_eq!(
            start_position(None, None, Interval::M1, now),
            at("2025-01-02T00:30:00Z").timestamp_millis() - 1000 * 60_000
        );
    }

    #[test]
    fn since_accepts_dates_and_rfc3339() {
        assert_eq!(
            parse_since("2024-01-01").ok(),
            Some(at("2024-01-01T00:00:00Z"))
        );
        assert_eq!(
            parse_since("2024-01-01T05:00:00+01:00").ok(),
            Some(at("2024-01-01T04:00:00Z"))
        );
        assert!(
            parse_since("yesterday")
                .expect_err("not a date")
                .contains("YYYY-MM-DD")
        );
    }
}
