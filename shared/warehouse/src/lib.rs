//! The analytics warehouse over ODBC: Databricks SQL in production, any ODBC data source with
//! MERGE (PostgreSQL 15+) otherwise.
//!
//! Loading is idempotent: each batch is bulk-inserted into the table's staging table
//! ([`Warehouse::stage`]: odbc-api's columnar parameter arrays on Databricks, one
//! `INSERT … SELECT FROM unnest(…)` of array literals on PostgreSQL, see [`StagingLoad`]), then
//! merged into the target on the table's key and the staging rows cleared
//! ([`Warehouse::merge`]). A batch staged twice, or merged twice, leaves the same rows. ODBC
//! calls block: run them on a blocking thread.
//!
//! Only the jobs (sync, and `pricecast schedule` which runs it) use this crate: the API never
//! builds or links ODBC.

pub mod config;
pub mod dialect;
mod driver;
pub mod error;
pub mod table;

use chrono::{Datelike, Timelike};
use odbc_api::buffers::{NullableSliceMut, TextColumnSliceMut};
use odbc_api::{
    BindParamDesc, Connection, ConnectionOptions, Cursor, IntoParameter, ResultSetMetadata,
};

pub use config::{OdbcConnectionString, WarehouseArgs, WarehouseConfig};
pub use dialect::{Dialect, Namespace, StagingLoad};
pub use error::{Error, Result};
pub use table::{ColumnSpec, ColumnType, ColumnValues, RowBatch, TableSpec};

/// Added to a driver manager's "Can't open lib" error: what to check.
const DRIVER_NOT_LOADED_HINT: &str = " (install the ODBC driver and register it in /etc/odbcinst.ini, or $ODBCSYSINI/odbcinst.ini, by the absolute path of its library, or name that path in the connection string: Driver=/path/to/driver.so)";
/// Seconds a login may take before the warehouse counts as unreachable.
const LOGIN_TIMEOUT_SECS: u32 = 30;
/// Digits of fractional seconds sent with timestamps: microseconds, what both dialects keep.
const TIMESTAMP_PRECISION: i16 = 6;
/// Typical bytes of one value in an array literal (a quoted timestamp is 30): the first guess
/// of a literal's length, so most are built without reallocating.
const ARRAY_ELEMENT_BYTES: usize = 24;

/// An open connection to the warehouse.
pub struct Warehouse {
    conn: Connection<'static>,
    dialect: Dialect,
    namespace: Namespace,
    /// Description of the target for messages (the redacted connection string).
    target: String,
}

impl std::fmt::Debug for Warehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warehouse")
            .field("target", &self.target)
            .field("dialect", &self.dialect)
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl Warehouse {
    /// Connects (blocking) and prepares the session. A failure names the redacted connection
    /// string and never contains its password or token.
    pub fn connect(config: &WarehouseConfig) -> Result<Self> {
        let target = config.connection_string.redacted();
        let secrets = config.connection_string.secrets();
        // The driver's diagnostics may echo the connection string: keep only the scrubbed text.
        let failed = |operation: &str, e: odbc_api::Error| {
            let mut message = scrub(&e.to_string(), &secrets);
            if message.contains("Can't open lib") {
                message.push_str(DRIVER_NOT_LOADED_HINT);
            }
            Error::Failed {
                operation: format!("{operation} {target}"),
                message,
            }
        };
        let env = odbc_api::environment().map_err(|e| failed("ODBC environment for", e))?;
        let connection_string = driver::with_driver_path(config.connection_string.expose());
        let conn = env
            .connect_with_connection_string(
                &connection_string,
                ConnectionOptions {
                    login_timeout_sec: Some(LOGIN_TIMEOUT_SECS),
                    ..ConnectionOptions::default()
                },
            )
            .map_err(|e| failed("connecting to", e))?;
        let warehouse = Self {
            conn,
            dialect: config.dialect,
            namespace: config.namespace.clone(),
            target,
        };
        for statement in config.dialect.session_setup() {
            warehouse.execute(&statement)?;
        }
        tracing::info!(warehouse = %warehouse.target, dialect = config.dialect.as_str(), "connected to the warehouse");
        Ok(warehouse)
    }

    /// The dialect spoken.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Where the tables go.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// Runs one statement that returns no rows.
    pub fn execute(&self, sql: &str) -> Result<()> {
        self.conn
            .execute(sql, (), None)
            .map(drop)
            .map_err(|e| self.error(sql, e))
    }

    fn error(&self, sql: &str, source: odbc_api::Error) -> Error {
        Error::Odbc {
            operation: format!("statement `{}` on {}", abbreviate(sql), self.target),
            source,
        }
    }

    /// Creates the schema, the table and its staging table when missing, checks that existing
    /// ones have every column the table needs, and clears staging rows a crashed run left.
    pub fn prepare_table(&self, spec: &TableSpec) -> Result<()> {
        let (dialect, ns) = (self.dialect, &self.namespace);
        self.execute(&dialect.create_schema(ns))?;
        for staging in [false, true] {
            self.execute(&dialect.create_table(ns, spec, staging))?;
            let name = if staging {
                spec.staging_name()
            } else {
                spec.name.to_string()
            };
            let existing = self.column_names(&name)?;
            let missing = spec.missing_columns(&existing);
            if !missing.is_empty() {
                return Err(Error::Schema {
                    table: dialect.table_name(ns, &name),
                    missing: missing.join(", "),
                });
            }
        }
        self.execute(&dialect.clear_staging(ns, spec))
    }

    /// The column names of a table.
    pub fn column_names(&self, table: &str) -> Result<Vec<String>> {
        let sql = self.dialect.probe_columns(&self.namespace, table);
        let cursor = self.conn.execute(&sql, (), None);
        let mut cursor = match cursor {
            Ok(Some(cursor)) => cursor,
            Ok(None) => return Ok(Vec::new()),
            Err(e) => return Err(self.error(&sql, e)),
        };
        let names = cursor
            .column_names()
            .and_then(|names| names.collect::<Result<Vec<String>, _>>())
            .map_err(|e| self.error(&sql, e));
        // Closes the (empty) result set before the next statement.
        drop(cursor.next_row());
        names
    }

    /// The newest `column` (a timestamp) of the rows of `spec`'s table whose `filter_column` is
    /// `value`, in milliseconds since the Unix epoch; `None` when there are none.
    pub fn newest_millis(
        &self,
        spec: &TableSpec,
        column: &str,
        filter_column: &str,
        value: &str,
    ) -> Result<Option<i64>> {
        let sql = self
            .dialect
            .newest_millis(&self.namespace, spec, column, filter_column);
        let cursor = self
            .conn
            .execute(&sql, &value.into_parameter(), None)
            .map_err(|e| self.error(&sql, e))?;
        let Some(mut cursor) = cursor else {
            return Ok(None);
        };
        let mut newest = odbc_api::Nullable::<i64>::null();
        if let Some(mut row) = cursor.next_row().map_err(|e| self.error(&sql, e))? {
            row.get_data(1, &mut newest)
                .map_err(|e| self.error(&sql, e))?;
        }
        Ok(newest.into_opt())
    }

    /// Bulk-inserts a batch into the table's staging table and commits it.
    pub fn stage(&self, batch: &RowBatch) -> Result<()> {
        batch.validate()?;
        let rows = batch.rows();
        if rows == 0 {
            return Ok(());
        }
        if self.dialect.staging_load() == StagingLoad::ArrayLiterals {
            return self.stage_array_literals(batch);
        }
        let sql = self.dialect.insert_staging(&self.namespace, &batch.spec);
        let prepared = self.conn.prepare(&sql).map_err(|e| self.error(&sql, e))?;
        let descriptions = batch.spec.columns.iter().map(|c| bind_description(c.ty));
        let mut inserter = prepared
            .into_column_inserter(rows, descriptions)
            .map_err(|e| self.error(&sql, e))?;
        inserter.set_num_rows(rows);
        for (index, values) in batch.columns.iter().enumerate() {
            let column = inserter.column_mut(index);
            let filled = match values {
                ColumnValues::Text(v) => column
                    .as_text()
                    .map(|col| fill_text(col, v.iter().map(|s| s.as_deref()))),
                ColumnValues::Decimal(v) => column.as_text().map(|col| {
                    let text: Vec<Option<String>> =
                        v.iter().map(|d| d.map(|d| d.to_string())).collect();
                    fill_text(col, text.iter().map(|s| s.as_deref()));
                }),
                ColumnValues::BigInt(v) => column
                    .as_nullable_slice::<i64>()
                    .map(|col| fill_nullable(col, v.iter().copied())),
                ColumnValues::Double(v) => column
                    .as_nullable_slice::<f64>()
                    .map(|col| fill_nullable(col, v.iter().copied())),
                ColumnValues::Timestamp(v) => column
                    .as_nullable_slice::<odbc_api::sys::Timestamp>()
                    .map(|col| fill_nullable(col, v.iter().map(|t| t.map(odbc_timestamp)))),
            };
            if filled.is_none() {
                return Err(Error::Failed {
                    operation: format!("staging {}", batch.spec.name),
                    message: format!("no buffer of the right type for column {index}"),
                });
            }
        }
        self.in_transaction(|| {
            inserter
                .execute()
                .map(drop)
                .map_err(|e| self.error(&sql, e))
        })
    }

    /// Inserts a validated batch with one statement whose parameters are its columns as array
    /// literals ([`StagingLoad::ArrayLiterals`]).
    fn stage_array_literals(&self, batch: &RowBatch) -> Result<()> {
        let sql = self
            .dialect
            .insert_staging_arrays(&self.namespace, &batch.spec);
        let literals: Vec<String> = batch
            .columns
            .iter()
            .map(|values| {
                let mut literal = String::with_capacity(values.len() * ARRAY_ELEMENT_BYTES);
                dialect::array_literal(values, &mut literal);
                literal
            })
            .collect();
        let parameters: Vec<_> = literals
            .iter()
            .map(|l| l.as_str().into_parameter())
            .collect();
        self.in_transaction(|| {
            self.conn
                .execute(&sql, parameters.as_slice(), None)
                .map(drop)
                .map_err(|e| self.error(&sql, e))
        })
    }

    /// Merges the staging rows into the target and clears them, in one transaction where the
    /// dialect has them (Databricks commits each statement; both are idempotent anyway).
    pub fn merge(&self, spec: &TableSpec) -> Result<()> {
        let (dialect, ns) = (self.dialect, &self.namespace);
        self.in_transaction(|| {
            self.execute(&dialect.merge(ns, spec))?;
            self.execute(&dialect.clear_staging(ns, spec))
        })
    }

    /// Runs `work` in a transaction where the dialect has them, committing on success and
    /// rolling back on failure.
    pub fn in_transaction<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        if !self.dialect.supports_transactions() {
            return work();
        }
        self.conn
            .set_autocommit(false)
            .map_err(|e| self.error("BEGIN", e))?;
        let result = work().and_then(|value| {
            self.conn
                .commit()
                .map(|()| value)
                .map_err(|e| self.error("COMMIT", e))
        });
        if result.is_err()
            && let Err(e) = self.conn.rollback()
        {
            tracing::warn!(error.message = %e, "rollback failed; the connection is dropped");
        }
        // Back to autocommit for DDL and probes; a failure here surfaces on the next statement.
        let _ = self.conn.set_autocommit(true);
        result
    }
}

fn bind_description(ty: ColumnType) -> BindParamDesc {
    match ty {
        ColumnType::Text { max_len } => BindParamDesc::text(max_len),
        ColumnType::BigInt => BindParamDesc::i64(true),
        ColumnType::Double => BindParamDesc::f64(true),
        ColumnType::Decimal => {
            BindParamDesc::decimal_as_text(table::DECIMAL_PRECISION, table::DECIMAL_SCALE as i8)
        }
        ColumnType::Timestamp => BindParamDesc::timestamp(true, TIMESTAMP_PRECISION),
    }
}

fn fill_text<'a>(
    mut column: TextColumnSliceMut<'_, u8>,
    values: impl Iterator<Item = Option<&'a str>>,
) {
    for (row, value) in values.enumerate() {
        column.set_cell(row, value.map(str::as_bytes));
    }
}

fn fill_nullable<T: Copy>(
    mut column: NullableSliceMut<'_, T>,
    values: impl Iterator<Item = Option<T>>,
) {
    column.write(values);
}

/// An instant as ODBC's `SQL_TIMESTAMP_STRUCT`, in UTC (the session's time zone).
fn odbc_timestamp(t: chrono::DateTime<chrono::Utc>) -> odbc_api::sys::Timestamp {
    let t = table::to_micros(t);
    odbc_api::sys::Timestamp {
        year: t.year() as i16,
        month: t.month() as u16,
        day: t.day() as u16,
        hour: t.hour() as u16,
        minute: t.minute() as u16,
        second: t.second() as u16,
        fraction: t.nanosecond(),
    }
}

/// Replaces every secret in a driver message with `***`.
pub fn scrub(message: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| s.len() >= 3)
        .fold(message.to_owned(), |m, s| m.replace(s.as_str(), "***"))
}

/// The start of a statement, for messages.
fn abbreviate(sql: &str) -> String {
    const SHOWN: usize = 120;
    match sql.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}…", &sql[..end]),
        None => sql.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    #[test]
    fn timestamps_become_odbc_structs_in_utc() {
        let t: DateTime<Utc> = "2025-04-28T13:59:59.999123456Z".parse().expect("time");
        let ts = odbc_timestamp(t);
        assert_eq!(
            (ts.year, ts.month, ts.day, ts.hour, ts.minute, ts.second),
            (2025, 4, 28, 13, 59, 59)
        );
        assert_eq!(ts.fraction, 999_123_000);
    }

    #[test]
    fn secrets_are_scrubbed_and_statements_abbreviated() {
        assert_eq!(
            scrub("login failed for PWD=hunter2", &["hunter2".to_owned()]),
            "login failed for PWD=***"
        );
        let long = "x".repeat(500);
        assert_eq!(abbreviate(&long).chars().count(), 121);
        assert_eq!(abbreviate("SELECT 1"), "SELECT 1");
    }
}
