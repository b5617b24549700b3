//! Fresh databases for tests: a new PostgreSQL database per test on the server the test script
//! started (or found), or a new SQLite file in a temporary folder.

use chrono::{DateTime, Utc};
use pricecast_binance::replay;
use pricecast_shared::domain::Interval;
use pricecast_shared::store::{AccessMode, CandleQuery, Store, StoreOptions};
use pricecast_shared::{domain::Candle, domain::Symbol};
use rust_decimal::Decimal;
use sqlx::Row;

/// Where the test PostgreSQL server is; the test script exports it.
pub const PG_URL_VARIABLE: &str = "PRICECAST_TEST_PG_URL";
const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Prefix of every database a test creates (the test script drops leftovers).
pub const TEST_DB_PREFIX: &str = "pricecast_test_";

/// One row of the seed app's `bitcoin_prices` view, as the seed's queries read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BitcoinPrice {
    /// The row's id.
    pub id: i64,
    /// The close, exact.
    pub price: Decimal,
    /// The candle's open time.
    pub timestamp: DateTime<Utc>,
    /// Where the candle came from.
    pub source: String,
    /// When the candle was stored.
    pub created_at: DateTime<Utc>,
}

/// The view's columns, oldest row first.
const BITCOIN_PRICES_SQL: &str = "SELECT id, price, \"timestamp\", source, created_at FROM bitcoin_prices ORDER BY \"timestamp\"";

/// A migrated database that belongs to one test.
pub struct TestDb {
    /// Read-write store, as jobs use it.
    pub store: Store,
    /// The database URL (for read-only stores and child processes).
    pub url: String,
    /// Keeps a SQLite file alive for the test's duration.
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A new, migrated PostgreSQL database. Panics with the reason when the server is missing:
    /// a test never skips silently.
    pub async fn postgres() -> Self {
        let admin_url = std::env::var(PG_URL_VARIABLE).unwrap_or_else(|_| DEFAULT_PG_URL.into());
        let name = format!("{TEST_DB_PREFIX}{:016x}", rand::random::<u64>());
        let admin = sqlx::PgPool::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!("PostgreSQL for tests is not reachable at {admin_url} ({e}); run tests/run.sh, which starts one")
        });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        admin.close().await;
        let mut url = url::Url::parse(&admin_url).expect("valid PostgreSQL URL");
        url.set_path(&name);
        Self::open(url.to_string(), None).await
    }

    /// A new, migrated SQLite database file.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let url = format!("sqlite://{}/pricecast.db", dir.path().display());
        Self::open(url, Some(dir)).await
    }

    async fn open(url: String, dir: Option<tempfile::TempDir>) -> Self {
        let store = Store::connect(
            &url,
            StoreOptions {
                mode: AccessMode::ReadWrite,
                max_connections: 4,
            },
        )
        .await
        .expect("connect to the test database");
        store.migrate().await.expect("migrate the test database");
        Self {
            store,
            url,
            _dir: dir,
        }
    }

    /// Both backends, for tests that must hold on each.
    pub async fn both() -> [Self; 2] {
        [Self::postgres().await, Self::sqlite().await]
    }

    /// A read-only store on the same database, as the API opens it.
    pub async fn read_only_store(&self) -> Store {
        Store::connect(
            &self.url,
            StoreOptions {
                mode: AccessMode::ReadOnly,
                max_connections: 4,
            },
        )
        .await
        .expect("connect read-only")
    }

    /// Loads the newest `count` bundled candles of `symbol` straight into the store.
    pub async fn load_bundled(&self, symbol: &str, count: usize) -> Vec<Candle> {
        let symbol: Symbol = symbol.parse().expect("symbol");
        let all = replay::bundled_candles(&symbol).expect("bundled history");
        let candles = all[all.len().saturating_sub(count)..].to_vec();
        for chunk in candles.chunks(1000) {
            self.store
                .upsert_candles(chunk)
                .await
                .expect("load candles");
        }
        candles
    }

    /// The PostgreSQL pool, for SQL a test runs itself; panics on SQLite.
    pub fn pg_pool(&self) -> &sqlx::PgPool {
        match &self.store {
            Store::Postgres(pg) => pg.pool(),
            Store::Sqlite(_) => panic!("this test needs a PostgreSQL database"),
        }
    }

    /// Every row of the seed app's `bitcoin_prices` view, oldest first. SQLite's view holds
    /// exact decimal text and ISO 8601 text times; both are parsed here.
    pub async fn bitcoin_prices(&self) -> Vec<BitcoinPrice> {
        match &self.store {
            Store::Postgres(pg) => sqlx::query(BITCOIN_PRICES_SQL)
                .fetch_all(pg.pool())
                .await
                .expect("read bitcoin_prices")
                .iter()
                .map(|row| BitcoinPrice {
                    id: row.get("id"),
                    price: row.get("price"),
                    timestamp: row.get("timestamp"),
                    source: row.get("source"),
                    created_at: row.get("created_at"),
                })
                .collect(),
            Store::Sqlite(lite) => {
                let rows: Vec<(i64, String, String, String, String)> =
                    sqlx::query_as(BITCOIN_PRICES_SQL)
                        .fetch_all(lite.pool())
                        .await
                        .expect("read bitcoin_prices");
                let time = |text: &str| {
                    DateTime::parse_from_rfc3339(text)
                        .unwrap_or_else(|e| panic!("bitcoin_prices time {text:?}: {e}"))
                        .with_timezone(&Utc)
                };
                rows.into_iter()
                    .map(|(id, price, timestamp, source, created_at)| BitcoinPrice {
                        id,
                        price: price.parse().expect("bitcoin_prices price"),
                        timestamp: time(&timestamp),
                        source,
                        created_at: time(&created_at),
                    })
                    .collect()
            }
        }
    }

    /// Every stored BTCUSDT candle of `interval`, oldest first.
    pub async fn btc_candles(&self, interval: Interval) -> Vec<Candle> {
        self.store
            .candles(&CandleQuery {
                symbol: "BTCUSDT".parse().expect("symbol"),
                interval,
                from: None,
                to: None,
                limit: i64::MAX,
                offset: 0,
                newest_first: false,
            })
            .await
            .expect("stored candles")
    }
}
