//! Warehouse settings: the seed app's `DATABRICKS_*` variables or any ODBC connection string.
//!
//! | variable | flag | default |
//! |---|---|---|
//! | `DATABRICKS_SERVER_HOSTNAME` | `--databricks-server-hostname` | unset |
//! | `DATABRICKS_HTTP_PATH` | `--databricks-http-path` | unset |
//! | `DATABRICKS_ACCESS_TOKEN` | `--databricks-access-token` | unset (secret) |
//! | `DATABRICKS_ODBC_DRIVER` | `--databricks-odbc-driver` | `Simba Spark ODBC Driver` (a name in odbcinst.ini or a path to the driver library) |
//! | `SYNC_ODBC_CONNECTION_STRING` | `--sync-odbc-connection-string` | unset (secret); overrides the `DATABRICKS_*` variables |
//! | `SYNC_DIALECT` | `--sync-dialect` | `auto`: databricks for the `DATABRICKS_*` variables, postgres for a connection string |
//! | `SYNC_CATALOG` | `--sync-catalog` | `main` (PostgreSQL: the connected database is the catalog) |
//! | `SYNC_SCHEMA` | `--sync-schema` | `pricecast` |
//! | `SYNC_BATCH_SIZE` | `--sync-batch-size` | 10000 rows per bulk insert (the job merges every 100,000 staged rows) |
//!
//! With none of the connection variables set, sync is not configured and does nothing.

use std::fmt;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};

use super::dialect::{Dialect, Namespace};
use crate::error::{Error, Result};

/// The Databricks ODBC driver's name as its installer registers it.
pub const DEFAULT_DATABRICKS_ODBC_DRIVER: &str = "Simba Spark ODBC Driver";
/// Rows per bulk insert into the staging table: large enough to amortise a round trip, small
/// enough to keep a batch in a few megabytes.
pub const DEFAULT_BATCH_SIZE: usize = 10_000;
/// Keys of connection-string attributes whose values are secrets.
const SECRET_KEYS: [&str; 5] = ["pwd", "password", "token", "secret", "auth_accesstoken"];

/// An ODBC connection string; passwords and tokens in it never appear in `Debug` or `Display`.
#[derive(Clone)]
pub struct OdbcConnectionString(SecretString);

impl OdbcConnectionString {
    fn new(value: String) -> Self {
        Self(SecretString::from(value))
    }

    /// The full string, secrets included: pass it to the driver manager only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The string with every password and token value replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_connection_string(self.expose())
    }

    /// The secret values in the string, to scrub from driver messages.
    pub fn secrets(&self) -> Vec<String> {
        attributes(self.expose())
            .into_iter()
            .filter(|(key, value)| is_secret_key(key) && !value.is_empty())
            .map(|(_, value)| value)
            .collect()
    }
}

impl FromStr for OdbcConnectionString {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if attributes(s).is_empty() {
            return Err(
                "SYNC_ODBC_CONNECTION_STRING must be KEY=value pairs separated by ';' (Driver={…};Server=…)"
                    .to_owned(),
            );
        }
        Ok(Self::new(s.to_owned()))
    }
}

impl fmt::Debug for OdbcConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OdbcConnectionString({})", self.redacted())
    }
}

impl fmt::Display for OdbcConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

fn is_secret_key(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    SECRET_KEYS.iter().any(|s| key.contains(s))
}

/// Splits `KEY=value;KEY={va;lue}` into pairs (braced values may hold `;`).
/// The value of attribute `key` (any case) as written, braces included.
pub(crate) fn attribute(s: &str, key: &str) -> Option<String> {
    attributes(s)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, value)| value)
}

fn attributes(s: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = s;
    while !rest.trim().is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().to_owned();
        let after = &rest[eq + 1..];
        let (value, next) = if after.starts_with('{') {
            match after.find("};").or_else(|| after.rfind('}')) {
                Some(end) => (&after[..=end], after.get(end + 2..).unwrap_or("")),
                None => (after, ""),
            }
        } else {
            match after.find(';') {
                Some(end) => (&after[..end], &after[end + 1..]),
                None => (after, ""),
            }
        };
        pairs.push((
            key.trim_start_matches(';').trim().to_owned(),
            value.to_owned(),
        ));
        rest = next;
    }
    pairs
}

/// Replaces the values of password and token attributes with `***`.
pub fn redact_connection_string(s: &str) -> String {
    attributes(s)
        .into_iter()
        .map(|(key, value)| {
            if is_secret_key(&key) {
                format!("{key}=***")
            } else {
                format!("{key}={value}")
            }
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// The connection string of the Databricks (Simba Spark) ODBC driver: HTTP transport over SSL
/// on port 443, authenticated with a personal access token.
pub fn databricks_connection_string(
    driver: &str,
    hostname: &str,
    http_path: &str,
    token: &SecretString,
) -> OdbcConnectionString {
    OdbcConnectionString::new(format!(
        "Driver={};Host={};Port=443;HTTPPath={};SSL=1;ThriftTransport=2;AuthMech=3;UID=token;PWD={}",
        braced(driver),
        braced(hostname),
        braced(http_path),
        braced(token.expose_secret())
    ))
}

/// Wraps a value in braces when it holds characters that would end it early.
fn braced(value: &str) -> String {
    if value.contains([';', '{', '}', '=']) || value.starts_with(' ') || value.ends_with(' ') {
        format!("{{{}}}", value.replace('}', "}}"))
    } else {
        value.to_owned()
    }
}

/// How `SYNC_DIALECT` picks the SQL dialect.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DialectChoice {
    /// Databricks for the `DATABRICKS_*` variables, PostgreSQL for a connection string.
    #[default]
    Auto,
    /// Databricks SQL.
    Databricks,
    /// PostgreSQL 15 or later.
    Postgres,
}

/// The warehouse flags and variables (see the module documentation).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct WarehouseArgs {
    /// Databricks workspace host name (adb-….azuredatabricks.net, ….cloud.databricks.com).
    #[arg(
        long,
        env = "DATABRICKS_SERVER_HOSTNAME",
        value_name = "DATABRICKS_SERVER_HOSTNAME"
    )]
    pub databricks_server_hostname: Option<String>,

    /// HTTP path of the SQL warehouse (/sql/1.0/warehouses/…).
    #[arg(
        long,
        env = "DATABRICKS_HTTP_PATH",
        value_name = "DATABRICKS_HTTP_PATH"
    )]
    pub databricks_http_path: Option<String>,

    /// Databricks personal access token (never printed).
    #[arg(
        long,
        env = "DATABRICKS_ACCESS_TOKEN",
        value_name = "DATABRICKS_ACCESS_TOKEN",
        hide_env_values = true
    )]
    pub databricks_access_token: Option<SecretString>,

    /// Databricks ODBC driver: a name registered in odbcinst.ini or the driver library's path.
    #[arg(
        long,
        env = "DATABRICKS_ODBC_DRIVER",
        value_name = "DATABRICKS_ODBC_DRIVER",
        default_value = DEFAULT_DATABRICKS_ODBC_DRIVER
    )]
    pub databricks_odbc_driver: String,

    /// Any ODBC connection string; overrides the DATABRICKS_* variables (never printed).
    #[arg(
        long,
        env = "SYNC_ODBC_CONNECTION_STRING",
        value_name = "SYNC_ODBC_CONNECTION_STRING",
        hide_env_values = true
    )]
    pub sync_odbc_connection_string: Option<OdbcConnectionString>,

    /// SQL dialect of the warehouse: auto, databricks or postgres.
    #[arg(
        long,
        env = "SYNC_DIALECT",
        value_name = "SYNC_DIALECT",
        value_enum,
        default_value_t = DialectChoice::Auto
    )]
    pub sync_dialect: DialectChoice,

    /// Catalog of the warehouse tables (Unity Catalog; ignored by PostgreSQL).
    #[arg(
        long,
        env = "SYNC_CATALOG",
        value_name = "SYNC_CATALOG",
        default_value = "main",
        value_parser = parse_identifier("SYNC_CATALOG")
    )]
    pub sync_catalog: String,

    /// Schema of the warehouse tables, created when missing.
    #[arg(
        long,
        env = "SYNC_SCHEMA",
        value_name = "SYNC_SCHEMA",
        default_value = "pricecast",
        value_parser = parse_identifier("SYNC_SCHEMA")
    )]
    pub sync_schema: String,

    /// Rows per bulk insert into the staging table.
    #[arg(
        long,
        env = "SYNC_BATCH_SIZE",
        value_name = "SYNC_BATCH_SIZE",
        default_value_t = DEFAULT_BATCH_SIZE,
        value_parser = parse_batch_size
    )]
    pub sync_batch_size: usize,
}

fn parse_identifier(variable: &'static str) -> impl Fn(&str) -> Result<String, String> + Clone {
    move |s: &str| {
        let mut chars = s.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid {
            Ok(s.to_owned())
        } else {
            Err(format!(
                "{variable}: {s:?} must be a plain identifier (letters, digits and _, not starting with a digit)"
            ))
        }
    }
}

fn parse_batch_size(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
        _ => Err(format!(
            "SYNC_BATCH_SIZE: {s:?} must be a number of rows from 1 to 1000000"
        )),
    }
}

/// A configured warehouse: how to connect, which dialect, where the tables go.
#[derive(Clone, Debug)]
pub struct WarehouseConfig {
    /// ODBC connection string.
    pub connection_string: OdbcConnectionString,
    /// SQL dialect.
    pub dialect: Dialect,
    /// Catalog and schema of the tables.
    pub namespace: Namespace,
    /// Rows per bulk insert into the staging table.
    pub batch_size: usize,
}

impl WarehouseArgs {
    /// The warehouse these settings describe; `None` when no connection is configured. Half of
    /// the `DATABRICKS_*` variables is a configuration error naming the missing ones.
    pub fn config(&self) -> Result<Option<WarehouseConfig>> {
        let databricks = [
            (
                "DATABRICKS_SERVER_HOSTNAME",
                self.databricks_server_hostname.is_some(),
            ),
            ("DATABRICKS_HTTP_PATH", self.databricks_http_path.is_some()),
            (
                "DATABRICKS_ACCESS_TOKEN",
                self.databricks_access_token.is_some(),
            ),
        ];
        let (connection_string, auto_dialect) = match (
            &self.sync_odbc_connection_string,
            &self.databricks_server_hostname,
            &self.databricks_http_path,
            &self.databricks_access_token,
        ) {
            (Some(connection), ..) => (connection.clone(), Dialect::Postgres),
            (None, Some(host), Some(path), Some(token)) => (
                databricks_connection_string(&self.databricks_odbc_driver, host, path, token),
                Dialect::Databricks,
            ),
            (None, None, None, None) => return Ok(None),
            _ => {
                let missing: Vec<&str> = databricks
                    .iter()
                    .filter(|(_, set)| !set)
                    .map(|(name, _)| *name)
                    .collect();
                return Err(Error::config(format!(
                    "{} must be set too (or set SYNC_ODBC_CONNECTION_STRING instead)",
                    missing.join(", ")
                )));
            }
        };
        let dialect = match self.sync_dialect {
            DialectChoice::Auto => auto_dialect,
            DialectChoice::Databricks => Dialect::Databricks,
            DialectChoice::Postgres => Dialect::Postgres,
        };
        Ok(Some(WarehouseConfig {
            connection_string,
            dialect,
            namespace: Namespace {
                catalog: self.sync_catalog.clone(),
                schema: self.sync_schema.clone(),
            },
            batch_size: self.sync_batch_size,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        warehouse: WarehouseArgs,
    }

    const TOKEN: &str = "dapi0123456789abcdef";

    fn databricks() -> Cli {
        Cli::try_parse_from([
            "sync",
            "--databricks-server-hostname",
            "adb-1.azuredatabricks.net",
            "--databricks-http-path",
            "/sql/1.0/warehouses/abc",
            "--databricks-access-token",
            TOKEN,
        ])
        .expect("flags")
    }

    #[test]
    fn databricks_connection_string_is_built_for_the_simba_driver() {
        let config = databricks()
            .warehouse
            .config()
            .expect("valid")
            .expect("set");
        assert_eq!(
            config.connection_string.expose(),
            format!(
                "Driver=Simba Spark ODBC Driver;Host=adb-1.azuredatabricks.net;Port=443;\
                 HTTPPath=/sql/1.0/warehouses/abc;SSL=1;ThriftTransport=2;AuthMech=3;UID=token;PWD={TOKEN}"
            )
        );
        assert_eq!(config.dialect, Dialect::Databricks);
        assert_eq!(config.namespace.catalog, "main");
        assert_eq!(config.namespace.schema, "pricecast");
        assert_eq!(config.batch_size, DEFAULT_BATCH_SIZE);
    }

    #[test]
    fn tokens_and_passwords_never_print() {
        let cli = databricks();
        let config = cli.warehouse.config().expect("valid").expect("set");
        for text in [
            format!("{cli:?}"),
            format!("{config:?}"),
            config.connection_string.to_string(),
            config.connection_string.redacted(),
        ] {
            assert!(!text.contains(TOKEN), "{text}");
        }
        assert!(config.connection_string.redacted().contains("PWD=***"));
        assert_eq!(config.connection_string.secrets(), vec![TOKEN.to_owned()]);
        let custom: OdbcConnectionString = "Driver={PostgreSQL Unicode};Server=db;Pwd={se;cret}"
            .parse()
            .expect("connection string");
        assert_eq!(
            custom.redacted(),
            "Driver={PostgreSQL Unicode};Server=db;Pwd=***"
        );
        assert_eq!(custom.secrets(), vec!["{se;cret}".to_owned()]);
    }

    #[test]
    fn braces_protect_values_with_separators() {
        let token = SecretString::from("a;b".to_owned());
        let s = databricks_connection_string("/opt/simba/lib/libsparkodbc.so", "h", "/p", &token);
        assert!(s.expose().ends_with("PWD={a;b}"), "{}", s.expose());
        assert!(!s.redacted().contains("a;b"));
    }

    #[test]
    fn connection_string_overrides_and_nothing_means_not_configured() {
        let cli = Cli::try_parse_from([
            "sync",
            "--sync-odbc-connection-string",
            "Driver={PostgreSQL Unicode};Server=127.0.0.1;Database=wh",
            "--databricks-server-hostname",
            "h",
        ])
        .expect("flags");
        let config = cli.warehouse.config().expect("valid").expect("set");
        assert_eq!(config.dialect, Dialect::Postgres);
        assert!(config.connection_string.expose().contains("Database=wh"));
        let none = Cli::try_parse_from(["sync"]).expect("flags");
        assert!(none.warehouse.config().expect("valid").is_none());
    }

    #[test]
    fn half_a_databricks_configuration_names_what_is_missing() {
        let cli = Cli::try_parse_from(["sync", "--databricks-server-hostname", "h"]).expect("ok");
        let err = cli.warehouse.config().expect_err("incomplete").to_string();
        assert!(
            err.contains("DATABRICKS_HTTP_PATH") && err.contains("DATABRICKS_ACCESS_TOKEN"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (flag, value, variable) in [
            ("--sync-catalog", "main;drop", "SYNC_CATALOG"),
            ("--sync-schema", "1x", "SYNC_SCHEMA"),
            ("--sync-batch-size", "0", "SYNC_BATCH_SIZE"),
            ("--sync-dialect", "oracle", "SYNC_DIALECT"),
        ] {
            let err = Cli::try_parse_from(["sync", flag, value])
                .expect_err(variable)
                .to_string();
            assert!(err.contains(variable), "{err}");
        }
    }
}
