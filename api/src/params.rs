//! Query parameter parsing: every failure is a 400 that names the parameter and says why.
//!
//! Query structs keep raw strings so that salvo's extraction never fails on its own (which
//! would answer outside the API's JSON error shape); these helpers turn them into typed values.

use chrono::{DateTime, NaiveDate, Utc};
use pricecast_shared::domain::{Interval, Symbol};

use crate::error::ApiError;

/// The symbol used when a request names none (the seed app only knew Bitcoin).
pub const DEFAULT_SYMBOL: &str = "BTCUSDT";

/// `symbol`, upper-cased, defaulting to BTCUSDT.
pub fn symbol(raw: Option<&str>) -> Result<Symbol, ApiError> {
    raw.unwrap_or(DEFAULT_SYMBOL)
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("symbol: {e}")))
}

/// `interval`, when given.
pub fn interval(raw: Option<&str>) -> Result<Option<Interval>, ApiError> {
    raw.map(|s| {
        s.parse()
            .map_err(|e| ApiError::BadRequest(format!("interval: {e}")))
    })
    .transpose()
}

/// An integer parameter within `min..=max`, `default` when absent.
pub fn integer(
    name: &str,
    raw: Option<&str>,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, ApiError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    let value: i64 = raw
        .trim()
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("{name}: '{raw}' is not a whole number")))?;
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::BadRequest(format!(
            "{name} must be between {min} and {max} (got {value})"
        )))
    }
}

/// A time parameter: RFC 3339 (`2025-04-28T07:00:00Z`), a date (`2025-04-28`, midnight UTC) or
/// milliseconds since the epoch.
pub fn time(name: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let trimmed = raw.trim();
    let parsed = if let Ok(ms) = trimmed.parse::<i64>() {
        DateTime::from_timestamp_millis(ms)
    } else if let Ok(t) = DateTime::parse_from_rfc3339(trimmed) {
        Some(t.with_timezone(&Utc))
    } else {
        NaiveDate::parse_from_str(trimmed, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
    };
    parsed.map(Some).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "{name}: '{raw}' is not a time; use RFC 3339 (2025-04-28T07:00:00Z), a date (2025-04-28) or milliseconds since the epoch"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(result: Result<impl std::fmt::Debug, ApiError>) -> String {
        match result {
            Err(ApiError::BadRequest(detail)) => detail,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn integers_name_the_parameter() {
        assert_eq!(integer("limit", None, 100, 1, 5000).ok(), Some(100));
        assert!(detail(integer("limit", Some("abc"), 100, 1, 5000)).starts_with("limit:"));
        assert!(detail(integer("hours", Some("-1"), 24, 1, 10)).contains("hours must be"));
    }

    #[test]
    fn times_accept_three_spellings() {
        let expected = "2025-04-28T00:00:00Z".parse::<DateTime<Utc>>().ok();
        assert_eq!(time("start", Some("2025-04-28")).ok().flatten(), expected);
        assert_eq!(
            time("start", Some("2025-04-28T02:00:00+02:00"))
                .ok()
                .flatten(),
            expected
        );
        assert_eq!(
            time("start", Some("1745798400000")).ok().flatten(),
            expected
        );
        assert!(detail(time("end", Some("yesterday"))).starts_with("end:"));
    }

    #[test]
    fn symbols_and_intervals() {
        assert_eq!(
            symbol(None).map(|s| s.to_string()).ok(),
            Some("BTCUSDT".into())
        );
        assert_eq!(
            symbol(Some("ethusdt")).map(|s| s.to_string()).ok(),
            Some("ETHUSDT".into())
        );
        assert!(detail(symbol(Some("BTC-USD"))).starts_with("symbol:"));
        assert!(detail(interval(Some("7m"))).starts_with("interval:"));
    }
}
