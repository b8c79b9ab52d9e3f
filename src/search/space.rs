//! The search-space interface the algorithms run on, its two built-in spaces, and a cell
//! of either with its network settings ([`Generated`]: a job's model built in memory).

use super::nb101::{self, Nb101Options, Spec};
use super::nb201::{self, Cell, Nb201Options};
use crate::onnx::proto::RawModel;
use anyhow::Result;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::sync::Arc;

/// A search space: how to draw, mutate, name and build its architectures.
pub trait Space: Sync {
    type Arch: Clone + Send + Sync;
    fn name(&self) -> &'static str;
    /// The canonical name of an architecture: equal keys = the same architecture (the
    /// trace's `arch`, the key of lookup tables and caches).
    fn key(&self, a: &Self::Arch) -> String;
    /// A random architecture (uniform over the space's own sampler).
    fn random(&self, rng: &mut ChaCha8Rng) -> Self::Arch;
    /// Every architecture one edit away, with keys distinct from `a`'s and each other's.
    fn neighbours(&self, a: &Self::Arch) -> Vec<Self::Arch>;
    /// A random one-edit mutation.
    fn mutate(&self, a: &Self::Arch, rng: &mut ChaCha8Rng) -> Self::Arch {
        let n = self.neighbours(a);
        n[rng.gen_range(0..n.len())].clone()
    }
    /// Number of architectures, when known.
    fn size(&self) -> Option<usize> {
        None
    }
    /// Reads an architecture from its textual forms.
    fn parse(&self, s: &str) -> Result<Self::Arch>;
    /// Canonical key of a table's arch entry (a key already canonical passes through).
    fn normalize_key(&self, s: &str) -> String {
        self.parse(s).map(|a| self.key(&a)).unwrap_or_else(|_| s.trim().to_string())
    }
    /// The network of `a` in memory.
    fn build(&self, a: &Self::Arch) -> Result<RawModel>;
    /// Extra description for the trace (e.g. NB101's matrix and ops).
    fn describe(&self, _a: &Self::Arch) -> Option<Value> {
        None
    }
}

/// NAS-Bench-201 with the network options used to build scored networks.
#[derive(Clone, Debug, PartialEq)]
pub struct Nb201Space {
    pub net: Nb201Options,
}

impl Space for Nb201Space {
    type Arch = Cell;
    fn name(&self) -> &'static str {
        "nb201"
    }
    fn key(&self, a: &Cell) -> String {
        a.to_string()
    }
    fn random(&self, rng: &mut ChaCha8Rng) -> Cell {
        Cell::from_index(rng.gen_range(0..nb201::NUM_CELLS))
    }
    fn neighbours(&self, a: &Cell) -> Vec<Cell> {
        a.neighbours()
    }
    fn size(&self) -> Option<usize> {
        Some(nb201::NUM_CELLS)
    }
    fn parse(&self, s: &str) -> Result<Cell> {
        Cell::parse(s)
    }
    fn build(&self, a: &Cell) -> Result<RawModel> {
        nb201::build(a, &self.net)
    }
}

/// NAS-Bench-101 (keys are the benchmark's cell hashes).
#[derive(Clone, Debug, PartialEq)]
pub struct Nb101Space {
    pub net: Nb101Options,
}

impl Space for Nb101Space {
    type Arch = Spec;
    fn name(&self) -> &'static str {
        "nb101"
    }
    fn key(&self, a: &Spec) -> String {
        a.hash().unwrap_or_else(|| "invalid".into())
    }
    fn random(&self, rng: &mut ChaCha8Rng) -> Spec {
        Spec::random(rng)
    }
    fn neighbours(&self, a: &Spec) -> Vec<Spec> {
        a.neighbours()
    }
    fn size(&self) -> Option<usize> {
        Some(423_624)
    }
    fn parse(&self, s: &str) -> Result<Spec> {
        Spec::parse(s)
    }
    fn normalize_key(&self, s: &str) -> String {
        let t = s.trim();
        if t.len() == 32 && t.chars().all(|c| c.is_ascii_hexdigit()) {
            return t.to_ascii_lowercase();
        }
        self.parse(t).ok().and_then(|a| a.hash()).unwrap_or_else(|| t.to_string())
    }
    fn build(&self, a: &Spec) -> Result<RawModel> {
        nb101::build(a, &self.net)
    }
    fn describe(&self, a: &Spec) -> Option<Value> {
        Some(a.pruned().unwrap_or_else(|| a.clone()).to_json())
    }
}

/// An architecture of a built-in space with the space (and so the network settings) that
/// builds it: a job's model generated in memory when its turn comes, instead of a file.
#[derive(Clone, Debug, PartialEq)]
pub enum Generated {
    Nb201(Arc<Nb201Space>, Cell),
    Nb101(Arc<Nb101Space>, Spec),
}

impl Generated {
    /// The network in memory.
    pub fn build(&self) -> Result<RawModel> {
        match self {
            Generated::Nb201(space, cell) => space.build(cell),
            Generated::Nb101(space, spec) => space.build(spec),
        }
    }
}
