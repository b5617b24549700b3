use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const HOUR_MS: i64 = 3_600_000;
const LEVEL: f64 = DEFAULT_INTERVAL_LEVEL;
const START_MS: i64 = 1_700_000_000_000 / HOUR_MS * HOUR_MS;

fn normal(rng: &mut StdRng) -> f64 {
    let u: f64 = rng.random::<f64>().max(1e-300);
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

struct Synthetic {
    names: Vec<String>,
    times: Vec<i64>,
    x: Vec<f64>,
    last: Vec<f64>,
    target: Vec<f64>,
    horizon: u32,
}

impl Synthetic {
    /// Hourly rows whose log return is `intercept + Σ beta_j·x_j + noise·ε`.
    fn new(rows: usize, beta: &[f64], intercept: f64, noise: f64, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let p = beta.len();
        let x: Vec<f64> = (0..rows * p)
            .map(|k| 3.0 + (k % p) as f64 + 2.0 * normal(&mut rng))
            .collect();
        let mut price = 30_000.0;
        let mut last = Vec::with_capacity(rows);
        let mut target = Vec::with_capacity(rows);
        for i in 0..rows {
            let r: f64 = intercept
                + (0..p).map(|j| beta[j] * x[i * p + j]).sum::<f64>()
                + noise * normal(&mut rng);
            last.push(price);
            target.push(price * r.exp());
            price *= (0.002 * normal(&mut rng)).exp();
        }
        Self {
            names: (0..p).map(|j| format!("f{j}")).collect(),
            times: (0..rows as i64).map(|i| START_MS + i * HOUR_MS).collect(),
            x,
            last,
            target,
            horizon: 1,
        }
    }

    fn dataset(&self) -> Dataset {
        Dataset::new(
            self.names.clone(),
            self.times.clone(),
            self.x.clone(),
            self.last.clone(),
            self.target.clone(),
            self.horizon,
            HOUR_MS,
        )
        .expect("valid synthetic data")
    }
}

fn signal() -> Synthetic {
    Synthetic::new(600, &[0.002, -0.001, 0.0005], 0.0001, 0.001, 11)
}

fn quick(kind: ModelKind) -> ModelParams {
    ModelParams {
        trees: 10,
        ..ModelParams::of_kind(kind)
    }
}

const KINDS: [ModelKind; 6] = [
    ModelKind::Linear,
    ModelKind::Ridge,
    ModelKind::Lasso,
    ModelKind::ElasticNet,
    ModelKind::RandomForest,
    ModelKind::Naive,
];

#[test]
fn linear_regression_recovers_known_coefficients() {
    let beta = [0.003, -0.002, 0.0007, 0.0];
    let data = Synthetic::new(400, &beta, -0.004, 0.0, 3).dataset();
    let model = TrainedModel::fit(&ModelParams::default(), &data, 0..400).expect("fit");
    let (coefficients, intercept) = model.raw_coefficients().expect("linear");
    for (got, want) in coefficients.iter().zip(beta) {
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }
    assert!((intercept + 0.004).abs() < 1e-12, "{intercept}");
    let close = model
        .predict_close(data.row(7), data.last_close()[7])
        .expect("predict");
    assert!((close / data.target_close()[7] - 1.0).abs() < 1e-12);
}

#[test]
fn collinear_features_get_the_minimum_norm_solution() {
    let base = Synthetic::new(300, &[0.002, -0.001], 0.0, 0.0, 5);
    // A third feature equal to the first: the fit splits its weight evenly between them.
    let x: Vec<f64> = base
        .x
        .chunks(2)
        .flat_map(|row| [row[0], row[1], row[0]])
        .collect();
    let data = Dataset::new(
        vec!["a".into(), "b".into(), "a_again".into()],
        base.times.clone(),
        x,
        base.last.clone(),
        base.target.clone(),
        1,
        HOUR_MS,
    )
    .expect("data");
    let model = TrainedModel::fit(&ModelParams::default(), &data, 0..300).expect("fit");
    let (coefficients, _) = model.raw_coefficients().expect("linear");
    assert!((coefficients[0] - 0.001).abs() < 1e-9, "{coefficients:?}");
    assert!((coefficients[2] - 0.001).abs() < 1e-9, "{coefficients:?}");
    assert!((coefficients[1] + 0.001).abs() < 1e-9, "{coefficients:?}");
}

#[test]
fn standardisation_and_fit_use_training_rows_only() {
    let original = signal();
    let mut changed = signal();
    // Change everything about row 450, outside the training rows 0..400.
    for v in &mut changed.x[450 * 3..451 * 3] {
        *v *= 50.0;
    }
    changed.target[450] *= 1.5;
    let (a, b) = (original.dataset(), changed.dataset());
    for kind in KINDS {
        let params = quick(kind);
        let fitted_a = TrainedModel::fit(&params, &a, 0..400).expect("fit");
        let fitted_b = TrainedModel::fit(&params, &b, 0..400).expect("fit");
        assert_eq!(fitted_a.scaler, fitted_b.scaler, "{kind}");
        assert_eq!(
            fitted_a.to_bytes().expect("bytes"),
            fitted_b.to_bytes().expect("bytes"),
            "{kind}"
        );
    }
    // And a training row does change it.
    let mut inside = signal();
    inside.x[10 * 3] += 5.0;
    let fitted_inside =
        TrainedModel::fit(&ModelParams::default(), &inside.dataset(), 0..400).expect("fit");
    let fitted_a = TrainedModel::fit(&ModelParams::default(), &a, 0..400).expect("fit");
    assert_ne!(fitted_a.scaler, fitted_inside.scaler);
}

#[test]
fn walk_forward_has_no_look_ahead() {
    let mut base = signal();
    base.horizon = 3;
    let data = base.dataset();
    let params = ModelParams::default();
    let evaluation = walk_forward(&params, &data, 3, 50, LEVEL).expect("walk-forward");
    let first = &evaluation.windows[0];
    let last = evaluation.last_report().expect("windows");
    // Rows s−3..s have targets after row s opened: the training rows end before them.
    assert_eq!(first.test_rows, 450..500);
    assert_eq!(first.train_rows, 0..447);
    assert_eq!(last.train_rows, 0..547);

    // The targets not yet known when the last window starts do not reach its model.
    let mut unknown = signal();
    unknown.horizon = 3;
    for i in 547..550 {
        unknown.target[i] *= 1.3;
    }
    let again = walk_forward(&params, &unknown.dataset(), 3, 50, LEVEL).expect("walk-forward");
    assert_eq!(
        again.last_window.predicted,
        evaluation.last_window.predicted
    );

    // Nothing after the first window's start (bar its own features) reaches its model either.
    let mut later = signal();
    later.horizon = 3;
    for i in 447..450 {
        later.target[i] *= 1.2;
    }
    for i in 500..600 {
        later.target[i] *= 0.7;
        for v in &mut later.x[i * 3..(i + 1) * 3] {
            *v += 4.0;
        }
    }
    let again = walk_forward(&params, &later.dataset(), 3, 50, LEVEL).expect("walk-forward");
    assert_eq!(again.windows[0].model, first.model);
    // The middle window did train on the rewritten targets of rows 447..450.
    assert_ne!(again.windows[1].model, evaluation.windows[1].model);
}

#[test]
fn walk_forward_respects_gaps_in_time() {
    let mut base = signal();
    // A two-hour gap just before the last window: its first row's training rows end earlier by
    // time, not by count.
    for t in &mut base.times[550..] {
        *t += 2 * HOUR_MS;
    }
    let evaluation =
        walk_forward(&ModelParams::default(), &base.dataset(), 1, 50, LEVEL).expect("wf");
    assert_eq!(evaluation.windows[0].train_rows, 0..550);
}

#[test]
fn baseline_and_model_metrics_by_hand() {
    let last = [100.0, 100.0, 102.0, 101.0];
    let actual = [101.0, 100.0, 101.0, 103.0];
    let baseline = Metrics::of(&last, &actual, &last);
    assert_eq!(baseline.n, 4);
    assert_eq!(baseline.mae, 1.0);
    assert_eq!(baseline.rmse, 1.5_f64.sqrt());
    let mape = 100.0 * (1.0 / 101.0 + 1.0 / 101.0 + 2.0 / 103.0) / 4.0;
    assert!((baseline.mape - mape).abs() < 1e-12);
    assert_eq!(baseline.direction_accuracy, Some(0.0));

    let predicted = [100.5, 99.0, 101.5, 102.0];
    let model = Metrics::of(&predicted, &actual, &last);
    assert_eq!(model.mae, 0.75);
    // Row 1 did not move and is left out; the other three were called right.
    assert_eq!(model.direction_accuracy, Some(1.0));
    assert_eq!(model.skill_against(&baseline), Some(0.25));

    let flat = Metrics::of(&[5.0], &[5.0], &[5.0]);
    assert_eq!(flat.direction_accuracy, None);
}

#[test]
fn skill_is_reported_when_negative_and_absent_without_a_baseline_error() {
    let last = [10.0, 10.0];
    let actual = [11.0, 9.0];
    let baseline = Metrics::of(&last, &actual, &last);
    let worse = Metrics::of(&[12.5, 7.5], &actual, &last);
    assert_eq!(worse.skill_against(&baseline), Some(1.0 - 1.5 / 1.0));
    let still = Metrics::of(&last, &last, &last);
    assert_eq!(worse.skill_against(&still), None);
}

#[test]
fn saved_models_load_and_predict_exactly_the_same() {
    let data = signal().dataset();
    for kind in KINDS {
        let mut model = TrainedModel::fit(&quick(kind), &data, 0..500).expect("fit");
        model.residual_interval = Some(ResidualInterval {
            lower_quantile: 0.05,
            upper_quantile: 0.95,
            lower: -0.0123,
            upper: 0.0456,
            rows: 100,
        });
        let loaded = TrainedModel::from_bytes(&model.to_bytes().expect("save")).expect("load");
        assert_eq!(
            model.predict(&data, 500..600).expect("predict"),
            loaded.predict(&data, 500..600).expect("predict"),
            "{kind}"
        );
        assert_eq!(
            model.predict_close(data.row(550), 123.456).expect("one"),
            loaded.predict_close(data.row(550), 123.456).expect("one"),
            "{kind}"
        );
        assert_eq!(loaded.residual_interval, model.residual_interval);
        assert_eq!(loaded.params, model.params);
    }
    let err = TrainedModel::from_bytes(b"{\"format\":99,\"model\":{}}").expect_err("format");
    assert!(err.to_string().contains("format"), "{err}");
}

#[test]
fn every_kind_fits_and_predicts_finite_closes() {
    let data = signal().dataset();
    for kind in KINDS {
        let model = TrainedModel::fit(&quick(kind), &data, 0..500).expect("fit");
        let closes = model.predict(&data, 500..600).expect("predict");
        assert!(closes.iter().all(|c| c.is_finite() && *c > 0.0), "{kind}");
        // One-row and batch predictions agree.
        let one = model
            .predict_close(data.row(520), data.last_close()[520])
            .expect("one");
        assert!((one / closes[20] - 1.0).abs() < 1e-12, "{kind}");
    }
}

#[test]
fn linear_kinds_read_smartcore_coefficients_right() {
    use smartcore::linalg::basic::matrix::DenseMatrix;
    let data = signal().dataset();
    for kind in [ModelKind::Ridge, ModelKind::Lasso, ModelKind::ElasticNet] {
        let model = TrainedModel::fit(&quick(kind), &data, 0..500).expect("fit");
        let z = model.scaler.transform(&data.x()[500 * 3..600 * 3]);
        let z = DenseMatrix::new(100, 3, z, false).expect("matrix");
        let theirs = match &model.fitted {
            FittedModel::Ridge(m) => m.predict(&z),
            FittedModel::Lasso(m) => m.predict(&z),
            FittedModel::ElasticNet(m) => m.predict(&z),
            _ => unreachable!("a linear kind"),
        }
        .expect("smartcore predict");
        let ours = model.predict(&data, 500..600).expect("predict");
        for ((t, o), last) in theirs.iter().zip(&ours).zip(&data.last_close()[500..600]) {
            let close = last * model.scaler.log_return(*t).exp();
            assert!((close / o - 1.0).abs() < 1e-12, "{kind}: {close} vs {o}");
        }
    }
}

#[test]
fn stronger_penalties_shrink_the_weights() {
    let data = signal().dataset();
    let norm = |alpha: f64, kind: ModelKind| {
        let params = ModelParams {
            alpha,
            ..ModelParams::of_kind(kind)
        };
        let model = TrainedModel::fit(&params, &data, 0..500).expect("fit");
        let (weights, _) = model.linear_form().expect("linear");
        weights.iter().map(|w| w.abs()).sum::<f64>()
    };
    for kind in [ModelKind::Ridge, ModelKind::Lasso, ModelKind::ElasticNet] {
        assert!(norm(0.5, kind) < norm(0.001, kind), "{kind}");
    }
}

#[test]
fn evaluate_matches_the_last_walk_forward_window() {
    let data = signal().dataset();
    for kind in [ModelKind::Linear, ModelKind::RandomForest] {
        let params = quick(kind);
        let evaluation = walk_forward(&params, &data, 2, 40, LEVEL).expect("walk-forward");
        let last = evaluation.last_report().expect("windows");
        let champion = TrainedModel::fit(&params, &data, last.train_rows.clone()).expect("fit");
        let metrics = evaluate(&champion, &data, last.test_rows.clone()).expect("evaluate");
        assert_eq!(metrics, last.model, "{kind}");
        assert_eq!(evaluation.model.n, 80);
        assert_eq!(evaluation.last_window.predicted.len(), 40);
    }
}

#[test]
fn walk_forward_beats_the_baseline_on_a_real_signal() {
    let data = signal().dataset();
    let evaluation =
        walk_forward(&ModelParams::default(), &data, 4, 25, LEVEL).expect("walk-forward");
    let skill = evaluation.skill.expect("baseline moved");
    assert!(skill > 0.3, "{skill}");
    let interval = &evaluation.residual_interval;
    assert!(interval.lower < 0.0 && interval.upper > 0.0, "{interval:?}");
    assert_eq!(interval.rows, 100);
    let (low, high) = interval.around(100.0);
    assert!(low < 100.0 && high > 100.0);
    // A real signal: the model's absolute errors are smaller than the baseline's, clearly.
    let dm = evaluation.diebold_mariano.as_ref().expect("tested");
    assert!(dm.statistic < -3.0 && dm.p_value < 0.01, "{dm:?}");
    assert_eq!(dm.n, 100);
    assert_eq!(dm.lag, newey_west_lag(1, 100));
    // Windows 2 to 4 scored with intervals calibrated on the windows before each.
    let score = evaluation.interval_score.as_ref().expect("scored");
    assert_eq!(score.rows, 75);
    assert!(score.coverage > 0.7 && score.width_pct > 0.0, "{score:?}");
}

#[test]
fn the_naive_kind_forecasts_the_last_close_and_scores_as_the_baseline() {
    let data = signal().dataset();
    let naive = ModelParams::of_kind(ModelKind::Naive);
    let model = TrainedModel::fit(&naive, &data, 0..500).expect("fit");
    assert!(model.is_naive());
    assert_eq!(
        model.predict(&data, 500..600).expect("predict"),
        data.last_close()[500..600]
    );
    assert_eq!(model.predict_close(data.row(3), 123.5).expect("one"), 123.5);
    assert!(model.predict_close(data.row(3), -1.0).is_err());
    let evaluation = walk_forward(&naive, &data, 4, 25, LEVEL).expect("walk-forward");
    assert_eq!(evaluation.model, evaluation.baseline);
    assert_eq!(evaluation.skill, Some(0.0));
    assert_eq!(evaluation.diebold_mariano, None, "nothing to test");
    let linear = walk_forward(&ModelParams::default(), &data, 4, 25, LEVEL).expect("wf");
    assert_eq!(linear.baseline, evaluation.baseline, "the same windows");
    for (a, b) in linear.windows.iter().zip(&evaluation.windows) {
        assert_eq!(a.test_rows, b.test_rows);
        assert_eq!(a.baseline, b.baseline);
        assert_eq!(b.model, b.baseline);
    }
    // Its interval is that of the last move: actual / last − 1.
    let moves: Vec<f64> = data.target_close()[500..600]
        .iter()
        .zip(&data.last_close()[500..600])
        .map(|(a, l)| a / l - 1.0)
        .collect();
    assert_eq!(
        Some(evaluation.residual_interval),
        ResidualInterval::conformal(&moves, LEVEL)
    );
    let bytes = model.to_bytes().expect("save");
    assert!(
        String::from_utf8_lossy(&bytes).contains("\"Naive\":{}"),
        "the loader's layout"
    );
    let err = walk_forward(&naive, &data, 4, 25, 1.0).expect_err("level");
    assert!(
        err.to_string().contains("PRICECAST_INTERVAL_LEVEL"),
        "{err}"
    );
}

#[test]
fn too_little_history_says_how_many_rows_exist_and_are_needed() {
    let data = Synthetic::new(150, &[0.001, 0.002], 0.0, 0.001, 1).dataset();
    let err = walk_forward(&ModelParams::default(), &data, 2, 30, LEVEL)
        .expect_err("too short")
        .to_string();
    assert!(err.contains("150 rows exist but 161 are needed"), "{err}");
    let err = TrainedModel::fit(&ModelParams::default(), &data, 0..50)
        .expect_err("too short")
        .to_string();
    assert!(
        err.contains("50 training rows") && err.contains("100"),
        "{err}"
    );
}

#[test]
fn constant_and_missing_features_are_named() {
    let base = Synthetic::new(300, &[0.001, 0.002], 0.0, 0.001, 2);
    let mut x = base.x.clone();
    for row in x.chunks_mut(2) {
        row[1] = 7.0;
    }
    let names = vec!["rsi_14".to_owned(), "volume_z".to_owned()];
    let constant = Dataset::new(
        names.clone(),
        base.times.clone(),
        x.clone(),
        base.last.clone(),
        base.target.clone(),
        1,
        HOUR_MS,
    )
    .expect("constant is valid data");
    let err = walk_forward(&ModelParams::default(), &constant, 2, 20, LEVEL)
        .expect_err("constant")
        .to_string();
    assert!(err.contains("volume_z") && !err.contains("rsi_14"), "{err}");

    let build = |x: Vec<f64>| {
        Dataset::new(
            names.clone(),
            base.times.clone(),
            x,
            base.last.clone(),
            base.target.clone(),
            1,
            HOUR_MS,
        )
    };
    let mut one_nan = base.x.clone();
    one_nan[17 * 2] = f64::NAN;
    let err = build(one_nan).expect_err("NaN").to_string();
    assert!(err.contains("rsi_14 is NaN in row 17"), "{err}");
    let mut all_nan = base.x.clone();
    for row in all_nan.chunks_mut(2) {
        row[1] = f64::NAN;
    }
    let err = build(all_nan).expect_err("NaN").to_string();
    assert!(err.contains("volume_z is NaN in every row"), "{err}");
}

#[test]
fn datasets_reject_bad_closes_times_and_shapes() {
    let base = Synthetic::new(10, &[0.001], 0.0, 0.001, 4);
    let build = |times: Vec<i64>, x: Vec<f64>, last: Vec<f64>| {
        Dataset::new(
            vec!["f0".into()],
            times,
            x,
            last,
            base.target.clone(),
            1,
            HOUR_MS,
        )
        .expect_err("invalid")
        .to_string()
    };
    let mut times = base.times.clone();
    times[4] = times[3];
    assert!(build(times, base.x.clone(), base.last.clone()).contains("row 4"));
    let mut last = base.last.clone();
    last[2] = 0.0;
    assert!(build(base.times.clone(), base.x.clone(), last).contains("last close is 0 in row 2"));
    let err = build(base.times.clone(), vec![1.0; 9], base.last.clone());
    assert!(err.contains("lengths disagree"), "{err}");
}

#[test]
fn the_same_seed_grows_the_same_forest() {
    let data = signal().dataset();
    let params = quick(ModelKind::RandomForest);
    let a = TrainedModel::fit(&params, &data, 0..500).expect("fit");
    let b = TrainedModel::fit(&params, &data, 0..500).expect("fit");
    assert_eq!(a.to_bytes().expect("a"), b.to_bytes().expect("b"));
    let other = ModelParams { seed: 7, ..params };
    let c = TrainedModel::fit(&other, &data, 0..500).expect("fit");
    assert_ne!(
        a.predict(&data, 500..600).expect("a"),
        c.predict(&data, 500..600).expect("c")
    );
}

#[test]
fn chart_is_an_svg_with_three_lines_and_a_legend() {
    let data = signal().dataset();
    let evaluation =
        walk_forward(&ModelParams::default(), &data, 1, 48, LEVEL).expect("walk-forward");
    let svg = chart_svg(&evaluation.last_window, "BTCUSDT 1h, 1 step ahead").expect("chart");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    // Three series plus their three legend marks.
    assert!(svg.matches("<polyline").count() >= 6, "{svg}");
    for text in [
        "actual",
        "model",
        "baseline (last close)",
        "BTCUSDT 1h",
        "close",
    ] {
        assert!(svg.contains(text), "{text}");
    }
}

fn yaml_of(file: &ModelFile) -> serde_norway::Value {
    serde_norway::from_slice(&file.contents)
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", file.path))
}

fn schema_of(text: &str) -> Vec<(String, bool)> {
    let columns: serde_json::Value = serde_json::from_str(text).expect("schema JSON");
    columns
        .as_array()
        .expect("a column list")
        .iter()
        .map(|c| {
            assert_eq!(c["type"], "double", "{c}");
            (
                c["name"].as_str().expect("name").to_owned(),
                c["required"].as_bool().expect("required"),
            )
        })
        .collect()
}

#[test]
fn the_mlflow_folder_describes_both_flavors_and_the_signature() {
    let data = signal().dataset();
    let model = TrainedModel::fit(&quick(ModelKind::Ridge), &data, 0..500).expect("fit");
    let example = model.input_example_json(&data, 3).expect("example");
    let files = model
        .mlflow_files("linear_regression_model", &example)
        .expect("files");
    let paths: Vec<&str> = files.iter().map(|f| f.path).collect();
    assert_eq!(
        paths,
        [
            "model.json",
            "code/pricecast_pyfunc.py",
            "requirements.txt",
            "python_env.yaml",
            "conda.yaml",
            "feature_schema.json",
            "input_example.json",
            "MLmodel"
        ],
        "MLmodel last: a folder is a model once it is complete"
    );
    let file = |path: &str| files.iter().find(|f| f.path == path).expect(path);
    assert_eq!(
        file("model.json").contents,
        model.to_bytes().expect("bytes")
    );
    assert_eq!(file("input_example.json").contents, example.as_bytes());
    assert_eq!(
        file("code/pricecast_pyfunc.py").contents,
        mlflow_model::PYFUNC_LOADER_SOURCE.as_bytes()
    );
    assert_eq!(file("requirements.txt").contents, b"numpy\npandas\n");

    let mlmodel = yaml_of(file("MLmodel"));
    assert_eq!(mlmodel["artifact_path"], "linear_regression_model");
    let pyfunc = &mlmodel["flavors"]["python_function"];
    assert_eq!(pyfunc["loader_module"], "pricecast_pyfunc");
    assert_eq!(pyfunc["code"], "code");
    assert_eq!(pyfunc["data"], "model.json");
    assert_eq!(pyfunc["env"]["conda"], "conda.yaml");
    assert_eq!(pyfunc["env"]["virtualenv"], "python_env.yaml");
    assert_eq!(pyfunc["predict_fn"], "predict");
    assert_eq!(
        pyfunc["python_version"], "3.11",
        "a string, not the number 3.11"
    );
    let flavor = &mlmodel["flavors"]["pricecast"];
    assert_eq!(flavor["model_type"], "ridge");
    assert_eq!(flavor["model_file"], "model.json");
    assert_eq!(flavor["format_version"], 1);
    assert_eq!(flavor["smartcore_version"], "0.7.0");
    assert_eq!(flavor["horizon"], 1);
    assert_eq!(flavor["target"], "log_return");
    assert_eq!(
        flavor["feature_names"],
        serde_norway::to_value(["f0", "f1", "f2"]).expect("names")
    );
    assert_eq!(flavor["last_close_input"], "last_close");
    assert!(flavor["anchor_without_last_close"].is_null());
    assert_eq!(
        mlmodel["saved_input_example_info"]["artifact_path"],
        "input_example.json"
    );
    assert_eq!(mlmodel["saved_input_example_info"]["type"], "dataframe");
    assert_eq!(
        mlmodel["saved_input_example_info"]["pandas_orient"],
        "split"
    );
    let signature = &mlmodel["signature"];
    let inputs = signature["inputs"].as_str().expect("inputs as JSON text");
    assert_eq!(inputs, model.feature_schema_json());
    assert_eq!(
        file("feature_schema.json").contents,
        model.feature_schema_json().as_bytes()
    );
    let required = |name: &str| (name.to_owned(), true);
    assert_eq!(
        schema_of(inputs),
        [
            required("f0"),
            required("f1"),
            required("f2"),
            required("last_close")
        ],
        "without price_t-1 the forecast needs last_close"
    );
    assert_eq!(
        schema_of(signature["outputs"].as_str().expect("outputs")),
        [required("predicted_close")]
    );
    assert!(signature["params"].is_null());
    assert!(mlmodel["utc_time_created"].is_string());

    let python_env = yaml_of(file("python_env.yaml"));
    assert_eq!(python_env["python"], "3.11");
    assert_eq!(
        python_env["dependencies"],
        serde_norway::to_value(["-r requirements.txt"]).expect("list")
    );
    let conda = yaml_of(file("conda.yaml"));
    assert_eq!(conda["dependencies"][0], "python=3.11");
    assert_eq!(
        conda["dependencies"][2]["pip"],
        serde_norway::to_value(["numpy", "pandas"]).expect("list")
    );

    let example: serde_json::Value = serde_json::from_str(&example).expect("example JSON");
    assert_eq!(example["columns"][3], "last_close");
    assert_eq!(example["data"][0].as_array().map(Vec::len), Some(4));
}

#[test]
fn last_close_is_optional_for_a_model_on_price_t_1() {
    assert_eq!(
        crate::features::spec::feature_kind(ANCHOR_FEATURE),
        Some(crate::features::spec::FeatureKind::Lag(1)),
        "the anchor is the previous close"
    );
    let mut synthetic = signal();
    synthetic.names = vec!["ma_10".into(), ANCHOR_FEATURE.into(), "f2".into()];
    let data = synthetic.dataset();
    let model = TrainedModel::fit(&quick(ModelKind::Linear), &data, 0..500).expect("fit");
    assert!(!model.needs_last_close());
    let schema = schema_of(&model.feature_schema_json());
    assert_eq!(schema.last(), Some(&("last_close".to_owned(), false)));
    assert!(schema[..3].iter().all(|(_, required)| *required));
    let mlmodel = model.mlmodel("model");
    assert_eq!(
        mlmodel
            .flavors
            .pricecast
            .anchor_without_last_close
            .as_deref(),
        Some(ANCHOR_FEATURE)
    );
}

#[test]
fn the_python_loader_reads_the_names_and_version_rust_writes() {
    let source = mlflow_model::PYFUNC_LOADER_SOURCE;
    for line in [
        format!("FORMAT_VERSION = {MODEL_FORMAT_VERSION}\n"),
        format!("LAST_CLOSE = \"{LAST_CLOSE_INPUT}\"\n"),
        format!("ANCHOR_FEATURE = \"{ANCHOR_FEATURE}\"\n"),
        "def _load_pyfunc(data_path):\n".to_owned(),
    ] {
        assert!(source.contains(&line), "{line:?} not in the loader");
    }
}

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    model: ModelArgs,
}

#[test]
fn model_settings_parse_and_name_bad_variables() {
    let cli = Cli::try_parse_from(["train"]).expect("defaults");
    assert_eq!(cli.model.params(), ModelParams::default());
    let cli = Cli::try_parse_from([
        "train",
        "--model-type",
        "elastic-net",
        "--model-alpha",
        "0.1",
        "--model-l1-ratio",
        "0.2",
        "--model-trees",
        "50",
        "--model-max-depth",
        "4",
        "--model-min-samples-leaf",
        "5",
        "--model-seed",
        "9",
    ])
    .expect("flags");
    let params = cli.model.params();
    assert_eq!(params.kind, ModelKind::ElasticNet);
    assert_eq!((params.alpha, params.l1_ratio), (0.1, 0.2));
    assert_eq!((params.trees, params.max_depth, params.seed), (50, 4, 9));
    for (flag, value, variable) in [
        ("--model-type", "xgboost", "PRICECAST_MODEL_TYPE"),
        ("--model-alpha", "-1", "PRICECAST_MODEL_ALPHA"),
        ("--model-l1-ratio", "1.5", "PRICECAST_MODEL_L1_RATIO"),
        ("--model-trees", "0", "PRICECAST_MODEL_TREES"),
        ("--model-max-depth", "100", "PRICECAST_MODEL_MAX_DEPTH"),
        (
            "--model-min-samples-leaf",
            "0",
            "PRICECAST_MODEL_MIN_SAMPLES_LEAF",
        ),
        ("--model-seed", "x", "PRICECAST_MODEL_SEED"),
    ] {
        let err = Cli::try_parse_from(["train".to_owned(), format!("{flag}={value}")])
            .expect_err(variable)
            .to_string();
        assert!(err.contains(variable), "{err}");
    }
    for kind in KINDS {
        let json = serde_json::to_string(&kind).expect("json");
        assert_eq!(json, format!("\"{}\"", kind.as_str()));
    }
    let bad = ModelParams {
        l1_ratio: 2.0,
        ..ModelParams::default()
    };
    let err = bad.validate().expect_err("range").to_string();
    assert!(err.contains("PRICECAST_MODEL_L1_RATIO"), "{err}");
}
