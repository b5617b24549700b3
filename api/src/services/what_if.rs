//! The inputs of a what-if forecast: feature values or a price series a client sends, checked
//! and turned into what the champion takes. Nothing of it is stored.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use pricecast_shared::champion::RegisteredModel;
use pricecast_shared::domain::{Candle, Interval, Symbol};
use pricecast_shared::features::{FeatureRow, FeatureSpec};
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;

use super::error::{ServiceError, ServiceResult};

/// `source` of the candles made from posted prices (they are never stored).
const POSTED_SOURCE: &str = "request";
/// Most prices a what-if may hold.
pub const MAX_POSTED_PRICES: usize = 2_000;

/// A JSON value that must be a finite number.
fn finite(name: &str, value: &serde_json::Value) -> ServiceResult<f64> {
    match value.as_f64() {
        Some(v) if v.is_finite() => Ok(v),
        _ => Err(ServiceError::Invalid(format!(
            "{name} is {value}; it must be a finite number"
        ))),
    }
}

/// Features that are prices (a negative or zero value is a mistake).
fn is_price_feature(name: &str) -> bool {
    name.starts_with("price_t") || (name.starts_with("ma_") && !name.starts_with("ma_ratio"))
}

/// The feature row of feature values sent by name, with the close they describe.
pub fn row_from_features(
    champion: &RegisteredModel,
    interval: Interval,
    features: &BTreeMap<String, serde_json::Value>,
    close: Option<serde_json::Value>,
) -> ServiceResult<FeatureRow> {
    let names = &champion.model.feature_names;
    if let Some(extra) = features.keys().find(|k| !names.contains(k)) {
        return Err(ServiceError::Invalid(format!(
            "features.{extra}: the champion does not take this feature; it takes {}",
            names.join(", ")
        )));
    }
    let mut values = Vec::with_capacity(names.len());
    for name in names {
        let value = features.get(name).ok_or_else(|| {
            ServiceError::Invalid(format!(
                "features.{name} is missing; the champion takes {}",
                names.join(", ")
            ))
        })?;
        let v = finite(&format!("features.{name}"), value)?;
        if is_price_feature(name) && v <= 0.0 {
            return Err(ServiceError::Invalid(format!(
                "features.{name} is {v}; a price must be above zero"
            )));
        }
        values.push(v);
    }
    // The model forecasts a change from the close of the candle the features describe; no
    // feature is that close (price_t-1 is the one before), so the client sends it.
    let close = close.ok_or_else(|| {
        ServiceError::Invalid(
            "close is missing: with features, send the close of the candle they describe, which the forecast moves from".to_owned(),
        )
    })?;
    let close = finite("close", &close)?;
    if close <= 0.0 {
        return Err(ServiceError::Invalid(format!(
            "close is {close}; a price must be above zero"
        )));
    }
    Ok(FeatureRow {
        open_time: last_closed_open_time(interval)?,
        close,
        values,
    })
}

/// Open time of the newest candle of `interval` that has closed: what a forecast made now
/// from client-sent inputs is based on.
fn last_closed_open_time(interval: Interval) -> ServiceResult<DateTime<Utc>> {
    let open_ms = interval.floor(Utc::now().timestamp_millis()) - interval.duration_ms();
    Utc.timestamp_millis_opt(open_ms)
        .single()
        .ok_or_else(|| ServiceError::Internal(format!("open time {open_ms} out of range")))
}

/// The candles of a price series sent oldest first, one per interval, the last one the newest
/// closed candle; there must be enough of them for `spec`'s longest window.
pub fn candles_from_prices(
    spec: &FeatureSpec,
    symbol: &Symbol,
    interval: Interval,
    prices: &[serde_json::Value],
) -> ServiceResult<Vec<Candle>> {
    let needed = spec.history() + 1;
    if prices.len() < needed || prices.len() > MAX_POSTED_PRICES {
        return Err(ServiceError::Invalid(format!(
            "prices has {} values; the champion's features need {needed} to {MAX_POSTED_PRICES} closes, oldest first",
            prices.len()
        )));
    }
    let step = interval.duration_ms();
    let last_open = last_closed_open_time(interval)?.timestamp_millis();
    let first_open = last_open - step * (prices.len() as i64 - 1);
    let mut candles = Vec::with_capacity(prices.len());
    for (i, value) in prices.iter().enumerate() {
        let name = format!("prices[{i}]");
        let price = finite(&name, value)?;
        if price <= 0.0 {
            return Err(ServiceError::Invalid(format!(
                "{name} is {price}; a price must be above zero"
            )));
        }
        let price = Decimal::from_f64(price).ok_or_else(|| {
            ServiceError::Invalid(format!("{name} is {price}, out of the decimal range"))
        })?;
        let open_ms = first_open + step * i as i64;
        let open_time = Utc
            .timestamp_millis_opt(open_ms)
            .single()
            .ok_or_else(|| ServiceError::Internal(format!("open time {open_ms} out of range")))?;
        candles.push(Candle {
            symbol: symbol.clone(),
            interval,
            open_time,
            open: price,
            high: price,
            low: price,
            close: price,
            volume: Decimal::ZERO,
            quote_volume: None,
            trades: None,
            taker_buy_base: None,
            taker_buy_quote: None,
            close_time: open_time + Duration::milliseconds(step - 1),
            source: POSTED_SOURCE.to_owned(),
        });
    }
    Ok(candles)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FeatureSpec {
        FeatureSpec {
            horizons: Vec::new(),
            features: vec!["price_t-3".to_owned()],
        }
    }

    fn invalid(result: ServiceResult<Vec<Candle>>) -> String {
        match result {
            Err(ServiceError::Invalid(detail)) => detail,
            other => panic!("expected invalid inputs, got {other:?}"),
        }
    }

    #[test]
    fn prices_become_consecutive_candles_ending_with_the_last_closed_one() {
        let symbol: Symbol = "BTCUSDT".parse().expect("symbol");
        let prices: Vec<serde_json::Value> = [100.0, 101.0, 102.5, 103.0]
            .into_iter()
            .map(serde_json::Value::from)
            .collect();
        let candles =
            candles_from_prices(&spec(), &symbol, Interval::H1, &prices).expect("candles");
        assert_eq!(candles.len(), 4);
        assert_eq!(candles[3].close, Decimal::new(103, 0));
        let step = Interval::H1.duration_ms();
        assert!(candles.windows(2).all(|w| {
            w[1].open_time.timestamp_millis() - w[0].open_time.timestamp_millis() == step
        }));
        assert!(candles[3].close_time < Utc::now());
    }

    #[test]
    fn bad_prices_are_named() {
        let symbol: Symbol = "BTCUSDT".parse().expect("symbol");
        let few = vec![serde_json::Value::from(1.0); 3];
        assert!(
            invalid(candles_from_prices(&spec(), &symbol, Interval::H1, &few))
                .starts_with("prices has 3 values")
        );
        let mut prices = vec![serde_json::Value::from(1.0); 4];
        prices[2] = serde_json::Value::from(-1.0);
        assert!(
            invalid(candles_from_prices(&spec(), &symbol, Interval::H1, &prices))
                .starts_with("prices[2] is -1")
        );
        prices[2] = serde_json::Value::from("x");
        assert!(
            invalid(candles_from_prices(&spec(), &symbol, Interval::H1, &prices))
                .contains("finite number")
        );
    }
}
