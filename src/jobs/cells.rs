//! A job's `space:` entry: the cells of a built-in search space scored like files, each
//! network generated in memory when its turn comes (the paper's NB201/NB101 experiments
//! without writing 15,625 files). Every cell, an index range (the paper's `--start/--end`)
//! or a seeded sample; the cell string (NB201) or hash (NB101) is the result's `model`, and
//! an accuracy table, when given, puts each cell's accuracy in its metadata.

use super::models::ModelRef;
use crate::search::nb101::{self, Nb101Options};
use crate::search::nb201::{Cell, Nb201Options, Variant};
use crate::search::space::{Generated, Nb101Space, Nb201Space, Space};
use crate::search::table;
use anyhow::{anyhow, bail, Result};
use serde_json::{json, Map};
use std::path::PathBuf;
use std::sync::Arc;

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

/// The cells a `space:` entry names, as models of the job.
pub fn expand(s: &SpaceSpec) -> Result<Vec<ModelRef>> {
    let variant = match s.variant.as_deref() {
        None | Some("zc") => Variant::Zc,
        Some("nb201") => Variant::Nb201,
        Some(v) => bail!("unknown variant `{v}` (zc or nb201)"),
    };
    match s.name.as_str() {
        "nb201" => {
            let net = Nb201Options { channels: s.channels.unwrap_or(16), seed: s.init_seed, variant, ..Default::default() };
            let mut seen = std::collections::HashSet::new();
            let cells = Cell::all().filter(|c| !s.dedup || seen.insert(c.unique_key())).map(|c| (c, Some(c.index()))).collect();
            pick(s, Arc::new(Nb201Space { net }), cells, Generated::Nb201)
        }
        "nb101" => {
            let max_v = s.max_vertices.unwrap_or(nb101::MAX_VERTICES);
            if max_v > nb101::MAX_VERTICES {
                bail!("NAS-Bench-101 cells have at most {} vertices", nb101::MAX_VERTICES);
            }
            let net = Nb101Options { channels: s.channels.unwrap_or(128), seed: s.init_seed, ..Default::default() };
            let cells = nb101::enumerate(max_v, nb101::MAX_EDGES).into_values().map(|spec| (spec, None)).collect();
            pick(s, Arc::new(Nb101Space { net }), cells, Generated::Nb101)
        }
        other => bail!("unknown space `{other}` (nb201 or nb101)"),
    }
}

/// The cells of the index range and sample `s` asks for, out of `cells` (in enumeration
/// order, each with the benchmark's index where the space numbers its cells), named by
/// their key in `space`.
fn pick<S: Space>(s: &SpaceSpec, space: Arc<S>, cells: Vec<(S::Arch, Option<usize>)>, generated: fn(Arc<S>, S::Arch) -> Generated) -> Result<Vec<ModelRef>> {
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
        Some(p) => Some(table::load(p, s.truth_column.as_deref(), None, &|k| space.normalize_key(k)).map_err(|e| anyhow!("{e:#}"))?),
        None => None,
    };
    Ok(picked
        .into_iter()
        .map(|i| {
            let (arch, index) = cells[i].clone();
            let id = space.key(&arch);
            let mut metadata = Map::new();
            if let Some(index) = index {
                metadata.insert("index".into(), json!(index));
            }
            metadata.insert("space".into(), json!(space.name()));
            metadata.insert("arch".into(), json!(id));
            if let Some(a) = truth.as_ref().and_then(|t| t.get(&id)) {
                metadata.insert("accuracy".into(), json!(a));
            }
            ModelRef { id, path: PathBuf::new(), metadata, generated: Some(generated(space.clone(), arch)) }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nb101_cells_are_named_by_the_hash_they_are_enumerated_under() {
        let space = Nb101Space { net: Nb101Options::default() };
        for (hash, spec) in nb101::enumerate(4, nb101::MAX_EDGES) {
            assert_eq!(space.key(&spec), hash);
        }
    }
}
