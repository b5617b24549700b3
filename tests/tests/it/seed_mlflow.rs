//! What the seed app's Python scripts get from Pricecast's MLflow runs, on both real MLflow
//! servers tests/run.sh starts (artifacts through the proxy, artifacts straight in S3), read
//! with MLflow's own Python client:
//!
//! * the seed's prediction flow (`tests/python/seed_predict.py`: newest run of
//!   `bitcoin_prediction_s3`, `mlflow.pyfunc.load_model("runs:/<id>/linear_regression_model")`,
//!   `predict`) against `/price/predict` of a real API serving the same registry, for a model on
//!   the seed's features and for the default model, with failed runs and several series;
//! * `mlflow.pyfunc.load_model` of every model type (`tests/python/pyfunc_predict.py`) against
//!   Pricecast's own predictions on real rows, and MLflow's schema enforcement.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use pricecast_api::served_models::ServedModels;
use pricecast_jobs::train::{self, FeatureSelection, RunContext, TrainContext, TrainPlan};
use pricecast_shared::champion::{self, RegisteredModel};
use pricecast_shared::domain::{Interval, Symbol};
use pricecast_shared::features::{FeatureSpec, SEED_FEATURE_NAMES};
use pricecast_shared::lake::{Lake, LakeArgs, LakeUrl};
use pricecast_shared::model::{
    ANCHOR_FEATURE, DEFAULT_INTERVAL_LEVEL, LAST_CLOSE_INPUT, ModelKind, ModelParams,
};
use pricecast_shared::registry::{
    CHAMPION, MlflowRegistry, ModelRegistry, RegistryArgs, RunId, tags,
};
use pricecast_shared::series::SeriesScope;
use pricecast_tests::api::TestApp;
use pricecast_tests::db::TestDb;
use pricecast_tests::lake::TestS3;
use pricecast_tests::pipeline::{PIPELINE_CANDLES, TrainedPipeline, export_and_build_features};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Evaluation windows and rows per window: small, the numbers are not what is tested here.
const EVAL_WINDOWS: usize = 2;
const EVAL_WINDOW_ROWS: usize = 48;
/// The seed app's experiment, where its scripts look for the newest run.
const SEED_EXPERIMENT: &str = "bitcoin_prediction_s3";

fn required(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!(
            "{variable} is not set: these tests need the MLflow and S3 servers tests/run.sh \
             starts; run tests/run.sh"
        )
    })
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:012x}", rand::random::<u64>() >> 16)
}

fn symbol(name: &str) -> Symbol {
    name.parse().expect("symbol")
}

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("expected a number, got {value}"))
}

/// Equal within 1e-9 relative.
fn assert_close(what: &str, got: f64, expected: f64) {
    let tolerance = 1e-9 * got.abs().max(expected.abs());
    assert!(
        (got - expected).abs() <= tolerance,
        "{what}: {got} is not {expected}"
    );
}

/// A database and a lake folder with the newest [`PIPELINE_CANDLES`] bundled hourly candles of
/// some symbols and their feature frames (every feature, horizon 1).
struct Series {
    db: TestDb,
    lake: Lake,
    _dir: tempfile::TempDir,
}

impl Series {
    async fn build(symbols: &[&str]) -> Self {
        pricecast_shared::telemetry::init_for_tests();
        let db = TestDb::sqlite().await;
        let dir = tempfile::tempdir().expect("lake folder");
        let lake = Lake::open(&LakeArgs::for_url(LakeUrl::Local(dir.path().to_path_buf())))
            .await
            .expect("open the lake");
        for name in symbols {
            db.load_bundled(name, PIPELINE_CANDLES).await;
            export_and_build_features(
                &db.store,
                &lake,
                &symbol(name),
                Interval::H1,
                FeatureSpec::all(vec![1]),
            )
            .await
            .expect("export and build features");
        }
        Self {
            db,
            lake,
            _dir: dir,
        }
    }

    fn context(&self, registry: Arc<ModelRegistry>) -> TrainContext {
        TrainContext {
            lake: self.lake.clone(),
            registry,
            cancel: CancellationToken::new(),
        }
    }
}

/// A client of the MLflow server named by `variable`, with the S3 server's settings for
/// artifacts on `s3://`.
fn mlflow(variable: &str, s3: &TestS3) -> Arc<ModelRegistry> {
    let args = RegistryArgs::mlflow(required(variable).parse().expect("MLflow URI"));
    Arc::new(ModelRegistry::Mlflow(Box::new(
        MlflowRegistry::new(&args, s3.args()).expect("MLflow client"),
    )))
}

/// Hourly series of `symbols`, logged to `experiment`, named by `model_pattern`, always
/// promoted (so that `/price/predict` serves the newest model).
fn plan(
    symbols: &[&str],
    features: FeatureSelection,
    params: ModelParams,
    experiment: &str,
    model_pattern: &str,
) -> TrainPlan {
    let mut registry = RegistryArgs::local();
    registry.mlflow_experiment_name = experiment.to_owned();
    registry.model_name = model_pattern.to_owned();
    TrainPlan {
        symbols: symbols.iter().map(|s| symbol(s)).collect(),
        intervals: vec![Interval::H1],
        params,
        horizon: 1,
        features,
        eval_windows: EVAL_WINDOWS,
        eval_window_rows: EVAL_WINDOW_ROWS,
        interval_level: DEFAULT_INTERVAL_LEVEL,
        registry,
        force_promote: true,
        scope: SeriesScope::default(),
    }
}

/// Runs `tests/python/<script>` with MLflow's Python on a JSON file holding `input`, with the
/// tracking server `uri` and the S3 server's settings as the seed app's environment gives
/// them; returns what it prints.
fn python(script: &str, uri: &str, s3: &TestS3, input: &Value) -> Value {
    let python = required("PRICECAST_TEST_MLFLOW_PYTHON");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(script);
    let file = tempfile::NamedTempFile::new().expect("input file");
    std::fs::write(file.path(), input.to_string()).expect("write the input");
    let output = Command::new(&python)
        .arg(&path)
        .arg(file.path())
        .env("MLFLOW_TRACKING_URI", uri)
        .env("MLFLOW_S3_ENDPOINT_URL", &s3.endpoint)
        .env("AWS_ACCESS_KEY_ID", &s3.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &s3.secret_access_key)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}; run tests/run.sh"));
    assert!(
        output.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} prints JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Every run of `experiment` (deleted ones too) as MLflow's client lists them.
fn experiment_runs(uri: &str, s3: &TestS3, experiment: &str) -> Vec<Value> {
    let python = required("PRICECAST_TEST_MLFLOW_PYTHON");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/mlflow_check.py");
    let output = Command::new(&python)
        .arg(&script)
        .args([uri, "-", "--experiment", experiment])
        .env("MLFLOW_S3_ENDPOINT_URL", &s3.endpoint)
        .env("AWS_ACCESS_KEY_ID", &s3.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &s3.secret_access_key)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}; run tests/run.sh"));
    assert!(
        output.status.success(),
        "mlflow_check.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: Value = serde_json::from_slice(&output.stdout).expect("mlflow_check.py prints JSON");
    read["experiment_runs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// `GET /price/predict` with the defaults, as the seed app's clients call it.
async fn served_forecast(app: &TestApp) -> Value {
    let reply = app.get("/price/predict").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

/// The frame the seed app's service builds for the newest candle, from what `/price/predict`
/// used: the candle's `timestamp` and `price`, the feature values by name, and the close
/// they start from as `last_close`.
fn frame_of(forecast: &Value) -> Value {
    let mut row = forecast["features_used"]
        .as_object()
        .expect("features_used")
        .clone();
    row.insert("timestamp".into(), forecast["based_on"].clone());
    row.insert("price".into(), forecast["current_price"].clone());
    row.insert(LAST_CLOSE_INPUT.into(), forecast["current_price"].clone());
    json!([row])
}

/// A run whose logging fails midway, after its params and metrics (here: an input example
/// taken from rows with other features than the model's). Returns the training error.
async fn fail_a_run(ctx: &TrainContext, plan: &TrainPlan) -> pricecast_shared::Error {
    let btc = symbol("BTCUSDT");
    let read = |selection: FeatureSelection| {
        let lake = ctx.lake.clone();
        let btc = btc.clone();
        async move {
            train::read_training_data(&lake, &btc, Interval::H1, &selection, 1)
                .await
                .expect("training data")
        }
    };
    let price = read(FeatureSelection::Price).await;
    let seed = read(FeatureSelection::Seed).await;
    let fitted = train::fit_and_evaluate(
        Arc::new(price.dataset.clone()),
        plan.params.clone(),
        EVAL_WINDOWS,
        EVAL_WINDOW_ROWS,
        DEFAULT_INTERVAL_LEVEL,
    )
    .await
    .expect("fit");
    let context = RunContext {
        symbol: &btc,
        interval: Interval::H1,
        model_name: &plan.registry.model_name_for(&btc, Interval::H1),
        plan,
        dataset: &seed.dataset,
        feature_set_hash: &seed.feature_set_hash,
    };
    train::record(&ctx.registry, &context, &fitted, None)
        .await
        .expect_err("the input example does not fit the model")
}

/// The seed's flow on the server named by `variable`: it loads the model `/price/predict`
/// serves and predicts its forecast, whatever else the experiment holds.
async fn the_seed_flow_predicts_the_served_forecast(variable: &str) {
    let s3 = TestS3::new();
    let uri = required(variable);
    let series = Series::build(&["BTCUSDT", "ETHUSDT"]).await;
    let registry = mlflow(variable, &s3);
    let ctx = series.context(registry.clone());
    let pattern = format!("{}-{{symbol}}-{{interval}}", unique("seed"));
    assert_eq!(
        RegistryArgs::local().mlflow_experiment_name,
        SEED_EXPERIMENT,
        "the default experiment is the seed's"
    );

    // A linear model on the seed's features for both symbols, BTCUSDT configured first: it
    // is trained last, so its run is the newest.
    let mut plan = plan(
        &["BTCUSDT", "ETHUSDT"],
        FeatureSelection::Seed,
        ModelParams::default(),
        SEED_EXPERIMENT,
        &pattern,
    );
    train::run(&ctx, &plan).await.expect("train both series");
    let models = Arc::new(ServedModels::new(
        registry.clone(),
        plan.registry.clone(),
        vec![(symbol("BTCUSDT"), Interval::H1)],
    ));
    let app = TestApp::start(TrainedPipeline::app_state(&series.db, models.clone()).await).await;
    let served = served_forecast(&app).await;
    let frame = frame_of(&served);
    let seed = python("seed_predict.py", &uri, &s3, &frame);
    let run = RunId(seed["run_id"].as_str().expect("run id").to_owned());
    assert_eq!(
        seed["run_id"], served["model"]["run_id"],
        "the newest run holds the model /price/predict serves: {seed}"
    );
    let found = registry.get_run(&run).await.expect("run");
    assert_eq!(found.tags[tags::SERIES], "BTCUSDT 1h");
    let mut picked: Vec<&str> = seed["features"]
        .as_array()
        .expect("the features the seed picked")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    picked.sort_unstable();
    let mut seed_features = SEED_FEATURE_NAMES.to_vec();
    seed_features.sort_unstable();
    assert_eq!(picked, seed_features, "{seed}");
    assert!(seed["error"].is_null(), "{seed}");
    let predicted = number(&served["predicted_price"]);
    let last_close = number(&served["current_price"]);
    let previous_close = number(&served["features_used"][ANCHOR_FEATURE]);
    assert_close(
        "the frame with last_close",
        number(&seed["frame_prediction"]),
        predicted,
    );
    assert_close(
        "the seed's columns alone: the same return from price_t-1",
        number(&seed["prediction"]),
        predicted * previous_close / last_close,
    );

    // The default model (linear on the price features): the seed's flow loads it and, given
    // its inputs, predicts what the API serves; the seed's six columns are not its inputs,
    // and without last_close it has no close to start from.
    plan.symbols = vec![symbol("BTCUSDT")];
    plan.features = FeatureSelection::Price;
    train::run(&ctx, &plan)
        .await
        .expect("train the default model");
    models.refresh().await;
    let served = served_forecast(&app).await;
    assert_ne!(
        served["model"]["run_id"],
        run.0.as_str(),
        "the new champion"
    );
    let frame = frame_of(&served);
    let default = python("seed_predict.py", &uri, &s3, &frame);
    assert_eq!(default["run_id"], served["model"]["run_id"], "{default}");
    assert_close(
        "the default model's frame",
        number(&default["frame_prediction"]),
        number(&served["predicted_price"]),
    );
    let error = default["error"].as_str().unwrap_or_default();
    assert!(
        default["prediction"].is_null() && error.contains("missing inputs"),
        "{default}"
    );
    let model_uri = format!(
        "runs:/{}/{}",
        default["run_id"].as_str().expect("run id"),
        champion::SEED_MODEL_DIR
    );
    let without = python(
        "pyfunc_predict.py",
        &uri,
        &s3,
        &json!({"frame": frame, "cases": [{"model_uri": model_uri, "drop": [LAST_CLOSE_INPUT]}]}),
    );
    assert_eq!(
        without[0]["error_class"], "SCHEMA_ENFORCEMENT_FAILED",
        "{without}"
    );
    assert!(
        without[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains(LAST_CLOSE_INPUT)),
        "{without}"
    );

    // A run that fails is marked FAILED, tagged with the reason and deleted: the seed's flow
    // still loads the model above.
    let before = experiment_runs(&uri, &s3, SEED_EXPERIMENT);
    let error = fail_a_run(&ctx, &plan).await;
    let after = python("seed_predict.py", &uri, &s3, &frame);
    assert_eq!(after["run_id"], default["run_id"], "{after}");
    assert_eq!(after["frame_prediction"], default["frame_prediction"]);
    let runs = experiment_runs(&uri, &s3, SEED_EXPERIMENT);
    let failed: Vec<&Value> = runs.iter().filter(|r| !before.contains(r)).collect();
    assert_eq!(failed.len(), 1, "one new run: {runs:?}");
    assert_eq!(failed[0]["status"], "FAILED", "{runs:?}");
    assert_eq!(failed[0]["lifecycle_stage"], "deleted", "{runs:?}");
    let failed = registry
        .get_run(&RunId(
            failed[0]["run_id"].as_str().expect("run id").to_owned(),
        ))
        .await
        .expect("a deleted run is still read");
    assert_eq!(
        failed.tags[tags::FAILURE],
        pricecast_shared::telemetry::error_chain(&error)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_flow_predicts_the_served_forecast_through_the_artifact_proxy() {
    the_seed_flow_predicts_the_served_forecast("PRICECAST_TEST_MLFLOW_URI").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_flow_predicts_the_served_forecast_with_artifacts_in_s3() {
    the_seed_flow_predicts_the_served_forecast("PRICECAST_TEST_MLFLOW_S3_URI").await;
}

/// A model of `kind` on every feature, trained into the server named by `variable`: loaded
/// with `mlflow.pyfunc.load_model` from both of its folders, it predicts what Pricecast
/// predicts on real rows; without `last_close` it starts from `price_t-1`; MLflow refuses a
/// frame without one of its features.
async fn pyfunc_predicts_as_pricecast(kind: ModelKind, variable: &str) {
    let s3 = TestS3::new();
    let uri = required(variable);
    let series = Series::build(&["BTCUSDT"]).await;
    let registry = mlflow(variable, &s3);
    let ctx = series.context(registry.clone());
    let params = ModelParams {
        trees: 20,
        ..ModelParams::of_kind(kind)
    };
    let plan = plan(
        &["BTCUSDT"],
        FeatureSelection::All,
        params,
        &unique("pyfunc"),
        &unique("pyfunc-BTCUSDT-1h"),
    );
    let btc = symbol("BTCUSDT");
    let report = train::train_series(&ctx, &plan, &btc, Interval::H1)
        .await
        .expect("train");
    let model_name = plan.registry.model_name_for(&btc, Interval::H1);
    let served = RegisteredModel::load(&registry, &model_name, CHAMPION)
        .await
        .expect("load")
        .expect("champion");
    assert_eq!(served.run_id(), &report.run_id);
    assert_eq!(served.model.params.kind, kind);
    let data = train::read_training_data(&ctx.lake, &btc, Interval::H1, &FeatureSelection::All, 1)
        .await
        .expect("training data")
        .dataset;
    let n = data.rows();
    let rows: Vec<usize> = (0..n).step_by(n / 40).chain(n - 8..n).collect();
    let names = data.feature_names();
    let anchor = names
        .iter()
        .position(|f| f == ANCHOR_FEATURE)
        .expect("every feature includes price_t-1");
    let mut frame = Vec::new();
    let mut expected = Vec::new();
    let mut from_previous = Vec::new();
    for &i in &rows {
        let mut row: serde_json::Map<String, Value> = names
            .iter()
            .cloned()
            .zip(data.row(i).iter().map(|&v| json!(v)))
            .collect();
        let last_close = data.last_close()[i];
        row.insert(LAST_CLOSE_INPUT.into(), json!(last_close));
        frame.push(Value::Object(row));
        let close = served
            .model
            .predict_close(data.row(i), last_close)
            .expect("Pricecast's forecast");
        expected.push(close);
        from_previous.push(close * data.row(i)[anchor] / last_close);
    }
    let folder = |dir: &str| format!("runs:/{}/{dir}", report.run_id);
    let seed_dir = folder(champion::SEED_MODEL_DIR);
    let read = python(
        "pyfunc_predict.py",
        &uri,
        &s3,
        &json!({
            "frame": frame,
            "cases": [
                {"model_uri": seed_dir},
                {"model_uri": folder(champion::MODEL_DIR)},
                {"model_uri": seed_dir, "drop": [LAST_CLOSE_INPUT]},
                {"model_uri": seed_dir, "drop": ["ma_10"]},
            ],
        }),
    );
    for (case, wanted) in [(0, &expected), (1, &expected), (2, &from_previous)] {
        let got = read[case]["predictions"]
            .as_array()
            .unwrap_or_else(|| panic!("case {case} predicts: {read}"));
        assert_eq!(got.len(), rows.len(), "case {case}");
        for ((row, got), wanted) in rows.iter().zip(got).zip(wanted.iter()) {
            assert_close(
                &format!("{kind} case {case}, row {row}"),
                number(got),
                *wanted,
            );
        }
    }
    assert_eq!(
        read[3]["error_class"], "SCHEMA_ENFORCEMENT_FAILED",
        "{read}"
    );
    assert!(
        read[3]["error"]
            .as_str()
            .is_some_and(|e| e.contains("missing inputs") && e.contains("ma_10")),
        "{read}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linear_model_loads_with_pyfunc_and_predicts_as_pricecast() {
    pyfunc_predicts_as_pricecast(ModelKind::Linear, "PRICECAST_TEST_MLFLOW_URI").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ridge_model_loads_with_pyfunc_and_predicts_as_pricecast() {
    pyfunc_predicts_as_pricecast(ModelKind::Ridge, "PRICECAST_TEST_MLFLOW_S3_URI").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lasso_model_loads_with_pyfunc_and_predicts_as_pricecast() {
    pyfunc_predicts_as_pricecast(ModelKind::Lasso, "PRICECAST_TEST_MLFLOW_URI").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elastic_net_model_loads_with_pyfunc_and_predicts_as_pricecast() {
    pyfunc_predicts_as_pricecast(ModelKind::ElasticNet, "PRICECAST_TEST_MLFLOW_S3_URI").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_forest_loads_with_pyfunc_and_predicts_as_pricecast() {
    pyfunc_predicts_as_pricecast(ModelKind::RandomForest, "PRICECAST_TEST_MLFLOW_URI").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_naive_model_loads_with_pyfunc_and_predicts_the_last_close() {
    pyfunc_predicts_as_pricecast(ModelKind::Naive, "PRICECAST_TEST_MLFLOW_S3_URI").await;
}
