//! The warehouse's error type: a failed operation, a failed statement with the driver's error as
//! its source, or a table whose columns drifted. Converts into [`pricecast_shared::Error`] for
//! the jobs, keeping every source.

/// Result alias of the warehouse.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the warehouse can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A warehouse setting has a value that cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The warehouse (Databricks SQL or another ODBC data source) refused or failed an
    /// operation. Never holds a password or token: connection strings are redacted.
    #[error("warehouse {operation} failed: {message}")]
    Failed {
        /// What was being done, and where.
        operation: String,
        /// The driver's diagnostics, scrubbed of secrets. A string, not the ODBC error: while
        /// connecting, the driver may echo the connection string and so the password.
        message: String,
    },

    /// A statement on an open warehouse connection failed (the connection string, and so any
    /// secret, is no part of a statement's diagnostics).
    #[error("warehouse {operation} failed")]
    Odbc {
        /// The statement (abbreviated) and the redacted target.
        operation: String,
        /// The driver's error.
        #[source]
        source: odbc_api::Error,
    },

    /// An existing warehouse table lacks columns the sync writes: schemas never drift silently.
    #[error(
        "warehouse table {table} has no column(s) {missing}; add them (ALTER TABLE … ADD COLUMN) or drop the table so sync recreates it"
    )]
    Schema {
        /// The table's qualified name.
        table: String,
        /// The missing columns, comma-separated.
        missing: String,
    },
}

impl Error {
    /// Shorthand for a configuration error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::Config(message.into())
    }

    /// The warehouse error inside a library error, if that is what it is.
    pub fn of(error: &pricecast_shared::Error) -> Option<&Self> {
        match error {
            pricecast_shared::Error::Warehouse(inner) => inner.downcast_ref(),
            _ => None,
        }
    }
}

/// A configuration error stays one (exit code 2); every other failure keeps its source chain.
impl From<Error> for pricecast_shared::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::Config(message) => Self::Config(message),
            other => Self::Warehouse(Box::new(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pricecast_shared::telemetry::error_chain;

    #[test]
    fn a_converted_error_reads_as_before_and_can_be_told_apart() {
        let schema = Error::Schema {
            table: "\"pricecast\".\"candles\"".to_owned(),
            missing: "trades".to_owned(),
        };
        let text = schema.to_string();
        let converted = pricecast_shared::Error::from(schema);
        assert_eq!(converted.to_string(), text);
        assert_eq!(error_chain(&converted), text);
        assert!(matches!(Error::of(&converted), Some(Error::Schema { .. })));
        let config = pricecast_shared::Error::from(Error::config("SYNC_BATCH_SIZE: 0"));
        assert!(matches!(config, pricecast_shared::Error::Config(_)));
        assert!(Error::of(&config).is_none());
    }

    #[test]
    fn a_failed_statement_keeps_the_driver_error_as_its_source() {
        let odbc = Error::Odbc {
            operation: "statement `SELECT 1` on Driver=x".to_owned(),
            source: odbc_api::Error::FailedReadingInput(std::io::Error::other("disk gone")),
        };
        let converted = pricecast_shared::Error::from(odbc);
        assert_eq!(
            converted.to_string(),
            "warehouse statement `SELECT 1` on Driver=x failed"
        );
        let source = std::error::Error::source(&converted).expect("the driver's error");
        assert!(source.is::<odbc_api::Error>(), "{source:?}");
        assert!(
            error_chain(&converted).ends_with("disk gone"),
            "{}",
            error_chain(&converted)
        );
    }
}
