//! `zerocost score`: proxies of each model, written as a table, JSON, JSON lines or CSV.

use super::{model_failed, usage, Output, EXIT_MODEL, EXIT_OK};
use anyhow::{Context, Result};
use indexmap::IndexMap;
use serde_json::Value;
use std::path::{Path, PathBuf};
use zerocost::data::DataSource;
use zerocost::engine::{self, Engine, OrtOptions};
use zerocost::onnx::Model;
use zerocost::proxies::{self, ProxyResult};
use zerocost::scoring::{self, BatchSpec, Batches};
use zerocost::report::{self, resolve_format, Format};

#[derive(clap::Args)]
pub struct ScoreArgs {
    /// ONNX model files to score.
    #[arg(required = true, value_name = "MODEL")]
    models: Vec<PathBuf>,
    /// Proxies to compute (repeatable or comma-separated; "all" for every one, "az_nas" for
    /// AZ-NAS's four components; see `zerocost proxies`). Default: the paper's proxies with
    /// params and flops.
    #[arg(long = "proxy", short = 'p', value_name = "NAMES")]
    proxies: Vec<String>,
    /// Explicit batch: float32 inputs (.npy, samples first); its shape stands for
    /// --input-shape when the model's is symbolic.
    #[arg(long, requires = "targets", conflicts_with = "data", value_name = "FILE")]
    inputs: Option<PathBuf>,
    /// Explicit batch: int64 or int32 class targets (.npy).
    #[arg(long, requires = "inputs", value_name = "FILE")]
    targets: Option<PathBuf>,
    #[command(flatten)]
    spec: BatchSpec,
    /// Output format (default: the one the extension of -o names, else table): table,
    /// json (one array of per-model objects), jsonl (one object per line) or csv.
    #[arg(long, value_enum, value_name = "FORMAT")]
    format: Option<Format>,
    /// Write to FILE instead of standard output (.txt, .json, .jsonl or .csv); created only
    /// once a model is scored.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    ort: OrtOptions,
}

/// One scored model.
struct Scored {
    model: String,
    batch: usize,
    results: IndexMap<String, ProxyResult>,
    layers: Option<Vec<String>>,
}

pub fn run(args: ScoreArgs) -> Result<i32> {
    args.spec.shape.apply_budget();
    // everything that can be refused is refused before the first model
    let names = proxies::resolve_names(&args.proxies).map_err(|e| usage(format!("{e:#}")))?;
    if names.is_empty() {
        return Err(usage("--proxy names no proxy (see `zerocost proxies`)".into()));
    }
    let format = resolve_format(args.format, args.output.as_deref()).map_err(usage)?;
    if let Some(p) = &args.output {
        zerocost::output_path::check_writable(p, "-o", &[])?;
    }
    let source = match (&args.inputs, &args.targets) {
        (Some(i), Some(t)) => DataSource::Npy { inputs: i.clone(), targets: t.clone() },
        _ => args.spec.data.value.clone(),
    };
    check_source(&source)?;
    let engine = engine::build(&args.spec.engine, args.spec.threads, &args.ort)?;
    let mut writer = Writer { out: Output::new(args.output.clone()), format, per_layer: args.spec.per_layer, json: Vec::new() };
    let batches = Batches::new(source);
    let mut failed = 0;
    for path in &args.models {
        match score_file(&args.spec, path, &batches, &names, engine.as_ref()) {
            Ok(s) => {
                if let Some(why) = unscored(&s) {
                    eprintln!("zerocost: {}", model_failed(path, &anyhow::anyhow!("no proxy could be computed ({why})")));
                    failed += 1;
                }
                writer.add(&s, &engine.name())?
            }
            Err(e) => {
                eprintln!("zerocost: {}", model_failed(path, &e));
                failed += 1;
            }
        }
    }
    writer.finish()?;
    Ok(if failed > 0 { EXIT_MODEL } else { EXIT_OK })
}

/// Why no proxy has a value on a model (the first error), when none has: the model could
/// not be scored at all, although its errors are written. Some proxies failing is not that.
fn unscored(s: &Scored) -> Option<String> {
    if s.results.values().any(|r| r.value.is_some()) {
        return None;
    }
    let (name, r) = s.results.first()?;
    Some(format!("{name}: {}", r.error.as_deref().unwrap_or("no value")))
}

/// A data source on disk must exist: a typo is one error, not one per model.
fn check_source(source: &DataSource) -> Result<()> {
    match source.paths().into_iter().find(|p| !p.exists()) {
        Some(p) => anyhow::bail!("data source {source}: {} does not exist", p.display()),
        None => Ok(()),
    }
}

/// Loads `path`, chooses its output and scores it.
fn score_file(spec: &BatchSpec, path: &Path, batches: &Batches, names: &[&str], engine: &dyn Engine) -> Result<Scored> {
    let mut model = Model::load(path)?;
    for note in &model.notes {
        eprintln!("zerocost: note: {}: {note}", model.path.display());
    }
    choose_output(&mut model, spec.output_name.as_deref())?;
    let s = scoring::score_model(&model, spec, batches, names, engine)?;
    Ok(Scored { model: path.display().to_string(), batch: s.batch, results: s.results, layers: s.layers })
}

/// Keeps the output to score; with several and no choice, the first, said on stderr.
fn choose_output(model: &mut Model, name: Option<&str>) -> Result<()> {
    let outputs = model.raw.graph.outputs.clone();
    let name = match name {
        Some(n) => n,
        None if outputs.len() > 1 => {
            eprintln!("zerocost: note: {} has {} outputs ({}): scoring '{}' (choose with --output-name)", model.path.display(), outputs.len(), outputs.join(", "), outputs[0]);
            &outputs[0]
        }
        None => return Ok(()),
    };
    zerocost::select_output(model, name)
}

/// Writes each scored model as soon as it is known, except JSON: one array at the end.
struct Writer {
    out: Output,
    format: Format,
    per_layer: bool,
    json: Vec<Value>,
}

impl Writer {
    fn add(&mut self, s: &Scored, engine: &str) -> Result<()> {
        let layers = s.layers.as_deref();
        let json = || report::score_json(&s.model, engine, s.batch, &s.results, layers);
        match self.format {
            Format::Table => {
                let gap = if self.out.is_empty() { "" } else { "\n" };
                self.out.write(&format!("{gap}{}", report::score_table(&s.model, engine, s.batch, &s.results, layers)))
            }
            Format::Json => {
                self.json.push(json());
                Ok(())
            }
            Format::Jsonl => self.out.write(&(serde_json::to_string(&json())? + "\n")),
            Format::Csv => {
                let header = if self.out.is_empty() { report::score_csv_header(self.per_layer) } else { "" };
                self.out.write(&format!("{header}{}", report::score_csv(&s.model, &s.results, layers)))
            }
        }
    }

    fn finish(mut self) -> Result<()> {
        if self.format == Format::Json && !self.json.is_empty() {
            let doc = serde_json::to_string_pretty(&Value::Array(std::mem::take(&mut self.json))).context("JSON output")?;
            self.out.write(&(doc + "\n"))?;
        }
        Ok(())
    }
}
