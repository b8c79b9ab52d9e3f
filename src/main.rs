//! The `zerocost` command line: parses arguments, calls the library, prints.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use zerocost::data::{load_batch, BatchRequest, DataSource, Dataload, Normalization};
use zerocost::onnx::canon::{BnMode, CanonOptions};
use zerocost::onnx::Model;
use zerocost::proxies::{self, ScoreOptions};
use zerocost::{engine, inspect, report};

#[derive(Parser)]
#[command(name = "zerocost", version, about = "Zero-cost proxies for neural architecture search, on any ONNX network")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    ort: OrtArgs,
}

/// ONNX Runtime settings (engines ort-cpu, ort-cuda, ort; `ort` feature). Each flag sets the
/// environment variable named in its help, which the engine reads, so the flag wins over the
/// variable and also reaches the workers of `batch` and `search`.
#[derive(clap::Args)]
struct OrtArgs {
    /// The ONNX Runtime library (libonnxruntime.so...); default: ORT_DYLIB_PATH, else
    /// ZEROCOST_ORT_LIB, else the python3 `onnxruntime` package's. Sets ZEROCOST_ORT_LIB.
    #[arg(long, global = true, value_name = "PATH")]
    ort_lib: Option<PathBuf>,
    /// CUDA device of ort-cuda (default 0). Sets ZEROCOST_CUDA_DEVICE.
    #[arg(long, global = true, value_name = "N")]
    device_id: Option<u32>,
    /// ONNX Runtime graph optimisation: disable | basic | extended | layout | all (default).
    /// Sets ZEROCOST_ORT_OPT.
    #[arg(long, global = true, value_name = "LEVEL", value_parser = ["disable", "basic", "extended", "layout", "all"])]
    ort_opt: Option<String>,
}

impl OrtArgs {
    /// Called first thing, before any thread starts.
    fn apply(&self) {
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

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Format {
    Table,
    Json,
    Jsonl,
    Csv,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Wrt {
    Weights,
    Input,
    All,
}

#[derive(clap::Args)]
struct ShapeArgs {
    /// Full input shape for models with symbolic dimensions, e.g. 1x3x32x32 (the batch
    /// entry is replaced by the batch size).
    #[arg(long, value_parser = parse_shape)]
    input_shape: Option<Shape>,
    /// BatchNormalization statistics: batch (training mode, as the paper) or running.
    #[arg(long, default_value = "batch")]
    bn: BnMode,
}

#[derive(Subcommand)]
enum Command {
    /// Score models with zero-cost proxies.
    Score {
        #[arg(required = true)]
        models: Vec<PathBuf>,
        /// Proxies to compute (repeatable or comma-separated; "all" for every one, "az_nas" for AZ-NAS's four components). Default: the paper's proxies with params and flops.
        #[arg(long = "proxy", short = 'p')]
        proxies: Vec<String>,
        /// Explicit batch: float32 inputs (.npy, samples first).
        #[arg(long, requires = "targets")]
        inputs: Option<PathBuf>,
        /// Explicit batch: int64 or int32 class targets (.npy).
        #[arg(long, requires = "inputs")]
        targets: Option<PathBuf>,
        /// Data source: synthetic | npy:DIR | npz:FILE | cifar10:DIR | cifar100:DIR | imagenet16:DIR | images:DIR.
        #[arg(long, default_value = "synthetic")]
        data: String,
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
        /// random (the first k batches) or grasp (k samples per class, class order).
        #[arg(long, default_value = "random")]
        dataload: String,
        /// k of the dataload.
        #[arg(long, default_value_t = 1)]
        dataload_info: usize,
        /// Number of classes (default: the model's number of outputs).
        #[arg(long)]
        num_classes: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Shuffle the data source (seeded) before taking samples.
        #[arg(long)]
        shuffle: bool,
        /// Per-channel normalization of image data: none | cifar10 | cifar100 | imagenet | imagenet16.
        #[arg(long)]
        normalize: Option<String>,
        #[command(flatten)]
        shape: ShapeArgs,
        /// Engine: auto (ONNX Runtime's CPU provider when its library is found, else tract),
        /// tract (embedded CPU engine), ort-cpu, ort-cuda, ort (CUDA if available). ONNX
        /// Runtime settings: --ort-lib, --device-id, --ort-opt (or ORT_DYLIB_PATH/ZEROCOST_ORT_LIB,
        /// ZEROCOST_CUDA_DEVICE, ZEROCOST_ORT_OPT).
        #[arg(long, default_value = "auto")]
        engine: String,
        /// Threads for the engine's kernels (0: every core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Floating-point precision of the data passes: f32 (default, as the paper's code) or
        /// f64 (synflow is always f64).
        #[arg(long, default_value = "f32", value_parser = ["f32", "f64"])]
        precision: String,
        /// Also report per-layer values.
        #[arg(long)]
        per_layer: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Write to FILE instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Describe a model: inputs, outputs, scored layers, params, MACs, ops and their gradients.
    Inspect {
        model: PathBuf,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        #[arg(long, default_value_t = 1)]
        batch_size: usize,
        #[command(flatten)]
        shape: ShapeArgs,
    },
    /// Score many models from a YAML job; resumable, JSON-lines results, shards.
    Batch(zerocost::jobs::BatchArgs),
    /// Join the JSON-lines outputs of shards, refusing conflicting duplicates.
    Merge(zerocost::jobs::MergeArgs),
    /// Rank correlation of each proxy with known accuracies.
    Correlate(zerocost::jobs::CorrelateArgs),
    /// Neural architecture search over a built-in space with proxies.
    Search(zerocost::search::SearchArgs),
    /// Built-in search spaces: export a network as ONNX, enumerate cells.
    Space(zerocost::search::SpaceArgs),
    /// Write the forward+backward program (mean cross-entropy loss) as an ONNX file.
    GradGraph {
        model: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        /// Which gradients become outputs.
        #[arg(long, value_enum, default_value = "weights")]
        wrt: Wrt,
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
        #[command(flatten)]
        shape: ShapeArgs,
    },
}

/// A full input shape given on the command line (`1x3x32x32`).
#[derive(Clone)]
struct Shape(Vec<usize>);

fn parse_shape(s: &str) -> Result<Shape, String> {
    s.split(['x', ','])
        .map(|d| d.trim().parse::<usize>().map_err(|_| format!("bad shape '{s}': expected e.g. 1x3x32x32")))
        .collect::<Result<Vec<_>, _>>()
        .map(Shape)
}

impl ShapeArgs {
    fn shape(&self) -> Option<&[usize]> {
        self.input_shape.as_ref().map(|s| s.0.as_slice())
    }
}

fn main() {
    let cli = Cli::parse();
    cli.ort.apply();
    let code = match run(cli) {
        Ok(code) => code,
        // the reader of our output went away (`| head`): not an error
        Err(e) if e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)) => 0,
        Err(e) => {
            eprintln!("zerocost: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Score {
            models,
            proxies: names,
            inputs,
            targets,
            data,
            batch_size,
            dataload,
            dataload_info,
            num_classes,
            seed,
            shuffle,
            normalize,
            shape,
            engine: engine_name,
            threads,
            precision,
            per_layer,
            format,
            output,
        } => {
            let names = proxies::resolve_names(&names)?;
            let source = match (inputs, targets) {
                (Some(i), Some(t)) => DataSource::Npy { inputs: i, targets: t },
                _ => data.parse::<DataSource>()?,
            };
            let dataload: Dataload = dataload.parse()?;
            let normalization = normalize.map(|n| n.parse::<Normalization>()).transpose()?;
            let engine = engine::by_name_with_threads(&engine_name, threads)?;
            let opts = ScoreOptions { bn: shape.bn, input_shape: shape.shape().map(<[usize]>::to_vec), float64: precision == "f64" };
            let mut out: Box<dyn Write> = match &output {
                Some(p) => Box::new(std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?),
                None => Box::new(std::io::stdout()),
            };
            if format == Format::Csv {
                out.write_all(report::CSV_HEADER.as_bytes())?;
            }
            let mut failed = 0;
            for path in &models {
                let shown = path.display().to_string();
                let model = match Model::load(path) {
                    Ok(m) => m,
                    Err(e) => {
                        eprintln!("zerocost: {e:#}");
                        failed += 1;
                        continue;
                    }
                };
                let prepared = (|| -> Result<_> {
                    let sample = zerocost::sample_shape(&model, opts.input_shape.as_deref())?;
                    let classes = match num_classes {
                        Some(c) => c,
                        None => zerocost::num_classes(&model, &opts)?,
                    };
                    let req = BatchRequest {
                        batch_size,
                        dataload,
                        dataload_info,
                        num_classes: classes,
                        input_shape: sample,
                        seed,
                        shuffle,
                        normalization: normalization.clone(),
                    };
                    load_batch(&source, &req)
                })();
                let batch = match prepared {
                    Ok(b) => b,
                    Err(e) => {
                        eprintln!("zerocost: {}: {e:#}", shown);
                        failed += 1;
                        continue;
                    }
                };
                let results = proxies::find_measures(&model, &batch, &names, engine.as_ref(), &opts);
                let layers: Option<Vec<String>> = if per_layer {
                    Some(zerocost::layer_names(&model, &opts, batch.len()).unwrap_or_default())
                } else {
                    None
                };
                let text = match format {
                    Format::Table => report::score_table(&shown, &engine.name(), batch.len(), &results, layers.as_deref()),
                    Format::Json => {
                        serde_json::to_string_pretty(&report::score_json(&shown, &engine.name(), batch.len(), &results, layers.as_deref()))? + "\n"
                    }
                    Format::Jsonl => {
                        serde_json::to_string(&report::score_json(&shown, &engine.name(), batch.len(), &results, layers.as_deref()))? + "\n"
                    }
                    Format::Csv => report::score_csv(&shown, &results),
                };
                out.write_all(text.as_bytes())?;
                out.flush()?;
            }
            Ok(if failed > 0 { 1 } else { 0 })
        }
        Command::Inspect { model, format, batch_size, shape } => {
            let m = Model::load(&model)?;
            let info = inspect::inspect(&m, batch_size, shape.shape(), shape.bn)?;
            match format {
                Format::Json | Format::Jsonl => std::io::stdout().write_all((serde_json::to_string_pretty(&info)? + "\n").as_bytes())?,
                Format::Table | Format::Csv => std::io::stdout().write_all(inspect::render(&info).as_bytes())?,
            }
            Ok(0)
        }
        Command::Batch(args) => zerocost::jobs::batch(args),
        Command::Merge(args) => zerocost::jobs::merge(args),
        Command::Correlate(args) => zerocost::jobs::correlate(args),
        Command::Search(args) => zerocost::search::search(args),
        Command::Space(args) => zerocost::search::space(args),
        Command::GradGraph { model, output, wrt, batch_size, shape } => {
            let m = Model::load(&model)?;
            let shapes = m.input_shapes(batch_size, shape.shape())?;
            let g = m.canonical(&shapes, &CanonOptions { bn: shape.bn, ..Default::default() })?;
            let layers = zerocost::onnx::layers::scored_layers(&g)?;
            let (weights, input) = match wrt {
                Wrt::Weights => (true, false),
                Wrt::Input => (false, true),
                Wrt::All => (true, true),
            };
            let program = proxies::passes::grad_graph(&g, &layers, weights, input)?;
            zerocost::onnx::proto::write_model(&program, &output)?;
            eprintln!("wrote {}: inputs {:?}, outputs {:?}", output.display(), program.inputs, program.outputs);
            Ok(0)
        }
    }
}
