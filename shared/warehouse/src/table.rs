//! What a warehouse table is made of: its columns, its key, and batches of rows for it.
//!
//! A table owns its names, so one shaped at run time (by a feature definition) is built the same
//! way as a fixed one, and batches share it through an [`Arc`].

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use rust_decimal::Decimal;

use crate::error::{Error, Result};

/// Digits of a warehouse decimal: Databricks' widest `DECIMAL`.
pub const DECIMAL_PRECISION: u8 = 38;
/// Digits after the point of a warehouse decimal: more than any price or volume Binance sends
/// (8), with 28 digits left before the point (as many as a stored decimal can have).
pub const DECIMAL_SCALE: u32 = 10;
/// Longest text of a decimal of [`DECIMAL_PRECISION`] digits: sign, point and digits.
pub const DECIMAL_TEXT_LEN: usize = DECIMAL_PRECISION as usize + 2;

/// The type of a warehouse column, mapped to each dialect's own type name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// Text of at most `max_len` bytes.
    Text {
        /// Longest value, in bytes (sizes the transfer buffer).
        max_len: usize,
    },
    /// 64-bit integer.
    BigInt,
    /// 64-bit floating point (metric values); finite values only.
    Double,
    /// Exact decimal of [`DECIMAL_PRECISION`] digits, [`DECIMAL_SCALE`] after the point.
    Decimal,
    /// Instant in UTC, microsecond precision.
    Timestamp,
}

/// One column of a warehouse table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnSpec {
    /// Column name (lower case, a plain identifier).
    pub name: Cow<'static, str>,
    /// Column type.
    pub ty: ColumnType,
    /// Whether NULL is allowed.
    pub nullable: bool,
}

impl ColumnSpec {
    /// A column of type `ty`.
    pub fn new(name: impl Into<Cow<'static, str>>, ty: ColumnType, nullable: bool) -> Self {
        Self {
            name: name.into(),
            ty,
            nullable,
        }
    }

    /// A text column of values of at most `max_len` bytes.
    pub fn text(name: impl Into<Cow<'static, str>>, max_len: usize, nullable: bool) -> Self {
        Self::new(name, ColumnType::Text { max_len }, nullable)
    }
}

/// A warehouse table the sync job fills: name, columns, and the key rows are merged on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSpec {
    /// Table name inside the configured catalog and schema.
    pub name: Cow<'static, str>,
    /// Columns, in the order batches carry them.
    pub columns: Vec<ColumnSpec>,
    /// Names of the columns that identify a row (the MERGE condition).
    pub key: Vec<Cow<'static, str>>,
}

impl TableSpec {
    /// A table keyed by the columns named in `key`.
    pub fn new(
        name: impl Into<Cow<'static, str>>,
        columns: Vec<ColumnSpec>,
        key: &[&'static str],
    ) -> Self {
        Self {
            name: name.into(),
            columns,
            key: key.iter().map(|&k| Cow::Borrowed(k)).collect(),
        }
    }

    /// Name of the staging table each batch is inserted into before the MERGE.
    pub fn staging_name(&self) -> String {
        format!("{}_staging", self.name)
    }

    /// Whether a column is part of the key.
    pub fn is_key(&self, column: &str) -> bool {
        self.key.iter().any(|k| k == column)
    }

    /// The columns of this table that `existing` (names, any case) lacks.
    pub fn missing_columns<S: AsRef<str>>(&self, existing: &[S]) -> Vec<&str> {
        self.columns
            .iter()
            .map(|c| c.name.as_ref())
            .filter(|name| {
                !existing
                    .iter()
                    .any(|e| e.as_ref().eq_ignore_ascii_case(name))
            })
            .collect()
    }
}

/// The values of one column of a batch.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnValues {
    /// Text values.
    Text(Vec<Option<String>>),
    /// Integers.
    BigInt(Vec<Option<i64>>),
    /// Floating-point numbers.
    Double(Vec<Option<f64>>),
    /// Exact decimals.
    Decimal(Vec<Option<Decimal>>),
    /// Instants.
    Timestamp(Vec<Option<DateTime<Utc>>>),
}

impl ColumnValues {
    /// An empty column of the type `ty` holds, with room for `capacity` rows.
    pub fn for_type(ty: ColumnType, capacity: usize) -> Self {
        match ty {
            ColumnType::Text { .. } => Self::Text(Vec::with_capacity(capacity)),
            ColumnType::BigInt => Self::BigInt(Vec::with_capacity(capacity)),
            ColumnType::Double => Self::Double(Vec::with_capacity(capacity)),
            ColumnType::Decimal => Self::Decimal(Vec::with_capacity(capacity)),
            ColumnType::Timestamp => Self::Timestamp(Vec::with_capacity(capacity)),
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Self::Text(v) => v.len(),
            Self::BigInt(v) => v.len(),
            Self::Double(v) => v.len(),
            Self::Decimal(v) => v.len(),
            Self::Timestamp(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Which type's values these are.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Text(_) => "text",
            Self::BigInt(_) => "bigint",
            Self::Double(_) => "double",
            Self::Decimal(_) => "decimal",
            Self::Timestamp(_) => "timestamp",
        }
    }

    /// The values of rows `start..end`.
    fn slice(&self, start: usize, end: usize) -> Self {
        match self {
            Self::Text(v) => Self::Text(v[start..end].to_vec()),
            Self::BigInt(v) => Self::BigInt(v[start..end].to_vec()),
            Self::Double(v) => Self::Double(v[start..end].to_vec()),
            Self::Decimal(v) => Self::Decimal(v[start..end].to_vec()),
            Self::Timestamp(v) => Self::Timestamp(v[start..end].to_vec()),
        }
    }

    fn matches(&self, ty: ColumnType) -> bool {
        matches!(
            (self, ty),
            (Self::Text(_), ColumnType::Text { .. })
                | (Self::BigInt(_), ColumnType::BigInt)
                | (Self::Double(_), ColumnType::Double)
                | (Self::Decimal(_), ColumnType::Decimal)
                | (Self::Timestamp(_), ColumnType::Timestamp)
        )
    }
}

/// Rows for one table, column by column, as they are sent to the warehouse.
#[derive(Clone, Debug, PartialEq)]
pub struct RowBatch {
    /// The table the rows are for.
    pub spec: Arc<TableSpec>,
    /// One entry per column of the table, in its order.
    pub columns: Vec<ColumnValues>,
}

impl RowBatch {
    /// An empty batch for `spec` with room for `capacity` rows.
    pub fn new(spec: Arc<TableSpec>, capacity: usize) -> Self {
        let columns = spec
            .columns
            .iter()
            .map(|c| ColumnValues::for_type(c.ty, capacity))
            .collect();
        Self { spec, columns }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, ColumnValues::len)
    }

    /// The rows in batches of at most `size` (at least one row each); this batch itself when it
    /// is no larger.
    pub fn split(self, size: usize) -> Vec<Self> {
        let rows = self.rows();
        let size = size.max(1);
        if rows <= size {
            return vec![self];
        }
        (0..rows)
            .step_by(size)
            .map(|start| {
                let end = (start + size).min(rows);
                Self {
                    spec: self.spec.clone(),
                    columns: self.columns.iter().map(|c| c.slice(start, end)).collect(),
                }
            })
            .collect()
    }

    /// Checks that every column has the table's type, the same length, no NULL where none is
    /// allowed, text that fits and decimals the warehouse holds exactly.
    pub fn validate(&self) -> Result<()> {
        let rows = self.rows();
        if self.columns.len() != self.spec.columns.len() {
            return Err(self.invalid(format!(
                "{} columns given for {} in the table",
                self.columns.len(),
                self.spec.columns.len()
            )));
        }
        for (values, column) in self.columns.iter().zip(&self.spec.columns) {
            if !values.matches(column.ty) {
                return Err(self.invalid(format!(
                    "column {} holds {} values",
                    column.name,
                    values.type_name()
                )));
            }
            if values.len() != rows {
                return Err(self.invalid(format!(
                    "column {} has {} values for {rows} rows",
                    column.name,
                    values.len()
                )));
            }
            self.validate_values(column, values)?;
        }
        Ok(())
    }

    fn validate_values(&self, column: &ColumnSpec, values: &ColumnValues) -> Result<()> {
        let null_at = match values {
            ColumnValues::Text(v) => v.iter().position(Option::is_none),
            ColumnValues::BigInt(v) => v.iter().position(Option::is_none),
            ColumnValues::Double(v) => v.iter().position(Option::is_none),
            ColumnValues::Decimal(v) => v.iter().position(Option::is_none),
            ColumnValues::Timestamp(v) => v.iter().position(Option::is_none),
        };
        if let (Some(row), false) = (null_at, column.nullable) {
            return Err(self.invalid(format!("column {} is NULL in row {row}", column.name)));
        }
        match (values, column.ty) {
            (ColumnValues::Text(v), ColumnType::Text { max_len }) => {
                if let Some(long) = v.iter().flatten().find(|s| s.len() > max_len) {
                    return Err(self.invalid(format!(
                        "column {} value {long:?} is longer than {max_len} bytes",
                        column.name
                    )));
                }
            }
            (ColumnValues::Double(v), _) => {
                if let Some(x) = v.iter().flatten().find(|x| !x.is_finite()) {
                    return Err(self.invalid(format!(
                        "column {} value {x} is not a finite number",
                        column.name
                    )));
                }
            }
            (ColumnValues::Decimal(v), _) => {
                if let Some(d) = v.iter().flatten().find(|d| !fits_warehouse_decimal(**d)) {
                    return Err(self.invalid(format!(
                        "column {} value {d} does not fit DECIMAL({DECIMAL_PRECISION},{DECIMAL_SCALE}) exactly",
                        column.name
                    )));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn invalid(&self, reason: String) -> Error {
        Error::Failed {
            operation: format!("batch for {}", self.spec.name),
            message: reason,
        }
    }
}

/// Whether a decimal is held exactly by `DECIMAL(38,10)`. Checked for every value sent, so
/// without formatting it: normalising only when the scale is too large, and comparing the
/// magnitude with 10^28.
pub fn fits_warehouse_decimal(value: Decimal) -> bool {
    let value = if value.scale() > DECIMAL_SCALE {
        value.normalize()
    } else {
        value
    };
    value.scale() <= DECIMAL_SCALE
        && value.abs() < Decimal::from_i128_with_scale(DECIMAL_INTEGER_LIMIT, 0)
}

/// 10^28: the smallest integer with more digits than `DECIMAL(38,10)` keeps before the point.
const DECIMAL_INTEGER_LIMIT: i128 = 10i128.pow(DECIMAL_PRECISION as u32 - DECIMAL_SCALE);

/// An instant truncated to the microseconds a warehouse timestamp keeps.
pub fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn spec() -> Arc<TableSpec> {
        let columns = vec![
            ColumnSpec::text("id", 4, false),
            ColumnSpec::new("price", ColumnType::Decimal, true),
        ];
        Arc::new(TableSpec::new("things", columns, &["id"]))
    }

    fn batch(id: Option<&str>, price: &str) -> RowBatch {
        RowBatch {
            spec: spec(),
            columns: vec![
                ColumnValues::Text(vec![id.map(str::to_owned)]),
                ColumnValues::Decimal(vec![Some(Decimal::from_str(price).expect("decimal"))]),
            ],
        }
    }

    #[test]
    fn missing_columns_are_found_case_insensitively() {
        let spec = spec();
        assert!(spec.missing_columns(&["ID", "Price", "extra"]).is_empty());
        assert_eq!(spec.missing_columns(&["id"]), vec!["price"]);
        assert_eq!(spec.staging_name(), "things_staging");
        assert!(spec.is_key("id") && !spec.is_key("price"));
    }

    #[test]
    fn batches_are_validated() {
        assert!(batch(Some("a"), "65000.01000000").validate().is_ok());
        let err = batch(None, "1")
            .validate()
            .expect_err("null key")
            .to_string();
        assert!(err.contains("column id is NULL in row 0"), "{err}");
        let err = batch(Some("toolong"), "1").validate().expect_err("long");
        assert!(err.to_string().contains("longer than 4 bytes"), "{err}");
        let err = batch(Some("a"), "0.0000000000000000001").validate();
        assert!(
            err.expect_err("scale")
                .to_string()
                .contains("DECIMAL(38,10)")
        );
        let mut infinite = batch(Some("a"), "1");
        infinite.columns[1] = ColumnValues::Double(vec![Some(f64::INFINITY)]);
        let mut with_double = (*spec()).clone();
        with_double.columns[1] = ColumnSpec::new("value", ColumnType::Double, true);
        infinite.spec = Arc::new(with_double);
        let err = infinite.validate().expect_err("infinite").to_string();
        assert!(err.contains("value inf is not a finite number"), "{err}");
        let mut short = batch(Some("a"), "1");
        short.columns[1] = ColumnValues::Decimal(vec![]);
        assert!(short.validate().is_err());
    }

    #[test]
    fn decimals_that_fit_are_recognised() {
        let fits = |s: &str| fits_warehouse_decimal(Decimal::from_str(s).expect("decimal"));
        assert!(fits("65000.01000000"));
        assert!(fits("0.0000000001"));
        assert!(!fits("0.00000000001"));
        assert!(fits("134461243746814744944.23693400"));
        assert!(fits("0"));
        assert!(fits("-0.10000000000000000000"));
        assert!(fits("-9999999999999999999999999999"));
        assert!(!fits("10000000000000000000000000000"));
        assert!(!fits("-10000000000000000000000000000.5"));
    }
}
