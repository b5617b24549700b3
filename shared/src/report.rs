//! What a job run did, item by item: the typed report every job returns, that `job_runs.report`
//! keeps as JSON, and that the run's one-line `detail` is derived from.
//!
//! Enums are externally tagged (`{"collect": {…}}`): the workspace builds serde_json with
//! `arbitrary_precision`, under which internally tagged or flattened enums cannot read numbers
//! back.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Interval, Symbol};
use crate::shard::Shard;
use crate::universe::Resolution;

/// The report of one run: one item per series (or table) the job worked on, in order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobReport {
    /// The shard of the series the run worked on (`i/n`), when the job is sharded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// How `PRICECAST_SYMBOLS` resolved, when it was resolved against a catalogue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// What was done, item by item.
    pub items: Vec<ItemReport>,
}

impl JobReport {
    /// The report, with how its symbols were resolved.
    pub fn with_resolution(mut self, resolution: Option<Resolution>) -> Self {
        self.resolution = resolution;
        self
    }

    /// The report, marked as the work of `shard`.
    pub fn with_shard(mut self, shard: Option<Shard>) -> Self {
        self.shard = shard.filter(|s| s.count > 1);
        self
    }

    /// Adds an item.
    pub fn push(&mut self, item: ItemReport) {
        self.items.push(item);
    }

    /// Rows written, over every item: the run's `job_runs.rows`.
    pub fn rows(&self) -> i64 {
        self.items
            .iter()
            .filter_map(|item| item.work.as_ref())
            .map(|work| work.rows() as i64)
            .sum()
    }

    /// The items that failed.
    pub fn failed(&self) -> impl Iterator<Item = &ItemReport> {
        self.items.iter().filter(|item| item.error.is_some())
    }

    /// The items of one series.
    pub fn series<'a>(
        &'a self,
        symbol: &'a str,
        interval: Interval,
    ) -> impl Iterator<Item = &'a ItemReport> + 'a {
        self.items
            .iter()
            .filter(move |item| item.is_series(symbol, interval))
    }

    /// What was done to one series: its first item's work.
    pub fn work(&self, symbol: &str, interval: Interval) -> Option<&Work> {
        self.items
            .iter()
            .find(|item| item.is_series(symbol, interval))
            .and_then(|item| item.work.as_ref())
    }

    /// What a sync merged into `table` for one series.
    pub fn synced(&self, table: &str, symbol: &str, interval: Interval) -> Option<&SyncSeriesWork> {
        self.items.iter().find_map(|item| match &item.work {
            Some(Work::SyncSeries(work))
                if work.table == table && item.is_series(symbol, interval) =>
            {
                Some(work)
            }
            _ => None,
        })
    }

    /// The model runs a sync mirrored, when it synced them.
    pub fn synced_model_runs(&self) -> Option<&SyncModelRunsWork> {
        self.items.iter().find_map(|item| match &item.work {
            Some(Work::SyncModelRuns(work)) => Some(work),
            _ => None,
        })
    }

    /// The one-line summary kept in `job_runs.detail`: the items' sentences, separated by `; `.
    pub fn detail(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for JobReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{item}")?;
        }
        if let Some(resolution) = self.resolution.as_ref().filter(|r| !r.delisted.is_empty()) {
            let names: Vec<&str> = resolution.delisted.iter().map(Symbol::as_str).collect();
            if !self.items.is_empty() {
                f.write_str("; ")?;
            }
            write!(f, "delisted, skipped: {}", names.join(", "))?;
        }
        Ok(())
    }
}

/// A series: symbol and interval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesKey {
    /// The pair.
    pub symbol: Symbol,
    /// The candle interval.
    pub interval: Interval,
}

/// What was done to one series or table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemReport {
    /// The series, when the item is one (the model runs table is not).
    pub series: Option<SeriesKey>,
    /// What the job did to it; absent when it failed.
    #[serde(default)]
    pub work: Option<Work>,
    /// Why it failed (the error and its causes), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ItemReport {
    /// An item about one series.
    pub fn series(symbol: &Symbol, interval: Interval, work: impl Into<Work>) -> Self {
        Self {
            series: Some(SeriesKey {
                symbol: symbol.clone(),
                interval,
            }),
            work: Some(work.into()),
            error: None,
        }
    }

    /// A series that failed with `error` (the error and its causes).
    pub fn failed(symbol: &Symbol, interval: Interval, error: String) -> Self {
        Self {
            series: Some(SeriesKey {
                symbol: symbol.clone(),
                interval,
            }),
            work: None,
            error: Some(error),
        }
    }
}

impl ItemReport {
    /// Whether the item is about the series `symbol` `interval`.
    pub fn is_series(&self, symbol: &str, interval: Interval) -> bool {
        self.series
            .as_ref()
            .is_some_and(|s| s.symbol.as_str() == symbol && s.interval == interval)
    }
}

impl fmt::Display for ItemReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(series) = &self.series {
            write!(f, "{} {}: ", series.symbol, series.interval)?;
        }
        match (&self.work, &self.error) {
            (_, Some(error)) => write!(f, "failed: {error}"),
            (Some(work), None) => write!(f, "{work}"),
            (None, None) => f.write_str("nothing done"),
        }
    }
}

/// What one job did to an item, with the counts that job measures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Work {
    /// Candles collected from Binance.
    Collect(CollectWork),
    /// Candles exported to the lake.
    Export(LakeWork),
    /// Feature frames built into the lake.
    Features(LakeWork),
    /// A model trained, registered and put through the promotion gate.
    Train(TrainWork),
    /// Rows of one series merged (or lake files copied) into a warehouse table.
    SyncSeries(SyncSeriesWork),
    /// Model runs and their metrics mirrored into the warehouse.
    SyncModelRuns(SyncModelRunsWork),
    /// The champion's forecasts written to the forecast ledger.
    Forecast(ForecastWork),
}

impl Work {
    /// Rows written, as the run's row count adds them up.
    pub fn rows(&self) -> u64 {
        match self {
            Self::Collect(w) => w.written,
            Self::Export(w) | Self::Features(w) => w.rows,
            Self::Train(w) => w.rows,
            Self::SyncSeries(w) => w.rows,
            Self::SyncModelRuns(w) => w.runs + w.metrics,
            Self::Forecast(w) => w.written,
        }
    }
}

impl Work {
    /// Collect's counts, when this is a collect item.
    pub fn as_collect(&self) -> Option<&CollectWork> {
        match self {
            Self::Collect(work) => Some(work),
            _ => None,
        }
    }

    /// The lake files written, when this is an export or features item.
    pub fn as_lake(&self) -> Option<&LakeWork> {
        match self {
            Self::Export(work) | Self::Features(work) => Some(work),
            _ => None,
        }
    }

    /// The forecast job's counts, when this is a forecast item.
    pub fn as_forecast(&self) -> Option<&ForecastWork> {
        match self {
            Self::Forecast(work) => Some(work),
            _ => None,
        }
    }

    /// Train's outcome, when this is a train item.
    pub fn as_train(&self) -> Option<&TrainWork> {
        match self {
            Self::Train(work) => Some(work),
            _ => None,
        }
    }
}

impl fmt::Display for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Collect(w) => w.fmt(f),
            Self::Export(w) => w.describe(f, "partitions"),
            Self::Features(w) => w.describe(f, "feature partitions"),
            Self::Train(w) => w.fmt(f),
            Self::SyncSeries(w) => w.fmt(f),
            Self::SyncModelRuns(w) => w.fmt(f),
            Self::Forecast(w) => w.fmt(f),
        }
    }
}

/// Collect's counts for one series.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectWork {
    /// Candles received (REST and archive).
    pub fetched: u64,
    /// Rows inserted or changed.
    pub written: u64,
    /// REST requests made.
    pub requests: u64,
    /// Monthly files taken from the bulk archive.
    pub archive_months: u64,
    /// Gaps after collecting, when they were checked (`--check-gaps`, `--repair`).
    pub gaps: Option<GapCounts>,
    /// Gaps recorded as exchange gaps by `--repair`.
    pub exchange_gaps_recorded: u64,
}

impl fmt::Display for CollectWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} fetched, {} written in {} requests",
            self.fetched, self.written, self.requests
        )?;
        if self.archive_months > 0 {
            write!(f, " and {} archive months", self.archive_months)?;
        }
        if let Some(gaps) = &self.gaps {
            write!(
                f,
                ", {} gaps open, {} known exchange gaps",
                gaps.open, gaps.known_exchange_gaps
            )?;
        }
        Ok(())
    }
}

/// Gaps of a series: still open, and known to be the exchange's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapCounts {
    /// Missing candles not known to be exchange gaps.
    pub open: u64,
    /// Exchange outages Binance itself has no data for.
    pub known_exchange_gaps: u64,
}

/// Export's or features' counts for one series: the day files written to the lake.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LakeWork {
    /// Partition (day) files written.
    pub partitions: u64,
    /// Rows in them.
    pub rows: u64,
    /// Bytes in them.
    pub bytes: u64,
    /// The lake written to.
    pub lake: String,
    /// The export watermark after the run (export only).
    pub watermark: Option<DateTime<Utc>>,
}

impl LakeWork {
    fn describe(&self, f: &mut fmt::Formatter<'_>, partitions: &str) -> fmt::Result {
        write!(
            f,
            "{} {partitions}, {} rows, {} bytes written to {}",
            self.partitions, self.rows, self.bytes, self.lake
        )?;
        if let Some(watermark) = self.watermark {
            write!(f, ", watermark {}", watermark.to_rfc3339())?;
        }
        Ok(())
    }
}

/// Train's outcome for one series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainWork {
    /// Rows the model was trained and evaluated on.
    pub rows: u64,
    /// The registry's run id.
    pub run_id: String,
    /// Registered model name.
    pub model_name: String,
    /// The new version.
    pub version: u64,
    /// What the promotion gate decided (`promoted`, `kept`, …).
    pub decision: String,
    /// Walk-forward MAE of the model.
    pub mae: f64,
    /// The naive baseline's MAE on the same windows.
    pub baseline_mae: f64,
    /// `1 − MAE / baseline MAE`.
    pub skill: f64,
}

impl fmt::Display for TrainWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} v{} ({}), MAE {:.4} vs baseline {:.4}, skill {:.4}",
            self.model_name, self.version, self.decision, self.mae, self.baseline_mae, self.skill
        )
    }
}

/// What one series' rows were, in a sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncedRows {
    /// Candles merged from the database.
    Candles,
    /// Lake files copied (`COPY INTO` mode).
    LakeFiles,
    /// Feature rows merged from the lake.
    FeatureRows,
}

/// Sync's counts for one series of one table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncSeriesWork {
    /// The warehouse table.
    pub table: String,
    /// The warehouse, as messages name it (its redacted connection string).
    pub target: String,
    /// What the rows are.
    pub unit: SyncedRows,
    /// Rows merged (or files copied).
    pub rows: u64,
    /// The position after the run.
    pub watermark: Option<DateTime<Utc>>,
}

impl fmt::Display for SyncSeriesWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, position) = match self.unit {
            SyncedRows::Candles => ("rows merged", "watermark"),
            SyncedRows::LakeFiles => ("lake files copied", "watermark"),
            SyncedRows::FeatureRows => ("feature rows merged", "newest feature row"),
        };
        write!(
            f,
            "{} {what} into {} on {}",
            self.rows, self.table, self.target
        )?;
        if let Some(watermark) = self.watermark {
            write!(f, ", {position} {}", watermark.to_rfc3339())?;
        }
        Ok(())
    }
}

/// Sync's counts for the model runs of one experiment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncModelRunsWork {
    /// The experiment mirrored.
    pub experiment: String,
    /// Whether it exists (nothing is synced when it does not).
    pub experiment_found: bool,
    /// The runs table.
    pub runs_table: String,
    /// The metrics table.
    pub metrics_table: String,
    /// The warehouse, as messages name it.
    pub target: String,
    /// Runs merged.
    pub runs: u64,
    /// Metric rows merged.
    pub metrics: u64,
    /// The newest end time synced, after the run.
    pub newest_end: Option<DateTime<Utc>>,
}

impl fmt::Display for SyncModelRunsWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "model runs of experiment {}: ", self.experiment)?;
        if !self.experiment_found {
            return f.write_str("no such experiment yet");
        }
        write!(
            f,
            "{} runs into {} and {} metrics into {} on {}",
            self.runs, self.runs_table, self.metrics, self.metrics_table, self.target
        )?;
        if let Some(end) = self.newest_end {
            write!(f, ", newest end time {}", end.to_rfc3339())?;
        }
        Ok(())
    }
}

/// The forecast job's counts for one series and horizon.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForecastWork {
    /// The champion that forecast, `None` when the series has none yet (nothing is written).
    pub model: Option<ForecastModel>,
    /// Forecasts written to the ledger.
    pub written: u64,
    /// Candles since the watermark that the champion was trained on: skipped, never written.
    pub skipped_in_sample: u64,
    /// Candles after the training data without a feature row (a gap in their history).
    pub skipped_without_features: u64,
    /// Forecasts already in the ledger (a re-run over the same candles).
    pub already_written: u64,
    /// The newest candle forecast from, after the run.
    pub watermark: Option<DateTime<Utc>>,
}

/// The model version behind a run's forecasts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForecastModel {
    /// Registered model name.
    pub name: String,
    /// Version.
    pub version: u64,
    /// Candles ahead it forecasts.
    pub horizon: u32,
    /// Open time of the newest candle it was trained on.
    pub trained_to: Option<DateTime<Utc>>,
}

impl fmt::Display for ForecastWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(model) = &self.model else {
            return f.write_str("no champion yet, nothing forecast");
        };
        write!(
            f,
            "horizon {}: {} forecasts written by {} v{}, {} in-sample candles skipped",
            model.horizon, self.written, model.name, model.version, self.skipped_in_sample
        )?;
        if self.skipped_without_features > 0 {
            write!(
                f,
                ", {} without enough history",
                self.skipped_without_features
            )?;
        }
        if self.already_written > 0 {
            write!(f, ", {} already in the ledger", self.already_written)?;
        }
        if let Some(watermark) = self.watermark {
            write!(f, ", watermark {}", watermark.to_rfc3339())?;
        }
        Ok(())
    }
}

impl From<ForecastWork> for Work {
    fn from(work: ForecastWork) -> Self {
        Self::Forecast(work)
    }
}

impl From<CollectWork> for Work {
    fn from(work: CollectWork) -> Self {
        Self::Collect(work)
    }
}

impl From<TrainWork> for Work {
    fn from(work: TrainWork) -> Self {
        Self::Train(work)
    }
}

impl From<SyncSeriesWork> for Work {
    fn from(work: SyncSeriesWork) -> Self {
        Self::SyncSeries(work)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn btc() -> Symbol {
        "BTCUSDT".parse().expect("symbol")
    }

    fn sample() -> JobReport {
        let mut report = JobReport::default();
        report.push(ItemReport::series(
            &btc(),
            Interval::H1,
            CollectWork {
                fetched: 10,
                written: 7,
                requests: 2,
                archive_months: 3,
                gaps: Some(GapCounts {
                    open: 0,
                    known_exchange_gaps: 1,
                }),
                exchange_gaps_recorded: 1,
            },
        ));
        report.push(ItemReport::series(
            &btc(),
            Interval::H4,
            Work::Export(LakeWork {
                partitions: 2,
                rows: 5,
                bytes: 900,
                lake: "file:///lake".into(),
                watermark: "2025-04-28T14:00:00Z".parse().ok(),
            }),
        ));
        report.push(ItemReport {
            series: None,
            error: None,
            work: Some(Work::SyncModelRuns(SyncModelRunsWork {
                experiment: "bitcoin_prediction_s3".into(),
                experiment_found: true,
                runs_table: "model_runs".into(),
                metrics_table: "model_metrics".into(),
                target: "Driver=x;Pwd=***".into(),
                runs: 2,
                metrics: 6,
                newest_end: None,
            })),
        });
        report
    }

    #[test]
    fn detail_joins_the_items_sentences() {
        assert_eq!(
            sample().detail(),
            "BTCUSDT 1h: 10 fetched, 7 written in 2 requests and 3 archive months, 0 gaps open, \
             1 known exchange gaps; BTCUSDT 4h: 2 partitions, 5 rows, 900 bytes written to \
             file:///lake, watermark 2025-04-28T14:00:00+00:00; model runs of experiment \
             bitcoin_prediction_s3: 2 runs into model_runs and 6 metrics into model_metrics on \
             Driver=x;Pwd=***"
        );
    }

    #[test]
    fn rows_add_up_what_each_item_wrote() {
        assert_eq!(sample().rows(), 7 + 5 + 8);
        assert_eq!(JobReport::default().rows(), 0);
    }

    #[test]
    fn json_round_trips_with_arbitrary_precision_numbers() {
        let mut report = sample();
        report.push(ItemReport::series(
            &btc(),
            Interval::M1,
            TrainWork {
                rows: 100,
                run_id: "abc".into(),
                model_name: "pricecast-BTCUSDT-1m".into(),
                version: 3,
                decision: "promoted".into(),
                mae: 12.5,
                baseline_mae: 12.25,
                skill: -0.0204,
            },
        ));
        let json = serde_json::to_string(&report).expect("serialize");
        let back: JobReport = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, report);
        let value: serde_json::Value = serde_json::from_str(&json).expect("value");
        assert_eq!(value["items"][0]["work"]["collect"]["written"], 7);
        assert_eq!(value["items"][0]["series"]["symbol"], "BTCUSDT");
        assert_eq!(value["items"][2]["series"], serde_json::Value::Null);
    }

    #[test]
    fn forecast_items_say_what_was_written_and_skipped() {
        let work = ForecastWork {
            model: Some(ForecastModel {
                name: "pricecast-BTCUSDT-1h".into(),
                version: 2,
                horizon: 1,
                trained_to: "2025-04-01T00:00:00Z".parse().ok(),
            }),
            written: 24,
            skipped_in_sample: 3,
            skipped_without_features: 1,
            already_written: 0,
            watermark: "2025-04-28T14:00:00Z".parse().ok(),
        };
        let item = ItemReport::series(&btc(), Interval::H1, work.clone());
        assert_eq!(
            item.to_string(),
            "BTCUSDT 1h: horizon 1: 24 forecasts written by pricecast-BTCUSDT-1h v2, 3 in-sample \
             candles skipped, 1 without enough history, watermark 2025-04-28T14:00:00+00:00"
        );
        assert_eq!(item.work.as_ref().map(Work::rows), Some(24));
        let json = serde_json::to_string(&item).expect("serialize");
        let back: ItemReport = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, item);
        let value: serde_json::Value = serde_json::from_str(&json).expect("value");
        assert_eq!(value["work"]["forecast"]["skipped_in_sample"], 3);
        assert_eq!(
            ForecastWork::default().to_string(),
            "no champion yet, nothing forecast"
        );
    }

    #[test]
    fn series_finds_the_items_of_one_series() {
        let report = sample();
        assert_eq!(report.series("BTCUSDT", Interval::H4).count(), 1);
        assert_eq!(report.series("ETHUSDT", Interval::H4).count(), 0);
    }
}
