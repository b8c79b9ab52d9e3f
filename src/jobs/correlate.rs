//! How well each proxy ranks models by accuracy: Spearman ρ, Kendall τ-b, pairwise ranking
//! accuracy, top-k overlap, and the paper's `vote` of synflow, jacob_cov and snip.

use super::models::parse_csv;
use super::stats;
use super::store::Record;
use crate::proxies::value::score_in_line;
use crate::proxies::{aggregates, direction_of, Direction};
use crate::rank::complete_columns;
use anyhow::{anyhow, bail, Context, Result};
use indexmap::IndexMap;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::Path;

/// The proxies the paper's `vote` takes the majority of.
pub const VOTE: [&str; 3] = ["synflow", "jacob_cov", "snip"];

pub const NOTE: &str = "spearman and kendall (tau-b) are signed; the paper's tables report absolute rank correlations (abs_spearman, abs_kendall)";

/// Accuracies by model name.
pub struct Truth {
    pub source: String,
    pub values: HashMap<String, f64>,
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|x: &f64| x.is_finite())
}

/// Reads a truth file: CSV with a `model` column (else the first column) and `column`, or
/// JSON `{MODEL: accuracy}` / `{MODEL: {column: accuracy}}` / `[{"model":..., column:...}]`.
pub fn read_truth(path: &Path, column: &str) -> Result<Truth> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the truth file {}", path.display()))?;
    let shown = path.display().to_string();
    let mut values = HashMap::new();
    let is_json = path.extension().map(|e| e.eq_ignore_ascii_case("json")).unwrap_or(false) || text.trim_start().starts_with(['{', '[']);
    if is_json {
        let v: Value = serde_json::from_str(&text).map_err(|e| anyhow!("{shown}: not JSON: {e}"))?;
        let pick = |x: &Value| -> Option<f64> {
            match x {
                Value::Object(o) => o.get(column).and_then(number),
                other => number(other),
            }
        };
        match &v {
            Value::Object(o) => {
                for (k, x) in o {
                    match pick(x) {
                        Some(a) => {
                            values.insert(k.clone(), a);
                        }
                        None => bail!("{shown}: `{k}` has no number (nor a `{column}` field holding one)"),
                    }
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    let name = x.get("model").and_then(Value::as_str).ok_or_else(|| anyhow!("{shown}: entry {i} has no \"model\" string"))?;
                    let acc = pick(x).ok_or_else(|| anyhow!("{shown}: entry {i} ({name}) has no number under `{column}`"))?;
                    values.insert(name.to_string(), acc);
                }
            }
            _ => bail!("{shown}: expected an object {{model: accuracy}} or a list of objects"),
        }
    } else {
        let rows = parse_csv(&text).map_err(|(l, m)| anyhow!("{shown}:{l}: {m}"))?;
        let Some(((hl, header), body)) = rows.split_first() else { bail!("{shown}: empty") };
        let key = header.iter().position(|h| h == "model").unwrap_or(0);
        let col = header
            .iter()
            .position(|h| h == column)
            .ok_or_else(|| anyhow!("{shown}:{hl}: no `{column}` column (columns: {}); pick one with --truth-column", header.join(", ")))?;
        for (line, row) in body {
            if row.len() <= key.max(col) {
                bail!("{shown}:{line}: {} fields, the header has {}", row.len(), header.len());
            }
            if row[col].is_empty() {
                continue;
            }
            let a: f64 = row[col].parse().ok().filter(|x: &f64| x.is_finite()).ok_or_else(|| anyhow!("{shown}:{line}: `{}` is not a number", row[col]))?;
            values.insert(row[key].clone(), a);
        }
    }
    if values.is_empty() {
        bail!("{shown}: no accuracy in it");
    }
    Ok(Truth { source: shown, values })
}

/// Names under which a truth file may know a model: its id, the id without extension, the
/// file name without extension.
fn names(model: &str) -> Vec<String> {
    let p = Path::new(model);
    let mut v = vec![model.to_string()];
    if let Some(ext) = p.extension() {
        v.push(model[..model.len() - ext.len() - 1].to_string());
    }
    if let Some(name) = p.file_name() {
        v.push(name.to_string_lossy().into_owned());
    }
    if let Some(stem) = p.file_stem() {
        v.push(stem.to_string_lossy().into_owned());
    }
    v
}

pub struct Options {
    pub column: String,
    /// `None`: 10% of the models, at least 1.
    pub top_k: Option<usize>,
}

/// One proxy's rows.
#[derive(Clone, Debug)]
pub struct ProxyStats {
    pub name: String,
    /// The statistics rank the proxy in this direction: a lower-is-better proxy that
    /// predicts accuracy well has a positive ρ.
    pub direction: Direction,
    pub n: usize,
    pub spearman: f64,
    pub kendall: f64,
    pub pairwise: f64,
    pub top_k: f64,
    /// The points (score, accuracy), for plots.
    pub points: Vec<(f64, f64)>,
}

pub struct Report {
    pub n: usize,
    pub source: String,
    pub k: usize,
    pub proxies: Vec<ProxyStats>,
    /// (accuracy, pairs, n) or why not.
    pub vote: Result<(f64, u64, usize), String>,
    pub without_accuracy: usize,
    pub failed: usize,
}

fn finite(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64).filter(|x| x.is_finite())
}

/// The models with an accuracy: each one's result line and accuracy.
type Rows<'r> = Vec<(&'r Value, f64)>;

/// The statistics of `x` (scores oriented larger-is-better) against the accuracies `acc`.
fn proxy_stats(name: &str, direction: Direction, x: &[f64], acc: &[f64], k: usize, points: Vec<(f64, f64)>) -> ProxyStats {
    ProxyStats {
        name: name.to_string(),
        direction,
        n: x.len(),
        spearman: stats::spearman(x, acc),
        kendall: stats::kendall(x, acc),
        pairwise: stats::pairwise_accuracy(x, acc),
        top_k: stats::top_k_overlap(x, acc, k),
        points,
    }
}

/// One proxy's statistics over the rows that have its score.
fn one_proxy(rows: &Rows, name: &str, k: usize) -> ProxyStats {
    let points: Vec<(f64, f64)> = rows.iter().filter_map(|(v, a)| score_in_line(v, name).map(|s| (s, *a))).collect();
    let direction = direction_of(name);
    let (x, y): (Vec<f64>, Vec<f64>) = points.iter().map(|&(s, a)| (direction.sign() * s, a)).unzip();
    // a ±∞ (an AZ-NAS component's −∞) is ranked but not drawn
    let drawn = points.into_iter().filter(|p| p.0.is_finite()).collect();
    proxy_stats(name, direction, &x, &y, k, drawn)
}

/// The proxies `names`, oriented larger-is-better, over the rows that have all of them,
/// and those rows' accuracies.
fn complete_rows(rows: &Rows, names: &[&str], read: impl Fn(&Value, &str) -> Option<f64>) -> (Vec<Vec<f64>>, Vec<f64>) {
    let cols: Vec<Vec<Option<f64>>> = names.iter().map(|p| rows.iter().map(|(v, _)| read(v, p).map(|x| direction_of(p).sign() * x)).collect()).collect();
    let (complete, cols) = complete_columns(&cols);
    (cols, complete.iter().map(|&i| rows[i].1).collect())
}

/// The paper's vote over the rows with a finite score for each of its proxies.
fn vote(rows: &Rows, order: &IndexMap<String, ()>) -> Result<(f64, u64, usize), String> {
    if !VOTE.iter().all(|p| order.contains_key(*p)) {
        let missing: Vec<&str> = VOTE.iter().copied().filter(|p| !order.contains_key(*p)).collect();
        return Err(format!("needs synflow, jacob_cov and snip; missing {}", missing.join(", ")));
    }
    let (cols, acc) = complete_rows(rows, &VOTE, |v, p| finite(v.get("scores").and_then(|s| s.get(p))));
    let refs: Vec<&[f64]> = cols.iter().map(|c| c.as_slice()).collect();
    let (a, pairs) = stats::vote_accuracy(&refs, &acc);
    Ok((a, pairs, acc.len()))
}

/// The rows with an accuracy (from the truth file, else the metadata), and how many had
/// none and how many failed.
fn rows_with_accuracy<'r>(records: &'r [Record], truth: Option<&Truth>, opts: &Options) -> (Rows<'r>, usize, usize) {
    let mut rows: Rows = Vec::new();
    let (mut without, mut failed) = (0, 0);
    let mut used: HashMap<String, Vec<String>> = HashMap::new();
    for r in records {
        if !r.ok() {
            failed += 1;
            continue;
        }
        let acc = match truth {
            Some(t) => names(r.model()).into_iter().find_map(|n| {
                let a = t.values.get(&n).copied()?;
                used.entry(n).or_default().push(r.model().to_string());
                Some(a)
            }),
            None => finite(r.value.get("metadata").and_then(|m| m.get(&opts.column))),
        };
        match acc {
            Some(a) => rows.push((&r.value, a)),
            None => without += 1,
        }
    }
    let mut shared: Vec<(&String, &Vec<String>)> = used.iter().filter(|(_, m)| m.len() > 1).collect();
    shared.sort();
    for (name, models) in shared.iter().take(5) {
        eprintln!("zerocost: warning: the truth entry `{name}` matches {} models ({}); name them by their full path in the truth file", models.len(), models.join(", "));
    }
    (rows, without, failed)
}

/// Computes the report from result records (failed lines are left out).
pub fn analyse(records: &[Record], truth: Option<&Truth>, opts: &Options) -> Result<Report> {
    let (rows, without, failed) = rows_with_accuracy(records, truth, opts);
    let source = match truth {
        Some(t) => t.source.clone(),
        None => format!("metadata.{}", opts.column),
    };
    if rows.is_empty() {
        bail!(
            "no model has an accuracy ({} results, {} failed; accuracy from {source}){}",
            records.len(),
            failed,
            if truth.is_none() { "; give --truth FILE.csv or put the accuracy in the job's model metadata" } else { "; truth names are matched against the model's file name without extension" }
        );
    }
    let n = rows.len();
    let k = opts.top_k.unwrap_or_else(|| (n / 10).max(1)).max(1);
    // proxies in order of first appearance
    let mut order: IndexMap<String, ()> = IndexMap::new();
    for (v, _) in &rows {
        if let Some(s) = v.get("scores").and_then(Value::as_object) {
            for name in s.keys() {
                order.insert(name.clone(), ());
            }
        }
    }
    let mut proxies: Vec<ProxyStats> = order.keys().map(|name| one_proxy(&rows, name, k)).collect();
    // an aggregate (AZ-NAS) ranks the population on each of its components
    for agg in aggregates().into_iter().filter(|a| a.components.iter().all(|p| order.contains_key(*p))) {
        let (cols, acc) = complete_rows(&rows, agg.components, score_in_line);
        let x = (agg.combine)(&cols);
        let points = x.iter().copied().zip(acc.iter().copied()).collect();
        proxies.push(proxy_stats(agg.name, Direction::Higher, &x, &acc, k, points));
    }
    let vote = vote(&rows, &order);
    Ok(Report { n, source, k, proxies, vote, without_accuracy: without, failed })
}

fn num(x: f64) -> Value {
    if x.is_finite() { json!(x) } else { Value::Null }
}

/// `{"n": N, "proxies": {NAME: {"spearman": r, "kendall": t, ...}}, ...}`
pub fn to_json(r: &Report) -> Value {
    let mut proxies = Map::new();
    for p in &r.proxies {
        proxies.insert(
            p.name.clone(),
            json!({
                "direction": p.direction.as_str(),
                "spearman": num(p.spearman),
                "kendall": num(p.kendall),
                "n": p.n,
                "abs_spearman": num(p.spearman.abs()),
                "abs_kendall": num(p.kendall.abs()),
                "pairwise_accuracy": num(p.pairwise),
                "top_k_overlap": num(p.top_k),
            }),
        );
    }
    let vote = match &r.vote {
        Ok((a, pairs, n)) => json!({ "proxies": VOTE, "pairwise_accuracy": num(*a), "pairs": pairs, "n": n }),
        Err(why) => json!({ "proxies": VOTE, "pairwise_accuracy": null, "error": why }),
    };
    json!({
        "n": r.n,
        "proxies": proxies,
        "vote": vote,
        "top_k": r.k,
        "accuracy_from": r.source,
        "without_accuracy": r.without_accuracy,
        "failed": r.failed,
        "note": NOTE,
    })
}

fn f(x: f64) -> String {
    if x.is_finite() { format!("{x:.4}") } else { crate::report::MISSING.into() }
}

/// A statistic as plots show it: three decimals, or [`crate::report::MISSING`] where it is
/// undefined (a constant proxy, too few models), the spelling of every text output.
pub fn fmt_stat(x: f64) -> String {
    if x.is_finite() { format!("{x:.3}") } else { crate::report::MISSING.into() }
}

pub fn to_table(r: &Report) -> String {
    let mut s = format!("{} models with an accuracy (from {})", r.n, r.source);
    if r.without_accuracy > 0 || r.failed > 0 {
        s.push_str(&format!("; left out: {} without an accuracy, {} failed", r.without_accuracy, r.failed));
    }
    s.push('\n');
    s.push_str(&format!(
        "{:<16} {:>6} {:>6} {:>9} {:>9} {:>7} {:>7} {:>9} {:>9}\n",
        "proxy", "better", "n", "spearman", "kendall", "|rho|", "|tau|", "pairwise", format!("top-{}", r.k)
    ));
    for p in &r.proxies {
        s.push_str(&format!(
            "{:<16} {:>6} {:>6} {:>9} {:>9} {:>7} {:>7} {:>9} {:>9}\n",
            p.name,
            p.direction.as_str(),
            p.n,
            f(p.spearman),
            f(p.kendall),
            f(p.spearman.abs()),
            f(p.kendall.abs()),
            f(p.pairwise),
            f(p.top_k)
        ));
    }
    match &r.vote {
        Ok((a, pairs, n)) => s.push_str(&format!("{:<16} {:>6} {:>6} {:>9} {:>9} {:>7} {:>7} {:>9} {:>9}   ({pairs} pairs)\n", "vote", "higher", n, "", "", "", "", f(*a), "")),
        Err(why) => s.push_str(&format!("vote: {why}\n")),
    }
    s.push_str(
        "better: the proxy's direction (`zerocost proxies`); every statistic ranks it that way, so a\n\
         lower-is-better proxy (ntk_cond) that predicts accuracy has a positive rho.\n\
         spearman/kendall: signed rank correlations (Kendall tau-b); the paper's tables report absolute\n\
         rank correlations, the |rho| and |tau| columns. pairwise: fraction of model pairs ordered as by\n\
         accuracy (vote: majority sign of synflow, jacob_cov, snip). top-k: share of the k most accurate\n\
         models among the k best scores.\n",
    );
    s
}

pub fn to_csv(r: &Report) -> String {
    let mut s = String::from("proxy,direction,n,spearman,kendall,abs_spearman,abs_kendall,pairwise_accuracy,top_k_overlap,top_k\n");
    let g = |x: f64| if x.is_finite() { format!("{x}") } else { String::new() };
    for p in &r.proxies {
        s.push_str(&format!("{},{},{},{},{},{},{},{},{},{}\n", p.name, p.direction.as_str(), p.n, g(p.spearman), g(p.kendall), g(p.spearman.abs()), g(p.kendall.abs()), g(p.pairwise), g(p.top_k), r.k));
    }
    if let Ok((a, _, n)) = &r.vote {
        s.push_str(&format!("vote,higher,{n},,,,,{},,\n", g(*a)));
    }
    s
}
