//! Pricecast's shared library: settings, domain types, the store over PostgreSQL and SQLite,
//! the Binance client and the replay source, and the plumbing every job uses.

pub mod archive;
pub mod binance;
pub mod candle_row;
pub mod champion;
pub mod domain;
pub mod error;
pub mod features;
pub mod kline;
pub mod lake;
pub mod model;
pub mod registry;
pub mod replay;
pub mod report;
pub mod runner;
pub mod series;
pub mod settings;
pub mod shard;
pub mod source;
pub mod store;
pub mod telemetry;
pub mod universe;

pub use error::{Error, Result};
