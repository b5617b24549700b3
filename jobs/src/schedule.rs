//! `pricecast schedule`: every job (collect, export, features, train, forecast, sync) on its own cron
//! schedule in one process, for deployments without Kubernetes. Each job keeps its lock and
//! `job_runs` record, never overlaps itself, and a failed run is logged and tried again on its
//! next tick without stopping the others.

use std::sync::Arc;

use pricecast_binance::BinanceArgs;
use pricecast_shared::Result;
use pricecast_shared::lake::{Lake, LakeArgs};
use pricecast_shared::registry::{ModelRegistry, RegistryArgs};
use pricecast_shared::runner::{self, RunOutcome};
use pricecast_shared::settings::{CronSchedule, DatabaseArgs, SeriesArgs};
use pricecast_shared::shard::Shard;
use pricecast_shared::store::Store;
use pricecast_warehouse::WarehouseArgs;
use tokio_util::sync::CancellationToken;

use crate::collect::{self, CollectContext, CollectPlan};
use crate::export::{self, ExportContext, ExportPlan, ExportRange};
use crate::features::{self, FeaturesContext, FeaturesPlan, TargetArgs};
use crate::forecast::{self, ForecastContext, ForecastPlan};
use crate::sync::{self, ModelRunsSource, SyncContext, SyncMode, SyncPlan, SyncTables};
use crate::train::{self, TrainContext, TrainOptions, TrainPlan};

/// Flags and variables of `pricecast schedule`: the union of the jobs' settings plus one cron
/// expression per job.
#[derive(clap::Args, Clone, Debug)]
pub struct ScheduleArgs {
    /// Database settings.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Symbols and intervals of every job.
    #[command(flatten)]
    pub series: SeriesArgs,
    /// Binance settings (collect).
    #[command(flatten)]
    pub binance: BinanceArgs,
    /// Lake settings (export, features, train).
    #[command(flatten)]
    pub lake: LakeArgs,
    /// The targets of the feature frames (features).
    #[command(flatten)]
    pub targets: TargetArgs,
    /// The model registry (train; sync mirrors its runs).
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// What to train and how to evaluate it (train).
    #[command(flatten)]
    pub train: TrainOptions,
    /// Warehouse settings (sync; not scheduled when unset).
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    /// When collect runs (5 fields, or 6 with seconds first).
    #[arg(
        long,
        env = "COLLECT_CRON",
        value_name = "COLLECT_CRON",
        default_value = "* * * * *"
    )]
    pub collect_cron: CronSchedule,
    /// When export runs.
    #[arg(
        long,
        env = "EXPORT_CRON",
        value_name = "EXPORT_CRON",
        default_value = "5 * * * *"
    )]
    pub export_cron: CronSchedule,
    /// When features runs (after the export has written the hour's candles).
    #[arg(
        long,
        env = "FEATURES_CRON",
        value_name = "FEATURES_CRON",
        default_value = "10 * * * *"
    )]
    pub features_cron: CronSchedule,
    /// When train runs.
    #[arg(
        long,
        env = "TRAIN_CRON",
        value_name = "TRAIN_CRON",
        default_value = "40 2 * * *"
    )]
    pub train_cron: CronSchedule,
    /// When forecast runs: half a minute after collect, so that the minute's candles are in.
    #[arg(
        long,
        env = "FORECAST_CRON",
        value_name = "FORECAST_CRON",
        default_value = "30 */5 * * * *"
    )]
    pub forecast_cron: CronSchedule,
    /// When sync runs.
    #[arg(
        long,
        env = "SYNC_CRON",
        value_name = "SYNC_CRON",
        default_value = "20 * * * *"
    )]
    pub sync_cron: CronSchedule,
    /// Do not apply database migrations at start.
    #[arg(long, env = "PRICECAST_NO_MIGRATE")]
    pub no_migrate: bool,
}

/// Runs every job on its schedule until SIGTERM or Ctrl-C, then lets running jobs finish their
/// batch.
pub async fn execute(args: ScheduleArgs) -> Result<()> {
    let store = crate::connect(&args.database, !args.no_migrate).await?;
    let cancel = runner::shutdown_token();
    let collect = CollectContext::binance(store.clone(), &args.binance, cancel.clone())?;
    let lake = Lake::open(&args.lake).await?;
    let registry = Arc::new(ModelRegistry::open(&args.registry, &args.lake).await?);
    let export = ExportContext {
        store: store.clone(),
        lake: lake.clone(),
        cancel: cancel.clone(),
    };
    let features_ctx = FeaturesContext {
        lake: lake.clone(),
        cancel: cancel.clone(),
    };
    let train_ctx = TrainContext {
        lake: lake.clone(),
        registry: registry.clone(),
        cancel: cancel.clone(),
    };
    let forecast_ctx = ForecastContext {
        store: store.clone(),
        registry: registry.clone(),
        cancel: cancel.clone(),
    };
    let tables = SyncTables {
        candles: true,
        model_runs: Some(ModelRunsSource {
            registry,
            experiment: args.registry.mlflow_experiment_name.clone(),
        }),
        features: Some(lake),
    };
    let sync = args.warehouse.config()?.map(|warehouse| SyncContext {
        store: store.clone(),
        warehouse,
        lake: None,
        cancel: cancel.clone(),
    });
    let plans = Plans::new(&args)?;
    let shard = plans.collect.scope.shard;
    let collect_runs = scheduled(collect::JOB, shard, &args.collect_cron, &cancel, &store, {
        let plan = plans.collect.clone();
        move || {
            let (ctx, plan) = (collect.clone(), plan.clone());
            async move { collect::run(&ctx, &plan).await }
        }
    });
    let export_runs = scheduled(export::JOB, shard, &args.export_cron, &cancel, &store, {
        let plan = plans.export.clone();
        move || {
            let (ctx, plan) = (export.clone(), plan.clone());
            async move { export::run(&ctx, &plan).await }
        }
    });
    let features_runs = scheduled(
        features::JOB,
        shard,
        &args.features_cron,
        &cancel,
        &store,
        {
            let plan = plans.features.clone();
            move || {
                let (ctx, plan) = (features_ctx.clone(), plan.clone());
                async move { features::run(&ctx, &plan).await }
            }
        },
    );
    let train_runs = scheduled(train::JOB, shard, &args.train_cron, &cancel, &store, {
        let plan = plans.train.clone();
        move || {
            let (ctx, plan) = (train_ctx.clone(), plan.clone());
            async move { train::run(&ctx, &plan).await }
        }
    });
    let forecast_runs = scheduled(
        forecast::JOB,
        shard,
        &args.forecast_cron,
        &cancel,
        &store,
        {
            let plan = plans.forecast.clone();
            move || {
                let (ctx, plan) = (forecast_ctx.clone(), plan.clone());
                async move { forecast::run(&ctx, &plan).await }
            }
        },
    );
    let sync_runs = async {
        match sync {
            Some(ctx) => {
                let plan = plans.sync.clone();
                scheduled(
                    sync::JOB,
                    shard,
                    &args.sync_cron,
                    &cancel,
                    &store,
                    move || {
                        let (ctx, plan, tables) = (ctx.clone(), plan.clone(), tables.clone());
                        async move { sync::run_tables(&ctx, &plan, &tables).await }
                    },
                )
                .await
            }
            None => {
                tracing::info!("sync is not configured; it is not scheduled");
                Ok(())
            }
        }
    };
    tokio::try_join!(
        collect_runs,
        export_runs,
        features_runs,
        train_runs,
        forecast_runs,
        sync_runs
    )?;
    Ok(())
}

/// What each scheduled run does: new data only, for the configured series.
#[derive(Clone, Debug)]
struct Plans {
    collect: CollectPlan,
    export: ExportPlan,
    features: FeaturesPlan,
    train: TrainPlan,
    forecast: ForecastPlan,
    sync: SyncPlan,
}

impl Plans {
    fn new(args: &ScheduleArgs) -> Result<Self> {
        let series = &args.series;
        let scope = series.scope()?;
        Ok(Self {
            collect: CollectPlan {
                symbols: series.symbol_names(),
                intervals: series.intervals.clone(),
                since: None,
                check_gaps: false,
                repair: false,
                scope: scope.clone(),
            },
            export: ExportPlan {
                symbols: series.symbol_names(),
                intervals: series.intervals.clone(),
                range: ExportRange::Changed,
                settle: export::WATERMARK_SETTLE,
                scope: scope.clone(),
            },
            features: FeaturesPlan {
                symbols: series.symbol_names(),
                intervals: series.intervals.clone(),
                spec: args.targets.spec()?,
                full: false,
                scope: scope.clone(),
            },
            train: TrainPlan::new(series, &args.registry, &args.train)?,
            forecast: ForecastPlan::new(series, &args.registry)?,
            sync: SyncPlan {
                symbols: series.symbol_names(),
                intervals: series.intervals.clone(),
                mode: SyncMode::Push,
                settle: sync::WATERMARK_SETTLE,
                stop_after_staging: false,
                scope: scope.clone(),
            },
        })
    }
}

/// Runs `work` under the job's lock on every tick of `schedule` until `cancel` fires.
async fn scheduled<F, Fut>(
    job: &'static str,
    shard: Option<Shard>,
    schedule: &CronSchedule,
    cancel: &CancellationToken,
    store: &Store,
    work: F,
) -> Result<()>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<pricecast_shared::report::JobReport>> + Send + 'static,
{
    let store = store.clone();
    runner::run_on_schedule(job, schedule, cancel.clone(), move || {
        let (store, work) = (store.clone(), work.clone());
        async move {
            let outcome = runner::run_locked_shard(&store, job, shard, work).await?;
            if outcome == RunOutcome::Skipped {
                tracing::info!(job, "skipped: another run holds the lock");
            }
            Ok(outcome)
        }
    })
    .await
}
