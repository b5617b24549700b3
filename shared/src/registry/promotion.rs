//! The promotion gate: whether a new model version takes the `champion` alias.

/// What happened to the new version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// There was no champion: the new version is the first one.
    FirstChampion,
    /// Its MAE beat the champion's on the same window.
    Promoted,
    /// It was not better (or the champion's MAE is unknown): `challenger` only.
    Kept,
    /// `--force-promote`: champion regardless of the numbers.
    Forced,
}

impl Decision {
    /// The value of the `promotion.decision` tag.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FirstChampion => "first_champion",
            Self::Promoted => "promoted",
            Self::Kept => "kept_challenger",
            Self::Forced => "forced",
        }
    }
}

/// A promotion decision with the numbers it was made on.
#[derive(Clone, Debug, PartialEq)]
pub struct PromotionDecision {
    /// Registered model name.
    pub model: String,
    /// The new version.
    pub version: u64,
    /// The outcome.
    pub decision: Decision,
    /// The new version's MAE on the comparison window.
    pub new_mae: f64,
    /// The champion before the decision, if any.
    pub champion_version: Option<u64>,
    /// The champion's MAE on the same window, if known.
    pub champion_mae: Option<f64>,
}

/// Tag names recorded on the new version.
pub const TAG_DECISION: &str = "promotion.decision";
/// The new version's MAE.
pub const TAG_NEW_MAE: &str = "promotion.new_mae";
/// The champion's MAE on the same window (`none` without a champion or a number).
pub const TAG_CHAMPION_MAE: &str = "promotion.champion_mae";
/// The champion version compared against (`none` without a champion).
pub const TAG_CHAMPION_VERSION: &str = "promotion.champion_version";
/// A sentence explaining the decision.
pub const TAG_REASON: &str = "promotion.reason";

impl PromotionDecision {
    /// Decides: no champion → first champion; `force` → forced; a strictly lower MAE than the
    /// champion's → promoted; anything else (equal, worse, NaN, unknown champion MAE) → kept.
    pub fn decide(
        model: &str,
        version: u64,
        new_mae: f64,
        champion_version: Option<u64>,
        champion_mae: Option<f64>,
        force: bool,
    ) -> Self {
        let decision = match (champion_version, champion_mae) {
            (None, _) => Decision::FirstChampion,
            _ if force => Decision::Forced,
            (Some(_), Some(old)) if new_mae < old => Decision::Promoted,
            _ => Decision::Kept,
        };
        Self {
            model: model.to_owned(),
            version,
            decision,
            new_mae,
            champion_version,
            champion_mae: champion_version.and(champion_mae),
        }
    }

    /// Whether the new version becomes `champion`.
    pub fn makes_champion(&self) -> bool {
        self.decision != Decision::Kept
    }

    /// A sentence for logs and the `promotion.reason` tag.
    pub fn reason(&self) -> String {
        let old = self
            .champion_mae
            .map_or_else(|| "unknown".to_owned(), |m| m.to_string());
        let champion = self
            .champion_version
            .map_or_else(|| "none".to_owned(), |v| v.to_string());
        match self.decision {
            Decision::FirstChampion => format!(
                "no champion yet: version {} (MAE {}) becomes champion",
                self.version, self.new_mae
            ),
            Decision::Promoted => format!(
                "MAE {} beats champion version {champion}'s {old} on the same window",
                self.new_mae
            ),
            Decision::Kept => format!(
                "MAE {} does not beat champion version {champion}'s {old} on the same window; champion unchanged",
                self.new_mae
            ),
            Decision::Forced => format!(
                "forced (--force-promote): MAE {} against champion version {champion}'s {old}",
                self.new_mae
            ),
        }
    }

    /// The version tags that record the decision.
    pub fn tags(&self) -> Vec<(String, String)> {
        let none = || "none".to_owned();
        vec![
            (TAG_DECISION.to_owned(), self.decision.as_str().to_owned()),
            (TAG_NEW_MAE.to_owned(), self.new_mae.to_string()),
            (
                TAG_CHAMPION_MAE.to_owned(),
                self.champion_mae.map_or_else(none, |m| m.to_string()),
            ),
            (
                TAG_CHAMPION_VERSION.to_owned(),
                self.champion_version.map_or_else(none, |v| v.to_string()),
            ),
            (TAG_REASON.to_owned(), self.reason()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(champion: Option<(u64, Option<f64>)>, new_mae: f64, force: bool) -> Decision {
        PromotionDecision::decide(
            "m",
            9,
            new_mae,
            champion.map(|c| c.0),
            champion.and_then(|c| c.1),
            force,
        )
        .decision
    }

    #[test]
    fn the_gate_needs_a_strictly_better_mae() {
        assert_eq!(decide(None, 5.0, false), Decision::FirstChampion);
        assert_eq!(decide(Some((1, Some(4.0))), 3.9, false), Decision::Promoted);
        assert_eq!(decide(Some((1, Some(4.0))), 4.0, false), Decision::Kept);
        assert_eq!(decide(Some((1, Some(4.0))), 7.0, false), Decision::Kept);
        assert_eq!(
            decide(Some((1, Some(4.0))), f64::NAN, false),
            Decision::Kept
        );
        assert_eq!(decide(Some((1, None)), 1.0, false), Decision::Kept);
        assert_eq!(decide(Some((1, Some(4.0))), 7.0, true), Decision::Forced);
    }

    #[test]
    fn tags_record_both_numbers() {
        let d = PromotionDecision::decide("m", 3, 7.5, Some(2), Some(4.25), false);
        let tags: std::collections::BTreeMap<_, _> = d.tags().into_iter().collect();
        assert_eq!(tags[TAG_DECISION], "kept_challenger");
        assert_eq!(tags[TAG_NEW_MAE], "7.5");
        assert_eq!(tags[TAG_CHAMPION_MAE], "4.25");
        assert_eq!(tags[TAG_CHAMPION_VERSION], "2");
        assert!(tags[TAG_REASON].contains("4.25") && tags[TAG_REASON].contains("7.5"));
        let first = PromotionDecision::decide("m", 1, 2.0, None, Some(1.0), false);
        assert_eq!(first.champion_mae, None);
        assert!(first.makes_champion());
    }
}
