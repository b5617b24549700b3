//! Binance's public bulk archive (`BINANCE_ARCHIVE_URL`, `https://data.binance.vision`): one
//! zipped CSV of klines per symbol, interval and month, published early in the next month, each
//! with a `.CHECKSUM` file holding its SHA-256. A backfill takes one download per month from it
//! instead of one REST request per 1000 candles, and spends none of the REST API's request
//! weight.
//!
//! Layout: `{base}/data/spot/monthly/klines/{SYMBOL}/{interval}/{SYMBOL}-{interval}-{YYYY}-{MM}.zip`
//! beside `….zip.CHECKSUM`, whose text is `<sha256 hex>  <file name>`. A file is read only
//! after its checksum matches, and its candles go through the REST pages' parsing and
//! validation; a file that fails any of this is an error naming it, and nothing of it is kept.

use std::fmt;
use std::io::Read;

use chrono::{Datelike, TimeZone, Utc};
use pricecast_shared::domain::{Candle, CandleSource, Interval, Symbol};
use pricecast_shared::settings::with_trailing_slash;
use pricecast_shared::{Error, Result};
use sha2::{Digest, Sha256};
use url::Url;

use crate::client::BinanceClient;
use crate::kline;

/// A calendar month, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Month {
    /// Year, e.g. 2024.
    pub year: i32,
    /// Month of the year, 1–12.
    pub month: u32,
}

impl Month {
    /// The month holding `t_ms` (milliseconds since the epoch).
    pub fn containing(t_ms: i64) -> Self {
        let t = Utc.timestamp_millis_opt(t_ms).single().unwrap_or_default();
        Self {
            year: t.year(),
            month: t.month(),
        }
    }

    /// Its first millisecond.
    pub fn start_ms(self) -> i64 {
        Utc.with_ymd_and_hms(self.year, self.month, 1, 0, 0, 0)
            .single()
            .map_or(i64::MAX, |t| t.timestamp_millis())
    }

    /// The month after it.
    pub fn next(self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                year: self.year,
                month: self.month + 1,
            }
        }
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// The bulk archive, downloaded through a [`BinanceClient`] (same timeouts and retries).
#[derive(Clone, Debug)]
pub struct BulkArchive {
    client: BinanceClient,
    base_url: Url,
}

impl BulkArchive {
    /// The archive at `base_url` (`https://data.binance.vision`).
    pub fn new(client: BinanceClient, base_url: Url) -> Self {
        Self {
            client,
            base_url: with_trailing_slash(base_url),
        }
    }

    /// The archive's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// Whether the archive has monthly files for `interval`: every interval but `1M` (one
    /// candle a month, which one REST request covers for decades).
    pub fn covers(interval: Interval) -> bool {
        interval != Interval::Mo1
    }

    /// URL of the monthly file of one series.
    pub fn month_url(&self, symbol: &Symbol, interval: Interval, month: Month) -> Result<Url> {
        let path = format!(
            "data/spot/monthly/klines/{symbol}/{interval}/{symbol}-{interval}-{month}.zip",
            symbol = symbol.as_str(),
            interval = interval.as_str(),
        );
        self.base_url
            .join(&path)
            .map_err(|e| Error::config(format!("BINANCE_ARCHIVE_URL cannot take a path: {e}")))
    }

    /// The closed candles of one month, checked against the file's checksum and validated,
    /// oldest first; `None` when the archive has no file for that month (not published yet,
    /// or before the symbol was listed).
    pub async fn month(
        &self,
        symbol: &Symbol,
        interval: Interval,
        month: Month,
    ) -> Result<Option<Vec<Candle>>> {
        let url = self.month_url(symbol, interval, month)?;
        let failed = |detail: String| Error::Archive {
            file: url.to_string(),
            detail,
        };
        let Some(zipped) = self.client.download(url.clone()).await? else {
            return Ok(None);
        };
        let checksum_url = Url::parse(&format!("{url}.CHECKSUM"))
            .map_err(|e| failed(format!("no URL for its checksum: {e}")))?;
        let Some(checksum) = self.client.download(checksum_url).await? else {
            return Err(failed(
                "no .CHECKSUM file beside it, so it cannot be verified; nothing of it was stored"
                    .to_owned(),
            ));
        };
        verify_checksum(&zipped, &checksum).map_err(&failed)?;
        let csv = unzip_single_file(&zipped).map_err(&failed)?;
        let source = CandleSource::BinanceArchive.as_str();
        let candles = kline::parse_csv(&csv, symbol, interval, source)
            .and_then(|candles| kline::validate_page(&candles).map(|()| candles))
            .map_err(|e| failed(e.to_string()))?;
        let (start, end) = (month.start_ms(), month.next().start_ms());
        if let Some(stray) = candles.iter().find(|c| {
            let t = c.open_time.timestamp_millis();
            t < start || t >= end
        }) {
            return Err(failed(format!(
                "holds a candle opening at {}, outside {month}",
                stray.open_time.to_rfc3339()
            )));
        }
        Ok(Some(kline::closed_only(candles, Utc::now())))
    }
}

/// Checks `file` against the text of its `.CHECKSUM` file (`<sha256 hex>  <name>`).
pub fn verify_checksum(file: &[u8], checksum: &[u8]) -> std::result::Result<(), String> {
    let expected = std::str::from_utf8(checksum)
        .ok()
        .and_then(|text| text.split_whitespace().next())
        .filter(|hex| hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()))
        .ok_or_else(|| {
            let preview: String = String::from_utf8_lossy(checksum).chars().take(80).collect();
            format!("its .CHECKSUM does not start with a SHA-256 in hex: {preview:?}")
        })?
        .to_ascii_lowercase();
    let actual = format!("{:x}", Sha256::digest(file));
    if actual == expected {
        Ok(())
    } else {
        Err(format!(
            "its SHA-256 is {actual} but its .CHECKSUM says {expected}: the download is corrupt \
             or the file changed; nothing of it was stored"
        ))
    }
}

/// The one file inside an archive zip (a CSV).
pub fn unzip_single_file(zipped: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zipped))
        .map_err(|e| format!("not a readable zip file: {e}"))?;
    if archive.len() != 1 {
        return Err(format!("holds {} files, expected one CSV", archive.len()));
    }
    let mut file = archive
        .by_index(0)
        .map_err(|e| format!("cannot open the CSV inside: {e}"))?;
    let mut csv = Vec::with_capacity(usize::try_from(file.size()).unwrap_or(0));
    file.read_to_end(&mut csv)
        .map_err(|e| format!("cannot unzip the CSV inside: {e}"))?;
    Ok(csv)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn zipped(files: &[(&str, &str)]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, text) in files {
            writer
                .start_file(*name, zip::write::SimpleFileOptions::default())
                .expect("start");
            writer.write_all(text.as_bytes()).expect("write");
        }
        writer.finish().expect("finish").into_inner()
    }

    #[test]
    fn months_step_across_years_and_name_files() {
        let december = Month::containing(1_703_980_800_000); // 2023-12-31 00:00 UTC
        assert_eq!(december.to_string(), "2023-12");
        assert_eq!(december.next().to_string(), "2024-01");
        assert_eq!(december.next().start_ms(), 1_704_067_200_000);
        assert!(december < december.next());
        let client = BinanceClient::new(crate::client::BinanceConfig {
            base_url: Url::parse("http://127.0.0.1:1/").expect("url"),
            request_timeout: std::time::Duration::from_secs(1),
            retry: crate::client::RetryPolicy::default(),
            weight_limit: 6000,
        })
        .expect("client");
        let archive = BulkArchive::new(
            client,
            Url::parse("https://example.test/mirror").expect("url"),
        );
        let url = archive
            .month_url(&"BTCUSDT".parse().expect("symbol"), Interval::H1, december)
            .expect("url");
        assert_eq!(
            url.as_str(),
            "https://example.test/mirror/data/spot/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2023-12.zip"
        );
        assert!(!BulkArchive::covers(Interval::Mo1) && BulkArchive::covers(Interval::M1));
    }

    #[test]
    fn checksums_are_verified() {
        let file = b"hello";
        let good = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824  hello.zip\n";
        assert_eq!(verify_checksum(file, good.as_bytes()), Ok(()));
        assert_eq!(
            verify_checksum(file, good.to_uppercase().as_bytes()),
            Ok(())
        );
        let changed = verify_checksum(b"hellO", good.as_bytes()).expect_err("mismatch");
        assert!(changed.contains("nothing of it was stored"), "{changed}");
        let garbage = verify_checksum(file, b"<html>not found</html>").expect_err("garbage");
        assert!(
            garbage.contains("does not start with a SHA-256"),
            "{garbage}"
        );
    }

    #[test]
    fn the_single_csv_is_unzipped_and_anything_else_refused() {
        let one = zipped(&[("BTCUSDT-1h-2024-01.csv", "a,b\n")]);
        assert_eq!(unzip_single_file(&one).expect("csv"), b"a,b\n");
        let two = zipped(&[("a.csv", "1"), ("b.csv", "2")]);
        assert!(
            unzip_single_file(&two)
                .expect_err("two")
                .contains("holds 2 files")
        );
        assert!(
            unzip_single_file(b"PK not really")
                .expect_err("bad")
                .contains("not a readable zip")
        );
    }
}
