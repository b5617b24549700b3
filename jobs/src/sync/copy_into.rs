//! `copy-into` mode: Databricks reads the lake's candle partitions itself.
//!
//! Per symbol and interval: the days exported since the last copy (the export watermark is past
//! [`COPY_INTO_WATERMARK`]) are listed from the series' manifest, `COPY INTO` the candles staging
//! table at most 1000 files at a time (Databricks' limit), each followed by the MERGE; then the
//! copy watermark moves to the export watermark.

use std::sync::Arc;

use pricecast_shared::domain::{Interval, Symbol};
use pricecast_shared::lake::candles::series_dir;
use pricecast_shared::lake::manifest::SeriesManifest;
use pricecast_shared::store::ChangeFilter;
use pricecast_shared::{Error, Result};
use pricecast_warehouse::dialect::copy_into_staging;
use pricecast_warehouse::{Dialect, Namespace, TableSpec};

use super::pipeline::{Pipeline, SeriesReport};

/// Watermark of the candles copied from the lake (the export watermark they were copied at).
pub const COPY_INTO_WATERMARK: &str = "sync:copy-into:candles";
/// Most files one `COPY INTO` may list (Databricks' limit).
const COPY_INTO_MAX_FILES: usize = 1000;
/// Schemes of the lake URLs Databricks reads itself.
const WAREHOUSE_READABLE_LAKES: [&str; 6] =
    ["s3://", "s3a://", "gs://", "abfss://", "az://", "wasbs://"];

/// `copy-into` needs Databricks, and a lake Databricks can read.
pub fn check_copy_into(dialect: Dialect, lake_url: &str) -> Result<()> {
    if dialect != Dialect::Databricks {
        return Err(Error::config(
            "SYNC_MODE=copy-into needs a Databricks warehouse (SYNC_DIALECT=databricks)",
        ));
    }
    if !WAREHOUSE_READABLE_LAKES
        .iter()
        .any(|scheme| lake_url.starts_with(scheme))
    {
        return Err(Error::config(format!(
            "SYNC_MODE=copy-into needs a LAKE_URL Databricks can read (s3://, gs://, abfss://), not {lake_url}"
        )));
    }
    Ok(())
}

/// Copies the lake partitions of one series exported since the last copy into `spec` (the
/// candles table): `COPY INTO` its staging table, MERGE, then move the copy watermark to the
/// export watermark.
pub async fn copy_into_series(
    pipeline: &Pipeline<'_>,
    spec: &Arc<TableSpec>,
    symbol: &Symbol,
    interval: Interval,
) -> Result<SeriesReport> {
    let ctx = pipeline.ctx;
    let lake = ctx
        .lake
        .as_ref()
        .ok_or_else(|| Error::config("SYNC_MODE=copy-into needs LAKE_URL"))?;
    let copied = ctx
        .store
        .watermark(COPY_INTO_WATERMARK, symbol, interval)
        .await?;
    let mut report = SeriesReport {
        rows: 0,
        since: copied,
        watermark: copied,
    };
    let exported = ctx
        .store
        .watermark(crate::export::JOB, symbol, interval)
        .await?;
    let Some(exported) = exported.filter(|e| copied.is_none_or(|c| c < *e)) else {
        tracing::info!(%symbol, %interval, "nothing exported since the last copy");
        return Ok(report);
    };
    let days = ctx
        .store
        .changed_days(
            symbol,
            interval,
            &ChangeFilter {
                ingested_after: copied,
                ..ChangeFilter::default()
            },
        )
        .await?;
    let manifest = SeriesManifest::read(lake, symbol, interval).await?;
    let dir = series_dir(symbol, interval);
    let files: Vec<String> = manifest
        .partitions
        .iter()
        .filter(|p| days.iter().any(|d| d.date == p.date))
        .filter_map(|p| p.path.strip_prefix(&format!("{dir}/")).map(str::to_owned))
        .collect();
    let source_dir = format!("{}/{dir}", lake.url().trim_end_matches('/'));
    for chunk in files.chunks(COPY_INTO_MAX_FILES) {
        let sql = copy_candles_sql(&ctx.warehouse.namespace, spec, &source_dir, chunk);
        let spec = spec.clone();
        pipeline
            .on_warehouse(move |w| {
                w.execute(&sql)?;
                w.merge(&spec)
            })
            .await?;
        report.rows += chunk.len() as u64;
    }
    ctx.store
        .set_watermark(COPY_INTO_WATERMARK, symbol, interval, exported)
        .await?;
    report.watermark = Some(exported);
    Ok(report)
}

/// The `COPY INTO` of lake candle files (relative to `source_dir`) into the staging table of
/// `spec` (the candles table), casting the lake's columns to the warehouse's types.
pub fn copy_candles_sql(
    ns: &Namespace,
    spec: &TableSpec,
    source_dir: &str,
    files: &[String],
) -> String {
    let q = |name: &str| Dialect::Databricks.quote(name);
    let select: Vec<String> = spec
        .columns
        .iter()
        .map(|c| match (c.name.as_ref(), c.ty) {
            ("source", _) => "CAST(NULL AS STRING)".to_owned(),
            ("ingested_at", _) => "current_timestamp()".to_owned(),
            (name, ty) => format!(
                "CAST({} AS {})",
                q(name),
                Dialect::Databricks.column_type(ty)
            ),
        })
        .collect();
    copy_into_staging(ns, spec, source_dir, &select, files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::candles::candles_table;

    #[test]
    fn copy_into_casts_lake_columns_and_lists_the_files() {
        let ns = Namespace {
            catalog: "main".into(),
            schema: "pricecast".into(),
        };
        let sql = copy_candles_sql(
            &ns,
            &candles_table(),
            "s3://lake/prices/candles/symbol=BTCUSDT/interval=1h",
            &[
                "date=2025-04-27/part-0.parquet".into(),
                "date=2025-04-28/part-0.parquet".into(),
            ],
        );
        assert!(
            sql.starts_with(
                "COPY INTO `main`.`pricecast`.`candles_staging` FROM (SELECT \
                 CAST(`symbol` AS STRING) AS `symbol`, CAST(`interval` AS STRING) AS `interval`, \
                 CAST(`open_time` AS TIMESTAMP) AS `open_time`, \
                 CAST(`open` AS DECIMAL(38,10)) AS `open`"
            ),
            "{sql}"
        );
        assert!(
            sql.contains("CAST(`trades` AS BIGINT) AS `trades`"),
            "{sql}"
        );
        assert!(
            sql.contains(
                "CAST(NULL AS STRING) AS `source`, current_timestamp() AS `ingested_at` \
             FROM 's3://lake/prices/candles/symbol=BTCUSDT/interval=1h') FILEFORMAT = PARQUET \
             FILES = ('date=2025-04-27/part-0.parquet', 'date=2025-04-28/part-0.parquet') \
             COPY_OPTIONS ('force' = 'true')"
            ),
            "{sql}"
        );
    }

    #[test]
    fn copy_into_needs_databricks_and_a_readable_lake() {
        assert!(check_copy_into(Dialect::Databricks, "s3://bucket/prefix").is_ok());
        let err = check_copy_into(Dialect::Databricks, "file:///tmp/lake").expect_err("local");
        assert!(err.to_string().contains("LAKE_URL"), "{err}");
        let err = check_copy_into(Dialect::Postgres, "s3://bucket").expect_err("postgres");
        assert!(err.to_string().contains("SYNC_DIALECT"), "{err}");
    }
}
