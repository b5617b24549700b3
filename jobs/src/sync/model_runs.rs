//! Model runs and their metrics, from the model registry (MLflow or the local registry) into
//! the warehouse's `model_runs` and `model_metrics` tables.
//!
//! Steps: look the experiment up (a missing one is skipped, not an error), make sure both
//! tables exist ([`Pipeline::prepare`]), read how far the last run got: the newest `end_time`
//! of the experiment's rows in `model_runs` ([`Warehouse::newest_millis`]), list the runs that
//! ended after it and at least `settle` ago ([`ModelRegistry::search_runs`]), then stage and
//! MERGE their metrics and, last, the runs themselves, each table through the pipeline
//! ([`Pipeline::merge`]). The position lives in the rows merged, so it moves exactly when the
//! runs' MERGE commits; a crash before re-lists the same runs, and re-merging them changes
//! nothing.
//!
//! [`Warehouse::newest_millis`]: pricecast_warehouse::Warehouse::newest_millis
//!
//! A run still running has no end time and is left for a later sync. A run whose end time moves
//! (it is ended again after more metrics were logged) is listed again and its rows updated.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use pricecast_shared::domain::{Interval, Symbol};
use pricecast_shared::registry::{ExperimentId, ModelRegistry, Run, RunSearch, tags};
use pricecast_shared::{Error, Result};
use pricecast_warehouse::{ColumnSpec, ColumnType, ColumnValues, RowBatch, TableSpec};

use super::pipeline::{ChangeRequest, ChangedRows, Pipeline, SyncSource, SyncTable};
use super::summary::RunSummary;
use pricecast_shared::report::SyncModelRunsWork;

/// Runs staged at once: the JSON columns size the transfer buffers (rows × longest value).
pub const RUNS_PER_BATCH: usize = 16;
/// Runs asked of the registry per page.
pub const RUNS_PER_PAGE: usize = 1000;
/// Longest params or tags JSON of one run, in bytes: MLflow keeps values of up to 6,000
/// characters, and a run logs a few hundred of them at most.
pub const JSON_MAX_LEN: usize = 1 << 20;

/// Name of the table of runs.
pub const MODEL_RUNS_TABLE: &str = "model_runs";
/// Name of the table of metrics.
pub const MODEL_METRICS_TABLE: &str = "model_metrics";

/// The warehouse's `model_runs` table: one row per ended run.
pub fn model_runs_table() -> TableSpec {
    use ColumnType::Timestamp;
    let (column, text) = (ColumnSpec::new, ColumnSpec::text);
    let columns = vec![
        text("run_id", 64, false),
        text("experiment_id", 256, false),
        text("run_name", 256, true),
        text("status", 16, false),
        column("start_time", Timestamp, false),
        column("end_time", Timestamp, false),
        text("model_type", 64, true),
        text("symbol", 32, true),
        text("interval", 8, true),
        column("data_from", Timestamp, true),
        column("data_to", Timestamp, true),
        text("feature_set_hash", 128, true),
        text("artifact_uri", 2048, false),
        text("params", JSON_MAX_LEN, false),
        text("tags", JSON_MAX_LEN, false),
    ];
    TableSpec::new(MODEL_RUNS_TABLE, columns, &["run_id"])
}

/// The warehouse's `model_metrics` table: the latest value of each metric of each run.
pub fn model_metrics_table() -> TableSpec {
    let columns = vec![
        ColumnSpec::text("run_id", 64, false),
        // MLflow's longest metric name.
        ColumnSpec::text("key", 250, false),
        ColumnSpec::new("value", ColumnType::Double, false),
        ColumnSpec::new("step", ColumnType::BigInt, false),
        ColumnSpec::new("timestamp", ColumnType::Timestamp, false),
    ];
    TableSpec::new(MODEL_METRICS_TABLE, columns, &["run_id", "key"])
}

/// Where model runs come from: a registry and the experiment the train job logs to.
#[derive(Clone, Debug)]
pub struct ModelRunsSource {
    /// The registry (MLflow or local).
    pub registry: Arc<ModelRegistry>,
    /// The experiment's name (`MLFLOW_EXPERIMENT_NAME`).
    pub experiment: String,
}

/// What one sync of model runs did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelRunsReport {
    /// Runs merged into `model_runs`.
    pub runs: u64,
    /// Metric rows merged into `model_metrics`.
    pub metrics: u64,
    /// The newest end time synced (ms since the Unix epoch), after the run.
    pub newest_end_ms: Option<i64>,
    /// Whether the experiment exists (nothing is synced when it does not).
    pub experiment_found: bool,
}

/// Mirrors the runs of the source's experiment that ended since the last sync, adding to
/// `summary`.
pub async fn sync_model_runs(
    pipeline: &Pipeline<'_>,
    source: &ModelRunsSource,
    summary: &mut RunSummary,
) -> Result<()> {
    let report = push_model_runs(pipeline, source).await?;
    let work = SyncModelRunsWork {
        experiment: source.experiment.to_string(),
        experiment_found: report.experiment_found,
        runs_table: MODEL_RUNS_TABLE.to_owned(),
        metrics_table: MODEL_METRICS_TABLE.to_owned(),
        target: summary.target().to_owned(),
        runs: report.runs,
        metrics: report.metrics,
        newest_end: report
            .newest_end_ms
            .and_then(DateTime::<Utc>::from_timestamp_millis),
    };
    summary.add_model_runs(work);
    Ok(())
}

/// Mirrors the runs of the source's experiment that ended since the last sync.
pub async fn push_model_runs(
    pipeline: &Pipeline<'_>,
    source: &ModelRunsSource,
) -> Result<ModelRunsReport> {
    let registry = &source.registry;
    let Some(experiment) = registry.find_experiment(&source.experiment).await? else {
        tracing::info!(
            experiment = %source.experiment,
            registry = %registry.location(),
            "the experiment does not exist yet; no model runs to sync"
        );
        return Ok(ModelRunsReport::default());
    };
    let metrics_table = Arc::new(model_metrics_table());
    let runs_table = Arc::new(model_runs_table());
    for spec in [&metrics_table, &runs_table] {
        pipeline.prepare(spec).await?;
    }
    let synced = synced_until(pipeline, &runs_table, &experiment).await?;
    let search = RunSearch {
        ended_after: synced,
        ended_at_or_before: Some((Utc::now() - pipeline.plan.settle).timestamp_millis()),
        page_size: RUNS_PER_PAGE,
    };
    let runs = registry.search_runs(&experiment, &search).await?;
    let metrics = ListedRuns {
        runs: &runs,
        batches: metric_batches,
    };
    let metrics = metrics.merge_into(pipeline, metrics_table).await?;
    let ended = ListedRuns {
        runs: &runs,
        batches: run_batches,
    };
    let merged_runs = ended.merge_into(pipeline, runs_table).await?;
    let newest_end_ms = runs.iter().filter_map(|r| r.end_time).max().or(synced);
    tracing::info!(
        experiment = %source.experiment,
        runs = merged_runs,
        metrics,
        "model runs synced"
    );
    Ok(ModelRunsReport {
        runs: merged_runs,
        metrics,
        newest_end_ms,
        experiment_found: true,
    })
}

/// The newest end time of the experiment's runs already in the warehouse's `runs_table`.
async fn synced_until(
    pipeline: &Pipeline<'_>,
    runs_table: &Arc<TableSpec>,
    experiment: &ExperimentId,
) -> Result<Option<i64>> {
    let (spec, id) = (runs_table.clone(), experiment.0.clone());
    pipeline
        .on_warehouse(move |w| w.newest_millis(&spec, "end_time", "experiment_id", &id))
        .await
}

/// Builds one table's rows of runs, in batches of at most the given size.
type RunBatches = fn(&Arc<TableSpec>, &[Run], usize) -> Result<Vec<RowBatch>>;

/// Rows of the listed runs for one of the two tables, in one step: their position is the runs'
/// end times, merged with them, so they keep no watermark.
struct ListedRuns<'a> {
    runs: &'a [Run],
    batches: RunBatches,
}

impl ListedRuns<'_> {
    /// Stages and merges the rows into `spec`'s table; returns the rows merged.
    async fn merge_into(&self, pipeline: &Pipeline<'_>, spec: Arc<TableSpec>) -> Result<u64> {
        let table = SyncTable {
            spec,
            watermark: None,
        };
        Ok(pipeline.merge(&table, self).await?.rows)
    }
}

impl SyncSource for ListedRuns<'_> {
    fn changes(&self, request: ChangeRequest) -> BoxStream<'_, Result<ChangedRows>> {
        let rows = (self.batches)(&request.spec, self.runs, request.batch_size);
        let rows = rows.map(|batches| ChangedRows {
            batches,
            reached: None,
        });
        stream::iter([rows]).boxed()
    }
}

/// The runs' metrics ([`metric_rows`]) in batches of at most `batch_size` rows.
fn metric_batches(spec: &Arc<TableSpec>, runs: &[Run], batch_size: usize) -> Result<Vec<RowBatch>> {
    Ok(metric_rows(spec, runs)?
        .map(|rows| rows.split(batch_size))
        .unwrap_or_default())
}

/// The runs ([`run_rows`]) [`RUNS_PER_BATCH`] at a time, whatever the batch size: their JSON
/// columns size the transfer buffers.
fn run_batches(spec: &Arc<TableSpec>, runs: &[Run], _batch_size: usize) -> Result<Vec<RowBatch>> {
    runs.chunks(RUNS_PER_BATCH)
        .map(|chunk| run_rows(spec, chunk))
        .collect()
}

/// Runs as rows of `spec`, the `model_runs` table ([`model_runs_table`]).
pub fn run_rows(spec: &Arc<TableSpec>, runs: &[Run]) -> Result<RowBatch> {
    let mut batch = RowBatch::new(spec.clone(), runs.len());
    for run in runs {
        let end_time = run.end_time.ok_or_else(|| {
            Error::CorruptRow(format!("run {} has no end time to sync", run.run_id))
        })?;
        let series = run.tags.get(tags::SERIES).and_then(|s| parse_series(s));
        let range = run
            .tags
            .get(tags::DATA_RANGE)
            .and_then(|r| parse_data_range(r));
        let tag = |key: &str| run.tags.get(key).cloned();
        let values = [
            Cell::Text(Some(run.run_id.0.clone())),
            Cell::Text(Some(run.experiment_id.0.clone())),
            Cell::Text(tag(tags::RUN_NAME)),
            Cell::Text(Some(run.status.as_str().to_owned())),
            Cell::Time(Some(millis(run.start_time, run)?)),
            Cell::Time(Some(millis(end_time, run)?)),
            Cell::Text(tag(tags::MODEL_TYPE)),
            Cell::Text(series.as_ref().map(|(s, _)| s.as_str().to_owned())),
            Cell::Text(series.map(|(_, i)| i.as_str().to_owned())),
            Cell::Time(range.map(|(from, _)| from)),
            Cell::Time(range.map(|(_, to)| to)),
            Cell::Text(tag(tags::FEATURE_SET_HASH)),
            Cell::Text(Some(run.artifact_uri.clone())),
            Cell::Text(Some(json(&run.params))),
            Cell::Text(Some(json(&run.tags))),
        ];
        for (column, value) in batch.columns.iter_mut().zip(values) {
            value.push_to(column);
        }
    }
    Ok(batch)
}

/// The latest value of each metric of each run as rows of `spec`, the `model_metrics` table
/// ([`model_metrics_table`]), one batch for all of them (split by the caller); `None` when the
/// runs logged none.
pub fn metric_rows(spec: &Arc<TableSpec>, runs: &[Run]) -> Result<Option<RowBatch>> {
    let count = runs.iter().map(|r| r.latest_metrics.len()).sum();
    if count == 0 {
        return Ok(None);
    }
    let mut batch = RowBatch::new(spec.clone(), count);
    for run in runs {
        for metric in &run.latest_metrics {
            let values = [
                Cell::Text(Some(run.run_id.0.clone())),
                Cell::Text(Some(metric.key.clone())),
                Cell::Double(Some(metric.value)),
                Cell::BigInt(Some(metric.step)),
                Cell::Time(Some(millis(metric.timestamp, run)?)),
            ];
            for (column, value) in batch.columns.iter_mut().zip(values) {
                value.push_to(column);
            }
        }
    }
    Ok(Some(batch))
}

/// One value of a row, appended to its column.
enum Cell {
    Text(Option<String>),
    BigInt(Option<i64>),
    Double(Option<f64>),
    Time(Option<DateTime<Utc>>),
}

impl Cell {
    /// Appends the value; the tables above give every column the matching type.
    fn push_to(self, column: &mut ColumnValues) {
        match (self, column) {
            (Self::Text(v), ColumnValues::Text(c)) => c.push(v),
            (Self::BigInt(v), ColumnValues::BigInt(c)) => c.push(v),
            (Self::Double(v), ColumnValues::Double(c)) => c.push(v),
            (Self::Time(v), ColumnValues::Timestamp(c)) => c.push(v),
            // A mismatch leaves the column short, which the batch's validation reports.
            _ => {}
        }
    }
}

/// A registry time (ms since the Unix epoch) as an instant.
fn millis(ms: i64, run: &Run) -> Result<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single().ok_or_else(|| {
        Error::CorruptRow(format!(
            "run {} has a time of {ms} ms, out of range",
            run.run_id
        ))
    })
}

/// The `pricecast.series` tag, `SYMBOL interval`; `None` when it is not one.
pub fn parse_series(tag: &str) -> Option<(Symbol, Interval)> {
    let (symbol, interval) = tag.trim().split_once(' ')?;
    Some((symbol.parse().ok()?, interval.trim().parse().ok()?))
}

/// The `pricecast.data_range` tag, `<first>..<last>` in RFC 3339; `None` when it is not one.
pub fn parse_data_range(tag: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let (from, to) = tag.split_once("..")?;
    let parse = |s: &str| {
        DateTime::parse_from_rfc3339(s.trim())
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    Some((parse(from)?, parse(to)?))
}

/// Params or tags as a JSON object, keys in order.
fn json(map: &BTreeMap<String, String>) -> String {
    // Serialising a map of strings cannot fail.
    serde_json::to_string(map).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pricecast_shared::registry::{LoggedMetric, RunId, RunStatus};

    fn run() -> Run {
        let tags: BTreeMap<String, String> = [
            (tags::SERIES, "BTCUSDT 1h"),
            (
                tags::DATA_RANGE,
                "2024-01-01T00:00:00Z..2024-02-01T00:00:00Z",
            ),
            (tags::MODEL_TYPE, "linear_regression"),
            (tags::FEATURE_SET_HASH, "f00d"),
            (tags::RUN_NAME, "nightly"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let metric = |key: &str, value| LoggedMetric {
            key: key.into(),
            value,
            step: 3,
            timestamp: 1_714_000_000_123,
        };
        Run {
            run_id: RunId("abc".into()),
            experiment_id: ExperimentId("1".into()),
            status: RunStatus::Finished,
            start_time: 1_714_000_000_000,
            end_time: Some(1_714_000_060_000),
            artifact_uri: "mlflow-artifacts:/1/abc/artifacts".into(),
            params: [("alpha".to_owned(), "0.5".to_owned())].into(),
            metrics: [("mae".to_owned(), 1.5), ("rmse".to_owned(), 2.5)].into(),
            latest_metrics: vec![metric("mae", 1.5), metric("rmse", 2.5)],
            tags,
        }
    }

    #[test]
    fn runs_become_rows_with_series_range_and_json() {
        let rows = run_rows(&Arc::new(model_runs_table()), &[run()]).expect("rows");
        rows.validate().expect("valid");
        let text = |i: usize| match &rows.columns[i] {
            ColumnValues::Text(v) => v[0].clone(),
            other => panic!("column {i} is {other:?}"),
        };
        assert_eq!(text(0).as_deref(), Some("abc"));
        assert_eq!(text(2).as_deref(), Some("nightly"));
        assert_eq!(text(3).as_deref(), Some("FINISHED"));
        assert_eq!(text(6).as_deref(), Some("linear_regression"));
        assert_eq!(
            (text(7).as_deref(), text(8).as_deref()),
            (Some("BTCUSDT"), Some("1h"))
        );
        assert_eq!(text(13).as_deref(), Some(r#"{"alpha":"0.5"}"#));
        assert!(text(14).is_some_and(|t| t.contains(r#""pricecast.series":"BTCUSDT 1h""#)));
        assert_eq!(
            rows.columns[9],
            ColumnValues::Timestamp(vec![Some("2024-01-01T00:00:00Z".parse().expect("time"))])
        );
    }

    #[test]
    fn missing_or_odd_tags_become_nulls_and_a_running_run_is_refused() {
        let mut odd = run();
        odd.tags.clear();
        odd.tags.insert(tags::SERIES.into(), "not a series".into());
        let spec = Arc::new(model_runs_table());
        let rows = run_rows(&spec, &[odd]).expect("rows");
        rows.validate().expect("valid");
        assert_eq!(rows.columns[7], ColumnValues::Text(vec![None]));
        assert_eq!(rows.columns[10], ColumnValues::Timestamp(vec![None]));
        let mut running = run();
        running.end_time = None;
        assert!(run_rows(&spec, &[running]).is_err());
    }

    #[test]
    fn metrics_become_one_row_per_run_and_key() {
        let spec = Arc::new(model_metrics_table());
        let rows = metric_rows(&spec, &[run(), run()])
            .expect("rows")
            .expect("some");
        rows.validate().expect("valid");
        assert_eq!(rows.rows(), 4);
        assert_eq!(
            rows.columns[2],
            ColumnValues::Double(vec![Some(1.5), Some(2.5), Some(1.5), Some(2.5)])
        );
        let parts = rows.split(3);
        assert_eq!(parts.iter().map(RowBatch::rows).collect::<Vec<_>>(), [3, 1]);
        assert!(parts.iter().all(|p| p.validate().is_ok()));
        let mut empty = run();
        empty.latest_metrics.clear();
        assert!(metric_rows(&spec, &[empty]).expect("rows").is_none());
    }

    #[test]
    fn series_and_data_range_tags_are_parsed() {
        assert_eq!(
            parse_series("ETHUSDT 4h"),
            Some(("ETHUSDT".parse().expect("symbol"), Interval::H4))
        );
        assert_eq!(parse_series("ETHUSDT"), None);
        assert_eq!(parse_series("ETHUSDT 7x"), None);
        assert!(parse_data_range("2024-01-01T00:00:00Z..2024-02-01T00:00:00+00:00").is_some());
        assert_eq!(parse_data_range("yesterday..today"), None);
    }
}
