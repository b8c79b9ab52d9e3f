//! What the commands share: exit statuses and error kinds, argument groups, value
//! parsers, and the output that is created only when there is something to write.

pub mod grad_graph;
pub mod inspect;
pub mod ops;
pub mod proxies;
pub mod score;

use anyhow::Result;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use zerocost::onnx::canon::BnMode;

/// Every model was read and scored (proxy-level errors are part of the output).
pub const EXIT_OK: i32 = 0;
/// At least one model could not be read or scored.
pub const EXIT_MODEL: i32 = 1;
/// A usage or input error not tied to one model (bad flag, conflicting flags, unwritable
/// output, bad data source); clap's own errors exit with it too.
pub const EXIT_USAGE: i32 = 2;

/// How the command was called is wrong (found after parsing): reported like clap's errors.
#[derive(Debug)]
pub struct Usage(pub String);

/// One model could not be read or scored: exit status 1. The message names the file once.
#[derive(Debug)]
pub struct ModelFailed(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Usage {}

impl fmt::Display for ModelFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ModelFailed {}

pub fn usage(msg: String) -> anyhow::Error {
    Usage(msg).into()
}

/// `e`, a failure of the model at `path`, as one line that names the file once: the
/// library's messages often name it already, sometimes at several levels of context.
pub fn model_failed(path: &Path, e: &anyhow::Error) -> ModelFailed {
    let shown = path.display().to_string();
    // one_line already says a repeated `file: ` once
    let text = zerocost::error_text::one_line(e);
    ModelFailed(if text.contains(&shown) { text } else { format!("{shown}: {text}") })
}

/// `value_parser` of counts that must be at least 1.
pub fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// `value_parser` of the library's `FromStr` types, so a bad value is a usage error.
pub fn parsed<T: std::str::FromStr<Err = anyhow::Error>>(s: &str) -> Result<T, String> {
    s.parse::<T>().map_err(|e| format!("{e:#}"))
}

#[derive(clap::Args)]
pub struct ShapeArgs {
    /// Full input shape for models with symbolic dimensions, e.g. 1x3x32x32 (the batch
    /// entry is replaced by the batch size).
    #[arg(long, value_parser = parse_shape, value_name = "SHAPE")]
    pub input_shape: Option<Shape>,
    /// BatchNormalization statistics: batch (training mode, as the paper) or running.
    #[arg(long, default_value = "batch")]
    pub bn: BnMode,
    /// Memory budget (e.g. 8G, 512M): a model whose inputs or tensors would need more is
    /// refused with the size it asked for. Default: 80% of the memory available (and of
    /// `ulimit -v`).
    #[arg(long, value_name = "SIZE", value_parser = zerocost::memory::parse_size)]
    pub max_memory: Option<u64>,
}

impl ShapeArgs {
    /// Sets the process's memory budget from `--max-memory`, first thing.
    pub fn apply_budget(&self) {
        if let Some(b) = self.max_memory {
            zerocost::memory::set_max_memory(b);
        }
    }
}

/// A full input shape given on the command line (`1x3x32x32`).
#[derive(Clone)]
pub struct Shape(pub Vec<usize>);

fn parse_shape(s: &str) -> Result<Shape, String> {
    let dims = s
        .split(['x', ','])
        .map(|d| d.trim().parse::<usize>().ok().filter(|&d| d > 0).ok_or_else(|| format!("bad shape '{s}': expected e.g. 1x3x32x32")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Shape(dims))
}

impl ShapeArgs {
    pub fn shape(&self) -> Option<&[usize]> {
        self.input_shape.as_ref().map(|s| s.0.as_slice())
    }
}

/// ONNX Runtime settings, on the commands that run an engine (score, batch). Each flag sets
/// the environment variable named in its help, which the engine reads, so the flag wins
/// over the variable and also reaches the workers of `batch`.
#[derive(clap::Args)]
#[command(next_help_heading = "ONNX Runtime")]
pub struct OrtArgs {
    /// The ONNX Runtime library (libonnxruntime.so...); default: ORT_DYLIB_PATH, else
    /// ZEROCOST_ORT_LIB, else the python3 `onnxruntime` package's. Sets ZEROCOST_ORT_LIB.
    #[arg(long, value_name = "PATH")]
    ort_lib: Option<PathBuf>,
    /// CUDA device of ort-cuda (default 0). Sets ZEROCOST_CUDA_DEVICE.
    #[arg(long, value_name = "N")]
    device_id: Option<u32>,
    /// ONNX Runtime graph optimisation: disable | basic | extended | layout | all (default).
    /// Sets ZEROCOST_ORT_OPT.
    #[arg(long, value_name = "LEVEL", value_parser = ["disable", "basic", "extended", "layout", "all"])]
    ort_opt: Option<String>,
}

impl OrtArgs {
    /// Called first thing, before any thread starts.
    pub fn apply(&self) {
        if let Some(p) = &self.ort_lib {
            // ORT_DYLIB_PATH is the `ort` crate's first choice: the flag must win over it
            std::env::remove_var("ORT_DYLIB_PATH");
            std::env::set_var("ZEROCOST_ORT_LIB", p);
        }
        if let Some(d) = self.device_id {
            std::env::set_var("ZEROCOST_CUDA_DEVICE", d.to_string());
        }
        if let Some(o) = &self.ort_opt {
            std::env::set_var("ZEROCOST_ORT_OPT", o);
        }
    }
}

/// Standard output, or a file (checked writable beforehand) created at the first write,
/// so that a run where nothing succeeded leaves no file behind, nor truncates one.
pub struct Output {
    path: Option<PathBuf>,
    out: Option<Box<dyn Write>>,
}

impl Output {
    pub fn new(path: Option<PathBuf>) -> Output {
        Output { path, out: None }
    }

    pub fn write(&mut self, text: &str) -> Result<()> {
        if self.out.is_none() {
            self.out = Some(match &self.path {
                Some(p) => Box::new(std::fs::File::create(p).map_err(|e| anyhow::anyhow!("-o {}: cannot create: {e}", p.display()))?),
                None => Box::new(std::io::stdout()),
            });
        }
        let out = self.out.as_mut().expect("opened above");
        out.write_all(text.as_bytes())?;
        out.flush()?;
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_none()
    }
}

/// Writes one document to standard output in `format` (the commands without `-o`).
pub fn print(text: &str) -> Result<()> {
    Output::new(None).write(text)
}
