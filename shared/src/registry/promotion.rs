//! The promotion gate: which of the current champion, the new version and the naive forecast
//! holds the `champion` alias after a training run.
//!
//! All three are scored out of sample on the same most recent evaluation window; the lowest
//! MAE wins. Ties go to the naive forecast first (a model must beat "next close = last close"
//! to be served), then to the champion (a new version must beat it to replace it). When the
//! naive forecast wins and neither the champion nor the new version is naive, a naive model is
//! registered as a version and becomes champion. A champion that cannot be scored (a feature
//! the frame lacks, another horizon) is kept. `--force-promote` makes the new version champion
//! whatever the numbers.

/// What happened to the new version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// There was no champion: the new version is the first one (it beat the naive forecast).
    FirstChampion,
    /// Its MAE beat the champion's and the naive forecast's on the same window.
    Promoted,
    /// The champion's MAE was not beaten (or is unknown): the new version is `challenger` only.
    Kept,
    /// The naive forecast beat (or tied) the new version and the champion: a naive model is
    /// registered as a version and becomes champion.
    NaiveChampion,
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
            Self::NaiveChampion => "naive_champion",
            Self::Forced => "forced",
        }
    }
}

/// Which contender holds `champion` after a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Winner {
    /// The new version.
    New,
    /// The champion before the decision.
    Champion,
    /// The naive forecast, registered as a version of its own.
    Naive,
}

impl Winner {
    /// The value of the `promotion.winner` tag.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Champion => "champion",
            Self::Naive => "naive",
        }
    }
}

/// The MAEs the gate compares, all out of sample on the same most recent window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GateScores {
    /// The new version's MAE.
    pub new_mae: f64,
    /// Whether the new version is the naive model itself.
    pub new_is_naive: bool,
    /// The current champion's MAE; `None` without a champion or when it cannot be scored.
    pub champion_mae: Option<f64>,
    /// Whether the current champion is the naive model.
    pub champion_is_naive: bool,
    /// The naive forecast's MAE; `None` leaves it out of the contest.
    pub naive_mae: Option<f64>,
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
    /// Who holds `champion` after it.
    pub winner: Winner,
    /// The new version's MAE on the comparison window.
    pub new_mae: f64,
    /// The champion before the decision, if any.
    pub champion_version: Option<u64>,
    /// The champion's MAE on the same window, if known.
    pub champion_mae: Option<f64>,
    /// The naive forecast's MAE on the same window, if scored.
    pub naive_mae: Option<f64>,
    /// The version registered for the naive forecast when it won.
    pub naive_version: Option<u64>,
}

/// Tag names recorded on the new version (and on a naive version registered by the decision).
pub const TAG_DECISION: &str = "promotion.decision";
/// The new version's MAE.
pub const TAG_NEW_MAE: &str = "promotion.new_mae";
/// The champion's MAE on the same window (`none` without a champion or a number).
pub const TAG_CHAMPION_MAE: &str = "promotion.champion_mae";
/// The champion version compared against (`none` without a champion).
pub const TAG_CHAMPION_VERSION: &str = "promotion.champion_version";
/// The naive forecast's MAE on the same window (`none` when it was not scored).
pub const TAG_NAIVE_MAE: &str = "promotion.naive_mae";
/// Who holds `champion` after the decision: `new`, `champion` or `naive`.
pub const TAG_WINNER: &str = "promotion.winner";
/// The new version the decision was made for.
pub const TAG_NEW_VERSION: &str = "promotion.new_version";
/// The version registered for the naive forecast (`none` unless it won).
pub const TAG_NAIVE_VERSION: &str = "promotion.naive_version";
/// A sentence explaining the decision.
pub const TAG_REASON: &str = "promotion.reason";

impl PromotionDecision {
    /// Decides between the champion (`champion_version`, scored `scores.champion_mae`), the new
    /// `version` and the naive forecast: the lowest MAE wins, the naive forecast wins ties,
    /// then the champion. A NaN MAE never wins; a champion whose MAE is unknown is kept.
    /// `force` makes the new version champion.
    pub fn decide(
        model: &str,
        version: u64,
        scores: &GateScores,
        champion_version: Option<u64>,
        force: bool,
    ) -> Self {
        let champion_mae = champion_version.and(scores.champion_mae);
        let winner = if force {
            Winner::New
        } else {
            natural_winner(scores, champion_version.is_some(), champion_mae)
        };
        let decision = match (winner, champion_version) {
            (Winner::New, None) if !force || natural_winner(scores, false, None) == Winner::New => {
                Decision::FirstChampion
            }
            (Winner::New, _) if force => Decision::Forced,
            (Winner::New, _) => Decision::Promoted,
            (Winner::Champion, _) => Decision::Kept,
            (Winner::Naive, _) => Decision::NaiveChampion,
        };
        Self {
            model: model.to_owned(),
            version,
            decision,
            winner,
            new_mae: scores.new_mae,
            champion_version,
            champion_mae,
            naive_mae: scores.naive_mae,
            naive_version: None,
        }
    }

    /// Whether a naive model must be registered as a version to become champion.
    pub fn needs_naive_version(&self) -> bool {
        self.winner == Winner::Naive
    }

    /// Whether the new version becomes `champion`.
    pub fn makes_champion(&self) -> bool {
        self.winner == Winner::New
    }

    /// The version holding `champion` after the decision (`None` only while a naive version
    /// that won is not registered yet).
    pub fn champion_after(&self) -> Option<u64> {
        match self.winner {
            Winner::New => Some(self.version),
            Winner::Champion => self.champion_version,
            Winner::Naive => self.naive_version,
        }
    }

    /// A sentence for logs and the `promotion.reason` tag, with all three numbers.
    pub fn reason(&self) -> String {
        let number = |m: Option<f64>| m.map_or_else(|| "unknown".to_owned(), |m| m.to_string());
        let old = number(self.champion_mae);
        let naive = number(self.naive_mae);
        let champion = self
            .champion_version
            .map_or_else(|| "none".to_owned(), |v| v.to_string());
        let numbers = format!(
            "new version {} MAE {}, champion version {champion} MAE {old}, naive MAE {naive} on the same window",
            self.version, self.new_mae
        );
        match self.decision {
            Decision::FirstChampion => {
                format!(
                    "no champion yet and the naive forecast is not better: {numbers}; the new version becomes champion"
                )
            }
            Decision::Promoted => format!("the new version is best: {numbers}"),
            Decision::Kept if self.champion_mae.is_none() => {
                format!("the champion cannot be scored on this frame, so it stays: {numbers}")
            }
            Decision::Kept => format!("the champion is not beaten: {numbers}; champion unchanged"),
            Decision::NaiveChampion => format!(
                "nothing beats the naive forecast: {numbers}; a naive model{} becomes champion",
                self.naive_version
                    .map_or_else(String::new, |v| format!(" (version {v})"))
            ),
            Decision::Forced => format!("forced (--force-promote): {numbers}"),
        }
    }

    /// The version tags that record the decision.
    pub fn tags(&self) -> Vec<(String, String)> {
        let none = || "none".to_owned();
        let number = |m: Option<f64>| m.map_or_else(none, |m| m.to_string());
        let version = |v: Option<u64>| v.map_or_else(none, |v| v.to_string());
        vec![
            (TAG_DECISION.to_owned(), self.decision.as_str().to_owned()),
            (TAG_WINNER.to_owned(), self.winner.as_str().to_owned()),
            (TAG_NEW_VERSION.to_owned(), self.version.to_string()),
            (TAG_NEW_MAE.to_owned(), self.new_mae.to_string()),
            (TAG_CHAMPION_MAE.to_owned(), number(self.champion_mae)),
            (
                TAG_CHAMPION_VERSION.to_owned(),
                version(self.champion_version),
            ),
            (TAG_NAIVE_MAE.to_owned(), number(self.naive_mae)),
            (TAG_NAIVE_VERSION.to_owned(), version(self.naive_version)),
            (TAG_REASON.to_owned(), self.reason()),
        ]
    }
}

/// The winner on the numbers alone. Contenders in the order ties are broken: the naive
/// forecast (the new version or the champion when either is naive), the champion, the new
/// version; a later one wins only with a strictly lower MAE.
fn natural_winner(scores: &GateScores, has_champion: bool, champion_mae: Option<f64>) -> Winner {
    if has_champion && champion_mae.is_none_or(f64::is_nan) {
        return Winner::Champion;
    }
    let mut contenders: Vec<(Winner, f64)> = Vec::with_capacity(3);
    let champion = champion_mae.filter(|_| has_champion);
    if scores.new_is_naive {
        contenders.push((Winner::New, scores.new_mae));
        contenders.extend(champion.map(|m| (Winner::Champion, m)));
    } else {
        match (champion, scores.champion_is_naive) {
            (Some(m), true) => contenders.push((Winner::Champion, m)),
            (champion, _) => {
                contenders.extend(scores.naive_mae.map(|m| (Winner::Naive, m)));
                contenders.extend(champion.map(|m| (Winner::Champion, m)));
            }
        }
        contenders.push((Winner::New, scores.new_mae));
    }
    let mut best: Option<(Winner, f64)> = None;
    for (who, mae) in contenders {
        if mae.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, b)| mae < b) {
            best = Some((who, mae));
        }
    }
    best.map_or(
        if has_champion {
            Winner::Champion
        } else {
            Winner::New
        },
        |(who, _)| who,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(new_mae: f64, champion_mae: Option<f64>, naive_mae: Option<f64>) -> GateScores {
        GateScores {
            new_mae,
            new_is_naive: false,
            champion_mae,
            champion_is_naive: false,
            naive_mae,
        }
    }

    fn decide(champion: Option<(u64, Option<f64>)>, new_mae: f64, force: bool) -> Decision {
        let s = scores(new_mae, champion.and_then(|c| c.1), None);
        PromotionDecision::decide("m", 9, &s, champion.map(|c| c.0), force).decision
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
    fn the_lowest_of_three_wins_and_naive_wins_ties() {
        let gate = |s: GateScores, champion: Option<u64>| {
            let d = PromotionDecision::decide("m", 9, &s, champion, false);
            (d.decision, d.winner)
        };
        // No champion: the first one must beat the naive forecast.
        assert_eq!(
            gate(scores(5.0, None, Some(5.1)), None),
            (Decision::FirstChampion, Winner::New)
        );
        assert_eq!(
            gate(scores(5.0, None, Some(5.0)), None),
            (Decision::NaiveChampion, Winner::Naive)
        );
        // A champion that started losing to naive is replaced by naive.
        assert_eq!(
            gate(scores(6.0, Some(5.5), Some(5.4)), Some(1)),
            (Decision::NaiveChampion, Winner::Naive)
        );
        assert_eq!(
            gate(scores(5.0, Some(5.5), Some(5.0)), Some(1)),
            (Decision::NaiveChampion, Winner::Naive)
        );
        assert_eq!(
            gate(scores(4.9, Some(5.5), Some(5.0)), Some(1)),
            (Decision::Promoted, Winner::New)
        );
        assert_eq!(
            gate(scores(5.2, Some(5.1), Some(5.3)), Some(1)),
            (Decision::Kept, Winner::Champion)
        );
        // A naive champion is the naive contender: it stays, no new naive version.
        let naive_champion = GateScores {
            champion_is_naive: true,
            ..scores(5.0, Some(5.0), Some(5.0))
        };
        assert_eq!(
            gate(naive_champion, Some(1)),
            (Decision::Kept, Winner::Champion)
        );
        // A new naive version wins its ties, against a naive champion too.
        let new_naive = GateScores {
            new_is_naive: true,
            ..scores(5.0, Some(5.0), Some(5.0))
        };
        assert_eq!(gate(new_naive, Some(1)), (Decision::Promoted, Winner::New));
        assert_eq!(
            gate(new_naive, None),
            (Decision::FirstChampion, Winner::New)
        );
        // Forced: the new version, whatever the numbers.
        let forced = PromotionDecision::decide("m", 9, &scores(9.0, None, Some(1.0)), None, true);
        assert_eq!(
            (forced.decision, forced.winner),
            (Decision::Forced, Winner::New)
        );
        assert!(forced.makes_champion());
    }

    #[test]
    fn tags_record_all_three_numbers() {
        let d =
            PromotionDecision::decide("m", 3, &scores(7.5, Some(4.25), Some(4.5)), Some(2), false);
        let tags: std::collections::BTreeMap<_, _> = d.tags().into_iter().collect();
        assert_eq!(tags[TAG_DECISION], "kept_challenger");
        assert_eq!(tags[TAG_WINNER], "champion");
        assert_eq!(tags[TAG_NEW_MAE], "7.5");
        assert_eq!(tags[TAG_CHAMPION_MAE], "4.25");
        assert_eq!(tags[TAG_NAIVE_MAE], "4.5");
        assert_eq!(tags[TAG_CHAMPION_VERSION], "2");
        assert_eq!(tags[TAG_NEW_VERSION], "3");
        assert_eq!(tags[TAG_NAIVE_VERSION], "none");
        for number in ["4.25", "7.5", "4.5"] {
            assert!(tags[TAG_REASON].contains(number), "{}", tags[TAG_REASON]);
        }
        assert_eq!(d.champion_after(), Some(2));
        let mut naive =
            PromotionDecision::decide("m", 3, &scores(7.5, Some(8.0), Some(4.5)), Some(2), false);
        assert!(naive.needs_naive_version() && !naive.makes_champion());
        assert_eq!(naive.champion_after(), None);
        naive.naive_version = Some(4);
        assert_eq!(naive.champion_after(), Some(4));
        let tags: std::collections::BTreeMap<_, _> = naive.tags().into_iter().collect();
        assert_eq!(tags[TAG_DECISION], "naive_champion");
        assert_eq!(tags[TAG_NAIVE_VERSION], "4");
        let first = PromotionDecision::decide("m", 1, &scores(2.0, Some(1.0), None), None, false);
        assert_eq!(first.champion_mae, None);
        assert!(first.makes_champion());
    }
}
