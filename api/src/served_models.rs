//! The models the API serves: per configured series, the registry's `champion` (used for
//! predictions) and `challenger` (reported by `/models`), loaded at start and polled.
//!
//! A poll reads each alias; when it points to a version other than the one held, that version
//! is loaded in the background and swapped in atomically (an `Arc` behind a lock held only for
//! the swap), so requests in flight finish with the model they started with and none fails.
//! When the registry cannot be reached the models held keep being served and `/health` reports
//! the registry as down.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use pricecast_shared::champion::RegisteredModel;
use pricecast_shared::domain::{Interval, Symbol};
use pricecast_shared::registry::{CHALLENGER, CHAMPION, ModelRegistry, RegistryArgs};
use pricecast_shared::telemetry::error_chain;
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Default time between two polls of the registry.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(30);

/// The aliases a series' slot holds.
#[derive(Clone, Debug, Default)]
struct SeriesModels {
    champion: Option<Arc<RegisteredModel>>,
    challenger: Option<Arc<RegisteredModel>>,
}

/// What the last poll of the registry saw.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RegistryStatus {
    /// Where the registry is (no secrets).
    pub location: String,
    /// When a poll last reached the registry.
    pub last_success: Option<DateTime<Utc>>,
    /// When the last poll ran.
    pub last_attempt: Option<DateTime<Utc>>,
    /// Why the last poll failed, if it did.
    pub last_error: Option<String>,
    /// Champions held.
    pub champions_loaded: usize,
}

impl RegistryStatus {
    /// Whether the last poll reached the registry.
    pub fn is_up(&self) -> bool {
        self.last_error.is_none() && self.last_success.is_some()
    }
}

/// The served models of every configured series.
#[derive(Debug)]
pub struct ServedModels {
    registry: Option<Arc<ModelRegistry>>,
    names: RegistryArgs,
    series: Vec<(Symbol, Interval)>,
    slots: RwLock<HashMap<(Symbol, Interval), SeriesModels>>,
    status: RwLock<RegistryStatus>,
}

impl ServedModels {
    /// Models of `series` from `registry`, named by `names`' pattern. Nothing is loaded until
    /// [`ServedModels::refresh`].
    pub fn new(
        registry: Arc<ModelRegistry>,
        names: RegistryArgs,
        series: Vec<(Symbol, Interval)>,
    ) -> Self {
        let status = RegistryStatus {
            location: registry.location(),
            ..RegistryStatus::default()
        };
        Self {
            registry: Some(registry),
            names,
            series,
            slots: RwLock::default(),
            status: RwLock::new(status),
        }
    }

    /// No registry: predictions answer 503.
    pub fn none() -> Self {
        Self {
            registry: None,
            names: RegistryArgs::local(),
            series: Vec::new(),
            slots: RwLock::default(),
            status: RwLock::default(),
        }
    }

    /// Whether a registry is configured.
    pub fn is_configured(&self) -> bool {
        self.registry.is_some()
    }

    /// The series models are loaded for.
    pub fn series(&self) -> &[(Symbol, Interval)] {
        &self.series
    }

    /// The registered model name of a series.
    pub fn model_name(&self, symbol: &Symbol, interval: Interval) -> String {
        self.names.model_name_for(symbol, interval)
    }

    /// The champion held for a series.
    pub fn champion(&self, symbol: &Symbol, interval: Interval) -> Option<Arc<RegisteredModel>> {
        self.slot(symbol, interval).and_then(|s| s.champion)
    }

    /// The challenger held for a series.
    pub fn challenger(&self, symbol: &Symbol, interval: Interval) -> Option<Arc<RegisteredModel>> {
        self.slot(symbol, interval).and_then(|s| s.challenger)
    }

    fn slot(&self, symbol: &Symbol, interval: Interval) -> Option<SeriesModels> {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        slots.get(&(symbol.clone(), interval)).cloned()
    }

    /// What the last poll saw.
    pub fn status(&self) -> RegistryStatus {
        self.status
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads every series' aliases and swaps in the versions that changed. Returns how many
    /// models were swapped; a failure leaves the models held in place and is reported by
    /// [`ServedModels::status`].
    pub async fn refresh(&self) -> usize {
        let Some(registry) = &self.registry else {
            return 0;
        };
        let mut swapped = 0;
        let mut failure = None;
        for (symbol, interval) in &self.series {
            let name = self.model_name(symbol, *interval);
            for alias in [CHAMPION, CHALLENGER] {
                match self
                    .refresh_alias(registry, symbol, *interval, &name, alias)
                    .await
                {
                    Ok(true) => swapped += 1,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(
                            model = %name, alias, error.message = %e,
                            "registry poll failed; serving the models already loaded"
                        );
                        failure = Some(e);
                    }
                }
            }
        }
        let champions = {
            let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
            slots.values().filter(|s| s.champion.is_some()).count()
        };
        let now = Utc::now();
        let mut status = self.status.write().unwrap_or_else(|p| p.into_inner());
        status.last_attempt = Some(now);
        status.champions_loaded = champions;
        match failure {
            None => {
                status.last_success = Some(now);
                status.last_error = None;
            }
            Some(e) => status.last_error = Some(e),
        }
        swapped
    }

    async fn refresh_alias(
        &self,
        registry: &ModelRegistry,
        symbol: &Symbol,
        interval: Interval,
        name: &str,
        alias: &str,
    ) -> Result<bool, String> {
        let slot = self.slot(symbol, interval).unwrap_or_default();
        let (held, other) = if alias == CHAMPION {
            (slot.champion, slot.challenger)
        } else {
            (slot.challenger, slot.champion)
        };
        let Some(version) = registry
            .get_alias(name, alias)
            .await
            .map_err(|e| error_chain(&e))?
        else {
            return Ok(false);
        };
        if held
            .as_ref()
            .is_some_and(|h| h.version.version == version.version)
        {
            return Ok(false);
        }
        // The other alias often points at the same version (a new champion is the challenger
        // just promoted): share its model rather than read the artifacts again.
        let loaded = match other.filter(|o| o.version.version == version.version) {
            Some(same) => {
                RegisteredModel::with_model(registry, name, alias, version, same.model.clone())
                    .await
            }
            None => RegisteredModel::load_version(registry, name, alias, version).await,
        }
        .map_err(|e| error_chain(&e))?;
        tracing::info!(
            model = name,
            alias,
            version = loaded.version.version,
            previous = ?held.map(|h| h.version.version),
            "model swapped in"
        );
        let loaded = Arc::new(loaded);
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        let slot = slots.entry((symbol.clone(), interval)).or_default();
        if alias == CHAMPION {
            slot.champion = Some(loaded);
        } else {
            slot.challenger = Some(loaded);
        }
        Ok(true)
    }

    /// Polls every `every` until `cancel` fires.
    pub fn spawn_polling(
        self: Arc<Self>,
        every: Duration,
        cancel: CancellationToken,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    _ = ticker.tick() => {
                        self.refresh().await;
                    }
                }
            }
        })
    }
}
