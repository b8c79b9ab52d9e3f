//! Where proxy scores come from: a pluggable [`ProxyOracle`] (a network scored with
//! zerocost's proxies, a precomputed table, or any function), behind a per-cell cache
//! ([`Scorer`]) that can persist to a JSON-lines file.

use super::space::Space;
use crate::data::DataSource;
use crate::engine::tract::TractEngine;
use crate::onnx::Model;
use crate::proxies::value::{score_from_json, score_to_json};
use crate::proxies::{direction_of, Direction};
use crate::scoring::{score_model, BatchSpec, Batches};
use anyhow::{Context, Result};
use serde_json::json;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Called with (index into `archs`, score) as each architecture's score is known, so that
/// a cache can keep it before the rest are done (a killed search loses nothing scored).
pub type OnScored<'a> = dyn Fn(usize, Option<f64>) + Sync + 'a;

/// A source of proxy scores for the architectures of a space.
pub trait ProxyOracle<S: Space>: Sync {
    /// What the scores are (proxy and settings); cache entries are kept per id.
    fn id(&self) -> String;
    /// Scores of `archs` (`None`: not available for that one); `on_scored` hears of each.
    fn score(&self, space: &S, archs: &[S::Arch], on_scored: &OnScored) -> Vec<Option<f64>>;
    /// Which way the scores rank (higher is better unless the proxy says otherwise).
    fn direction(&self) -> Direction {
        Direction::Higher
    }
}

/// Scores looked up by architecture key (a proxy computed beforehand, or a test's table).
pub struct TableOracle {
    pub id: String,
    pub scores: HashMap<String, f64>,
}

impl<S: Space> ProxyOracle<S> for TableOracle {
    fn id(&self) -> String {
        self.id.clone()
    }
    fn score(&self, space: &S, archs: &[S::Arch], on_scored: &OnScored) -> Vec<Option<f64>> {
        let out: Vec<Option<f64>> = archs.iter().map(|a| self.scores.get(&space.key(a)).copied()).collect();
        out.iter().enumerate().for_each(|(i, s)| on_scored(i, *s));
        out
    }
}

/// Scores from a function of the architecture key.
pub struct FnOracle<F: Fn(&str) -> Option<f64> + Sync> {
    pub id: String,
    pub f: F,
}

impl<S: Space, F: Fn(&str) -> Option<f64> + Sync> ProxyOracle<S> for FnOracle<F> {
    fn id(&self) -> String {
        self.id.clone()
    }
    fn score(&self, space: &S, archs: &[S::Arch], on_scored: &OnScored) -> Vec<Option<f64>> {
        let out: Vec<Option<f64>> = archs.iter().map(|a| (self.f)(&space.key(a))).collect();
        out.iter().enumerate().for_each(|(i, s)| on_scored(i, *s));
        out
    }
}

/// Scores of a network's sibling proxies, by (architecture key, proxy), waiting for their
/// oracle.
pub type SharedScores = std::sync::Arc<Mutex<HashMap<(String, &'static str), Option<f64>>>>;

/// Scores computed by zerocost: the architecture's network generated in memory, scored
/// with one proxy on a synthetic (seeded) batch with the tract engine, `jobs` networks at
/// a time.
pub struct NetworkOracle {
    pub proxy: &'static str,
    /// Proxies computed together with `proxy` on each network (AZ-NAS's components share
    /// one pass): their values wait in `shared` for the sibling oracles.
    pub group: Vec<&'static str>,
    pub shared: SharedScores,
    /// Synthetic data, float64 passes, tract: the settings the cache id records.
    pub spec: BatchSpec,
    pub batches: Batches,
    pub jobs: usize,
    /// Describes the network settings (channels, seed, ...) for the cache id.
    pub settings: String,
    pub progress: bool,
    reported: Mutex<bool>,
}

impl NetworkOracle {
    /// A synthetic batch of `batch_size` samples (`seed`) for `num_classes` classes.
    pub fn new(proxy: &'static str, batch_size: usize, num_classes: usize, image_size: usize, data_seed: u64, settings: String, jobs: usize) -> Result<NetworkOracle> {
        let spec = BatchSpec {
            batch_size,
            num_classes: Some(num_classes),
            seed: data_seed,
            engine: "tract".into(),
            // float64 passes, as the settings string records
            precision: "f64".into(),
            ..BatchSpec::default()
        };
        // the networks of a space share one input shape: one batch, built here
        let batches = Batches::new(DataSource::Synthetic);
        batches.prepare(&spec, vec![3, image_size, image_size], num_classes)?;
        let settings = format!("{settings} batch={batch_size} data_seed={data_seed} f64");
        Ok(NetworkOracle {
            proxy,
            group: vec![proxy],
            shared: Default::default(),
            spec,
            batches,
            jobs: jobs.max(1),
            settings,
            progress: false,
            reported: Mutex::new(false),
        })
    }

    /// One oracle per proxy of `group`, sharing each network's pass.
    pub fn group(group: &[&'static str], batch_size: usize, num_classes: usize, image_size: usize, data_seed: u64, settings: String, jobs: usize) -> Result<Vec<NetworkOracle>> {
        let shared = SharedScores::default();
        group
            .iter()
            .map(|p| {
                let mut o = NetworkOracle::new(p, batch_size, num_classes, image_size, data_seed, settings.clone(), jobs)?;
                o.group = group.to_vec();
                o.shared = shared.clone();
                Ok(o)
            })
            .collect()
    }

    fn score_one<S: Space>(&self, space: &S, a: &S::Arch, engine: &TractEngine) -> Option<f64> {
        let key = space.key(a);
        if let Some(v) = self.shared.lock().unwrap().remove(&(key.clone(), self.proxy)) {
            return v;
        }
        let res = space.build(a).and_then(|raw| {
            let model = Model::from_raw(format!("{} {}", space.name(), key), raw);
            let r = score_model(&model, &self.spec, &self.batches, &self.group, engine)?.results;
            let mut shared = self.shared.lock().unwrap();
            let value = |p: &str| {
                let pr = &r[p];
                match (&pr.value, pr.error.as_deref()) {
                    // a ±∞ value (an AZ-NAS component's −∞) ranks as such
                    (Some(v), _) => Ok(v.total),
                    (None, e) => Err(anyhow::anyhow!("{}", e.unwrap_or_default())),
                }
            };
            for p in self.group.iter().filter(|p| **p != self.proxy) {
                shared.insert((key.clone(), *p), value(p).ok());
            }
            value(self.proxy)
        });
        match res {
            Ok(v) => Some(v),
            Err(e) => {
                let mut r = self.reported.lock().unwrap();
                if !*r {
                    eprintln!("zerocost: warning: {} of {} could not be computed ({e:#}); such cells get no score", self.proxy, space.key(a));
                    *r = true;
                }
                None
            }
        }
    }
}

impl<S: Space> ProxyOracle<S> for NetworkOracle {
    fn id(&self) -> String {
        format!("{} {}", self.proxy, self.settings)
    }
    fn direction(&self) -> Direction {
        direction_of(self.proxy)
    }
    fn score(&self, space: &S, archs: &[S::Arch], on_scored: &OnScored) -> Vec<Option<f64>> {
        let out: Vec<Mutex<Option<f64>>> = archs.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let start = Instant::now();
        let workers = self.jobs.min(archs.len()).max(1);
        let show = self.progress && archs.len() >= 8;
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    let engine = TractEngine::default();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        if i >= archs.len() {
                            break;
                        }
                        let v = self.score_one(space, &archs[i], &engine);
                        *out[i].lock().unwrap() = v;
                        on_scored(i, v);
                        let d = done.fetch_add(1, Ordering::SeqCst) + 1;
                        let every = (archs.len() / 10).max(25);
                        if show && (d.is_multiple_of(every) || d == archs.len()) {
                            let el = start.elapsed().as_secs_f64();
                            eprintln!("  scored {d}/{} cells with {} ({:.1}s, {:.1} ms/cell)", archs.len(), self.proxy, el, 1e3 * el / d as f64);
                        }
                    }
                });
            }
        });
        out.into_iter().map(|m| m.into_inner().unwrap()).collect()
    }
}

/// A proxy oracle behind a cache: each architecture key is scored at most once (per
/// process, and across runs with a cache file, whose entries are kept per oracle id).
pub struct Scorer<'o, S: Space> {
    oracle: &'o dyn ProxyOracle<S>,
    id: String,
    map: Mutex<HashMap<String, Option<f64>>>,
    file: Option<Mutex<File>>,
    direction: Direction,
    /// Architectures scored by the oracle (cache misses).
    pub computed: AtomicUsize,
}

impl<'o, S: Space> Scorer<'o, S> {
    pub fn new(oracle: &'o dyn ProxyOracle<S>) -> Scorer<'o, S> {
        Scorer { id: oracle.id(), direction: oracle.direction(), oracle, map: Mutex::new(HashMap::new()), file: None, computed: AtomicUsize::new(0) }
    }

    /// Ranks the other way than the oracle says (e.g. a table of a lower-is-better proxy).
    pub fn with_direction(mut self, direction: Direction) -> Self {
        self.direction = direction;
        self
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Also reads and appends to a JSON-lines cache `{"space", "oracle", "arch", "score"}`.
    pub fn with_cache_file(mut self, space: &S, path: &Path) -> Result<Self> {
        if path.exists() {
            let f = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
            let mut map = self.map.lock().unwrap();
            for (i, line) in BufReader::new(f).lines().enumerate() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                let v: serde_json::Value = serde_json::from_str(&line).with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
                if v["space"] == space.name() && v["oracle"] == self.id.as_str() {
                    if let Some(k) = v["arch"].as_str() {
                        map.insert(k.to_string(), score_from_json(&v["score"]));
                    }
                }
            }
        }
        let f = std::fs::OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("cannot open {}", path.display()))?;
        self.file = Some(Mutex::new(f));
        Ok(self)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Number of cached entries.
    pub fn cached(&self) -> usize {
        self.map.lock().unwrap().len()
    }

    /// The score if already known (never computes).
    pub fn peek(&self, space: &S, a: &S::Arch) -> Option<Option<f64>> {
        self.map.lock().unwrap().get(&space.key(a)).copied()
    }

    pub fn get(&self, space: &S, a: &S::Arch) -> Result<Option<f64>> {
        Ok(self.get_many(space, std::slice::from_ref(a))?[0])
    }

    /// Scores of `archs`, computing the missing ones (each distinct key once).
    pub fn get_many(&self, space: &S, archs: &[S::Arch]) -> Result<Vec<Option<f64>>> {
        let keys: Vec<String> = archs.iter().map(|a| space.key(a)).collect();
        let mut todo: Vec<S::Arch> = Vec::new();
        let mut todo_keys: Vec<String> = Vec::new();
        {
            let map = self.map.lock().unwrap();
            let mut queued = std::collections::HashSet::new();
            for (a, k) in archs.iter().zip(&keys) {
                if !map.contains_key(k) && queued.insert(k.clone()) {
                    todo.push(a.clone());
                    todo_keys.push(k.clone());
                }
            }
        }
        if !todo.is_empty() {
            // each score is cached (and appended to the file) as soon as it is known
            let write_error: Mutex<Option<std::io::Error>> = Mutex::new(None);
            let keep = |i: usize, s: Option<f64>| {
                self.computed.fetch_add(1, Ordering::SeqCst);
                self.map.lock().unwrap().insert(todo_keys[i].clone(), s);
                if let Some(f) = &self.file {
                    let line = json!({"space": space.name(), "oracle": self.id, "arch": todo_keys[i], "score": s.map(score_to_json)});
                    let mut f = f.lock().unwrap();
                    if let Err(e) = writeln!(f, "{line}").and_then(|_| f.flush()) {
                        write_error.lock().unwrap().get_or_insert(e);
                    }
                }
            };
            let scores = self.oracle.score(space, &todo, &keep);
            // an oracle that did not report a score as it went still returns it
            let mut map = self.map.lock().unwrap();
            for (k, s) in todo_keys.iter().zip(scores) {
                map.entry(k.clone()).or_insert(s);
            }
            drop(map);
            if let Some(e) = write_error.into_inner().unwrap() {
                return Err(anyhow::Error::new(e).context("cannot append to the proxy cache"));
            }
        }
        let map = self.map.lock().unwrap();
        Ok(keys.iter().map(|k| map[k]).collect())
    }
}
