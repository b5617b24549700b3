//! Feature frames, from the lake into the warehouse's `features` table.
//!
//! Steps, per symbol and interval: read the series' feature manifest (a series without one is
//! skipped, not an error), describe the table its definition needs ([`features_table`]), make
//! sure the warehouse table has exactly those columns ([`check_columns`]), pick the days to send
//! ([`days_to_push`]), then read, decode and convert them a few days at a time
//! ([`FeatureFrames`], [`frame_rows`]), stage and MERGE them on (symbol, interval, open_time)
//! through the pipeline, and only after the last MERGE committed move the watermark to the
//! newest row sent.
//!
//! The watermark (`sync:features:<feature-set hash>` in `watermarks`) is the open time of the
//! newest row pushed. A features run rebuilds the days whose candle inputs changed: new candles
//! on day `D` rebuild the days from `D − lookahead` on, whose targets they complete. So every
//! sync re-sends the days from the watermark's day minus the features' input reach in both
//! directions; the MERGE makes that idempotent. A new definition has a new hash, hence no
//! watermark yet, and its whole frame is sent.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use polars::prelude::{DataFrame, DataType};
use pricecast_shared::domain::{Interval, Symbol};
use pricecast_shared::features::FeatureManifest;
use pricecast_shared::features::frame::{CLOSE, OPEN_TIME};
use pricecast_shared::features::store::{
    FeaturePartition, decode_features, input_reach, read_feature_files,
};
use pricecast_shared::lake::Lake;
use pricecast_shared::{Error, Result};
use pricecast_warehouse::{
    ColumnSpec, ColumnType, ColumnValues, Error as WarehouseError, RowBatch, TableSpec,
};

use super::pipeline::{
    ChangeRequest, ChangedRows, Pipeline, SeriesReport, SeriesWatermark, SyncSource, SyncTable,
    blocking_task,
};
use super::summary::RunSummary;
use pricecast_shared::report::SyncedRows;

/// Prefix of the watermark job of each feature definition: `sync:features:<hash>`.
pub const FEATURES_WATERMARK: &str = "sync:features";
/// Name of the warehouse table.
pub const FEATURES_TABLE_NAME: &str = "features";
/// Columns before the features, and the key rows are merged on.
const KEY: [&str; 3] = ["symbol", "interval", "open_time"];
/// Longest `feature_set_hash` kept (the hash is 16 hex digits).
const HASH_MAX_LEN: usize = 128;

/// The watermark job of the feature frames built with the definition `hash`.
pub fn watermark_job(hash: &str) -> String {
    format!("{FEATURES_WATERMARK}:{hash}")
}

/// The `features` table of a manifest's definition, keyed by (symbol, interval, open_time):
/// the key, `close`, every feature (DOUBLE), every target (nullable DOUBLE) and
/// `feature_set_hash`.
pub fn features_table(manifest: &FeatureManifest) -> TableSpec {
    let mut columns = vec![
        ColumnSpec::text(KEY[0], 32, false),
        ColumnSpec::text(KEY[1], 8, false),
        ColumnSpec::new(KEY[2], ColumnType::Timestamp, false),
        ColumnSpec::new(CLOSE, ColumnType::Double, false),
    ];
    columns.extend(
        manifest
            .features
            .iter()
            .map(|f| ColumnSpec::new(f.clone(), ColumnType::Double, false)),
    );
    columns.extend(
        manifest
            .targets
            .iter()
            .map(|t| ColumnSpec::new(t.clone(), ColumnType::Double, true)),
    );
    columns.push(ColumnSpec::text("feature_set_hash", HASH_MAX_LEN, false));
    TableSpec::new(FEATURES_TABLE_NAME, columns, &KEY)
}

/// Fails naming the columns when the warehouse table has columns the definition does not
/// write (a feature dropped since the table was created); [`Warehouse::prepare_table`] already
/// reports the ones it lacks.
///
/// [`Warehouse::prepare_table`]: pricecast_warehouse::Warehouse::prepare_table
pub fn check_columns(spec: &TableSpec, table: &str, existing: &[String]) -> Result<()> {
    let extra: Vec<&str> = existing
        .iter()
        .map(String::as_str)
        .filter(|e| !spec.columns.iter().any(|c| c.name.eq_ignore_ascii_case(e)))
        .collect();
    if extra.is_empty() {
        return Ok(());
    }
    Err(WarehouseError::Failed {
        operation: format!("checking the columns of {table}"),
        message: format!(
            "it has column(s) {} that the feature definition does not write (the feature set changed); drop the table so sync recreates it, or rebuild the features with the table's definition",
            extra.join(", ")
        ),
    }
    .into())
}

/// The days to send, oldest first: every day when nothing was sent yet, else the days from the
/// watermark's day minus the input reach (the days a features run may have rebuilt since).
pub fn days_to_push(
    partitions: &[FeaturePartition],
    watermark: Option<DateTime<Utc>>,
    reach: (i64, i64),
) -> Vec<FeaturePartition> {
    let from: Option<NaiveDate> =
        watermark.map(|w| w.date_naive() - Duration::days(reach.0.max(reach.1)));
    partitions
        .iter()
        .filter(|p| from.is_none_or(|from| p.date >= from))
        .cloned()
        .collect()
}

/// A decoded feature frame as rows of `spec` for one series.
pub fn frame_rows(
    frame: &DataFrame,
    spec: &Arc<TableSpec>,
    symbol: &Symbol,
    interval: Interval,
    feature_set_hash: &str,
) -> Result<RowBatch> {
    let error = |source: polars::error::PolarsError| Error::Polars {
        operation: format!("reading the feature frame of {symbol} {interval}"),
        source,
    };
    let rows = frame.height();
    let repeat = |value: &str| ColumnValues::Text(vec![Some(value.to_owned()); rows]);
    let mut columns = Vec::with_capacity(spec.columns.len());
    for column in &spec.columns {
        let values = match column.name.as_ref() {
            "symbol" => repeat(symbol.as_str()),
            "interval" => repeat(interval.as_str()),
            "feature_set_hash" => repeat(feature_set_hash),
            OPEN_TIME => ColumnValues::Timestamp(
                frame
                    .column(OPEN_TIME)
                    .and_then(|c| c.cast(&DataType::Int64))
                    .map_err(error)?
                    .i64()
                    .map_err(error)?
                    .iter()
                    .map(|t| t.and_then(DateTime::from_timestamp_millis))
                    .collect(),
            ),
            name => ColumnValues::Double(
                frame
                    .column(name)
                    .and_then(|c| c.cast(&DataType::Float64))
                    .map_err(error)?
                    .f64()
                    .map_err(error)?
                    .iter()
                    .collect(),
            ),
        };
        columns.push(values);
    }
    let batch = RowBatch {
        spec: spec.clone(),
        columns,
    };
    batch.validate()?;
    Ok(batch)
}

/// Syncs the feature frames of every configured series, adding to `summary`.
pub async fn sync_features(
    pipeline: &Pipeline<'_>,
    lake: &Lake,
    summary: &mut RunSummary,
) -> Result<()> {
    for (symbol, interval) in pipeline.plan.series() {
        let result = push_features(pipeline, lake, symbol, interval).await;
        summary.add_result(
            (symbol, interval),
            result,
            SyncedRows::FeatureRows,
            FEATURES_TABLE_NAME,
        )?;
    }
    Ok(())
}

/// Sends the feature days of one series changed since the watermark and advances it.
pub async fn push_features(
    pipeline: &Pipeline<'_>,
    lake: &Lake,
    symbol: &Symbol,
    interval: Interval,
) -> Result<SeriesReport> {
    let Some(manifest) = FeatureManifest::read(lake, symbol, interval).await? else {
        tracing::info!(%symbol, %interval, lake = lake.url(), "no feature frame in the lake; nothing to sync");
        return Ok(SeriesReport::default());
    };
    let hash = manifest.feature_set_hash.clone();
    if let Some(stale) = manifest
        .partitions
        .iter()
        .find(|p| p.feature_set_hash != hash)
    {
        return Err(Error::Features {
            operation: format!("syncing the features of {symbol} {interval}"),
            message: format!(
                "{} was built with another feature definition (an interrupted rebuild); run pricecast-features again",
                stale.path
            ),
        });
    }
    let spec = Arc::new(features_table(&manifest));
    let table = spec.clone();
    pipeline
        .on_warehouse(move |w| {
            w.prepare_table(&table)?;
            let existing = w.column_names(&table.name)?;
            check_columns(
                &table,
                &w.dialect().table_name(w.namespace(), &table.name),
                &existing,
            )
        })
        .await?;
    let table = SyncTable {
        spec,
        watermark: Some(SeriesWatermark {
            job: watermark_job(&hash).into(),
            symbol: symbol.clone(),
            interval,
            settle: None,
        }),
    };
    let frames = FeatureFrames {
        lake,
        reach: input_reach(&manifest.spec(), interval),
        manifest,
        symbol,
        interval,
    };
    let report = pipeline.merge(&table, &frames).await?;
    let days = frames.days(report.since).len();
    tracing::info!(%symbol, %interval, table = FEATURES_TABLE_NAME, days, rows = report.rows, "feature frame synced");
    Ok(report)
}

/// The feature frame of one series in the lake, read a few days at a time from the days a
/// features run may have rebuilt since the watermark ([`days_to_push`]).
#[derive(Debug)]
pub struct FeatureFrames<'a> {
    /// Where the feature files are.
    pub lake: &'a Lake,
    /// The series' manifest: its days and its definition.
    pub manifest: FeatureManifest,
    /// Days before and after a row that its features and targets read ([`input_reach`]).
    pub reach: (i64, i64),
    /// The series' symbol.
    pub symbol: &'a Symbol,
    /// The series' interval.
    pub interval: Interval,
}

impl FeatureFrames<'_> {
    /// The days to send after the watermark `since`.
    fn days(&self, since: Option<DateTime<Utc>>) -> Vec<FeaturePartition> {
        days_to_push(&self.manifest.partitions, since, self.reach)
    }

    /// Reads one group of days, then decodes and converts them (on a blocking thread) into the
    /// batches the request asks for.
    async fn read(
        &self,
        request: ChangeRequest,
        days: Vec<FeaturePartition>,
    ) -> Result<ChangedRows> {
        let files = read_feature_files(self.lake, &days).await?;
        let (spec, batch_size) = (request.spec, request.batch_size);
        let (symbol, interval) = (self.symbol.clone(), self.interval);
        let hash = self.manifest.feature_set_hash.clone();
        let batches = blocking_task(move || {
            let Some(frame) = decode_features(files)? else {
                return Ok(Vec::new());
            };
            Ok(frame_rows(&frame, &spec, &symbol, interval, &hash)?.split(batch_size))
        })
        .await?;
        Ok(ChangedRows {
            batches,
            reached: days.iter().filter_map(|p| p.max_open_time).max(),
        })
    }
}

impl SyncSource for FeatureFrames<'_> {
    fn changes(&self, request: ChangeRequest) -> BoxStream<'_, Result<ChangedRows>> {
        let days = self.days(request.since);
        let groups: Vec<Vec<FeaturePartition>> = day_groups(&days, request.batch_size)
            .into_iter()
            .map(<[FeaturePartition]>::to_vec)
            .collect();
        stream::iter(groups)
            .then(move |group| self.read(request.clone(), group))
            .boxed()
    }
}

/// Consecutive days grouped so that each group holds about `batch_size` rows (whole days, at
/// least one per group).
fn day_groups(days: &[FeaturePartition], batch_size: usize) -> Vec<&[FeaturePartition]> {
    let mut groups = Vec::new();
    let (mut start, mut rows) = (0, 0u64);
    for (i, day) in days.iter().enumerate() {
        rows += day.rows;
        if rows >= batch_size as u64 {
            groups.push(&days[start..=i]);
            (start, rows) = (i + 1, 0);
        }
    }
    if start < days.len() {
        groups.push(&days[start..]);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::{Column, NamedFrom, Series};
    use pricecast_shared::features::FeatureSpec;

    fn manifest() -> FeatureManifest {
        let spec = FeatureSpec {
            horizons: vec![1, 3],
            features: vec!["log_ret_1".into(), "hour".into()],
        };
        FeatureManifest::new(&"BTCUSDT".parse().expect("symbol"), Interval::H1, &spec)
    }

    fn day(date: &str, rows: u64) -> FeaturePartition {
        FeaturePartition {
            date: date.parse().expect("date"),
            path: format!("features/date={date}/part-0.parquet"),
            rows,
            bytes: 1,
            min_open_time: None,
            max_open_time: None,
            feature_set_hash: "h".into(),
            sources: Vec::new(),
        }
    }

    #[test]
    fn the_table_has_the_key_close_features_targets_and_hash() {
        let spec = features_table(&manifest());
        let names: Vec<&str> = spec.columns.iter().map(|c| c.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "symbol",
                "interval",
                "open_time",
                "close",
                "log_ret_1",
                "hour",
                "price_t+1",
                "price_t+3",
                "feature_set_hash"
            ]
        );
        assert_eq!(spec.key, ["symbol", "interval", "open_time"]);
        assert!(!spec.columns[5].nullable && spec.columns[6].nullable);
        assert_eq!(
            spec,
            features_table(&manifest()),
            "the same for the same definition"
        );
    }

    #[test]
    fn extra_warehouse_columns_are_named() {
        let spec = features_table(&manifest());
        let mut existing: Vec<String> = spec.columns.iter().map(|c| c.name.to_string()).collect();
        assert!(check_columns(&spec, "t", &existing).is_ok());
        existing.push("ma_50".into());
        let err = check_columns(&spec, "t", &existing).expect_err("extra");
        assert!(err.to_string().contains("ma_50"), "{err}");
    }

    #[test]
    fn days_from_the_watermark_day_minus_the_reach_are_sent_again() {
        let days = [
            day("2025-01-01", 24),
            day("2025-01-02", 24),
            day("2025-01-03", 24),
            day("2025-01-04", 5),
        ];
        assert_eq!(days_to_push(&days, None, (3, 1)).len(), 4);
        let watermark = "2025-01-04T04:00:00Z".parse().expect("time");
        let sent = days_to_push(&days, Some(watermark), (1, 1));
        assert_eq!(
            sent.iter().map(|d| d.date.to_string()).collect::<Vec<_>>(),
            ["2025-01-03", "2025-01-04"]
        );
        assert_eq!(days_to_push(&days, Some(watermark), (2, 1)).len(), 3);
    }

    #[test]
    fn days_are_grouped_into_batches_of_whole_days() {
        let days = [
            day("2025-01-01", 24),
            day("2025-01-02", 24),
            day("2025-01-03", 24),
            day("2025-01-04", 5),
        ];
        let sizes: Vec<usize> = day_groups(&days, 40).iter().map(|g| g.len()).collect();
        assert_eq!(sizes, [2, 2]);
        assert_eq!(day_groups(&days, 10).len(), 4);
        assert!(day_groups(&[], 10).is_empty());
    }

    #[test]
    fn frames_become_rows_with_null_targets_and_the_hash() {
        let spec = Arc::new(features_table(&manifest()));
        let frame = DataFrame::new(
            2,
            vec![
                Column::new(OPEN_TIME.into(), [1_735_689_600_000_i64, 1_735_693_200_000]),
                Column::new(CLOSE.into(), [100.0, 101.0]),
                Column::new("log_ret_1".into(), [0.01, 0.0099]),
                Column::new("hour".into(), [0_i32, 1]),
                Series::new("price_t+1".into(), [Some(101.0), None]).into(),
                Series::new("price_t+3".into(), [None::<f64>, None]).into(),
            ],
        )
        .expect("frame");
        let rows = frame_rows(
            &frame,
            &spec,
            &"BTCUSDT".parse().expect("symbol"),
            Interval::H1,
            "abc",
        )
        .expect("rows");
        assert_eq!(rows.rows(), 2);
        assert_eq!(
            rows.columns[2],
            ColumnValues::Timestamp(vec![
                "2025-01-01T00:00:00Z".parse().ok(),
                "2025-01-01T01:00:00Z".parse().ok()
            ])
        );
        assert_eq!(
            rows.columns[5],
            ColumnValues::Double(vec![Some(0.0), Some(1.0)])
        );
        assert_eq!(
            rows.columns[6],
            ColumnValues::Double(vec![Some(101.0), None])
        );
        assert_eq!(
            rows.columns[8],
            ColumnValues::Text(vec![Some("abc".into()); 2])
        );
    }
}
