//! The pipeline: one variant in, one result per strategy out.
//!
//! Every value a result carries is computed from the humanized chains themselves (their own
//! numbering, liabilities, OASis and germline identity), so a result can be read without its
//! parental variant, and the parental report is computed by the same code.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

use super::chain::{AMINO_ACIDS, ChainType};
use super::germlines::{Acceptor, Germlines, germline_content};
use super::grafting::{
    Backmutations, graft_onto, interface_positions, is_vernier, is_vhh_hallmark, mutation_list,
};
use super::humanness::{
    ChainOasis, HumanPeptides, OasisIdentity, OasisScore, PeptideError, PercentileTable,
    oasis_percentile, oasis_score, pooled_oasis_identity,
};
use super::liabilities::{self, Liabilities};
use super::mitigation::{self, MitigationHint};
use super::numbering::{NumberedChain, Position, Scheme, is_kabat_cdr, number, number_as};
use super::sapiens::{SapiensError, SapiensModel};
use super::sequence::{ChainError, Expected, clean};

/// A humanization strategy; the caller passes the list to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    CdrGrafting,
    CdrGraftingVernier,
    Sapiens,
    /// BioPhi's CDR grafting followed by Sapiens passes on the grafted chain
    /// (`CDRGraftingHumanizationParams.sapiens_iterations`).
    CdrGraftingSapiens,
}

impl Strategy {
    /// What runs when nobody chose: BioPhi's three methods at their defaults.
    pub const DEFAULT: [Strategy; 3] = [
        Strategy::CdrGrafting,
        Strategy::CdrGraftingVernier,
        Strategy::Sapiens,
    ];

    /// Every strategy the engine knows.
    pub const ALL: [Strategy; 4] = [
        Strategy::CdrGrafting,
        Strategy::CdrGraftingVernier,
        Strategy::Sapiens,
        Strategy::CdrGraftingSapiens,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Strategy::CdrGrafting => "cdr_grafting",
            Strategy::CdrGraftingVernier => "cdr_grafting_vernier",
            Strategy::Sapiens => "sapiens",
            Strategy::CdrGraftingSapiens => "cdr_grafting_sapiens",
        }
    }

    /// Parses a comma-separated list (`cdr_grafting,cdr_grafting_vernier`), keeping the order
    /// given and refusing duplicates and unknown names.
    pub fn parse_list(list: &str) -> Result<Vec<Strategy>, String> {
        let mut strategies = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let strategy: Strategy = name.parse()?;
            if strategies.contains(&strategy) {
                return Err(format!("strategy {name:?} is listed twice"));
            }
            strategies.push(strategy);
        }
        if strategies.is_empty() {
            return Err("no strategy given".into());
        }
        Ok(strategies)
    }
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|strategy| strategy.name() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Strategy::ALL.iter().map(|s| s.name()).collect();
                format!("unknown strategy {s:?}; known: {}", known.join(", "))
            })
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// BioPhi's Sapiens options (`SapiensHumanizationParams`): how many passes, and what the
/// model may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct SapiensOptions {
    /// Passes of the model, 1–5; pass k scores the chain pass k−1 produced.
    pub iterations: u8,
    /// Let the model change the Kabat CDRs too (by default they stay parental).
    pub humanize_cdrs: bool,
    /// Keep the parental residue at every Vernier position after each pass.
    pub backmutate_vernier: bool,
    /// At most this many mutations per chain: after each pass only the mutations the model
    /// prefers most strongly over the parental residue are kept (`None`: no budget).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_mutations: Option<u16>,
    /// Keep the parental residue at the VHH hallmark positions (Kabat H37, H44, H45, H47;
    /// AbNumber's `backmutate_vhh_hallmark`), in the graft and after each Sapiens pass.
    pub backmutate_vhh_hallmark: bool,
}

impl Default for SapiensOptions {
    fn default() -> Self {
        SapiensOptions {
            iterations: 1,
            humanize_cdrs: false,
            backmutate_vernier: false,
            max_mutations: None,
            backmutate_vhh_hallmark: false,
        }
    }
}

/// The options a design ran with, as its result (and a job's `inputs`) report them: exactly the
/// options its strategy takes, each with the value used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct DesignOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub humanize_cdrs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backmutate_vernier: Option<bool>,
    /// Absent when the design has no budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_mutations: Option<u16>,
    /// Sapiens passes after a graft (0: the graft alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sapiens_iterations: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backmutate_vhh_hallmark: Option<bool>,
}

/// The most Sapiens passes a design may ask for.
pub const MAX_SAPIENS_ITERATIONS: u8 = 5;
/// The largest mutation budget (longer than any variable domain).
pub const MAX_MUTATION_BUDGET: u16 = 160;

/// A strategy with its options: what one design of a job (or of `veneer humanize`) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StrategySpec {
    pub strategy: Strategy,
    /// Meaningful for `sapiens` only.
    pub sapiens: SapiensOptions,
}

impl From<Strategy> for StrategySpec {
    fn from(strategy: Strategy) -> Self {
        let sapiens = match strategy {
            // BioPhi's grafting default keeps the Vernier zone, and its Sapiens passes keep it too.
            Strategy::CdrGraftingSapiens => SapiensOptions {
                backmutate_vernier: true,
                ..SapiensOptions::default()
            },
            // A graft runs no Sapiens pass unless `sapiens_iterations` asks for some.
            Strategy::CdrGrafting => SapiensOptions {
                iterations: 0,
                ..SapiensOptions::default()
            },
            Strategy::CdrGraftingVernier => SapiensOptions {
                iterations: 0,
                backmutate_vernier: true,
                ..SapiensOptions::default()
            },
            Strategy::Sapiens => SapiensOptions::default(),
        };
        StrategySpec { strategy, sapiens }
    }
}

impl StrategySpec {
    /// The option names a strategy takes.
    pub fn option_names(strategy: Strategy) -> &'static [&'static str] {
        match strategy {
            Strategy::Sapiens => &[
                "iterations",
                "humanize_cdrs",
                "backmutate_vernier",
                "max_mutations",
                "backmutate_vhh_hallmark",
            ],
            Strategy::CdrGraftingSapiens => &[
                "iterations",
                "backmutate_vernier",
                "backmutate_vhh_hallmark",
            ],
            Strategy::CdrGrafting | Strategy::CdrGraftingVernier => {
                &["sapiens_iterations", "backmutate_vhh_hallmark"]
            }
        }
    }

    /// Builds a spec from `name` and `(option, value)` pairs given as text (the command line's
    /// `sapiens:iterations=2,humanize_cdrs=true`), refusing unknown options and bad values.
    pub fn with_options<'a>(
        strategy: Strategy,
        options: impl IntoIterator<Item = (&'a str, OptionValue)>,
    ) -> Result<StrategySpec, String> {
        let mut spec = StrategySpec::from(strategy);
        let known = StrategySpec::option_names(strategy);
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in options {
            if !known.contains(&name) {
                return Err(format!(
                    "unknown option {name:?} for strategy {strategy}; known: {}",
                    known.join(", ")
                ));
            }
            if seen.contains(&name) {
                return Err(format!(
                    "option {name:?} of strategy {strategy} is given twice"
                ));
            }
            seen.push(name);
            match name {
                "iterations" => {
                    let n = value
                        .integer()
                        .filter(|n| (1..=MAX_SAPIENS_ITERATIONS as i64).contains(n));
                    spec.sapiens.iterations = n.ok_or_else(|| {
                        format!("option iterations of strategy {strategy} must be a whole number from 1 to {MAX_SAPIENS_ITERATIONS}")
                    })? as u8;
                }
                "sapiens_iterations" => {
                    let n = value
                        .integer()
                        .filter(|n| (0..=MAX_SAPIENS_ITERATIONS as i64).contains(n));
                    spec.sapiens.iterations = n.ok_or_else(|| {
                        format!("option sapiens_iterations of strategy {strategy} must be a whole number from 0 to {MAX_SAPIENS_ITERATIONS}")
                    })? as u8;
                }
                "max_mutations" => {
                    let n = value
                        .integer()
                        .filter(|n| (0..=MAX_MUTATION_BUDGET as i64).contains(n));
                    spec.sapiens.max_mutations = Some(n.ok_or_else(|| {
                        format!("option max_mutations of strategy {strategy} must be a whole number from 0 to {MAX_MUTATION_BUDGET}")
                    })? as u16);
                }
                "humanize_cdrs" | "backmutate_vernier" | "backmutate_vhh_hallmark" => {
                    let flag = value.boolean().ok_or_else(|| {
                        format!("option {name} of strategy {strategy} must be true or false")
                    })?;
                    match name {
                        "humanize_cdrs" => spec.sapiens.humanize_cdrs = flag,
                        "backmutate_vernier" => spec.sapiens.backmutate_vernier = flag,
                        _ => spec.sapiens.backmutate_vhh_hallmark = flag,
                    }
                }
                _ => unreachable!("option names are checked above"),
            }
        }
        if spec.sapiens.humanize_cdrs && spec.sapiens.backmutate_vernier {
            // BioPhi refuses the same pair ("Cannot backmutate Vernier regions when humanizing CDRs").
            return Err(format!(
                "strategy {strategy}: humanize_cdrs and backmutate_vernier cannot both be true"
            ));
        }
        Ok(spec)
    }

    /// Parses `name` or `name:option=value,option=value`.
    pub fn parse(text: &str) -> Result<StrategySpec, String> {
        let (name, options) = text.split_once(':').unwrap_or((text, ""));
        let strategy: Strategy = name.trim().parse()?;
        let mut pairs = Vec::new();
        for pair in options.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                format!("option {pair:?} of strategy {strategy} needs a value: name=value")
            })?;
            pairs.push((key.trim(), OptionValue::Text(value.trim().to_string())));
        }
        StrategySpec::with_options(strategy, pairs)
    }

    /// The options as a result reports them: those the strategy takes, with their values.
    pub fn options(&self) -> DesignOptions {
        let o = self.sapiens;
        let mut options = DesignOptions::default();
        for &name in StrategySpec::option_names(self.strategy) {
            match name {
                "iterations" => options.iterations = Some(o.iterations),
                "humanize_cdrs" => options.humanize_cdrs = Some(o.humanize_cdrs),
                "backmutate_vernier" => options.backmutate_vernier = Some(o.backmutate_vernier),
                "max_mutations" => options.max_mutations = o.max_mutations,
                "sapiens_iterations" => options.sapiens_iterations = Some(o.iterations),
                _ => options.backmutate_vhh_hallmark = Some(o.backmutate_vhh_hallmark),
            }
        }
        options
    }
}

/// An option's value as it arrived: text from the command line, or a JSON number or boolean.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    Text(String),
    Integer(i64),
    Boolean(bool),
    Other,
}

impl OptionValue {
    fn integer(&self) -> Option<i64> {
        match self {
            OptionValue::Integer(n) => Some(*n),
            OptionValue::Text(t) => t.parse().ok(),
            _ => None,
        }
    }

    fn boolean(&self) -> Option<bool> {
        match self {
            OptionValue::Boolean(b) => Some(*b),
            OptionValue::Text(t) => match t.as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A variant's chain that could not be used, naming the chain (`VH` or `VL`).
#[derive(Debug, Clone, PartialEq)]
pub struct VariantError {
    pub chain: &'static str,
    pub error: ChainError,
}

impl fmt::Display for VariantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.chain, self.error)
    }
}

impl std::error::Error for VariantError {}

/// A validated, numbered antibody: a heavy chain and, unless single-domain, a light chain.
#[derive(Debug, Clone)]
pub struct Variant {
    pub vh: NumberedChain,
    pub vl: Option<NumberedChain>,
    /// Each chain's numberings and closest human germlines, computed once and shared by the
    /// parental report and every strategy.
    facts: (ChainFacts, Option<ChainFacts>),
    /// Sapiens probabilities already computed for this variant's chains and designs: the
    /// parental chain is every Sapiens design's first input, a graft is both a design and the
    /// start of `cdr_grafting_sapiens`, and a design's own chain is scored for its report.
    predictions: Predictions,
}

/// A small memo of Sapiens forward passes, keyed by model and residues.
#[derive(Default)]
struct Predictions(Mutex<Vec<Prediction>>);

type Prediction = (bool, Vec<u8>, Arc<Vec<[f32; 20]>>);

/// Passes kept per variant: more than five designs of a few passes each need.
const PREDICTIONS_KEPT: usize = 48;

impl Predictions {
    /// The model's probabilities for `residues` (the VH model when `heavy`).
    fn get(&self, heavy: bool, residues: &[u8]) -> Result<Arc<Vec<[f32; 20]>>, SapiensError> {
        let lock = || self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, _, rows)) = lock()
            .iter()
            .find(|(h, r, _)| *h == heavy && r.as_slice() == residues)
        {
            return Ok(Arc::clone(rows));
        }
        // Not held during the pass: two designs of one variant may run at once.
        let model = if heavy {
            SapiensModel::vh()
        } else {
            SapiensModel::vl()
        };
        let rows = Arc::new(model.predict(residues)?);
        let mut kept = lock();
        if kept.len() >= PREDICTIONS_KEPT {
            kept.remove(0);
        }
        kept.push((heavy, residues.to_vec(), Arc::clone(&rows)));
        Ok(rows)
    }
}

impl Clone for Predictions {
    /// A clone starts empty: the memo is a cache, not state.
    fn clone(&self) -> Self {
        Predictions::default()
    }
}

impl fmt::Debug for Predictions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kept = self.0.lock().map_or(0, |k| k.len());
        write!(f, "Predictions({kept} kept)")
    }
}

impl Variant {
    /// Cleans, numbers and checks both chains; each must be the kind its field names.
    pub fn new(vh: &str, vl: Option<&str>) -> Result<Variant, VariantError> {
        let vh =
            prepare(vh, Expected::Heavy).map_err(|error| VariantError { chain: "VH", error })?;
        let vl = vl
            .map(|vl| {
                prepare(vl, Expected::Light).map_err(|error| VariantError { chain: "VL", error })
            })
            .transpose()?;
        let facts = (
            ChainFacts::closest(&vh),
            vl.as_ref().map(ChainFacts::closest),
        );
        Ok(Variant {
            vh,
            vl,
            facts,
            predictions: Predictions::default(),
        })
    }
}

fn prepare(raw: &str, expected: Expected) -> Result<NumberedChain, ChainError> {
    let chain = number(&clean(raw)?)?;
    let heavy = chain.chain_type.is_heavy();
    if heavy != (expected == Expected::Heavy) {
        return Err(ChainError::WrongChainType {
            expected,
            found: chain.chain_type.letter(),
        });
    }
    Ok(chain)
}

/// A value per chain; `vl` is `null` for a single-domain antibody.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerChain<T> {
    pub vh: T,
    pub vl: Option<T>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OasisPercentile {
    pub vh: Option<f64>,
    pub vl: Option<f64>,
    pub antibody: Option<f64>,
}

/// A value per chain and for the whole antibody (both chains pooled as BioPhi pools them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pooled<T> {
    pub vh: T,
    pub vl: Option<T>,
    pub antibody: T,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GermlinePair {
    pub v: String,
    pub j: String,
}

/// What the engine reports about one antibody (parental or humanized).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AntibodyReport {
    pub liabilities: Liabilities,
    pub oasis_score: Option<OasisScore>,
    pub oasis_identity: OasisIdentity,
    /// How many of each chain's overlapping 9-mers are not human (what OASis identity counts
    /// against).
    pub oasis_non_human_peptides: Pooled<usize>,
    /// Each identity as BioPhi's percentile among therapeutic antibodies (0–1).
    pub oasis_percentile: OasisPercentile,
    /// Per residue, in sequence order, the fraction of the 9-mers covering it that are human
    /// (what `oasis_score` summarises), to 4 decimals (each is k/n with n <= 9, so nothing a
    /// plot shows is lost); empty for a chain shorter than 9 residues.
    pub oasis_residue_scores: PerChain<Vec<f64>>,
    /// The Kabat numbering of each chain, `[label, residue]` in sequence order, as `veneer
    /// number` prints it: what liabilities and mutations are labelled by, so an alignment can
    /// be drawn from the report alone.
    pub numbering: PerChain<Vec<(String, char)>>,
    pub germlines: PerChain<GermlinePair>,
    /// The fraction of residues equal to the closest human germline at their IMGT position
    /// (BioPhi's `get_germline_content`), per chain and pooled over both chains' residues.
    pub germline_content: Pooled<f64>,
    /// Sapiens' mean probability of the chain's own residues (how natural the model finds
    /// the chain as it stands), per chain and over all residues; `null` for a chain longer
    /// than the model takes.
    pub sapiens_score: Pooled<Option<f64>>,
    /// For each liability in a CDR, the substitutions Sapiens accepts that remove it
    /// (`engine::mitigation`); reported, never applied.
    pub liability_hints: Vec<MitigationHint>,
}

/// One strategy's result, as a completed job and `veneer humanize` hold it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StrategyResult {
    pub strategy: Strategy,
    /// The options the design ran with.
    pub options: DesignOptions,
    pub humanized_vh: String,
    pub humanized_vl: Option<String>,
    pub mutations: PerChain<usize>,
    pub mutation_list: PerChain<Vec<String>>,
    /// The mutations at Vernier positions (Foote & Winter), a subset of `mutation_list`.
    pub vernier_mutations: PerChain<Vec<String>>,
    /// The mutations at VH/VL interface positions (`grafting::interface_positions`), a
    /// subset of `mutation_list`.
    pub interface_mutations: PerChain<Vec<String>>,
    /// 1 for the best design of the antibody (see `rank_designs`); 0 until ranked.
    pub rank: usize,
    #[serde(flatten)]
    pub report: AntibodyReport,
}

/// Ranks an antibody's designs (sets `rank`, 1 = best) by a stable rule: the higher OASis
/// identity of the whole antibody (pooled 9-mers) first; on a tie, fewer mutations (both
/// chains); then the design listed first. A design without an identity ranks after those with
/// one. The list's order is left as it is.
pub fn rank_designs(results: &mut [StrategyResult]) {
    let mut order: Vec<usize> = (0..results.len()).collect();
    let key = |r: &StrategyResult| {
        (
            r.report
                .oasis_identity
                .antibody
                .unwrap_or(f64::NEG_INFINITY),
            r.mutations.vh + r.mutations.vl.unwrap_or(0),
        )
    };
    order.sort_by(|&a, &b| {
        let (ia, ma) = key(&results[a]);
        let (ib, mb) = key(&results[b]);
        ib.total_cmp(&ia).then(ma.cmp(&mb)).then(a.cmp(&b))
    });
    for (place, index) in order.into_iter().enumerate() {
        results[index].rank = place + 1;
    }
}

/// Something the engine itself could not do on a valid variant (never a user error).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineError(pub String);

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EngineError {}

/// One chain with everything the report needs: both numberings and its germline reference.
#[derive(Debug, Clone)]
struct ChainFacts {
    chain_type: ChainType,
    kabat: Vec<(Position, u8)>,
    imgt: Vec<(Position, u8)>,
    residues: Vec<u8>,
    acceptor: Acceptor,
}

impl ChainFacts {
    /// Facts of a chain against its own closest human germlines.
    fn closest(chain: &NumberedChain) -> ChainFacts {
        let imgt: Vec<(Position, u8)> = chain.numbered(Scheme::Imgt).collect();
        let acceptor = Germlines::human().acceptor(chain.chain_type, &imgt);
        ChainFacts {
            chain_type: chain.chain_type,
            kabat: chain.numbered(Scheme::Kabat).collect(),
            imgt,
            residues: chain.residues.clone(),
            acceptor,
        }
    }
}

/// The engine with its humanness reference; cheap to share across threads.
pub struct Humanizer<'a> {
    peptides: &'a dyn HumanPeptides,
}

impl<'a> Humanizer<'a> {
    pub fn new(peptides: &'a dyn HumanPeptides) -> Self {
        Humanizer { peptides }
    }

    /// The parental variant's own report, so a user sees what humanization changed.
    pub fn parental(&self, variant: &Variant) -> Result<AntibodyReport, EngineError> {
        let (vh, vl) = &variant.facts;
        self.report(&variant.predictions, vh, vl.as_ref())
    }

    /// Runs each strategy (or design) in turn.
    pub fn humanize<S: Into<StrategySpec> + Copy>(
        &self,
        variant: &Variant,
        strategies: &[S],
    ) -> Result<Vec<StrategyResult>, EngineError> {
        let mut results = strategies
            .iter()
            .map(|&s| self.run(variant, s))
            .collect::<Result<Vec<_>, _>>()?;
        rank_designs(&mut results);
        Ok(results)
    }

    /// Runs one strategy (a bare `Strategy` runs with its default options).
    pub fn run(
        &self,
        variant: &Variant,
        spec: impl Into<StrategySpec>,
    ) -> Result<StrategyResult, EngineError> {
        let spec = spec.into();
        let strategy = spec.strategy;
        let (parental_vh, parental_vl) = &variant.facts;
        let humanize_chain =
            |chain: &NumberedChain, parental: &ChainFacts| -> Result<ChainFacts, EngineError> {
                let options = spec.sapiens;
                let hallmark = options.backmutate_vhh_hallmark;
                if strategy == Strategy::Sapiens {
                    return sapiens_chain(&variant.predictions, chain, options);
                }
                // Every graft keeps the Vernier zone as its strategy says; Sapiens passes on it
                // (BioPhi's `sapiens_iterations`) keep the same positions.
                let vernier = match strategy {
                    Strategy::CdrGrafting => false,
                    Strategy::CdrGraftingVernier => true,
                    _ => options.backmutate_vernier,
                };
                let graft = graft_chain(chain, &parental.acceptor, vernier, hallmark)?;
                if options.iterations == 0 {
                    return Ok(graft);
                }
                let passes = SapiensOptions {
                    backmutate_vernier: vernier,
                    humanize_cdrs: false,
                    max_mutations: None,
                    ..options
                };
                sapiens_on(&variant.predictions, chain.chain_type, &graft.kabat, passes)
            };
        let vh = humanize_chain(&variant.vh, parental_vh)?;
        let vl = variant
            .vl
            .as_ref()
            .zip(parental_vl.as_ref())
            .map(|(chain, parental)| humanize_chain(chain, parental))
            .transpose()?;

        let mutations_of = |parental: &ChainFacts, humanized: &ChainFacts| {
            mutation_list(parental.chain_type, &parental.kabat, &humanized.kabat)
        };
        let list_vh = mutations_of(parental_vh, &vh);
        let list_vl = parental_vl
            .as_ref()
            .zip(vl.as_ref())
            .map(|(p, h)| mutations_of(p, h));
        Ok(StrategyResult {
            strategy,
            options: spec.options(),
            humanized_vh: text(&vh.residues),
            humanized_vl: vl.as_ref().map(|c| text(&c.residues)),
            mutations: PerChain {
                vh: list_vh.len(),
                vl: list_vl.as_ref().map(Vec::len),
            },
            vernier_mutations: PerChain {
                vh: at_vernier(vh.chain_type, &list_vh),
                vl: vl
                    .as_ref()
                    .zip(list_vl.as_ref())
                    .map(|(c, list)| at_vernier(c.chain_type, list)),
            },
            interface_mutations: PerChain {
                vh: at_interface(parental_vh, &list_vh),
                vl: parental_vl
                    .as_ref()
                    .zip(list_vl.as_ref())
                    .map(|(p, list)| at_interface(p, list)),
            },
            mutation_list: PerChain {
                vh: list_vh,
                vl: list_vl,
            },
            rank: 0,
            report: self.report(&variant.predictions, &vh, vl.as_ref())?,
        })
    }

    /// The report of one antibody; a humanness source that cannot answer (BioPhi's database)
    /// fails it, as a result built on a guess would understate humanness.
    fn report(
        &self,
        predictions: &Predictions,
        vh: &ChainFacts,
        vl: Option<&ChainFacts>,
    ) -> Result<AntibodyReport, EngineError> {
        let liabilities = {
            let heavy = liabilities::find(vh.chain_type, &vh.kabat);
            match vl {
                Some(vl) => heavy.merged(liabilities::find(vl.chain_type, &vl.kabat)),
                None => heavy,
            }
        };
        let failed = |e: PeptideError| EngineError(format!("the OASis peptide source failed: {e}"));
        let oasis_vh =
            ChainOasis::new(&vh.residues, vh.chain_type, self.peptides).map_err(failed)?;
        let oasis_vl = vl
            .map(|c| ChainOasis::new(&c.residues, c.chain_type, self.peptides))
            .transpose()
            .map_err(failed)?;
        let oasis: Vec<&ChainOasis> = std::iter::once(&oasis_vh)
            .chain(oasis_vl.as_ref())
            .collect();
        let germlines = |c: &ChainFacts| GermlinePair {
            v: c.acceptor.v_gene.to_string(),
            j: c.acceptor.j_gene.to_string(),
        };
        let content = |c: &ChainFacts| germline_content(&c.imgt, &c.acceptor.merged);
        let non_human = |c: &ChainOasis| c.num_peptides() - c.num_human_peptides();
        let scored_vh = ScoredChain::new(predictions, vh)?;
        let scored_vl = vl.map(|c| ScoredChain::new(predictions, c)).transpose()?;
        let scored: Vec<&ScoredChain> = std::iter::once(&scored_vh)
            .chain(scored_vl.as_ref())
            .collect();
        Ok(AntibodyReport {
            liabilities,
            oasis_score: oasis_score(&oasis),
            oasis_identity: OasisIdentity {
                vh: oasis_vh.identity(),
                vl: oasis_vl.as_ref().and_then(ChainOasis::identity),
                antibody: pooled_oasis_identity(&oasis),
            },
            oasis_percentile: {
                let percent = self.peptides.threshold_percent();
                let place = |table, identity: Option<f64>| {
                    identity.and_then(|i| oasis_percentile(table, i, percent))
                };
                OasisPercentile {
                    vh: place(PercentileTable::Heavy, oasis_vh.identity()),
                    vl: place(
                        PercentileTable::Light,
                        oasis_vl.as_ref().and_then(ChainOasis::identity),
                    ),
                    antibody: place(PercentileTable::Mean, pooled_oasis_identity(&oasis)),
                }
            },
            oasis_non_human_peptides: Pooled {
                vh: non_human(&oasis_vh),
                vl: oasis_vl.as_ref().map(non_human),
                antibody: oasis.iter().map(|c| non_human(c)).sum(),
            },
            oasis_residue_scores: PerChain {
                vh: four_decimals(oasis_vh.residue_scores()),
                vl: oasis_vl.as_ref().map(|c| four_decimals(c.residue_scores())),
            },
            numbering: PerChain {
                vh: kabat_labels(vh),
                vl: vl.map(kabat_labels),
            },
            germlines: PerChain {
                vh: germlines(vh),
                vl: vl.map(germlines),
            },
            germline_content: Pooled {
                vh: content(vh),
                vl: vl.map(content),
                antibody: pooled_germline_content(vh, vl),
            },
            sapiens_score: Pooled {
                vh: scored_vh.score(),
                vl: scored_vl.as_ref().map(ScoredChain::score),
                antibody: ScoredChain::pooled_score(&scored),
            },
            liability_hints: scored.iter().flat_map(|c| c.hints()).collect(),
        })
    }
}

/// The entries of a mutation list (`H27:F>G`) at Vernier positions.
fn at_vernier(chain_type: ChainType, list: &[String]) -> Vec<String> {
    list.iter()
        .filter(|m| {
            m.get(1..)
                .and_then(|rest| rest.split(':').next())
                .and_then(|label| label.parse::<Position>().ok())
                .is_some_and(|p| is_vernier(chain_type, p))
        })
        .cloned()
        .collect()
}

/// The entries of a mutation list at the VH/VL interface positions of the parental chain.
fn at_interface(parental: &ChainFacts, list: &[String]) -> Vec<String> {
    let interface = interface_positions(parental.chain_type, &parental.kabat);
    list.iter()
        .filter(|m| {
            m.get(1..)
                .and_then(|rest| rest.split(':').next())
                .and_then(|label| label.parse::<Position>().ok())
                .is_some_and(|p| interface.contains(&p))
        })
        .cloned()
        .collect()
}

/// BioPhi's `AntibodyHumanness.get_germline_content`: germline residues of both chains over
/// their residues.
fn pooled_germline_content(vh: &ChainFacts, vl: Option<&ChainFacts>) -> f64 {
    let chains: Vec<&ChainFacts> = std::iter::once(vh).chain(vl).collect();
    let residues: usize = chains.iter().map(|c| c.imgt.len()).sum();
    let germline: f64 = chains
        .iter()
        .map(|c| germline_content(&c.imgt, &c.acceptor.merged) * c.imgt.len() as f64)
        .sum();
    if residues == 0 {
        0.0
    } else {
        germline / residues as f64
    }
}

/// One chain with the model's probabilities for its own residues (none when the chain is
/// longer than the model takes).
struct ScoredChain<'a> {
    chain: &'a ChainFacts,
    rows: Option<Arc<Vec<[f32; 20]>>>,
}

impl<'a> ScoredChain<'a> {
    fn new(predictions: &Predictions, chain: &'a ChainFacts) -> Result<Self, EngineError> {
        let residues: Vec<u8> = chain.kabat.iter().map(|&(_, r)| r).collect();
        let rows = match predictions.get(chain.chain_type.is_heavy(), &residues) {
            Ok(rows) => Some(rows),
            Err(SapiensError::TooLong { .. }) => None,
            Err(e) => {
                return Err(EngineError(format!(
                    "Sapiens could not score the chain: {e}"
                )));
            }
        };
        Ok(ScoredChain { chain, rows })
    }

    /// The probability of each own residue, in sequence order.
    fn own(&self) -> Option<Vec<f64>> {
        let rows = self.rows.as_ref()?;
        self.chain
            .kabat
            .iter()
            .zip(rows.iter())
            .map(|(&(_, r), row)| {
                AMINO_ACIDS
                    .iter()
                    .position(|&a| a == r)
                    .map(|i| f64::from(row[i]))
            })
            .collect()
    }

    fn score(&self) -> Option<f64> {
        let own = self.own()?;
        (!own.is_empty()).then(|| four(own.iter().sum::<f64>() / own.len() as f64))
    }

    /// The mean over every residue of the chains, when each chain could be scored.
    fn pooled_score(chains: &[&ScoredChain]) -> Option<f64> {
        let mut all = Vec::new();
        for chain in chains {
            all.extend(chain.own()?);
        }
        (!all.is_empty()).then(|| four(all.iter().sum::<f64>() / all.len() as f64))
    }

    fn hints(&self) -> Vec<MitigationHint> {
        match &self.rows {
            Some(rows) => mitigation::hints(self.chain.chain_type, &self.chain.kabat, rows),
            None => Vec::new(),
        }
    }
}

fn four(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn four_decimals(scores: Vec<f64>) -> Vec<f64> {
    scores
        .into_iter()
        .map(|x| (x * 10_000.0).round() / 10_000.0)
        .collect()
}

fn kabat_labels(chain: &ChainFacts) -> Vec<(String, char)> {
    chain
        .kabat
        .iter()
        .map(|&(position, residue)| (position.label(chain.chain_type), residue as char))
        .collect()
}

fn text(residues: &[u8]) -> String {
    residues.iter().map(|&r| r as char).collect()
}

/// Humanizes one chain with Sapiens as BioPhi's `sapiens_humanize_chain` does: each pass the
/// model sees the chain the previous pass made (the first sees the parental numbered domain),
/// the most likely residue is taken at every position (the first maximum in A…Y order, as
/// pandas' `idxmax`), and then the parental residue is put back at every Kabat-CDR position
/// (unless `humanize_cdrs`) and, with `backmutate_vernier`, at every Vernier position — AbNumber's
/// `graft_cdrs_onto` from the parental chain. The result keeps the parental numbering.
fn sapiens_chain(
    predictions: &Predictions,
    parental: &NumberedChain,
    options: SapiensOptions,
) -> Result<ChainFacts, EngineError> {
    let kabat: Vec<(Position, u8)> = parental.numbered(Scheme::Kabat).collect();
    sapiens_on(predictions, parental.chain_type, &kabat, options)
}

/// Sapiens passes starting from `start` (a Kabat-numbered chain: the parental one, or a graft
/// for `cdr_grafting_sapiens`, whose CDRs and Vernier residues are then the ones kept, as
/// BioPhi runs `sapiens_humanize_chain` on the grafted chain).
fn sapiens_on(
    predictions: &Predictions,
    chain_type: ChainType,
    start: &[(Position, u8)],
    options: SapiensOptions,
) -> Result<ChainFacts, EngineError> {
    let mut kabat = start.to_vec();
    for _ in 0..options.iterations {
        let residues: Vec<u8> = kabat.iter().map(|&(_, r)| r).collect();
        let probabilities = predictions
            .get(chain_type.is_heavy(), &residues)
            .map_err(|e| EngineError(format!("Sapiens could not score the chain: {e}")))?;
        kabat = start
            .iter()
            .zip(probabilities.iter())
            .map(|(&(position, residue), row)| {
                let keep = (!options.humanize_cdrs && is_kabat_cdr(chain_type, position))
                    || (options.backmutate_vernier && is_vernier(chain_type, position))
                    || (options.backmutate_vhh_hallmark && is_vhh_hallmark(chain_type, position));
                if keep {
                    return (position, residue);
                }
                let mut best = 0;
                for (i, &p) in row.iter().enumerate() {
                    if p > row[best] {
                        best = i;
                    }
                }
                (position, AMINO_ACIDS[best])
            })
            .collect();
        if let Some(budget) = options.max_mutations {
            keep_strongest(&mut kabat, start, &probabilities, usize::from(budget));
        }
    }
    let residues: Vec<u8> = kabat.iter().map(|&(_, r)| r).collect();
    let renumbered = number_as(&residues, chain_type)
        .map_err(|e| EngineError(format!("the Sapiens chain could not be numbered: {e}")))?;
    let mut facts = ChainFacts::closest(&renumbered);
    facts.kabat = kabat;
    facts.residues = residues;
    Ok(facts)
}

/// A mutation budget: when `chain` differs from `parental` at more than `budget` positions,
/// only the `budget` mutations the model prefers most strongly over the parental residue
/// (largest `ln p(mutant) − ln p(parental)` under this pass's probabilities; ties to the
/// earlier position) are kept, and the others go back to the parental residue.
fn keep_strongest(
    chain: &mut [(Position, u8)],
    parental: &[(Position, u8)],
    probabilities: &[[f32; 20]],
    budget: usize,
) {
    let probability = |row: &[f32; 20], residue: u8| {
        AMINO_ACIDS
            .iter()
            .position(|&a| a == residue)
            .map_or(0.0, |i| f64::from(row[i]))
    };
    let mut mutated: Vec<(f64, usize)> = chain
        .iter()
        .zip(parental)
        .zip(probabilities)
        .enumerate()
        .filter(|(_, ((ours, theirs), _))| ours.1 != theirs.1)
        .map(|(i, ((ours, theirs), row))| {
            (
                probability(row, ours.1).ln() - probability(row, theirs.1).ln(),
                i,
            )
        })
        .collect();
    if mutated.len() <= budget {
        return;
    }
    mutated.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in &mutated[budget..] {
        chain[i].1 = parental[i].1;
    }
}

/// Grafts one chain onto its acceptor and renumbers the graft to report on it.
fn graft_chain(
    parental: &NumberedChain,
    acceptor: &Acceptor,
    vernier: bool,
    hallmark: bool,
) -> Result<ChainFacts, EngineError> {
    let back = Backmutations { vernier, hallmark };
    let graft = graft_onto(parental, acceptor.clone(), back).map_err(|e| {
        EngineError(format!(
            "the germline {}+{} could not be numbered: {e}",
            acceptor.v_gene, acceptor.j_gene
        ))
    })?;
    let residues: Vec<u8> = graft.kabat.iter().map(|&(_, r)| r).collect();
    let renumbered = number_as(&residues, parental.chain_type)
        .map_err(|e| EngineError(format!("the grafted chain could not be numbered: {e}")))?;
    Ok(ChainFacts {
        chain_type: parental.chain_type,
        kabat: graft.kabat,
        imgt: renumbered.numbered(Scheme::Imgt).collect(),
        residues,
        acceptor: graft.acceptor,
    })
}
