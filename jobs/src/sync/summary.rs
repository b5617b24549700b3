//! What a sync run records in `job_runs`: one report item per series of each table, and one for
//! the model runs.

use pricecast_shared::domain::{Interval, Symbol};
use pricecast_shared::error::{Error, Result};
use pricecast_shared::report::{
    ItemReport, JobReport, SyncModelRunsWork, SyncSeriesWork, SyncedRows, Work,
};
use pricecast_shared::series::SeriesRun;

use super::SeriesReport;

/// The report of one run, built table by table.
#[derive(Debug)]
pub struct RunSummary {
    run: SeriesRun,
    target: String,
}

impl RunSummary {
    /// An empty summary of a run into `target`, the warehouse as messages name it (its redacted
    /// connection string).
    pub fn new(target: String) -> Self {
        Self {
            run: SeriesRun::default(),
            target,
        }
    }

    /// The warehouse, as the summary names it.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Adds the model runs of one experiment.
    pub fn add_model_runs(&mut self, work: SyncModelRunsWork) {
        self.run.report.push(ItemReport {
            series: None,
            work: Some(Work::SyncModelRuns(work)),
            error: None,
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
        self.run.total += 1;
        let work = self.work(report, unit, table);
        self.run
            .report
            .push(ItemReport::series(symbol, interval, work));
    }

    /// One series' rows of `table`, as the report keeps them.
    fn work(&self, report: &SeriesReport, unit: SyncedRows, table: &str) -> Work {
        Work::SyncSeries(SyncSeriesWork {
            table: table.to_owned(),
            target: self.target.clone(),
            unit,
            rows: report.rows,
            watermark: report.watermark,
        })
    }

    /// Adds what syncing one series gave: its rows, or its failure (the other series go on).
    /// A shutdown stops the run.
    pub fn add_result(
        &mut self,
        (symbol, interval): (&Symbol, Interval),
        result: Result<SeriesReport>,
        unit: SyncedRows,
        table: &str,
    ) -> Result<()> {
        let work = result.map(|report| self.work(&report, unit, table));
        self.run.total += 1;
        self.run.record(symbol.clone(), interval, work);
        if self.run.cancelled {
            return Err(Error::Cancelled);
        }
        Ok(())
    }

    /// The job's report, or the failure naming every series that failed.
    pub fn finish(self) -> Result<JobReport> {
        self.run.finish()
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
        let done = summary.finish().expect("nothing failed");
        assert_eq!(done.rows(), 6);
        assert_eq!(
            done.detail(),
            "BTCUSDT 1h: 3 rows merged into candles on Driver=x;Pwd=***, watermark \
             2025-04-28T14:00:00+00:00; BTCUSDT 1h: 3 feature rows merged into features on \
             Driver=x;Pwd=***, newest feature row 2025-04-28T14:00:00+00:00"
        );
        let Some(Work::SyncSeries(work)) = &done.items[1].work else {
            panic!("a series item, got {:?}", done.items[1].work);
        };
        assert_eq!(work.unit, SyncedRows::FeatureRows);
        assert_eq!(work.target, "Driver=x;Pwd=***");
    }
}
