//! What a sync run records in `job_runs`: one report item per series of each table, and one for
//! the model runs.

use pricecast_shared::domain::{Interval, Symbol};
use pricecast_shared::report::{
    ItemReport, JobReport, SyncModelRunsWork, SyncSeriesWork, SyncedRows, Work,
};

use super::SeriesReport;

/// The report of one run, built table by table.
#[derive(Clone, Debug)]
pub struct RunSummary {
    report: JobReport,
    target: String,
}

impl RunSummary {
    /// An empty summary of a run into `target`, the warehouse as messages name it (its redacted
    /// connection string).
    pub fn new(target: String) -> Self {
        Self {
            report: JobReport::default(),
            target,
        }
    }

    /// The warehouse, as the summary names it.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Adds the model runs of one experiment.
    pub fn add_model_runs(&mut self, work: SyncModelRunsWork) {
        self.report.push(ItemReport {
            series: None,
            work: Work::SyncModelRuns(work),
        });
    }

    /// Adds one series of `table`, whose rows are `unit`.
    pub fn add_series(
        &mut self,
        (symbol, interval): (&Symbol, Interval),
        report: &SeriesReport,
        unit: SyncedRows,
        table: &str,
    ) {
        self.report.push(ItemReport::series(
            symbol,
            interval,
            SyncSeriesWork {
                table: table.to_owned(),
                target: self.target.clone(),
                unit,
                rows: report.rows,
                watermark: report.watermark,
            },
        ));
    }

    /// The job's report.
    pub fn finish(self) -> JobReport {
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_keep_their_table_unit_and_target() {
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
            SyncedRows::Candles,
            "candles",
        );
        summary.add_series(
            (&btc, Interval::H1),
            &report,
            SyncedRows::FeatureRows,
            "features",
        );
        let done = summary.finish();
        assert_eq!(done.rows(), 6);
        assert_eq!(
            done.detail(),
            "BTCUSDT 1h: 3 rows merged into candles on Driver=x;Pwd=***, watermark \
             2025-04-28T14:00:00+00:00; BTCUSDT 1h: 3 feature rows merged into features on \
             Driver=x;Pwd=***, newest feature row 2025-04-28T14:00:00+00:00"
        );
        let Work::SyncSeries(work) = &done.items[1].work else {
            panic!("a series item, got {:?}", done.items[1].work);
        };
        assert_eq!(work.unit, SyncedRows::FeatureRows);
        assert_eq!(work.target, "Driver=x;Pwd=***");
    }
}
