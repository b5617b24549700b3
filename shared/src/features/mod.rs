//! Feature definitions shared by the features job, training and serving, so what is served is
//! what was trained.
//!
//! - [`spec`]: the feature names, the history each needs, targets and the feature-set hash.
//! - [`frame`]: the one definition, a polars lazy pipeline from candles to features and targets.
//! - [`rolling`]: the frame's rolling sums, means and standard deviations.
//! - [`store`]: feature frames in the lake, their manifest, and the candles they are built from.
//! - [`seed`]: the seed app's features in exact decimals, as `/price/history` serves them.

pub mod frame;
pub mod parquet;
pub mod rolling;
pub mod seed;
pub mod spec;
pub mod store;

pub use frame::{FeatureRow, TrainingRows, candle_frame, feature_frame, feature_rows, latest_row};
pub use seed::{SEED_HISTORY, SEED_LAGS, SEED_MA_WINDOW, SeedFeatures, seed_features};
pub use spec::{
    ALL_FEATURES, DEFAULT_HORIZONS, FEATURE_SET_VERSION, FeatureSpec, PRICE_FEATURE_NAMES,
    SEED_FEATURE_NAMES, target_name,
};
pub use store::{FeatureManifest, read_feature_frame};
