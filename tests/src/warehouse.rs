//! A fresh warehouse per test: a new PostgreSQL database reached over ODBC through unixODBC and
//! the PostgreSQL ODBC driver, standing in for a Databricks SQL warehouse (PostgreSQL 15 has
//! MERGE, so the same staging + MERGE path runs).

use pricecast_warehouse::config::DEFAULT_BATCH_SIZE;
use pricecast_warehouse::{Dialect, Namespace, OdbcConnectionString, WarehouseConfig};

use crate::db::{PG_URL_VARIABLE, TEST_DB_PREFIX};

/// The ODBC driver to use; the test script exports it after checking odbcinst.ini.
pub const ODBC_DRIVER_VARIABLE: &str = "PRICECAST_TEST_ODBC_DRIVER";
const DEFAULT_ODBC_DRIVER: &str = "PostgreSQL Unicode";
const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A warehouse database that belongs to one test.
pub struct TestWarehouse {
    /// The database's name.
    pub name: String,
    /// A sqlx pool on it, to look at what the sync wrote.
    pub pool: sqlx::PgPool,
    /// Its ODBC connection string.
    pub connection_string: String,
}

impl TestWarehouse {
    /// Creates a new warehouse database. Panics with the reason when PostgreSQL is missing.
    pub async fn new() -> Self {
        let admin_url = std::env::var(PG_URL_VARIABLE).unwrap_or_else(|_| DEFAULT_PG_URL.into());
        let name = format!("{TEST_DB_PREFIX}wh_{:016x}", rand::random::<u64>());
        let admin = sqlx::PgPool::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!("PostgreSQL for tests is not reachable at {admin_url} ({e}); run tests/run.sh")
        });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot create warehouse database {name}: {e}"));
        admin.close().await;
        let mut url = url::Url::parse(&admin_url).expect("valid PostgreSQL URL");
        url.set_path(&name);
        let pool = sqlx::PgPool::connect(url.as_str())
            .await
            .expect("connect to the warehouse database");
        let connection_string = odbc_connection_string(&url);
        Self {
            name,
            pool,
            connection_string,
        }
    }

    /// The warehouse configuration the sync job gets, with `batch_size` rows per batch.
    pub fn config(&self, batch_size: usize) -> WarehouseConfig {
        WarehouseConfig {
            connection_string: self
                .connection_string
                .parse::<OdbcConnectionString>()
                .expect("connection string"),
            dialect: Dialect::Postgres,
            namespace: Namespace {
                catalog: "main".into(),
                schema: "pricecast".into(),
            },
            batch_size,
        }
    }

    /// [`Self::config`] with the default batch size.
    pub fn default_config(&self) -> WarehouseConfig {
        self.config(DEFAULT_BATCH_SIZE)
    }
}

/// The PostgreSQL ODBC driver's connection string for a `postgres://` URL.
pub fn odbc_connection_string(url: &url::Url) -> String {
    let driver = std::env::var(ODBC_DRIVER_VARIABLE).unwrap_or_else(|_| DEFAULT_ODBC_DRIVER.into());
    format!(
        "Driver={{{driver}}};Server={};Port={};Database={};Uid={};Pwd={};",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5432),
        url.path().trim_start_matches('/'),
        if url.username().is_empty() {
            "postgres"
        } else {
            url.username()
        },
        url.password().unwrap_or("")
    )
}
