//! Candles, from Pricecast's database into the warehouse's `candles` table.
//!
//! Per symbol and interval ([`CandleChanges`]): the candles ingested (inserted or changed) after
//! the series' watermark ([`CANDLES_WATERMARK`]), streamed from the database a batch at a time;
//! once merged, the watermark moves to the newest `ingested_at` among them, held
//! [`WATERMARK_SETTLE`](super::WATERMARK_SETTLE) behind the database's clock. In `copy-into`
//! mode Databricks copies the lake's files instead ([`super::copy_into`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use pricecast_shared::Result;
use pricecast_shared::domain::{Interval, Symbol};
use pricecast_shared::store::{ChangedCandle, Store};
use pricecast_warehouse::{ColumnSpec, ColumnType, ColumnValues, RowBatch, TableSpec};

use super::SyncMode;
use super::copy_into::copy_into_series;
use super::pipeline::{
    ChangeRequest, ChangedRows, Pipeline, SeriesWatermark, SyncSource, SyncTable,
};
use super::summary::RunSummary;
use pricecast_shared::report::SyncedRows;

/// Watermark of the candles pushed to the warehouse (their newest `ingested_at`).
pub const CANDLES_WATERMARK: &str = "sync:candles";

/// The warehouse's `candles` table, keyed by (symbol, interval, open_time).
pub fn candles_table() -> TableSpec {
    use ColumnType::{BigInt, Decimal, Timestamp};
    let column = ColumnSpec::new;
    let columns = vec![
        ColumnSpec::text("symbol", 32, false),
        ColumnSpec::text("interval", 8, false),
        column("open_time", Timestamp, false),
        column("open", Decimal, false),
        column("high", Decimal, false),
        column("low", Decimal, false),
        column("close", Decimal, false),
        column("volume", Decimal, false),
        column("quote_volume", Decimal, true),
        column("trades", BigInt, true),
        column("taker_buy_base", Decimal, true),
        column("taker_buy_quote", Decimal, true),
        column("close_time", Timestamp, false),
        // NULL for rows copied from the lake, which does not keep it.
        ColumnSpec::text("source", 64, true),
        column("ingested_at", Timestamp, false),
    ];
    TableSpec::new("candles", columns, &["symbol", "interval", "open_time"])
}

/// The candles of one series in the store.
#[derive(Debug)]
pub struct CandleChanges<'a> {
    /// Where the candles are read from.
    pub store: &'a Store,
    /// The series' symbol.
    pub symbol: &'a Symbol,
    /// The series' interval.
    pub interval: Interval,
}

impl SyncSource for CandleChanges<'_> {
    fn changes(&self, request: ChangeRequest) -> BoxStream<'_, Result<ChangedRows>> {
        self.store
            .stream_changed_candles(self.symbol, self.interval, request.since)
            .chunks(request.batch_size)
            .map(move |chunk| {
                let candles = chunk.into_iter().collect::<Result<Vec<_>>>()?;
                Ok(ChangedRows {
                    reached: candles.iter().map(|c| c.ingested_at).max(),
                    batches: vec![candle_rows(&request.spec, &candles)],
                })
            })
            .boxed()
    }
}

/// Candles as rows of the `candles` table ([`candles_table`]).
pub fn candle_rows(spec: &Arc<TableSpec>, candles: &[ChangedCandle]) -> RowBatch {
    let text = |f: fn(&ChangedCandle) -> Option<String>| {
        ColumnValues::Text(candles.iter().map(f).collect())
    };
    let decimal = |f: fn(&ChangedCandle) -> Option<rust_decimal::Decimal>| {
        ColumnValues::Decimal(candles.iter().map(f).collect())
    };
    let time = |f: fn(&ChangedCandle) -> DateTime<Utc>| {
        ColumnValues::Timestamp(candles.iter().map(|c| Some(f(c))).collect())
    };
    RowBatch {
        spec: spec.clone(),
        columns: vec![
            text(|c| Some(c.candle.symbol.as_str().to_owned())),
            text(|c| Some(c.candle.interval.as_str().to_owned())),
            time(|c| c.candle.open_time),
            decimal(|c| Some(c.candle.open)),
            decimal(|c| Some(c.candle.high)),
            decimal(|c| Some(c.candle.low)),
            decimal(|c| Some(c.candle.close)),
            decimal(|c| Some(c.candle.volume)),
            decimal(|c| c.candle.quote_volume),
            ColumnValues::BigInt(candles.iter().map(|c| c.candle.trades).collect()),
            decimal(|c| c.candle.taker_buy_base),
            decimal(|c| c.candle.taker_buy_quote),
            time(|c| c.candle.close_time),
            text(|c| Some(c.candle.source.clone())),
            time(|c| c.ingested_at),
        ],
    }
}

/// Syncs the candles of every configured series (pushed, or copied from the lake), adding to
/// `summary`.
pub async fn sync_candles(pipeline: &Pipeline<'_>, summary: &mut RunSummary) -> Result<()> {
    let spec = Arc::new(candles_table());
    pipeline.prepare(&spec).await?;
    let plan = pipeline.plan;
    let unit = match plan.mode {
        SyncMode::Push => SyncedRows::Candles,
        SyncMode::CopyInto => SyncedRows::LakeFiles,
    };
    for (symbol, interval) in plan.series() {
        let result = match plan.mode {
            SyncMode::Push => {
                let table = SyncTable {
                    spec: spec.clone(),
                    watermark: Some(SeriesWatermark {
                        job: CANDLES_WATERMARK.into(),
                        symbol: symbol.clone(),
                        interval,
                        settle: Some(plan.settle),
                    }),
                };
                let store = &pipeline.ctx.store;
                let source = CandleChanges {
                    store,
                    symbol,
                    interval,
                };
                let result = pipeline.merge(&table, &source).await;
                if let Ok(report) = &result {
                    tracing::info!(%symbol, %interval, table = &*spec.name, rows = report.rows, "series synced");
                }
                result
            }
            SyncMode::CopyInto => copy_into_series(pipeline, &spec, symbol, interval).await,
        };
        summary.add_result((symbol, interval), result, unit, &spec.name)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pricecast_shared::domain::Candle;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    fn candle() -> ChangedCandle {
        let d = |s: &str| Decimal::from_str(s).expect("decimal");
        let at = |s: &str| s.parse::<DateTime<Utc>>().expect("time");
        ChangedCandle {
            candle: Candle {
                symbol: "BTCUSDT".parse().expect("symbol"),
                interval: Interval::H1,
                open_time: at("2025-04-28T13:00:00Z"),
                open: d("94000.10000000"),
                high: d("94100.00000000"),
                low: d("93900.00000000"),
                close: d("94050.50000000"),
                volume: d("12.34500000"),
                quote_volume: None,
                trades: Some(1234),
                taker_buy_base: None,
                taker_buy_quote: None,
                close_time: at("2025-04-28T13:59:59.999Z"),
                source: "binance".into(),
            },
            ingested_at: at("2025-04-28T14:00:01.123456Z"),
        }
    }

    #[test]
    fn candles_become_rows_of_the_candles_table() {
        let rows = candle_rows(&Arc::new(candles_table()), &[candle(), candle()]);
        rows.validate().expect("valid batch");
        assert_eq!(rows.rows(), 2);
        assert_eq!(
            rows.columns[1],
            ColumnValues::Text(vec![Some("1h".into()), Some("1h".into())])
        );
        assert_eq!(
            rows.columns[3],
            ColumnValues::Decimal(vec![Some(candle().candle.open); 2])
        );
        assert_eq!(rows.columns[8], ColumnValues::Decimal(vec![None, None]));
        assert_eq!(
            rows.columns[14],
            ColumnValues::Timestamp(vec![Some(candle().ingested_at); 2])
        );
    }

    #[test]
    fn candles_table_is_keyed_by_series_and_open_time() {
        let table = candles_table();
        assert_eq!(table.key, ["symbol", "interval", "open_time"]);
        assert!(
            table
                .key
                .iter()
                .all(|k| table.columns.iter().any(|c| c.name == *k && !c.nullable))
        );
    }
}
