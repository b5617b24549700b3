//! Model runs and their metrics, from the model registry (MLflow or the local registry) into
//! the warehouse's `model_runs` and `model_metrics` tables.
//!
//! Steps: look the experiment up (a missing one is skipped, not an error), make sure both
//! tables exist ([`Warehouse::prepare_table`]), read how far the last run got: the newest
//! `end_time` of the experiment's rows in `model_runs` ([`Warehouse::newest_millis`]), list
//! the runs that ended after it and at least `settle` ago ([`ModelRegistry::search_runs`]),
//! then stage and MERGE their metrics and, last, the runs themselves ([`load_rows`]). The
//! position lives in the rows merged, so it moves exactly when the runs' MERGE commits; a crash
//! before re-lists the same runs, and re-merging them changes nothing.
//!
//! A run still running has no end time and is left for a later sync. A run whose end time moves
//! (it is ended again after more metrics were logged) is listed again and its rows updated.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use pricecast_shared::domain::{Interval, Symbol};
use pricecast_shared::registry::{ExperimentId, ModelRegistry, Run, RunSearch, tags};
use pricecast_shared::warehouse::{ColumnType, ColumnValues, RowBatch, TableSpec};
use pricecast_shared::{Error, Result};
use tokio::sync::mpsc;

use super::{SharedWarehouse, SyncContext, SyncPlan, column, load_batches, on_warehouse, text};

/// Runs staged at once: the JSON columns size the transfer buffers (rows × longest value).
pub const RUNS_PER_BATCH: usize = 16;
/// Runs asked of the registry per page.
pub const RUNS_PER_PAGE: usize = 1000;
/// Longest params or tags JSON of one run, in bytes: MLflow keeps values of up to 6,000
/// characters, and a run logs a few hundred of them at most.
pub const JSON_MAX_LEN: usize = 1 << 20;

/// The warehouse's `model_runs` table: one row per ended run.
pub static MODEL_RUNS_TABLE: TableSpec = TableSpec {
    name: "model_runs",
    columns: &[
        text("run_id", 64, false),
        text("experiment_id", 256, false),
        text("run_name", 256, true),
        text("status", 16, false),
        column("start_time", ColumnType::Timestamp, false),
        column("end_time", ColumnType::Timestamp, false),
        text("model_type", 64, true),
        text("symbol", 32, true),
        text("interval", 8, true),
        column("data_from", ColumnType::Timestamp, true),
        column("data_to", ColumnType::Timestamp, true),
        text("feature_set_hash", 128, true),
        text("artifact_uri", 2048, false),
        text("params", JSON_MAX_LEN, false),
        text("tags", JSON_MAX_LEN, false),
    ],
    key: &["run_id"],
};

/// The warehouse's `model_metrics` table: the latest value of each metric of each run.
pub static MODEL_METRICS_TABLE: TableSpec = TableSpec {
    name: "model_metrics",
    columns: &[
        text("run_id", 64, false),
        // MLflow's longest metric name.
        text("key", 250, false),
        column("value", ColumnType::Double, false),
        column("step", ColumnType::BigInt, false),
        column("timestamp", ColumnType::Timestamp, false),
    ],
    key: &["run_id", "key"],
};

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

/// Mirrors the runs of the source's experiment that ended since the last sync.
pub async fn push_model_runs(
    ctx: &SyncContext,
    plan: &SyncPlan,
    warehouse: &SharedWarehouse,
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
    for spec in [&MODEL_METRICS_TABLE, &MODEL_RUNS_TABLE] {
        on_warehouse(warehouse, move |w| w.prepare_table(spec)).await?;
    }
    let synced = synced_until(warehouse, &experiment).await?;
    let search = RunSearch {
        ended_after: synced,
        ended_at_or_before: Some((Utc::now() - plan.settle).timestamp_millis()),
        page_size: RUNS_PER_PAGE,
    };
    let runs = registry.search_runs(&experiment, &search).await?;
    if ctx.cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    let metric_batches = metric_rows(&runs)?
        .into_iter()
        .flat_map(|rows| split(rows, ctx.warehouse.batch_size))
        .collect();
    let metrics = load_rows(warehouse, &MODEL_METRICS_TABLE, metric_batches, plan).await?;
    let run_batches = runs
        .chunks(RUNS_PER_BATCH)
        .map(run_rows)
        .collect::<Result<Vec<_>>>()?;
    let merged_runs = load_rows(warehouse, &MODEL_RUNS_TABLE, run_batches, plan).await?;
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

/// The newest end time of the experiment's runs already in the warehouse.
async fn synced_until(
    warehouse: &SharedWarehouse,
    experiment: &ExperimentId,
) -> Result<Option<i64>> {
    let id = experiment.0.clone();
    on_warehouse(warehouse, move |w| {
        w.newest_millis(&MODEL_RUNS_TABLE, "end_time", "experiment_id", &id)
    })
    .await
}

/// Stages and merges `batches` of one table through [`load_batches`].
async fn load_rows(
    warehouse: &SharedWarehouse,
    spec: &'static TableSpec,
    batches: Vec<RowBatch>,
    plan: &SyncPlan,
) -> Result<u64> {
    let (tx, rx) = mpsc::channel(batches.len().max(1));
    for batch in batches {
        // The channel holds every batch and the receiver is alive: this cannot fail.
        let _ = tx.try_send(batch);
    }
    drop(tx);
    load_batches(warehouse.clone(), spec, rx, plan.stop_after_staging).await
}

/// Runs as rows of [`MODEL_RUNS_TABLE`].
pub fn run_rows(runs: &[Run]) -> Result<RowBatch> {
    let mut batch = RowBatch::new(&MODEL_RUNS_TABLE, runs.len());
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

/// The latest value of each metric of each run as rows of [`MODEL_METRICS_TABLE`], one batch
/// for all of them (split by the caller).
pub fn metric_rows(runs: &[Run]) -> Result<Option<RowBatch>> {
    let count = runs.iter().map(|r| r.latest_metrics.len()).sum();
    if count == 0 {
        return Ok(None);
    }
    let mut batch = RowBatch::new(&MODEL_METRICS_TABLE, count);
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

/// Splits a batch into batches of at most `size` rows.
pub(super) fn split(batch: RowBatch, size: usize) -> Vec<RowBatch> {
    let rows = batch.rows();
    let size = size.max(1);
    if rows <= size {
        return vec![batch];
    }
    (0..rows)
        .step_by(size)
        .map(|start| {
            let end = (start + size).min(rows);
            RowBatch {
                spec: batch.spec,
                columns: batch.columns.iter().map(|c| slice(c, start, end)).collect(),
            }
        })
        .collect()
}

fn slice(values: &ColumnValues, start: usize, end: usize) -> ColumnValues {
    match values {
        ColumnValues::Text(v) => ColumnValues::Text(v[start..end].to_vec()),
        ColumnValues::BigInt(v) => ColumnValues::BigInt(v[start..end].to_vec()),
        ColumnValues::Double(v) => ColumnValues::Double(v[start..end].to_vec()),
        ColumnValues::Decimal(v) => ColumnValues::Decimal(v[start..end].to_vec()),
        ColumnValues::Timestamp(v) => ColumnValues::Timestamp(v[start..end].to_vec()),
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
        let rows = run_rows(&[run()]).expect("rows");
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
        let rows = run_rows(&[odd]).expect("rows");
        rows.validate().expect("valid");
        assert_eq!(rows.columns[7], ColumnValues::Text(vec![None]));
        assert_eq!(rows.columns[10], ColumnValues::Timestamp(vec![None]));
        let mut running = run();
        running.end_time = None;
        assert!(run_rows(&[running]).is_err());
    }

    #[test]
    fn metrics_become_one_row_per_run_and_key() {
        let rows = metric_rows(&[run(), run()]).expect("rows").expect("some");
        rows.validate().expect("valid");
        assert_eq!(rows.rows(), 4);
        assert_eq!(
            rows.columns[2],
            ColumnValues::Double(vec![Some(1.5), Some(2.5), Some(1.5), Some(2.5)])
        );
        let parts = split(rows, 3);
        assert_eq!(parts.iter().map(RowBatch::rows).collect::<Vec<_>>(), [3, 1]);
        assert!(parts.iter().all(|p| p.validate().is_ok()));
        let mut empty = run();
        empty.latest_metrics.clear();
        assert!(metric_rows(&[empty]).expect("rows").is_none());
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
