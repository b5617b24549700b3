//! Test support for Pricecast: fresh databases, the API server on a free port, and local fakes
//! of the outside world (Binance's REST API) and of the lake's S3 server, used by the end-to-end
//! tests and the benchmarks.

pub mod api;
pub mod db;
pub mod fake_binance;
pub mod lake;
pub mod pipeline;
pub mod warehouse;
