//! Sharding a job's series across processes: shard `i` of `n` owns the series that rendezvous
//! hashing gives it, so each series has exactly one owner and few move when `n` changes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{Interval, Symbol};

/// Most shards one job can be cut into.
pub const MAX_SHARDS: u32 = 4096;

/// One process's share of the series: shard `index` of `count` (0-based, as Kubernetes numbers
/// an Indexed Job's pods in `JOB_COMPLETION_INDEX`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u32,
    /// How many shards the series are cut into.
    pub count: u32,
}

impl Shard {
    /// Shard `index` of `count`, when `index < count ≤ MAX_SHARDS`.
    pub fn new(index: u32, count: u32) -> Result<Self, String> {
        if count == 0 || count > MAX_SHARDS {
            return Err(format!(
                "the shard count must be 1 to {MAX_SHARDS}, not {count}"
            ));
        }
        if index >= count {
            return Err(format!(
                "shard {index} does not exist: shards are numbered 0 to {} of {count}",
                count - 1
            ));
        }
        Ok(Self { index, count })
    }

    /// Whether this shard works on the series.
    pub fn owns(&self, symbol: &Symbol, interval: Interval) -> bool {
        owner(symbol, interval, self.count) == self.index
    }

    /// The name this shard's runs lock under: `job` alone when there is one shard, so an
    /// unsharded deployment keeps its lock.
    pub fn lock_name(shard: Option<Self>, job: &str) -> String {
        match shard {
            Some(shard) if shard.count > 1 => {
                format!("{job}:shard-{}-of-{}", shard.index, shard.count)
            }
            _ => job.to_owned(),
        }
    }
}

/// The shard of `count` that owns a series, by rendezvous hashing: every shard scores the
/// series and the highest score wins. Adding a series moves no other, and going from `n` to
/// `n + 1` shards moves only the series the new shard wins (about one in `n + 1`).
pub fn owner(symbol: &Symbol, interval: Interval, count: u32) -> u32 {
    (0..count.max(1))
        .max_by_key(|&shard| {
            let digest = Sha256::new()
                .chain_update(symbol.as_str())
                .chain_update([0])
                .chain_update(interval.as_str())
                .chain_update([0])
                .chain_update(shard.to_le_bytes())
                .finalize();
            let mut score = [0u8; 8];
            score.copy_from_slice(&digest[..8]);
            // Ties are all but impossible; the lower shard wins one.
            (u64::from_be_bytes(score), std::cmp::Reverse(shard))
        })
        .unwrap_or(0)
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (index, count) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("'{s}' is not a shard: write it as i/n, e.g. 0/4"))?;
        let number = |part: &str, what: &str| {
            part.trim()
                .parse::<u32>()
                .map_err(|_| format!("'{s}' is not a shard: {what} '{part}' is not a number"))
        };
        Self::new(number(index, "the index")?, number(count, "the count")?)
    }
}

impl TryFrom<String> for Shard {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Shard> for String {
    fn from(shard: Shard) -> Self {
        shard.to_string()
    }
}
