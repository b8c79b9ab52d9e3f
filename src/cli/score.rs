//! `zerocost score`: proxies of each model, written as a table, JSON, JSON lines or CSV.

use super::{model_failed, parsed, positive, usage, Output, OrtArgs, ShapeArgs, EXIT_MODEL, EXIT_OK};
use anyhow::{Context, Result};
use indexmap::IndexMap;
use serde_json::Value;
use std::path::{Path, PathBuf};
use zerocost::data::{load_batch, Batch, BatchRequest, DataSource, Dataload, Normalization};
use zerocost::engine::{self, Engine};
use zerocost::onnx::Model;
use zerocost::proxies::{self, ProxyResult, ScoreOptions};
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
    /// Data source: synthetic | npy:DIR | npz:FILE | cifar10:DIR | cifar100:DIR | imagenet16:DIR | images:DIR.
    #[arg(long, default_value = "synthetic", value_parser = parsed::<DataSource>, value_name = "SOURCE")]
    data: DataSource,
    /// Samples in the batch the proxies see.
    #[arg(long, default_value_t = 64, value_parser = positive, value_name = "N")]
    batch_size: usize,
    /// random (the first k batches) or grasp (k samples per class, class order).
    #[arg(long, default_value = "random", value_parser = parsed::<Dataload>)]
    dataload: Dataload,
    /// k of the dataload.
    #[arg(long, default_value_t = 1, value_parser = positive, value_name = "K")]
    dataload_info: usize,
    /// Number of classes (default: the model's number of outputs).
    #[arg(long, value_parser = positive, value_name = "N")]
    num_classes: Option<usize>,
    /// Seed of the synthetic data and of --shuffle.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Shuffle the data source (seeded) before taking samples.
    #[arg(long)]
    shuffle: bool,
    /// Per-channel normalization of image data: none | cifar10 | cifar100 | imagenet | imagenet16.
    #[arg(long, value_parser = parsed::<Normalization>, value_name = "NAME")]
    normalize: Option<Normalization>,
    #[command(flatten)]
    shape: ShapeArgs,
    /// The graph output to score, for models with several (default: the first, named on
    /// standard error). Nodes that do not lead to it are dropped before scoring.
    #[arg(long, value_name = "NAME")]
    output_name: Option<String>,
    /// Engine: auto (ONNX Runtime's CPU provider when its library is found, else tract),
    /// tract (embedded CPU engine), ort-cpu, ort-cuda, ort (CUDA if available).
    #[arg(long, default_value = "auto", value_parser = ["auto", "tract", "ort-cpu", "ort-cuda", "ort"])]
    engine: String,
    /// Threads for the engine's kernels (0: every core).
    #[arg(long, default_value_t = 0, value_name = "N")]
    threads: usize,
    /// Floating-point precision of the data passes: f32 (default, as the paper's code) or
    /// f64 (synflow is always f64).
    #[arg(long, default_value = "f32", value_parser = ["f32", "f64"])]
    precision: String,
    /// Also report per-layer values.
    #[arg(long)]
    per_layer: bool,
    /// Output format (default: the one the extension of -o names, else table): table,
    /// json (one array of per-model objects), jsonl (one object per line) or csv.
    #[arg(long, value_enum, value_name = "FORMAT")]
    format: Option<Format>,
    /// Write to FILE instead of standard output (.txt, .json, .jsonl or .csv); created only
    /// once a model is scored.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    ort: OrtArgs,
}

/// One scored model.
struct Scored {
    model: String,
    batch: usize,
    results: IndexMap<String, ProxyResult>,
    layers: Option<Vec<String>>,
}

pub fn run(args: ScoreArgs) -> Result<i32> {
    args.shape.apply_budget();
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
        _ => args.data.clone(),
    };
    check_source(&source)?;
    args.ort.apply();
    let engine = engine::by_name_with_threads(&args.engine, args.threads)?;
    let mut writer = Writer { out: Output::new(args.output.clone()), format, per_layer: args.per_layer, json: Vec::new() };
    let mut failed = 0;
    for path in &args.models {
        match score_model(&args, path, &source, &names, engine.as_ref()) {
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
    let paths: Vec<&PathBuf> = match source {
        DataSource::Synthetic => vec![],
        DataSource::Npy { inputs, targets } => vec![inputs, targets],
        DataSource::NpyDir(p) | DataSource::Npz(p) | DataSource::Cifar10(p) | DataSource::Cifar100(p) => vec![p],
        DataSource::ImageNet16(p) | DataSource::Images(p) => vec![p],
    };
    match paths.into_iter().find(|p| !p.exists()) {
        Some(p) => anyhow::bail!("data source {source}: {} does not exist", p.display()),
        None => Ok(()),
    }
}

/// Loads `path`, chooses its output, builds the batch and computes the proxies.
fn score_model(args: &ScoreArgs, path: &Path, source: &DataSource, names: &[&str], engine: &dyn Engine) -> Result<Scored> {
    let mut model = Model::load(path)?;
    for note in &model.notes {
        eprintln!("zerocost: note: {}: {note}", model.path.display());
    }
    choose_output(&mut model, args.output_name.as_deref())?;
    let mut opts = ScoreOptions { bn: args.shape.bn, input_shape: args.shape.shape().map(<[usize]>::to_vec), float64: args.precision == "f64" };
    if let (None, None, Some(inputs)) = (&opts.input_shape, model.sample_shape(), &args.inputs) {
        // the explicit batch fixes the symbolic dimensions
        opts.input_shape = Some(zerocost::npy_shape(inputs)?);
    }
    let batch = make_batch(args, &model, source, &opts)?;
    let results = proxies::find_measures(&model, &batch, names, engine, &opts);
    let layers = if args.per_layer { Some(zerocost::layer_names(&model, &opts, batch.len()).unwrap_or_default()) } else { None };
    Ok(Scored { model: path.display().to_string(), batch: batch.len(), results, layers })
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

fn make_batch(args: &ScoreArgs, model: &Model, source: &DataSource, opts: &ScoreOptions) -> Result<Batch> {
    let sample = zerocost::sample_shape(model, opts.input_shape.as_deref())?;
    let classes = match args.num_classes {
        Some(c) => c,
        None => zerocost::num_classes(model, opts)?,
    };
    let req = BatchRequest {
        batch_size: args.batch_size,
        dataload: args.dataload,
        dataload_info: args.dataload_info,
        num_classes: classes,
        input_shape: sample,
        seed: args.seed,
        shuffle: args.shuffle,
        normalization: args.normalize.clone(),
    };
    load_batch(source, &req)
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
