//! Model registry tests against two real MLflow tracking servers started by tests/run.sh (one
//! serving artifacts through its proxy, one with artifacts in the local S3 server like the seed
//! app's MinIO) and the local registry on a folder and on S3. What the MLflow backends wrote is
//! read back by MLflow's own Python client (`tests/python/mlflow_check.py`).

use std::path::PathBuf;

use pricecast_shared::Error;
use pricecast_shared::lake::{LakeArgs, LakeUrl};
use pricecast_shared::registry::promotion::{
    TAG_CHAMPION_MAE, TAG_DECISION, TAG_NAIVE_MAE, TAG_NAIVE_VERSION, TAG_NEW_MAE, TAG_WINNER,
};
use pricecast_shared::registry::{
    Bytes, CHALLENGER, CHAMPION, Decision, GateScores, Metric, ModelRegistry, RegistryArgs, RunId,
    RunSearch, RunStatus, Winner, tags,
};
use pricecast_tests::lake::TestS3;
use serde_json::Value;

const MLMODEL: &str = "artifact_path: model\nflavors:\n  pricecast:\n    model_type: linear_regression\n    data: model.bin\nmodel_uuid: 0f3c\n";
const SCHEMA: &str = r#"{"inputs":[{"name":"price_t-1","type":"double"},{"name":"ma_10","type":"double"}],"target":"close_t+1"}"#;

fn required(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: the registry tests need the MLflow servers that tests/run.sh starts; run tests/run.sh")
    })
}

/// The gate's numbers; the new version and the champion are not naive models.
fn scores(new_mae: f64, champion_mae: Option<f64>, naive_mae: Option<f64>) -> GateScores {
    GateScores {
        new_mae,
        new_is_naive: false,
        champion_mae,
        champion_is_naive: false,
        naive_mae,
    }
}

/// For decisions the naive forecast does not win: registers nothing.
async fn no_naive_version() -> Result<u64, Error> {
    panic!("the naive forecast did not win: no naive version is registered")
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:012x}", rand::random::<u64>() >> 16)
}

/// A client of the MLflow server named by `variable`, with the S3 server's settings for
/// artifacts on `s3://`.
fn mlflow(variable: &str, s3: &TestS3) -> ModelRegistry {
    let args = RegistryArgs::mlflow(required(variable).parse().expect("MLflow URI"));
    ModelRegistry::Mlflow(Box::new(
        pricecast_shared::registry::MlflowRegistry::new(&args, s3.args()).expect("MLflow client"),
    ))
}

async fn local(url: &str, s3: &TestS3) -> ModelRegistry {
    let mut lake = s3.args();
    lake.lake_url = url.parse::<LakeUrl>().expect("lake URL");
    ModelRegistry::open(&RegistryArgs::local(), &lake)
        .await
        .expect("local registry")
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A model file that is not valid UTF-8 and larger than one buffer.
fn model_bytes() -> Bytes {
    Bytes::from(
        (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<u8>>(),
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    // The test Python is the independent reader; ask it for the digest of what we sent.
    let python = required("PRICECAST_TEST_MLFLOW_PYTHON");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("model.bin");
    std::fs::write(&path, bytes).expect("write");
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest())",
        ])
        .arg(&path)
        .output()
        .expect("python");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs `tests/python/mlflow_check.py` with MLflow's Python client and returns its JSON.
fn mlflow_check(uri: &str, run: &RunId, model: Option<&str>, s3: &TestS3) -> Value {
    let python = required("PRICECAST_TEST_MLFLOW_PYTHON");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/mlflow_check.py");
    let mut command = std::process::Command::new(&python);
    command
        .arg(&script)
        .arg(uri)
        .arg(&run.0)
        .env("MLFLOW_S3_ENDPOINT_URL", &s3.endpoint)
        .env("AWS_ACCESS_KEY_ID", &s3.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &s3.secret_access_key)
        .env("AWS_DEFAULT_REGION", "us-east-1");
    if let Some(model) = model {
        command.args(["--model", model, "--alias", CHAMPION, "--alias", CHALLENGER]);
        command.args(["--file", "model/model.bin"]);
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

/// What a full cycle produced.
struct Cycle {
    run: RunId,
    model: String,
    version: u64,
}

/// Experiment → run with tags, 150 params and 1,200 metric values (more than one batch of
/// each) → artifacts → finished → registered → promoted (no champion yet).
async fn full_cycle(registry: &ModelRegistry) -> Cycle {
    let experiment = registry
        .experiment(&unique("bitcoin_prediction_s3"))
        .await
        .expect("experiment");
    let run = registry
        .start_run(
            &experiment,
            &pairs(&[
                (tags::GIT_REVISION, "0123abcd"),
                (
                    tags::DATA_RANGE,
                    "2024-01-01T00:00:00Z..2024-02-01T00:00:00Z",
                ),
                (tags::FEATURE_SET_HASH, "f00d"),
                (tags::MODEL_TYPE, "linear_regression"),
            ]),
        )
        .await
        .expect("run");
    let params: Vec<(String, String)> = (0..150)
        .map(|i| (format!("param_{i:03}"), format!("value {i}")))
        .collect();
    registry.log_params(&run, &params).await.expect("params");
    let mut metrics: Vec<Metric> = (0..1200)
        .map(|i| Metric {
            key: "fold_mae".into(),
            value: f64::from(i) / 10.0,
            step: i64::from(i),
        })
        .collect();
    metrics.push(Metric::new("mae", 123.25));
    registry.log_metrics(&run, &metrics).await.expect("metrics");
    registry
        .set_tags(&run, &pairs(&[(tags::SERIES, "BTCUSDT 1h")]))
        .await
        .expect("tags");
    let artifacts = [
        ("model/model.bin", model_bytes()),
        ("model/MLmodel", Bytes::from_static(MLMODEL.as_bytes())),
        (
            "model/feature_schema.json",
            Bytes::from_static(SCHEMA.as_bytes()),
        ),
        ("metrics.json", Bytes::from_static(br#"{"mae":123.25}"#)),
    ];
    for (path, bytes) in &artifacts {
        registry
            .log_artifact(&run, path, bytes.clone())
            .await
            .unwrap_or_else(|e| panic!("artifact {path}: {e}"));
    }
    let back = registry
        .read_artifact(&run, "model/model.bin")
        .await
        .expect("read back");
    assert_eq!(back, model_bytes());
    registry
        .finish_run(&run, RunStatus::Finished)
        .await
        .expect("finish");
    let found = registry.get_run(&run).await.expect("get run");
    assert_eq!(found.status, RunStatus::Finished);
    assert_eq!(found.params.len(), 150);
    assert_eq!(found.metrics["fold_mae"], 119.9);
    assert_eq!(found.tags[tags::MODEL_TYPE], "linear_regression");
    let model = unique("pricecast-BTCUSDT-1h");
    let version = registry
        .register_version(&model, &run, "model")
        .await
        .expect("register");
    assert_eq!(version.version, 1);
    assert_eq!(version.run_id, run);
    let decision = registry
        .promote(
            &model,
            version.version,
            &scores(123.25, None, Some(130.0)),
            false,
            no_naive_version,
        )
        .await
        .expect("promote");
    assert_eq!(decision.decision, Decision::FirstChampion);
    let champion = registry.get_alias(&model, CHAMPION).await.expect("alias");
    assert_eq!(champion.map(|v| v.version), Some(1));
    Cycle {
        run,
        model,
        version: version.version,
    }
}

/// Checks with MLflow's client that everything of [`full_cycle`] is on the server.
fn assert_mlflow_has_cycle(uri: &str, cycle: &Cycle, s3: &TestS3, artifact_scheme: &str) {
    let read = mlflow_check(uri, &cycle.run, Some(&cycle.model), s3);
    let run = &read["run"];
    assert_eq!(run["status"], "FINISHED");
    assert!(
        run["artifact_uri"]
            .as_str()
            .is_some_and(|u| u.starts_with(artifact_scheme)),
        "{run}"
    );
    assert_eq!(run["params"].as_object().map(|p| p.len()), Some(150));
    assert_eq!(run["params"]["param_149"], "value 149");
    assert_eq!(run["metrics"]["mae"].as_f64(), Some(123.25));
    assert_eq!(run["metrics"]["fold_mae"].as_f64(), Some(119.9));
    assert_eq!(run["tags"][tags::GIT_REVISION], "0123abcd");
    assert_eq!(run["tags"][tags::FEATURE_SET_HASH], "f00d");
    assert_eq!(run["tags"][tags::SERIES], "BTCUSDT 1h");
    let artifacts: Vec<&str> = read["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        artifacts,
        [
            "metrics.json",
            "model/MLmodel",
            "model/feature_schema.json",
            "model/model.bin"
        ]
    );
    let model = model_bytes();
    assert_eq!(read["files"]["model/model.bin"]["size"], model.len());
    assert_eq!(
        read["files"]["model/model.bin"]["sha256"],
        sha256_hex(&model),
        "the model file round-trips byte for byte"
    );
    let versions = read["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert_eq!(versions[0]["version"], cycle.version);
    assert_eq!(versions[0]["run_id"], cycle.run.0.as_str());
    assert_eq!(versions[0]["tags"][TAG_DECISION], "first_champion");
    assert_eq!(read["aliases"][CHAMPION], 1);
    assert_eq!(read["aliases"][CHALLENGER], 1);
}

#[tokio::test]
async fn mlflow_with_artifact_proxy_full_cycle_read_back_by_mlflow() {
    let s3 = TestS3::new();
    let registry = mlflow("PRICECAST_TEST_MLFLOW_URI", &s3);
    let cycle = full_cycle(&registry).await;
    assert_mlflow_has_cycle(
        &required("PRICECAST_TEST_MLFLOW_URI"),
        &cycle,
        &s3,
        "mlflow-artifacts:",
    );
}

#[tokio::test]
async fn mlflow_with_s3_artifacts_full_cycle_read_back_by_mlflow() {
    let s3 = TestS3::new();
    let registry = mlflow("PRICECAST_TEST_MLFLOW_S3_URI", &s3);
    let cycle = full_cycle(&registry).await;
    assert_mlflow_has_cycle(
        &required("PRICECAST_TEST_MLFLOW_S3_URI"),
        &cycle,
        &s3,
        "s3://",
    );
}

#[tokio::test]
async fn local_registry_full_cycle_on_a_folder() {
    let s3 = TestS3::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = local(&format!("file://{}", dir.path().display()), &s3).await;
    let cycle = full_cycle(&registry).await;
    // Plain files anyone can read: the run document and the model file, byte for byte.
    let root = dir.path().join("registry");
    let run: Value = serde_json::from_slice(
        &std::fs::read(root.join(format!("runs/{}/run.json", cycle.run))).expect("run.json"),
    )
    .expect("run JSON");
    assert_eq!(run["status"], "FINISHED");
    assert_eq!(run["params"]["param_000"], "value 0");
    let model = std::fs::read(root.join(format!("runs/{}/artifacts/model/model.bin", cycle.run)))
        .expect("model file");
    assert_eq!(model, model_bytes());
    let alias: Value = serde_json::from_slice(
        &std::fs::read(root.join(format!("models/{}/aliases/champion.json", cycle.model)))
            .expect("alias"),
    )
    .expect("alias JSON");
    assert_eq!(alias["version"], 1);
}

#[tokio::test]
async fn local_registry_full_cycle_on_s3() {
    let s3 = TestS3::new();
    let registry = local(&s3.url(), &s3).await;
    assert!(registry.location().starts_with("s3://"));
    let cycle = full_cycle(&registry).await;
    let version = registry
        .get_version(&cycle.model, cycle.version)
        .await
        .expect("version");
    assert!(version.source.ends_with("/artifacts/model"), "{version:?}");
    assert_eq!(version.tags[TAG_DECISION], "first_champion");
}

/// no champion → champion; worse → challenger only; better → champion; forced → champion;
/// beaten by the naive forecast → a naive version is registered and becomes champion.
async fn promotion_gate(registry: &ModelRegistry) -> (String, RunId) {
    let cycle = full_cycle(registry).await; // version 1, champion with MAE 123.25
    let model = &cycle.model;
    let register = async || {
        registry
            .register_version(model, &cycle.run, "model")
            .await
            .expect("register")
            .version
    };
    let v2 = register().await;
    let worse = registry
        .promote(
            model,
            v2,
            &scores(130.0, Some(123.25), Some(140.0)),
            false,
            no_naive_version,
        )
        .await
        .expect("worse");
    assert_eq!(worse.decision, Decision::Kept);
    let alias = |name: &'static str| async move {
        registry
            .get_alias(model, name)
            .await
            .expect("alias")
            .map(|v| v.version)
    };
    assert_eq!(alias(CHAMPION).await, Some(1), "champion unchanged");
    assert_eq!(alias(CHALLENGER).await, Some(v2));
    let kept = registry.get_version(model, v2).await.expect("v2");
    assert_eq!(kept.tags[TAG_DECISION], "kept_challenger");
    assert_eq!(kept.tags[TAG_NEW_MAE], "130");
    assert_eq!(kept.tags[TAG_CHAMPION_MAE], "123.25");

    let v3 = register().await;
    let better = registry
        .promote(
            model,
            v3,
            &scores(99.5, Some(120.0), Some(140.0)),
            false,
            no_naive_version,
        )
        .await
        .expect("better");
    assert_eq!(better.decision, Decision::Promoted);
    assert_eq!(better.champion_version, Some(1));
    assert_eq!(alias(CHAMPION).await, Some(v3));

    let v4 = register().await;
    let forced = registry
        .promote(
            model,
            v4,
            &scores(500.0, Some(99.5), Some(140.0)),
            true,
            no_naive_version,
        )
        .await
        .expect("forced");
    assert_eq!(forced.decision, Decision::Forced);
    assert_eq!(alias(CHAMPION).await, Some(v4));
    assert_eq!(alias(CHALLENGER).await, Some(v4));

    // The forced champion and the new version both lose to the naive forecast: a naive version
    // (here the same run registered again) is registered and takes `champion`.
    let v5 = register().await;
    let naive = registry
        .promote(
            model,
            v5,
            &scores(480.0, Some(500.0), Some(140.0)),
            false,
            async || Ok(register().await),
        )
        .await
        .expect("naive");
    assert_eq!(
        (naive.decision, naive.winner),
        (Decision::NaiveChampion, Winner::Naive)
    );
    let v6 = naive.naive_version.expect("a naive version");
    assert_eq!(v6, v5 + 1);
    assert_eq!(alias(CHAMPION).await, Some(v6));
    assert_eq!(
        alias(CHALLENGER).await,
        Some(v5),
        "the new version is the challenger"
    );
    for version in [v5, v6] {
        let tagged = registry.get_version(model, version).await.expect("version");
        assert_eq!(tagged.tags[TAG_DECISION], "naive_champion");
        assert_eq!(tagged.tags[TAG_WINNER], "naive");
        assert_eq!(tagged.tags[TAG_NEW_MAE], "480");
        assert_eq!(tagged.tags[TAG_CHAMPION_MAE], "500");
        assert_eq!(tagged.tags[TAG_NAIVE_MAE], "140");
        assert_eq!(tagged.tags[TAG_NAIVE_VERSION], v6.to_string());
    }
    (cycle.model, cycle.run)
}

#[tokio::test]
async fn promotion_gate_on_mlflow_read_back_by_mlflow() {
    let s3 = TestS3::new();
    let registry = mlflow("PRICECAST_TEST_MLFLOW_URI", &s3);
    let (model, run) = promotion_gate(&registry).await;
    let read = mlflow_check(
        &required("PRICECAST_TEST_MLFLOW_URI"),
        &run,
        Some(&model),
        &s3,
    );
    assert_eq!(read["aliases"][CHAMPION], 6);
    let versions = read["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 6);
    assert_eq!(versions[1]["tags"][TAG_DECISION], "kept_challenger");
    assert_eq!(versions[1]["tags"][TAG_NEW_MAE], "130");
    assert_eq!(versions[1]["tags"][TAG_CHAMPION_MAE], "123.25");
    assert_eq!(versions[2]["tags"][TAG_DECISION], "promoted");
    assert_eq!(versions[3]["tags"][TAG_DECISION], "forced");
    assert_eq!(versions[5]["tags"][TAG_DECISION], "naive_champion");
    assert_eq!(versions[5]["tags"][TAG_NAIVE_MAE], "140");
}

#[tokio::test]
async fn promotion_gate_on_the_local_registry() {
    let s3 = TestS3::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = local(&format!("file://{}", dir.path().display()), &s3).await;
    promotion_gate(&registry).await;
}

#[tokio::test]
async fn an_unreachable_mlflow_names_the_setting() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let mut args = RegistryArgs::mlflow(format!("http://127.0.0.1:{port}").parse().expect("url"));
    args.mlflow_http_request_max_retries = 1;
    args.mlflow_tracking_password = Some("hunter2".to_owned().into());
    args.mlflow_tracking_username = Some("alice".into());
    let registry = ModelRegistry::open(&args, &LakeArgs::for_url(LakeUrl::Memory))
        .await
        .expect("client");
    let err = registry
        .experiment("bitcoin_prediction_s3")
        .await
        .expect_err("closed port");
    assert!(matches!(err, Error::MlflowUnreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("MLFLOW_TRACKING_URI"), "{text}");
    assert!(text.contains(&port.to_string()), "{text}");
    assert!(!text.contains("hunter2") && !format!("{registry:?}").contains("hunter2"));
    // The HTTP client's error is the source, not folded into the message.
    let source = std::error::Error::source(&err).expect("the connection error as the source");
    assert!(
        source
            .downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_connect),
        "{source:?}"
    );
    assert!(text.contains("the connection failed"), "{text}");
    let chain = pricecast_shared::telemetry::error_chain(&err);
    assert!(!chain.contains("hunter2"), "{chain}");
}

#[tokio::test]
async fn an_erroring_mlflow_is_retried_then_reported() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        let mut served = 0u32;
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buffer = [0u8; 4096];
            let _ = socket.read(&mut buffer).await;
            let body = r#"{"error_code":"INTERNAL_ERROR","message":"database is locked"}"#;
            let answer = format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
            served += 1;
            if served == 3 {
                break;
            }
        }
        served
    });
    let mut args = RegistryArgs::mlflow(format!("http://127.0.0.1:{port}").parse().expect("url"));
    args.mlflow_http_request_max_retries = 2;
    let registry = ModelRegistry::open(&args, &LakeArgs::for_url(LakeUrl::Memory))
        .await
        .expect("client");
    let err = registry.experiment("e").await.expect_err("503s");
    let text = err.to_string();
    assert!(
        text.contains("HTTP 503") && text.contains("database is locked"),
        "{text}"
    );
    assert!(text.contains("3 attempt"), "{text}");
    assert_eq!(server.await.expect("server"), 3);
}

#[tokio::test]
async fn mlflow_errors_leave_nothing_half_registered_and_failed_runs_are_marked() {
    let s3 = TestS3::new();
    let uri = required("PRICECAST_TEST_MLFLOW_URI");
    let registry = mlflow("PRICECAST_TEST_MLFLOW_URI", &s3);
    let cycle = full_cycle(&registry).await; // version 1 is champion

    // A run that does not exist: MLflow's own error, and no version.
    let ghost = RunId("0".repeat(32));
    let err = registry
        .register_version(&cycle.model, &ghost, "model")
        .await
        .expect_err("no such run");
    let text = err.to_string();
    assert!(
        matches!(err, Error::Mlflow { .. }) && text.contains("RESOURCE_DOES_NOT_EXIST"),
        "{text}"
    );
    let other_model = unique("pricecast-never");
    assert!(
        registry
            .register_version(&other_model, &ghost, "model")
            .await
            .is_err()
    );
    assert_eq!(
        registry
            .get_alias(&other_model, CHAMPION)
            .await
            .expect("alias"),
        None
    );

    // A run whose work failed: marked FAILED, refused for registration, champion unchanged.
    let experiment = registry
        .experiment(&unique("bitcoin_prediction_s3"))
        .await
        .expect("experiment");
    let failed = registry
        .start_run(
            &experiment,
            &pairs(&[(tags::MODEL_TYPE, "linear_regression")]),
        )
        .await
        .expect("run");
    registry
        .log_metrics(&failed, &[Metric::new("mae", 1.0)])
        .await
        .expect("metrics");
    registry
        .finish_run(&failed, RunStatus::Failed)
        .await
        .expect("mark failed");
    let err = registry
        .register_version(&cycle.model, &failed, "model")
        .await
        .expect_err("failed run")
        .to_string();
    assert!(err.contains("FAILED"), "{err}");

    let read = mlflow_check(&uri, &failed, None, &s3);
    assert_eq!(read["run"]["status"], "FAILED");
    let read = mlflow_check(&uri, &cycle.run, Some(&cycle.model), &s3);
    assert_eq!(read["versions"].as_array().map(Vec::len), Some(1));
    assert_eq!(read["aliases"][CHAMPION], 1);
    let never = mlflow_check(&uri, &cycle.run, Some(&other_model), &s3);
    assert_eq!(
        never["versions"].as_array().map(Vec::len),
        Some(0),
        "{never}"
    );
}

/// Five ended runs and a running one: the ended ones are listed, over pages of two, with their
/// times, params, tags and latest metrics; the running one only once it ends.
async fn listing(registry: &ModelRegistry) {
    let name = unique("listing");
    assert_eq!(registry.find_experiment(&name).await.expect("find"), None);
    let experiment = registry.experiment(&name).await.expect("experiment");
    assert_eq!(
        registry.find_experiment(&name).await.expect("find"),
        Some(experiment.clone())
    );
    let mut ended = Vec::new();
    for i in 0..5_i64 {
        let run = registry
            .start_run(&experiment, &pairs(&[(tags::SERIES, "BTCUSDT 1h")]))
            .await
            .expect("run");
        registry
            .log_params(&run, &pairs(&[("alpha", "0.5")]))
            .await
            .expect("params");
        let metrics = [
            Metric::new("mae", 10.0),
            Metric {
                key: "mae".into(),
                value: i as f64,
                step: i + 1,
            },
        ];
        registry.log_metrics(&run, &metrics).await.expect("metrics");
        let status = if i == 4 {
            RunStatus::Failed
        } else {
            RunStatus::Finished
        };
        registry.finish_run(&run, status).await.expect("finish");
        ended.push(run);
    }
    let running = registry.start_run(&experiment, &[]).await.expect("running");
    let every = RunSearch {
        page_size: 2,
        ..RunSearch::default()
    };
    let found = registry
        .search_runs(&experiment, &every)
        .await
        .expect("search");
    let mut ids: Vec<RunId> = found.iter().map(|r| r.run_id.clone()).collect();
    ids.sort();
    let mut expected = ended.clone();
    expected.sort();
    assert_eq!(ids, expected, "{}", registry.location());
    for run in &found {
        let i = ended.iter().position(|r| *r == run.run_id).expect("known") as i64;
        let end = run.end_time.expect("ended");
        assert!(run.start_time > 0 && run.start_time <= end, "{run:?}");
        assert_eq!(run.params["alpha"], "0.5");
        assert_eq!(run.tags[tags::SERIES], "BTCUSDT 1h");
        assert_eq!(run.latest_metrics.len(), 1, "{run:?}");
        assert_eq!(
            (run.latest_metrics[0].value, run.latest_metrics[0].step),
            (i as f64, i + 1)
        );
        assert!(run.latest_metrics[0].timestamp > 0);
    }
    assert!(found.windows(2).all(|w| w[0].end_time <= w[1].end_time));
    // A window: only what ended after the third run's end.
    let cut = found[2].end_time;
    let after = RunSearch {
        ended_after: cut,
        ..every
    };
    let later = registry
        .search_runs(&experiment, &after)
        .await
        .expect("search");
    assert_eq!(
        later.iter().map(|r| &r.run_id).collect::<Vec<_>>(),
        found
            .iter()
            .filter(|r| r.end_time > cut)
            .map(|r| &r.run_id)
            .collect::<Vec<_>>()
    );
    assert!(later.iter().all(|r| r.run_id != running));
    registry
        .finish_run(&running, RunStatus::Finished)
        .await
        .expect("finish");
    let newest = found.iter().filter_map(|r| r.end_time).max();
    let since_newest = RunSearch {
        ended_after: newest,
        ..every
    };
    let now_ended = registry
        .search_runs(&experiment, &since_newest)
        .await
        .expect("search");
    assert!(
        now_ended.iter().any(|r| r.run_id == running),
        "{now_ended:?}"
    );
}

#[tokio::test]
async fn ended_runs_are_listed_page_by_page_on_both_mlflow_servers_and_the_local_registry() {
    let s3 = TestS3::new();
    let dir = tempfile::tempdir().expect("tempdir");
    listing(&mlflow("PRICECAST_TEST_MLFLOW_URI", &s3)).await;
    listing(&mlflow("PRICECAST_TEST_MLFLOW_S3_URI", &s3)).await;
    listing(&local(&format!("file://{}", dir.path().display()), &s3).await).await;
    listing(&local(&s3.url(), &s3).await).await;
}
