//! Test support for Pricecast: fresh databases and local fakes of the outside world
//! (Binance's REST API) and of the lake's S3 server, used by the end-to-end tests and the
//! benchmarks.

pub mod db;
pub mod fake_binance;
pub mod lake;
pub mod pipeline;
pub mod warehouse;
