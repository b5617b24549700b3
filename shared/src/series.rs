//! Which series a process works on and how: this process's shard of the configured series, and
//! running them a bounded number at once, each isolated from the others' failures.

use std::future::Future;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::domain::{Interval, Symbol};
use crate::error::{Error, Result, SeriesFailure, error_chain};
use crate::report::{ItemReport, JobReport, SeriesKey, Work};
pub use crate::shard::{MAX_SHARDS, Shard, owner};
use crate::universe::{ListedSymbol, Resolution, SymbolSelector, TRADING};

/// Most series one process works on at once.
pub const MAX_CONCURRENCY: usize = 1024;

/// How a job's series are shared out and run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeriesScope {
    /// This process's shard; every series when absent.
    pub shard: Option<Shard>,
    /// Series worked on at once; the job's default when absent.
    pub concurrency: Option<usize>,
    /// Patterns and exclusions each run resolves to its symbols; absent when the plan's
    /// symbols are plain names.
    pub universe: Option<Universe>,
}

/// Symbol selectors a run resolves against a catalogue ([`Resolution::resolve`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Universe {
    /// `PRICECAST_SYMBOLS`.
    pub selectors: Vec<SymbolSelector>,
    /// `PRICECAST_SYMBOLS_EXCLUDE`.
    pub excluded: Vec<SymbolSelector>,
}

impl SeriesScope {
    /// The symbols a run works on, and how they were resolved: the universe's selectors (or the
    /// plan's `names`, when there are no patterns) resolved against `listed`, with `stored` for
    /// names the catalogue no longer lists.
    pub fn resolve(
        &self,
        names: &[Symbol],
        listed: &[ListedSymbol],
        stored: &[Symbol],
    ) -> Result<(Vec<Symbol>, Resolution)> {
        let selectors: Vec<SymbolSelector>;
        let (selectors, excluded) = match &self.universe {
            Some(universe) => (&universe.selectors[..], &universe.excluded[..]),
            None => {
                selectors = names.iter().cloned().map(SymbolSelector::Name).collect();
                (&selectors[..], &[][..])
            }
        };
        let resolution =
            Resolution::resolve(selectors, excluded, listed, stored).map_err(Error::config)?;
        // Plain names keep the order they were given in; patterns add theirs sorted.
        let mut symbols: Vec<Symbol> = names
            .iter()
            .filter(|n| resolution.symbols.contains(n))
            .cloned()
            .collect();
        for symbol in &resolution.symbols {
            if !symbols.contains(symbol) {
                symbols.push(symbol.clone());
            }
        }
        tracing::info!(
            selected = %resolution.selected,
            excluded = %resolution.excluded,
            symbols = symbols.len(),
            delisted = resolution.delisted.len(),
            "symbols resolved"
        );
        Ok((symbols, resolution))
    }

    /// Whether this scope's shard (every series, when unsharded) works on the series.
    pub fn owns(&self, symbol: &Symbol, interval: Interval) -> bool {
        self.shard.is_none_or(|shard| shard.owns(symbol, interval))
    }

    /// The series of `symbols` × `intervals` in this scope's shard.
    pub fn series(&self, symbols: &[Symbol], intervals: &[Interval]) -> Vec<(Symbol, Interval)> {
        shard_series(symbols, intervals, self.shard)
    }

    /// The concurrency, or `default` when none was set.
    pub fn concurrency_or(&self, default: usize) -> usize {
        self.concurrency.unwrap_or(default).max(1)
    }
}

impl Universe {
    /// Whether `symbol` is selected and not excluded.
    pub fn selects(&self, symbol: &str) -> bool {
        self.selectors.iter().any(|s| s.matches(symbol))
            && !self.excluded.iter().any(|e| e.matches(symbol))
    }
}

/// The stored series' symbols as a catalogue of trading symbols: jobs after collect follow what
/// collect stored.
pub fn stored_as_listed(stored: &[Symbol]) -> Vec<ListedSymbol> {
    stored
        .iter()
        .map(|symbol| ListedSymbol {
            symbol: symbol.clone(),
            status: TRADING.to_owned(),
        })
        .collect()
}

/// The machine's cores: the default concurrency of CPU-bound jobs.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The series of `symbols` × `intervals` this shard owns, symbol by symbol.
pub fn shard_series(
    symbols: &[Symbol],
    intervals: &[Interval],
    shard: Option<Shard>,
) -> Vec<(Symbol, Interval)> {
    symbols
        .iter()
        .flat_map(|symbol| {
            intervals
                .iter()
                .map(move |&interval| (symbol.clone(), interval))
        })
        .filter(|(symbol, interval)| shard.is_none_or(|s| s.owns(symbol, *interval)))
        .collect()
}

/// Works on every series, at most `concurrency` at once, and reports them in `series` order.
///
/// A series that fails is recorded (series, error) and the others go on; the run then fails
/// with [`Error::SeriesFailed`] naming them all, carrying the report of what was done. A run
/// of a single series fails with that series' own error. A shutdown stops new series from
/// starting, lets those in progress finish their batch, and fails the run as cancelled.
pub async fn run_series<F, Fut>(
    series: Vec<(Symbol, Interval)>,
    concurrency: usize,
    cancel: &CancellationToken,
    work: F,
) -> Result<JobReport>
where
    F: Fn(Symbol, Interval) -> Fut,
    Fut: Future<Output = Result<Work>>,
{
    work_series(series, concurrency, cancel, work)
        .await
        .finish()
}

/// What working on some series gave: the report, the failures, and whether a shutdown stopped it.
#[derive(Debug, Default)]
pub struct SeriesRun {
    /// Series worked on (or meant to be).
    pub total: usize,
    /// What was done, failed series included, in order.
    pub report: JobReport,
    /// The series that failed.
    pub failures: Vec<SeriesFailure>,
    /// Whether a shutdown stopped the work.
    pub cancelled: bool,
}

impl SeriesRun {
    /// Adds the series of a later round.
    pub fn extend(&mut self, later: SeriesRun) {
        self.total += later.total;
        self.report.items.extend(later.report.items);
        self.failures.extend(later.failures);
        self.cancelled |= later.cancelled;
    }

    /// Records what one series gave: its work, its failure (logged once, here), or a shutdown.
    pub fn record(&mut self, symbol: Symbol, interval: Interval, result: Result<Work>) {
        match result {
            Ok(work) => self
                .report
                .push(ItemReport::series(&symbol, interval, work)),
            Err(Error::Cancelled) => self.cancelled = true,
            Err(error) => {
                tracing::error!(%symbol, %interval, error.message = %error_chain(&error), "series failed; the others go on");
                self.report
                    .push(ItemReport::failed(&symbol, interval, error_chain(&error)));
                self.failures.push(SeriesFailure {
                    series: SeriesKey { symbol, interval },
                    error: Box::new(error),
                });
            }
        }
    }

    /// The run's result, as [`run_series`] describes it.
    pub fn finish(mut self) -> Result<JobReport> {
        if self.cancelled {
            return Err(Error::Cancelled);
        }
        if self.failures.is_empty() {
            return Ok(self.report);
        }
        if self.total == 1 {
            return Err(*self.failures.remove(0).error);
        }
        Err(Error::SeriesFailed {
            total: self.total,
            failures: self.failures,
            report: Box::new(self.report),
        })
    }
}

/// [`run_series`] without the verdict, so that rounds of series can be joined.
pub async fn work_series<F, Fut>(
    series: Vec<(Symbol, Interval)>,
    concurrency: usize,
    cancel: &CancellationToken,
    work: F,
) -> SeriesRun
where
    F: Fn(Symbol, Interval) -> Fut,
    Fut: Future<Output = Result<Work>>,
{
    let total = series.len();
    let results: Vec<(Symbol, Interval, Result<Work>)> = futures::stream::iter(series)
        .map(|(symbol, interval)| {
            let started = (!cancel.is_cancelled()).then(|| work(symbol.clone(), interval));
            async move {
                let result = match started {
                    Some(future) => future.await,
                    None => Err(Error::Cancelled),
                };
                (symbol, interval, result)
            }
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let mut run = SeriesRun {
        total,
        ..SeriesRun::default()
    };
    for (symbol, interval, result) in results {
        run.record(symbol, interval, result);
    }
    run
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::report::CollectWork;

    fn symbols(n: usize) -> Vec<Symbol> {
        (0..n)
            .map(|i| format!("S{i:04}USDT").parse().expect("symbol"))
            .collect()
    }

    #[test]
    fn shards_parse_and_refuse_what_cannot_be() {
        assert_eq!("2/4".parse(), Ok(Shard { index: 2, count: 4 }));
        assert_eq!(" 0 / 1 ".parse(), Ok(Shard { index: 0, count: 1 }));
        for (bad, why) in [
            ("4/4", "numbered 0 to 3"),
            ("1/0", "1 to 4096"),
            ("3", "i/n"),
            ("a/2", "the index 'a'"),
            ("1/x", "the count 'x'"),
        ] {
            let err = bad.parse::<Shard>().expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn every_series_has_exactly_one_shard_and_the_shares_are_even() {
        let symbols = symbols(400);
        let intervals = [Interval::M1, Interval::H1];
        let mut counts = BTreeMap::new();
        for index in 0..4 {
            let shard = Shard::new(index, 4).expect("shard");
            counts.insert(index, shard_series(&symbols, &intervals, Some(shard)).len());
        }
        assert_eq!(counts.values().sum::<usize>(), 800);
        for (shard, n) in counts {
            assert!((150..=250).contains(&n), "shard {shard} has {n} of 800");
        }
        assert_eq!(shard_series(&symbols, &intervals, None).len(), 800);
    }

    #[test]
    fn adding_a_symbol_moves_no_series_and_adding_a_shard_moves_few() {
        let symbols = symbols(500);
        let owners = |count: u32| -> Vec<u32> {
            symbols
                .iter()
                .map(|s| owner(s, Interval::M1, count))
                .collect()
        };
        let four = owners(4);
        assert_eq!(four, owners(4), "stable");
        let five = owners(5);
        let moved = four.iter().zip(&five).filter(|(a, b)| a != b).count();
        // Only the series the new shard wins move: about a fifth, never a reshuffle.
        assert!((50..=150).contains(&moved), "{moved} of 500 moved");
        assert!(
            four.iter()
                .zip(&five)
                .all(|(before, after)| before == after || *after == 4)
        );
    }

    #[test]
    fn lock_names_are_per_shard_and_unchanged_without_shards() {
        assert_eq!(Shard::lock_name(None, "collect"), "collect");
        assert_eq!(
            Shard::lock_name(Some(Shard { index: 0, count: 1 }), "collect"),
            "collect"
        );
        assert_eq!(
            Shard::lock_name(Some(Shard { index: 1, count: 3 }), "collect"),
            "collect:shard-1-of-3"
        );
    }

    fn collected(written: u64) -> Work {
        Work::Collect(CollectWork {
            written,
            ..CollectWork::default()
        })
    }

    #[tokio::test]
    async fn a_failing_series_is_recorded_and_the_others_go_on() {
        let series = shard_series(&symbols(3), &[Interval::H1], None);
        let cancel = CancellationToken::new();
        let err = run_series(series, 2, &cancel, |symbol, _| async move {
            if symbol.as_str() == "S0001USDT" {
                Err(Error::config("no such symbol"))
            } else {
                Ok(collected(5))
            }
        })
        .await
        .expect_err("one series failed");
        let Error::SeriesFailed {
            total,
            failures,
            report,
        } = &err
        else {
            panic!("a series failure, got {err:?}");
        };
        assert_eq!(*total, 3);
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].series.symbol.as_str(), "S0001USDT");
        assert_eq!(report.rows(), 10, "both other series were done");
        assert_eq!(report.items.len(), 3);
        assert!(report.items[1].work.is_none());
        let message = err.to_string();
        assert!(
            message.starts_with(
                "1 of 3 series failed: S0001USDT 1h: invalid configuration: no such symbol"
            ),
            "{message}"
        );
        assert!(
            report
                .detail()
                .contains("S0001USDT 1h: failed: invalid configuration"),
            "{}",
            report.detail()
        );
    }

    #[tokio::test]
    async fn one_series_fails_with_its_own_error_and_all_succeeding_is_a_report() {
        let one = shard_series(&symbols(1), &[Interval::H1], None);
        let cancel = CancellationToken::new();
        let err = run_series(one, 4, &cancel, |_, _| async {
            Err::<Work, _>(Error::config("bad"))
        })
        .await
        .expect_err("fails");
        assert!(matches!(err, Error::Config(_)), "{err:?}");

        let many = shard_series(&symbols(5), &[Interval::H1, Interval::H4], None);
        let order: Vec<String> = many.iter().map(|(s, i)| format!("{s} {i}")).collect();
        let report = run_series(many, 3, &cancel, |symbol, _| async move {
            // Later series finish first; the report keeps the plan's order.
            let n: u64 = symbol.as_str()[1..5].parse().expect("n");
            tokio::time::sleep(std::time::Duration::from_millis(20 * (5 - n))).await;
            Ok(collected(n))
        })
        .await
        .expect("all succeed");
        let reported: Vec<String> = report
            .items
            .iter()
            .map(|i| {
                let s = i.series.as_ref().expect("series");
                format!("{} {}", s.symbol, s.interval)
            })
            .collect();
        assert_eq!(reported, order);
    }

    #[tokio::test]
    async fn a_shutdown_starts_no_new_series() {
        let series = shard_series(&symbols(6), &[Interval::H1], None);
        let cancel = CancellationToken::new();
        let started = std::sync::atomic::AtomicUsize::new(0);
        let err = run_series(series, 1, &cancel, |_, _| {
            started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            cancel.cancel();
            async { Ok(collected(1)) }
        })
        .await
        .expect_err("cancelled");
        assert!(matches!(err, Error::Cancelled), "{err:?}");
        assert_eq!(started.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
