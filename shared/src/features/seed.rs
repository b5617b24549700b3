//! The seed app's features in exact decimals, as `/price/history` serves them: the previous
//! five closes (`price_t-1` … `price_t-5`), the mean of the last ten closes including the
//! current one (`ma_10`) and the next close (`price_t+1`). A lag is taken only from the candle
//! exactly one interval earlier (and the next close only from the candle exactly one interval
//! later): a value that would cross a gap in the candles is missing, never the wrong candle, and
//! a moving average needs ten consecutive candles.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::domain::{Interval, PricePoint};

/// Number of lagged closes in the seed feature set.
pub const SEED_LAGS: usize = 5;
/// Window of the seed moving average.
pub const SEED_MA_WINDOW: usize = 10;
/// Candles of history a seed feature row needs before its own candle.
pub const SEED_HISTORY: usize = SEED_MA_WINDOW - 1;
/// Decimal places kept for the moving average.
const MA_SCALE: u32 = 8;

/// The seed app's features for one candle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SeedFeatures {
    /// Open time of the candle.
    pub open_time: DateTime<Utc>,
    /// Close of the candle.
    pub price: Decimal,
    /// Closes of the previous five candles, `lags[0]` being `price_t-1`.
    pub lags: [Option<Decimal>; SEED_LAGS],
    /// Mean close over the last ten candles, this one included.
    pub ma_10: Option<Decimal>,
    /// Close of the next candle (`price_t+1`); missing for the newest candle and before a gap.
    pub next: Option<Decimal>,
}

/// Computes seed features for every close of one series (oldest first).
///
/// Rows near the start, or right after a gap, have `None` where history is missing; the newest
/// row, and a row right before a gap, have no next close.
pub fn seed_features(candles: &[PricePoint], interval: Interval) -> Vec<SeedFeatures> {
    let follows = |i: usize| {
        interval.next_open(candles[i - 1].open_time.timestamp_millis())
            == candles[i].open_time.timestamp_millis()
    };
    // run[i]: how many consecutive candles end at i (1 = no contiguous predecessor).
    let mut run = vec![0usize; candles.len()];
    for i in 0..candles.len() {
        run[i] = if i > 0 && follows(i) {
            run[i - 1] + 1
        } else {
            1
        };
    }
    let mut window_sum = Decimal::ZERO;
    candles
        .iter()
        .enumerate()
        .map(|(i, candle)| {
            window_sum += candle.close;
            if i >= SEED_MA_WINDOW {
                window_sum -= candles[i - SEED_MA_WINDOW].close;
            }
            let lags = std::array::from_fn(|k| {
                let lag = k + 1;
                (run[i] > lag).then(|| candles[i - lag].close)
            });
            let ma_10 = (run[i] >= SEED_MA_WINDOW).then(|| {
                (window_sum / Decimal::from(SEED_MA_WINDOW as u64))
                    .round_dp(MA_SCALE)
                    .normalize()
            });
            let next = (i + 1 < candles.len() && follows(i + 1)).then(|| candles[i + 1].close);
            SeedFeatures {
                open_time: candle.open_time,
                price: candle.close,
                lags,
                ma_10,
                next,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(closes: &[(i64, i64)]) -> Vec<PricePoint> {
        closes
            .iter()
            .map(|&(hour, close)| PricePoint {
                open_time: DateTime::from_timestamp_millis(hour * 3_600_000).expect("time"),
                close: Decimal::from(close),
            })
            .collect()
    }

    #[test]
    fn lags_and_moving_average_by_hand() {
        let candles = series(&(0..12).map(|h| (h, 100 + h)).collect::<Vec<_>>());
        let rows = seed_features(&candles, Interval::H1);
        let row = &rows[11];
        assert_eq!(row.price, Decimal::from(111));
        assert_eq!(row.lags[0], Some(Decimal::from(110)));
        assert_eq!(row.lags[4], Some(Decimal::from(106)));
        // mean of 102..=111
        assert_eq!(row.ma_10, Some("106.5".parse().expect("decimal")));
        assert_eq!(rows[9].ma_10, Some("104.5".parse().expect("decimal")));
        assert_eq!(rows[8].ma_10, None);
        assert_eq!(rows[2].lags[2], None);
        assert_eq!(rows[2].lags[1], Some(Decimal::from(100)));
        assert_eq!(rows[10].next, Some(Decimal::from(111)));
        assert_eq!(rows[11].next, None, "the newest close has no next one yet");
    }

    #[test]
    fn lags_never_cross_a_gap() {
        // Hour 3 is missing: the candle at hour 4 has no t-1.
        let candles = series(&[(0, 1), (1, 2), (2, 3), (4, 5), (5, 6)]);
        let rows = seed_features(&candles, Interval::H1);
        assert_eq!(rows[3].lags[0], None);
        assert_eq!(rows[4].lags[0], Some(Decimal::from(5)));
        assert_eq!(rows[4].lags[1], None);
        assert_eq!(rows[2].next, None, "the candle after hour 2 is missing");
        assert_eq!(rows[1].next, Some(Decimal::from(3)));
    }
}
