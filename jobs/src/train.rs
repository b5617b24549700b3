//! The train job: for each series, fits a model on the lake's feature frame, evaluates it
//! walk-forward against the naive baseline, logs the run to the model registry, registers the
//! model as a new version and lets the promotion gate decide whether it becomes `champion`.
//!
//! Steps, per symbol and interval: read the feature frame ([`read_training_data`]), evaluate
//! walk-forward and fit the final model on every row, and the naive forecast on the same
//! windows and rows ([`fit_and_evaluate`], on a blocking thread), score the current champion on
//! the same most recent window ([`champion_score`]), then record everything in the registry
//! ([`record`]): a run with tags, params, metrics and artifacts, marked FINISHED, registered as
//! a version, and the promotion gate between champion, new version and naive forecast; when the
//! naive forecast wins, a naive model is logged and registered the same way and becomes
//! champion.
//! A failure before the run is FINISHED marks it FAILED, tags it with the reason and deletes
//! it (MLflow's soft delete), so that the newest active run of the experiment, the one the seed
//! app's scripts load, always holds a model; no version is registered for it and the champion
//! does not move.
//!
//! Series are trained in the configured order, except that the seed app's series (BTCUSDT at
//! the finest configured interval, what `/price/predict` serves when asked nothing) goes last
//! ([`training_order`]), so that its run is the experiment's newest.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use polars::prelude::DataFrame;
use pricecast_shared::champion::{self, RegisteredModel, metric};
use pricecast_shared::domain::{Interval, Symbol};
use pricecast_shared::features::{self, FeatureSpec, TrainingRows};
use pricecast_shared::lake::{Lake, LakeArgs};
use pricecast_shared::model::{
    self, Dataset, DieboldMariano, Evaluation, IntervalScore, Metrics, ModelArgs, ModelKind,
    ModelParams, TrainedModel,
};
use pricecast_shared::registry::{
    self, Bytes, CHAMPION, GateScores, Metric, ModelRegistry, ModelVersion, PromotionDecision,
    RegistryArgs, RunId, RunStatus,
};
use pricecast_shared::report::{JobReport, TrainWork, Work};
use pricecast_shared::series::{SeriesScope, cores, work_series};
use pricecast_shared::settings::{DatabaseArgs, RunArgs, SeriesArgs};
use pricecast_shared::telemetry::error_chain;
use pricecast_shared::{Error, Result};
use tokio_util::sync::CancellationToken;

/// Job name in `job_runs` and the lock.
pub const JOB: &str = "train";
/// Default evaluation windows.
pub const DEFAULT_EVAL_WINDOWS: usize = 5;
/// Default rows per evaluation window: a week of hourly candles, a few hours of minutes.
pub const DEFAULT_EVAL_WINDOW_ROWS: usize = 168;
/// The symbol the seed app's scripts forecast, and `/price/predict`'s default.
pub const SEED_SYMBOL: &str = "BTCUSDT";
/// Longest failure reason kept in the [`registry::tags::FAILURE`] tag (MLflow keeps tag values
/// of up to 8,000 characters).
const MAX_FAILURE_TAG_CHARS: usize = 4_000;

/// Which features the model takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeatureSelection {
    /// Features computable from closes alone (the default: a price series is enough to ask
    /// the API for a forecast).
    Price,
    /// The seed app's six: `price_t-1` … `price_t-5`, `ma_10`.
    Seed,
    /// Every feature of the feature set.
    All,
    /// These, by name.
    Named(Vec<String>),
}

impl FeatureSelection {
    /// Parses `price`, `seed`, `all` or a comma list of feature names.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "price" => Ok(Self::Price),
            "seed" => Ok(Self::Seed),
            "all" => Ok(Self::All),
            "" => Err("use price, seed, all or a comma list of feature names".to_owned()),
            list => {
                let names: Vec<String> = list.split(',').map(|n| n.trim().to_owned()).collect();
                match names
                    .iter()
                    .find(|n| features::spec::feature_kind(n).is_none())
                {
                    Some(unknown) => Err(format!(
                        "{unknown:?} is not a feature; use price, seed, all or a comma list of: {}",
                        features::ALL_FEATURES
                            .iter()
                            .map(|(name, _)| *name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                    None => Ok(Self::Named(names)),
                }
            }
        }
    }

    /// The feature names, checked against those the feature frame has.
    pub fn resolve(&self, available: &[String]) -> Result<Vec<String>> {
        let names: Vec<String> = match self {
            Self::Price => features::PRICE_FEATURE_NAMES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            Self::Seed => features::SEED_FEATURE_NAMES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            Self::All => available.to_vec(),
            Self::Named(names) => names.clone(),
        };
        if let Some(missing) = names.iter().find(|n| !available.contains(n)) {
            return Err(Error::config(format!(
                "PRICECAST_MODEL_FEATURES names {missing:?}, which the feature frame does not have; available: {}",
                available.join(", ")
            )));
        }
        Ok(names)
    }
}

/// Flags and variables of `pricecast-train`.
#[derive(clap::Args, Clone, Debug)]
pub struct TrainArgs {
    /// Database settings (job runs and the lock).
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Symbols and intervals.
    #[command(flatten)]
    pub series: SeriesArgs,
    /// Where the lake is (feature frames; the local registry without MLflow).
    #[command(flatten)]
    pub lake: LakeArgs,
    /// Once or on a schedule.
    #[command(flatten)]
    pub run: RunArgs,
    /// The model registry.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// What to train and how to evaluate it.
    #[command(flatten)]
    pub options: TrainOptions,
}

/// What to train and how to evaluate it (shared by `pricecast-train` and `pricecast schedule`).
#[derive(clap::Args, Clone, Debug)]
pub struct TrainOptions {
    /// Model type and hyperparameters.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Candles ahead the model forecasts; the feature frame must have this horizon's target.
    #[arg(
        long,
        env = "PRICECAST_HORIZON",
        value_name = "PRICECAST_HORIZON",
        default_value_t = 1,
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    pub horizon: u32,
    /// Features the model takes: `price`, `seed`, `all` or a comma list of names.
    #[arg(
        long,
        env = "PRICECAST_MODEL_FEATURES",
        value_name = "PRICECAST_MODEL_FEATURES",
        default_value = "price",
        value_parser = FeatureSelection::parse
    )]
    pub model_features: FeatureSelection,
    /// Walk-forward evaluation windows (the most recent ones).
    #[arg(
        long,
        env = "PRICECAST_EVAL_WINDOWS",
        value_name = "PRICECAST_EVAL_WINDOWS",
        default_value_t = DEFAULT_EVAL_WINDOWS,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000)
    )]
    pub eval_windows: usize,
    /// Candles per evaluation window.
    #[arg(
        long,
        env = "PRICECAST_EVAL_WINDOW_ROWS",
        value_name = "PRICECAST_EVAL_WINDOW_ROWS",
        default_value_t = DEFAULT_EVAL_WINDOW_ROWS,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000_000)
    )]
    pub eval_window_rows: usize,
    /// Nominal coverage of the forecast intervals, strictly between 0 and 1.
    #[arg(
        long,
        env = "PRICECAST_INTERVAL_LEVEL",
        value_name = "PRICECAST_INTERVAL_LEVEL",
        default_value_t = model::DEFAULT_INTERVAL_LEVEL,
        value_parser = model::parse_interval_level
    )]
    pub interval_level: f64,
    /// Give the new version the `champion` alias even when it is not better.
    #[arg(long)]
    pub force_promote: bool,
}

/// What the train job works with.
#[derive(Clone)]
pub struct TrainContext {
    /// The lake holding the feature frames.
    pub lake: Lake,
    /// The registry runs and versions go to.
    pub registry: Arc<ModelRegistry>,
    /// Cancelled on shutdown: no new series starts.
    pub cancel: CancellationToken,
}

/// What one run trains.
#[derive(Clone, Debug)]
pub struct TrainPlan {
    /// Symbols.
    pub symbols: Vec<Symbol>,
    /// Intervals.
    pub intervals: Vec<Interval>,
    /// Model type and hyperparameters.
    pub params: ModelParams,
    /// Horizon in candles.
    pub horizon: u32,
    /// Feature selection.
    pub features: FeatureSelection,
    /// Evaluation windows.
    pub eval_windows: usize,
    /// Rows per window.
    pub eval_window_rows: usize,
    /// Nominal coverage of the forecast intervals.
    pub interval_level: f64,
    /// The registry's experiment name and registered model name pattern.
    pub registry: RegistryArgs,
    /// Promote regardless of the numbers.
    pub force_promote: bool,
    /// This process's shard of the series, and how many it trains at once.
    pub scope: SeriesScope,
}

impl TrainPlan {
    /// The plan the flags describe.
    pub fn from_args(args: &TrainArgs) -> Result<Self> {
        Self::new(&args.series, &args.registry, &args.options)
    }

    /// The plan for these series, registry and options.
    pub fn new(
        series: &SeriesArgs,
        registry: &RegistryArgs,
        options: &TrainOptions,
    ) -> Result<Self> {
        let params = options.model.params();
        params.validate()?;
        Ok(Self {
            symbols: series.symbol_names(),
            intervals: series.intervals.clone(),
            params,
            horizon: options.horizon,
            features: options.model_features.clone(),
            eval_windows: options.eval_windows,
            eval_window_rows: options.eval_window_rows,
            interval_level: options.interval_level,
            registry: registry.clone(),
            force_promote: options.force_promote,
            scope: series.scope()?,
        })
    }
}

/// What training one series produced.
#[derive(Clone, Debug)]
pub struct SeriesReport {
    /// The run.
    pub run_id: RunId,
    /// Registered model name.
    pub model_name: String,
    /// The new version.
    pub version: u64,
    /// Pooled walk-forward metrics of the model.
    pub model: Metrics,
    /// The same for the baseline.
    pub baseline: Metrics,
    /// `1 − MAE / baseline MAE`.
    pub skill: f64,
    /// The promotion decision.
    pub promotion: PromotionDecision,
    /// Rows the final model was fitted on.
    pub rows: usize,
    /// Diebold–Mariano test of the model's absolute errors against the baseline's.
    pub diebold_mariano: Option<DieboldMariano>,
    /// How the forecast intervals held out of sample.
    pub interval_score: Option<IntervalScore>,
    /// The run of the naive model registered when it won the gate.
    pub naive_run_id: Option<RunId>,
}

/// `pricecast-train`: opens the lake and the registry, then runs once or on the schedule.
pub async fn execute(args: TrainArgs) -> Result<()> {
    let plan = TrainPlan::from_args(&args)?;
    let store = crate::connect(&args.database, !args.run.no_migrate).await?;
    let lake = Lake::open(&args.lake).await?;
    let registry = Arc::new(ModelRegistry::open(&args.registry, &args.lake).await?);
    let cancel = pricecast_shared::runner::shutdown_token();
    let ctx = TrainContext {
        lake,
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
/// at once, in [`training_order`]: the seed app's series is trained alone, after the others,
/// so that its run is the experiment's newest. A failing series does not stop the others;
/// between series a shutdown keeps those trained and starts no other.
pub async fn run(ctx: &TrainContext, plan: &TrainPlan) -> Result<JobReport> {
    let (symbols, resolution) = crate::symbols_for_run(
        &plan.scope,
        &plan.symbols,
        ctx.lake
            .symbols_under(pricecast_shared::features::store::FEATURES_DIR),
    )
    .await?;
    let mut series: Vec<(Symbol, Interval)> = training_order(&symbols, &plan.intervals)
        .into_iter()
        .filter(|(symbol, interval)| plan.scope.owns(symbol, *interval))
        .collect();
    let seed_last = series
        .last()
        .filter(|(symbol, _)| symbol.as_str() == SEED_SYMBOL)
        .is_some();
    let last = if seed_last { series.pop() } else { None };
    let concurrency = plan.scope.concurrency_or(cores());
    let train = |symbol: Symbol, interval: Interval| async move {
        let report = train_series(ctx, plan, &symbol, interval).await?;
        Ok(Work::Train(TrainWork {
            rows: report.rows as u64,
            run_id: report.run_id.0.clone(),
            model_name: report.model_name,
            version: report.version,
            decision: report.promotion.decision.as_str().to_owned(),
            mae: report.model.mae,
            baseline_mae: report.baseline.mae,
            skill: report.skill,
        }))
    };
    let mut done = work_series(series, concurrency, &ctx.cancel, train).await;
    if let Some(last) = last {
        done.extend(work_series(vec![last], 1, &ctx.cancel, train).await);
    }
    done.finish()
        .map(|report| report.with_resolution(resolution))
}

/// Every series of `symbols` × `intervals`, symbol by symbol, with the seed app's series
/// ([`SEED_SYMBOL`] at the finest of `intervals`) moved last: its run is then the newest of
/// the experiment, the one `mlflow.search_runs(order_by=["start_time DESC"], max_results=1)`
/// finds.
pub fn training_order(symbols: &[Symbol], intervals: &[Interval]) -> Vec<(Symbol, Interval)> {
    let mut order: Vec<(Symbol, Interval)> = symbols
        .iter()
        .flat_map(|symbol| intervals.iter().map(move |&i| (symbol.clone(), i)))
        .collect();
    let finest = intervals.iter().min();
    if let Some(seed) = order
        .iter()
        .position(|(symbol, interval)| symbol.as_str() == SEED_SYMBOL && Some(interval) == finest)
    {
        let series = order.remove(seed);
        order.push(series);
    }
    order
}

/// Training data of one series and what it was built from.
pub struct TrainingData {
    /// Rows with a known target, oldest first, with the selected features.
    pub dataset: Dataset,
    /// The whole feature frame (to score a champion that takes other features).
    pub frame: Arc<DataFrame>,
    /// The feature set's hash.
    pub feature_set_hash: String,
    /// Every feature the frame holds.
    pub available: Vec<String>,
}

/// Reads the series' feature frame and keeps the selected features and the horizon's target.
pub async fn read_training_data(
    lake: &Lake,
    symbol: &Symbol,
    interval: Interval,
    selection: &FeatureSelection,
    horizon: u32,
) -> Result<TrainingData> {
    let (manifest, frame) = features::read_feature_frame(lake, symbol, interval).await?;
    let names = selection.resolve(&manifest.features)?;
    if !manifest.horizons.contains(&horizon) {
        return Err(Error::config(format!(
            "PRICECAST_HORIZON is {horizon}, but the feature frame of {symbol} {interval} has targets for {:?} only; run pricecast-features with PRICECAST_HORIZONS including {horizon}",
            manifest.horizons
        )));
    }
    let frame = Arc::new(frame);
    let dataset = blocking(
        format!("building the training rows of {symbol} {interval}"),
        {
            let frame = frame.clone();
            move || training_dataset(&frame, names, horizon, interval)
        },
    )
    .await?;
    Ok(TrainingData {
        dataset,
        frame,
        feature_set_hash: manifest.feature_set_hash,
        available: manifest.features,
    })
}

/// The rows of a feature frame whose `horizon` target is known, with `features`.
pub fn training_dataset(
    frame: &DataFrame,
    features: Vec<String>,
    horizon: u32,
    interval: Interval,
) -> Result<Dataset> {
    let spec = FeatureSpec {
        horizons: vec![horizon],
        features,
    };
    let rows = features::feature_rows(frame, &spec, Some(horizon))?;
    known_targets(rows, horizon, interval)
}

/// Keeps the rows with a target.
fn known_targets(rows: TrainingRows, horizon: u32, interval: Interval) -> Result<Dataset> {
    let width = rows.width();
    let mut open_time_ms = Vec::with_capacity(rows.len());
    let mut x = Vec::with_capacity(rows.x.len());
    let mut last_close = Vec::with_capacity(rows.len());
    let mut target_close = Vec::with_capacity(rows.len());
    for (i, target) in rows.target.iter().enumerate() {
        if let Some(target) = target {
            open_time_ms.push(rows.open_time_ms[i]);
            x.extend_from_slice(&rows.x[i * width..(i + 1) * width]);
            last_close.push(rows.close[i]);
            target_close.push(*target);
        }
    }
    Dataset::new(
        rows.feature_names,
        open_time_ms,
        x,
        last_close,
        target_close,
        horizon,
        interval.duration_ms(),
    )
}

/// Runs CPU work on a blocking thread.
async fn blocking<T, F>(operation: String, work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Model {
            operation,
            message: e.to_string(),
        })?
}

/// The evaluation and the final model, fitted on every row.
pub struct FittedSeries {
    /// Walk-forward evaluation.
    pub evaluation: Evaluation,
    /// The model fitted on all rows.
    pub model: TrainedModel,
    /// The naive model evaluated on the same windows and fitted on the same rows; `None` when
    /// the model is the naive one.
    pub naive: Option<Box<FittedSeries>>,
}

/// Evaluates walk-forward, then fits the final model on every row (CPU work, on a blocking
/// thread); the same for the naive model unless the model is naive. Each final model carries
/// its own evaluation's split-conformal interval at `level`, for the API's forecast intervals.
pub async fn fit_and_evaluate(
    dataset: Arc<Dataset>,
    params: ModelParams,
    windows: usize,
    window_rows: usize,
    level: f64,
) -> Result<FittedSeries> {
    blocking(
        format!("training a {} model", params.kind.as_str()),
        move || {
            let fit = |params: &ModelParams| -> Result<FittedSeries> {
                let evaluation =
                    model::walk_forward(params, &dataset, windows, window_rows, level)?;
                let mut model = TrainedModel::fit(params, &dataset, 0..dataset.rows())?;
                model.residual_interval = Some(evaluation.residual_interval.clone());
                Ok(FittedSeries {
                    evaluation,
                    model,
                    naive: None,
                })
            };
            let mut fitted = fit(&params)?;
            if params.kind != ModelKind::Naive {
                fitted.naive = Some(Box::new(fit(&ModelParams::of_kind(ModelKind::Naive))?));
            }
            Ok(fitted)
        },
    )
    .await
}

/// The current champion as the gate sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChampionScore {
    /// Its version.
    pub version: u64,
    /// Its MAE on the comparison window; `None` when it cannot be scored on this frame.
    pub mae: Option<f64>,
    /// Whether it is the naive model.
    pub naive: bool,
}

/// The current champion and its MAE on the most recent evaluation window (open times
/// `window`); `None` when there is no champion. Its MAE is `None` when it cannot be scored on
/// this frame (a feature the frame lacks, another horizon); the reason is logged.
///
/// The new model's MAE there is out of sample, so the champion's must be too: a champion fitted
/// before the window is scored as it is; one fitted on rows of the window (retrained on the
/// same or newer data) would be scored in sample, so its type, parameters and features are
/// fitted again on the rows known before the window, exactly as the walk-forward evaluation
/// fits the new model, and that fit is scored.
pub async fn champion_score(
    registry: &ModelRegistry,
    model_name: &str,
    data: &TrainingData,
    interval: Interval,
    window: (i64, i64),
) -> Result<Option<ChampionScore>> {
    let Some(champion) = RegisteredModel::load(registry, model_name, CHAMPION).await? else {
        return Ok(None);
    };
    let model = champion.model;
    let version = champion.version.version;
    let naive = model.is_naive();
    let score = |mae: Option<f64>| -> Result<Option<ChampionScore>> {
        Ok(Some(ChampionScore {
            version,
            mae,
            naive,
        }))
    };
    if let Some(missing) = model
        .feature_names
        .iter()
        .find(|f| !data.available.contains(f))
    {
        tracing::warn!(
            model = model_name, version, feature = %missing,
            "the champion takes a feature the frame does not have; it cannot be scored"
        );
        return score(None);
    }
    let frame = data.frame.clone();
    let scored_model = model.clone();
    let scored = blocking(
        format!("scoring {model_name} version {version}"),
        move || {
            let model = scored_model;
            let rows =
                training_dataset(&frame, model.feature_names.clone(), model.horizon, interval)?;
            let times = rows.open_time_ms();
            let rows_in =
                times.partition_point(|&t| t < window.0)..times.partition_point(|&t| t <= window.1);
            if model.trained_on.last_open_ms < window.0 {
                return model::evaluate(&model, &rows, rows_in);
            }
            let known_after = (i64::from(model.horizon) + 1) * rows.interval_ms() - 1;
            let known = times.partition_point(|&t| t + known_after <= window.0);
            let refitted = TrainedModel::fit(&model.params, &rows, 0..known)?;
            model::evaluate(&refitted, &rows, rows_in)
        },
    )
    .await;
    match scored {
        Ok(metrics) => score(Some(metrics.mae)),
        Err(e) => {
            tracing::warn!(
                model = model_name, version, error.message = %error_chain(&e),
                "the champion cannot be scored on the current feature frame"
            );
            score(None)
        }
    }
}

/// Trains, evaluates, records and promotes one series.
pub async fn train_series(
    ctx: &TrainContext,
    plan: &TrainPlan,
    symbol: &Symbol,
    interval: Interval,
) -> Result<SeriesReport> {
    let data =
        read_training_data(&ctx.lake, symbol, interval, &plan.features, plan.horizon).await?;
    let dataset = Arc::new(data.dataset.clone());
    let model_name = plan.registry.model_name_for(symbol, interval);
    tracing::info!(
        %symbol, %interval, rows = dataset.rows(), features = dataset.features(),
        model_type = plan.params.kind.as_str(), "training"
    );
    let fitted = fit_and_evaluate(
        dataset.clone(),
        plan.params.clone(),
        plan.eval_windows,
        plan.eval_window_rows,
        plan.interval_level,
    )
    .await?;
    let last = fitted
        .evaluation
        .last_report()
        .ok_or_else(|| Error::Model {
            operation: format!("evaluating {model_name}"),
            message: "the evaluation has no window".to_owned(),
        })?;
    let window = (last.first_open_ms, last.last_open_ms);
    let champion = champion_score(&ctx.registry, &model_name, &data, interval, window).await?;
    let context = RunContext {
        symbol,
        interval,
        model_name: &model_name,
        plan,
        dataset: &dataset,
        feature_set_hash: &data.feature_set_hash,
    };
    record(&ctx.registry, &context, &fitted, champion).await
}

/// What a run is about.
pub struct RunContext<'a> {
    /// Trading pair.
    pub symbol: &'a Symbol,
    /// Interval.
    pub interval: Interval,
    /// Registered model name.
    pub model_name: &'a str,
    /// The plan.
    pub plan: &'a TrainPlan,
    /// The rows.
    pub dataset: &'a Dataset,
    /// Feature set hash.
    pub feature_set_hash: &'a str,
}

/// Logs the run, registers the version and decides the promotion between `champion`, the new
/// version and the naive forecast, all scored on the most recent evaluation window; when the
/// naive forecast wins, its model is logged and registered the same way ([`log_and_register`])
/// and becomes champion. A failure before a run is FINISHED retires it ([`retire_failed_run`])
/// and registers nothing; once FINISHED, the run holds a complete model, and stays the
/// experiment's newest run even when registering or promoting it fails.
pub async fn record(
    registry: &ModelRegistry,
    context: &RunContext<'_>,
    fitted: &FittedSeries,
    champion: Option<ChampionScore>,
) -> Result<SeriesReport> {
    let (run, version) = log_and_register(registry, context, fitted).await?;
    let evaluation = &fitted.evaluation;
    let last_window = evaluation.last_report();
    let new_mae = last_window.map_or(evaluation.model.mae, |w| w.model.mae);
    let scores = GateScores {
        new_mae,
        new_is_naive: fitted.model.is_naive(),
        champion_mae: champion.and_then(|c| c.mae),
        champion_is_naive: champion.is_some_and(|c| c.naive),
        naive_mae: last_window.map(|w| w.baseline.mae),
    };
    let mut naive_run_id = None;
    let promotion = registry
        .promote(
            context.model_name,
            version.version,
            &scores,
            context.plan.force_promote,
            async || {
                let naive = fitted.naive.as_deref().ok_or_else(|| Error::Model {
                    operation: format!("registering the naive model of {}", context.model_name),
                    message: "the naive model was not evaluated".to_owned(),
                })?;
                let plan = TrainPlan {
                    params: naive.evaluation.params.clone(),
                    ..context.plan.clone()
                };
                let naive_context = RunContext {
                    plan: &plan,
                    ..*context
                };
                let (run, version) = log_and_register(registry, &naive_context, naive).await?;
                naive_run_id = Some(run);
                Ok(version.version)
            },
        )
        .await?;
    Ok(SeriesReport {
        run_id: run,
        model_name: context.model_name.to_owned(),
        version: version.version,
        model: evaluation.model.clone(),
        baseline: evaluation.baseline.clone(),
        skill: evaluation.skill.unwrap_or(f64::NAN),
        promotion,
        rows: context.dataset.rows(),
        diebold_mariano: evaluation.diebold_mariano.clone(),
        interval_score: evaluation.interval_score.clone(),
        naive_run_id,
    })
}

/// Logs a run of `fitted` (tags, params, metrics, artifacts), marks it FINISHED and registers
/// it as a new version of the context's model. A failure before FINISHED retires the run.
pub async fn log_and_register(
    registry: &ModelRegistry,
    context: &RunContext<'_>,
    fitted: &FittedSeries,
) -> Result<(RunId, ModelVersion)> {
    let experiment = registry
        .experiment(&context.plan.registry.mlflow_experiment_name)
        .await?;
    let run = registry.start_run(&experiment, &run_tags(context)).await?;
    let logged = async {
        log_run(registry, &run, context, fitted).await?;
        registry.finish_run(&run, RunStatus::Finished).await
    };
    if let Err(e) = logged.await {
        retire_failed_run(registry, &run, &e).await;
        return Err(e);
    }
    let version = registry
        .register_version(context.model_name, &run, champion::MODEL_DIR)
        .await?;
    Ok((run, version))
}

/// Retires a run whose logging failed: tags it with the reason ([`registry::tags::FAILURE`]),
/// marks it FAILED and deletes it, so that the experiment's newest active run holds a model.
/// Each step is tried even when an earlier one fails (the registry may be going away); what
/// fails is logged, the training error is what the job reports.
pub async fn retire_failed_run(registry: &ModelRegistry, run: &RunId, error: &Error) {
    let reason: String = error_chain(error)
        .chars()
        .take(MAX_FAILURE_TAG_CHARS)
        .collect();
    let tag = [(registry::tags::FAILURE.to_owned(), reason)];
    if let Err(e) = registry.set_tags(run, &tag).await {
        tracing::error!(run = %run, error.message = %error_chain(&e), "could not tag the failed run");
    }
    if let Err(e) = registry.finish_run(run, RunStatus::Failed).await {
        tracing::error!(run = %run, error.message = %error_chain(&e), "could not mark the run FAILED");
    }
    match registry.delete_run(run).await {
        Ok(()) => {
            tracing::warn!(run = %run, "training failed: the run is marked FAILED and deleted")
        }
        Err(e) => tracing::error!(
            run = %run, error.message = %error_chain(&e),
            "could not delete the failed run; it may be the experiment's newest run"
        ),
    }
}

fn run_tags(context: &RunContext<'_>) -> Vec<(String, String)> {
    let data = context.dataset;
    let range = match (data.open_time_ms().first(), data.open_time_ms().last()) {
        (Some(&first), Some(&last)) => format!("{}/{}", rfc3339(first), rfc3339(last)),
        _ => String::new(),
    };
    vec![
        (registry::tags::GIT_REVISION.to_owned(), git_revision()),
        (
            registry::tags::RUN_NAME.to_owned(),
            format!(
                "{}-{}-{}",
                context.symbol,
                context.interval,
                context.plan.params.kind.as_str()
            ),
        ),
        (registry::tags::DATA_RANGE.to_owned(), range),
        (
            registry::tags::FEATURE_SET_HASH.to_owned(),
            context.feature_set_hash.to_owned(),
        ),
        (
            registry::tags::MODEL_TYPE.to_owned(),
            context.plan.params.kind.as_str().to_owned(),
        ),
        (
            registry::tags::SERIES.to_owned(),
            format!("{} {}", context.symbol, context.interval),
        ),
    ]
}

/// The revision the binary was built from: `PRICECAST_GIT_REVISION` at run time, else at build
/// time (the image sets it), else `unknown`.
fn git_revision() -> String {
    std::env::var("PRICECAST_GIT_REVISION")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| option_env!("PRICECAST_GIT_REVISION").map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn rfc3339(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map_or_else(|| ms.to_string(), |t: DateTime<Utc>| t.to_rfc3339())
}

async fn log_run(
    registry: &ModelRegistry,
    run: &RunId,
    context: &RunContext<'_>,
    fitted: &FittedSeries,
) -> Result<()> {
    let plan = context.plan;
    let mut params: Vec<(String, String)> = plan
        .params
        .relevant()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    params.extend([
        ("horizon".to_owned(), plan.horizon.to_string()),
        (
            "features".to_owned(),
            context.dataset.feature_names().join(","),
        ),
        ("eval_windows".to_owned(), plan.eval_windows.to_string()),
        (
            "eval_window_rows".to_owned(),
            plan.eval_window_rows.to_string(),
        ),
        ("rows".to_owned(), context.dataset.rows().to_string()),
        ("interval_level".to_owned(), plan.interval_level.to_string()),
    ]);
    if let Some(dm) = &fitted.evaluation.diebold_mariano {
        params.push(("dm_lag".to_owned(), dm.lag.to_string()));
    }
    registry.log_params(run, &params).await?;
    registry
        .log_metrics(run, &run_metrics(&fitted.evaluation))
        .await?;
    let model = &fitted.model;
    let example = model.input_example_json(context.dataset, context.dataset.rows() - 1)?;
    let mut artifacts: Vec<(String, Bytes)> = vec![
        (
            champion::METRICS_FILE.to_owned(),
            Bytes::from(serde_json::to_vec_pretty(&fitted.evaluation).map_err(|e| {
                Error::Model {
                    operation: "writing metrics.json".to_owned(),
                    message: e.to_string(),
                }
            })?),
        ),
        (
            champion::CHART_FILE.to_owned(),
            Bytes::from(model::chart_svg(
                &fitted.evaluation.last_window,
                &format!(
                    "{} {} {}: last window",
                    context.symbol,
                    context.interval,
                    plan.params.kind.as_str()
                ),
            )?),
        ),
    ];
    artifacts.extend(champion::model_artifacts(model, &example)?);
    for (path, bytes) in artifacts {
        registry.log_artifact(run, &path, bytes).await?;
    }
    Ok(())
}

/// The run's metrics: pooled model and baseline numbers, skill, the Diebold–Mariano test
/// against the baseline, the last window's MAE, the interval's residual quantiles and how the
/// interval held out of sample, and each window's MAE as a step of `window_mae`. Undefined
/// values (a direction accuracy without moves, a skill without baseline error, a test of the
/// naive model against itself, interval scores with one window) are left out.
pub fn run_metrics(evaluation: &Evaluation) -> Vec<Metric> {
    let m = &evaluation.model;
    let b = &evaluation.baseline;
    let score = evaluation.interval_score.as_ref();
    let mut metrics = vec![
        Metric::new(metric::MAE, m.mae),
        Metric::new(metric::RMSE, m.rmse),
        Metric::new(metric::MAPE, m.mape),
        Metric::new(metric::BASELINE_MAE, b.mae),
        Metric::new(metric::BASELINE_RMSE, b.rmse),
        Metric::new(metric::BASELINE_MAPE, b.mape),
        Metric::new(metric::RESIDUAL_LOW, evaluation.residual_interval.lower),
        Metric::new(metric::RESIDUAL_HIGH, evaluation.residual_interval.upper),
    ];
    let optional = [
        (metric::DIRECTION_ACCURACY, m.direction_accuracy),
        (metric::BASELINE_DIRECTION_ACCURACY, b.direction_accuracy),
        (metric::SKILL, evaluation.skill),
        (
            metric::LAST_WINDOW_MAE,
            evaluation.last_report().map(|w| w.model.mae),
        ),
        (
            metric::DM_STAT,
            evaluation.diebold_mariano.as_ref().map(|d| d.statistic),
        ),
        (
            metric::DM_P_VALUE,
            evaluation.diebold_mariano.as_ref().map(|d| d.p_value),
        ),
        (metric::COVERAGE, score.map(|s| s.coverage)),
        (metric::INTERVAL_WIDTH_PCT, score.map(|s| s.width_pct)),
        (metric::PINBALL_LOWER, score.map(|s| s.pinball_lower)),
        (metric::PINBALL_UPPER, score.map(|s| s.pinball_upper)),
    ];
    metrics.extend(
        optional
            .into_iter()
            .filter_map(|(key, value)| value.map(|v| Metric::new(key, v))),
    );
    for (step, window) in evaluation.windows.iter().enumerate() {
        for (key, value) in [
            ("window_mae", window.model.mae),
            ("window_baseline_mae", window.baseline.mae),
        ] {
            let mut metric = Metric::new(key, value);
            metric.step = step as i64;
            metrics.push(metric);
        }
    }
    metrics.retain(|m| m.value.is_finite());
    metrics
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbols(names: &[&str]) -> Vec<Symbol> {
        names.iter().map(|n| n.parse().expect("symbol")).collect()
    }

    fn names(order: &[(Symbol, Interval)]) -> Vec<String> {
        order
            .iter()
            .map(|(symbol, interval)| format!("{symbol} {interval}"))
            .collect()
    }

    #[test]
    fn the_seed_series_is_trained_last() {
        let order = training_order(
            &symbols(&["BTCUSDT", "ETHUSDT"]),
            &[Interval::H1, Interval::M1, Interval::D1],
        );
        assert_eq!(
            names(&order),
            [
                "BTCUSDT 1h",
                "BTCUSDT 1d",
                "ETHUSDT 1h",
                "ETHUSDT 1m",
                "ETHUSDT 1d",
                "BTCUSDT 1m"
            ],
            "BTCUSDT at the finest interval goes last, the rest keep their order"
        );
        let without = training_order(&symbols(&["ETHUSDT", "SOLUSDT"]), &[Interval::H1]);
        assert_eq!(names(&without), ["ETHUSDT 1h", "SOLUSDT 1h"]);
        assert!(training_order(&symbols(&["BTCUSDT"]), &[]).is_empty());
    }
}
