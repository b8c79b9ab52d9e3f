//! Batch jobs over model zoos: YAML jobs (`spec`), the models they name (`models`: files,
//! folders, globs, list files; `cells`: the cells of a built-in search space), the
//! resumable JSON-lines results file (`store`), the run itself (`run`), shards for cluster
//! schedulers (`shard`), `merge` of shard outputs, and correlation reports with plots
//! (`correlate`, `stats`, `plot`).

pub mod cells;
pub mod correlate;
pub mod merge;
pub mod models;
pub mod plot;
pub mod run;
pub mod shard;
pub mod spec;
pub mod stats;
pub mod store;
pub mod yaml;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use std::io::Write;
use std::path::PathBuf;

/// `zerocost batch JOB.yaml`
#[derive(clap::Args, Debug)]
#[command(after_help = "Exit status: 0 when every model of the run is scored; 1 when a model failed, in this run or kept \
from an earlier one (--retry-failed scores those again); 2 for a bad job file, an unusable output or other errors.")]
pub struct BatchArgs {
    /// The job file (YAML).
    pub job: PathBuf,
    /// Results file (JSON lines); overrides the job's `output` (and the shard's derived name).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Models scored at once (each worker has its own engine); overrides the job's `workers`.
    #[arg(short = 'j', long)]
    pub workers: Option<usize>,
    /// Score every model again: the results file is emptied first.
    #[arg(long)]
    pub force: bool,
    /// Score again the models whose earlier result is `failed` (their lines are removed).
    #[arg(long)]
    pub retry_failed: bool,
    /// Run only shard i of n (0-based): models i, i+n, i+2n, ... of the sorted list. Read from
    /// SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT or JOB_COMPLETION_INDEX when not given.
    #[arg(long, value_name = "i/n")]
    pub shard: Option<String>,
    /// Memory budget (e.g. 8G, 512M): a model whose tensors would need more is recorded as
    /// failed with the size it asked for, instead of taking the process down. Default: the
    /// job's `max_memory:`, else 80% of the memory available (and of `ulimit -v`).
    #[arg(long, value_name = "SIZE", value_parser = crate::memory::parse_size)]
    pub max_memory: Option<u64>,
    /// Number of shards, for a scheduler index without a count (Kubernetes'
    /// JOB_COMPLETION_INDEX); overrides the job's `shard_count`.
    #[arg(long, value_name = "N")]
    pub shard_count: Option<usize>,
    /// Check the job and the output, and list what this run would score (models not yet in the
    /// output, or lacking proxies added to the job), without scoring.
    #[arg(long)]
    pub dry_run: bool,
    /// No progress bar or per-model lines (failures are still reported).
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub ort: crate::engine::OrtOptions,
}

/// `zerocost merge`
#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// Results files (JSON lines) to join, e.g. the outputs of every shard.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Where to write the joined results (standard output when absent).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Relative difference up to which two scores of one model count as equal.
    #[arg(long, default_value_t = 1e-9)]
    pub rtol: f64,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
}

/// `zerocost correlate RESULTS.jsonl`
#[derive(clap::Args, Debug)]
pub struct CorrelateArgs {
    /// Results files (JSON lines from `batch`, `merge` or `score --format jsonl`); several
    /// are joined as `merge` does.
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// Accuracies: CSV with columns `model,accuracy` (model = file name without extension) or
    /// JSON {model: accuracy}. Default: each result's `metadata.accuracy`.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// The accuracy column of the truth file (or key of the metadata).
    #[arg(long, default_value = "accuracy")]
    pub truth_column: String,
    /// table (with a legend), json (one object) or csv (one row per proxy).
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
    /// Write scatter plots (one per proxy) and a bar chart of rho, as SVG and PNG, into DIR.
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,
    /// k of the top-k overlap (default: 10% of the models, at least 1).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Write the report to FILE instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Relative tolerance for duplicate results across files (as `merge`).
    #[arg(long, default_value_t = 1e-9)]
    pub rtol: f64,
}

fn plural(n: usize, w: &str) -> String {
    format!("{n} {w}{}", if n == 1 { "" } else { "s" })
}

/// Checks the results file before any work: a `--output` must name a file in an existing,
/// writable folder; the job's own `output` folder is created when missing (it belongs to the
/// job, as `target/` to cargo), except by a dry run, which writes nothing.
fn check_output(output: &std::path::Path, from_flag: bool, dry_run: bool) -> Result<()> {
    let folder = output.parent().filter(|d| !d.as_os_str().is_empty());
    if !from_flag {
        match folder {
            Some(dir) if !dir.is_dir() && dry_run => return Ok(()),
            Some(dir) => std::fs::create_dir_all(dir).with_context(|| format!("output {}: cannot create folder {}", output.display(), dir.display()))?,
            None => {}
        }
    }
    crate::output_path::check_writable(output, if from_flag { "--output" } else { "output" }, &[])
}

/// Refuses to add to results scored with other settings: mixing them would make the file's
/// scores incomparable.
fn refuse_stale(plan: &run::Plan, output: &std::path::Path) -> Result<()> {
    if plan.stale > 0 {
        bail!(
            "{}: {} model{} scored with other settings (data, batch size, sampling, precision or engine differ from the job's); write to a new --output, or add --force to score everything again",
            output.display(),
            plan.stale,
            if plan.stale == 1 { " was" } else { "s were" }
        );
    }
    Ok(())
}

/// `--dry-run`: what this run would score, read from the output without locking it.
fn dry_run(job: &spec::Job, models: &[models::ModelRef], output: &std::path::Path, scope: &str, args: &BatchArgs) -> Result<i32> {
    let existing = match args.force || !output.exists() {
        true => Default::default(),
        false => store::by_model(store::read(output)?, args.retry_failed),
    };
    let plan = run::plan(job, models, &existing);
    refuse_stale(&plan, output)?;
    let mut text = format!(
        "{}: {scope}; proxies {}; output {}; {} already done{}, {} to score\n",
        job.name,
        job.proxies.join(","),
        output.display(),
        plan.done,
        if plan.failed_before > 0 { format!(", {} failed earlier (kept; --retry-failed scores them again)", plan.failed_before) } else { String::new() },
        plan.tasks.len()
    );
    for t in &plan.tasks {
        text.push_str(&t.model.id);
        if !t.model.metadata.is_empty() {
            text.push_str(&format!("  {}", serde_json::Value::Object(t.model.metadata.clone())));
        }
        if t.proxies.len() < job.proxies.len() {
            text.push_str(&format!("  (only {})", t.proxies.join(",")));
        }
        text.push('\n');
    }
    // `| head` closing the pipe is not an error
    match std::io::stdout().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(0),
    }
}

/// Exit code: 0 when every model of the run is scored, 1 when one failed (in this run or
/// kept from an earlier one); errors (bad job, unwritable output) give 2 in `main`.
pub fn batch(args: BatchArgs) -> Result<i32> {
    let job = spec::load(&args.job, &args.ort)?;
    let env = |k: &str| std::env::var(k).ok();
    let shard = shard::resolve(args.shard.as_deref(), args.shard_count, job.shard_count, &env)?;
    let models = match &shard {
        Some((s, _)) => s.select(&job.models),
        None => job.models.clone(),
    };
    let output = match (&args.output, &shard) {
        (Some(o), _) => o.clone(),
        (None, Some((s, _))) => s.output_name(&job.output),
        (None, None) => job.output.clone(),
    };
    let workers = args.workers.unwrap_or(job.workers);
    if workers == 0 {
        bail!("--workers must be at least 1");
    }
    check_output(&output, args.output.is_some(), args.dry_run)?;
    if let Some(b) = args.max_memory.or(job.spec.shape.max_memory) {
        crate::memory::set_max_memory(b);
    }
    let scope = match &shard {
        Some((s, origin)) => format!(
            "shard {s}{}: {} of {}",
            match origin {
                shard::Origin::Flag => "",
                shard::Origin::Slurm => " (from the Slurm array)",
                shard::Origin::Kubernetes => " (from JOB_COMPLETION_INDEX)",
            },
            models.len(),
            plural(job.models.len(), "model"),
        ),
        None => plural(models.len(), "model"),
    };
    if args.dry_run {
        return dry_run(&job, &models, &output, &scope, &args);
    }
    let mut store = store::Store::open(&output, args.force, args.retry_failed)?;
    if store.repaired > 0 {
        eprintln!(
            "zerocost: {}: cut off a partial last line ({} bytes) left by an interrupted run; that model is scored again",
            output.display(),
            store.repaired
        );
    }
    let plan = run::plan(&job, &models, &store.existing);
    refuse_stale(&plan, &output)?;
    if !args.quiet {
        let added = plan.tasks.iter().filter(|t| t.proxies.len() < job.proxies.len()).count();
        eprintln!(
            "zerocost: {}: {scope}, {} already in {}, {} to score{} with {}",
            job.name,
            plan.done + plan.failed_before,
            output.display(),
            plan.tasks.len(),
            if added > 0 { format!(" ({added} only for the proxies added since)") } else { String::new() },
            plural(workers.min(plan.tasks.len().max(1)), "worker")
        );
    }
    let summary = run::run(&job, &plan.tasks, &mut store, &run::RunOptions { workers, quiet: args.quiet, ort: args.ort.clone() })?;
    if plan.failed_before > 0 {
        eprintln!(
            "zerocost: {} failed earlier (kept as failed); rerun with --retry-failed to score {} again",
            plural(plan.failed_before, "model"),
            if plan.failed_before == 1 { "it" } else { "them" }
        );
    }
    Ok(if summary.failed + plan.failed_before > 0 { 1 } else { 0 })
}

fn write_atomically(path: &std::path::Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create folder {}", dir.display()))?;
    }
    let tmp = path.with_extension(format!("{}.tmp{}", path.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default(), std::process::id()));
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub fn merge(args: MergeArgs) -> Result<i32> {
    let merged = merge::merge_files(&args.inputs, args.rtol)?;
    let mut text = String::new();
    for r in &merged.records {
        text.push_str(&r.raw);
        text.push('\n');
    }
    match &args.output {
        Some(o) => write_atomically(o, &text)?,
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    let failed = merged.records.iter().filter(|r| !r.ok()).count();
    eprintln!(
        "zerocost: merged {} lines from {} files into {} models ({} failed){}{}{}{}",
        merged.lines,
        args.inputs.len(),
        merged.records.len(),
        failed,
        if merged.identical > 0 { format!(", {} identical duplicates collapsed", merged.identical) } else { String::new() },
        if merged.combined > 0 { format!(", {} lines with more proxies of a model combined", merged.combined) } else { String::new() },
        if merged.superseded > 0 { format!(", {} failed results superseded by successful ones", merged.superseded) } else { String::new() },
        args.output.as_ref().map(|o| format!(" -> {}", o.display())).unwrap_or_default()
    );
    Ok(0)
}

pub fn correlate(args: CorrelateArgs) -> Result<i32> {
    let merged = merge::merge_files(&args.results, args.rtol)?;
    let truth = args.truth.as_ref().map(|t| correlate::read_truth(t, &args.truth_column)).transpose()?;
    let opts = correlate::Options { column: args.truth_column.clone(), top_k: args.top_k };
    let report = correlate::analyse(&merged.records, truth.as_ref(), &opts)?;
    let text = match args.format {
        ReportFormat::Table => correlate::to_table(&report),
        ReportFormat::Json => serde_json::to_string_pretty(&correlate::to_json(&report))? + "\n",
        ReportFormat::Csv => correlate::to_csv(&report),
    };
    match &args.output {
        Some(o) => std::fs::write(o, &text).with_context(|| format!("cannot write {}", o.display()))?,
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    if let Some(dir) = &args.plot {
        let files = plot::write_plots(dir, &report)?;
        eprintln!("zerocost: wrote {} plots into {}", files.len(), dir.display());
    }
    Ok(0)
}
