//! What a sync run records in `job_runs`: the rows merged, and one part of the detail per table
//! or series, separated by `; `.

use std::fmt::Write as _;

use pricecast_shared::domain::{Interval, Symbol};
use pricecast_shared::runner::JobSummary;

use super::SeriesReport;

/// The summary of one run, built table by table.
#[derive(Clone, Debug)]
pub struct RunSummary {
    rows: i64,
    parts: Vec<String>,
    target: String,
}

impl RunSummary {
    /// An empty summary of a run into `target`, the warehouse as messages name it (its redacted
    /// connection string).
    pub fn new(target: String) -> Self {
        Self {
            rows: 0,
            parts: Vec::new(),
            target,
        }
    }

    /// The warehouse, as the summary names it.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Counts `rows` and adds a part to the detail.
    pub fn add(&mut self, rows: u64, part: String) {
        self.rows += rows as i64;
        self.parts.push(part);
    }

    /// Adds one series, as in `BTCUSDT 1h: 10 rows merged into candles on <target>, watermark
    /// <time>`: `merged` says what its rows are, `position` what its watermark is.
    pub fn add_series(
        &mut self,
        (symbol, interval): (&Symbol, Interval),
        report: &SeriesReport,
        merged: &str,
        table: &str,
        position: &str,
    ) {
        let mut part = format!(
            "{symbol} {interval}: {} {merged} into {table} on {}",
            report.rows, self.target
        );
        if let Some(watermark) = report.watermark {
            // Writing to a String cannot fail.
            let _ = write!(part, ", {position} {}", watermark.to_rfc3339());
        }
        self.add(report.rows, part);
    }

    /// The job's summary.
    pub fn finish(self) -> JobSummary {
        JobSummary {
            rows: self.rows,
            detail: self.parts.join("; "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_joined_and_rows_counted() {
        let mut summary = RunSummary::new("Driver=x;Pwd=***".into());
        let btc = "BTCUSDT".parse().expect("symbol");
        let report = SeriesReport {
            rows: 3,
            since: None,
            watermark: "2025-04-28T14:00:00Z".parse().ok(),
        };
        summary.add_series(
            (&btc, Interval::H1),
            &report,
            "rows merged",
            "candles",
            "watermark",
        );
        summary.add(2, format!("model runs on {}", summary.target()));
        let done = summary.finish();
        assert_eq!(done.rows, 5);
        assert_eq!(
            done.detail,
            "BTCUSDT 1h: 3 rows merged into candles on Driver=x;Pwd=***, watermark \
             2025-04-28T14:00:00+00:00; model runs on Driver=x;Pwd=***"
        );
    }
}
