//! Candle and feature files between Parquet and polars frames, through arrow-rs: the lake has
//! one Parquet stack, the one the export writes candles with.
//!
//! A feature file holds the frame's columns as Arrow types: `open_time` a UTC millisecond
//! timestamp, the features and targets `Float64` (null where unknown), `hour` and
//! `day_of_week` `Int32`; every column nullable; zstd at its default level; statistics on.

use arrow::array::{
    Array, ArrayRef, Decimal128Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    RecordBatchReader, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType as ArrowType, Field, Schema, TimeUnit as ArrowTimeUnit};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use polars::prelude::*;
use std::sync::Arc;

use super::frame::{CLOSE, OPEN_TIME, VOLUME};
use crate::error::{Error, Result};

/// Time zone of every timestamp in the lake.
const UTC: &str = "UTC";

fn features_error(operation: &str, message: impl std::fmt::Display) -> Error {
    Error::Features {
        operation: operation.to_owned(),
        message: message.to_string(),
    }
}

/// The record batches of one Parquet file, of the named columns only when `columns` is given.
fn read_batches(
    bytes: Bytes,
    columns: Option<&[&str]>,
    operation: &str,
) -> Result<Vec<RecordBatch>> {
    let error = |e: &dyn std::fmt::Display| features_error(operation, e);
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| error(&e))?;
    if let Some(columns) = columns {
        let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
        builder = builder.with_projection(mask);
    }
    let reader = builder.build().map_err(|e| error(&e))?;
    let schema = reader.schema();
    let mut batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| error(&e))?;
    if batches.is_empty() {
        // A file without rows still says which columns it has.
        batches.push(RecordBatch::new_empty(schema));
    }
    Ok(batches)
}

/// A column of `batches`, downcast to `T`; an error naming the column when it is missing or of
/// another type.
fn arrays<'a, T: Array + 'static>(
    batches: &'a [RecordBatch],
    name: &str,
    operation: &str,
) -> Result<Vec<&'a T>> {
    batches
        .iter()
        .map(|batch| {
            batch
                .column_by_name(name)
                .and_then(|column| column.as_any().downcast_ref::<T>())
                .ok_or_else(|| {
                    features_error(
                        operation,
                        format!(
                            "column {name} is missing or not of the expected type ({})",
                            batch.schema().field_with_name(name).map_or_else(
                                |_| "absent".to_owned(),
                                |f| f.data_type().to_string()
                            )
                        ),
                    )
                })
        })
        .collect()
}

fn utc_datetime(name: &str, millis: Vec<i64>) -> Column {
    Int64Chunked::from_vec(name.into(), millis)
        .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
        .into_column()
}

/// A decimal column of `arrays`, as polars decimals of the files' precision and scale.
fn decimal_column(name: &str, arrays: &[&Decimal128Array], operation: &str) -> Result<Column> {
    let (precision, scale) = match arrays.first().map(|a| a.data_type()) {
        Some(ArrowType::Decimal128(p, s)) => (usize::from(*p), usize::try_from(*s).unwrap_or(0)),
        _ => (38, 0),
    };
    let mut values = Vec::with_capacity(arrays.iter().map(|a| a.len()).sum());
    for array in arrays {
        if !matches!(array.data_type(), ArrowType::Decimal128(p, s) if usize::from(*p) == precision && usize::try_from(*s).ok() == Some(scale))
        {
            return Err(features_error(
                operation,
                format!("column {name} changes its decimal type between files"),
            ));
        }
        if array.null_count() > 0 {
            return Err(features_error(
                operation,
                format!("column {name} has nulls"),
            ));
        }
        values.extend_from_slice(array.values());
    }
    Ok(Int128Chunked::from_vec(name.into(), values)
        .into_decimal_unchecked(precision, scale)
        .into_column())
}

/// Decodes candle files (the export's day files) into one frame of the columns the features
/// read: `open_time` (UTC milliseconds), `close` and `volume` (exact decimals), oldest first as
/// the files are given.
pub fn decode_candles(files: Vec<Bytes>) -> Result<DataFrame> {
    let operation = "decoding candle files";
    let mut batches = Vec::new();
    for bytes in files {
        batches.extend(read_batches(
            bytes,
            Some(&[OPEN_TIME, CLOSE, VOLUME]),
            operation,
        )?);
    }
    let times = arrays::<TimestampMillisecondArray>(&batches, OPEN_TIME, operation)?;
    let mut millis = Vec::with_capacity(times.iter().map(|a| a.len()).sum());
    for array in &times {
        millis.extend_from_slice(array.values());
    }
    let columns = vec![
        utc_datetime(OPEN_TIME, millis),
        decimal_column(CLOSE, &arrays(&batches, CLOSE, operation)?, operation)?,
        decimal_column(VOLUME, &arrays(&batches, VOLUME, operation)?, operation)?,
    ];
    let height = columns[0].len();
    DataFrame::new(height, columns).map_err(|source| Error::Polars {
        operation: operation.to_owned(),
        source,
    })
}

/// Decodes feature files (as [`encode_features`] writes them) into one frame; `None` when
/// there are none.
pub fn decode_features(files: Vec<Bytes>) -> Result<Option<DataFrame>> {
    let operation = "decoding feature files";
    let mut batches = Vec::new();
    for bytes in files {
        batches.extend(read_batches(bytes, None, operation)?);
    }
    let Some(schema) = batches.first().map(RecordBatch::schema) else {
        return Ok(None);
    };
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let name = field.name().as_str();
        let column = match field.data_type() {
            ArrowType::Timestamp(ArrowTimeUnit::Millisecond, _) => {
                let mut millis = Vec::new();
                for array in arrays::<TimestampMillisecondArray>(&batches, name, operation)? {
                    if array.null_count() > 0 {
                        return Err(features_error(
                            operation,
                            format!("column {name} has nulls"),
                        ));
                    }
                    millis.extend_from_slice(array.values());
                }
                utc_datetime(name, millis)
            }
            ArrowType::Float64 => {
                let parts = arrays::<Float64Array>(&batches, name, operation)?;
                Float64Chunked::from_iter_options(name.into(), parts.into_iter().flatten())
                    .into_column()
            }
            ArrowType::Int32 => {
                let parts = arrays::<Int32Array>(&batches, name, operation)?;
                Int32Chunked::from_iter_options(name.into(), parts.into_iter().flatten())
                    .into_column()
            }
            ArrowType::Int64 => {
                let parts = arrays::<Int64Array>(&batches, name, operation)?;
                Int64Chunked::from_iter_options(name.into(), parts.into_iter().flatten())
                    .into_column()
            }
            other => {
                return Err(features_error(
                    operation,
                    format!("column {name} has type {other}, which no feature file holds"),
                ));
            }
        };
        columns.push(column);
    }
    let height = columns.first().map_or(0, Column::len);
    DataFrame::new(height, columns)
        .map(Some)
        .map_err(|source| Error::Polars {
            operation: operation.to_owned(),
            source,
        })
}

/// Encodes a feature frame as Parquet: zstd at its default level, statistics on.
pub fn encode_features(frame: &DataFrame) -> Result<Vec<u8>> {
    let operation = "encoding a feature file";
    let error = |e: &dyn std::fmt::Display| features_error(operation, e);
    let mut fields = Vec::with_capacity(frame.width());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(frame.width());
    for column in frame.columns() {
        let name = column.name().as_str();
        let (data_type, array): (ArrowType, ArrayRef) = match column.dtype() {
            DataType::Datetime(TimeUnit::Milliseconds, _) => {
                let millis = column.datetime().map_err(|e| error(&e))?.physical();
                (
                    ArrowType::Timestamp(ArrowTimeUnit::Millisecond, Some(UTC.into())),
                    Arc::new(
                        TimestampMillisecondArray::from_iter(millis.iter()).with_timezone(UTC),
                    ),
                )
            }
            DataType::Float64 => (
                ArrowType::Float64,
                Arc::new(Float64Array::from_iter(
                    column.f64().map_err(|e| error(&e))?.iter(),
                )),
            ),
            DataType::Int32 => (
                ArrowType::Int32,
                Arc::new(Int32Array::from_iter(
                    column.i32().map_err(|e| error(&e))?.iter(),
                )),
            ),
            DataType::Int64 => (
                ArrowType::Int64,
                Arc::new(Int64Array::from_iter(
                    column.i64().map_err(|e| error(&e))?.iter(),
                )),
            ),
            other => {
                return Err(error(&format!(
                    "column {name} has type {other}, which a feature file cannot hold"
                )));
            }
        };
        fields.push(Field::new(name, data_type, true));
        arrays.push(array);
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| error(&e))?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut out = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut out, schema, Some(properties)).map_err(|e| error(&e))?;
    writer.write(&batch).map_err(|e| error(&e))?;
    writer.close().map_err(|e| error(&e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Candle, Interval};
    use crate::features::spec::{ALL_FEATURES, FeatureSpec};
    use crate::lake::candles::{CandleBatchBuilder, encode_parquet, to_lake_decimal};
    use chrono::DateTime;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    /// Hourly candles with a missing candle every 137 hours.
    fn candles(n: i64) -> Vec<Candle> {
        (0..n)
            .filter(|i| i % 137 != 5)
            .map(|i| {
                let open_ms = 1_699_999_200_000 + i * 3_600_000;
                let close = Decimal::from_str("30000.5").expect("decimal") + Decimal::from(i % 97)
                    - Decimal::new(i % 13, 2);
                Candle {
                    symbol: "BTCUSDT".parse().expect("symbol"),
                    interval: Interval::H1,
                    open_time: DateTime::from_timestamp_millis(open_ms).expect("time"),
                    open: close,
                    high: close + Decimal::ONE,
                    low: close - Decimal::ONE,
                    close,
                    volume: Decimal::new(123_456_789 + i, 8),
                    quote_volume: None,
                    trades: Some(i),
                    taker_buy_base: None,
                    taker_buy_quote: None,
                    close_time: DateTime::from_timestamp_millis(open_ms + 3_599_999).expect("time"),
                    source: "binance".into(),
                }
            })
            .collect()
    }

    fn candle_files(candles: &[Candle]) -> Vec<Bytes> {
        candles
            .chunks(200)
            .map(|chunk| {
                let mut builder =
                    CandleBatchBuilder::new("BTCUSDT".parse().expect("s"), Interval::H1, 200);
                for candle in chunk {
                    builder.push(candle).expect("push");
                }
                let batch = builder.finish().expect("batch");
                Bytes::from(encode_parquet(&[batch]).expect("encode"))
            })
            .collect()
    }

    #[test]
    fn candle_files_decode_to_exact_decimals_in_file_order() {
        let candles = candles(600);
        let frame = decode_candles(candle_files(&candles)).expect("decode");
        assert_eq!(frame.height(), candles.len());
        assert_eq!(
            frame.dtypes(),
            vec![
                DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC)),
                DataType::Decimal(38, 8),
                DataType::Decimal(38, 8),
            ]
        );
        let times = frame.column(OPEN_TIME).expect("open_time");
        let times = times.datetime().expect("datetime").physical();
        let closes = frame
            .column(CLOSE)
            .expect("close")
            .decimal()
            .expect("decimal");
        let volumes = frame
            .column(VOLUME)
            .expect("volume")
            .decimal()
            .expect("decimal");
        for (i, candle) in candles.iter().enumerate() {
            assert_eq!(times.get(i), Some(candle.open_time.timestamp_millis()));
            assert_eq!(closes.physical().get(i), to_lake_decimal(candle.close).ok());
            assert_eq!(
                volumes.physical().get(i),
                to_lake_decimal(candle.volume).ok()
            );
        }
    }

    #[test]
    fn feature_files_read_back_as_written_and_an_empty_one_keeps_its_columns() {
        let names: Vec<&str> = ALL_FEATURES.iter().map(|(name, _)| *name).collect();
        let spec = FeatureSpec::new(&names, vec![1, 4]).expect("spec");
        let candles = decode_candles(candle_files(&candles(600))).expect("decode");
        let frame = crate::features::feature_frame(candles.lazy(), Interval::H1, &spec)
            .collect()
            .expect("frame");
        assert!(frame.height() > 100, "{}", frame.height());
        let file = Bytes::from(encode_features(&frame).expect("encode"));
        let read = decode_features(vec![file.clone(), file])
            .expect("decode")
            .expect("rows");
        assert_eq!(read.schema(), frame.schema());
        assert_eq!(read.height(), 2 * frame.height());
        assert!(read.slice(0, frame.height()).equals_missing(&frame));
        assert!(
            read.slice(frame.height() as i64, frame.height())
                .equals_missing(&frame)
        );

        let empty = Bytes::from(encode_features(&frame.slice(0, 0)).expect("encode"));
        let read = decode_features(vec![empty])
            .expect("decode")
            .expect("columns");
        assert_eq!(read.schema(), frame.schema());
        assert_eq!(read.height(), 0);
        assert!(decode_features(Vec::new()).expect("decode").is_none());
    }

    #[test]
    fn a_column_of_an_unexpected_type_is_named() {
        let frame = DataFrame::new(1, vec![Column::new("label".into(), ["x"])]).expect("frame");
        let error = encode_features(&frame).expect_err("strings are refused");
        assert!(error.to_string().contains("label"), "{error}");
    }
}
