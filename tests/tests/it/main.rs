//! End-to-end tests against real PostgreSQL and SQLite (one test binary keeps link times down).

mod api;
mod binaries;
mod collect;
mod copy_backfill;
mod demo;
mod deploy;
mod end_to_end;
mod export;
mod features;
mod forecast;
mod predict;
mod registry;
mod seed_contract;
mod seed_mlflow;
mod series;
mod sync;
mod train;
