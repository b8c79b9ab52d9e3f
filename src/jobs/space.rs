//! A job's `space:` entry: the cells of a built-in search space scored like files, each
//! network generated in memory when its turn comes (the paper's NB201/NB101 experiments
//! without writing 15,625 files). Every cell, an index range (the paper's `--start/--end`)
//! or a seeded sample; the cell string (NB201) or hash (NB101) is the result's `model`, and
//! an accuracy table, when given, puts each cell's accuracy in its metadata.

use super::models::ModelRef;
use crate::onnx::proto::RawModel;
use crate::search::nb101::{self, Nb101Options, Spec};
use crate::search::nb201::{self, Cell, Nb201Options, Variant};
use crate::search::space::{Nb101Space, Nb201Space, Space};
use crate::search::table;
use anyhow::{anyhow, bail, Result};
use serde_json::{json, Map};
use std::path::PathBuf;

/// Keys of a `space:` mapping.
pub const SPACE_KEYS: &[&str] =
    &["name", "start", "end", "sample", "seed", "dedup", "variant", "channels", "init_seed", "max_vertices", "truth", "truth_column"];

/// What a job asks of a space (already checked for types).
#[derive(Clone, Debug, Default)]
pub struct SpaceSpec {
    pub name: String,
    pub start: Option<usize>,
    pub end: Option<usize>,
    pub sample: Option<usize>,
    pub seed: u64,
    pub dedup: bool,
    pub variant: Option<String>,
    pub channels: Option<usize>,
    pub init_seed: u64,
    pub max_vertices: Option<usize>,
    pub truth: Option<PathBuf>,
    pub truth_column: Option<String>,
}

/// A network to generate instead of a file to read.
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    pub space: String,
    /// NB201 cell string, or NB101 cell as JSON.
    pub arch: String,
    pub variant: Variant,
    pub channels: usize,
    pub init_seed: u64,
}

impl Generated {
    pub fn build(&self) -> Result<RawModel> {
        match self.space.as_str() {
            "nb201" => {
                let o = Nb201Options { channels: self.channels, seed: self.init_seed, variant: self.variant, ..Default::default() };
                nb201::build(&Cell::parse(&self.arch)?, &o)
            }
            "nb101" => {
                let o = Nb101Options { channels: self.channels, seed: self.init_seed, ..Default::default() };
                nb101::build(&Spec::parse(&self.arch)?, &o)
            }
            other => bail!("unknown space `{other}`"),
        }
    }
}

/// The cells a `space:` entry names, as models of the job.
pub fn expand(s: &SpaceSpec) -> Result<Vec<ModelRef>> {
    let variant = match s.variant.as_deref() {
        None | Some("zc") => Variant::Zc,
        Some("nb201") => Variant::Nb201,
        Some(v) => bail!("unknown variant `{v}` (zc or nb201)"),
    };
    // (id, arch, extra metadata) in enumeration order
    let (cells, normalize): (Vec<(String, String, Map<String, serde_json::Value>)>, Box<dyn Fn(&str) -> String>) = match s.name.as_str() {
        "nb201" => {
            let mut seen = std::collections::HashSet::new();
            let cells = Cell::all()
                .filter(|c| !s.dedup || seen.insert(c.unique_key()))
                .map(|c| {
                    let mut m = Map::new();
                    m.insert("index".into(), json!(c.index()));
                    (c.to_string(), c.to_string(), m)
                })
                .collect();
            let sp = Nb201Space { net: Nb201Options::default() };
            (cells, Box::new(move |k: &str| sp.normalize_key(k)))
        }
        "nb101" => {
            let max_v = s.max_vertices.unwrap_or(nb101::MAX_VERTICES);
            if max_v > nb101::MAX_VERTICES {
                bail!("NAS-Bench-101 cells have at most {} vertices", nb101::MAX_VERTICES);
            }
            let cells = nb101::enumerate(max_v, nb101::MAX_EDGES)
                .into_iter()
                .map(|(h, spec)| (h, spec.to_json().to_string(), Map::new()))
                .collect();
            let sp = Nb101Space { net: Nb101Options::default() };
            (cells, Box::new(move |k: &str| sp.normalize_key(k)))
        }
        other => bail!("unknown space `{other}` (nb201 or nb101)"),
    };
    let n = cells.len();
    let (start, end) = (s.start.unwrap_or(0), s.end.unwrap_or(n).min(n));
    if start >= end {
        bail!("the index range {start}..{end} holds no cell (the space has {n})");
    }
    let mut picked: Vec<usize> = (start..end).collect();
    if let Some(k) = s.sample {
        if k > picked.len() {
            bail!("sample: {k} is more than the {} cells in range", picked.len());
        }
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(s.seed);
        let mut idx = rand::seq::index::sample(&mut rng, picked.len(), k).into_vec();
        idx.sort_unstable();
        picked = idx.into_iter().map(|i| picked[i]).collect();
    }
    let truth = match &s.truth {
        Some(p) => Some(table::load(p, s.truth_column.as_deref(), None, &*normalize).map_err(|e| anyhow!("{e:#}"))?),
        None => None,
    };
    let channels = s.channels.unwrap_or(if s.name == "nb201" { 16 } else { 128 });
    Ok(picked
        .into_iter()
        .map(|i| {
            let (id, arch, mut metadata) = cells[i].clone();
            metadata.insert("space".into(), json!(s.name));
            metadata.insert("arch".into(), json!(if s.name == "nb201" { arch.clone() } else { id.clone() }));
            if let Some(a) = truth.as_ref().and_then(|t| t.get(&id)) {
                metadata.insert("accuracy".into(), json!(a));
            }
            let generated = Generated { space: s.name.clone(), arch, variant, channels, init_seed: s.init_seed };
            ModelRef { id, path: PathBuf::new(), metadata, generated: Some(generated) }
        })
        .collect())
}
