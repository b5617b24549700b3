//! Where Pricecast's candles come from: Binance's public REST API (rate limits honoured), its
//! bulk archive of monthly files for long backfills, the parsing and validation of kline pages
//! both go through, and the bundled real history replayed offline for the demo.
//!
//! Only the collector and the demo use this crate; the API never reaches Binance and so never
//! builds it.

pub mod archive;
pub mod client;
pub mod config;
pub mod kline;
pub mod replay;
pub mod source;

pub use client::{BinanceClient, BinanceConfig, RetryPolicy};
pub use config::BinanceArgs;
pub use source::KlineSource;
