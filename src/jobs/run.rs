//! Running a job: `plan` finds what the output lacks (models, or proxies added to the job
//! since a model was scored); a pool of workers (one engine each) scores it; the main thread
//! appends each result as it arrives and shows progress.

use super::models::ModelRef;
use super::spec::Job;
use super::merge::proxies_of;
use super::store::{Record, Store};
use crate::engine::{self, Engine, OrtOptions};
use crate::onnx::Model;
use crate::report;
use crate::scoring::{self, Batches, Scored};
use anyhow::{anyhow, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

/// One model to score, with the proxies it lacks (all of the job's for a new model).
#[derive(Clone, Debug)]
pub struct Task {
    pub model: ModelRef,
    pub proxies: Vec<&'static str>,
}

/// What a run has to do, given the lines already in its output.
#[derive(Debug, Default)]
pub struct Plan {
    pub tasks: Vec<Task>,
    /// Models with every proxy of the job scored.
    pub done: usize,
    /// Models with a `failed` line, kept as they are (`--retry-failed` scores them again).
    pub failed_before: usize,
    /// Models with lines scored with other settings than the job's.
    pub stale: usize,
}

/// Whether a line was scored with the job's settings. Lines without `scoring` (older
/// versions) are checked by their `settings` fingerprint over their own proxies; a line with
/// neither, or no scores to tell its proxies by, is taken as it is.
fn same_settings(job: &Job, r: &Record) -> bool {
    if let Some(s) = r.value.get("scoring").and_then(Value::as_str) {
        return s == job.scoring;
    }
    let proxies = proxies_of(&r.value);
    match r.value.get("settings").and_then(Value::as_str) {
        Some(s) if !proxies.is_empty() => s == job.settings_for(&proxies),
        _ => true,
    }
}

/// What to score of `models`, given the output's lines by model.
pub fn plan(job: &Job, models: &[ModelRef], existing: &HashMap<String, Vec<Record>>) -> Plan {
    let mut plan = Plan::default();
    for m in models {
        let lines = existing.get(&m.id).map(Vec::as_slice).unwrap_or_default();
        if lines.iter().any(|r| !same_settings(job, r)) {
            plan.stale += 1;
        }
        if lines.iter().any(|r| !r.ok()) {
            plan.failed_before += 1;
            continue;
        }
        let have: Vec<&str> = lines.iter().flat_map(|r| proxies_of(&r.value)).collect();
        let missing: Vec<&'static str> = job.proxies.iter().copied().filter(|p| !have.contains(p)).collect();
        if missing.is_empty() {
            plan.done += 1;
        } else {
            plan.tasks.push(Task { model: m.clone(), proxies: missing });
        }
    }
    plan
}

/// Scores one model with `names`; never fails: a problem becomes a `failed` record with its
/// reason.
pub fn score_model(job: &Job, m: &ModelRef, names: &[&str], engine: &dyn Engine, batches: &Batches) -> Value {
    let start = Instant::now();
    let scored = catch_unwind(AssertUnwindSafe(|| -> Result<Value> {
        let model = match &m.generated {
            Some(g) => Model::from_raw(m.id.clone(), g.build()?),
            None => Model::load(&m.path)?,
        };
        let Scored { batch, results, layers } = scoring::score_model(&model, &job.spec, batches, names, engine)?;
        let mut v = report::score_json(&m.id, &engine.name(), batch, &results, layers.as_deref());
        if !results.is_empty() && results.values().all(|r| r.value.is_none()) {
            let first = results.iter().find_map(|(n, r)| r.error.as_ref().map(|e| format!("{n}: {e}"))).unwrap_or_default();
            v["status"] = json!("failed");
            v["error"] = json!(format!("no proxy could be computed ({first})"));
        }
        Ok(v)
    }));
    let (body, status, error) = match scored {
        Ok(Ok(mut v)) => {
            let status = v.get("status").and_then(Value::as_str).unwrap_or("ok").to_string();
            let error = v.get("error").cloned();
            if let Some(o) = v.as_object_mut() {
                o.shift_remove("status");
                o.shift_remove("error");
            }
            (v, status, error)
        }
        Ok(Err(e)) => (json!({ "model": m.id, "engine": engine.name() }), "failed".to_string(), Some(json!(crate::error_text::one_line(&e)))),
        Err(p) => (
            json!({ "model": m.id, "engine": engine.name() }),
            "failed".to_string(),
            Some(json!(format!("panic: {}", crate::memory::panic_message(p)))),
        ),
    };
    // model, status, error first; then the score object; then the job's bookkeeping
    let mut out = Map::new();
    out.insert("model".into(), json!(m.id));
    out.insert("status".into(), json!(status));
    if let Some(e) = error {
        out.insert("error".into(), e);
    }
    if let Value::Object(o) = body {
        for (k, v) in o {
            if k != "model" {
                out.insert(k, v);
            }
        }
    }
    out.insert("metadata".into(), Value::Object(m.metadata.clone()));
    out.insert("settings".into(), json!(job.settings_for(names)));
    out.insert("scoring".into(), json!(job.scoring));
    out.insert("wall_seconds".into(), json!((start.elapsed().as_secs_f64() * 1e3).round() / 1e3));
    Value::Object(out)
}

/// How a run went.
#[derive(Debug, Default)]
pub struct Summary {
    pub total: usize,
    pub skipped: usize,
    pub scored: usize,
    pub failed: usize,
}

pub struct RunOptions {
    pub workers: usize,
    pub quiet: bool,
    /// ONNX Runtime's settings from the command line (a job file has none).
    pub ort: OrtOptions,
}

/// Scores the `models` tasks (from `plan`) into `store`.
pub fn run(job: &Job, models: &[Task], store: &mut Store, opts: &RunOptions) -> Result<Summary> {
    let mut summary = Summary { total: models.len(), ..Default::default() };
    if models.is_empty() {
        return Ok(summary);
    }
    let workers = opts.workers.clamp(1, models.len());
    let engines: Vec<Box<dyn Engine>> = (0..workers).map(|_| engine::build(&job.spec.engine, job.spec.threads, &opts.ort)).collect::<Result<_>>()?;
    let tty = std::io::stderr().is_terminal() && !opts.quiet;
    let bar = if tty { ProgressBar::with_draw_target(Some(models.len() as u64), ProgressDrawTarget::stderr()) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} models, {msg}, ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message("0 failed");
    bar.enable_steady_tick(std::time::Duration::from_millis(250));
    let batches = Batches::new(job.spec.data.value.clone());
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let mut write_error: Option<anyhow::Error> = None;
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel::<(usize, Value)>();
        for engine in &engines {
            let tx = tx.clone();
            let (next, stop, batches) = (&next, &stop, &batches);
            s.spawn(move || loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(m) = models.get(i) else { break };
                let record = score_model(job, &m.model, &m.proxies, engine.as_ref(), batches);
                if tx.send((i, record)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for (i, record) in rx {
            if write_error.is_some() {
                continue;
            }
            if let Err(e) = store.append(&record) {
                stop.store(true, Ordering::Relaxed);
                write_error = Some(e);
                continue;
            }
            summary.scored += 1;
            let ok = record.get("status").and_then(Value::as_str) == Some("ok");
            if !ok {
                summary.failed += 1;
            }
            let id = &models[i].model.id;
            let line = if ok {
                format!("{id}: ok ({:.2} s)", record["wall_seconds"].as_f64().unwrap_or(0.0))
            } else {
                // the error names the file already: say the model's id once
                let why = record.get("error").and_then(Value::as_str).unwrap_or("?");
                let file = format!("{}: ", models[i].model.path.display());
                format!("{id}: FAILED: {}", why.strip_prefix(&file).unwrap_or(why))
            };
            if tty {
                if !ok {
                    bar.println(line);
                }
                bar.set_message(format!("{} failed", summary.failed));
                bar.inc(1);
            } else if !opts.quiet || !ok {
                eprintln!("[{}/{}] {line}", summary.scored, models.len());
            }
        }
    });
    bar.finish_and_clear();
    if let Some(e) = write_error {
        return Err(e.context(anyhow!("stopped after {} models", summary.scored)));
    }
    if !opts.quiet {
        eprintln!(
            "zerocost: scored {} model{} ({} failed) in {:.1} s into {}",
            summary.scored,
            if summary.scored == 1 { "" } else { "s" },
            summary.failed,
            start.elapsed().as_secs_f64(),
            store.path.display()
        );
    }
    Ok(summary)
}
