//! Collect job tests: the fake Binance server into real PostgreSQL and SQLite.
