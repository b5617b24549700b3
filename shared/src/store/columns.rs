//! How each backend stores a time and a decimal, and the conversions rows share: PostgreSQL
//! keeps `timestamptz` and `numeric`, SQLite milliseconds since the epoch and exact text.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::error::{Error, Result};

/// A time as PostgreSQL stores it.
pub(super) type PgTime = DateTime<Utc>;
/// A decimal as PostgreSQL stores it.
pub(super) type PgDecimal = Decimal;
/// A time as SQLite stores it: milliseconds since the epoch.
pub(super) type SqliteTime = i64;
/// A decimal as SQLite stores it: its exact text.
pub(super) type SqliteDecimal = String;

/// A stored time column, decoded to UTC.
pub(super) trait StoredTime {
    /// The time; an error when it is out of range.
    fn into_time(self) -> Result<DateTime<Utc>>;
}

impl StoredTime for PgTime {
    fn into_time(self) -> Result<DateTime<Utc>> {
        Ok(self)
    }
}

impl StoredTime for SqliteTime {
    fn into_time(self) -> Result<DateTime<Utc>> {
        millis(self)
    }
}

/// A stored decimal column, decoded exactly.
pub(super) trait StoredDecimal {
    /// The decimal; an error naming `column` when it is not one.
    fn into_decimal(self, column: &str) -> Result<Decimal>;
}

impl StoredDecimal for PgDecimal {
    fn into_decimal(self, _column: &str) -> Result<Decimal> {
        Ok(self)
    }
}

impl StoredDecimal for SqliteDecimal {
    fn into_decimal(self, column: &str) -> Result<Decimal> {
        Decimal::from_str(&self)
            .map_err(|e| Error::CorruptRow(format!("{column} {self:?} is not a decimal: {e}")))
    }
}

/// A nullable stored decimal column, decoded exactly.
pub(super) fn optional_decimal<D: StoredDecimal>(
    value: Option<D>,
    column: &str,
) -> Result<Option<Decimal>> {
    value.map(|d| d.into_decimal(column)).transpose()
}

/// The UTC time `ms` milliseconds after the epoch; an error when it is out of range.
pub(super) fn millis(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| Error::CorruptRow(format!("time {ms} ms is out of range")))
}
