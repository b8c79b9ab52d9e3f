//! NAS with proxies: the NAS-Bench-201 and NAS-Bench-101 spaces generated as ONNX networks
//! in Rust, and random search / aging evolution with the zero-cost-proxies paper's
//! warm-up and move proposal, over accuracy lookup tables.
//!
//! - [`nb201`], [`nb101`]: the spaces (parsing, enumeration, hashing, networks).
//! - [`space`]: the [`space::Space`] interface the algorithms use.
//! - [`oracle`]: proxy sources ([`oracle::ProxyOracle`]: networks scored by zerocost, tables,
//!   functions) and the per-cell cache [`oracle::Scorer`].
//! - [`algo`]: the searches; [`table`]: lookup tables; [`plot`]: the figure.

pub mod algo;
pub mod nb101;
pub mod nb201;
pub mod net;
pub mod oracle;
pub mod plot;
pub mod space;
pub mod table;

use algo::{run_search_with, Algorithm, Ranker, Row, SearchConfig, Truth};
use anyhow::{bail, Context, Result};
use oracle::{NetworkOracle, ProxyOracle, Scorer, TableOracle};
use serde_json::json;
use space::{Nb101Space, Nb201Space, Space};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SpaceName {
    Nb201,
    Nb101,
}

/// Network settings of the generated networks.
#[derive(clap::Args, Debug, Clone)]
pub struct NetArgs {
    /// Channels: NB201's first stage (default 16, the benchmark's), NB101's stem (default
    /// 128 for `space export`/`info`, the benchmark's; 16 for `search`, for speed).
    #[arg(long)]
    pub channels: Option<usize>,
    /// Number of classes of the classifier.
    #[arg(long, default_value_t = 10)]
    pub num_classes: usize,
    /// NB201 network: zc (the zero-cost-proxies paper's model and the fixtures: cell convs
    /// with bias, cell BN affine=False) or nb201 (NAS-Bench-201's TinyNetwork: no conv
    /// bias, affine cell BN; the published parameter counts).
    #[arg(long, value_enum, default_value = "zc")]
    pub variant: nb201::Variant,
    /// Cells per stage (NB201, default 5) or per stack (NB101, default 3).
    #[arg(long)]
    pub cells: Option<usize>,
    /// Input image side.
    #[arg(long, default_value_t = 32)]
    pub image_size: usize,
}

impl NetArgs {
    fn nb201(&self, seed: u64) -> nb201::Nb201Options {
        nb201::Nb201Options {
            channels: self.channels.unwrap_or(16),
            cells_per_stage: self.cells.unwrap_or(5),
            num_classes: self.num_classes,
            seed,
            variant: self.variant,
            image_size: self.image_size,
        }
    }

    fn nb101(&self, seed: u64, default_channels: usize) -> nb101::Nb101Options {
        nb101::Nb101Options {
            channels: self.channels.unwrap_or(default_channels),
            cells_per_stack: self.cells.unwrap_or(3),
            num_classes: self.num_classes,
            seed,
            image_size: self.image_size,
            ..Default::default()
        }
    }

    fn describe(&self, space: SpaceName, channels: usize, seed: u64) -> String {
        match space {
            SpaceName::Nb201 => format!("nb201-{:?} C={channels} cells={} classes={} image={} init_seed={seed}", self.variant, self.cells.unwrap_or(5), self.num_classes, self.image_size).to_lowercase(),
            SpaceName::Nb101 => format!("nb101 C={channels} cells={} classes={} image={} init_seed={seed}", self.cells.unwrap_or(3), self.num_classes, self.image_size),
        }
    }
}

/// `zerocost search ...`
#[derive(clap::Args, Debug)]
pub struct SearchArgs {
    /// The search space: nb201 (NAS-Bench-201) or nb101 (NAS-Bench-101).
    #[arg(long, value_enum)]
    pub space: SpaceName,
    /// random (distinct random cells) or evolution (aging evolution).
    #[arg(long, value_enum, default_value = "evolution")]
    pub algorithm: Algorithm,
    /// Trained models per run.
    #[arg(long, default_value_t = 100)]
    pub budget: usize,
    /// Warm-up: score this many random architectures with the proxy and start from the best.
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
    /// Move proposal (evolution): score every one-edit mutation of the tournament winner
    /// with the proxy and take the best one.
    #[arg(long)]
    pub move_proposal: bool,
    /// Probability of taking a random candidate instead of the best-scored one.
    #[arg(long, default_value_t = 0.25)]
    pub move_random_prob: f64,
    /// Population size of evolution.
    #[arg(long, default_value_t = 64)]
    pub population: usize,
    /// Tournament (sample) size of evolution.
    #[arg(long, default_value_t = 10)]
    pub tournament: usize,
    /// Proxy computed on the generated networks (a zerocost proxy name).
    #[arg(long)]
    pub proxy: Option<String>,
    /// Which way the proxy ranks: higher or lower is better. Default: the proxy's own
    /// direction (`zerocost proxies`; for a table, that of the proxy its column names, else
    /// higher).
    #[arg(long, value_enum)]
    pub proxy_direction: Option<crate::proxies::Direction>,
    /// Proxy scores from a table instead (CSV/JSON/JSONL, see README).
    #[arg(long, conflicts_with = "proxy")]
    pub proxy_table: Option<PathBuf>,
    /// Column (CSV) or field (JSON) of the proxy table.
    #[arg(long)]
    pub proxy_column: Option<String>,
    /// Path inside a JSON proxy table (e.g. cifar10).
    #[arg(long)]
    pub proxy_root: Option<String>,
    /// Accuracy lookup table (CSV `arch,accuracy`, or JSON arch → accuracy).
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Column (CSV) or field (JSON) of the truth table to select by.
    #[arg(long)]
    pub truth_column: Option<String>,
    /// Path inside a JSON truth table (e.g. nasbench101/cifar10).
    #[arg(long)]
    pub truth_root: Option<String>,
    /// A second column of the truth table to report (e.g. test accuracy when selecting by
    /// validation accuracy): trace keys `report` and `best_report`.
    #[arg(long)]
    pub report_column: Option<String>,
    /// Seed of the search (run r uses seed + r).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Independent runs (seeds seed, seed+1, ...).
    #[arg(long, default_value_t = 1)]
    pub repeats: usize,
    /// Also run the search without proxy (no warm-up, no move proposal) and plot both.
    #[arg(long)]
    pub compare: bool,
    /// JSON-lines trace, one line per trained model.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Plot best accuracy vs trained models (.svg or .png).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Title of the plot.
    #[arg(long)]
    pub title: Option<String>,
    /// Proxy score cache (JSON lines), read and extended.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Samples of the synthetic batch the proxy sees.
    #[arg(long, default_value_t = 64)]
    pub proxy_batch: usize,
    /// Seed of the synthetic batch.
    #[arg(long, default_value_t = 0)]
    pub data_seed: u64,
    /// Seed of the networks' initialisation (the same for every cell).
    #[arg(long, default_value_t = 0)]
    pub init_seed: u64,
    #[command(flatten)]
    pub net: NetArgs,
    /// Networks scored in parallel (default: the number of CPUs).
    #[arg(long)]
    pub jobs: Option<usize>,
}

/// `zerocost space ...`
#[derive(clap::Args, Debug)]
pub struct SpaceArgs {
    #[command(subcommand)]
    pub command: SpaceCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum SpaceCommand {
    /// Write the network of one cell as ONNX.
    Export {
        #[command(flatten)]
        cell: CellArgs,
        /// The ONNX file to write.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Enumerate the cells of a space (or count them).
    List {
        /// The search space: nb201 or nb101.
        #[arg(value_enum)]
        space: SpaceName,
        /// NB201: one cell per isomorphism class (NAS-Bench-201's unique string).
        #[arg(long)]
        dedup: bool,
        /// Print only the number of cells.
        #[arg(long)]
        count: bool,
        /// NB101: largest number of vertices (the full space is 7; enumerating it takes minutes).
        #[arg(long, default_value_t = 4)]
        max_vertices: usize,
        /// NB101: largest number of edges.
        #[arg(long, default_value_t = nb101::MAX_EDGES)]
        max_edges: usize,
        /// Print only a random sample of this many cells (without replacement, in
        /// enumeration order), drawn with `--seed`.
        #[arg(long)]
        sample: Option<usize>,
        /// Seed of `--sample`.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Canonical form, hash / isomorphism key, parameter count of one cell (JSON).
    Info {
        #[command(flatten)]
        cell: CellArgs,
    },
}

/// One cell and the network it is placed in (`space export`, `space info`).
#[derive(clap::Args, Debug)]
pub struct CellArgs {
    /// The search space: nb201 (NAS-Bench-201) or nb101 (NAS-Bench-101).
    #[arg(value_enum)]
    pub space: SpaceName,
    /// NB201 cell string, or NB101 JSON {"matrix": [[..]], "ops": [..]} (or a NASLib tuple).
    pub arch: String,
    /// Seed of the initialisation (the parameter values do not change `info`'s count).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub net: NetArgs,
}

pub fn space(args: SpaceArgs) -> Result<i32> {
    match args.command {
        SpaceCommand::Export { cell: CellArgs { space, arch, seed, net }, output } => {
            let raw = match space {
                SpaceName::Nb201 => nb201::build(&nb201::Cell::parse(&arch)?, &net.nb201(seed))?,
                SpaceName::Nb101 => nb101::build(&nb101::Spec::parse(&arch)?, &net.nb101(seed, 128))?,
            };
            net::write_onnx(&raw, &output)?;
            eprintln!("wrote {}: {} nodes, {} parameters", output.display(), raw.graph.nodes.len(), net::param_count(&raw));
            Ok(0)
        }
        SpaceCommand::List { space, dedup, count, max_vertices, max_edges, sample, seed } => match list(space, dedup, count, max_vertices, max_edges, sample.map(|k| (k, seed))) {
            // `| head` closing the pipe is not an error
            Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => Ok(0),
            other => other,
        },
        SpaceCommand::Info { cell: CellArgs { space, arch, seed, net } } => {
            let v = match space {
                SpaceName::Nb201 => {
                    let c = nb201::Cell::parse(&arch)?;
                    let zc = nb201::build(&c, &nb201::Nb201Options { variant: nb201::Variant::Zc, ..net.nb201(seed) })?;
                    let orig = nb201::build(&c, &nb201::Nb201Options { variant: nb201::Variant::Nb201, ..net.nb201(seed) })?;
                    json!({"arch": c.to_string(), "index": c.index(), "unique_key": c.unique_key(),
                           "params_zc": net::param_count(&zc), "params_nb201": net::param_count(&orig),
                           "channels": net.channels.unwrap_or(16), "neighbours": c.neighbours().len()})
                }
                SpaceName::Nb101 => {
                    let s = nb101::Spec::parse(&arch)?;
                    let valid = s.is_valid();
                    let params = if valid { Some(net::param_count(&nb101::build(&s, &net.nb101(seed, 128))?)) } else { None };
                    json!({"valid": valid, "hash": s.hash(), "pruned": s.pruned().map(|p| p.to_json()),
                           "vertices": s.pruned().map(|p| p.num_vertices()), "edges": s.pruned().map(|p| p.num_edges()),
                           "params": params, "channels": net.channels.unwrap_or(128), "neighbours": s.neighbours().len()})
                }
            };
            std::io::stdout().write_all((serde_json::to_string_pretty(&v)? + "\n").as_bytes())?;
            Ok(0)
        }
    }
}

fn list(space: SpaceName, dedup: bool, count: bool, max_vertices: usize, max_edges: usize, sample: Option<(usize, u64)>) -> Result<i32> {
    let lines: Vec<String> = match space {
        SpaceName::Nb201 => {
            let mut seen = std::collections::HashSet::new();
            nb201::Cell::all().filter(|c| !dedup || seen.insert(c.unique_key())).map(|c| c.to_string()).collect()
        }
        SpaceName::Nb101 => {
            if max_vertices > nb101::MAX_VERTICES {
                bail!("NAS-Bench-101 cells have at most {} vertices", nb101::MAX_VERTICES);
            }
            nb101::enumerate(max_vertices, max_edges)
                .iter()
                .map(|(h, s)| json!({"hash": h, "matrix": s.matrix, "ops": s.to_json()["ops"]}).to_string())
                .collect()
        }
    };
    let lines = match sample {
        None => lines,
        Some((k, seed)) => {
            if k > lines.len() {
                bail!("--sample {k}: the space has only {} cells", lines.len());
            }
            let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
            let mut picked = rand::seq::index::sample(&mut rng, lines.len(), k).into_vec();
            picked.sort_unstable();
            picked.into_iter().map(|i| lines[i].clone()).collect()
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if count {
        writeln!(out, "{}", lines.len())?;
    } else {
        for l in &lines {
            writeln!(out, "{l}")?;
        }
    }
    out.flush()?;
    Ok(0)
}

pub fn search(args: SearchArgs) -> Result<i32> {
    match args.space {
        SpaceName::Nb201 => {
            let channels = args.net.channels.unwrap_or(16);
            let space = Nb201Space { net: args.net.nb201(args.init_seed) };
            search_in(&space, &args, channels)
        }
        SpaceName::Nb101 => {
            let channels = args.net.channels.unwrap_or(16);
            let space = Nb101Space { net: args.net.nb101(args.init_seed, 16) };
            search_in(&space, &args, channels)
        }
    }
}

fn load_truth<S: Space>(space: &S, args: &SearchArgs) -> Result<Option<Truth>> {
    let Some(path) = &args.truth else {
        if args.report_column.is_some() || args.truth_column.is_some() {
            bail!("--truth-column / --report-column need --truth");
        }
        return Ok(None);
    };
    let norm = |k: &str| space.normalize_key(k);
    let select = table::load(path, args.truth_column.as_deref(), args.truth_root.as_deref(), &norm)?;
    let report = args.report_column.as_deref().map(|c| table::load(path, Some(c), args.truth_root.as_deref(), &norm)).transpose()?;
    Ok(Some(Truth { select, report }))
}

fn search_in<S: Space>(space: &S, args: &SearchArgs, channels: usize) -> Result<i32> {
    let start = Instant::now();
    // outputs are checked before minutes of scoring
    if let Some(p) = &args.output {
        crate::output_path::check_writable(p, "--output", &[])?;
    }
    if let Some(p) = &args.plot {
        crate::output_path::check_writable(p, "--plot", &["svg", "png"])?;
    }
    if let Some(p) = &args.cache {
        crate::output_path::check_writable(p, "--cache", &[])?;
    }
    let truth = load_truth(space, args)?;
    // an aggregate (AZ-NAS) is several proxies combined over each set of candidates
    let aggregate = args.proxy.as_deref().and_then(crate::proxies::aggregate_named);
    let oracles = oracles(space, args, channels, aggregate.is_some())?;
    let scorers = scorers(space, args, &oracles)?;
    let ranker = match (scorers.len(), aggregate) {
        (0, _) => None,
        (_, Some(_)) => Some(Ranker::RankAggregate(scorers.iter().collect())),
        _ => Some(Ranker::One(&scorers[0])),
    };
    if (args.warmup > 0 || args.move_proposal) && ranker.is_none() {
        bail!("--warmup and --move-proposal need --proxy NAME or --proxy-table FILE");
    }
    let variants = variants(args, truth.is_some())?;
    let mut out: Option<std::io::BufWriter<std::fs::File>> = match &args.output {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?)),
        None => None,
    };
    let mut all_rows: Vec<Row> = Vec::new();
    for (name, vcfg, uses_proxy) in &variants {
        let t0 = Instant::now();
        // the baseline of --compare uses no proxy at all
        let sc = if *uses_proxy { ranker.as_ref() } else { None };
        let mut finals = Vec::new();
        for r in 0..args.repeats {
            // each trained model's line is on disk before the next step
            let mut write_row = |row: &Row| -> Result<()> {
                if let Some(f) = out.as_mut() {
                    writeln!(f, "{}", serde_json::to_string(row)?)?;
                    f.flush()?;
                }
                Ok(())
            };
            let rows = run_search_with(space, vcfg, r, name, sc, truth.as_ref(), &mut write_row)?;
            finals.push(rows.last().cloned());
            all_rows.extend(rows);
        }
        summary(name, &finals, truth.as_ref(), &all_rows, t0.elapsed().as_secs_f64());
    }
    if let Some(f) = out.as_mut() {
        f.flush()?;
    }
    for s in &scorers {
        eprintln!("proxy: {} evaluations computed, {} cells known ({})", s.computed.load(std::sync::atomic::Ordering::SeqCst), s.cached(), s.id());
    }
    if let Some(p) = &args.plot {
        let title = args.title.clone().unwrap_or_else(|| plot_title(space, args));
        plot::plot(&all_rows, &title, p)?;
        eprintln!("wrote {}", p.display());
    }
    if let Some(p) = &args.output {
        eprintln!("wrote {} ({} lines)", p.display(), all_rows.len());
    }
    eprintln!("total {:.1}s", start.elapsed().as_secs_f64());
    Ok(0)
}

/// The proxy sources `args` name: the networks scored with `--proxy` (AZ-NAS's four
/// components when `aggregate`), a `--proxy-table`, or none.
fn oracles<S: Space>(space: &S, args: &SearchArgs, channels: usize, aggregate: bool) -> Result<Vec<Box<dyn ProxyOracle<S>>>> {
    Ok(match (&args.proxy, &args.proxy_table) {
        (Some(name), _) => {
            let names = crate::proxies::resolve_names(std::slice::from_ref(name))?;
            if names.len() != 1 && !aggregate {
                bail!("--proxy takes one proxy name");
            }
            let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
            let settings = args.net.describe(args.space, channels, args.init_seed);
            let mut group = NetworkOracle::group(&names, args.proxy_batch, args.net.num_classes, args.net.image_size, args.data_seed, settings, jobs)?;
            for o in &mut group {
                o.progress = true;
            }
            group.into_iter().map(|o| Box::new(o) as Box<dyn ProxyOracle<S>>).collect()
        }
        (None, Some(path)) => {
            let col = args.proxy_column.as_deref();
            let scores = table::load(path, col, args.proxy_root.as_deref(), &|k| space.normalize_key(k))?;
            vec![Box::new(TableOracle { id: format!("table {} {}", path.display(), col.unwrap_or("")), scores })]
        }
        (None, None) => Vec::new(),
    })
}

/// One per-cell cache per oracle, ranking in the direction asked for and extending the
/// `--cache` file.
fn scorers<'o, S: Space>(space: &S, args: &SearchArgs, oracles: &'o [Box<dyn ProxyOracle<S>>]) -> Result<Vec<Scorer<'o, S>>> {
    let mut scorers: Vec<Scorer<S>> = oracles.iter().map(|o| Scorer::new(o.as_ref())).collect();
    // a table's scores rank in the direction of the proxy its column names, unless told
    let table_direction = args.proxy_column.as_deref().map(crate::proxies::direction_of);
    if let Some(d) = args.proxy_direction.or(if args.proxy_table.is_some() { table_direction } else { None }) {
        scorers = scorers.into_iter().map(|s| s.with_direction(d)).collect();
    }
    if let Some(path) = &args.cache {
        for s in std::mem::take(&mut scorers) {
            let s = s.with_cache_file(space, path)?;
            eprintln!("proxy cache {}: {} entries for {}", path.display(), s.cached(), s.id());
            scorers.push(s);
        }
    }
    Ok(scorers)
}

fn algorithm_name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::Random => "random search",
        Algorithm::Evolution => "aging evolution",
    }
}

/// The searches to run, each `(label, config, uses the proxy)`: the one asked for, after
/// its baseline without proxy under `--compare`.
fn variants(args: &SearchArgs, has_truth: bool) -> Result<Vec<(String, SearchConfig, bool)>> {
    let cfg = SearchConfig {
        algorithm: args.algorithm,
        budget: args.budget,
        warmup: args.warmup,
        move_proposal: args.move_proposal,
        move_random_prob: args.move_random_prob,
        population: args.population,
        tournament: args.tournament,
        seed: args.seed,
    };
    let algo = algorithm_name(args.algorithm);
    let proxy_name = args.proxy.clone().or_else(|| args.proxy_column.clone()).unwrap_or_else(|| "proxy".into());
    let mut variants: Vec<(String, SearchConfig, bool)> = Vec::new();
    let with_proxy_label = {
        let mut parts = Vec::new();
        if cfg.warmup > 0 {
            parts.push(format!("warm-up {}", cfg.warmup));
        }
        if cfg.move_proposal {
            parts.push("move proposal".to_string());
        }
        if parts.is_empty() {
            algo.to_string()
        } else {
            format!("{algo} + {proxy_name} {}", parts.join(" + "))
        }
    };
    if args.compare {
        if cfg.warmup == 0 && !cfg.move_proposal {
            bail!("--compare compares with and without the proxy: give --warmup N and/or --move-proposal");
        }
        if !has_truth {
            bail!("--compare needs an accuracy table (--truth)");
        }
        variants.push((algo.to_string(), SearchConfig { warmup: 0, move_proposal: false, ..cfg.clone() }, false));
    }
    variants.push((with_proxy_label, cfg, true));
    Ok(variants)
}

/// The plot's default title: space, algorithm, truth table and column, repeats.
fn plot_title<S: Space>(space: &S, args: &SearchArgs) -> String {
    let tt = match (&args.truth, &args.truth_column) {
        (Some(t), Some(c)) => format!(", {} {}", t.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default(), c),
        (Some(t), None) => format!(", {}", t.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default()),
        _ => String::new(),
    };
    format!("{} {}{tt} ({} repeats)", space.name().to_uppercase(), algorithm_name(args.algorithm), args.repeats)
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (m, var.sqrt())
}

/// One summary line per variant on stdout.
fn summary(name: &str, finals: &[Option<Row>], truth: Option<&Truth>, rows: &[Row], seconds: f64) {
    let finals: Vec<&Row> = finals.iter().flatten().collect();
    let steps = finals.iter().map(|r| r.step).max().unwrap_or(0);
    let mut line = format!("{name}: {} run(s) of {steps} trained models", finals.len());
    let accs: Vec<f64> = finals.iter().filter_map(|r| r.best_accuracy).collect();
    if !accs.is_empty() {
        let (m, s) = mean_std(&accs);
        line += &format!("; final best accuracy {m:.3} ± {s:.3}");
        let reps: Vec<f64> = finals.iter().filter_map(|r| r.best_report).collect();
        if !reps.is_empty() {
            let (m, s) = mean_std(&reps);
            line += &format!(" (reported {m:.3} ± {s:.3})");
        }
        if let Some(t) = truth {
            let top = t.select.values().copied().fold(f64::NEG_INFINITY, f64::max);
            let hits: Vec<usize> = finals
                .iter()
                .filter_map(|f| rows.iter().find(|r| r.variant == f.variant && r.repeat == f.repeat && r.accuracy == Some(top)).map(|r| r.step))
                .collect();
            line += &format!("; table best {top:.3} found in {}/{} runs", hits.len(), finals.len());
            if !hits.is_empty() {
                let mut h = hits.clone();
                h.sort();
                line += &format!(" (median step {})", h[h.len() / 2]);
            }
        }
    } else {
        let px: Vec<f64> = finals.iter().filter_map(|r| r.best_proxy).collect();
        if !px.is_empty() {
            let (m, s) = mean_std(&px);
            line += &format!("; final best proxy {m:.6e} ± {s:.3e}");
        }
        if let Some(f) = finals.first() {
            line += &format!("; best of run 0: {}", f.best_arch);
        }
    }
    line += &format!(" [{seconds:.1}s]");
    println!("{line}");
}
