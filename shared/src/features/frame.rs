//! The feature definition: one polars lazy pipeline from candles to features and targets,
//! used by the features job over the lake, by training and by the API on the newest candles.
//!
//! Nothing is ever read across a gap: a row is kept only when the candles its longest lag or
//! window reads are consecutive (its open time is exactly that many intervals after the
//! first one's; calendar months for `1M`), and a target only when the candle `h` later is
//! exactly `h` intervals later. A candle whose close is not a finite positive number (or whose
//! volume, when `volume_z_20` is selected, is not a finite non-negative one) counts as
//! missing, like a gap. Features are computed on every row and the rows that fail the check,
//! or have a feature that is not set (a volume z-score over equal volumes), are dropped once,
//! never filled; a row whose target is null (the newest rows, or a target across a gap) is
//! kept, since serving needs the newest row and training drops what has no target.
//!
//! Formulas (`n`, `k`, `h` in candles):
//! - `price_t-k`: the close `k` candles earlier.
//! - `ma_n`: mean of the last `n` closes, this one included (`ma_10` is the seed app's).
//! - `log_ret_k`: `ln(close_t / close_{t-k})`.
//! - `ma_ratio_n`: `close / ma_n`.
//! - `volatility_n`: sample standard deviation (n − 1 in the denominator) of the last `n`
//!   one-candle log returns.
//! - `rsi_14`: Cutler's RSI: simple means of the gains and of the losses over the last 14
//!   close-to-close changes, `100 − 100 / (1 + mean gain / mean loss)`, and 100 when the window
//!   has no loss (a flat window included). Computed as `50 · (1 + net / moved)` from the net
//!   change over the window and the sum of the absolute changes, which is the same ratio
//!   (gains + losses = moved, gains − losses = net) with one rolling sum instead of two.
//!   Unlike Wilder's smoothing, which depends on every earlier candle, it reads only its
//!   window, so a frame rebuilt from any starting point gives the same values.
//! - `volume_z_20`: `(volume − mean) / std` over the last 20 volumes (sample std); null when
//!   the volumes are all equal (std 0).
//! - `hour` (0–23) and `day_of_week` (Monday = 0 … Sunday = 6, as pandas' `dayofweek`), UTC.
//! - `price_t+h`: the close `h` candles later: the target.

use chrono::{DateTime, Utc};
use polars::prelude::*;

use super::rolling::{rolling_mean, rolling_std, rolling_sum};
use super::spec::{FeatureKind, FeatureSpec, feature_kind, target_name};
use crate::domain::{Candle, Interval};
use crate::error::{Error, Result};

/// Column of the candle open time (Datetime, ms, UTC) in candle and feature frames.
pub const OPEN_TIME: &str = "open_time";
/// Column of the close (Float64).
pub const CLOSE: &str = "close";
/// Column of the base volume (Float64).
pub const VOLUME: &str = "volume";

/// Internal columns, dropped before the frame is returned.
const SLOT: &str = "_slot";
const KEEP: &str = "_keep";
const RETURN_1: &str = "_ret_1";
const MOVE_1: &str = "_move_1";

/// Milliseconds in an hour and in a day, for the calendar features.
const MS_PER_HOUR: i64 = 3_600_000;
const MS_PER_DAY: i64 = 86_400_000;
/// 1970-01-01, day 0 of the epoch, was a Thursday: day 3 when Monday is 0.
const EPOCH_WEEKDAY: i64 = 3;

fn polars_error(operation: &str) -> impl Fn(PolarsError) -> Error + '_ {
    move |source| Error::Polars {
        operation: operation.to_owned(),
        source,
    }
}

/// The open time in ms since the epoch, whatever the frame's time unit.
fn open_time_ms() -> Expr {
    col(OPEN_TIME).dt().timestamp(TimeUnit::Milliseconds)
}

/// `slot` and the distance between consecutive candles in it: open time in ms for
/// fixed-length intervals, the month number for `1M` (months differ in length).
fn slot(interval: Interval) -> (Expr, i64) {
    match interval {
        Interval::Mo1 => (
            col(OPEN_TIME).dt().year().cast(DataType::Int64) * lit(12i64)
                + col(OPEN_TIME).dt().month().cast(DataType::Int64),
            1,
        ),
        _ => (open_time_ms(), interval.duration_ms()),
    }
}

/// True where the candle `k` rows away (earlier for `k > 0`, later for `k < 0`) opened
/// exactly `|k|` intervals away: since open times are aligned to the interval and strictly
/// increasing, the `|k| + 1` candles from there to here are then consecutive, so a lag or
/// window of up to `|k|` candles does not cross a gap. Missing candles (unusable values) have
/// no slot and push every later slot one step on, so they fail this check like a gap.
fn consecutive(k: i64, step: i64) -> Expr {
    (col(SLOT) - col(SLOT).shift(lit(k))).eq(lit(k * step))
}

fn only_if(condition: Expr, value: Expr) -> Expr {
    when(condition).then(value).otherwise(lit(Null {}))
}

/// The rolling mean of `n` closes, computed once for the average and its ratio to the close.
fn mean_column(n: u32) -> String {
    format!("_ma_{n}")
}

/// The expression computing one feature from the prepared columns, on every row: the rows
/// whose lags or windows reach across a gap or before the first candle
/// ([`FeatureKind::history`] longer than the run of consecutive candles) are dropped
/// afterwards, once for all features, as are rows with a feature not set (a volume z-score
/// over equal volumes).
fn feature_expr(kind: FeatureKind) -> Expr {
    let close = || col(CLOSE);
    match kind {
        FeatureKind::Lag(k) => close().shift(lit(i64::from(k))),
        FeatureKind::MovingAverage(n) => col(mean_column(n)),
        FeatureKind::LogReturn(k) => {
            (close() / close().shift(lit(i64::from(k)))).log(lit(std::f64::consts::E))
        }
        FeatureKind::MovingAverageRatio(n) => close() / col(mean_column(n)),
        FeatureKind::Volatility(n) => rolling_std(col(RETURN_1), n),
        FeatureKind::Rsi(n) => {
            // Over the window the gains plus the losses are the sum of the absolute changes,
            // and the gains minus the losses are the net change, so one rolling sum gives
            // both: mean gain / mean loss = (moved + net) / (moved - net).
            let moved = rolling_sum(col(MOVE_1), n);
            let net = close() - close().shift(lit(i64::from(n)));
            when((moved.clone() - net.clone()).lt_eq(lit(0.0)))
                .then(lit(100.0))
                .otherwise(lit(50.0) * (lit(1.0) + net / moved))
        }
        FeatureKind::VolumeZ(n) => {
            let mean = rolling_mean(col(VOLUME), n);
            let std = rolling_std(col(VOLUME), n);
            // Equal volumes: std 0, no z-score (null, so the row is dropped).
            only_if(std.clone().gt(lit(0.0)), (col(VOLUME) - mean) / std)
        }
        // Integer arithmetic on the UTC epoch milliseconds: the same as polars' `dt().hour()`
        // and `dt().weekday()` in UTC, without a calendar conversion per row.
        FeatureKind::Hour => {
            (open_time_ms().floor_div(lit(MS_PER_HOUR)) % lit(24i64)).cast(DataType::Int32)
        }
        FeatureKind::DayOfWeek => {
            ((open_time_ms().floor_div(lit(MS_PER_DAY)) + lit(EPOCH_WEEKDAY)) % lit(7i64))
                .cast(DataType::Int32)
        }
    }
}

/// Features and targets of one series (one symbol and interval).
///
/// `candles` holds `open_time` (Datetime, UTC, as in the lake's files and [`candle_frame`]),
/// `close`, and `volume` when `volume_z_20` is selected, sorted by `open_time` without
/// duplicates (the lake's files are; other columns are ignored). Prices may be decimals or
/// floats: they are cast to Float64. The frame has `open_time`, `close`, the selected features
/// in `spec` order, then one `price_t+h` per horizon; see the module documentation for the
/// formulas and the gap rule. Unknown feature names make the collect fail (check with
/// [`FeatureSpec::validate`] first).
pub fn feature_frame(candles: LazyFrame, interval: Interval, spec: &FeatureSpec) -> LazyFrame {
    let kinds: Vec<(String, Option<FeatureKind>)> = spec
        .features
        .iter()
        .map(|name| (name.clone(), feature_kind(name)))
        .collect();
    // Not cast: without polars' `timezones` feature a cast would drop the UTC zone.
    let mut inputs = vec![col(OPEN_TIME), col(CLOSE).cast(DataType::Float64)];
    if spec.needs_volume() {
        inputs.push(col(VOLUME).cast(DataType::Float64));
    }
    let (slot_expr, step) = slot(interval);

    let mut means: Vec<u32> = kinds
        .iter()
        .filter_map(|(_, kind)| match kind {
            Some(FeatureKind::MovingAverage(n) | FeatureKind::MovingAverageRatio(n)) => Some(*n),
            _ => None,
        })
        .collect();
    means.sort_unstable();
    means.dedup();
    let mut prepared: Vec<Expr> = means
        .iter()
        .map(|&n| rolling_mean(col(CLOSE), n).alias(mean_column(n)))
        .collect();
    let needs = |wanted: fn(FeatureKind) -> bool| kinds.iter().any(|(_, k)| k.is_some_and(wanted));
    // The first row has no previous close: 0 stands in, and every window holding it is
    // dropped with its row: the rolling kernels take columns without nulls.
    if needs(|k| matches!(k, FeatureKind::Volatility(_))) {
        prepared.push(
            (col(CLOSE) / col(CLOSE).shift(lit(1i64)))
                .log(lit(std::f64::consts::E))
                .fill_null(lit(0.0))
                .alias(RETURN_1),
        );
    }
    if needs(|k| matches!(k, FeatureKind::Rsi(_))) {
        prepared.push(
            (col(CLOSE) - col(CLOSE).shift(lit(1i64)))
                .abs()
                .fill_null(lit(0.0))
                .alias(MOVE_1),
        );
    }

    let mut computed = Vec::new();
    for (name, kind) in &kinds {
        if let Some(kind) = kind {
            computed.push(feature_expr(*kind).alias(name.as_str()));
        }
    }
    for &h in &spec.horizons {
        let h = i64::from(h);
        computed.push(
            only_if(consecutive(-h, step), col(CLOSE).shift(lit(-h))).alias(target_name(h as u32)),
        );
    }

    let mut outputs = vec![col(OPEN_TIME), col(CLOSE)];
    // Selecting a column that does not exist fails the collect, naming it.
    outputs.extend(spec.features.iter().map(|name| col(name.as_str())));
    outputs.extend(spec.horizons.iter().map(|&h| col(target_name(h).as_str())));

    // A close that is not a finite positive number, or a volume that is not a finite
    // non-negative one, makes its candle missing. Its slot is null, and every later slot moves
    // one step on, so no lag, window or target reaches across it (the slot distance only
    // grows); its values are replaced by harmless finite ones that only dropped rows read.
    // Every feature of a kept row is then finite, and the rolling kernels see no nulls.
    let mut usable = col(CLOSE)
        .gt(lit(0.0))
        .and(col(CLOSE).lt(lit(f64::INFINITY)));
    let mut sanitised = vec![
        when(usable.clone())
            .then(col(CLOSE))
            .otherwise(lit(1.0))
            .alias(CLOSE),
    ];
    if spec.needs_volume() {
        let volume_usable = col(VOLUME)
            .gt_eq(lit(0.0))
            .and(col(VOLUME).lt(lit(f64::INFINITY)));
        usable = usable.and(volume_usable);
        sanitised.push(
            when(usable.clone())
                .then(col(VOLUME))
                .otherwise(lit(0.0))
                .alias(VOLUME),
        );
    }
    let missing_so_far = usable.clone().not().cast(DataType::Int64).cum_sum(false);
    sanitised.push(only_if(usable, slot_expr + lit(step) * missing_so_far).alias(SLOT));
    // `with_columns` evaluates its expressions in parallel; `with_column` would not, and
    // would make the stage it is merged into sequential.
    let frame = candles
        .select(inputs)
        .with_columns(sanitised)
        .with_columns(prepared)
        .with_columns(computed);
    // One check for the whole row: the candle is usable, enough consecutive usable candles
    // precede it for the longest history, and every feature is set (a volume z-score over
    // equal volumes is not).
    let consecutive_history = match spec.history() as i64 {
        0 => col(SLOT).is_not_null(),
        history => consecutive(history, step),
    };
    let keep = spec
        .features
        .iter()
        .fold(consecutive_history, |keep, name| {
            keep.and(col(name.as_str()).is_not_null())
        });
    let mut with_keep = outputs.clone();
    with_keep.push(keep.alias(KEEP));
    frame.select(with_keep).filter(col(KEEP)).select(outputs)
}

/// A candle frame (`open_time`, `close`, `volume`) from store candles, oldest first. Prices
/// become the nearest Float64 to the exact decimal.
pub fn candle_frame(candles: &[Candle]) -> Result<DataFrame> {
    let float = |value: rust_decimal::Decimal| -> Result<f64> {
        value.to_string().parse().map_err(|e| Error::Features {
            operation: "building a candle frame".to_owned(),
            message: format!("{value} is not a number: {e}"),
        })
    };
    let mut open_time = Vec::with_capacity(candles.len());
    let mut close = Vec::with_capacity(candles.len());
    let mut volume = Vec::with_capacity(candles.len());
    for candle in candles {
        open_time.push(candle.open_time.timestamp_millis());
        close.push(float(candle.close)?);
        volume.push(float(candle.volume)?);
    }
    let error = polars_error("building a candle frame");
    let open_time = Int64Chunked::from_vec(OPEN_TIME.into(), open_time)
        .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
        .into_column();
    DataFrame::new(
        candles.len(),
        vec![
            open_time,
            Column::new(CLOSE.into(), close),
            Column::new(VOLUME.into(), volume),
        ],
    )
    .map_err(&error)
}

/// The newest candle's features, in [`FeatureSpec::feature_names`] order.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureRow {
    /// Open time of the newest candle.
    pub open_time: DateTime<Utc>,
    /// Its close.
    pub close: f64,
    /// The features, in the spec's order.
    pub values: Vec<f64>,
}

/// The features of the newest candle of `candles` (one series, oldest first), or `None` when
/// they cannot all be computed (too little history, or a gap inside it). Reads only the last
/// [`FeatureSpec::history`] + 1 candles, through the same pipeline as the stored frames.
pub fn latest_row(
    candles: &[Candle],
    interval: Interval,
    spec: &FeatureSpec,
) -> Result<Option<FeatureRow>> {
    let Some(newest) = candles.last() else {
        return Ok(None);
    };
    let tail = &candles[candles.len().saturating_sub(spec.history() + 1)..];
    let features_only = FeatureSpec {
        horizons: Vec::new(),
        features: spec.features.clone(),
    };
    let frame = feature_frame(candle_frame(tail)?.lazy(), interval, &features_only)
        .tail(1)
        .collect()
        .map_err(polars_error("computing the newest feature row"))?;
    let rows = feature_rows(&frame, &features_only, None)?;
    if rows.open_time_ms.last() != Some(&newest.open_time.timestamp_millis()) {
        return Ok(None);
    }
    Ok(Some(FeatureRow {
        open_time: newest.open_time,
        close: rows.close[0],
        values: rows.x,
    }))
}

/// A feature frame as plain vectors for model fitting.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainingRows {
    /// Feature names, the columns of `x`.
    pub feature_names: Vec<String>,
    /// Open time of each row, ms since the epoch.
    pub open_time_ms: Vec<i64>,
    /// Close of each row.
    pub close: Vec<f64>,
    /// Features, row-major: row `i` is `x[i * n .. (i + 1) * n]` with `n` features.
    pub x: Vec<f64>,
    /// The chosen target of each row; `None` where it is unknown (the newest rows, or a gap).
    pub target: Vec<Option<f64>>,
}

impl TrainingRows {
    /// Rows.
    pub fn len(&self) -> usize {
        self.open_time_ms.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.open_time_ms.is_empty()
    }

    /// Features per row.
    pub fn width(&self) -> usize {
        self.feature_names.len()
    }

    /// The features of row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        let n = self.width();
        &self.x[i * n..(i + 1) * n]
    }
}

/// Copies a feature frame's open times, closes, features (row-major, `spec` order) and the
/// target at `horizon` (`None`: no target column is read) out of polars. Fails when a feature
/// or the target column is missing, or a feature is null (frames from [`feature_frame`] have
/// none).
pub fn feature_rows(
    frame: &DataFrame,
    spec: &FeatureSpec,
    horizon: Option<u32>,
) -> Result<TrainingRows> {
    let error = polars_error("reading a feature frame");
    let floats = |name: &str| -> Result<Vec<Option<f64>>> {
        let column = frame
            .column(name)
            .map_err(&error)?
            .cast(&DataType::Float64)
            .map_err(&error)?;
        Ok(column.f64().map_err(&error)?.iter().collect())
    };
    let open_time_ms: Vec<i64> = frame
        .column(OPEN_TIME)
        .map_err(&error)?
        .cast(&DataType::Int64)
        .map_err(&error)?
        .i64()
        .map_err(&error)?
        .iter()
        .map(|t| t.unwrap_or_default())
        .collect();
    let close: Vec<f64> = floats(CLOSE)?
        .into_iter()
        .map(|c| c.unwrap_or(f64::NAN))
        .collect();
    let rows = frame.height();
    let width = spec.features.len();
    let mut x = vec![0.0; rows * width];
    for (j, name) in spec.features.iter().enumerate() {
        for (i, value) in floats(name)?.into_iter().enumerate() {
            x[i * width + j] = value.ok_or_else(|| Error::Features {
                operation: "reading a feature frame".to_owned(),
                message: format!("{name} is null in row {i}: not a frame from feature_frame"),
            })?;
        }
    }
    let target = match horizon {
        Some(h) => floats(&target_name(h))?,
        None => vec![None; rows],
    };
    Ok(TrainingRows {
        feature_names: spec.features.clone(),
        open_time_ms,
        close,
        x,
        target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::seed::seed_features;
    use crate::features::spec::{PRICE_FEATURE_NAMES, SEED_FEATURE_NAMES};
    use chrono::TimeZone;

    /// The 120 real BTCUSDT hourly candles of the bundled history from 2023-03-22 00:00 UTC,
    /// around the real gap (no 13:00 candle on 2023-03-24).
    const REAL_SLICE: &str = include_str!("../../testdata/btcusdt_1h_2023-03-22.csv");

    fn real_slice() -> Vec<Candle> {
        let symbol: crate::domain::Symbol = "BTCUSDT".parse().expect("symbol");
        REAL_SLICE
            .lines()
            .skip(1)
            .map(|line| {
                let fields: Vec<&str> = line.split(',').collect();
                let decimal =
                    |i: usize| -> rust_decimal::Decimal { fields[i].parse().expect("decimal") };
                let open_time =
                    chrono::NaiveDateTime::parse_from_str(fields[0], "%Y-%m-%d %H:%M:%S")
                        .expect("date")
                        .and_utc();
                Candle {
                    symbol: symbol.clone(),
                    interval: Interval::H1,
                    open_time,
                    open: decimal(1),
                    high: decimal(2),
                    low: decimal(3),
                    close: decimal(4),
                    volume: decimal(5),
                    quote_volume: None,
                    trades: None,
                    taker_buy_base: None,
                    taker_buy_quote: None,
                    close_time: open_time + chrono::Duration::hours(1)
                        - chrono::Duration::milliseconds(1),
                    source: "replay".to_owned(),
                }
            })
            .collect()
    }

    fn frame(candles: &[Candle], spec: &FeatureSpec) -> DataFrame {
        feature_frame(
            candle_frame(candles).expect("candles").lazy(),
            Interval::H1,
            spec,
        )
        .collect()
        .expect("features")
    }

    fn closes(candles: &[Candle]) -> Vec<f64> {
        candles
            .iter()
            .map(|c| c.close.to_string().parse().expect("close"))
            .collect()
    }

    /// The value of `column` in the row opening at `open_time`, `None` when the row was dropped.
    fn value_at(df: &DataFrame, column: &str, open_time: DateTime<Utc>) -> Option<Option<f64>> {
        let spec = FeatureSpec {
            horizons: Vec::new(),
            features: Vec::new(),
        };
        let rows = feature_rows(df, &spec, None).expect("rows");
        let i = rows
            .open_time_ms
            .iter()
            .position(|&t| t == open_time.timestamp_millis())?;
        let values = df
            .column(column)
            .expect("column")
            .cast(&DataType::Float64)
            .expect("cast");
        Some(values.f64().expect("f64").get(i))
    }

    fn close_enough(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn lags_averages_and_returns_match_hand_computation_and_the_seed_code() {
        // The 48 candles before the gap: consecutive, so every row from the 50th on exists.
        let candles = &real_slice()[..48 + 13];
        let c = closes(candles);
        let df = frame(candles, &FeatureSpec::all(vec![1]));
        let seed = seed_features(
            &candles.iter().map(Into::into).collect::<Vec<_>>(),
            Interval::H1,
        );
        // Rows 49..=60 have 49 candles of history.
        assert_eq!(df.height(), candles.len() - 49);
        for (t, candle) in candles.iter().enumerate().skip(49) {
            let at = candle.open_time;
            let got = |name: &str| value_at(&df, name, at).flatten().expect(name);
            for k in 1..=5 {
                assert_eq!(got(&format!("price_t-{k}")), c[t - k], "lag {k} at {t}");
            }
            let ma = |n: usize| c[t + 1 - n..=t].iter().sum::<f64>() / n as f64;
            let seed_ma: f64 = seed[t]
                .ma_10
                .expect("seed ma")
                .to_string()
                .parse()
                .expect("f64");
            assert!(close_enough(got("ma_10"), seed_ma), "ma_10 at {t}");
            assert!(close_enough(got("ma_10"), ma(10)));
            assert!(close_enough(got("ma_50"), ma(50)));
            assert!(close_enough(got("ma_ratio_20"), c[t] / ma(20)));
            for k in [1, 2, 3, 5, 10] {
                let expected = (c[t] / c[t - k]).ln();
                assert!(
                    close_enough(got(&format!("log_ret_{k}")), expected),
                    "log_ret_{k} at {t}"
                );
            }
            if t + 1 < candles.len() {
                assert_eq!(got("price_t+1"), c[t + 1]);
            }
        }
        // The newest row is kept with its unknown target.
        let newest = candles[candles.len() - 1].open_time;
        assert_eq!(value_at(&df, "price_t+1", newest), Some(None));
    }

    #[test]
    fn rsi_and_volatility_match_hand_computation() {
        let candles = &real_slice()[..60];
        let c = closes(candles);
        let spec = FeatureSpec::new(&PRICE_FEATURE_NAMES, vec![1]).expect("spec");
        let df = frame(candles, &spec);
        for (t, candle) in candles.iter().enumerate().skip(49) {
            let at = candle.open_time;
            let got = |name: &str| value_at(&df, name, at).flatten().expect(name);
            let changes: Vec<f64> = (t - 13..=t).map(|i| c[i] - c[i - 1]).collect();
            let gain = changes.iter().filter(|d| **d > 0.0).sum::<f64>() / 14.0;
            let loss = -changes.iter().filter(|d| **d < 0.0).sum::<f64>() / 14.0;
            let rsi = 100.0 - 100.0 / (1.0 + gain / loss);
            assert!(
                (got("rsi_14") - rsi).abs() < 1e-6,
                "rsi at {t}: {} vs {rsi}",
                got("rsi_14")
            );
            for n in [10usize, 20] {
                let returns: Vec<f64> = (t + 1 - n..=t).map(|i| (c[i] / c[i - 1]).ln()).collect();
                let mean = returns.iter().sum::<f64>() / n as f64;
                let var =
                    returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0);
                assert!(
                    (got(&format!("volatility_{n}")) - var.sqrt()).abs() < 1e-12,
                    "volatility_{n} at {t}"
                );
            }
        }
    }

    #[test]
    fn rsi_of_a_window_without_losses_is_100() {
        let mut candles = real_slice()[..20].to_vec();
        for (i, candle) in candles.iter_mut().enumerate() {
            candle.close = rust_decimal::Decimal::from(100 + i as i64);
        }
        let spec = FeatureSpec::new(&["rsi_14"], vec![1]).expect("spec");
        let df = frame(&candles, &spec);
        assert_eq!(df.height(), 6);
        let rsi = df.column("rsi_14").expect("rsi").f64().expect("f64").get(0);
        assert_eq!(rsi, Some(100.0));
    }

    #[test]
    fn a_future_candle_never_changes_a_past_row() {
        let candles = &real_slice()[..60];
        let before = frame(candles, &FeatureSpec::all(vec![1, 3]));
        let mut changed = candles.to_vec();
        changed[55].close += rust_decimal::Decimal::from(1000);
        changed[55].volume += rust_decimal::Decimal::from(50);
        let after = frame(&changed, &FeatureSpec::all(vec![1, 3]));
        let rows = |df: &DataFrame| {
            feature_rows(df, &FeatureSpec::all(vec![1, 3]), Some(1)).expect("rows")
        };
        let (b, a) = (rows(&before), rows(&after));
        let (b3, a3) = (
            feature_rows(&before, &FeatureSpec::all(vec![1, 3]), Some(3)).expect("rows"),
            feature_rows(&after, &FeatureSpec::all(vec![1, 3]), Some(3)).expect("rows"),
        );
        for i in 0..b.len() {
            let t = 49 + i;
            if t < 55 {
                assert_eq!(b.row(i), a.row(i), "features of row {t}");
                assert_eq!(b.target[i] == a.target[i], t != 54, "t+1 target of row {t}");
                assert_eq!(
                    b3.target[i] == a3.target[i],
                    t != 52,
                    "t+3 target of row {t}"
                );
            } else {
                assert_ne!(b.row(i), a.row(i), "row {t} reads candle 55");
            }
        }
    }

    #[test]
    fn an_unusable_close_or_volume_is_a_missing_candle() {
        let candles = &real_slice()[..60];
        let spec = FeatureSpec::all(vec![1]);
        let mut without = candles.to_vec();
        without.remove(50);
        let expected = frame(&without, &spec);
        assert!(expected.height() > 0);
        for (column, bad) in [
            (CLOSE, f64::NAN),
            (CLOSE, 0.0),
            (CLOSE, -1.0),
            (CLOSE, f64::INFINITY),
            (VOLUME, f64::NAN),
            (VOLUME, -1.0),
        ] {
            let mut input = candle_frame(candles).expect("candles");
            let mut values: Vec<f64> = input
                .column(column)
                .expect("column")
                .f64()
                .expect("f64")
                .into_no_null_iter()
                .collect();
            values[50] = bad;
            input
                .with_column(Column::new(column.into(), values))
                .expect("replace");
            let got = feature_frame(input.lazy(), Interval::H1, &spec)
                .collect()
                .expect("features");
            assert!(got.equals_missing(&expected), "{column} = {bad}");
        }
    }

    #[test]
    fn lags_and_windows_never_cross_the_real_gap() {
        let candles = real_slice();
        let gap = Utc
            .with_ymd_and_hms(2023, 3, 24, 13, 0, 0)
            .single()
            .expect("time");
        let hour = chrono::Duration::hours(1);
        assert!(candles.iter().all(|c| c.open_time != gap));
        let seed = FeatureSpec::new(&SEED_FEATURE_NAMES, vec![1]).expect("spec");
        let df = frame(&candles, &seed);
        // 14:00 has no t-1; through 22:00 the ten-candle average spans the gap.
        for h in 1..=9 {
            assert_eq!(
                value_at(&df, "ma_10", gap + hour * h),
                None,
                "+{h}h dropped"
            );
        }
        assert!(value_at(&df, "ma_10", gap + hour * 10).is_some());
        // 12:00's target would be the missing 13:00: kept, with a null target.
        assert_eq!(value_at(&df, "price_t+1", gap - hour), Some(None));
        assert!(
            value_at(&df, "price_t+1", gap - hour * 2)
                .flatten()
                .is_some()
        );

        // With every feature, 50 candles after the gap are needed again; 12:00's zero
        // volume makes volume_z still defined (the window is not constant).
        let all = frame(&candles, &FeatureSpec::all(vec![1]));
        assert_eq!(value_at(&all, "ma_50", gap + hour * 49), None);
        assert!(value_at(&all, "ma_50", gap + hour * 50).is_some());
        assert!(value_at(&all, "volume_z_20", gap - hour).is_some());
    }

    #[test]
    fn calendar_features_are_utc_with_monday_zero() {
        // 2023-03-22 was a Wednesday.
        let candles = &real_slice()[..30];
        let spec = FeatureSpec::new(&["hour", "day_of_week"], vec![1]).expect("spec");
        let df = frame(candles, &spec);
        assert_eq!(df.height(), 30);
        let rows = feature_rows(&df, &spec, Some(1)).expect("rows");
        assert_eq!(rows.row(0), &[0.0, 2.0]);
        assert_eq!(rows.row(29), &[5.0, 3.0]);
        assert_eq!(rows.width(), 2);
    }

    #[test]
    fn latest_row_is_the_last_row_of_the_frame_and_needs_full_history() {
        // The 61 candles before the real gap.
        let candles = &real_slice()[..61];
        let spec = FeatureSpec::new(&PRICE_FEATURE_NAMES, vec![1]).expect("spec");
        let full = feature_rows(&frame(candles, &spec), &spec, None).expect("rows");
        let latest = latest_row(candles, Interval::H1, &spec)
            .expect("latest")
            .expect("complete");
        assert_eq!(latest.open_time, candles[60].open_time);
        // Rolling sums start where the frame starts: equal up to the last bits.
        let last = full.row(full.len() - 1);
        assert_eq!(latest.values.len(), last.len());
        for (a, b) in latest.values.iter().zip(last) {
            assert!(close_enough(*a, *b), "{a} vs {b}");
        }
        assert_eq!(latest.close, *full.close.last().expect("close"));
        // After the gap (index 61 opens at 14:00) the 50th candle is the first complete row.
        let after_gap = real_slice();
        let short = &after_gap[..61 + 49];
        assert_eq!(
            latest_row(short, Interval::H1, &spec).expect("latest"),
            None
        );
        let enough = &after_gap[..61 + 50];
        assert!(
            latest_row(enough, Interval::H1, &spec)
                .expect("latest")
                .is_some()
        );
        assert_eq!(latest_row(&[], Interval::H1, &spec).expect("empty"), None);
    }

    #[test]
    fn monthly_candles_step_by_calendar_month() {
        let months: Vec<Candle> = (0..8)
            .map(|m| {
                let mut candle = real_slice()[0].clone();
                candle.interval = Interval::Mo1;
                candle.open_time = Utc
                    .with_ymd_and_hms(2024, 1 + m, 1, 0, 0, 0)
                    .single()
                    .expect("month");
                candle.close = rust_decimal::Decimal::from(100 + m);
                candle
            })
            .collect();
        let spec = FeatureSpec::new(&["price_t-1", "price_t-5"], vec![1]).expect("spec");
        let df = feature_frame(
            candle_frame(&months).expect("candles").lazy(),
            Interval::Mo1,
            &spec,
        )
        .collect()
        .expect("features");
        assert_eq!(
            df.height(),
            3,
            "February's 29 days and July's 31 are one month each"
        );
    }
}
