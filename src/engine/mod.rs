//! Engines run a graph (a forward or forward+backward program). The trait is small on
//! purpose: load once (the engine optimises the plan), then run many batches.

#[cfg(feature = "ort")]
pub mod ort;
pub mod tract;

use crate::onnx::ir::{Graph, Tensor};
use anyhow::Result;
use indexmap::IndexMap;
use std::path::PathBuf;

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

/// ONNX Runtime settings given as values, on the commands that run an engine (`score`,
/// `batch`). Each one left out falls back to its environment variable (see `engine::ort`).
#[derive(clap::Args, Clone, Debug, Default)]
#[command(next_help_heading = "ONNX Runtime")]
pub struct OrtOptions {
    /// The ONNX Runtime library (libonnxruntime.so...); default: ORT_DYLIB_PATH, else
    /// ZEROCOST_ORT_LIB, else the python3 `onnxruntime` package's.
    #[arg(long, value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
    /// CUDA device of ort-cuda and ort (default: ZEROCOST_CUDA_DEVICE, else 0).
    #[arg(long, value_name = "N")]
    pub device_id: Option<u32>,
    /// ONNX Runtime graph optimisation: disable | basic | extended | layout | all (default:
    /// ZEROCOST_ORT_OPT, else disable).
    #[arg(long, value_name = "LEVEL", value_parser = ["disable", "basic", "extended", "layout", "all"])]
    pub ort_opt: Option<String>,
}

/// Builds an engine by name: `auto` (the default: ONNX Runtime's CPU provider when its
/// library can be loaded, else tract), `tract` or, with the `ort` feature, `ort-cpu`,
/// `ort-cuda` and `ort`; ONNX Runtime configured from the environment.
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
    build(name, threads, &OrtOptions::default())
}

/// As [`by_name_with_threads`], with ONNX Runtime's settings.
#[cfg_attr(not(feature = "ort"), allow(unused_variables))]
pub fn build(name: &str, threads: usize, ort_options: &OrtOptions) -> Result<Box<dyn Engine>> {
    let threads = resolve_threads(threads);
    match name {
        "tract" => Ok(Box::new(tract::TractEngine::with_threads(threads))),
        #[cfg(feature = "ort")]
        "auto" => match ort::OrtEngine::build("ort-cpu", threads, ort_options) {
            Ok(e) => Ok(Box::new(e)),
            Err(_) => Ok(Box::new(tract::TractEngine::with_threads(threads))),
        },
        #[cfg(not(feature = "ort"))]
        "auto" => Ok(Box::new(tract::TractEngine::with_threads(threads))),
        #[cfg(feature = "ort")]
        "ort" | "ort-cpu" | "ort-cuda" => Ok(Box::new(ort::OrtEngine::build(name, threads, ort_options)?)),
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
