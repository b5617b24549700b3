//! `pricecast status`: the last run of each job, the freshness of each series and its gaps.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use pricecast_shared::Result;
use pricecast_shared::domain::{Interval, Symbol};
use pricecast_shared::store::{Gap, JobRun, SeriesSummary, Store};
use serde::Serialize;

/// Gaps listed per series in the text report (the JSON report has all of them).
const GAPS_SHOWN: usize = 5;

/// Everything `pricecast status` reports.
#[derive(Clone, Debug, Serialize)]
pub struct StatusReport {
    /// When the report was made.
    pub generated_at: DateTime<Utc>,
    /// Database backend.
    pub backend: String,
    /// Newest run of each job.
    pub jobs: Vec<JobRun>,
    /// Each stored series with its freshness and gaps.
    pub series: Vec<SeriesStatus>,
}

/// Freshness and gaps of one series.
#[derive(Clone, Debug, Serialize)]
pub struct SeriesStatus {
    /// Size and range.
    #[serde(flatten)]
    pub summary: SeriesSummary,
    /// Seconds since the newest candle closed.
    pub age_s: i64,
    /// Whether the newest candle is the latest one that could have closed by now.
    pub fresh: bool,
    /// Missing ranges.
    pub gaps: Vec<Gap>,
}

/// Builds the report from the store.
pub async fn report(store: &Store, now: DateTime<Utc>) -> Result<StatusReport> {
    let jobs = store.last_run_per_job().await?;
    let mut series = Vec::new();
    for summary in store.series().await? {
        let (Ok(symbol), Ok(interval)) = (
            summary.symbol.parse::<Symbol>(),
            summary.interval.parse::<Interval>(),
        ) else {
            continue;
        };
        let gaps = store.gaps(&symbol, interval).await?;
        let last_ms = summary.last_open_time.timestamp_millis();
        let closed_at_ms = interval.next_open(last_ms);
        let age_s = (now.timestamp_millis() - closed_at_ms) / 1000;
        // Fresh when no further candle has closed since the newest stored one.
        let fresh = interval.next_open(closed_at_ms) > now.timestamp_millis();
        series.push(SeriesStatus {
            summary,
            age_s,
            fresh,
            gaps,
        });
    }
    Ok(StatusReport {
        generated_at: now,
        backend: store.backend().to_owned(),
        jobs,
        series,
    })
}

/// Renders the report for a terminal.
pub fn render_text(report: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Pricecast status ({} database)", report.backend);
    let _ = writeln!(out, "\nJobs (last run):");
    if report.jobs.is_empty() {
        let _ = writeln!(out, "  no job has run yet");
    }
    for run in &report.jobs {
        let _ = writeln!(
            out,
            "  {:<10} {:<10} started {}  rows {:>9}  {}",
            run.job,
            run.status.as_str(),
            run.started_at.format("%Y-%m-%d %H:%M:%S"),
            run.rows,
            run.error
                .as_deref()
                .or(run.detail.as_deref())
                .unwrap_or_default()
        );
    }
    let _ = writeln!(out, "\nSeries:");
    if report.series.is_empty() {
        let _ = writeln!(out, "  no candles stored yet: run pricecast-collect");
    }
    for s in &report.series {
        let open_gaps = s.gaps.iter().filter(|g| !g.known_exchange_gap).count();
        let _ = writeln!(
            out,
            "  {:<10} {:<4} {:>9} candles  {} .. {}  {}  gaps: {} open, {} known exchange gaps",
            s.summary.symbol,
            s.summary.interval,
            s.summary.candles,
            s.summary.first_open_time.format("%Y-%m-%d %H:%M"),
            s.summary.last_open_time.format("%Y-%m-%d %H:%M"),
            if s.fresh {
                "fresh".to_owned()
            } else {
                format!("stale by {}", human_duration(s.age_s))
            },
            open_gaps,
            s.gaps.len() - open_gaps
        );
        for gap in s.gaps.iter().take(GAPS_SHOWN) {
            let _ = writeln!(
                out,
                "      gap {} .. {} ({} missing{})",
                gap.start.format("%Y-%m-%d %H:%M"),
                gap.end.format("%Y-%m-%d %H:%M"),
                gap.missing(),
                if gap.known_exchange_gap {
                    ", known exchange gap"
                } else {
                    ""
                }
            );
        }
        if s.gaps.len() > GAPS_SHOWN {
            let _ = writeln!(out, "      … {} more", s.gaps.len() - GAPS_SHOWN);
        }
    }
    out
}

fn human_duration(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(59), "59s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(10_800), "3h");
        assert_eq!(human_duration(864_000), "10d");
    }
}
