//! Fixed-window rolling sums, means and sample standard deviations for the feature frame, as
//! polars expressions.
//!
//! polars' own rolling kernels are general: each output goes through a window object, an
//! `Option` and a validity bit, and the standard deviation re-aggregates a two-stack state per
//! row. The feature frame's windows are fixed, over columns the pipeline has already made free
//! of nulls and non-finite values, so these kernels keep one running state per window and
//! update it in O(1) per row, as pandas does: a running sum, and Welford's update of the mean
//! and the sum of squared deviations when one value replaces another. Rounding errors of the
//! running updates cannot build up: every 128 rows, and whenever a large value leaves the
//! window, the state is recomputed exactly from its window, so results stay within about
//! 1e-10 of the exact ones (the unit tests check this on awkward series). A window of equal
//! values has a standard deviation of exactly 0, as in polars and pandas.
//!
//! Outputs are null where the window is not full (the first `n - 1` rows).

use polars::prelude::*;
use polars_arrow::bitmap::MutableBitmap;

/// Rows between two exact recomputations of a running window state from the window itself.
/// Long enough to make the recomputation's cost negligible (it reads `n` values once per this
/// many rows), short enough that the running updates' rounding errors (a few units in the
/// last place of the state's largest magnitude per row) stay below about 1e-11 of it.
const RESYNC_ROWS: usize = 128;

/// A running state is also recomputed when it shrinks below this fraction of the largest
/// magnitude it held since its last recomputation (a large value left the window): its
/// rounding errors are relative to that magnitude, so they stay below about 1e-10 of the
/// value (the stand-in close of a missing candle is such a large value for returns).
const CANCELLATION_LIMIT: f64 = 1e-3;

/// Sum of each window of `n` values ending at every row; the first `n - 1` entries are 0 (not
/// a full window). Requires `n >= 1`.
pub fn window_sums(values: &[f64], n: usize) -> Vec<f64> {
    assert!(n >= 1, "a window holds at least one value");
    let mut out = vec![0.0; values.len()];
    let (mut sum, mut peak) = (0.0f64, 0.0f64);
    for end in n..=values.len() {
        let start = end - n;
        if !start.is_multiple_of(RESYNC_ROWS) {
            // The difference first: it does not depend on the running sum, so the loop's
            // dependency chain is one addition per row.
            sum += values[end - 1] - values[start - 1];
            peak = peak.max(sum.abs());
        }
        if start.is_multiple_of(RESYNC_ROWS) || sum.abs() < peak * CANCELLATION_LIMIT {
            sum = values[start..end].iter().sum();
            peak = sum.abs();
        }
        out[end - 1] = sum;
    }
    out
}

/// Sample standard deviation (`n - 1` in the denominator) of each window of `n` values ending
/// at every row; the first `n - 1` entries are 0 (not a full window). Requires `n >= 2`.
pub fn window_std(values: &[f64], n: usize) -> Vec<f64> {
    assert!(
        n >= 2,
        "a sample standard deviation needs at least two values"
    );
    let mut out = vec![0.0; values.len()];
    let count = n as f64;
    // Values are taken relative to the window's mean at the last exact recomputation, so the
    // running mean stays small and its rounding errors with it (prices are far from 0).
    let mut origin = 0.0f64;
    // Mean (relative to `origin`) and sum of squared deviations of the window, and the largest
    // such sum since the last exact recomputation.
    let (mut mean, mut squares, mut peak) = (0.0f64, 0.0f64, 0.0f64);
    // Length of the run of equal values ending at the current row.
    let mut equal_run = 0usize;
    for end in n..=values.len() {
        let start = end - n;
        if !start.is_multiple_of(RESYNC_ROWS) {
            let (old, new) = (values[start - 1], values[end - 1]);
            let delta = new - old;
            let old_mean = mean;
            mean += delta / count;
            squares += delta * ((new - origin) - mean + (old - origin) - old_mean);
            peak = peak.max(squares);
            equal_run = if new == values[end - 2] {
                equal_run + 1
            } else {
                1
            };
        }
        if start.is_multiple_of(RESYNC_ROWS) || squares < peak * CANCELLATION_LIMIT {
            let window = &values[start..end];
            origin = window.iter().sum::<f64>() / count;
            mean = window.iter().map(|x| x - origin).sum::<f64>() / count;
            squares = window.iter().map(|x| (x - origin - mean).powi(2)).sum();
            peak = squares;
            equal_run = window
                .iter()
                .rev()
                .take_while(|&&x| x == window[n - 1])
                .count();
        }
        out[end - 1] = if equal_run >= n {
            0.0
        } else {
            (squares.max(0.0) / (count - 1.0)).sqrt()
        };
    }
    out
}

/// What a rolling expression computes over each window.
#[derive(Clone, Copy, Debug)]
enum Statistic {
    Sum,
    Mean,
    Std,
}

/// The rolling `statistic` of `input` over windows of `n` rows, null where the window is not
/// full. `input` must be a Float64 column without nulls: the pipeline's prepared columns are.
fn rolling(input: Expr, n: u32, statistic: Statistic) -> Expr {
    let n = n as usize;
    input.apply(
        move |column: Column| {
            let series = column.as_materialized_series();
            let floats = series.f64()?.rechunk();
            polars_ensure!(
                floats.null_count() == 0,
                ComputeError: "rolling {statistic:?} of column {} with nulls", series.name()
            );
            let values = floats.cont_slice()?;
            let out = match statistic {
                Statistic::Sum => window_sums(values, n),
                Statistic::Mean => {
                    let mut sums = window_sums(values, n);
                    sums.iter_mut().for_each(|sum| *sum /= n as f64);
                    sums
                }
                Statistic::Std => window_std(values, n),
            };
            let mut full = MutableBitmap::with_capacity(out.len());
            let partial = out.len().min(n - 1);
            full.extend_constant(partial, false);
            full.extend_constant(out.len() - partial, true);
            Ok(
                Float64Chunked::from_vec_validity(series.name().clone(), out, Some(full.into()))
                    .into_column(),
            )
        },
        |_, field| Ok(Field::new(field.name().clone(), DataType::Float64)),
    )
}

/// Rolling sum over windows of `n` rows (`n >= 1`).
pub fn rolling_sum(input: Expr, n: u32) -> Expr {
    rolling(input, n, Statistic::Sum)
}

/// Rolling mean over windows of `n` rows (`n >= 1`).
pub fn rolling_mean(input: Expr, n: u32) -> Expr {
    rolling(input, n, Statistic::Mean)
}

/// Rolling sample standard deviation over windows of `n` rows (`n >= 2`).
pub fn rolling_std(input: Expr, n: u32) -> Expr {
    rolling(input, n, Statistic::Std)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_sum(window: &[f64]) -> f64 {
        window.iter().sum()
    }

    fn naive_std(window: &[f64]) -> f64 {
        let mean = naive_sum(window) / window.len() as f64;
        let squares: f64 = window.iter().map(|x| (x - mean).powi(2)).sum();
        (squares / (window.len() - 1) as f64).sqrt()
    }

    /// Prices with a trend, noise, jumps to a stand-in 1.0 (an unusable candle) and flat runs.
    fn awkward_series(len: usize) -> Vec<f64> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        (0..len)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let noise = (state % 10_000) as f64 / 100.0;
                match i % 997 {
                    0 => 1.0,
                    300..=340 => 42_000.5,
                    _ => 30_000.0 + i as f64 * 0.37 + noise,
                }
            })
            .collect()
    }

    /// Within 1e-10 of the exact value, relative: what the running states promise.
    fn assert_close(actual: f64, expected: f64, row: usize) {
        assert!(
            (actual - expected).abs() <= 1e-10 * expected.abs(),
            "row {row}: {actual} vs {expected}"
        );
    }

    #[test]
    fn sums_match_the_window_sums_everywhere() {
        let values = awkward_series(5_000);
        for n in [1, 2, 5, 14, 50, 300] {
            let sums = window_sums(&values, n);
            for row in n - 1..values.len() {
                assert_close(sums[row], naive_sum(&values[row + 1 - n..=row]), row);
            }
        }
    }

    #[test]
    fn standard_deviations_match_the_two_pass_formula() {
        let values = awkward_series(5_000);
        let returns: Vec<f64> = values.windows(2).map(|w| (w[1] / w[0]).ln()).collect();
        for series in [&values, &returns] {
            for n in [2, 10, 20, 257] {
                let std = window_std(series, n);
                for row in n - 1..series.len() {
                    let window = &series[row + 1 - n..=row];
                    if window.iter().all(|&x| x == window[0]) {
                        assert_eq!(std[row], 0.0, "row {row}: equal values");
                    } else {
                        assert_close(std[row], naive_std(window), row);
                    }
                }
            }
        }
    }

    #[test]
    fn a_window_of_equal_values_has_no_spread() {
        let mut values: Vec<f64> = (0..600).map(|i| 0.1 * (i % 7) as f64).collect();
        values.extend(std::iter::repeat_n(0.1, 300));
        let std = window_std(&values, 20);
        assert!(std[618] > 0.0);
        assert!(std[619..].iter().all(|&s| s == 0.0));
    }

    #[test]
    fn short_input_gives_no_full_window() {
        assert_eq!(window_sums(&[1.0, 2.0], 3), vec![0.0, 0.0]);
        assert_eq!(window_std(&[], 3), Vec::<f64>::new());
    }

    #[test]
    fn expressions_null_the_rows_without_a_full_window() {
        let frame = df!("x" => [1.0, 2.0, 4.0, 8.0]).expect("frame");
        let out = frame
            .lazy()
            .select([
                rolling_sum(col("x"), 2).alias("sum"),
                rolling_mean(col("x"), 3).alias("mean"),
                rolling_std(col("x"), 2).alias("std"),
            ])
            .collect()
            .expect("collect");
        let column = |name: &str| -> Vec<Option<f64>> {
            out.column(name)
                .expect("column")
                .f64()
                .expect("f64")
                .iter()
                .collect()
        };
        assert_eq!(column("sum"), [None, Some(3.0), Some(6.0), Some(12.0)]);
        assert_eq!(
            column("mean"),
            [None, None, Some(7.0 / 3.0), Some(14.0 / 3.0)]
        );
        let half_root_two = std::f64::consts::FRAC_1_SQRT_2;
        assert_eq!(
            column("std"),
            [
                None,
                Some(half_root_two),
                Some(2.0 * half_root_two),
                Some(4.0 * half_root_two)
            ]
        );
    }

    #[test]
    fn nulls_are_refused() {
        let frame = df!("x" => [Some(1.0), None, Some(4.0)]).expect("frame");
        let error = frame
            .lazy()
            .select([rolling_sum(col("x"), 2)])
            .collect()
            .expect_err("nulls");
        assert!(error.to_string().contains("with nulls"), "{error}");
    }
}
