//! The forecast ledger as the API shows it: the forecasts the forecast job wrote, each with the
//! actual close once known, and the scorecard over those whose target is known, per model
//! version and overall. Only the horizons the champions serve are answered.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use pricecast_shared::domain::{Interval, Symbol};
use pricecast_shared::store::{ForecastQuery, LedgerForecast, Store};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use salvo::oapi::ToSchema;
use serde::Serialize;

use super::error::{ServiceError, ServiceResult};
use super::forecast::ForecastService;
use super::scorecard::{self, Score, ScoredForecast};

/// The window `/metrics` scores the ledger over.
pub const LIVE_SCORE_DAYS: i64 = 30;
/// How long the live scores `/metrics` reports are reused: scrapes come every few seconds, the
/// ledger changes once per forecast run.
const LIVE_SCORE_TTL: Duration = Duration::from_secs(15);

/// One forecast of the ledger, with what happened.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[salvo(schema(name = LedgerEntry))]
pub struct LedgerEntry {
    /// Open time of the newest candle the forecast used.
    pub based_on: DateTime<Utc>,
    /// Close time of the target candle.
    pub target_time: DateTime<Utc>,
    /// Forecast close.
    pub predicted: f64,
    /// Lower end of its interval.
    pub lower: Option<f64>,
    /// Upper end of its interval.
    pub upper: Option<f64>,
    /// The naive baseline's forecast: the close of `based_on`.
    pub baseline: f64,
    /// Registered model name.
    pub model_name: String,
    /// Model version.
    pub model_version: u64,
    /// The run that trained it.
    pub run_id: String,
    /// When the forecast was written.
    pub made_at: DateTime<Utc>,
    /// The target candle's close, exact, once collected.
    #[serde(with = "rust_decimal::serde::arbitrary_precision_option")]
    #[salvo(schema(value_type = Option<f64>, required))]
    pub actual: Option<Decimal>,
    /// `predicted − actual`, once known.
    pub error: Option<f64>,
    /// `baseline − actual`, once known.
    pub baseline_error: Option<f64>,
    /// Whether the actual close fell inside `[lower, upper]`, once known.
    pub inside_interval: Option<bool>,
}

impl From<LedgerForecast> for LedgerEntry {
    fn from(row: LedgerForecast) -> Self {
        let f = row.forecast;
        let actual = row.actual.as_ref().and_then(ToPrimitive::to_f64);
        Self {
            error: actual.map(|a| f.predicted - a),
            baseline_error: actual.map(|a| f.baseline - a),
            inside_interval: match (actual, f.lower, f.upper) {
                (Some(a), Some(lower), Some(upper)) => Some(lower <= a && a <= upper),
                _ => None,
            },
            actual: row.actual,
            based_on: f.based_on,
            target_time: f.target_time,
            predicted: f.predicted,
            lower: f.lower,
            upper: f.upper,
            baseline: f.baseline,
            model_name: f.model_name,
            model_version: f.model_version,
            run_id: f.run_id,
            made_at: f.made_at,
        }
    }
}

/// The score of one model version's forecasts.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[salvo(schema(name = VersionScore))]
pub struct VersionScore {
    /// Registered model name.
    pub model_name: String,
    /// Model version.
    pub model_version: u64,
    /// Its numbers.
    pub score: Score,
}

/// The scorecard of a series and horizon over a window of target times.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[salvo(schema(name = Scorecard))]
pub struct Scorecard {
    /// Trading pair.
    pub symbol: String,
    /// Kline interval.
    pub interval: String,
    /// Candles ahead.
    pub horizon: u32,
    /// Days of target times scored.
    pub days: i64,
    /// Earliest target time scored (exclusive).
    pub from: DateTime<Utc>,
    /// Latest target time scored: the close of the series' newest candle.
    pub to: DateTime<Utc>,
    /// Every forecast of the window.
    pub overall: Score,
    /// Per model version, oldest version first.
    pub versions: Vec<VersionScore>,
}

/// The live score of one served series and horizon, for `/metrics`.
#[derive(Clone, Debug)]
pub struct LiveScore {
    /// Trading pair.
    pub symbol: Symbol,
    /// Kline interval.
    pub interval: Interval,
    /// Candles ahead.
    pub horizon: u32,
    /// The last [`LIVE_SCORE_DAYS`] days' score.
    pub score: Score,
    /// Seconds since the series' newest candle closed, when it has one.
    pub newest_candle_age_s: Option<f64>,
}

/// Live scores computed when, for reuse within [`LIVE_SCORE_TTL`].
type LiveScoreCache = Mutex<Option<(Instant, Arc<Vec<LiveScore>>)>>;

/// Reads the ledger over the read-only store; cheap to clone.
#[derive(Clone, Debug)]
pub struct LedgerService {
    store: Store,
    forecasts: ForecastService,
    live: Arc<LiveScoreCache>,
}

impl LedgerService {
    /// The ledger of `store`, for the series and horizons `forecasts` serves.
    pub fn new(store: Store, forecasts: ForecastService) -> Self {
        Self {
            store,
            forecasts,
            live: Arc::default(),
        }
    }

    /// The horizon a request is answered for: the one the series' champion serves, or `horizon`
    /// when it is that one. Unavailable, naming the series, when it has no champion; invalid,
    /// naming the horizons served, for another horizon.
    pub fn served_horizon(
        &self,
        symbol: &Symbol,
        interval: Interval,
        horizon: Option<i64>,
    ) -> ServiceResult<u32> {
        let champion = self.forecasts.champion(symbol, interval)?;
        let served = champion.model.horizon;
        match horizon {
            None => Ok(served),
            Some(h) if h == i64::from(served) => Ok(served),
            Some(h) => Err(ServiceError::Invalid(format!(
                "horizon={h}: {symbol} {interval} has no forecasts at that horizon; the horizons served: {served}"
            ))),
        }
    }

    /// The newest `limit` forecasts of a series and horizon with `based_on` in `[from, to]`,
    /// newest first.
    pub async fn forecasts(&self, query: &ForecastQuery) -> ServiceResult<Vec<LedgerEntry>> {
        Ok(self
            .store
            .forecasts(query)
            .await?
            .into_iter()
            .map(LedgerEntry::from)
            .collect())
    }

    /// The scorecard of the forecasts whose target closed in the `days` days up to the close of
    /// the series' newest candle (up to now when it has none). Nothing scored is `n = 0`.
    pub async fn scorecard(
        &self,
        symbol: &Symbol,
        interval: Interval,
        horizon: u32,
        days: i64,
    ) -> ServiceResult<Scorecard> {
        let to = match self.store.latest_candle(symbol, interval).await? {
            Some(newest) => {
                newest.open_time + chrono::Duration::milliseconds(interval.duration_ms())
            }
            None => Utc::now(),
        };
        let from = to - chrono::Duration::days(days);
        let rows = self
            .store
            .scored_forecasts(symbol, interval, horizon, from, to)
            .await?;
        let mut by_version: BTreeMap<u64, (String, Vec<ScoredForecast>)> = BTreeMap::new();
        let mut overall = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(actual) = row.actual.as_ref().and_then(ToPrimitive::to_f64) else {
                continue;
            };
            let f = row.forecast;
            let scored = ScoredForecast {
                predicted: f.predicted,
                baseline: f.baseline,
                lower: f.lower,
                upper: f.upper,
                actual,
            };
            by_version
                .entry(f.model_version)
                .or_insert_with(|| (f.model_name, Vec::new()))
                .1
                .push(scored.clone());
            overall.push(scored);
        }
        Ok(Scorecard {
            symbol: symbol.to_string(),
            interval: interval.to_string(),
            horizon,
            days,
            from,
            to,
            overall: scorecard::score(&overall, horizon),
            versions: by_version
                .into_iter()
                .map(|(model_version, (model_name, rows))| VersionScore {
                    model_name,
                    model_version,
                    score: scorecard::score(&rows, horizon),
                })
                .collect(),
        })
    }

    /// The last [`LIVE_SCORE_DAYS`] days' score of every served series with a champion, at its
    /// champion's horizon; reused for [`LIVE_SCORE_TTL`].
    pub async fn live_scores(&self) -> ServiceResult<Arc<Vec<LiveScore>>> {
        if let Ok(cache) = self.live.lock()
            && let Some((at, scores)) = cache.as_ref()
            && at.elapsed() < LIVE_SCORE_TTL
        {
            return Ok(scores.clone());
        }
        let models = self.forecasts.models();
        let mut scores = Vec::new();
        for (symbol, interval) in models.series() {
            let Some(champion) = models.champion(symbol, *interval) else {
                continue;
            };
            let horizon = champion.model.horizon;
            let card = self
                .scorecard(symbol, *interval, horizon, LIVE_SCORE_DAYS)
                .await?;
            let newest_candle_age_s =
                self.store
                    .latest_candle(symbol, *interval)
                    .await?
                    .map(|newest| {
                        let closed = newest.open_time
                            + chrono::Duration::milliseconds(interval.duration_ms());
                        (Utc::now() - closed).num_milliseconds() as f64 / 1000.0
                    });
            scores.push(LiveScore {
                symbol: symbol.clone(),
                interval: *interval,
                horizon,
                score: card.overall,
                newest_candle_age_s,
            });
        }
        let scores = Arc::new(scores);
        if let Ok(mut cache) = self.live.lock() {
            *cache = Some((Instant::now(), scores.clone()));
        }
        Ok(scores)
    }
}
