//! Scoring one model as a [`BatchSpec`] says: the one path that `zerocost score`, batch
//! jobs and the search's network oracle share, from a loaded model to its proxy results.

pub mod spec;

pub use spec::{BatchSpec, Shape, ShapeArgs, Spelled};

use crate::data::{load_batch, Batch, DataSource};
use crate::engine::Engine;
use crate::onnx::Model;
use crate::proxies::{self, ProxyResult, ScoreOptions};
use anyhow::Result;
use indexmap::IndexMap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One model scored.
pub struct Scored {
    /// Samples in the batch the proxies saw.
    pub batch: usize,
    pub results: IndexMap<String, ProxyResult>,
    /// Names of the scored layers, when the spec asks for per-layer values.
    pub layers: Option<Vec<String>>,
}

/// The batches of one data source, built once per (per-sample shape, classes): the models
/// of one zoo or space usually share them, and real data sources are slow to read.
pub struct Batches {
    source: DataSource,
    cache: Mutex<HashMap<(Vec<usize>, usize), Arc<Batch>>>,
}

impl Batches {
    /// `source` as resolved by the caller (a job's paths rebased, `--inputs`/`--targets`).
    pub fn new(source: DataSource) -> Batches {
        Batches { source, cache: Mutex::new(HashMap::new()) }
    }

    pub fn source(&self) -> &DataSource {
        &self.source
    }

    /// Builds the batch of models with per-sample shape `sample` and `classes` classes now,
    /// so that a data problem is reported before the first model.
    pub fn prepare(&self, spec: &BatchSpec, sample: Vec<usize>, classes: usize) -> Result<()> {
        self.get(spec, sample, classes).map(drop)
    }

    /// The batch `spec` gives `model` (`opts`: the spec's, with the shape an explicit batch fixes).
    fn for_model(&self, spec: &BatchSpec, model: &Model, opts: &ScoreOptions) -> Result<Arc<Batch>> {
        let sample = crate::sample_shape(model, opts.input_shape.as_deref())?;
        let classes = match spec.num_classes {
            Some(c) => c,
            None => crate::num_classes(model, opts)?,
        };
        self.get(spec, sample, classes)
    }

    fn get(&self, spec: &BatchSpec, sample: Vec<usize>, classes: usize) -> Result<Arc<Batch>> {
        let key = (sample.clone(), classes);
        if let Some(b) = self.cache.lock().unwrap().get(&key) {
            return Ok(b.clone());
        }
        let b = Arc::new(load_batch(&self.source, &spec.request(sample, classes))?);
        self.cache.lock().unwrap().insert(key, b.clone());
        Ok(b)
    }
}

/// Scores `model` with the proxies `names` on the batch `spec` describes, from `batches`.
pub fn score_model(model: &Model, spec: &BatchSpec, batches: &Batches, names: &[&str], engine: &dyn Engine) -> Result<Scored> {
    let mut opts = spec.options();
    if let (None, None, DataSource::Npy { inputs, .. }) = (&opts.input_shape, model.sample_shape(), batches.source()) {
        // an explicit batch fixes the symbolic dimensions
        opts.input_shape = Some(crate::npy_shape(inputs)?);
    }
    let batch = batches.for_model(spec, model, &opts)?;
    let results = proxies::find_measures(model, &batch, names, engine, &opts);
    let layers = if spec.per_layer { Some(crate::layer_names(model, &opts, batch.len()).unwrap_or_default()) } else { None };
    Ok(Scored { batch: batch.len(), results, layers })
}
