//! `_manifest.json`: what one series has in the lake, so readers need not list the bucket.
//!
//! Written after the partition files it describes, in one PUT, so it never names a file that
//! is not there yet.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::Lake;
use super::candles::{SCHEMA_VERSION, series_dir};
use crate::domain::{Interval, Symbol};
use crate::error::{Error, Result};

/// File name of a series' manifest, in the series folder.
pub const MANIFEST_FILE: &str = "_manifest.json";

/// One day partition as the manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionEntry {
    /// UTC date of the partition.
    pub date: NaiveDate,
    /// The file, relative to the lake root.
    pub path: String,
    /// Rows in the file.
    pub rows: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// Open time of the first candle.
    pub min_open_time: DateTime<Utc>,
    /// Open time of the last candle.
    pub max_open_time: DateTime<Utc>,
}

/// The manifest of one series.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesManifest {
    /// Layout and schema version of the files ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Trading pair.
    pub symbol: String,
    /// Kline interval.
    pub interval: String,
    /// When the manifest was last written.
    pub updated_at: DateTime<Utc>,
    /// Rows over every partition.
    pub rows: u64,
    /// Open time of the first candle in the lake.
    pub min_open_time: Option<DateTime<Utc>>,
    /// Open time of the last candle in the lake.
    pub max_open_time: Option<DateTime<Utc>>,
    /// Every partition, oldest first.
    pub partitions: Vec<PartitionEntry>,
}

impl SeriesManifest {
    /// An empty manifest for a series.
    pub fn empty(symbol: &Symbol, interval: Interval) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            symbol: symbol.to_string(),
            interval: interval.to_string(),
            updated_at: Utc::now(),
            rows: 0,
            min_open_time: None,
            max_open_time: None,
            partitions: Vec::new(),
        }
    }

    /// The manifest's path relative to the lake root.
    pub fn path(symbol: &Symbol, interval: Interval) -> String {
        format!("{}/{MANIFEST_FILE}", series_dir(symbol, interval))
    }

    /// Replaces or adds partitions and recomputes the totals.
    pub fn merge(&mut self, written: &[PartitionEntry], now: DateTime<Utc>) {
        let mut by_date: BTreeMap<NaiveDate, PartitionEntry> =
            self.partitions.drain(..).map(|p| (p.date, p)).collect();
        for entry in written {
            by_date.insert(entry.date, entry.clone());
        }
        self.partitions = by_date.into_values().collect();
        self.rows = self.partitions.iter().map(|p| p.rows).sum();
        self.min_open_time = self.partitions.first().map(|p| p.min_open_time);
        self.max_open_time = self.partitions.last().map(|p| p.max_open_time);
        self.schema_version = SCHEMA_VERSION;
        self.updated_at = now;
    }

    /// Reads a series' manifest; an empty one when there is none yet.
    pub async fn read(lake: &Lake, symbol: &Symbol, interval: Interval) -> Result<Self> {
        let path = Self::path(symbol, interval);
        match lake.get(&path).await? {
            None => Ok(Self::empty(symbol, interval)),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::LakeUnavailable {
                url: lake.url().to_owned(),
                reason: format!(
                    "{path} is not a Pricecast manifest ({e}); delete it and export with --full"
                ),
            }),
        }
    }

    /// Writes the manifest in one PUT.
    pub async fn write(&self, lake: &Lake) -> Result<()> {
        let symbol: Symbol = self
            .symbol
            .parse()
            .map_err(|e: crate::domain::InvalidSymbol| Error::CorruptRow(e.to_string()))?;
        let interval: Interval = self
            .interval
            .parse()
            .map_err(|e: crate::domain::InvalidInterval| Error::CorruptRow(e.to_string()))?;
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::config(format!("cannot render the manifest: {e}")))?;
        lake.put(&Self::path(&symbol, interval), Bytes::from(json))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(day: u32, rows: u64) -> PartitionEntry {
        let date = NaiveDate::from_ymd_opt(2025, 11, day).expect("date");
        let start = date.and_hms_opt(0, 0, 0).expect("time").and_utc();
        PartitionEntry {
            date,
            path: format!(
                "candles/symbol=BTCUSDT/interval=1h/date=2025-11-{day:02}/part-0.parquet"
            ),
            rows,
            bytes: 1000,
            min_open_time: start,
            max_open_time: start + chrono::Duration::hours(rows as i64 - 1),
        }
    }

    #[tokio::test]
    async fn merge_replaces_days_and_round_trips() {
        let symbol: Symbol = "BTCUSDT".parse().expect("symbol");
        let mut manifest = SeriesManifest::empty(&symbol, Interval::H1);
        manifest.merge(&[entry(22, 24), entry(23, 10)], Utc::now());
        manifest.merge(&[entry(23, 24), entry(21, 24)], Utc::now());
        assert_eq!(manifest.rows, 72);
        let dates: Vec<u32> = manifest
            .partitions
            .iter()
            .map(|p| chrono::Datelike::day(&p.date))
            .collect();
        assert_eq!(dates, vec![21, 22, 23]);
        assert_eq!(manifest.min_open_time, Some(entry(21, 24).min_open_time));

        let lake = Lake::in_memory();
        manifest.write(&lake).await.expect("write");
        let read = SeriesManifest::read(&lake, &symbol, Interval::H1)
            .await
            .expect("read");
        assert_eq!(read, manifest);
        let none = SeriesManifest::read(&lake, &symbol, Interval::M1)
            .await
            .expect("read");
        assert!(none.partitions.is_empty());
    }
}
