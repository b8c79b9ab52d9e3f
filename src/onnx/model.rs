//! A loaded model: the file's graph as read, from which canonical graphs are made for a
//! given batch and set of options (BN mode, synflow's absolute weights, float64).

use super::canon::{canonicalize, CanonOptions, InputShapes};
use super::ir::Graph;
use super::proto::{read_model, RawModel};
use anyhow::{bail, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub struct Model {
    pub path: PathBuf,
    pub raw: RawModel,
}

impl Model {
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref().to_path_buf();
        let mut raw = read_model(&path)?;
        super::weights::materialize_constant_weights(&mut raw.graph)?;
        if raw.input_decls.is_empty() {
            bail!("{}: the model has no runtime input", path.display());
        }
        Ok(Model { path, raw })
    }

    pub fn from_raw(path: impl Into<PathBuf>, raw: RawModel) -> Model {
        Model { path: path.into(), raw }
    }

    /// Name of the (first) data input.
    pub fn input_name(&self) -> &str {
        &self.raw.input_decls[0].name
    }

    /// Batch size written in the file (first dimension of the first input), if static.
    pub fn export_batch(&self) -> Option<usize> {
        self.raw.input_decls[0].dims.first().copied().flatten()
    }

    /// Per-sample input shape declared in the file, if every dimension after the first is static.
    pub fn sample_shape(&self) -> Option<Vec<usize>> {
        self.raw.input_decls[0].dims.iter().skip(1).copied().collect()
    }

    /// Input shapes for a run at `batch`. `input_shape` (full shape, batch first, as given
    /// by `--input-shape`) is required when the file has symbolic dimensions other than the batch.
    pub fn input_shapes(&self, batch: usize, input_shape: Option<&[usize]>) -> Result<InputShapes> {
        let mut shapes = HashMap::new();
        for (k, d) in self.raw.input_decls.iter().enumerate() {
            let shape: Vec<usize> = if k == 0 && input_shape.is_some() {
                let mut s = input_shape.unwrap().to_vec();
                if s.len() != d.dims.len() && !d.dims.is_empty() {
                    bail!("{}: --input-shape {:?} has rank {}, the model's input '{}' has rank {}", self.path.display(), s, s.len(), d.name, d.dims.len());
                }
                s[0] = batch;
                s
            } else {
                if d.dims.is_empty() {
                    bail!("{}: input '{}' has no declared shape; pass --input-shape (e.g. 1x3x32x32)", self.path.display(), d.name);
                }
                let symbolic: Vec<String> = d
                    .dims
                    .iter()
                    .zip(&d.dim_names)
                    .enumerate()
                    .filter(|(i, (v, _))| v.is_none() && *i > 0)
                    .map(|(i, (_, n))| if n.is_empty() || n == "?" { format!("#{i}") } else { n.clone() })
                    .collect();
                if !symbolic.is_empty() {
                    bail!(
                        "{}: input '{}' has symbolic dimensions ({}); pass --input-shape with the full shape, e.g. --input-shape 1x3x32x32",
                        self.path.display(),
                        d.name,
                        symbolic.join(", ")
                    );
                }
                let mut s: Vec<usize> = d.dims.iter().map(|v| v.unwrap_or(batch)).collect();
                s[0] = batch;
                s
            };
            // the batch is allocated from this shape: refuse what cannot fit before trying
            crate::memory::check(format!("{}: input '{}' {:?} ({:?})", self.path.display(), d.name, shape, d.dtype), crate::memory::elements(&shape).saturating_mul(d.dtype.width() as u128))?;
            shapes.insert(d.name.clone(), shape);
        }
        Ok(InputShapes { shapes, export_batch: self.export_batch(), batch })
    }

    /// The canonical graph for a run at these shapes with these options.
    pub fn canonical(&self, shapes: &InputShapes, opts: &CanonOptions) -> Result<Graph> {
        let g = canonicalize(&self.raw, shapes, opts)?;
        // every pass starts from this graph: refuse shapes that cannot be afforded here,
        // before any tensor of theirs (a seed, a batch, a constant) is allocated
        g.check_memory()?;
        Ok(g)
    }
}
