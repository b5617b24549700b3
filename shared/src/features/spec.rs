//! Which features a frame holds and which targets: names, the history they need and a stable
//! hash that says when a stored frame no longer matches the definition.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Version of the feature definitions. Bump it whenever a formula changes: the hash changes
/// with it, so every stored frame is rebuilt and no model is served features it was not
/// trained on.
pub const FEATURE_SET_VERSION: u32 = 1;

/// Target horizons (in candles) when none are configured.
pub const DEFAULT_HORIZONS: [u32; 1] = [1];

/// The seed app's features: the previous five closes and the ten-candle moving average.
pub const SEED_FEATURE_NAMES: [&str; 6] = [
    "price_t-1",
    "price_t-2",
    "price_t-3",
    "price_t-4",
    "price_t-5",
    "ma_10",
];

/// Features computable from closes alone and independent of the price level: log returns,
/// close-to-average ratios, volatility and RSI. The default model feature set, and what the
/// API can compute from a price-only series.
pub const PRICE_FEATURE_NAMES: [&str; 12] = [
    "log_ret_1",
    "log_ret_2",
    "log_ret_3",
    "log_ret_5",
    "log_ret_10",
    "ma_ratio_5",
    "ma_ratio_10",
    "ma_ratio_20",
    "ma_ratio_50",
    "volatility_10",
    "volatility_20",
    "rsi_14",
];

/// How one feature is computed. Windows and lags count candles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureKind {
    /// The close `k` candles earlier.
    Lag(u32),
    /// Mean of the last `n` closes, this one included.
    MovingAverage(u32),
    /// `ln(close_t / close_{t-k})`.
    LogReturn(u32),
    /// `close / ma_n`.
    MovingAverageRatio(u32),
    /// Sample standard deviation of the last `n` one-candle log returns.
    Volatility(u32),
    /// Cutler's RSI over the last `n` close-to-close changes.
    Rsi(u32),
    /// `(volume - mean) / std` over the last `n` volumes.
    VolumeZ(u32),
    /// Hour of the open time, UTC, 0–23.
    Hour,
    /// Day of the week of the open time, UTC, Monday = 0 … Sunday = 6.
    DayOfWeek,
}

impl FeatureKind {
    /// Candles before a row that the feature reads.
    pub fn history(self) -> u32 {
        match self {
            Self::Lag(k) | Self::LogReturn(k) => k,
            Self::MovingAverage(n) | Self::MovingAverageRatio(n) | Self::VolumeZ(n) => n - 1,
            // n returns need n + 1 closes; n changes likewise.
            Self::Volatility(n) | Self::Rsi(n) => n,
            Self::Hour | Self::DayOfWeek => 0,
        }
    }
}

/// Every feature, in the order a frame holds them.
pub const ALL_FEATURES: [(&str, FeatureKind); 24] = [
    ("price_t-1", FeatureKind::Lag(1)),
    ("price_t-2", FeatureKind::Lag(2)),
    ("price_t-3", FeatureKind::Lag(3)),
    ("price_t-4", FeatureKind::Lag(4)),
    ("price_t-5", FeatureKind::Lag(5)),
    ("ma_10", FeatureKind::MovingAverage(10)),
    ("log_ret_1", FeatureKind::LogReturn(1)),
    ("log_ret_2", FeatureKind::LogReturn(2)),
    ("log_ret_3", FeatureKind::LogReturn(3)),
    ("log_ret_5", FeatureKind::LogReturn(5)),
    ("log_ret_10", FeatureKind::LogReturn(10)),
    ("ma_5", FeatureKind::MovingAverage(5)),
    ("ma_20", FeatureKind::MovingAverage(20)),
    ("ma_50", FeatureKind::MovingAverage(50)),
    ("ma_ratio_5", FeatureKind::MovingAverageRatio(5)),
    ("ma_ratio_10", FeatureKind::MovingAverageRatio(10)),
    ("ma_ratio_20", FeatureKind::MovingAverageRatio(20)),
    ("ma_ratio_50", FeatureKind::MovingAverageRatio(50)),
    ("volatility_10", FeatureKind::Volatility(10)),
    ("volatility_20", FeatureKind::Volatility(20)),
    ("rsi_14", FeatureKind::Rsi(14)),
    ("volume_z_20", FeatureKind::VolumeZ(20)),
    ("hour", FeatureKind::Hour),
    ("day_of_week", FeatureKind::DayOfWeek),
];

/// How a feature name is computed; `None` for a name that is not a feature.
pub fn feature_kind(name: &str) -> Option<FeatureKind> {
    ALL_FEATURES
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, kind)| *kind)
}

/// The column holding the close `h` candles later: `price_t+1`.
pub fn target_name(horizon: u32) -> String {
    format!("price_t+{horizon}")
}

/// A feature set: which features a frame must hold, and the targets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Target horizons in candles (`price_t+h`), each at least 1.
    pub horizons: Vec<u32>,
    /// Feature names, in the order models see them.
    pub features: Vec<String>,
}

impl Default for FeatureSpec {
    fn default() -> Self {
        Self::all(DEFAULT_HORIZONS.to_vec())
    }
}

impl FeatureSpec {
    /// Every feature, with these horizons.
    pub fn all(horizons: Vec<u32>) -> Self {
        Self {
            horizons,
            features: ALL_FEATURES
                .iter()
                .map(|(name, _)| (*name).to_owned())
                .collect(),
        }
    }

    /// These features and horizons, checked: known names, no duplicates, horizons ≥ 1.
    pub fn new<S: AsRef<str>>(features: &[S], horizons: Vec<u32>) -> Result<Self> {
        let spec = Self {
            horizons,
            features: features.iter().map(|f| f.as_ref().to_owned()).collect(),
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the names and horizons; the error lists the known features.
    pub fn validate(&self) -> Result<()> {
        let invalid = |message: String| Error::Features {
            operation: "checking the feature set".to_owned(),
            message,
        };
        for (i, name) in self.features.iter().enumerate() {
            if feature_kind(name).is_none() {
                let known: Vec<&str> = ALL_FEATURES.iter().map(|(n, _)| *n).collect();
                return Err(invalid(format!(
                    "unknown feature {name:?}; known features: {}",
                    known.join(", ")
                )));
            }
            if self.features[..i].contains(name) {
                return Err(invalid(format!("feature {name:?} is listed twice")));
            }
        }
        if self.horizons.contains(&0) {
            return Err(invalid("a horizon must be at least 1 candle".to_owned()));
        }
        Ok(())
    }

    /// The feature names, in frame and model order.
    pub fn feature_names(&self) -> &[String] {
        &self.features
    }

    /// The target column names, one per horizon.
    pub fn target_names(&self) -> Vec<String> {
        self.horizons.iter().map(|&h| target_name(h)).collect()
    }

    /// Candles before a row that computing its features reads (49 for `ma_50`).
    pub fn history(&self) -> usize {
        self.features
            .iter()
            .filter_map(|name| feature_kind(name))
            .map(FeatureKind::history)
            .max()
            .unwrap_or(0) as usize
    }

    /// Candles after a row that its targets read.
    pub fn lookahead(&self) -> usize {
        self.horizons.iter().copied().max().unwrap_or(0) as usize
    }

    /// Whether any selected feature reads the volume.
    pub fn needs_volume(&self) -> bool {
        self.features
            .iter()
            .any(|name| matches!(feature_kind(name), Some(FeatureKind::VolumeZ(_))))
    }

    /// A stable fingerprint of the definition version, the feature names (in order) and the
    /// horizons: 64-bit FNV-1a, as 16 hex digits. Unlike `std::hash`, FNV-1a is fixed by its
    /// specification, so the value is the same across Rust versions and platforms.
    pub fn hash(&self) -> String {
        let mut text = format!("pricecast-features-v{FEATURE_SET_VERSION}\n");
        for name in &self.features {
            text.push_str(name);
            text.push('\n');
        }
        for horizon in &self.horizons {
            text.push_str(&target_name(*horizon));
            text.push('\n');
        }
        format!("{:016x}", fnv1a64(text.as_bytes()))
    }
}

/// 64-bit FNV-1a (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn hash_is_stable_and_follows_names_and_horizons() {
        let all = FeatureSpec::all(vec![1]);
        assert_eq!(all.hash(), FeatureSpec::default().hash());
        assert_eq!(all.hash().len(), 16);
        assert_ne!(all.hash(), FeatureSpec::all(vec![1, 3]).hash());
        let seed = FeatureSpec::new(&SEED_FEATURE_NAMES, vec![1]).expect("seed");
        assert_ne!(seed.hash(), all.hash());
        let mut swapped = seed.clone();
        swapped.features.swap(0, 1);
        assert_ne!(
            seed.hash(),
            swapped.hash(),
            "order is part of the definition"
        );
    }

    #[test]
    fn history_is_the_longest_lookback_of_the_selection() {
        assert_eq!(FeatureSpec::all(vec![1]).history(), 49);
        let seed = FeatureSpec::new(&SEED_FEATURE_NAMES, vec![1]).expect("seed");
        assert_eq!(seed.history(), 9);
        let price = FeatureSpec::new(&PRICE_FEATURE_NAMES, vec![1, 4]).expect("price");
        assert_eq!(price.history(), 49);
        assert_eq!(price.lookahead(), 4);
        assert!(!price.needs_volume());
        assert!(FeatureSpec::all(vec![1]).needs_volume());
        let calendar = FeatureSpec::new(&["hour", "day_of_week"], vec![1]).expect("calendar");
        assert_eq!(calendar.history(), 0);
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        let unknown = FeatureSpec::new(&["ma_7"], vec![1]).expect_err("unknown");
        assert!(unknown.to_string().contains("ma_7"), "{unknown}");
        assert!(unknown.to_string().contains("rsi_14"), "{unknown}");
        assert!(FeatureSpec::new(&["ma_10", "ma_10"], vec![1]).is_err());
        assert!(FeatureSpec::new(&["ma_10"], vec![0]).is_err());
        assert_eq!(target_name(3), "price_t+3");
    }
}
