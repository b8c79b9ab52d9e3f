//! Zero-cost proxies, one module each, registered by name ([`registry`]). A proxy is a small
//! function over the outputs of shared passes (`passes/`, one file per pass); it asks its
//! [`Ctx`] for them (`ctx.pass(&LossPass)`), and the context runs each pass at most once per
//! model and batch, so proxies that need the same pass share it. An [`Aggregate`] (AZ-NAS)
//! combines proxies over a population. `split.rs` runs a pass in chunks of the batch when
//! its program would exceed the memory budget.

pub mod az_nas;
pub mod ctx;
pub mod epe_nas;
pub mod fisher;
pub mod flops;
pub mod grad_sign;
pub mod grad_norm;
pub mod grasp;
pub mod jacob_cov;
pub mod l2_norm;
pub mod linear_regions;
pub mod meco;
pub mod ntk_cond;
pub mod nwot;
pub mod params;
pub mod passes;
pub mod plain;
pub mod snip;
pub mod split;
pub mod swap;
pub mod synflow;
pub mod value;
pub mod zen;
pub mod zico;

use crate::data::Batch;
use crate::engine::Engine;
use crate::onnx::canon::BnMode;
use crate::onnx::ir::{Graph, Tensor};
use crate::onnx::Model;
use anyhow::{anyhow, Result};
use indexmap::IndexMap;
use serde::Serialize;
use std::cell::OnceCell;
use std::time::Instant;

pub use ctx::{Ctx, Pass};
pub use value::ProxyValue;

/// Which way a proxy ranks networks: `Higher` means a larger score predicts a better
/// network. `search`, `correlate` and `vote` read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Higher,
    Lower,
}

impl Direction {
    /// +1 for higher-is-better, −1 for lower-is-better: multiply a score by it to rank
    /// "larger is better" in either case.
    pub fn sign(self) -> f64 {
        match self {
            Direction::Higher => 1.0,
            Direction::Lower => -1.0,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Higher => "higher",
            Direction::Lower => "lower",
        }
    }
}

/// What a proxy reads of the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataNeed {
    /// Weights and the input shape only (no samples).
    NoData,
    /// Input samples, not their labels.
    Inputs,
    /// Input samples and their class labels.
    InputsAndLabels,
}

impl DataNeed {
    pub fn as_str(self) -> &'static str {
        match self {
            DataNeed::NoData => "none",
            DataNeed::Inputs => "inputs",
            DataNeed::InputsAndLabels => "inputs+labels",
        }
    }
}

pub struct Proxy {
    pub name: &'static str,
    /// Where it was proposed (and, where it differs, whose code we follow).
    pub paper: &'static str,
    pub direction: Direction,
    pub data: DataNeed,
    /// One line: what it computes.
    pub about: &'static str,
    /// The passes (programs) it runs.
    pub passes: &'static str,
    pub compute: fn(&Ctx) -> Result<ProxyValue>,
}

/// The ranking direction of a proxy or of an aggregate (`az_nas`, `vote`: higher): higher
/// unless the registry says otherwise.
pub fn direction_of(name: &str) -> Direction {
    registry().into_iter().find(|p| p.name == name).map_or(Direction::Higher, |p| p.direction)
}

/// A score of a population rather than of one model: it combines the values of its
/// components over the models that have all of them (`correlate`, `search`).
#[derive(Clone, Copy, Debug)]
pub struct Aggregate {
    pub name: &'static str,
    /// The proxies it combines; `--proxy NAME` scores them all.
    pub components: &'static [&'static str],
    /// `columns[c][m]`: component c on model m, oriented so that larger is better (each
    /// multiplied by its direction's sign); returns one value per model, larger is better.
    pub combine: fn(&[Vec<f64>]) -> Vec<f64>,
}

/// Every registered aggregate.
pub fn aggregates() -> Vec<Aggregate> {
    vec![az_nas::AGGREGATE]
}

/// The aggregate called `name`, if one is.
pub fn aggregate_named(name: &str) -> Option<Aggregate> {
    aggregates().into_iter().find(|a| a.name == name)
}

/// Every registered proxy, in report order.
pub fn registry() -> Vec<Proxy> {
    vec![
        grad_norm::PROXY,
        snip::PROXY,
        grasp::PROXY,
        fisher::PROXY,
        jacob_cov::PROXY,
        plain::PROXY,
        synflow::PROXY,
        synflow::PROXY_BN,
        l2_norm::PROXY,
        params::PROXY,
        flops::PROXY,
        // later proxies (README "Later proxies")
        nwot::PROXY,
        zico::PROXY,
        zico::PROXY_PAPER,
        meco::PROXY,
        epe_nas::PROXY,
        swap::PROXY,
        grad_sign::PROXY,
        ntk_cond::PROXY,
        linear_regions::PROXY,
        zen::PROXY,
        az_nas::EXPRESSIVITY,
        az_nas::PROGRESSIVITY,
        az_nas::TRAINABILITY,
        az_nas::COMPLEXITY,
    ]
}

/// The default set: the paper's proxies and the params/flops baselines (`--proxy all`
/// runs every registered proxy).
pub const PAPER_PROXIES: &[&str] =
    &["grad_norm", "snip", "grasp", "fisher", "jacob_cov", "plain", "synflow", "synflow_bn", "l2_norm", "params", "flops"];

pub fn proxy_names() -> Vec<&'static str> {
    registry().iter().map(|p| p.name).collect()
}

/// Resolves user-given names ("all" expands to every proxy, an aggregate such as "az_nas"
/// to its components); unknown names are an error.
pub fn resolve_names(names: &[String]) -> Result<Vec<&'static str>> {
    let all = proxy_names();
    if names.is_empty() {
        return Ok(PAPER_PROXIES.to_vec());
    }
    let mut out = Vec::new();
    for n in names.iter().flat_map(|s| s.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
        if n == "all" {
            for a in &all {
                if !out.contains(a) {
                    out.push(*a);
                }
            }
            continue;
        }
        if let Some(a) = aggregate_named(n) {
            for c in a.components {
                if !out.contains(c) {
                    out.push(*c);
                }
            }
            continue;
        }
        let p = all.iter().find(|a| **a == n).ok_or_else(|| anyhow!("unknown proxy '{n}' (known: {})", all.join(", ")))?;
        if !out.contains(p) {
            out.push(*p);
        }
    }
    Ok(out)
}

/// How a model is scored.
#[derive(Clone, Debug)]
pub struct ScoreOptions {
    pub bn: BnMode,
    /// Full input shape for models with symbolic dimensions (batch entry is replaced).
    pub input_shape: Option<Vec<usize>>,
    /// Run the data passes in float64 (default false: float32, as the paper's code). float32
    /// rounding moves cancelling sums (plain, grasp, fisher) by up to 1e-3 relative on deep
    /// networks; float64 gives the values float32 approximates, at 2-3× the time on tract
    /// (ONNX Runtime's CPU provider has no float64 convolution: such programs run on tract).
    /// synflow always runs in float64.
    pub float64: bool,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        ScoreOptions { bn: BnMode::Batch, input_shape: None, float64: false }
    }
}

/// Result of one proxy on one model.
#[derive(Clone, Debug, Serialize)]
pub struct ProxyResult {
    pub value: Option<ProxyValue>,
    pub error: Option<String>,
    pub seconds: f64,
    /// The engine(s) that ran the programs this proxy started, where that is not the
    /// engine it was scored with (synflow's float64 program on tract under ONNX Runtime).
    pub engine: Option<String>,
}

/// An engine that notes which engine each program it loads runs on.
struct Recording<'e> {
    inner: &'e dyn Engine,
    used: std::sync::Mutex<Vec<String>>,
}

impl Engine for Recording<'_> {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn load(&self, graph: &Graph) -> Result<Box<dyn crate::engine::Program>> {
        let p = self.inner.load(graph)?;
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if !used.contains(&p.engine()) {
            used.push(p.engine());
        }
        Ok(p)
    }
}

/// Σ over elements of f(w, g) in f64.
pub fn sum_pairs(w: &Tensor, g: &Tensor, f: impl Fn(f64, f64) -> f64) -> f64 {
    w.to_f64_vec().iter().zip(g.to_f64_vec()).map(|(&a, b)| f(a, b)).sum()
}

/// Scores `model` on `batch` with the named proxies (the paper's `find_measures`).
/// A proxy that fails gets an error and the others still run.
pub fn find_measures(model: &Model, batch: &Batch, names: &[&str], engine: &dyn Engine, opts: &ScoreOptions) -> IndexMap<String, ProxyResult> {
    let recording = Recording { inner: engine, used: Default::default() };
    let ctx = Ctx::for_proxies(model, batch, &recording, opts, names);
    let reg = registry();
    let mut out = IndexMap::new();
    let nonfinite = OnceCell::new();
    for name in names {
        let start = Instant::now();
        let res = match reg.iter().find(|p| p.name == *name) {
            None => Err(anyhow!("unknown proxy '{name}'")),
            // a panic (a bug, or a file no check foresaw) is this proxy's error, not the process's
            Some(p) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (p.compute)(&ctx)))
                .unwrap_or_else(|e| Err(anyhow!("internal error (panic): {}", crate::memory::panic_message(e))))
                .and_then(|v| {
                if v.total.is_finite() || (v.total.is_infinite() && v.infinite.is_some()) {
                    Ok(v)
                } else {
                    Err(anyhow!("the score is {} (NaN or infinite)", v.total))
                }
            }),
        };
        let seconds = start.elapsed().as_secs_f64();
        let (value, error) = match res {
            Ok(v) => (Some(v), None),
            // a NaN or infinity in the file or the batch is the reason, whatever it broke
            Err(e) => match nonfinite.get_or_init(|| nonfinite_values(model, batch)) {
                Some(why) => (None, Some(format!("{}; {why}", crate::error_text::one_line(&e)))),
                None => (None, Some(crate::error_text::one_line(&e))),
            },
        };
        let used = std::mem::take(&mut *recording.used.lock().unwrap_or_else(|p| p.into_inner()));
        let engine = if used.iter().any(|e| *e != recording.name()) { Some(used.join("+")) } else { None };
        out.insert(name.to_string(), ProxyResult { value, error, seconds, engine });
    }
    out
}

/// Where the model's weights or the batch hold NaN or ±∞ (the first such tensor), if
/// anywhere: the reason a proxy over them has no finite value.
fn nonfinite_values(model: &Model, batch: &Batch) -> Option<String> {
    for (name, t) in &model.raw.graph.initializers {
        if !t.dtype().is_float() {
            continue;
        }
        let v = t.to_f64_vec();
        let bad = v.iter().filter(|x| !x.is_finite()).count();
        if bad > 0 {
            let kind = if v.iter().any(|x| x.is_nan()) { "NaN" } else { "infinite values" };
            return Some(format!("weight '{name}' holds {kind} ({bad} of {} values)", v.len()));
        }
    }
    let per_sample = batch.inputs.len() / batch.len().max(1);
    let bad: Vec<usize> = batch.inputs.iter().enumerate().filter(|(_, x)| !x.is_finite()).map(|(i, _)| i / per_sample.max(1)).collect();
    match bad.first() {
        Some(s) => Some(format!("the input batch holds NaN or infinite values ({} of them, the first in sample {s})", bad.len())),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The library's defaults are the command line's (README, examples/find_measures.rs).
    #[test]
    fn default_options_are_float32_batch_statistics() {
        let o = ScoreOptions::default();
        assert!(!o.float64);
        assert!(matches!(o.bn, BnMode::Batch));
        assert!(o.input_shape.is_none());
    }

    #[test]
    fn every_proxy_declares_its_direction_and_names_are_unique() {
        let reg = registry();
        let mut names: Vec<&str> = reg.iter().map(|p| p.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), reg.len());
        assert_eq!(direction_of("ntk_cond"), Direction::Lower);
        assert_eq!(direction_of("synflow"), Direction::Higher);
        for p in &reg {
            assert!(!p.paper.is_empty() && !p.passes.is_empty() && !p.about.is_empty(), "{}", p.name);
        }
        for p in PAPER_PROXIES {
            assert!(names.contains(p), "{p}");
        }
    }
}
