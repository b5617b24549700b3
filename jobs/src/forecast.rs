//! The forecast job: the forecast ledger. For each served series, writes the champion's forecast
//! for every closed candle since the job's watermark into `forecasts`, so that what was served
//! can be scored once the target candles are known.
//!
//! Steps, per symbol and interval: load the series' champion from the registry ([`run`]); go on
//! from the later of the ledger's newest `based_on` and the newest candle the champion was
//! trained on ([`start_after`]), counting the candles in between as in-sample and skipping them
//! ([`skipped_in_sample`]): a forecast is only written for a candle the champion has not seen.
//! Then, batch by batch ([`BATCH_CANDLES`]), read the candles with the history their features
//! need, compute the feature rows with the feature pipeline the API serves with, and the
//! forecast of each row with the API's own forecast function ([`forecast_batch`], on a blocking
//! thread), and append the batch in one transaction ([`Store::insert_forecasts`]). The ledger's
//! primary key makes re-running write nothing new; SIGTERM stops between batches, with every
//! written batch complete.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use polars::prelude::IntoLazy;
use pricecast_api::services::forecast::{forecast, serving_spec};
use pricecast_shared::champion::RegisteredModel;
use pricecast_shared::domain::{Candle, Interval, Symbol};
use pricecast_shared::features::{self, FeatureRow};
use pricecast_shared::lake::LakeArgs;
use pricecast_shared::registry::{CHAMPION, ModelRegistry, RegistryArgs};
use pricecast_shared::report::{ForecastModel, ForecastWork, JobReport, Work};
use pricecast_shared::series::{SeriesScope, cores, run_series};
use pricecast_shared::settings::{DatabaseArgs, RunArgs, SeriesArgs};
use pricecast_shared::store::{CandleQuery, ForecastRecord, Store};
use pricecast_shared::{Error, Result};
use tokio_util::sync::CancellationToken;

/// Job name in `job_runs` and the lock.
pub const JOB: &str = "forecast";
/// Candles forecast per batch: one feature frame and one transaction. A batch of 1m candles
/// is about five weeks; its frame and forecasts take a few tens of MB.
pub const BATCH_CANDLES: usize = 50_000;

/// Flags and variables of `pricecast-forecast`.
#[derive(clap::Args, Clone, Debug)]
pub struct ForecastArgs {
    /// Database settings (candles, the ledger, job runs and the lock).
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Symbols and intervals.
    #[command(flatten)]
    pub series: SeriesArgs,
    /// Where the lake is (the local registry without MLflow).
    #[command(flatten)]
    pub lake: LakeArgs,
    /// Once or on a schedule.
    #[command(flatten)]
    pub run: RunArgs,
    /// The model registry the champions come from.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// What the forecast job works with.
#[derive(Clone)]
pub struct ForecastContext {
    /// The database: candles in, forecasts out.
    pub store: Store,
    /// The registry holding the champions.
    pub registry: Arc<ModelRegistry>,
    /// Cancelled on shutdown: no new batch starts.
    pub cancel: CancellationToken,
}

/// What one run forecasts.
#[derive(Clone, Debug)]
pub struct ForecastPlan {
    /// Symbols.
    pub symbols: Vec<Symbol>,
    /// Intervals.
    pub intervals: Vec<Interval>,
    /// The registered model name pattern.
    pub registry: RegistryArgs,
    /// This process's shard of the series, and how many it forecasts at once.
    pub scope: SeriesScope,
}

impl ForecastPlan {
    /// The plan for these series and registry names.
    pub fn new(series: &SeriesArgs, registry: &RegistryArgs) -> Result<Self> {
        Ok(Self {
            symbols: series.symbol_names(),
            intervals: series.intervals.clone(),
            registry: registry.clone(),
            scope: series.scope()?,
        })
    }
}

/// `pricecast-forecast`: opens the registry, then runs once or on the schedule.
pub async fn execute(args: ForecastArgs) -> Result<()> {
    let plan = ForecastPlan::new(&args.series, &args.registry)?;
    let store = crate::connect(&args.database, !args.run.no_migrate).await?;
    let registry = Arc::new(ModelRegistry::open(&args.registry, &args.lake).await?);
    let cancel = pricecast_shared::runner::shutdown_token();
    let ctx = ForecastContext {
        store: store.clone(),
        registry,
        cancel: cancel.clone(),
    };
    crate::run_job(JOB, plan.scope.shard, store, &args.run, cancel, move || {
        let ctx = ctx.clone();
        let plan = plan.clone();
        async move { run(&ctx, &plan).await }
    })
    .await
}

/// Runs the job: every series of the plan's shard, one per core (or the plan's concurrency)
/// at once, with the champion the registry holds now; a failing series does not stop the
/// others.
pub async fn run(ctx: &ForecastContext, plan: &ForecastPlan) -> Result<JobReport> {
    let (symbols, resolution) =
        crate::symbols_for_run(&plan.scope, &plan.symbols, ctx.store.stored_symbols()).await?;
    let series = plan.scope.series(&symbols, &plan.intervals);
    let concurrency = plan.scope.concurrency_or(cores());
    run_series(series, concurrency, &ctx.cancel, |symbol, interval| async move {
        let name = plan.registry.model_name_for(&symbol, interval);
        let work = match RegisteredModel::load(&ctx.registry, &name, CHAMPION).await? {
            Some(champion) => forecast_series(ctx, &symbol, interval, Arc::new(champion)).await?,
            None => {
                tracing::info!(%symbol, %interval, model = %name, "no champion yet; nothing to forecast");
                ForecastWork::default()
            }
        };
        Ok(Work::Forecast(work))
    })
    .await
    .map(|report| report.with_resolution(resolution))
}

/// Where a series' forecasts go on from: after the newest candle already forecast and after
/// the newest candle the champion was trained on, whichever is later.
pub fn start_after(
    watermark: Option<DateTime<Utc>>,
    trained_to: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    watermark.max(trained_to)
}

/// The candles after the watermark that the champion was trained on: `(watermark, trained_to]`
/// (from the first candle when there is no watermark), counted, never forecast.
pub async fn skipped_in_sample(
    store: &Store,
    symbol: &Symbol,
    interval: Interval,
    watermark: Option<DateTime<Utc>>,
    trained_to: Option<DateTime<Utc>>,
) -> Result<u64> {
    match trained_to {
        Some(trained_to) if watermark.is_none_or(|w| w < trained_to) => {
            store
                .count_candles(symbol, interval, watermark, trained_to)
                .await
        }
        _ => Ok(0),
    }
}

/// Forecasts every closed candle of one series after [`start_after`], batch by batch.
pub async fn forecast_series(
    ctx: &ForecastContext,
    symbol: &Symbol,
    interval: Interval,
    champion: Arc<RegisteredModel>,
) -> Result<ForecastWork> {
    let horizon = champion.model.horizon;
    let trained_to = DateTime::from_timestamp_millis(champion.model.trained_on.last_open_ms);
    let store = &ctx.store;
    let watermark = store
        .newest_forecast_based_on(symbol, interval, horizon)
        .await?;
    let mut work = ForecastWork {
        model: Some(ForecastModel {
            name: champion.model_name.clone(),
            version: champion.version.version,
            horizon,
            trained_to,
        }),
        skipped_in_sample: skipped_in_sample(store, symbol, interval, watermark, trained_to)
            .await?,
        ..ForecastWork::default()
    };
    let history = serving_spec(&champion).history() as i64;
    let mut cursor = start_after(watermark, trained_to);
    loop {
        if ctx.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let batch = store
            .candles(&CandleQuery {
                symbol: symbol.clone(),
                interval,
                from: cursor.map(|c| c + chrono::Duration::milliseconds(1)),
                to: None,
                limit: BATCH_CANDLES as i64,
                offset: 0,
                newest_first: false,
            })
            .await?;
        let Some(last) = batch.last().map(|c| c.open_time) else {
            break;
        };
        let mut candles = match cursor {
            Some(cursor) if history > 0 => {
                let mut before = store
                    .candles(&CandleQuery {
                        symbol: symbol.clone(),
                        interval,
                        from: None,
                        to: Some(cursor),
                        limit: history,
                        offset: 0,
                        newest_first: true,
                    })
                    .await?;
                before.reverse();
                before
            }
            _ => Vec::new(),
        };
        let batch_len = batch.len() as u64;
        candles.extend(batch);
        let records = {
            let (champion, owned_symbol) = (champion.clone(), symbol.clone());
            tokio::task::spawn_blocking(move || {
                forecast_batch(
                    &champion,
                    &owned_symbol,
                    interval,
                    &candles,
                    cursor,
                    Utc::now(),
                )
            })
            .await
            .map_err(|e| Error::Model {
                operation: format!("forecasting {symbol} {interval}"),
                message: e.to_string(),
            })??
        };
        let inserted = store.insert_forecasts(&records).await?;
        work.written += inserted;
        work.already_written += records.len() as u64 - inserted;
        work.skipped_without_features += batch_len - records.len() as u64;
        tracing::info!(
            %symbol, %interval, rows = inserted, until = %last.to_rfc3339(),
            "forecast batch written"
        );
        cursor = Some(last);
    }
    work.watermark = store
        .newest_forecast_based_on(symbol, interval, horizon)
        .await?;
    Ok(work)
}

/// The champion's forecasts for the candles of `candles` (oldest first, with the history their
/// features need before them) opened after `after`: one per candle whose feature row can be
/// computed (its history has no gap), made at `made_at`. CPU work: run it on a blocking thread.
pub fn forecast_batch(
    champion: &RegisteredModel,
    symbol: &Symbol,
    interval: Interval,
    candles: &[Candle],
    after: Option<DateTime<Utc>>,
    made_at: DateTime<Utc>,
) -> Result<Vec<ForecastRecord>> {
    let spec = serving_spec(champion);
    let frame = features::feature_frame(features::candle_frame(candles)?.lazy(), interval, &spec)
        .collect()
        .map_err(|source| Error::Polars {
            operation: format!("computing the feature rows of {symbol} {interval}"),
            source,
        })?;
    let rows = features::feature_rows(&frame, &spec, None)?;
    let after_ms = after.map_or(i64::MIN, |t| t.timestamp_millis());
    let mut records = Vec::with_capacity(rows.len());
    for i in 0..rows.len() {
        let open_ms = rows.open_time_ms[i];
        if open_ms <= after_ms {
            continue;
        }
        let Some(open_time) = DateTime::from_timestamp_millis(open_ms) else {
            continue;
        };
        let row = FeatureRow {
            open_time,
            close: rows.close[i],
            values: rows.row(i).to_vec(),
        };
        let prediction = forecast(champion, symbol, interval, &row).map_err(|e| Error::Model {
            operation: format!(
                "forecasting {symbol} {interval} from the candle of {}",
                open_time.to_rfc3339()
            ),
            message: e.to_string(),
        })?;
        records.push(ForecastRecord {
            symbol: symbol.clone(),
            interval,
            horizon: prediction.horizon,
            based_on: prediction.based_on,
            target_time: prediction.target_time,
            predicted: prediction.predicted_price,
            lower: prediction.lower,
            upper: prediction.upper,
            baseline: prediction.baseline_price,
            model_name: prediction.model.name,
            model_version: prediction.model.version,
            run_id: prediction.model.run_id,
            made_at,
        });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(s: &str) -> Option<DateTime<Utc>> {
        s.parse().ok()
    }

    #[test]
    fn forecasts_go_on_after_the_later_of_watermark_and_training_end() {
        let early = time("2025-01-01T00:00:00Z");
        let late = time("2025-02-01T00:00:00Z");
        assert_eq!(start_after(None, None), None);
        assert_eq!(
            start_after(None, late),
            late,
            "never inside the training data"
        );
        assert_eq!(start_after(late, early), late, "never twice");
        assert_eq!(start_after(early, late), late);
    }
}
