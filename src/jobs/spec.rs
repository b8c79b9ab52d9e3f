//! The YAML job file: what to score and how. The whole file is checked before anything
//! runs, and every problem is reported with its line (unknown keys included).
//!
//! Relative paths in a job are relative to the job file's folder (`root`, `data`, `output`)
//! or to `root` (models and list files; `root` defaults to the job file's folder), so a job
//! runs the same from any working directory.

use super::models::{self, ModelRef};
use super::cells;
use super::yaml::{key, kind, path_str, unknown_key, Doc, Problem, Problems, Seg};
use crate::data::{DataSource, Dataload, Normalization};
use crate::engine::OrtOptions;
use crate::onnx::canon::BnMode;
use crate::proxies;
use crate::scoring::{BatchSpec, Shape, Spelled};
use anyhow::Result;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value as Json};
use serde_yaml::Value;
use std::path::{Path, PathBuf};

/// The keys a job may have.
pub const KEYS: &[&str] = &[
    "name",
    "root",
    "models",
    "proxies",
    "data",
    "batch_size",
    "dataload",
    "dataload_info",
    "num_classes",
    "seed",
    "shuffle",
    "normalize",
    "input_shape",
    "bn",
    "precision",
    "engine",
    "threads",
    "per_layer",
    "output",
    "workers",
    "shard_count",
    "space",
    "max_memory",
];

/// Keys of a mapping entry under `models`.
pub const MODEL_KEYS: &[&str] = &["path", "list", "metadata", "accuracy"];

/// A checked job.
#[derive(Clone, Debug)]
pub struct Job {
    pub file: PathBuf,
    pub name: String,
    /// Where relative model paths start and what model ids are relative to.
    pub root: PathBuf,
    /// Sorted by id, each once.
    pub models: Vec<ModelRef>,
    pub proxies: Vec<&'static str>,
    /// How each model is scored (data paths rebased on the job's folder; `threads`
    /// defaults to 1, `max_memory` to the memory module's default).
    pub spec: BatchSpec,
    pub output: PathBuf,
    pub workers: usize,
    pub shard_count: Option<usize>,
    /// Fingerprint of everything that changes a score (proxies, data, sampling, precision,
    /// engine), recorded in each result line.
    pub settings: String,
    /// The same without the proxy list: lines of one model scored for different proxies
    /// (proxies added to a job later) share it.
    pub scoring: String,
    /// The settings other than the proxies, in fingerprint order: the spec's serialisation,
    /// and the network settings of a space.
    base: Map<String, Json>,
}

impl Job {
    /// The `settings` fingerprint of a line scored with `proxies` (in that order): the job's
    /// own when they are the job's proxies, so older lines can be checked too.
    pub fn settings_for<S: AsRef<str>>(&self, proxies: &[S]) -> String {
        let mut m = Map::new();
        m.insert("proxies".into(), json!(proxies.iter().map(|p| p.as_ref()).collect::<Vec<_>>()));
        m.extend(self.base.clone());
        fingerprint(&Json::Object(m).to_string())
    }
}

/// FNV-1a, 64 bits: a stable fingerprint (std's hashers are not stable across releases).
pub fn fingerprint(s: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

struct Checker<'a> {
    doc: &'a Doc,
    problems: Vec<Problem>,
}

impl<'a> Checker<'a> {
    fn err(&mut self, path: &[Seg], msg: impl Into<String>) {
        let msg = format!("{}: {}", path_str(path), msg.into());
        self.problems.push(self.doc.problem(path, msg));
    }

    /// The value under `path` as `T`, or a located problem; `None` when absent or null.
    fn get<T: DeserializeOwned>(&mut self, map: &serde_yaml::Mapping, path: &[Seg], what: &str) -> Option<T> {
        let Some(Seg::Key(k)) = path.last() else { return None };
        let v = map.get(k.as_str())?;
        if v.is_null() {
            return None;
        }
        match serde_yaml::from_value::<T>(v.clone()) {
            Ok(t) => Some(t),
            Err(_) => {
                self.err(path, format!("expected {what}, found {} `{}`", kind(v), short(v)));
                None
            }
        }
    }

    /// A whole number of at least 1 under `k`; `default` when absent (or wrong).
    fn positive(&mut self, map: &serde_yaml::Mapping, k: &str, default: usize) -> usize {
        self.optional_positive(map, k).unwrap_or(default)
    }

    /// A whole number of at least 1 under `k`, if given.
    fn optional_positive(&mut self, map: &serde_yaml::Mapping, k: &str) -> Option<usize> {
        match self.get::<usize>(map, &[key(k)], "a positive whole number") {
            Some(0) => {
                self.err(&[key(k)], "must be at least 1");
                None
            }
            n => n,
        }
    }

    /// A string under `k` that parses as `T` (its text kept for the fingerprint).
    fn spelled<T: std::str::FromStr<Err = anyhow::Error>>(&mut self, map: &serde_yaml::Mapping, k: &str, what: &str) -> Option<Spelled<T>> {
        let text = self.get::<String>(map, &[key(k)], what)?;
        match text.parse::<Spelled<T>>() {
            Ok(s) => Some(s),
            Err(e) => {
                self.err(&[key(k)], format!("{e:#}"));
                None
            }
        }
    }

    fn unknown_keys(&mut self, map: &serde_yaml::Mapping, path: &[Seg], known: &[&str]) {
        for k in map.keys() {
            match k.as_str() {
                Some(name) if known.contains(&name) => {}
                Some(name) => {
                    let mut p = path.to_vec();
                    p.push(key(name));
                    let msg = unknown_key(name, known);
                    let msg = if path.is_empty() { msg } else { format!("{}: {msg}", path_str(path)) };
                    self.problems.push(self.doc.key_problem(&p, msg));
                }
                None => self.err(path, format!("keys must be strings, found {} `{}`", kind(k), short(k))),
            }
        }
    }
}

fn short(v: &Value) -> String {
    let s = serde_yaml::to_string(v).unwrap_or_default();
    let s = s.trim().replace('\n', " ");
    if s.chars().count() > 40 { format!("{}...", s.chars().take(40).collect::<String>()) } else { s }
}

/// `p` relative to `base` (unless absolute), `.` and `..` resolved lexically.
fn rebase(base: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
    let n = models::normalize(&joined);
    if n.as_os_str().is_empty() { PathBuf::from(".") } else { n }
}

/// A data source whose paths are relative to the job's folder.
fn rebase_source(base: &Path, s: DataSource) -> DataSource {
    match s {
        DataSource::Synthetic => DataSource::Synthetic,
        DataSource::Npy { inputs, targets } => DataSource::Npy { inputs: rebase(base, &inputs), targets: rebase(base, &targets) },
        DataSource::NpyDir(p) => DataSource::NpyDir(rebase(base, &p)),
        DataSource::Npz(p) => DataSource::Npz(rebase(base, &p)),
        DataSource::Cifar10(p) => DataSource::Cifar10(rebase(base, &p)),
        DataSource::Cifar100(p) => DataSource::Cifar100(rebase(base, &p)),
        DataSource::ImageNet16(p) => DataSource::ImageNet16(rebase(base, &p)),
        DataSource::Images(p) => DataSource::Images(rebase(base, &p)),
    }
}

/// Reads and checks a job file. Every problem found is returned together. `ort`: the
/// settings its engine is checked with.
pub fn load(file: &Path, ort: &OrtOptions) -> Result<Job> {
    let text = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("cannot read the job file {}: {e}", file.display()))?;
    parse_with(file, &text, ort).map_err(|p| anyhow::Error::new(p))
}

/// Checks the text of a job file (`file` names it in messages and anchors relative paths).
pub fn parse(file: &Path, text: &str) -> std::result::Result<Job, Problems> {
    parse_with(file, text, &OrtOptions::default())
}

/// As [`parse`], checking the engine with ONNX Runtime's settings `ort`.
pub fn parse_with(file: &Path, text: &str, ort: &OrtOptions) -> std::result::Result<Job, Problems> {
    let shown = file.display().to_string();
    let doc = Doc::parse(&shown, text).map_err(|p| Problems(vec![p]))?;
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut c = Checker { doc: &doc, problems: Vec::new() };
    let empty = serde_yaml::Mapping::new();
    let map = match &doc.value {
        Value::Mapping(m) => m,
        Value::Null => {
            c.problems.push(doc.problem(&[], "the job is empty; it needs at least `models:`"));
            &empty
        }
        other => {
            c.problems.push(doc.problem(&[], format!("a job is a mapping of keys (models:, proxies:, ...), found {}", kind(other))));
            &empty
        }
    };
    c.unknown_keys(map, &[], KEYS);

    let name: Option<String> = c.get(map, &[key("name")], "a string");
    let root = check_root(&mut c, map, &base);
    let (models, space_net) = check_models(&mut c, map, &base, &root);
    let proxies = check_proxies(&mut c, map);
    let spec = check_batch_spec(&mut c, map, &base, ort);
    let workers = c.positive(map, "workers", 1);
    let shard_count = c.optional_positive(map, "shard_count");
    let output = match c.get::<String>(map, &[key("output")], "a file path") {
        Some(o) => rebase(&base, Path::new(&o)),
        None => {
            let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "results".into());
            rebase(&base, Path::new(&format!("{stem}.jsonl")))
        }
    };

    if !c.problems.is_empty() {
        c.problems.sort_by_key(|p| (p.line, p.column));
        return Err(Problems(c.problems));
    }
    let Ok(Json::Object(mut fixed)) = serde_json::to_value(&spec) else { unreachable!("a spec serialises as an object") };
    // a job without a space keeps the fingerprint it always had
    if let Some(net) = space_net {
        fixed.insert("space".into(), net);
    }
    let mut job = Job {
        file: file.to_path_buf(),
        name: name.unwrap_or_else(|| shown.clone()),
        root,
        models,
        proxies,
        spec,
        output,
        workers,
        shard_count,
        settings: String::new(),
        scoring: fingerprint(&Json::Object(fixed.clone()).to_string()),
        base: fixed,
    };
    job.settings = job.settings_for(&job.proxies);
    Ok(job)
}

/// `root:`, a folder relative to the job's; the job's folder when absent.
fn check_root(c: &mut Checker, map: &serde_yaml::Mapping, base: &Path) -> PathBuf {
    match c.get::<String>(map, &[key("root")], "a folder") {
        Some(r) => {
            let p = rebase(base, Path::new(&r));
            if !p.is_dir() {
                c.err(&[key("root")], format!("no such folder: {}", p.display()));
            }
            p
        }
        None => base.to_path_buf(),
    }
}

/// `models:` (files, folders, globs, list files) and the cells of `space:`, sorted and each
/// once; with the space's network settings for the fingerprint.
fn check_models(c: &mut Checker, map: &serde_yaml::Mapping, base: &Path, root: &Path) -> (Vec<ModelRef>, Option<Json>) {
    let mut found: Vec<ModelRef> = Vec::new();
    let mut space_net = None;
    if let Some(v) = map.get("space").filter(|v| !v.is_null()) {
        space_net = check_space(c, base, v, &mut found);
    }
    match map.get("models") {
        None | Some(Value::Null) => {
            if c.doc.value.is_mapping() && !map.get("space").is_some_and(|v| !v.is_null()) {
                c.problems.push(c.doc.problem(&[], "missing `models:` (files, folders, globs or list files to score) or `space:` (cells of nb201 or nb101)"));
            }
        }
        Some(v) => {
            let entries: Vec<(Vec<Seg>, &Value)> = match v {
                Value::Sequence(seq) => seq.iter().enumerate().map(|(i, e)| (vec![key("models"), Seg::Index(i)], e)).collect(),
                other => vec![(vec![key("models")], other)],
            };
            if entries.is_empty() {
                c.err(&[key("models")], "the list is empty");
            }
            for (path, entry) in entries {
                check_model_entry(c, root, &path, entry, &mut found);
            }
        }
    }
    (models::dedup(found), space_net)
}

/// `proxies:`: names (or groups such as `az_nas`), each once; the paper's when absent.
fn check_proxies(c: &mut Checker, map: &serde_yaml::Mapping) -> Vec<&'static str> {
    let mut proxies: Vec<&'static str> = Vec::new();
    let v = match map.get("proxies") {
        // the same default as `zerocost score`
        None | Some(Value::Null) => return proxies::PAPER_PROXIES.to_vec(),
        Some(v) => v,
    };
    let items: Vec<(Vec<Seg>, &Value)> = match v {
        Value::Sequence(seq) => seq.iter().enumerate().map(|(i, e)| (vec![key("proxies"), Seg::Index(i)], e)).collect(),
        other => vec![(vec![key("proxies")], other)],
    };
    for (p, item) in items {
        match item.as_str() {
            Some(s) => match proxies::resolve_names(&[s.to_string()]) {
                Ok(names) => {
                    for n in names {
                        if !proxies.contains(&n) {
                            proxies.push(n);
                        }
                    }
                }
                Err(e) => c.err(&p, format!("{e:#}")),
            },
            None => c.err(&p, format!("expected a proxy name, found {}", kind(item))),
        }
    }
    if proxies.is_empty() && c.problems.is_empty() {
        c.err(&[key("proxies")], "no proxy named");
    }
    proxies
}

/// The keys of the job that are `zerocost score`'s flags, with the same defaults except
/// `threads` (1: the workers run in parallel instead).
fn check_batch_spec(c: &mut Checker, map: &serde_yaml::Mapping, base: &Path, ort: &OrtOptions) -> BatchSpec {
    let mut spec = BatchSpec::default();
    let data = c.spelled::<DataSource>(map, "data", "a data source (synthetic | npy:DIR | npz:FILE | cifar10:DIR | ...)");
    if let Some(mut data) = data {
        data.value = rebase_source(base, data.value);
        for p in data.paths() {
            if !p.exists() {
                c.err(&[key("data")], format!("no such file or folder: {}", p.display()));
            }
        }
        spec.data = data;
    }
    spec.batch_size = c.positive(map, "batch_size", 64);
    spec.dataload_info = c.positive(map, "dataload_info", 1);
    spec.threads = c.positive(map, "threads", 1);
    spec.shape.max_memory = check_max_memory(c, map);
    if let Some(d) = c.spelled::<Dataload>(map, "dataload", "random or grasp") {
        spec.dataload = d.value;
    }
    spec.num_classes = c.optional_positive(map, "num_classes");
    spec.seed = c.get::<u64>(map, &[key("seed")], "a whole number").unwrap_or(0);
    spec.shuffle = c.get::<bool>(map, &[key("shuffle")], "true or false").unwrap_or(false);
    spec.per_layer = c.get::<bool>(map, &[key("per_layer")], "true or false").unwrap_or(false);
    spec.normalize = c.spelled::<Normalization>(map, "normalize", "none | cifar10 | cifar100 | imagenet | imagenet16");
    spec.shape.input_shape = check_input_shape(c, map).map(Shape);
    if let Some(bn) = c.spelled::<BnMode>(map, "bn", "batch or running") {
        spec.shape.bn = bn;
    }
    if let Some(precision) = c.get::<String>(map, &[key("precision")], "f64 or f32") {
        if precision != "f64" && precision != "f32" {
            c.err(&[key("precision")], format!("unknown precision `{precision}` (f64 or f32)"));
        }
        spec.precision = precision;
    }
    if let Some(engine) = c.get::<String>(map, &[key("engine")], "an engine name") {
        spec.engine = engine;
    }
    if let Err(e) = crate::engine::build(&spec.engine, 1, ort) {
        c.err(&[key("engine")], format!("{e:#}"));
    }
    spec
}

/// `max_memory:` a size such as 8G or 512M.
fn check_max_memory(c: &mut Checker, map: &serde_yaml::Mapping) -> Option<u64> {
    let v = map.get("max_memory")?;
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    match crate::memory::parse_size(&text) {
        Ok(b) => Some(b),
        Err(e) => {
            c.err(&[key("max_memory")], e);
            None
        }
    }
}

/// `input_shape:` as `1x3x32x32` or a list, at least two positive sizes.
fn check_input_shape(c: &mut Checker, map: &serde_yaml::Mapping) -> Option<Vec<usize>> {
    match map.get("input_shape") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.split(['x', ',']).map(|d| d.trim().parse::<usize>()).collect::<Result<Vec<_>, _>>() {
            Ok(v) if v.len() >= 2 && !v.contains(&0) => Some(v),
            _ => {
                c.err(&[key("input_shape")], format!("bad shape `{s}`: expected e.g. 1x3x32x32"));
                None
            }
        },
        Some(_) => match c.get::<Vec<usize>>(map, &[key("input_shape")], "a shape such as 1x3x32x32 or [1, 3, 32, 32]") {
            Some(v) if v.len() >= 2 && !v.contains(&0) => Some(v),
            Some(v) => {
                c.err(&[key("input_shape")], format!("bad shape {v:?}: expected at least two positive sizes"));
                None
            }
            None => None,
        },
    }
}

/// `space:`: a space name (every cell), or a mapping with `name` and the options of
/// `jobs::cells::SpaceSpec` (an index range, a sample, network settings, an accuracy table).
/// Returns the network settings that change scores (for the job's fingerprint).
fn check_space(c: &mut Checker, base: &Path, v: &Value, out: &mut Vec<ModelRef>) -> Option<Json> {
    let at = [key("space")];
    let spec = match v {
        Value::String(name) => cells::SpaceSpec { name: name.clone(), ..Default::default() },
        Value::Mapping(m) => {
            c.unknown_keys(m, &at, cells::SPACE_KEYS);
            let sub = |k: &str| [key("space"), key(k)];
            let Some(name) = c.get::<String>(m, &sub("name"), "a space name (nb201 or nb101)") else {
                c.err(&at, "needs `name: nb201` or `name: nb101`");
                return None;
            };
            cells::SpaceSpec {
                name,
                start: c.get(m, &sub("start"), "a cell index"),
                end: c.get(m, &sub("end"), "a cell index"),
                sample: c.get(m, &sub("sample"), "a number of cells"),
                seed: c.get(m, &sub("seed"), "a whole number").unwrap_or(0),
                dedup: c.get(m, &sub("dedup"), "true or false").unwrap_or(false),
                variant: c.get(m, &sub("variant"), "zc or nb201"),
                channels: c.get(m, &sub("channels"), "a number of channels"),
                init_seed: c.get(m, &sub("init_seed"), "a whole number").unwrap_or(0),
                max_vertices: c.get(m, &sub("max_vertices"), "a number of vertices"),
                truth: c.get::<String>(m, &sub("truth"), "an accuracy table (CSV or JSON)").map(|t| rebase(base, Path::new(&t))),
                truth_column: c.get(m, &sub("truth_column"), "a column name"),
            }
        }
        other => {
            c.err(&at, format!("expected a space name or a mapping, found {} `{}`", kind(other), short(other)));
            return None;
        }
    };
    match cells::expand(&spec) {
        Ok(models) => out.extend(models),
        Err(e) => c.err(&at, format!("{e:#}")),
    }
    Some(json!({"space": spec.name, "variant": spec.variant, "channels": spec.channels, "init_seed": spec.init_seed}))
}

/// One entry under `models:`: a path/glob/folder/list string, or a mapping
/// `{path: ..., metadata: {...}, accuracy: ...}` or `{list: FILE}`.
fn check_model_entry(c: &mut Checker, root: &Path, path: &[Seg], entry: &Value, out: &mut Vec<ModelRef>) {
    let (pattern, list, metadata) = match entry {
        Value::String(s) if models::is_list_file(s) => (None, Some(s.clone()), Map::new()),
        Value::String(s) => (Some(s.clone()), None, Map::new()),
        Value::Mapping(m) => {
            c.unknown_keys(m, path, MODEL_KEYS);
            let mut sub = path.to_vec();
            sub.push(key("path"));
            let pattern: Option<String> = c.get(m, &sub, "a file, folder or glob");
            *sub.last_mut().unwrap() = key("list");
            let list: Option<String> = c.get(m, &sub, "a list file (.csv, .yaml, .txt)");
            *sub.last_mut().unwrap() = key("metadata");
            let mut metadata = Map::new();
            if let Some(v) = m.get("metadata").filter(|v| !v.is_null()) {
                match serde_json::to_value(v) {
                    Ok(Json::Object(o)) => metadata = o,
                    Ok(other) => c.err(&sub, format!("expected a mapping of facts (accuracy: 93.1, ...), found {}", match other {
                        Json::Array(_) => "a list",
                        _ => "a single value",
                    })),
                    Err(e) => c.err(&sub, format!("{e}")),
                }
            }
            *sub.last_mut().unwrap() = key("accuracy");
            if let Some(a) = c.get::<f64>(m, &sub, "a number") {
                metadata.insert("accuracy".into(), json!(a));
            }
            match (&pattern, &list) {
                (Some(_), Some(_)) => {
                    c.err(path, "give either `path` or `list`, not both");
                    return;
                }
                (None, None) => {
                    if !m.contains_key("path") && !m.contains_key("list") {
                        c.err(path, "needs `path: FILE|FOLDER|GLOB` or `list: FILE`");
                    }
                    return;
                }
                _ => {}
            }
            (pattern, list, metadata)
        }
        other => {
            c.err(path, format!("expected a path, a glob or a mapping, found {} `{}`", kind(other), short(other)));
            return;
        }
    };
    if let Some(pattern) = pattern {
        let mut p = path.to_vec();
        if matches!(entry, Value::Mapping(_)) {
            p.push(key("path"));
        }
        match models::expand(root, &pattern) {
            Ok(files) => out.extend(files.into_iter().map(|f| ModelRef { id: models::model_id(root, &f), path: f, metadata: metadata.clone(), generated: None })),
            Err(e) => c.err(&p, format!("{e:#}")),
        }
    }
    if let Some(list) = list {
        let mut p = path.to_vec();
        if matches!(entry, Value::Mapping(_)) {
            p.push(key("list"));
        }
        let file = rebase(root, Path::new(&list));
        if !file.is_file() {
            c.err(&p, format!("no such list file: {}", file.display()));
            return;
        }
        match models::read_list(&file, root) {
            Ok(found) => {
                if found.is_empty() {
                    c.err(&p, format!("the list file {} names no model", file.display()));
                }
                for mut m in found {
                    for (k, v) in &metadata {
                        m.metadata.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                    out.push(m);
                }
            }
            Err(problems) => {
                let (line, column) = c.doc.locate(&p);
                for pr in problems {
                    c.problems.push(Problem { file: c.doc.file.clone(), line, column, message: format!("{}: {pr}", path_str(&p)) });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_fingerprint_is_unchanged_and_splits_off_the_proxies() {
        let dir = std::env::temp_dir().join(format!("zc-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let job = parse(&dir.join("j.yaml"), "space: nb201\nproxies: [snip, params]\nbatch_size: 8\n").unwrap();
        // the object older versions hashed, key for key
        let old = json!({
            "proxies": ["snip", "params"], "data": "synthetic", "batch_size": 8, "dataload": "random", "dataload_info": 1,
            "num_classes": null, "seed": 0, "shuffle": false, "normalize": null, "input_shape": null, "bn": "batch",
            "precision": "f32", "engine": "auto",
            "space": {"space": "nb201", "variant": null, "channels": null, "init_seed": 0},
        });
        assert_eq!(job.settings, fingerprint(&old.to_string()));
        assert_ne!(job.settings_for(&["params"]), job.settings);
        let other = parse(&dir.join("j.yaml"), "space: nb201\nproxies: [params]\nbatch_size: 8\n").unwrap();
        assert_eq!(other.settings, job.settings_for(&["params"]));
        assert_eq!(other.scoring, job.scoring);
        let default = parse(&dir.join("j.yaml"), "space: nb201\n").unwrap();
        assert_eq!(default.proxies, crate::proxies::PAPER_PROXIES);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_fingerprint_keeps_settings_as_written() {
        let dir = std::env::temp_dir().join(format!("zc-spec-spelled-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("d")).unwrap();
        let job = parse(&dir.join("j.yaml"), "space: nb201\nproxies: [params]\ndata: cifar-10:d\nbn: train\nnormalize: CIFAR10\ninput_shape: [1, 3, 8, 8]\n").unwrap();
        // the data path is rebased for reading, but hashed as written; aliases are not renamed
        assert_eq!(job.spec.data.value, DataSource::Cifar10(dir.join("d")));
        let old = json!({
            "proxies": ["params"], "data": "cifar-10:d", "batch_size": 64, "dataload": "random", "dataload_info": 1,
            "num_classes": null, "seed": 0, "shuffle": false, "normalize": "CIFAR10", "input_shape": [1, 3, 8, 8], "bn": "train",
            "precision": "f32", "engine": "auto",
            "space": {"space": "nb201", "variant": null, "channels": null, "init_seed": 0},
        });
        assert_eq!(job.settings, fingerprint(&old.to_string()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
