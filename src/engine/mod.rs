//! Engines run a graph (a forward or forward+backward program). The trait is small on
//! purpose: load once (the engine optimises the plan), then run many batches.

#[cfg(feature = "ort")]
pub mod ort;
pub mod tract;

use crate::onnx::ir::{Graph, Tensor};
use anyhow::Result;
use indexmap::IndexMap;

/// Named outputs of one run, in the graph's output order.
pub type Outputs = IndexMap<String, Tensor>;

pub trait Engine: Send + Sync {
    /// Short name recorded in results ("tract", "ort-cpu", ...).
    fn name(&self) -> String;
    /// Prepares `graph` (every input shape static) for repeated runs.
    fn load(&self, graph: &Graph) -> Result<Box<dyn Program>>;
}

pub trait Program: Send + Sync {
    /// Runs with the graph inputs bound by name; returns every graph output.
    fn run(&self, inputs: &[(&str, &Tensor)]) -> Result<Outputs>;
    /// The engine that runs it (an engine may hand a program it cannot run to another:
    /// ONNX Runtime's CPU provider gives float64 convolutions to tract).
    fn engine(&self) -> String;
}

/// Builds an engine by name: `auto` (the default: ONNX Runtime's CPU provider when its
/// library can be loaded, else tract), `tract` or, with the `ort` feature, `ort-cpu`,
/// `ort-cuda` and `ort`.
pub fn by_name(name: &str) -> Result<Box<dyn Engine>> {
    by_name_with_threads(name, 1)
}

/// Threads to use for a requested count (0 = every core).
pub fn resolve_threads(threads: usize) -> usize {
    if threads > 0 {
        return threads;
    }
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// As [`by_name`], with a thread count for the engine's kernels (tract's matrix products;
/// ONNX Runtime's intra-op threads); 0 means every core.
pub fn by_name_with_threads(name: &str, threads: usize) -> Result<Box<dyn Engine>> {
    let threads = resolve_threads(threads);
    match name {
        "tract" => Ok(Box::new(tract::TractEngine::with_threads(threads))),
        #[cfg(feature = "ort")]
        "auto" => match ort::OrtEngine::cpu(threads) {
            Ok(e) => Ok(Box::new(e)),
            Err(_) => Ok(Box::new(tract::TractEngine::with_threads(threads))),
        },
        #[cfg(not(feature = "ort"))]
        "auto" => Ok(Box::new(tract::TractEngine::with_threads(threads))),
        #[cfg(feature = "ort")]
        "ort" | "ort-cpu" | "ort-cuda" => Ok(Box::new(ort::OrtEngine::by_name(name, threads)?)),
        #[cfg(not(feature = "ort"))]
        "ort" | "ort-cpu" | "ort-cuda" => anyhow::bail!(
            "engine '{name}' needs ONNX Runtime support, which this build of zerocost does not have: rebuild with `cargo build --release --features ort`"
        ),
        #[cfg(feature = "ort")]
        other => anyhow::bail!("unknown engine '{other}' (available: auto, tract, ort-cpu, ort-cuda, ort)"),
        #[cfg(not(feature = "ort"))]
        other => anyhow::bail!("unknown engine '{other}' (available: auto, tract; ort-cpu, ort-cuda and ort with the `ort` feature)"),
    }
}
