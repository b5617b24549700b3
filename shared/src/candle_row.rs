//! Candles at the lake's fixed scale: the row the store streams out of the database and the
//! lake writes to Parquet, owned by neither. Times are ms since the epoch and prices and
//! volumes decimal128 integers at [`DECIMAL_SCALE`], so a value is exact or an error.

use rust_decimal::Decimal;

use crate::domain::Candle;
use crate::error::{Error, Result};

/// Decimal places kept for prices and volumes: Binance's wire scale.
pub const DECIMAL_SCALE: i8 = 8;
/// Decimal digits: the most Arrow's decimal128 holds, so no volume ever overflows.
pub const DECIMAL_PRECISION: u8 = 38;

/// A decimal at the lake's scale, as decimal128's integer: exact, or an error.
pub fn to_lake_decimal(value: Decimal) -> Result<i128, String> {
    let scale = value.scale() as i32;
    let mantissa = value.mantissa();
    let target = i32::from(DECIMAL_SCALE);
    if scale <= target {
        // |mantissa| < 2^96 and 10^8 < 2^27: never overflows i128.
        Ok(mantissa * 10i128.pow((target - scale) as u32))
    } else {
        let divisor = 10i128.pow((scale - target) as u32);
        if mantissa % divisor == 0 {
            Ok(mantissa / divisor)
        } else {
            Err(format!(
                "it has more than {DECIMAL_SCALE} decimal places, which the lake's decimal({DECIMAL_PRECISION}, {DECIMAL_SCALE}) cannot hold exactly"
            ))
        }
    }
}

/// One candle as the lake stores it: times in ms since the epoch, prices and volumes as
/// decimal128 integers at [`DECIMAL_SCALE`]. What the export reads from the database (no
/// strings, no per-row allocation) and what [`crate::lake::candles::CandleBatchBuilder`] collects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LakeCandle {
    /// Open time, ms.
    pub open_time: i64,
    /// Open price.
    pub open: i128,
    /// High price.
    pub high: i128,
    /// Low price.
    pub low: i128,
    /// Close price.
    pub close: i128,
    /// Base asset volume.
    pub volume: i128,
    /// Close time, ms.
    pub close_time: i64,
    /// Quote asset volume.
    pub quote_volume: Option<i128>,
    /// Number of trades.
    pub trades: Option<i64>,
    /// Taker buy base asset volume.
    pub taker_buy_base: Option<i128>,
    /// Taker buy quote asset volume.
    pub taker_buy_quote: Option<i128>,
}

impl LakeCandle {
    /// The candle at the lake's scale; an error naming the column when a value is not exact.
    pub fn from_candle(candle: &Candle) -> Result<Self> {
        let exact = |column: &'static str, value: Decimal| {
            to_lake_decimal(value).map_err(|reason| Error::InexactValue {
                series: format!("{} {}", candle.symbol, candle.interval),
                open_time: candle.open_time.to_rfc3339(),
                column,
                value: value.to_string(),
                reason,
            })
        };
        let optional = |column: &'static str, value: Option<Decimal>| {
            value.map(|v| exact(column, v)).transpose()
        };
        Ok(Self {
            open_time: candle.open_time.timestamp_millis(),
            open: exact("open", candle.open)?,
            high: exact("high", candle.high)?,
            low: exact("low", candle.low)?,
            close: exact("close", candle.close)?,
            volume: exact("volume", candle.volume)?,
            close_time: candle.close_time.timestamp_millis(),
            quote_volume: optional("quote_volume", candle.quote_volume)?,
            trades: candle.trades,
            taker_buy_base: optional("taker_buy_base", candle.taker_buy_base)?,
            taker_buy_quote: optional("taker_buy_quote", candle.taker_buy_quote)?,
        })
    }
}
