//! BioPhi's rules for counting a 9-mer as human in the full OASis database
//! (`biophi/humanization/methods/humanness.py`: `get_chain_oasis_peptides`, `get_oas_hits`,
//! `PeptideHumanness.is_human`), kept beside the rest of the humanness code; the store's
//! `oasis_db` only runs the queries these rules describe.
//!
//! - a heavy chain is judged against heavy-chain subjects, kappa and lambda against
//!   light-chain subjects (`"Heavy" if chain.is_heavy_chain() else "Light"`);
//! - only subjects with at least [`MIN_COMPLETE_CHAINS`] complete chains of that type count,
//!   in the denominator and among the hits;
//! - hits from the [`EXCLUDED_STUDY`] are dropped (in SQL `StudyPath <> 'Corcoran_2016'`,
//!   which also drops subjects whose StudyPath is NULL), but its subjects stay in the
//!   denominator, which does not filter on the study;
//! - the number of subjects is the number of `peptides` rows that survive the filters
//!   (`len(oas_hits)`), and a peptide is human when that number divided by the denominator
//!   is `>=` the threshold fraction ([`is_human`]).

use std::fmt;
use std::str::FromStr;

/// Subjects need at least this many complete chains of the chain's type to count.
pub const MIN_COMPLETE_CHAINS: u32 = 10_000;

/// The study whose hits BioPhi drops (its subjects still count in the denominator).
pub const EXCLUDED_STUDY: &str = "Corcoran_2016";

/// BioPhi's `PeptideHumanness.is_human`: `fraction_oas_subjects >= min_fraction_subjects`,
/// the fraction computed in f64 as Python does. No qualifying subjects: nothing is human.
pub fn is_human(hits: u64, subjects: u64, threshold: OasisThreshold) -> bool {
    subjects > 0 && hits as f64 / subjects as f64 >= threshold.min_fraction_subjects()
}

/// A threshold name that is none of BioPhi's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown OASis threshold {0:?}: use loose (1 %), relaxed (10 %), medium (50 %) or strict (90 %)"
)]
pub struct UnknownThreshold(pub String);

/// BioPhi's named thresholds (`OASIS_MIN_SUBJECTS_THRESHOLDS`): the fraction of
/// subjects a peptide must occur in to be human.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OasisThreshold {
    /// 1 % of subjects.
    Loose,
    /// 10 % of subjects: BioPhi's default, and the embedded set's.
    Relaxed,
    /// 50 % of subjects.
    Medium,
    /// 90 % of subjects.
    Strict,
}

impl OasisThreshold {
    pub const ALL: [OasisThreshold; 4] = [
        OasisThreshold::Loose,
        OasisThreshold::Relaxed,
        OasisThreshold::Medium,
        OasisThreshold::Strict,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OasisThreshold::Loose => "loose",
            OasisThreshold::Relaxed => "relaxed",
            OasisThreshold::Medium => "medium",
            OasisThreshold::Strict => "strict",
        }
    }

    /// The minimum fraction as a whole percentage, for messages.
    pub fn percent(self) -> u32 {
        match self {
            OasisThreshold::Loose => 1,
            OasisThreshold::Relaxed => 10,
            OasisThreshold::Medium => 50,
            OasisThreshold::Strict => 90,
        }
    }

    /// The minimum fraction of subjects, exactly BioPhi's literals so the `>=`
    /// comparison agrees with it at the boundary (e.g. 1 of 10 subjects is relaxed).
    pub fn min_fraction_subjects(self) -> f64 {
        match self {
            OasisThreshold::Loose => 0.01,
            OasisThreshold::Relaxed => 0.1,
            OasisThreshold::Medium => 0.5,
            OasisThreshold::Strict => 0.9,
        }
    }
}

impl fmt::Display for OasisThreshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OasisThreshold {
    type Err = UnknownThreshold;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        OasisThreshold::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| UnknownThreshold(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_names_parse() {
        for threshold in OasisThreshold::ALL {
            assert_eq!(
                threshold.name().parse::<OasisThreshold>().ok(),
                Some(threshold)
            );
        }
        assert!("lenient".parse::<OasisThreshold>().is_err());
    }

    /// BioPhi's `>=` on its own literals: 1 of 10 subjects is relaxed, 1 of 11 is not.
    #[test]
    fn the_threshold_is_inclusive_at_biophi_literals() {
        assert!(is_human(1, 10, OasisThreshold::Relaxed));
        assert!(!is_human(1, 11, OasisThreshold::Relaxed));
        assert!(is_human(9, 10, OasisThreshold::Strict));
        assert!(is_human(1, 100, OasisThreshold::Loose));
        assert!(!is_human(49, 100, OasisThreshold::Medium));
        assert!(!is_human(0, 0, OasisThreshold::Loose));
    }
}
