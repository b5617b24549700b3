//! Train job tests on real BTCUSDT history: candles exported to a lake (the real S3 server or a
//! folder), feature frames built by the features job, models trained, evaluated and registered
//! in both real MLflow servers (read back by MLflow's own Python client) and in the local
//! registry; the promotion gate, reproducibility and the binary's failures.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use pricecast_binance::replay::bundled_candles;
use pricecast_jobs::train::{
    self, FeatureSelection, SeriesReport, TrainContext, TrainPlan, TrainingData,
};
use pricecast_shared::champion::{self, RegisteredModel};
use pricecast_shared::domain::{Candle, Interval, Symbol};
use pricecast_shared::features::{FeatureSpec, PRICE_FEATURE_NAMES};
use pricecast_shared::lake::{Lake, LakeArgs};
use pricecast_shared::model::{
    DEFAULT_INTERVAL_LEVEL, Dataset, ModelKind, ModelParams, TrainedModel, walk_forward_rows_needed,
};
use pricecast_shared::registry::promotion::{
    TAG_CHAMPION_MAE, TAG_CHAMPION_VERSION, TAG_DECISION, TAG_NAIVE_MAE, TAG_NAIVE_VERSION,
    TAG_NEW_MAE, TAG_WINNER,
};
use pricecast_shared::registry::{
    CHALLENGER, CHAMPION, Decision, MlflowRegistry, ModelRegistry, RegistryArgs, RunSearch,
    RunStatus, Winner, tags,
};
use pricecast_shared::series::SeriesScope;
use pricecast_shared::store::{JobStatus, Store};
use pricecast_tests::db::TestDb;
use pricecast_tests::lake::TestS3;
use pricecast_tests::pipeline::export_and_build_features;
use rust_decimal::prelude::ToPrimitive;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::binaries::binary;

/// Evaluation windows and rows per window of every test: the job's defaults.
const WINDOWS: usize = train::DEFAULT_EVAL_WINDOWS;
const WINDOW_ROWS: usize = train::DEFAULT_EVAL_WINDOW_ROWS;

/// Every artifact a training run logs: the metrics, the chart and the model's MLflow folder
/// twice, where Pricecast reads it and where the seed app's scripts load it.
const ARTIFACTS: [&str; 18] = [
    champion::CHART_FILE,
    champion::METRICS_FILE,
    champion::MLMODEL_FILE,
    champion::FEATURE_SCHEMA_FILE,
    champion::INPUT_EXAMPLE_FILE,
    champion::MODEL_FILE,
    "model/code/pricecast_pyfunc.py",
    "model/conda.yaml",
    "model/python_env.yaml",
    "model/requirements.txt",
    "linear_regression_model/MLmodel",
    "linear_regression_model/code/pricecast_pyfunc.py",
    "linear_regression_model/conda.yaml",
    "linear_regression_model/feature_schema.json",
    "linear_regression_model/input_example.json",
    "linear_regression_model/model.json",
    "linear_regression_model/python_env.yaml",
    "linear_regression_model/requirements.txt",
];

fn btc() -> Symbol {
    "BTCUSDT".parse().expect("symbol")
}

fn day(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
        .single()
        .expect("time")
}

fn required(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: the train tests need the services tests/run.sh starts; run tests/run.sh")
    })
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:012x}", rand::random::<u64>() >> 16)
}

/// Three months of real BTCUSDT 1h candles without an exchange gap.
fn three_months() -> (DateTime<Utc>, DateTime<Utc>) {
    (day(2024, 1, 1), day(2024, 4, 1))
}

/// A lake holding the features of real BTCUSDT 1h candles opening in `[from, to)`, exported
/// from a database by the export job and built by the features job (every feature, horizon 1).
struct FeatureLake {
    db: TestDb,
    lake: Lake,
    lake_args: LakeArgs,
    candles: Vec<Candle>,
}

impl FeatureLake {
    async fn build(lake_args: LakeArgs, range: (DateTime<Utc>, DateTime<Utc>)) -> Self {
        Self::of_candles(lake_args, real_candles(range)).await
    }

    /// A lake holding the features of these BTCUSDT 1h candles.
    async fn of_candles(lake_args: LakeArgs, candles: Vec<Candle>) -> Self {
        let db = TestDb::sqlite().await;
        for chunk in candles.chunks(1000) {
            db.store.upsert_candles(chunk).await.expect("load candles");
        }
        let lake = Lake::open(&lake_args).await.expect("open the lake");
        export_and_build(&db.store, &lake).await;
        Self {
            db,
            lake,
            lake_args,
            candles,
        }
    }

    async fn on_s3(s3: &TestS3, range: (DateTime<Utc>, DateTime<Utc>)) -> Self {
        Self::build(s3.args(), range).await
    }

    async fn in_folder(folder: &Path, range: (DateTime<Utc>, DateTime<Utc>)) -> Self {
        let url = format!("file://{}", folder.display());
        Self::build(LakeArgs::for_url(url.parse().expect("lake URL")), range).await
    }

    /// The training rows the job builds with `selection`.
    async fn training_data(&self, selection: &FeatureSelection) -> TrainingData {
        train::read_training_data(&self.lake, &btc(), Interval::H1, selection, 1)
            .await
            .expect("training data")
    }

    fn context(&self, registry: ModelRegistry) -> TrainContext {
        TrainContext {
            lake: self.lake.clone(),
            registry: Arc::new(registry),
            cancel: CancellationToken::new(),
        }
    }
}

/// Real BTCUSDT 1h candles opening in `[from, to)`.
fn real_candles((from, to): (DateTime<Utc>, DateTime<Utc>)) -> Vec<Candle> {
    bundled_candles(&btc())
        .expect("bundled")
        .into_iter()
        .filter(|c| c.interval == Interval::H1 && c.open_time >= from && c.open_time < to)
        .collect()
}

async fn export_and_build(store: &Store, lake: &Lake) {
    export_and_build_features(store, lake, &btc(), Interval::H1, FeatureSpec::all(vec![1]))
        .await
        .expect("export and features");
}

/// A plan for BTCUSDT 1h with the job's defaults, logging to `experiment` and registering as
/// `model` (a name pattern without placeholders: one model per test).
fn train_plan(experiment: &str, model: &str) -> TrainPlan {
    let mut registry = RegistryArgs::local();
    registry.model_name = model.to_owned();
    registry.mlflow_experiment_name = experiment.to_owned();
    TrainPlan {
        symbols: vec![btc()],
        intervals: vec![Interval::H1],
        params: ModelParams::default(),
        horizon: 1,
        features: FeatureSelection::Price,
        eval_windows: WINDOWS,
        eval_window_rows: WINDOW_ROWS,
        interval_level: DEFAULT_INTERVAL_LEVEL,
        registry,
        force_promote: false,
        scope: SeriesScope::default(),
    }
}

async fn train_btc(ctx: &TrainContext, plan: &TrainPlan) -> SeriesReport {
    train::train_series(ctx, plan, &btc(), Interval::H1)
        .await
        .expect("train")
}

/// A client of the MLflow server named by `variable`; S3 artifacts go through `lake`'s settings.
fn mlflow(variable: &str, lake: LakeArgs) -> ModelRegistry {
    let args = RegistryArgs::mlflow(required(variable).parse().expect("MLflow URI"));
    ModelRegistry::Mlflow(Box::new(
        MlflowRegistry::new(&args, lake).expect("MLflow client"),
    ))
}

/// What `tests/python/mlflow_check.py` is asked.
#[derive(Default)]
struct Check<'a> {
    run: Option<&'a str>,
    model: Option<&'a str>,
    files: &'a [&'a str],
    download_to: Option<&'a Path>,
    experiment: Option<&'a str>,
}

/// Reads runs, versions and aliases back with MLflow's own Python client.
fn mlflow_check(uri: &str, s3: &TestS3, check: &Check<'_>) -> Value {
    let python = required("PRICECAST_TEST_MLFLOW_PYTHON");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/mlflow_check.py");
    let mut command = Command::new(&python);
    command
        .arg(&script)
        .arg(uri)
        .arg(check.run.unwrap_or("-"))
        .env("MLFLOW_S3_ENDPOINT_URL", &s3.endpoint)
        .env("AWS_ACCESS_KEY_ID", &s3.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &s3.secret_access_key)
        .env("AWS_DEFAULT_REGION", "us-east-1");
    if let Some(model) = check.model {
        command.args(["--model", model, "--alias", CHAMPION, "--alias", CHALLENGER]);
    }
    for file in check.files {
        command.args(["--file", file]);
    }
    if let Some(dir) = check.download_to {
        command.arg("--download-to").arg(dir);
    }
    if let Some(experiment) = check.experiment {
        command.args(["--experiment", experiment]);
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}; run tests/run.sh"));
    assert!(
        output.status.success(),
        "mlflow_check.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("mlflow_check.py prints JSON")
}

fn rfc3339(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .expect("time")
        .to_rfc3339()
}

/// Trains on the MLflow server named by `variable` and checks everything the run, the version
/// and the aliases hold with MLflow's client; the model file it downloads predicts exactly what
/// the job's model predicts.
async fn train_and_read_back_with_mlflow(variable: &str, artifact_scheme: &str) {
    let s3 = TestS3::new();
    let data = FeatureLake::on_s3(&s3, three_months()).await;
    let uri = required(variable);
    let ctx = data.context(mlflow(variable, s3.args()));
    let experiment = unique("bitcoin_prediction_s3");
    let model_name = unique("pricecast-BTCUSDT-1h");
    let plan = train_plan(&experiment, &model_name);
    let report = train_btc(&ctx, &plan).await;
    assert_eq!(report.version, 1);
    assert_eq!(report.promotion.decision, Decision::FirstChampion);
    let training = data.training_data(&FeatureSelection::Price).await;
    let rows = training.dataset.rows();
    assert_eq!(report.rows, rows);
    assert_eq!(
        rows,
        data.candles.len() - 49 - 1,
        "49 candles of history, one without target"
    );

    let downloads = tempfile::tempdir().expect("tempdir");
    let read = mlflow_check(
        &uri,
        &s3,
        &Check {
            run: Some(&report.run_id.0),
            model: Some(&model_name),
            files: &ARTIFACTS,
            download_to: Some(downloads.path()),
            experiment: Some(&experiment),
        },
    );
    let run = &read["run"];
    assert_eq!(run["status"], "FINISHED", "{run}");
    assert_eq!(run["experiment"], experiment.as_str());
    assert!(
        run["artifact_uri"]
            .as_str()
            .is_some_and(|u| u.starts_with(artifact_scheme)),
        "{run}"
    );
    let params = &run["params"];
    assert_eq!(params["model_type"], "linear");
    assert_eq!(params["horizon"], "1");
    assert_eq!(params["features"], PRICE_FEATURE_NAMES.join(","));
    assert_eq!(params["eval_windows"], WINDOWS.to_string());
    assert_eq!(params["eval_window_rows"], WINDOW_ROWS.to_string());
    assert_eq!(params["rows"], rows.to_string());
    let metrics = &run["metrics"];
    assert_eq!(metrics["mae"].as_f64(), Some(report.model.mae));
    assert_eq!(metrics["rmse"].as_f64(), Some(report.model.rmse));
    assert_eq!(metrics["baseline_mae"].as_f64(), Some(report.baseline.mae));
    assert_eq!(metrics["skill"].as_f64(), Some(report.skill));
    assert_eq!(
        metrics["last_window_mae"].as_f64(),
        Some(report.promotion.new_mae)
    );
    for key in [
        "mape",
        "baseline_rmse",
        "baseline_mape",
        "direction_accuracy",
        "residual_q05",
        "residual_q95",
        "window_mae",
        "window_baseline_mae",
    ] {
        assert!(metrics[key].is_f64(), "{key}: {metrics}");
    }
    let run_tags = &run["tags"];
    assert!(
        run_tags[tags::GIT_REVISION]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{run_tags}"
    );
    let times = training.dataset.open_time_ms();
    assert_eq!(
        run_tags[tags::DATA_RANGE],
        format!("{}/{}", rfc3339(times[0]), rfc3339(times[rows - 1]))
    );
    assert_eq!(
        run_tags[tags::FEATURE_SET_HASH],
        FeatureSpec::all(vec![1]).hash()
    );
    assert_eq!(run_tags[tags::MODEL_TYPE], "linear");
    assert_eq!(run_tags[tags::SERIES], "BTCUSDT 1h");
    let mut expected: Vec<&str> = ARTIFACTS.to_vec();
    expected.sort_unstable();
    assert_eq!(read["artifacts"], serde_json::json!(expected));

    let versions = read["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(versions[0]["run_id"], report.run_id.0.as_str());
    assert_eq!(versions[0]["tags"][TAG_DECISION], "first_champion");
    assert_eq!(read["aliases"][CHAMPION], 1);
    assert_eq!(read["aliases"][CHALLENGER], 1);
    assert_eq!(
        read["experiment_runs"],
        serde_json::json!([
            {"run_id": report.run_id.0, "status": "FINISHED", "lifecycle_stage": "active"}
        ])
    );

    // The file MLflow's client downloads is the model: it loads and predicts exactly as the
    // model fitted here on the same rows, and as the champion the API would load.
    let bytes = std::fs::read(downloads.path().join(champion::MODEL_FILE)).expect("model file");
    let downloaded = TrainedModel::from_bytes(&bytes).expect("the downloaded model loads");
    let fitted = train::fit_and_evaluate(
        Arc::new(training.dataset.clone()),
        plan.params.clone(),
        WINDOWS,
        WINDOW_ROWS,
        DEFAULT_INTERVAL_LEVEL,
    )
    .await
    .expect("fit");
    assert_eq!(fitted.evaluation.model, report.model);
    let all = 0..rows;
    let expected = fitted
        .model
        .predict(&training.dataset, all.clone())
        .expect("predict");
    assert!(expected.iter().all(|p| p.is_finite()));
    assert!(
        downloaded
            .predict(&training.dataset, all.clone())
            .expect("predict")
            == expected
    );
    assert_eq!(bytes, fitted.model.to_bytes().expect("bytes"));
    let served = RegisteredModel::load(&ctx.registry, &model_name, CHAMPION)
        .await
        .expect("load")
        .expect("champion");
    assert!(
        served
            .model
            .predict(&training.dataset, all)
            .expect("predict")
            == expected
    );
    let example: Value = serde_json::from_slice(
        &std::fs::read(downloads.path().join(champion::INPUT_EXAMPLE_FILE)).expect("example"),
    )
    .expect("input example JSON");
    assert!(
        example.to_string().contains("log_ret_1"),
        "the input example names the features: {example}"
    );
    let mlmodel =
        std::fs::read_to_string(downloads.path().join(champion::MLMODEL_FILE)).expect("MLmodel");
    assert!(mlmodel.contains("signature"), "{mlmodel}");
    assert!(mlmodel.contains("python_function"), "{mlmodel}");
    // The seed app's folder holds the same files; only MLmodel names its own artifact path.
    for path in ARTIFACTS.iter().filter_map(|p| p.strip_prefix("model/")) {
        let file = |dir: &str| std::fs::read(downloads.path().join(dir).join(path)).expect(path);
        if path == "MLmodel" {
            let seed = String::from_utf8(file(champion::SEED_MODEL_DIR)).expect("UTF-8");
            assert!(
                seed.contains("artifact_path: linear_regression_model"),
                "{seed}"
            );
        } else {
            assert_eq!(
                file(champion::MODEL_DIR),
                file(champion::SEED_MODEL_DIR),
                "{path}"
            );
        }
    }
    let svg = std::fs::read_to_string(downloads.path().join(champion::CHART_FILE)).expect("chart");
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "{svg:.80}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn features_to_train_to_mlflow_with_artifact_proxy_read_back_by_mlflow() {
    train_and_read_back_with_mlflow("PRICECAST_TEST_MLFLOW_URI", "mlflow-artifacts:").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn features_to_train_to_mlflow_with_s3_artifacts_read_back_by_mlflow() {
    train_and_read_back_with_mlflow("PRICECAST_TEST_MLFLOW_S3_URI", "s3://").await;
}

async fn alias(registry: &ModelRegistry, model: &str, name: &str) -> Option<u64> {
    registry
        .get_alias(model, name)
        .await
        .expect("alias")
        .map(|v| v.version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_registry_keeps_an_equal_model_as_challenger_and_promotes_a_better_one() {
    let folder = tempfile::tempdir().expect("tempdir");
    let data = FeatureLake::in_folder(folder.path(), three_months()).await;
    let registry = ModelRegistry::open(&RegistryArgs::local(), &data.lake_args)
        .await
        .expect("local registry");
    let ctx = data.context(registry);
    let registry = ctx.registry.clone();
    let model = unique("pricecast-BTCUSDT-1h");
    let mut plan = train_plan("bitcoin_prediction_s3", &model);

    let first = train_btc(&ctx, &plan).await;
    assert_eq!(
        (first.version, first.promotion.decision),
        (1, Decision::FirstChampion)
    );
    assert_eq!(
        registry.get_run(&first.run_id).await.expect("run").status,
        RunStatus::Finished
    );

    // The same data and settings again: the same MAE on the same window is not better.
    let second = train_btc(&ctx, &plan).await;
    assert_eq!(second.version, 2);
    assert_eq!(
        second.promotion.decision,
        Decision::Kept,
        "{:?}",
        second.promotion
    );
    assert_eq!(second.promotion.champion_version, Some(1));
    assert_eq!(
        second.promotion.champion_mae,
        Some(second.promotion.new_mae),
        "the champion is scored as the new model is, on the same window"
    );
    assert_eq!(alias(&registry, &model, CHAMPION).await, Some(1));
    assert_eq!(alias(&registry, &model, CHALLENGER).await, Some(2));
    let kept = registry.get_version(&model, 2).await.expect("v2");
    assert_eq!(kept.tags[TAG_DECISION], "kept_challenger");
    assert_eq!(kept.tags[TAG_NEW_MAE], kept.tags[TAG_CHAMPION_MAE]);

    plan.force_promote = true;
    let forced = train_btc(&ctx, &plan).await;
    assert_eq!(
        (forced.version, forced.promotion.decision),
        (3, Decision::Forced)
    );
    assert_eq!(alias(&registry, &model, CHAMPION).await, Some(3));
    assert_eq!(
        registry.get_version(&model, 3).await.expect("v3").tags[TAG_DECISION],
        "forced"
    );

    // A deliberately bad champion: one unpruned tree on every feature memorises noise (forced
    // in: the naive forecast beats it). A linear model on the price features beats it on the
    // same window and takes `champion`.
    let other = unique("pricecast-BTCUSDT-1h");
    let mut bad = train_plan(&unique("bitcoin_prediction_s3"), &other);
    bad.features = FeatureSelection::All;
    bad.params = memorising_forest();
    bad.force_promote = true;
    let bad_champion = train_btc(&ctx, &bad).await;
    assert_eq!(bad_champion.promotion.decision, Decision::Forced);
    let mut good = bad.clone();
    good.features = FeatureSelection::Price;
    good.params = ModelParams::default();
    good.force_promote = false;
    let better = train_btc(&ctx, &good).await;
    let decision = &better.promotion;
    assert_eq!(decision.decision, Decision::Promoted, "{decision:?}");
    let champion_mae = decision.champion_mae.expect("the champion was scored");
    assert!(
        decision.new_mae < 0.9 * champion_mae,
        "clearly better: {} vs {champion_mae}",
        decision.new_mae
    );
    assert_eq!(
        champion_mae, bad_champion.promotion.new_mae,
        "the champion's MAE on the window is what its own run measured there"
    );
    assert_eq!(alias(&registry, &other, CHAMPION).await, Some(2));
    let promoted = registry.get_version(&other, 2).await.expect("v2");
    assert_eq!(promoted.tags[TAG_DECISION], "promoted");
    assert_eq!(promoted.tags[TAG_NEW_MAE], decision.new_mae.to_string());
    assert_eq!(promoted.tags[TAG_CHAMPION_MAE], champion_mae.to_string());
    let served = RegisteredModel::load(&registry, &other, CHAMPION)
        .await
        .expect("load")
        .expect("champion");
    assert_eq!(served.model.params.kind, ModelKind::Linear);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_twice_on_the_same_data_gives_the_same_metrics_and_the_baseline_is_the_last_move()
{
    let s3 = TestS3::new();
    let data = FeatureLake::on_s3(&s3, three_months()).await;
    let registry = ModelRegistry::open(&RegistryArgs::local(), &data.lake_args)
        .await
        .expect("local registry on S3");
    let ctx = data.context(registry);
    let mut plan = train_plan("bitcoin_prediction_s3", &unique("pricecast-BTCUSDT-1h"));
    for params in [
        ModelParams::default(),
        ModelParams {
            kind: ModelKind::RandomForest,
            trees: 5,
            ..ModelParams::default()
        },
    ] {
        plan.params = params;
        let one = train_btc(&ctx, &plan).await;
        let two = train_btc(&ctx, &plan).await;
        assert_eq!(one.model, two.model, "{}", plan.params.kind);
        assert_eq!(one.baseline, two.baseline);
        let artifact = async |report: &SeriesReport, path: &str| {
            ctx.registry
                .read_artifact(&report.run_id, path)
                .await
                .expect("artifact")
        };
        for path in [champion::METRICS_FILE, champion::MODEL_FILE] {
            assert_eq!(
                artifact(&one, path).await,
                artifact(&two, path).await,
                "{path} of {}",
                plan.params.kind
            );
        }
        let metrics = |report: &SeriesReport| {
            let run = &report.run_id;
            let registry = ctx.registry.clone();
            let run = run.clone();
            async move { registry.get_run(&run).await.expect("run").metrics }
        };
        assert_eq!(metrics(&one).await, metrics(&two).await);

        // The naive baseline's MAE by hand, from the candles: the mean |close(t+1) − close(t)|
        // over the evaluated rows, the last WINDOWS × WINDOW_ROWS candles with a next one.
        let closes: Vec<f64> = data
            .candles
            .iter()
            .map(|c| c.close.to_f64().expect("close"))
            .collect();
        let evaluated = WINDOWS * WINDOW_ROWS;
        let last = closes.len() - 1;
        let mut sum = 0.0;
        for t in last - evaluated..last {
            sum += (closes[t] - closes[t + 1]).abs();
        }
        assert_eq!(one.baseline.n, evaluated);
        assert_eq!(one.baseline.mae, sum / evaluated as f64);
    }
}

/// Runs `pricecast-train` with only these variables (and PATH); exit code and all output.
fn run_train(env: &[(&str, String)]) -> (Option<i32>, String) {
    let mut command = Command::new(binary("pricecast-train"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PRICECAST_SYMBOLS", "BTCUSDT")
        .env("PRICECAST_INTERVALS", "1h")
        .env("PRICECAST_LOG_FORMAT", "text");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run pricecast-train");
    (
        output.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_trains_into_mlflow_with_s3_artifacts_and_fails_clearly_on_bad_input() {
    let s3 = TestS3::new();
    let uri = required("PRICECAST_TEST_MLFLOW_S3_URI");
    let experiment = unique("bitcoin_prediction_s3");
    let model = unique("pricecast-BTCUSDT-1h");
    let env = |data: &FeatureLake, extra: &[(&'static str, &str)]| {
        let mut env: Vec<(&'static str, String)> = s3.env();
        env.extend([
            ("DATABASE_URL", data.db.url.clone()),
            ("LAKE_URL", data.lake.url().to_string()),
            ("MLFLOW_TRACKING_URI", uri.clone()),
            ("MLFLOW_S3_ENDPOINT_URL", s3.endpoint.clone()),
            ("MLFLOW_EXPERIMENT_NAME", experiment.clone()),
            ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0".to_owned()),
            ("PRICECAST_MODEL_NAME", model.clone()),
            ("PRICECAST_GIT_REVISION", "0123456789abcdef".to_owned()),
        ]);
        env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        env
    };
    let registry = mlflow("PRICECAST_TEST_MLFLOW_S3_URI", s3.args());

    // Two weeks of candles: too few rows for five weekly windows; nothing reaches MLflow.
    let short = FeatureLake::on_s3(&TestS3::new(), (day(2024, 1, 1), day(2024, 1, 15))).await;
    let (code, text) = run_train(&env(&short, &[]));
    assert_eq!(code, Some(1), "{text}");
    let needed = walk_forward_rows_needed(WINDOWS, WINDOW_ROWS, PRICE_FEATURE_NAMES.len(), 1);
    let rows = 14 * 24 - 49 - 1;
    assert!(
        text.contains(&format!("{rows} rows exist but {needed} are needed")),
        "{text}"
    );
    let runs = short
        .db
        .store
        .job_runs(Some(train::JOB), 1)
        .await
        .expect("runs");
    assert_eq!(runs[0].status, JobStatus::Failed);
    let read = mlflow_check(
        &uri,
        &s3,
        &Check {
            model: Some(&model),
            experiment: Some(&experiment),
            ..Check::default()
        },
    );
    assert_eq!(read["experiment_runs"], Value::Null, "no run: {read}");
    assert_eq!(read["versions"], serde_json::json!([]));

    // Enough history: trained, registered and promoted by the binary.
    let data = FeatureLake::on_s3(&s3, three_months()).await;
    let (code, text) = run_train(&env(&data, &[]));
    assert_eq!(code, Some(0), "{text}");
    let champion = registry
        .get_alias(&model, CHAMPION)
        .await
        .expect("alias")
        .expect("a champion");
    let read = mlflow_check(
        &uri,
        &s3,
        &Check {
            run: Some(&champion.run_id.0),
            model: Some(&model),
            files: &[champion::MODEL_FILE],
            experiment: Some(&experiment),
            ..Check::default()
        },
    );
    assert_eq!(read["run"]["status"], "FINISHED");
    assert_eq!(read["run"]["tags"][tags::GIT_REVISION], "0123456789abcdef");
    assert_eq!(read["aliases"][CHAMPION], 1);
    let runs = data
        .db
        .store
        .job_runs(Some(train::JOB), 1)
        .await
        .expect("runs");
    assert_eq!(runs[0].status, JobStatus::Succeeded, "{:?}", runs[0]);

    // Bad settings: exit 2 naming the variable.
    let (code, text) = run_train(&env(&data, &[("PRICECAST_MODEL_FEATURES", "nonsense")]));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("PRICECAST_MODEL_FEATURES"), "{text}");
    for level in ["1", "0", "1.5", "ninety"] {
        let (code, text) = run_train(&env(&data, &[("PRICECAST_INTERVAL_LEVEL", level)]));
        assert_eq!(code, Some(2), "{level}: {text}");
        assert!(text.contains("PRICECAST_INTERVAL_LEVEL"), "{level}: {text}");
    }

    // An unreachable MLflow: exit 1 naming the setting.
    let (code, text) = run_train(&env(
        &data,
        &[("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")],
    ));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("MLFLOW_TRACKING_URI"), "{text}");

    // No feature frame in the lake: exit 1 telling what to run.
    let empty = TestS3::new();
    let mut no_features = env(&data, &[]);
    no_features.retain(|(k, _)| *k != "LAKE_URL");
    no_features.push(("LAKE_URL", empty.url()));
    let (code, text) = run_train(&no_features);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("no features for BTCUSDT 1h") && text.contains("run pricecast-features"),
        "{text}"
    );

    // None of the failures left a run or a version behind; the champion did not move.
    let read = mlflow_check(
        &uri,
        &s3,
        &Check {
            model: Some(&model),
            experiment: Some(&experiment),
            ..Check::default()
        },
    );
    assert_eq!(
        read["experiment_runs"].as_array().map(Vec::len),
        Some(1),
        "{read}"
    );
    assert_eq!(read["versions"].as_array().map(Vec::len), Some(1));
    assert_eq!(read["aliases"][CHAMPION], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_rejected_mid_run_marks_the_run_failed_and_registers_nothing() {
    let s3 = TestS3::new();
    let uri = required("PRICECAST_TEST_MLFLOW_S3_URI");
    let data = FeatureLake::on_s3(&s3, three_months()).await;
    let experiment = unique("bitcoin_prediction_s3");
    let model = unique("pricecast-BTCUSDT-1h");
    let plan = train_plan(&experiment, &model);
    let good = data.context(mlflow("PRICECAST_TEST_MLFLOW_S3_URI", s3.args()));
    let first = train_btc(&good, &plan).await;
    assert_eq!(first.promotion.decision, Decision::FirstChampion);

    // A wrong S3 secret key: the champion's model file cannot be read, so nothing is decided
    // and no run starts.
    let mut wrong_key = s3.args();
    wrong_key.aws_secret_access_key = Some("not-the-secret".to_owned().into());
    let bad = data.context(mlflow("PRICECAST_TEST_MLFLOW_S3_URI", wrong_key));
    let err = train::train_series(&bad, &plan, &btc(), Interval::H1)
        .await
        .expect_err("the champion cannot be read");
    assert!(
        err.to_string().contains("credentials were refused"),
        "{err}"
    );

    // A model without a champion: the run starts and gets its params and metrics, then the S3
    // server refuses its artifacts; the run ends FAILED and no version is registered.
    let fresh = unique("pricecast-BTCUSDT-1h");
    let mut fresh_plan = train_plan(&experiment, &fresh);
    fresh_plan.force_promote = true;
    let err = train::train_series(&bad, &fresh_plan, &btc(), Interval::H1)
        .await
        .expect_err("the artifact upload is refused");
    assert!(
        err.to_string().contains("credentials were refused"),
        "{err}"
    );

    // Deleted: MLflow's default listing (and the seed app's search_runs) has only the good run.
    let experiment_id = good
        .registry
        .find_experiment(&experiment)
        .await
        .expect("find")
        .expect("experiment");
    let active = good
        .registry
        .search_runs(&experiment_id, &RunSearch::default())
        .await
        .expect("runs");
    assert_eq!(
        active.iter().map(|r| &r.run_id).collect::<Vec<_>>(),
        [&first.run_id],
        "{active:?}"
    );
    let every = mlflow_check(
        &uri,
        &s3,
        &Check {
            experiment: Some(&experiment),
            ..Check::default()
        },
    );
    let runs = every["experiment_runs"].as_array().expect("runs");
    let failed: Vec<&Value> = runs
        .iter()
        .filter(|r| r["run_id"] != first.run_id.0.as_str())
        .collect();
    assert_eq!(failed.len(), 1, "one run started: {runs:?}");
    assert_eq!(failed[0]["lifecycle_stage"], "deleted", "{runs:?}");
    let failed_id = failed[0]["run_id"].as_str().expect("run id");
    let read = mlflow_check(
        &uri,
        &s3,
        &Check {
            run: Some(failed_id),
            model: Some(&fresh),
            experiment: Some(&experiment),
            ..Check::default()
        },
    );
    assert_eq!(read["run"]["status"], "FAILED", "{read}");
    assert!(
        read["run"]["metrics"]["mae"].is_f64(),
        "logged before the failure"
    );
    assert!(
        read["run"]["tags"][tags::FAILURE]
            .as_str()
            .is_some_and(|reason| reason.contains("credentials were refused")),
        "the reason is tagged: {read}"
    );
    assert_eq!(read["versions"], serde_json::json!([]), "{read}");
    assert_eq!(read["aliases"][CHAMPION], Value::Null);
    let read = mlflow_check(
        &uri,
        &s3,
        &Check {
            model: Some(&model),
            ..Check::default()
        },
    );
    assert_eq!(read["versions"].as_array().map(Vec::len), Some(1), "{read}");
    assert_eq!(read["aliases"][CHAMPION], 1, "champion unchanged");
}

/// A year of real BTCUSDT 1h candles.
fn one_year() -> (DateTime<Utc>, DateTime<Utc>) {
    (day(2024, 1, 1), day(2025, 1, 1))
}

/// Runs `tests/python/<script>` with the readers' Python (numpy) on a JSON file holding
/// `input`; returns what it prints.
fn numpy_script(script: &str, input: &Value) -> Value {
    let python = required("PRICECAST_TEST_PYTHON");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(script);
    let file = tempfile::NamedTempFile::new().expect("input file");
    std::fs::write(file.path(), input.to_string()).expect("write the input");
    let output = Command::new(&python)
        .arg(&path)
        .arg(file.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}; run tests/run.sh"));
    assert!(
        output.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script prints JSON")
}

fn assert_close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1.0),
        "{what}: {got} vs {want}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naive_is_scored_on_the_model_s_windows_and_the_dm_test_matches_an_independent_one() {
    let folder = tempfile::tempdir().expect("tempdir");
    let data = FeatureLake::in_folder(folder.path(), one_year()).await;
    let training = data.training_data(&FeatureSelection::Price).await;
    let dataset = Arc::new(training.dataset.clone());
    let params = ModelParams::default();
    let fitted = train::fit_and_evaluate(
        dataset.clone(),
        params.clone(),
        WINDOWS,
        WINDOW_ROWS,
        DEFAULT_INTERVAL_LEVEL,
    )
    .await
    .expect("fit");
    let evaluation = &fitted.evaluation;
    let naive = fitted.naive.as_ref().expect("the naive model is evaluated");
    assert_eq!(naive.model.params.kind, ModelKind::Naive);
    assert!(naive.naive.is_none());
    // The same windows, the same rows: the naive model's own scores are the baseline's.
    assert_eq!(naive.evaluation.model, evaluation.baseline);
    assert_eq!(naive.evaluation.windows.len(), WINDOWS);
    for (model, naive) in evaluation.windows.iter().zip(&naive.evaluation.windows) {
        assert_eq!(model.test_rows, naive.test_rows);
        assert_eq!(model.train_rows, naive.train_rows);
        assert_eq!(
            (model.first_open_ms, model.last_open_ms),
            (naive.first_open_ms, naive.last_open_ms)
        );
        assert_eq!(naive.model, model.baseline);
    }
    assert_eq!(naive.evaluation.skill, Some(0.0));
    assert_eq!(naive.evaluation.diebold_mariano, None);

    // The errors again, from a model fitted on each window's training rows, and the test
    // computed by numpy alone.
    let (mut model_errors, mut naive_errors) = (Vec::new(), Vec::new());
    for window in &evaluation.windows {
        let model = TrainedModel::fit(&params, &dataset, window.train_rows.clone()).expect("refit");
        let predicted = model
            .predict(&dataset, window.test_rows.clone())
            .expect("predict");
        for (row, p) in window.test_rows.clone().zip(predicted) {
            let actual = dataset.target_close()[row];
            model_errors.push(p - actual);
            naive_errors.push(dataset.last_close()[row] - actual);
        }
    }
    let dm = evaluation.diebold_mariano.as_ref().expect("tested");
    assert_eq!(dm.n, WINDOWS * WINDOW_ROWS);
    // At least horizon − 1 = 0, widened with the rows: 6 for 840.
    assert_eq!(dm.lag, pricecast_shared::model::newey_west_lag(1, dm.n));
    assert_eq!(dm.lag, 6);
    let numpy = numpy_script(
        "diebold_mariano.py",
        &serde_json::json!({"model": model_errors, "baseline": naive_errors, "lag": dm.lag}),
    );
    let number = |key: &str| {
        numpy[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: {numpy}"))
    };
    assert_close("DM statistic", dm.statistic, number("statistic"));
    assert_close("DM p-value", dm.p_value, number("p_value"));
    assert_close("mean differential", dm.mean_difference, number("mean"));
    assert_close(
        "long-run variance",
        dm.long_run_variance,
        number("variance"),
    );

    // The run logs the test beside the skill.
    let registry = ModelRegistry::open(&RegistryArgs::local(), &data.lake_args)
        .await
        .expect("local registry");
    let ctx = data.context(registry);
    let plan = train_plan("bitcoin_prediction_s3", &unique("pricecast-BTCUSDT-1h"));
    let report = train_btc(&ctx, &plan).await;
    assert_eq!(report.diebold_mariano.as_ref(), Some(dm));
    let run = ctx.registry.get_run(&report.run_id).await.expect("run");
    // The local registry's JSON keeps metrics to the last digit or so.
    assert_close("logged dm_stat", run.metrics["dm_stat"], dm.statistic);
    assert_close("logged dm_p_value", run.metrics["dm_p_value"], dm.p_value);
    assert_close("logged skill", run.metrics["skill"], report.skill);
    assert_eq!(run.params["dm_lag"], dm.lag.to_string());
    assert_eq!(run.params["interval_level"], "0.9");
    eprintln!(
        "BTCUSDT 1h 2024, {WINDOWS} × {WINDOW_ROWS} rows: skill {:.5}, DM {:.4} (p {:.4}, lag {}), \
         coverage {:?}, decision {}",
        report.skill,
        dm.statistic,
        dm.p_value,
        dm.lag,
        report.interval_score.as_ref().map(|s| s.coverage),
        report.promotion.decision.as_str()
    );
}

/// A model that memorises noise: one unpruned tree on every feature.
fn memorising_forest() -> ModelParams {
    ModelParams {
        kind: ModelKind::RandomForest,
        trees: 1,
        max_depth: 64,
        min_samples_leaf: 1,
        ..ModelParams::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_refuses_a_model_that_does_not_beat_the_naive_forecast_and_serves_naive() {
    let folder = tempfile::tempdir().expect("tempdir");
    let data = FeatureLake::in_folder(folder.path(), three_months()).await;
    let registry = ModelRegistry::open(&RegistryArgs::local(), &data.lake_args)
        .await
        .expect("local registry");
    let ctx = data.context(registry);
    let registry = ctx.registry.clone();
    let model = unique("pricecast-BTCUSDT-1h");
    let mut plan = train_plan("bitcoin_prediction_s3", &model);
    plan.features = FeatureSelection::All;
    plan.params = memorising_forest();

    // The first model does not beat the naive forecast: it is not champion, a naive model is.
    let first = train_btc(&ctx, &plan).await;
    let decision = &first.promotion;
    assert_eq!(first.version, 1);
    assert_eq!(decision.decision, Decision::NaiveChampion, "{decision:?}");
    assert_eq!(decision.winner, Winner::Naive);
    let naive_mae = decision.naive_mae.expect("the naive forecast is scored");
    assert!(decision.new_mae > naive_mae, "{decision:?}");
    assert_eq!(decision.naive_version, Some(2));
    assert_eq!(alias(&registry, &model, CHAMPION).await, Some(2));
    assert_eq!(alias(&registry, &model, CHALLENGER).await, Some(1));
    for version in [1, 2] {
        let tags = registry.get_version(&model, version).await.expect("v").tags;
        assert_eq!(tags[TAG_DECISION], "naive_champion", "v{version}");
        assert_eq!(tags[TAG_WINNER], "naive");
        assert_eq!(tags[TAG_NEW_MAE], decision.new_mae.to_string());
        assert_eq!(tags[TAG_NAIVE_MAE], naive_mae.to_string());
        assert_eq!(tags[TAG_CHAMPION_MAE], "none");
        assert_eq!(tags[TAG_NAIVE_VERSION], "2");
    }
    // The naive forecast's MAE on the window is the baseline's there, by hand: the mean
    // |close(t+1) − close(t)| over the last WINDOW_ROWS candles with a next one.
    let closes: Vec<f64> = data
        .candles
        .iter()
        .map(|c| c.close.to_f64().expect("close"))
        .collect();
    let last = closes.len() - 1;
    let by_hand: f64 = (last - WINDOW_ROWS..last)
        .map(|t| (closes[t + 1] - closes[t]).abs())
        .sum::<f64>()
        / WINDOW_ROWS as f64;
    assert!(
        (naive_mae - by_hand).abs() < 1e-9 * by_hand,
        "{naive_mae} vs {by_hand}"
    );

    // The champion is a naive model with its own run, served through the same code: it
    // forecasts the last close, with the interval from its own walk-forward errors.
    let served = RegisteredModel::load(&registry, &model, CHAMPION)
        .await
        .expect("load")
        .expect("champion");
    assert_eq!(served.model.params.kind, ModelKind::Naive);
    assert_eq!(Some(served.run_id()), first.naive_run_id.as_ref());
    assert_eq!(served.tags[tags::MODEL_TYPE], "naive");
    assert_eq!(served.metric("skill"), Some(0.0));
    assert_eq!(
        served.metric("dm_stat"),
        None,
        "no test of naive against itself"
    );
    let training = data.training_data(&FeatureSelection::All).await;
    let rows = training.dataset.rows();
    assert_eq!(
        served
            .model
            .predict(&training.dataset, rows - 10..rows)
            .expect("predict"),
        training.dataset.last_close()[rows - 10..rows]
    );
    let interval = served.model.residual_interval.as_ref().expect("interval");
    assert!((interval.level() - 0.9).abs() < 1e-12);
    assert_eq!(interval.rows, WINDOWS * WINDOW_ROWS);
    assert_eq!(served.metric("residual_q05"), Some(interval.lower));
    assert_eq!(served.metric("residual_q95"), Some(interval.upper));

    // Again: the naive champion is the naive contender and stays; no second naive version.
    let second = train_btc(&ctx, &plan).await;
    assert_eq!(
        (
            second.version,
            second.promotion.decision,
            second.promotion.winner
        ),
        (3, Decision::Kept, Winner::Champion),
        "{:?}",
        second.promotion
    );
    assert_eq!(second.promotion.champion_version, Some(2));
    assert_eq!(second.promotion.champion_mae, Some(naive_mae));
    assert_eq!(alias(&registry, &model, CHAMPION).await, Some(2));

    // Forced, the bad model is champion; the next run finds it losing to the naive forecast
    // (the same model: the same MAE) and replaces it with a new naive version.
    plan.force_promote = true;
    let forced = train_btc(&ctx, &plan).await;
    assert_eq!(
        (forced.version, forced.promotion.decision),
        (4, Decision::Forced)
    );
    assert_eq!(alias(&registry, &model, CHAMPION).await, Some(4));
    plan.force_promote = false;
    let replaced = train_btc(&ctx, &plan).await;
    let decision = &replaced.promotion;
    assert_eq!(
        (replaced.version, decision.decision, decision.naive_version),
        (5, Decision::NaiveChampion, Some(6)),
        "{decision:?}"
    );
    assert_eq!(decision.champion_version, Some(4));
    assert_eq!(decision.champion_mae, Some(decision.new_mae));
    assert_eq!(alias(&registry, &model, CHAMPION).await, Some(6));
    let tags = registry.get_version(&model, 6).await.expect("v6").tags;
    assert_eq!(tags[TAG_CHAMPION_VERSION], "4");
    assert_eq!(tags[TAG_CHAMPION_MAE], decision.new_mae.to_string());
}

/// Three months of BTCUSDT 1h candles at the real times and volumes whose log returns follow
/// `r_t = 0.5 r_{t−1} + 0.004 ε_t` (seeded): yesterday's move predicts today's, a real signal
/// a linear model on the returns can learn and the naive forecast ignores.
fn autocorrelated_candles() -> Vec<Candle> {
    use rand::{Rng, SeedableRng};
    use rust_decimal::Decimal;
    use rust_decimal::prelude::FromPrimitive;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut normal = move || {
        let u: f64 = rng.random::<f64>().max(1e-300);
        let v: f64 = rng.random();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    };
    let price = |p: f64| Decimal::from_f64(p).expect("price").round_dp(2);
    let (mut close, mut r) = (42_000.0_f64, 0.0_f64);
    real_candles(three_months())
        .into_iter()
        .map(|mut candle| {
            let open = close;
            r = 0.5 * r + 0.004 * normal();
            close = open * r.exp();
            candle.open = price(open);
            candle.close = price(close);
            candle.high = price(open.max(close) * 1.001);
            candle.low = price(open.min(close) * 0.999);
            candle
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_beats_the_champion_and_the_naive_forecast_is_promoted() {
    let folder = tempfile::tempdir().expect("tempdir");
    let url = format!("file://{}", folder.path().display());
    let data = FeatureLake::of_candles(
        LakeArgs::for_url(url.parse().expect("lake URL")),
        autocorrelated_candles(),
    )
    .await;
    let registry = ModelRegistry::open(&RegistryArgs::local(), &data.lake_args)
        .await
        .expect("local registry");
    let ctx = data.context(registry);
    let registry = ctx.registry.clone();
    let model = unique("pricecast-BTCUSDT-1h");

    // A bad champion, forced in.
    let mut bad = train_plan("bitcoin_prediction_s3", &model);
    bad.features = FeatureSelection::All;
    bad.params = memorising_forest();
    bad.force_promote = true;
    let champion = train_btc(&ctx, &bad).await;
    assert_eq!(champion.promotion.decision, Decision::Forced);

    // The linear model on the returns finds the signal and beats both.
    let good = train_plan("bitcoin_prediction_s3", &model);
    let better = train_btc(&ctx, &good).await;
    let decision = &better.promotion;
    assert_eq!(
        (decision.decision, decision.winner),
        (Decision::Promoted, Winner::New),
        "{decision:?}"
    );
    let naive_mae = decision.naive_mae.expect("naive scored");
    let champion_mae = decision.champion_mae.expect("champion scored");
    assert!(
        decision.new_mae < naive_mae && decision.new_mae < champion_mae,
        "{decision:?}"
    );
    assert_eq!(alias(&registry, &model, CHAMPION).await, Some(2));
    assert_eq!(decision.naive_version, None, "no naive version registered");
    let tags = registry.get_version(&model, 2).await.expect("v2").tags;
    assert_eq!(tags[TAG_DECISION], "promoted");
    assert_eq!(tags[TAG_WINNER], "new");
    assert_eq!(tags[TAG_NAIVE_MAE], naive_mae.to_string());
    assert_eq!(tags[TAG_CHAMPION_MAE], champion_mae.to_string());
    // And clearly so, pooled over every window, not by chance.
    assert!(better.skill > 0.05, "skill {}", better.skill);
    let dm = better.diebold_mariano.as_ref().expect("tested");
    assert!(dm.statistic < 0.0 && dm.p_value < 0.01, "{dm:?}");

    // On its own, the same model is a first champion: it beats the naive forecast.
    let alone = unique("pricecast-BTCUSDT-1h");
    let first = train_btc(&ctx, &train_plan("bitcoin_prediction_s3", &alone)).await;
    assert_eq!(
        (first.version, first.promotion.decision),
        (1, Decision::FirstChampion)
    );
    assert_eq!(alias(&registry, &alone, CHAMPION).await, Some(1));
    eprintln!(
        "autocorrelated series: skill {:.4}, DM {:.3} (p {:.2e}), last window MAE {:.2} vs naive {naive_mae:.2}",
        better.skill, dm.statistic, dm.p_value, decision.new_mae
    );
}

/// The rows `range` of `data` as a dataset of their own.
fn rows_of(data: &Dataset, range: std::ops::Range<usize>) -> Dataset {
    let p = data.features();
    Dataset::new(
        data.feature_names().to_vec(),
        data.open_time_ms()[range.clone()].to_vec(),
        data.x()[range.start * p..range.end * p].to_vec(),
        data.last_close()[range.clone()].to_vec(),
        data.target_close()[range].to_vec(),
        data.horizon(),
        data.interval_ms(),
    )
    .expect("a slice of valid rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_90_percent_interval_covers_85_to_95_percent_of_held_out_real_candles() {
    // Every week of the bundled history in turn, as a weekly retrain would: the model and its
    // interval are made exactly as the train job makes them, from the rows known then (the
    // walk-forward windows' errors, WINDOWS × WINDOW_ROWS), and scored on the next week's
    // candles, which neither saw.
    let folder = tempfile::tempdir().expect("tempdir");
    let data = FeatureLake::in_folder(folder.path(), (day(2022, 1, 1), day(2026, 1, 1))).await;
    let training = data.training_data(&FeatureSelection::Price).await;
    let dataset = training.dataset;
    let rows = dataset.rows();
    let first = walk_forward_rows_needed(WINDOWS, WINDOW_ROWS, dataset.features(), 1);
    for params in [
        ModelParams::default(),
        ModelParams::of_kind(ModelKind::Naive),
    ] {
        let (mut inside, mut scored) = (0usize, 0usize);
        let mut origin = first;
        while origin + WINDOW_ROWS <= rows {
            let known = rows_of(&dataset, 0..origin);
            let fitted = train::fit_and_evaluate(
                Arc::new(known.clone()),
                params.clone(),
                WINDOWS,
                WINDOW_ROWS,
                DEFAULT_INTERVAL_LEVEL,
            )
            .await
            .expect("train");
            let interval = fitted
                .model
                .residual_interval
                .clone()
                .expect("the final model carries its interval");
            assert_eq!(interval, fitted.evaluation.residual_interval);
            let week = origin..origin + WINDOW_ROWS;
            let predicted = fitted
                .model
                .predict(&dataset, week.clone())
                .expect("predict");
            for (row, p) in week.zip(predicted) {
                let (low, high) = interval.around(p);
                let actual = dataset.target_close()[row];
                inside += usize::from(low <= actual && actual <= high);
                scored += 1;
            }
            origin += WINDOW_ROWS;
        }
        let coverage = inside as f64 / scored as f64;
        eprintln!(
            "{} on {scored} held-out hourly candles: 90% interval coverage {coverage:.4}",
            params.kind
        );
        assert!(scored > 100 * WINDOW_ROWS, "{scored} rows scored");
        assert!(
            (0.85..=0.95).contains(&coverage),
            "{}: coverage {coverage} over {scored} rows",
            params.kind
        );
    }
}
