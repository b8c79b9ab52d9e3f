//! Random search and aging (regularized) evolution, each with the zero-cost-proxies
//! paper's two uses of a proxy: warm-up and move proposal.
//!
//! "Training" an architecture = looking its accuracy up in a table; each trained
//! architecture is one step of the budget. Without a table the search ranks by the proxy.
//!
//! - Random search: distinct random architectures. Warm-up N: N distinct random
//!   architectures are scored with the proxy and trained first, best score first.
//! - Aging evolution (Real et al. 2019): a population of P (64) trained architectures; each
//!   step samples T (10) members uniformly with replacement, mutates the fittest (one
//!   edge/op edit), trains the child, appends it and retires the oldest member. Warm-up N:
//!   the initial population is the P best-scored of N distinct random architectures (else
//!   P distinct random ones). Move proposal: instead of a random edit, every one-edit
//!   mutation of the parent not trained yet (all of them if none is left) is scored with the
//!   proxy and the best is taken — or, with probability 0.25, a random one of them.

use super::oracle::Scorer;
use super::space::Space;
use super::table::Table;
use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::{HashSet, VecDeque};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Random,
    Evolution,
}

#[derive(Clone, Debug)]
pub struct SearchConfig {
    pub algorithm: Algorithm,
    /// Trained architectures per run.
    pub budget: usize,
    /// Architectures scored with the proxy before the search (0 = no warm-up).
    pub warmup: usize,
    pub move_proposal: bool,
    /// Probability of a random candidate instead of the best-scored one.
    pub move_random_prob: f64,
    pub population: usize,
    pub tournament: usize,
    /// Run `r` uses seed `seed + r`.
    pub seed: u64,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig { algorithm: Algorithm::Evolution, budget: 100, warmup: 0, move_proposal: false, move_random_prob: 0.25, population: 64, tournament: 10, seed: 0 }
    }
}

/// The accuracies a search selects by, and optionally a second column it reports (e.g.
/// validation accuracy to select, test accuracy to report).
pub struct Truth {
    pub select: Table,
    pub report: Option<Table>,
}

/// One trained architecture: a line of the trace.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub variant: String,
    pub repeat: usize,
    /// 1-based count of trained architectures in this run.
    pub step: usize,
    pub arch: String,
    /// How it was chosen: random | warmup | mutation | move.
    pub how: &'static str,
    pub proxy: Option<f64>,
    pub accuracy: Option<f64>,
    /// Best `accuracy` so far in this run.
    pub best_accuracy: Option<f64>,
    /// Best proxy score among the trained architectures so far (scored ones), in the
    /// proxy's direction (the lowest for a lower-is-better proxy).
    pub best_proxy: Option<f64>,
    /// The best architecture so far (by accuracy, or by proxy without a table).
    pub best_arch: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<f64>,
    /// The reported value of the architecture with the best selection accuracy so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_report: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<serde_json::Value>,
}

/// How candidates are compared by proxy: one proxy's scores, or an aggregate of its
/// components' scores within each set of candidates compared (a warm-up pool, the moves of
/// one step), as AZ-NAS's Σ ln(rank / n).
pub enum Ranker<'a, S: Space> {
    One(&'a Scorer<'a, S>),
    RankAggregate(Vec<&'a Scorer<'a, S>>),
}

impl<'a, S: Space> Ranker<'a, S> {
    /// Comparable scores of `archs` (`None`: unknown), higher is better whatever the
    /// proxy's direction (a lower-is-better proxy's scores are negated).
    pub fn rank(&self, space: &S, archs: &[S::Arch]) -> Result<Vec<Option<f64>>> {
        let oriented = |s: &Scorer<S>| -> Result<Vec<Option<f64>>> {
            let sign = s.direction().sign();
            Ok(s.get_many(space, archs)?.into_iter().map(|v| v.map(|x| sign * x)).collect())
        };
        match self {
            Ranker::One(s) => oriented(s),
            Ranker::RankAggregate(parts) => {
                let cols: Vec<Vec<Option<f64>>> = parts.iter().map(|s| oriented(s)).collect::<Result<_>>()?;
                let (complete, values) = crate::rank::complete_columns(&cols);
                let mut out = vec![None; archs.len()];
                for (&i, v) in complete.iter().zip(crate::rank::log_rank_sum(&values)) {
                    out[i] = Some(v);
                }
                Ok(out)
            }
        }
    }

    /// +1 when higher scores are better, −1 when lower are (a rank aggregate is higher).
    fn sign(&self) -> f64 {
        match self {
            Ranker::One(s) => s.direction().sign(),
            Ranker::RankAggregate(_) => 1.0,
        }
    }

    /// One architecture's own score, where it has one (a rank aggregate has none).
    fn single(&self, space: &S, a: &S::Arch, compute: bool) -> Result<Option<f64>> {
        match self {
            Ranker::One(s) if compute => s.get(space, a),
            Ranker::One(s) => Ok(s.peek(space, a).flatten()),
            Ranker::RankAggregate(_) => Ok(None),
        }
    }
}

struct Run<'a, 'r, S: Space> {
    space: &'a S,
    on_row: &'r mut dyn FnMut(&Row) -> Result<()>,
    scorer: Option<&'a Ranker<'a, S>>,
    truth: Option<&'a Truth>,
    variant: String,
    repeat: usize,
    rows: Vec<Row>,
    seen: HashSet<String>,
    best_fit: f64,
    best_acc: Option<f64>,
    best_proxy: Option<f64>,
    best_arch: String,
    best_report: Option<f64>,
}

/// The better of two optional scores, `sign` = +1 (higher is better) or −1.
fn fbest(a: Option<f64>, b: Option<f64>, sign: f64) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if sign * y > sign * x { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

impl<'a, S: Space> Run<'a, '_, S> {
    /// Trains `a`; returns its fitness (accuracy, or proxy without a table; -∞ if unknown).
    fn train(&mut self, a: &S::Arch, how: &'static str) -> Result<f64> {
        let key = self.space.key(a);
        let accuracy = self.truth.and_then(|t| t.select.get(&key).copied());
        let report = self.truth.and_then(|t| t.report.as_ref()).and_then(|r| r.get(&key).copied());
        let proxy = match self.scorer {
            Some(s) => s.single(self.space, a, self.truth.is_none())?,
            None => None,
        };
        let sign = self.scorer.map_or(1.0, |s| s.sign());
        let fit = if self.truth.is_some() { accuracy } else { proxy.map(|p| sign * p) }.unwrap_or(f64::NEG_INFINITY);
        if self.rows.is_empty() || fit > self.best_fit {
            self.best_fit = fit;
            self.best_arch = key.clone();
            self.best_report = report;
        }
        self.best_acc = fbest(self.best_acc, accuracy, 1.0);
        self.best_proxy = fbest(self.best_proxy, proxy, sign);
        self.seen.insert(key.clone());
        self.rows.push(Row {
            variant: self.variant.clone(),
            repeat: self.repeat,
            step: self.rows.len() + 1,
            arch: key,
            how,
            proxy,
            accuracy,
            best_accuracy: self.best_acc,
            best_proxy: self.best_proxy,
            best_arch: self.best_arch.clone(),
            report,
            best_report: if self.truth.and_then(|t| t.report.as_ref()).is_some() { self.best_report } else { None },
            spec: self.space.describe(a),
        });
        (self.on_row)(self.rows.last().unwrap())?;
        Ok(fit)
    }

    /// A random architecture not trained yet (`None` when the space seems exhausted).
    fn fresh(&self, rng: &mut ChaCha8Rng, also_avoid: &HashSet<String>) -> Option<S::Arch> {
        if let Some(n) = self.space.size() {
            if self.seen.len() + also_avoid.len() >= n {
                return None;
            }
        }
        for _ in 0..100_000 {
            let a = self.space.random(rng);
            let k = self.space.key(&a);
            if !self.seen.contains(&k) && !also_avoid.contains(&k) {
                return Some(a);
            }
        }
        None
    }

    /// `n` distinct random architectures, sorted by proxy score, best first in the proxy's
    /// direction (unscored last).
    fn warmup_pool(&self, n: usize, rng: &mut ChaCha8Rng) -> Result<Vec<(S::Arch, Option<f64>)>> {
        let scorer = self.scorer.expect("warm-up needs a proxy");
        let mut keys = HashSet::new();
        let mut pool = Vec::with_capacity(n);
        while pool.len() < n {
            match self.fresh(rng, &keys) {
                Some(a) => {
                    keys.insert(self.space.key(&a));
                    pool.push(a);
                }
                None => break,
            }
        }
        let scores = scorer.rank(self.space, &pool)?;
        let mut scored: Vec<(S::Arch, Option<f64>)> = pool.into_iter().zip(scores).collect();
        scored.sort_by(|a, b| b.1.unwrap_or(f64::NEG_INFINITY).total_cmp(&a.1.unwrap_or(f64::NEG_INFINITY)));
        Ok(scored)
    }
}

impl<S: Space> Run<'_, '_, S> {
    /// Random search: the warm-up pool, best first, then distinct random architectures.
    fn random_search(&mut self, cfg: &SearchConfig, rng: &mut ChaCha8Rng) -> Result<()> {
        let none = HashSet::new();
        let mut queue: VecDeque<S::Arch> = if cfg.warmup > 0 { self.warmup_pool(cfg.warmup, rng)?.into_iter().map(|p| p.0).collect() } else { VecDeque::new() };
        while self.rows.len() < cfg.budget {
            let (a, how) = match queue.pop_front() {
                Some(a) => (a, "warmup"),
                None => match self.fresh(rng, &none) {
                    Some(a) => (a, "random"),
                    None => break,
                },
            };
            self.train(&a, how)?;
        }
        Ok(())
    }

    /// Aging evolution: a population started from the warm-up pool's best (else random
    /// architectures); each step trains a mutation (or the proposed move) of a tournament's
    /// winner and retires the oldest member.
    fn evolution(&mut self, cfg: &SearchConfig, rng: &mut ChaCha8Rng) -> Result<()> {
        if cfg.population == 0 || cfg.tournament == 0 {
            bail!("population and tournament sizes must be positive");
        }
        let none = HashSet::new();
        let mut population: VecDeque<(S::Arch, f64)> = VecDeque::new();
        let init: Vec<(S::Arch, &'static str)> = if cfg.warmup > 0 {
            self.warmup_pool(cfg.warmup, rng)?.into_iter().take(cfg.population).map(|p| (p.0, "warmup")).collect()
        } else {
            Vec::new()
        };
        for (a, how) in init {
            if self.rows.len() >= cfg.budget {
                break;
            }
            let f = self.train(&a, how)?;
            population.push_back((a, f));
        }
        while population.len() < cfg.population && self.rows.len() < cfg.budget {
            let Some(a) = self.fresh(rng, &none) else { break };
            let f = self.train(&a, "random")?;
            population.push_back((a, f));
        }
        while self.rows.len() < cfg.budget && !population.is_empty() {
            let mut parent = rng.gen_range(0..population.len());
            for _ in 1..cfg.tournament {
                let i = rng.gen_range(0..population.len());
                if population[i].1 > population[parent].1 {
                    parent = i;
                }
            }
            let parent = population[parent].0.clone();
            let (child, how) = if cfg.move_proposal {
                (self.proposed_move(&parent, cfg, rng)?, "move")
            } else {
                (self.space.mutate(&parent, rng), "mutation")
            };
            let f = self.train(&child, how)?;
            population.push_back((child, f));
            population.pop_front();
        }
        Ok(())
    }

    /// Move proposal: the best-ranked one-edit mutation of `parent` not trained yet (of all
    /// of them when none is left), or a random one with probability `move_random_prob`.
    fn proposed_move(&self, parent: &S::Arch, cfg: &SearchConfig, rng: &mut ChaCha8Rng) -> Result<S::Arch> {
        let space = self.space;
        let all = space.neighbours(parent);
        let untried: Vec<S::Arch> = all.iter().filter(|a| !self.seen.contains(&space.key(a))).cloned().collect();
        let cands = if untried.is_empty() { all } else { untried };
        let scores = self.scorer.unwrap().rank(space, &cands)?;
        let pick = if rng.gen::<f64>() < cfg.move_random_prob {
            rng.gen_range(0..cands.len())
        } else {
            let mut best = 0;
            for (i, s) in scores.iter().enumerate() {
                if s.unwrap_or(f64::NEG_INFINITY) > scores[best].unwrap_or(f64::NEG_INFINITY) {
                    best = i;
                }
            }
            best
        };
        Ok(cands[pick].clone())
    }
}

/// Runs one search (repeat `repeat`, seeded `cfg.seed + repeat`) and returns its trace.
pub fn run_search<'a, S: Space>(space: &'a S, cfg: &SearchConfig, repeat: usize, variant: &str, scorer: Option<&'a Ranker<'a, S>>, truth: Option<&'a Truth>) -> Result<Vec<Row>> {
    run_search_with(space, cfg, repeat, variant, scorer, truth, &mut |_| Ok(()))
}

/// [`run_search`], handing each row of the trace to `on_row` as soon as it is trained (a
/// trace file then holds every step made before a kill).
pub fn run_search_with<'a, S: Space>(
    space: &'a S,
    cfg: &SearchConfig,
    repeat: usize,
    variant: &str,
    scorer: Option<&'a Ranker<'a, S>>,
    truth: Option<&'a Truth>,
    on_row: &mut dyn FnMut(&Row) -> Result<()>,
) -> Result<Vec<Row>> {
    if truth.is_none() && scorer.is_none() {
        bail!("nothing to rank by: give an accuracy table (--truth) or a proxy (--proxy)");
    }
    if truth.is_none() && matches!(scorer, Some(Ranker::RankAggregate(_))) {
        bail!("a rank aggregate (az_nas) compares sets of candidates and gives no fitness of its own: give an accuracy table (--truth) and use it for --warmup / --move-proposal");
    }
    if (cfg.warmup > 0 || cfg.move_proposal) && scorer.is_none() {
        bail!("warm-up and move proposal need a proxy (--proxy or --proxy-table)");
    }
    if cfg.move_proposal && cfg.algorithm == Algorithm::Random {
        bail!("move proposal applies to evolution (random search makes no moves)");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(repeat as u64));
    let mut run = Run {
        space,
        scorer,
        truth,
        variant: variant.to_string(),
        repeat,
        rows: Vec::with_capacity(cfg.budget),
        on_row,
        seen: HashSet::new(),
        best_fit: f64::NEG_INFINITY,
        best_acc: None,
        best_proxy: None,
        best_arch: String::new(),
        best_report: None,
    };
    match cfg.algorithm {
        Algorithm::Random => run.random_search(cfg, &mut rng)?,
        Algorithm::Evolution => run.evolution(cfg, &mut rng)?,
    }
    Ok(run.rows)
}
