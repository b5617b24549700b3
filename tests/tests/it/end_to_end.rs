//! The whole pipeline through the real binaries, each configured only by environment variables
//! as the CronJobs and the API Deployment run them: the fake Binance → `pricecast-collect` →
//! PostgreSQL → `pricecast-export` → the S3 lake → `pricecast-features` → `pricecast-train` →
//! the MLflow server with artifacts in S3 → `pricecast-api`. Every step's numbers are checked
//! against the step before it; then a day of new candles goes through again, and a champion
//! forced by hand is swapped in, while the API keeps running.

use std::collections::BTreeMap;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use pricecast_binance::replay::bundled_candles;
use pricecast_shared::champion::{RegisteredModel, metric};
use pricecast_shared::domain::{Candle, Interval, Symbol};
use pricecast_shared::features::{FeatureSpec, feature_rows, read_feature_frame};
use pricecast_shared::lake::Lake;
use pricecast_shared::model::ModelKind;
use pricecast_shared::registry::promotion::{
    TAG_CHAMPION_MAE, TAG_CHAMPION_VERSION, TAG_DECISION, TAG_NAIVE_MAE, TAG_NAIVE_VERSION,
    TAG_NEW_MAE, TAG_NEW_VERSION, TAG_WINNER,
};
use pricecast_shared::registry::{CHALLENGER, CHAMPION, ModelRegistry, RegistryArgs};
use pricecast_tests::db::TestDb;
use pricecast_tests::fake_binance::{FakeBinance, as_exchange_candle};
use pricecast_tests::lake::TestS3;
use rust_decimal::Decimal;
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::binaries::binary;

/// Candles of the first round, about (whole UTC days of the bundled history before its last
/// day, about three months).
const FIRST_ROUND_CANDLES: usize = 89 * 24;
/// Candles the exchange adds before the second round.
const NEW_CANDLES: usize = 24;
/// Candles before a feature row (`ma_50` needs 50 consecutive ones, the row's own included).
const FEATURE_HISTORY: usize = 49;
/// The feature values the API serves match the lake's frame to this relative tolerance.
const FEATURE_TOLERANCE: f64 = 1e-9;
/// Longest wait for the API to start, or to serve what the registry and database hold.
const API_WAIT: Duration = Duration::from_secs(60);

fn btc() -> Symbol {
    "BTCUSDT".parse().expect("symbol")
}

fn required(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: the end-to-end test needs the services tests/run.sh starts; run tests/run.sh")
    })
}

/// The nearest f64 to an exact decimal, as the feature pipeline converts prices.
fn float(value: Decimal) -> f64 {
    value.to_string().parse().expect("decimal as f64")
}

fn close_enough(a: f64, b: f64) -> bool {
    (a - b).abs() <= FEATURE_TOLERANCE * a.abs().max(b.abs())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The bundled BTCUSDT hourly history as the exchange serves it.
fn exchange_history() -> Vec<Candle> {
    bundled_candles(&btc())
        .expect("bundled history")
        .into_iter()
        .map(as_exchange_candle)
        .collect()
}

/// Most of the API's log shown when it does not answer as expected.
const LOG_TAIL_BYTES: usize = 6_000;

/// The API as a child process, killed if a test fails before stopping it.
struct ApiProcess {
    child: Child,
    base: String,
    client: reqwest::Client,
    log: tempfile::NamedTempFile,
}

impl ApiProcess {
    /// The end of what the API logged, for failure messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read(self.log.path()).unwrap_or_default();
        text(&log[log.len().saturating_sub(LOG_TAIL_BYTES)..])
    }

    async fn get(&self, path: &str) -> (reqwest::StatusCode, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status();
        let body = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {path} is not JSON: {e}"));
        (status, body)
    }

    /// Polls `path` until `done` holds for a 200 answer; the last answer otherwise.
    async fn wait_for(&self, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + API_WAIT;
        loop {
            let (status, body) = self.get(path).await;
            if status.is_success() && done(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: GET {path} still answers {status} {body}\nAPI log:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// SIGTERM, then the exit status.
    async fn stop(mut self) -> ExitStatus {
        let pid = self.child.id().expect("the API is running").to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("send SIGTERM");
        assert!(killed.success());
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the API stops within 20 s of SIGTERM")
            .expect("API exit status")
    }
}

/// One deployment: a database, a lake prefix, an MLflow experiment and model name of its own.
struct Deployment {
    fake: FakeBinance,
    db: TestDb,
    s3: TestS3,
    mlflow_uri: String,
    experiment: String,
    model_pattern: String,
}

impl Deployment {
    async fn new() -> Self {
        let id = format!("{:012x}", rand::random::<u64>() >> 16);
        Self {
            fake: FakeBinance::start().await,
            db: TestDb::postgres().await,
            s3: TestS3::new(),
            mlflow_uri: required("PRICECAST_TEST_MLFLOW_S3_URI"),
            experiment: format!("e2e-{id}"),
            model_pattern: format!("e2e-{id}-{{symbol}}-{{interval}}"),
        }
    }

    fn model_name(&self) -> String {
        self.registry_args().model_name_for(&btc(), Interval::H1)
    }

    fn registry_args(&self) -> RegistryArgs {
        let mut args = RegistryArgs::mlflow(self.mlflow_uri.parse().expect("MLflow URI"));
        args.model_name = self.model_pattern.clone();
        args
    }

    /// What a ConfigMap and Secret would give every pod.
    fn environment(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .s3
            .env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        for (key, value) in [
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("RUST_LOG", "info".to_owned()),
            ("DATABASE_URL", self.db.url.clone()),
            ("BINANCE_BASE_URL", self.fake.base_url()),
            ("PRICECAST_SYMBOLS", "BTCUSDT".to_owned()),
            ("PRICECAST_INTERVALS", "1h".to_owned()),
            ("MLFLOW_TRACKING_URI", self.mlflow_uri.clone()),
            ("MLFLOW_EXPERIMENT_NAME", self.experiment.clone()),
            ("MLFLOW_S3_ENDPOINT_URL", self.s3.endpoint.clone()),
            ("PRICECAST_MODEL_NAME", self.model_pattern.clone()),
            ("PRICECAST_EVAL_WINDOWS", "4".to_owned()),
            ("PRICECAST_EVAL_WINDOW_ROWS", "72".to_owned()),
        ] {
            env.push((key.to_owned(), value));
        }
        env
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(binary(program));
        command
            .env_clear()
            .envs(self.environment())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs a job to its end; it must exit 0.
    async fn job(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program)
            .args(args)
            .output()
            .await
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert_eq!(
            output.status.code(),
            Some(0),
            "{program} {args:?} failed:\n{}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
    }

    /// Collect → export → features → train, each once, as their CronJobs run them.
    async fn run_pipeline(&self, collect_args: &[&str]) {
        self.job("pricecast-collect", collect_args).await;
        self.job("pricecast-export", &[]).await;
        self.job("pricecast-features", &[]).await;
        self.job("pricecast-train", &[]).await;
    }

    async fn start_api(&self) -> ApiProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let log = tempfile::NamedTempFile::new().expect("API log file");
        let child = self
            .command("pricecast-api")
            .env("PRICECAST_API_ADDR", format!("127.0.0.1:{port}"))
            .env("PRICECAST_API_MAX_STALE_CANDLES", "0")
            .env("PRICECAST_MODEL_POLL_SECS", "1")
            .stdout(log.reopen().expect("API log"))
            .stderr(log.reopen().expect("API log"))
            .spawn()
            .expect("start the API");
        let api = ApiProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            log,
        };
        let deadline = Instant::now() + API_WAIT;
        while api
            .client
            .get(format!("{}/health", api.base))
            .send()
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "the API never answered:\n{}",
                api.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        api
    }

    /// `GET {MLflow}/api/2.0/mlflow/{endpoint}` straight from MLflow's REST API.
    async fn mlflow_get(&self, endpoint: &str, query: &[(&str, &str)]) -> Value {
        let response = reqwest::Client::new()
            .get(format!("{}/api/2.0/mlflow/{endpoint}", self.mlflow_uri))
            .query(query)
            .send()
            .await
            .unwrap_or_else(|e| panic!("MLflow {endpoint}: {e}"));
        assert!(
            response.status().is_success(),
            "MLflow {endpoint}: {}",
            response.status()
        );
        response.json().await.expect("MLflow JSON")
    }

    /// The version an alias points to, and its run, as MLflow reports them.
    async fn alias(&self, alias: &str) -> (u64, String) {
        let name = self.model_name();
        let body = self
            .mlflow_get(
                "registered-models/alias",
                &[("name", &name), ("alias", alias)],
            )
            .await;
        let version = &body["model_version"];
        (
            version["version"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no version in {body}")),
            version["run_id"].as_str().expect("run_id").to_owned(),
        )
    }

    /// Asserts the run is FINISHED with the evaluation's metrics; returns them.
    async fn finished_run(&self, run_id: &str) -> BTreeMap<String, f64> {
        let body = self.mlflow_get("runs/get", &[("run_id", run_id)]).await;
        let run = &body["run"];
        assert_eq!(run["info"]["status"], "FINISHED", "{body}");
        let metrics: BTreeMap<String, f64> = run["data"]["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .map(|m| {
                (
                    m["key"].as_str().expect("key").to_owned(),
                    m["value"].as_f64().expect("value"),
                )
            })
            .collect();
        for key in [metric::MAE, metric::BASELINE_MAE, metric::SKILL] {
            let value = metrics
                .get(key)
                .unwrap_or_else(|| panic!("no {key}: {metrics:?}"));
            assert!(value.is_finite(), "{key} = {value}");
        }
        let skill = 1.0 - metrics[metric::MAE] / metrics[metric::BASELINE_MAE];
        assert!(
            (skill - metrics[metric::SKILL]).abs() < 1e-9,
            "skill {} is not 1 - mae / baseline_mae = {skill}",
            metrics[metric::SKILL]
        );
        metrics
    }
}

/// The stored candles equal the served ones, decimal for decimal.
fn assert_same_candles(stored: &[Candle], served: &[Candle]) {
    assert_eq!(stored.len(), served.len(), "candles stored vs served");
    assert_eq!(stored[0].open_time, served[0].open_time);
    assert_eq!(
        stored.last().map(|c| c.open_time),
        served.last().map(|c| c.open_time)
    );
    for (s, f) in stored.iter().zip(served) {
        assert_eq!(s.open_time, f.open_time);
        assert_eq!(
            (s.open, s.high, s.low, s.close, s.volume),
            (f.open, f.high, f.low, f.close, f.volume),
            "candle {}",
            f.open_time
        );
    }
    // A few rows to the digit, as Binance sent them.
    for c in [
        &served[0],
        &served[served.len() / 2],
        &served[served.len() - 1],
    ] {
        let s = stored
            .iter()
            .find(|s| s.open_time == c.open_time)
            .expect("stored");
        assert_eq!(
            s.close.normalize().to_string(),
            c.close.normalize().to_string()
        );
    }
}

/// The lake's candle partitions hold exactly the stored rows, read back with pyarrow.
fn assert_lake_holds(s3: &TestS3, stored: &[Candle]) {
    let lake = s3.read_back();
    let files = lake["files"].as_object().expect("files");
    let mut rows: Vec<(i64, Decimal)> = Vec::new();
    for (path, file) in files {
        assert!(
            path.starts_with("candles/symbol=BTCUSDT/interval=1h/date="),
            "unexpected file {path}"
        );
        assert_eq!(file["duplicates"], 0, "{path}");
        for row in file["values"].as_array().expect("values") {
            let close: Decimal = row["close"]
                .as_str()
                .expect("close")
                .parse()
                .expect("decimal");
            rows.push((row["open_time_ms"].as_i64().expect("open time"), close));
        }
    }
    rows.sort_by_key(|r| r.0);
    let expected: Vec<(i64, Decimal)> = stored
        .iter()
        .map(|c| (c.open_time.timestamp_millis(), c.close))
        .collect();
    assert_eq!(rows.len(), expected.len(), "rows in the lake vs stored");
    assert_eq!(rows, expected, "the lake's open times and closes vs stored");
}

/// What the feature frame's newest row holds for the champion's features.
struct NewestFeatures {
    rows: usize,
    open_time_ms: i64,
    close: f64,
    values: Vec<f64>,
}

async fn newest_features(s3: &TestS3, stored: &[Candle], features: &[String]) -> NewestFeatures {
    let lake = Lake::open(&s3.args()).await.expect("open the lake");
    let (manifest, frame) = read_feature_frame(&lake, &btc(), Interval::H1)
        .await
        .expect("feature frame");
    assert_eq!(
        frame.height(),
        stored.len() - FEATURE_HISTORY,
        "feature rows: candles less {FEATURE_HISTORY} of history (no gap in this range)"
    );
    let lag = frame
        .column("price_t-1")
        .and_then(|c| c.f64().cloned())
        .expect("price_t-1 column");
    let newest_lag = lag
        .get(frame.height() - 1)
        .expect("price_t-1 of the newest row");
    let second_newest_close = float(stored[stored.len() - 2].close);
    assert_eq!(
        newest_lag, second_newest_close,
        "the newest row's price_t-1 is the second-newest stored close"
    );
    assert!(manifest.features.iter().any(|f| f == "price_t-1"));
    let spec = FeatureSpec {
        horizons: Vec::new(),
        features: features.to_vec(),
    };
    let rows = feature_rows(&frame, &spec, None).expect("feature rows");
    let last = rows.len() - 1;
    assert_eq!(
        rows.open_time_ms[0],
        stored[FEATURE_HISTORY].open_time.timestamp_millis()
    );
    NewestFeatures {
        rows: rows.len(),
        open_time_ms: rows.open_time_ms[last],
        close: rows.close[last],
        values: rows.row(last).to_vec(),
    }
}

/// The API's forecast is the champion's, from the newest stored candle and the frame's row.
fn assert_forecast(
    prediction: &Value,
    champion: &RegisteredModel,
    stored: &[Candle],
    frame: &NewestFeatures,
) {
    let newest = stored.last().expect("candles");
    assert_eq!(
        prediction["based_on"]
            .as_str()
            .map(|t| t.parse::<chrono::DateTime<chrono::Utc>>()),
        Some(Ok(newest.open_time)),
        "{prediction}"
    );
    assert_eq!(frame.open_time_ms, newest.open_time.timestamp_millis());
    let current = prediction["current_price"].as_f64().expect("current_price");
    assert_eq!(
        current,
        float(newest.close),
        "current_price is the newest stored close"
    );
    assert_eq!(current, frame.close);
    assert_eq!(
        prediction["model"]["version"], champion.version.version,
        "{prediction}"
    );
    assert_eq!(
        prediction["model"]["run_id"],
        champion.version.run_id.0.as_str()
    );

    let used = prediction["features_used"]
        .as_object()
        .expect("features_used");
    let names = &champion.model.feature_names;
    assert_eq!(used.len(), names.len(), "{used:?}");
    let served: Vec<f64> = names
        .iter()
        .map(|n| {
            used[n]
                .as_f64()
                .unwrap_or_else(|| panic!("features_used.{n}"))
        })
        .collect();
    for ((name, api), lake) in names.iter().zip(&served).zip(&frame.values) {
        assert!(
            close_enough(*api, *lake),
            "{name}: the API used {api}, the lake's frame has {lake}"
        );
    }
    let expected = champion
        .model
        .predict_close(&served, current)
        .expect("the champion predicts");
    assert_eq!(
        prediction["predicted_price"].as_f64(),
        Some(expected),
        "predicted_price is the champion applied to the features used"
    );
    let from_frame = champion
        .model
        .predict_close(&frame.values, frame.close)
        .expect("the champion predicts");
    assert!(
        close_enough(expected, from_frame),
        "{expected} vs {from_frame}"
    );
}

/// The version the gate's tags say holds `champion` after the decision, checked against the
/// numbers: the winner's MAE is the lowest of those scored (the naive forecast wins ties, then
/// the champion).
fn champion_after_gate(tags: &BTreeMap<String, String>) -> u64 {
    let number = |key: &str| tags[key].parse::<f64>().ok();
    let version = |key: &str| tags[key].parse::<u64>().ok();
    let new_mae = number(TAG_NEW_MAE).expect("the new version's MAE");
    let naive_mae = number(TAG_NAIVE_MAE).expect("the naive forecast's MAE");
    let champion_mae = number(TAG_CHAMPION_MAE);
    let best_other = champion_mae.map_or(naive_mae, |c| c.min(naive_mae));
    match (tags[TAG_DECISION].as_str(), tags[TAG_WINNER].as_str()) {
        ("first_champion" | "promoted", "new") => {
            assert!(new_mae < best_other, "{tags:?}");
            version(TAG_NEW_VERSION).expect("new version")
        }
        ("kept_challenger", "champion") => {
            let champion_mae = champion_mae.expect("the champion's MAE");
            assert!(champion_mae <= new_mae, "{tags:?}");
            version(TAG_CHAMPION_VERSION).expect("champion version")
        }
        ("naive_champion", "naive") => {
            assert!(
                naive_mae <= new_mae.min(champion_mae.unwrap_or(f64::INFINITY)),
                "{tags:?}"
            );
            version(TAG_NAIVE_VERSION).expect("naive version")
        }
        other => panic!("unexpected decision {other:?}: {tags:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_pipeline_serves_the_champion_forecast_and_follows_new_candles() {
    let deployment = Deployment::new().await;
    let history = exchange_history();
    let first_round_end = history.len() - NEW_CANDLES;
    let first_round = &history[..first_round_end];
    deployment.fake.set_series(first_round.to_vec());
    // Whole UTC days from `--since`, about three months of them.
    let since = (first_round[first_round_end - FIRST_ROUND_CANDLES].open_time
        + chrono::Duration::days(1))
    .date_naive();
    let served_from = |candles: &[Candle]| -> Vec<Candle> {
        candles
            .iter()
            .filter(|c| c.open_time.date_naive() >= since)
            .cloned()
            .collect()
    };
    let served = served_from(first_round);
    let since = since.format("%Y-%m-%d").to_string();

    // Round one: the whole pipeline from nothing.
    deployment.run_pipeline(&["--since", since.as_str()]).await;
    let stored = deployment.db.btc_candles(Interval::H1).await;
    assert_same_candles(&stored, &served);
    assert_lake_holds(&deployment.s3, &stored);

    // The first model is champion only when it beats the naive forecast on the most recent
    // window; else it stays challenger and a naive model, registered as version 2, is champion.
    // Which one it is, the gate's tags on version 1 say, with the numbers it decided on.
    let registry = ModelRegistry::open(&deployment.registry_args(), &deployment.s3.args())
        .await
        .expect("open MLflow");
    let first = registry
        .get_version(&deployment.model_name(), 1)
        .await
        .expect("the first model is version 1");
    let (version, run_id) = deployment.alias(CHAMPION).await;
    assert_eq!(
        version,
        champion_after_gate(&first.tags),
        "{:?}",
        first.tags
    );
    deployment.finished_run(&run_id).await;
    assert_eq!(deployment.alias(CHALLENGER).await.0, 1);
    let champion = RegisteredModel::load(&registry, &deployment.model_name(), CHAMPION)
        .await
        .expect("load the champion")
        .expect("a champion");
    assert_eq!(champion.version.version, version);
    assert_eq!(champion.version.run_id.0, run_id);
    let naive_won = version == 2;
    assert_eq!(
        champion.model.params.kind == ModelKind::Naive,
        naive_won,
        "{:?}",
        first.tags
    );
    assert_eq!(
        champion.version.tags.get(TAG_DECISION).map(String::as_str),
        Some(if naive_won {
            "naive_champion"
        } else {
            "first_champion"
        })
    );
    let frame = newest_features(&deployment.s3, &stored, &champion.model.feature_names).await;
    assert_eq!(frame.rows, stored.len() - FEATURE_HISTORY);

    let api = deployment.start_api().await;
    let health = api
        .wait_for("/health", "the champion is loaded", |h| {
            h["dependencies"]["registry"]["status"] == "up"
                && h["dependencies"]["registry"]["champions_loaded"] == 1
        })
        .await;
    assert_eq!(
        health["dependencies"]["database"]["status"], "up",
        "{health}"
    );
    assert_eq!(health["database"], "connected", "{health}");
    let (status, prediction) = api.get("/price/predict?symbol=BTCUSDT&interval=1h").await;
    assert!(status.is_success(), "{status} {prediction}");
    assert_forecast(&prediction, &champion, &stored, &frame);
    let (status, models) = api.get("/models").await;
    assert!(status.is_success(), "{status} {models}");
    let series = &models["models"][0];
    assert_eq!(series["model_name"], deployment.model_name().as_str());
    assert_eq!(series["champion"]["version"], version, "{models}");
    assert_eq!(series["champion"]["run_id"], run_id.as_str());

    // Round two: a day of new candles goes through every job while the API keeps running.
    deployment.fake.set_series(history.clone());
    deployment.run_pipeline(&[]).await;
    let stored = deployment.db.btc_candles(Interval::H1).await;
    let served = served_from(&history);
    assert_eq!(served.len(), stored.len());
    assert_same_candles(&stored, &served);
    assert_lake_holds(&deployment.s3, &stored);

    let name = deployment.model_name();
    let newest = if naive_won { 3 } else { 2 };
    let new_version = registry
        .get_version(&name, newest)
        .await
        .expect("the second run registered the next version");
    deployment.finished_run(&new_version.run_id.0).await;
    let (champion_version, _) = deployment.alias(CHAMPION).await;
    let (challenger_version, _) = deployment.alias(CHALLENGER).await;
    assert_eq!(
        challenger_version, newest,
        "the newest trained version is the challenger"
    );
    let champion = RegisteredModel::load(&registry, &name, CHAMPION)
        .await
        .expect("load the champion")
        .expect("a champion");
    assert_eq!(champion.version.version, champion_version);
    // The gate's decision, recorded on the version, is what the aliases show.
    assert_eq!(
        champion_version,
        champion_after_gate(&new_version.tags),
        "{:?}",
        new_version.tags
    );
    let versions_so_far = new_version.tags[TAG_NAIVE_VERSION]
        .parse::<u64>()
        .unwrap_or(newest);
    let frame = newest_features(&deployment.s3, &stored, &champion.model.feature_names).await;

    let prediction = api
        .wait_for(
            "/price/predict?symbol=BTCUSDT&interval=1h",
            "the forecast moves to the newest candle and the champion",
            |p| {
                p["based_on"]
                    .as_str()
                    .map(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
                    == Some(stored.last().map(|c| c.open_time))
                    && p["model"]["version"] == champion_version
            },
        )
        .await;
    assert_forecast(&prediction, &champion, &stored, &frame);
    let models = api
        .wait_for("/models", "the challenger is reported", |m| {
            m["models"][0]["challenger"]["version"] == newest
        })
        .await;
    assert_eq!(
        models["models"][0]["champion"]["version"], champion_version,
        "{models}"
    );
    let (_, health) = api.get("/health").await;
    assert_eq!(
        health["dependencies"]["registry"]["status"], "up",
        "{health}"
    );

    // Round three: a champion forced by hand is swapped into the running API.
    deployment
        .job("pricecast-train", &["--force-promote"])
        .await;
    let (forced, run_id) = deployment.alias(CHAMPION).await;
    assert_eq!(
        forced,
        versions_so_far + 1,
        "--force-promote makes the new version champion"
    );
    deployment.finished_run(&run_id).await;
    let champion = RegisteredModel::load(&registry, &name, CHAMPION)
        .await
        .expect("load the champion")
        .expect("a champion");
    assert_eq!(
        champion.version.tags.get(TAG_DECISION).map(String::as_str),
        Some("forced")
    );
    let prediction = api
        .wait_for(
            "/price/predict?symbol=BTCUSDT&interval=1h",
            "the forced champion is swapped in without a restart",
            |p| p["model"]["version"] == forced,
        )
        .await;
    assert_forecast(&prediction, &champion, &stored, &frame);
    let models = api
        .wait_for("/models", "the forced champion is reported", |m| {
            m["models"][0]["champion"]["version"] == forced
                && m["models"][0]["challenger"]["version"] == forced
        })
        .await;
    assert_eq!(
        models["models"][0]["champion"]["promotion"][TAG_DECISION], "forced",
        "{models}"
    );

    let status = api.stop().await;
    assert_eq!(status.code(), Some(0), "the API exits 0 on SIGTERM");
}
