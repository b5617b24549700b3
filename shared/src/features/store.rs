//! Feature frames in the lake, beside the candles they are built from:
//!
//! ```text
//! features/symbol=BTCUSDT/interval=1h/date=2025-04-27/part-0.parquet
//! features/symbol=BTCUSDT/interval=1h/_manifest.json
//! ```
//!
//! One file per UTC day holding a candle (a day whose rows all lack history has an empty file),
//! with the columns of [`feature_frame`]: `open_time` (timestamp ms, UTC), `close`, the
//! features and the targets, Float64 except `hour` and `day_of_week` (int32); zstd. Each file
//! is written in one PUT, so a reader sees the old file or the new one. The manifest, written
//! after the files, records the definition (version, feature names, horizons and their hash),
//! and for every day its rows, time range, the hash it was built with and the candle files it
//! was built from (date, rows, size, time range and the object's version): a day is rebuilt
//! exactly when one of those changed, or the definition did.
//!
//! Which candle days a feature day reads: its own, the days its first rows' history reaches
//! back into (49 candles for `ma_50`: 3 days of 1h candles, under 1 day of 1m) and the days its
//! last rows' targets reach forward into. So a changed candle day `D` rebuilds the feature days
//! from `D − lookahead` (their targets) to `D + lookback` (their history), and nothing else.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::frame::{OPEN_TIME, feature_frame};
pub use super::parquet::{decode_candles, decode_features, encode_features};
use super::spec::{FEATURE_SET_VERSION, FeatureSpec};
use crate::domain::{Interval, Symbol};
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::lake::candles::{PART_FILE, series_dir};
use crate::lake::manifest::{MANIFEST_FILE, SeriesManifest};

/// Folder of every feature file.
pub const FEATURES_DIR: &str = "features";
/// Milliseconds in a UTC day (partitions are UTC days).
const MS_PER_DAY: i64 = 86_400_000;
/// The longest `1M` candle, for how many days a month of history spans.
const LONGEST_MONTH_MS: i64 = 31 * MS_PER_DAY;

/// The folder of one series' features: `features/symbol=BTCUSDT/interval=1m`.
pub fn feature_series_dir(symbol: &Symbol, interval: Interval) -> String {
    format!("{FEATURES_DIR}/symbol={symbol}/interval={interval}")
}

/// The file of one day's features, relative to the lake root.
pub fn feature_partition_path(symbol: &Symbol, interval: Interval, date: NaiveDate) -> String {
    format!(
        "{}/date={}/{PART_FILE}",
        feature_series_dir(symbol, interval),
        date.format("%Y-%m-%d")
    )
}

/// One candle file as a feature day saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePartition {
    /// UTC date of the candle file.
    pub date: NaiveDate,
    /// Candles in it.
    pub rows: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// Open time of its first candle.
    pub min_open_time: DateTime<Utc>,
    /// Open time of its last candle.
    pub max_open_time: DateTime<Utc>,
    /// The object's version in the store (ETag, or last-modified time when the store has
    /// none): changes whenever the export rewrites the file with other content.
    pub version: String,
}

/// One day of features as the manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeaturePartition {
    /// UTC date.
    pub date: NaiveDate,
    /// The file, relative to the lake root.
    pub path: String,
    /// Feature rows in the file.
    pub rows: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// Open time of the first row, if any.
    pub min_open_time: Option<DateTime<Utc>>,
    /// Open time of the last row, if any.
    pub max_open_time: Option<DateTime<Utc>>,
    /// [`FeatureSpec::hash`] of the definition the file was built with.
    pub feature_set_hash: String,
    /// The candle files it was built from, oldest first.
    pub sources: Vec<SourcePartition>,
}

/// The feature manifest of one series.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureManifest {
    /// [`FEATURE_SET_VERSION`] of the definition.
    pub definition_version: u32,
    /// [`FeatureSpec::hash`] of the feature set.
    pub feature_set_hash: String,
    /// Trading pair.
    pub symbol: String,
    /// Kline interval.
    pub interval: String,
    /// Feature columns, in order.
    pub features: Vec<String>,
    /// Target horizons in candles.
    pub horizons: Vec<u32>,
    /// Target columns, one per horizon.
    pub targets: Vec<String>,
    /// Candles of history a row needs.
    pub history: usize,
    /// When the manifest was last written.
    pub updated_at: DateTime<Utc>,
    /// Feature rows over every partition.
    pub rows: u64,
    /// Open time of the first feature row.
    pub min_open_time: Option<DateTime<Utc>>,
    /// Open time of the last feature row.
    pub max_open_time: Option<DateTime<Utc>>,
    /// Every day, oldest first.
    pub partitions: Vec<FeaturePartition>,
}

impl FeatureManifest {
    /// An empty manifest for a series and feature set.
    pub fn new(symbol: &Symbol, interval: Interval, spec: &FeatureSpec) -> Self {
        Self {
            definition_version: FEATURE_SET_VERSION,
            feature_set_hash: spec.hash(),
            symbol: symbol.to_string(),
            interval: interval.to_string(),
            features: spec.features.clone(),
            horizons: spec.horizons.clone(),
            targets: spec.target_names(),
            history: spec.history(),
            updated_at: Utc::now(),
            rows: 0,
            min_open_time: None,
            max_open_time: None,
            partitions: Vec::new(),
        }
    }

    /// The manifest's path relative to the lake root.
    pub fn path(symbol: &Symbol, interval: Interval) -> String {
        format!("{}/{MANIFEST_FILE}", feature_series_dir(symbol, interval))
    }

    /// The feature set it describes.
    pub fn spec(&self) -> FeatureSpec {
        FeatureSpec {
            horizons: self.horizons.clone(),
            features: self.features.clone(),
        }
    }

    /// Reads a series' feature manifest; `None` when there is none yet.
    pub async fn read(lake: &Lake, symbol: &Symbol, interval: Interval) -> Result<Option<Self>> {
        let path = Self::path(symbol, interval);
        match lake.get(&path).await? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Features {
                    operation: format!("reading {path}"),
                    message: format!(
                        "not a Pricecast feature manifest ({e}); run pricecast-features --full"
                    ),
                }),
        }
    }

    /// Replaces or adds partitions, takes the definition of `spec` and recomputes the totals.
    pub fn merge(&mut self, spec: &FeatureSpec, written: &[FeaturePartition], now: DateTime<Utc>) {
        let mut by_date: BTreeMap<NaiveDate, FeaturePartition> =
            self.partitions.drain(..).map(|p| (p.date, p)).collect();
        for entry in written {
            by_date.insert(entry.date, entry.clone());
        }
        self.partitions = by_date.into_values().collect();
        self.definition_version = FEATURE_SET_VERSION;
        self.feature_set_hash = spec.hash();
        self.features = spec.features.clone();
        self.horizons = spec.horizons.clone();
        self.targets = spec.target_names();
        self.history = spec.history();
        self.rows = self.partitions.iter().map(|p| p.rows).sum();
        self.min_open_time = self.partitions.iter().find_map(|p| p.min_open_time);
        self.max_open_time = self.partitions.iter().rev().find_map(|p| p.max_open_time);
        self.updated_at = now;
    }

    /// Writes the manifest in one PUT.
    pub async fn write(&self, lake: &Lake, symbol: &Symbol, interval: Interval) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::Features {
            operation: "rendering the feature manifest".to_owned(),
            message: e.to_string(),
        })?;
        lake.put(&Self::path(symbol, interval), Bytes::from(json))
            .await
    }
}

/// The candle files of a series, by date, as the candle manifest lists them, each with its
/// object version. An error telling to run `pricecast-export` when there are none.
pub async fn candle_sources(
    lake: &Lake,
    symbol: &Symbol,
    interval: Interval,
) -> Result<BTreeMap<NaiveDate, SourcePartition>> {
    let manifest = SeriesManifest::read(lake, symbol, interval).await?;
    if manifest.partitions.is_empty() {
        return Err(Error::Features {
            operation: format!("building features of {symbol} {interval}"),
            message: format!(
                "the lake {} has no candles for {symbol} {interval} ({} lists none); run pricecast-export for this series first",
                lake.url(),
                SeriesManifest::path(symbol, interval)
            ),
        });
    }
    let versions: BTreeMap<String, String> = lake
        .list(&series_dir(symbol, interval))
        .await?
        .into_iter()
        .map(|meta| {
            let version = meta
                .e_tag
                .unwrap_or_else(|| meta.last_modified.timestamp_micros().to_string());
            (lake.relative(&meta.location).to_owned(), version)
        })
        .collect();
    Ok(manifest
        .partitions
        .into_iter()
        .map(|p| {
            let source = SourcePartition {
                date: p.date,
                rows: p.rows,
                bytes: p.bytes,
                min_open_time: p.min_open_time,
                max_open_time: p.max_open_time,
                version: versions.get(&p.path).cloned().unwrap_or_default(),
            };
            (p.date, source)
        })
        .collect())
}

/// Days before and after a feature day whose candles it reads: `(back, ahead)`.
pub fn input_reach(spec: &FeatureSpec, interval: Interval) -> (i64, i64) {
    let length = match interval {
        Interval::Mo1 => LONGEST_MONTH_MS,
        other => other.duration_ms(),
    };
    let days = |candles: usize| (candles as i64 * length + MS_PER_DAY - 1) / MS_PER_DAY;
    (days(spec.history()), days(spec.lookahead()))
}

/// The candle files a feature day is built from.
pub fn inputs_of(
    date: NaiveDate,
    sources: &BTreeMap<NaiveDate, SourcePartition>,
    reach: (i64, i64),
) -> Vec<SourcePartition> {
    let from = date - chrono::Duration::days(reach.0);
    let to = date + chrono::Duration::days(reach.1);
    sources.range(from..=to).map(|(_, s)| s.clone()).collect()
}

/// The feature days to rebuild, oldest first: every candle day when `full` or when the
/// definition changed, else those never built, built with another definition, or whose
/// candle inputs changed since.
pub fn due_days(
    sources: &BTreeMap<NaiveDate, SourcePartition>,
    manifest: Option<&FeatureManifest>,
    spec: &FeatureSpec,
    interval: Interval,
    full: bool,
) -> Vec<NaiveDate> {
    let hash = spec.hash();
    let reach = input_reach(spec, interval);
    let built: BTreeMap<NaiveDate, &FeaturePartition> = manifest
        .filter(|m| !full && m.feature_set_hash == hash)
        .map(|m| m.partitions.iter().map(|p| (p.date, p)).collect())
        .unwrap_or_default();
    sources
        .keys()
        .filter(|&&date| match built.get(&date) {
            Some(entry) => {
                entry.feature_set_hash != hash || entry.sources != inputs_of(date, sources, reach)
            }
            None => true,
        })
        .copied()
        .collect()
}

/// The candle files of these days, as the store returns them (decode them with
/// [`decode_candles`], off the async runtime).
pub async fn read_candle_days(
    lake: &Lake,
    symbol: &Symbol,
    interval: Interval,
    dates: &[NaiveDate],
) -> Result<Vec<Bytes>> {
    let mut files = Vec::with_capacity(dates.len());
    for &date in dates {
        let partition = crate::lake::candles::CandlePartition {
            symbol: symbol.clone(),
            interval,
            date,
        };
        let path = partition.path();
        let bytes = lake.get(&path).await?.ok_or_else(|| Error::Features {
            operation: format!("reading the candles of {symbol} {interval}"),
            message: format!(
                "{path} is listed in the candle manifest but missing; run pricecast-export --full"
            ),
        })?;
        files.push(bytes);
    }
    Ok(files)
}

/// One day of features, encoded and ready to write.
#[derive(Clone, Debug)]
pub struct BuiltPartition {
    /// UTC date.
    pub date: NaiveDate,
    /// The Parquet file.
    pub parquet: Bytes,
    /// Feature rows in it.
    pub rows: u64,
    /// Open time of the first row, if any.
    pub min_open_time: Option<DateTime<Utc>>,
    /// Open time of the last row, if any.
    pub max_open_time: Option<DateTime<Utc>>,
}

/// Computes the features of `candles` (which must reach far enough around the days, see
/// [`input_reach`]) and encodes the rows of each of `days` as a Parquet file. CPU-bound: run
/// it off the async runtime.
pub fn build_partitions(
    candles: DataFrame,
    interval: Interval,
    spec: &FeatureSpec,
    days: &[NaiveDate],
) -> Result<Vec<BuiltPartition>> {
    let error = |source: PolarsError| Error::Polars {
        operation: format!("computing features ({interval})"),
        source,
    };
    let frame = feature_frame(candles.lazy(), interval, spec)
        .collect()
        .map_err(error)?;
    let times: Vec<i64> = frame
        .column(OPEN_TIME)
        .map_err(error)?
        .cast(&DataType::Int64)
        .map_err(error)?
        .i64()
        .map_err(error)?
        .iter()
        .map(|t| t.unwrap_or_default())
        .collect();
    let time = |ms: i64| DateTime::from_timestamp_millis(ms);
    days.iter()
        .map(|&date| {
            let start = date
                .and_time(chrono::NaiveTime::MIN)
                .and_utc()
                .timestamp_millis();
            let first = times.partition_point(|&t| t < start);
            let end = times.partition_point(|&t| t < start + MS_PER_DAY);
            let day = frame.slice(first as i64, end - first);
            let parquet = encode_features(&day)?;
            Ok(BuiltPartition {
                date,
                parquet: Bytes::from(parquet),
                rows: (end - first) as u64,
                min_open_time: (end > first).then(|| time(times[first])).flatten(),
                max_open_time: (end > first).then(|| time(times[end - 1])).flatten(),
            })
        })
        .collect()
}

/// A series' whole feature frame from the lake, oldest first, with its manifest. An error
/// telling to run `pricecast-features` when there is none, or when a rebuild is unfinished.
pub async fn read_feature_frame(
    lake: &Lake,
    symbol: &Symbol,
    interval: Interval,
) -> Result<(FeatureManifest, DataFrame)> {
    let operation = || format!("reading the features of {symbol} {interval}");
    let Some(manifest) = FeatureManifest::read(lake, symbol, interval).await? else {
        return Err(Error::Features {
            operation: operation(),
            message: format!(
                "the lake {} has no features for {symbol} {interval}; run pricecast-features for this series first",
                lake.url()
            ),
        });
    };
    if let Some(stale) = manifest
        .partitions
        .iter()
        .find(|p| p.feature_set_hash != manifest.feature_set_hash)
    {
        return Err(Error::Features {
            operation: operation(),
            message: format!(
                "{} was built with another feature definition (an interrupted rebuild); run pricecast-features again",
                stale.path
            ),
        });
    }
    let files = read_feature_files(lake, &manifest.partitions).await?;
    let Some(frame) = decode_features(files)? else {
        return Err(Error::Features {
            operation: operation(),
            message: format!(
                "no feature rows yet: a row needs {} consecutive candles before it",
                manifest.history
            ),
        });
    };
    Ok((manifest, frame))
}

/// The files of these feature days that hold rows, oldest first, as the store returns them
/// (decode them with [`decode_features`], off the async runtime). An error telling to rebuild
/// when a listed file is missing.
pub async fn read_feature_files(
    lake: &Lake,
    partitions: &[FeaturePartition],
) -> Result<Vec<Bytes>> {
    let mut files = Vec::with_capacity(partitions.len());
    for partition in partitions.iter().filter(|p| p.rows > 0) {
        let bytes = lake.get(&partition.path).await?.ok_or_else(|| Error::Features {
            operation: format!("reading {}", partition.path),
            message: format!(
                "{} is listed in the feature manifest but missing; run pricecast-features --full",
                partition.path
            ),
        })?;
        files.push(bytes);
    }
    Ok(files)
}
