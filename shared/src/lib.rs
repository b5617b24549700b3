//! Pricecast's shared library: settings, domain types, the store over PostgreSQL and SQLite, the
//! lake, feature frames, models, the model registry, and the plumbing every job uses. The price
//! sources (Binance and the bundled history) are in `pricecast-binance`, the warehouse in
//! `pricecast-warehouse`; both build on this crate, which needs neither.

pub mod candle_row;
pub mod champion;
pub mod domain;
pub mod error;
pub mod features;
pub mod lake;
pub mod model;
pub mod registry;
pub mod report;
pub mod runner;
pub mod series;
pub mod settings;
pub mod shard;
pub mod store;
pub mod telemetry;
pub mod universe;

pub use error::{Error, Result};
