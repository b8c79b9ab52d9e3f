//! NAS with proxies: the NB201/NB101 spaces (strings, enumeration, hashing, generated
//! networks against the PyTorch fixtures and published parameter counts) and the searches
//! (determinism, warm-up and move proposal on synthetic lookup tables, caches, CLI).

use ndarray::ArrayD;
use ndarray_npy::ReadNpyExt;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use zerocost::data::Batch;
use zerocost::engine::tract::TractEngine;
use zerocost::onnx::canon::CanonOptions;
use zerocost::onnx::ir::Tensor;
use zerocost::onnx::Model;
use zerocost::proxies::{find_measures, proxy_names, ScoreOptions};
use zerocost::search::algo::{run_search, Algorithm, Ranker, Row, SearchConfig, Truth};
use zerocost::search::nb101::{self, Op, Spec};
use zerocost::search::nb201::{self, Cell, Nb201Options, Variant};
use zerocost::search::net::param_count;
use zerocost::search::oracle::{FnOracle, NetworkOracle, Scorer, TableOracle};
use zerocost::search::space::{Nb101Space, Nb201Space, Space};
use zerocost::search::table;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("zerocost-search-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

// ---------------------------------------------------------------- NAS-Bench-201 cells

#[test]
fn nb201_strings_round_trip() {
    for c in Cell::all() {
        let s = c.to_string();
        assert_eq!(Cell::parse(&s).unwrap(), c, "{s}");
        assert_eq!(Cell::from_index(c.index()), c);
    }
    let s = "|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|";
    let c = Cell::parse(s).unwrap();
    assert_eq!(c.to_string(), s);
    // edges of a node in any order, whitespace
    let c2 = Cell::parse(" |nor_conv_1x1~0| + |avg_pool_3x3~1|none~0| + |none~2|skip_connect~0|nor_conv_1x1~1| ").unwrap();
    assert_eq!(c2, c);
    // NASLib's tuples (edge order (1,2),(1,3),(1,4),(2,3),(2,4),(3,4); ops skip, none, 3x3, 1x1, pool)
    assert_eq!(Cell::parse("(0, 2, 3, 2, 3, 1)").unwrap().to_string(), "|skip_connect~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_1x1~0|nor_conv_1x1~1|none~2|");
    for bad in ["", "|none~0|", "|none~0|+|none~0|+|none~0|none~1|none~2|", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "|none~0|+|none~0|none~0|+|none~0|none~1|none~2|"] {
        assert!(Cell::parse(bad).is_err(), "accepted '{bad}'");
    }
}

#[test]
fn nb201_enumeration_and_isomorphism_classes() {
    let all: std::collections::HashSet<String> = Cell::all().map(|c| c.to_string()).collect();
    assert_eq!(all.len(), 15_625);
    let unique: std::collections::HashSet<String> = Cell::all().map(|c| c.unique_key()).collect();
    assert_eq!(unique.len(), 6_466, "NAS-Bench-201's number of unique topologies");
    // cells that differ only by dead or zero paths share a class
    let a = Cell::parse("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|").unwrap();
    let b = Cell::parse("|nor_conv_1x1~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|").unwrap();
    assert_eq!(a.unique_key(), b.unique_key());
    let c = Cell::parse("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_3x3~1|none~2|").unwrap();
    assert_ne!(a.unique_key(), c.unique_key());
    // neighbours: 24 distinct one-edit cells
    let n = a.neighbours();
    assert_eq!(n.len(), 24);
    assert!(n.iter().all(|x| x.0.iter().zip(a.0.iter()).filter(|(p, q)| p != q).count() == 1));
}

#[test]
fn nb201_parameter_counts() {
    let params = |s: &str, variant: Variant, c: usize, classes: usize| {
        let o = Nb201Options { variant, channels: c, num_classes: classes, ..Default::default() };
        param_count(&nb201::build(&Cell::parse(s).unwrap(), &o).unwrap())
    };
    let all3x3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|";
    let none = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|";
    // NAS-Bench-201's published extremes for CIFAR-10: 1.531546 MB and 0.073306 MB
    assert_eq!(params(all3x3, Variant::Nb201, 16, 10), 1_531_546);
    assert_eq!(params(none, Variant::Nb201, 16, 10), 73_306);
    // NASLib's `params` of cell (0, 2, 3, 2, 3, 1): 0.615386 (CIFAR-10)
    assert_eq!(params("(0, 2, 3, 2, 3, 1)", Variant::Nb201, 16, 10), 615_386);
    // the zero-cost paper's variant: a conv bias (C) instead of BN scale+bias (2C) per cell conv
    assert_eq!(params(all3x3, Variant::Zc, 16, 10), 1_531_546 - 5 * 6 * (16 + 32 + 64));
    // the fixtures' PyTorch counts (every parameter of the modules the forward pass calls)
    for name in ["nb201_a", "nb201_b", "nb201_c"] {
        let r: serde_json::Value = serde_json::from_reader(File::open(root().join(format!("tests/fixtures/{name}/ref.json"))).unwrap()).unwrap();
        let arch = r["nb201"]["arch"].as_str().unwrap();
        let c = r["nb201"]["init_channels"].as_u64().unwrap() as usize;
        assert_eq!(params(arch, Variant::Zc, c, 10) as u64, r["params_all_modules"].as_u64().unwrap(), "{name}");
    }
}

// ------------------------------------------------- generated networks vs the fixtures

fn fixture_batch(name: &str) -> Batch {
    let dir = root().join("tests/fixtures").join(name);
    let x = ArrayD::<f32>::read_npy(File::open(dir.join("inputs.npy")).unwrap()).unwrap();
    let t = ArrayD::<i64>::read_npy(File::open(dir.join("targets.npy")).unwrap()).unwrap();
    Batch { inputs: x, targets: t.iter().copied().collect() }
}

/// The generated network of the fixture's cell with the fixture's weights copied in, by
/// position; initializer names and shapes must agree too.
fn generated_with_fixture_weights(name: &str) -> (Model, Model) {
    let fixture = Model::load(root().join(format!("models/{name}.onnx"))).unwrap();
    let r: serde_json::Value = serde_json::from_reader(File::open(root().join(format!("tests/fixtures/{name}/ref.json"))).unwrap()).unwrap();
    let cell = Cell::parse(r["nb201"]["arch"].as_str().unwrap()).unwrap();
    let c = r["nb201"]["init_channels"].as_u64().unwrap() as usize;
    let mut raw = nb201::build(&cell, &Nb201Options { channels: c, seed: 7, ..Default::default() }).unwrap();
    let theirs: Vec<(&String, &Tensor)> = fixture.raw.graph.initializers.iter().collect();
    let ours: Vec<String> = raw.graph.initializers.keys().cloned().collect();
    assert_eq!(ours.len(), theirs.len(), "{name}: number of initializers");
    for (k, (n, t)) in ours.iter().zip(theirs) {
        assert_eq!(k, n, "{name}: initializer order");
        assert_eq!(raw.graph.initializers[k].shape(), t.shape(), "{name}: shape of {k}");
        raw.graph.set_initializer(k, t.clone());
    }
    (Model::from_raw(format!("generated {name}"), raw), fixture)
}

fn logits(m: &Model, batch: &Batch) -> Vec<f64> {
    let shapes = m.input_shapes(batch.len(), None).unwrap();
    let g = m.canonical(&shapes, &CanonOptions { float64: true, ..Default::default() }).unwrap();
    let x = Tensor::F32(batch.inputs.clone()).cast(zerocost::onnx::ir::DType::F64);
    let out = zerocost::proxies::passes::load_and_run(&TractEngine::default(), &g, &[("input", &x)]).unwrap();
    out[0].to_f64_vec()
}

#[test]
fn nb201_generated_networks_match_the_pytorch_fixtures() {
    for name in ["nb201_a", "nb201_b", "nb201_c"] {
        let (ours, fixture) = generated_with_fixture_weights(name);
        let batch = fixture_batch(name);
        let (a, b) = (logits(&ours, &batch), logits(&fixture, &batch));
        assert_eq!(a.len(), 16 * 10);
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        assert!(diff < 1e-9, "{name}: logits differ by {diff}");
        // the same scored layers in the same (graph) order
        let opts = ScoreOptions::default();
        assert_eq!(zerocost::layer_names(&ours, &opts, 16).unwrap(), zerocost::layer_names(&fixture, &opts, 16).unwrap(), "{name}");
    }
    // every proxy on the 16-channel one: the same scores as the fixture's
    let (ours, fixture) = generated_with_fixture_weights("nb201_a");
    let batch = fixture_batch("nb201_a");
    let r: serde_json::Value = serde_json::from_reader(File::open(root().join("tests/fixtures/nb201_a/ref.json")).unwrap()).unwrap();
    let classic = ["grad_norm", "snip", "grasp", "fisher", "jacob_cov", "plain", "synflow", "synflow_bn", "l2_norm", "params", "flops"];
    // the paper's proxies and the others PyTorch has values for (not every registered one:
    // some take tens of seconds)
    let names: Vec<&str> = proxy_names().into_iter().filter(|n| classic.contains(n) || r["proxies_f64"].get(*n).is_some()).collect();
    let engine = TractEngine::default();
    let opts = ScoreOptions { float64: true, ..Default::default() };
    let a = find_measures(&ours, &batch, &names, &engine, &opts);
    let b = find_measures(&fixture, &batch, &names, &engine, &opts);
    for n in &names {
        let Some(y) = b[*n].value.as_ref().map(|v| v.total) else {
            assert!(!classic.contains(n), "{n} failed on the fixture: {:?}", b[*n].error);
            continue; // a proxy that does not apply to the exported form either
        };
        let x = a[*n].value.as_ref().unwrap_or_else(|| panic!("{n}: {:?}", a[*n].error)).total;
        let rel = (x - y).abs() / y.abs().max(1e-30);
        assert!(rel < 1e-9, "{n}: generated {x} vs fixture {y}");
        // and PyTorch's float64 value for the fixture
        if classic.contains(n) {
            let t = r["proxies_f64"][*n].as_f64().unwrap();
            assert!((x - t).abs() / t.abs() < 1e-4, "{n}: generated {x} vs PyTorch {t}");
        }
    }
}

#[test]
fn nb201_initialisation_is_seeded_and_pytorch_like() {
    let cell = Cell::parse("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|").unwrap();
    let a = nb201::build(&cell, &Nb201Options { seed: 3, ..Default::default() }).unwrap();
    let b = nb201::build(&cell, &Nb201Options { seed: 3, ..Default::default() }).unwrap();
    let c = nb201::build(&cell, &Nb201Options { seed: 4, ..Default::default() }).unwrap();
    assert_eq!(a.graph.initializers, b.graph.initializers);
    assert_ne!(a.graph.initializers, c.graph.initializers);
    let w = a.graph.initializers["body.0.ops.1_0_nor_conv_3x3.1.weight"].to_f64_vec();
    let bound = 1.0 / (16.0f64 * 9.0).sqrt();
    assert!(w.iter().all(|v| v.abs() <= bound));
    assert!(w.iter().map(|v| v.abs()).fold(0.0, f64::max) > 0.9 * bound);
    let mean = w.iter().sum::<f64>() / w.len() as f64;
    let var = w.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / w.len() as f64;
    assert!((var - bound * bound / 3.0).abs() < 0.1 * bound * bound / 3.0, "uniform variance");
    assert!(a.graph.initializers["head_bn.weight"].to_f64_vec().iter().all(|&v| v == 1.0));
    assert!(a.graph.initializers["head_bn.running_var"].to_f64_vec().iter().all(|&v| v == 1.0));
    // exported file reads back
    let p = tmp("resnetlike.onnx");
    zerocost::search::net::write_onnx(&a, &p).unwrap();
    let m = Model::load(&p).unwrap();
    assert_eq!(m.export_batch(), None);
    assert_eq!(m.raw.graph.initializers.len(), a.graph.initializers.len());
}

// ----------------------------------------------------------------------- NAS-Bench-101

fn spec(m: &[&[u8]], ops: &[Op]) -> Spec {
    Spec::new(m.iter().map(|r| r.to_vec()).collect(), ops.to_vec()).unwrap()
}

#[test]
fn nb101_validity_pruning_and_counts() {
    use Op::*;
    // unique cells (by hash) with at most n vertices: hand-countable for n ≤ 4
    assert_eq!(nb101::enumerate(2, 9).len(), 1);
    assert_eq!(nb101::enumerate(3, 9).len(), 7); // in→out; in→v→out and +in→out, ×3 ops
    assert_eq!(nb101::enumerate(4, 9).len(), 91); // 7 + 84 four-vertex cells
    // a dangling vertex is pruned: same hash as without it
    let with = spec(&[&[0, 1, 1, 0], &[0, 0, 0, 1], &[0, 0, 0, 0], &[0, 0, 0, 0]], &[Input, Conv3x3, MaxPool3x3, Output]);
    let without = spec(&[&[0, 1, 0], &[0, 0, 1], &[0, 0, 0]], &[Input, Conv3x3, Output]);
    assert!(with.is_valid());
    assert_eq!(with.pruned().unwrap(), without);
    assert_eq!(with.hash(), without.hash());
    // the input does not reach the output
    let cut = spec(&[&[0, 1, 0], &[0, 0, 0], &[0, 0, 0]], &[Input, Conv1x1, Output]);
    assert!(!cut.is_valid());
    assert_eq!(cut.hash(), None);
    // ten edges are too many
    let dense: Vec<Vec<u8>> = (0..7).map(|i| (0..7).map(|j| u8::from(j > i && (j - i <= 2 || (i == 0 && j == 6)))).collect()).collect();
    let ops = vec![Input, Conv3x3, Conv3x3, Conv3x3, Conv3x3, Conv3x3, Output];
    let s = Spec::new(dense, ops).unwrap();
    assert_eq!(s.num_edges(), 12);
    assert!(!s.is_valid());
    // vertex-swapping isomorphism: same hash
    let a = spec(&[&[0, 1, 1, 0], &[0, 0, 0, 1], &[0, 0, 0, 1], &[0, 0, 0, 0]], &[Input, Conv3x3, Conv1x1, Output]);
    let b = spec(&[&[0, 1, 1, 0], &[0, 0, 0, 1], &[0, 0, 0, 1], &[0, 0, 0, 0]], &[Input, Conv1x1, Conv3x3, Output]);
    assert_eq!(a.hash(), b.hash());
    // malformed
    assert!(Spec::new(vec![vec![0, 1], vec![1, 0]], vec![Input, Output]).is_err());
    assert!(Spec::parse(r#"{"matrix": [[0,1],[0,0]], "ops": ["input","conv5x5"]}"#).is_err());
}

#[test]
fn nb101_hash_and_parameters_match_the_reference() {
    // first cell of NASLib's NB101 sample; hash by the original graph_util.hash_module
    // (Python, md5), parameters = NASLib's 4.095778 M
    let s = Spec::parse("(0, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 4, 4, 4, 1)").unwrap();
    assert_eq!(s.hash().unwrap(), "4a0ab8bbe2441a002e07b0f445ec2d63");
    let raw = nb101::build(&s, &nb101::Nb101Options::default()).unwrap();
    assert_eq!(param_count(&raw), 4_095_778);
    let j = Spec::parse(&s.to_json().to_string()).unwrap();
    assert_eq!(j, s);
    // the vertices feeding the output split its channels
    let m = s.pruned().unwrap().matrix;
    let n = m.len();
    let ch = nb101::vertex_channels(128, 256, &m);
    assert_eq!((1..n - 1).filter(|&v| m[v][n - 1] == 1).map(|v| ch[v]).sum::<usize>(), 256);
}

#[test]
fn nb101_network_runs() {
    use Op::*;
    // truncation (vertex 1 feeds vertex 3 with fewer channels), projections, concat + input add
    let s = spec(
        &[&[0, 1, 1, 1, 0, 1], &[0, 0, 0, 1, 0, 1], &[0, 0, 0, 0, 1, 0], &[0, 0, 0, 0, 1, 0], &[0, 0, 0, 0, 0, 1], &[0, 0, 0, 0, 0, 0]],
        &[Input, Conv3x3, MaxPool3x3, Conv1x1, Conv3x3, Output],
    );
    assert!(s.is_valid());
    let ch = nb101::vertex_channels(5, 5, &s.matrix);
    assert_eq!(ch, vec![5, 3, 2, 2, 2, 5]);
    let raw = nb101::build(&s, &nb101::Nb101Options { channels: 5, ..Default::default() }).unwrap();
    let m = Model::from_raw("nb101", raw);
    let x = ArrayD::from_shape_fn(vec![2, 3, 32, 32], |i| ((i[1] * 7 + i[2] * 3 + i[3]) % 11) as f32 / 11.0);
    let out = logits(&m, &Batch { inputs: x, targets: vec![0, 1] });
    assert_eq!(out.len(), 20);
    assert!(out.iter().all(|v| v.is_finite()));
    // one-edit neighbours are valid, distinct, and differ from the cell
    let n = s.neighbours();
    assert!(!n.is_empty());
    let hashes: std::collections::HashSet<_> = n.iter().map(|x| x.hash().unwrap()).collect();
    assert_eq!(hashes.len(), n.len());
    assert!(!hashes.contains(&s.hash().unwrap()));
}

// --------------------------------------------------------------------------- searches

/// A synthetic "accuracy" over all NB201 cells: additive per-edge op values plus a small
/// pseudo-random term, all distinct.
fn synthetic_table() -> HashMap<String, f64> {
    let w = [[0.0, 1.0, 2.5, 3.0, 1.5], [0.2, 1.2, 2.0, 2.8, 1.0], [0.1, 0.9, 2.2, 3.1, 1.3], [0.3, 1.1, 2.4, 2.7, 1.2], [0.0, 1.0, 2.1, 3.3, 1.4], [0.2, 0.8, 2.6, 2.9, 1.1]];
    Cell::all()
        .map(|c| {
            let base: f64 = (0..6).map(|e| w[e][c.0[e] as usize]).sum();
            let jitter = ((c.index() as u64).wrapping_mul(2654435761) % 1000) as f64 * 1e-6;
            (c.to_string(), 50.0 + 2.0 * base + jitter)
        })
        .collect()
}

fn space201() -> Nb201Space {
    Nb201Space { net: Nb201Options::default() }
}

fn best_of(t: &HashMap<String, f64>) -> (String, f64) {
    t.iter().max_by(|a, b| a.1.total_cmp(b.1)).map(|(k, v)| (k.clone(), *v)).unwrap()
}

#[test]
fn search_is_deterministic_under_a_seed() {
    let t = synthetic_table();
    let truth = Truth { select: t.clone(), report: None };
    let sp = space201();
    let oracle = TableOracle { id: "t".into(), scores: t.clone() };
    let scorer = Scorer::new(&oracle);
    for algorithm in [Algorithm::Random, Algorithm::Evolution] {
        for (warmup, mp) in [(0, false), (50, false), (50, true)] {
            if algorithm == Algorithm::Random && mp {
                continue;
            }
            let cfg = SearchConfig { algorithm, budget: 120, warmup, move_proposal: mp, seed: 11, ..Default::default() };
            let a = run_search(&sp, &cfg, 0, "x", Some(&Ranker::One(&scorer)), Some(&truth)).unwrap();
            let b = run_search(&sp, &cfg, 0, "x", Some(&Ranker::One(&scorer)), Some(&truth)).unwrap();
            let c = run_search(&sp, &cfg, 1, "x", Some(&Ranker::One(&scorer)), Some(&truth)).unwrap();
            let arch = |r: &[Row]| r.iter().map(|x| x.arch.clone()).collect::<Vec<_>>();
            assert_eq!(a.len(), 120);
            assert_eq!(arch(&a), arch(&b), "{algorithm:?} warmup {warmup}");
            assert_ne!(arch(&a), arch(&c), "{algorithm:?} warmup {warmup}: repeats differ");
            assert!(a.iter().enumerate().all(|(i, r)| r.step == i + 1));
            // best_accuracy is the running maximum
            let mut m = f64::NEG_INFINITY;
            for r in &a {
                m = m.max(r.accuracy.unwrap());
                assert_eq!(r.best_accuracy, Some(m));
            }
        }
    }
}

#[test]
fn warmup_with_a_perfect_proxy_trains_the_best_cell_first() {
    let t = synthetic_table();
    let (best, top) = best_of(&t);
    let truth = Truth { select: t.clone(), report: None };
    let sp = space201();
    // the proxy is the accuracy itself (a function oracle: perfectly correlated)
    let tt = t.clone();
    let oracle = FnOracle { id: "perfect".into(), f: move |k: &str| tt.get(k).copied() };
    let scorer = Scorer::new(&oracle);
    for algorithm in [Algorithm::Random, Algorithm::Evolution] {
        for seed in 0..3 {
            // warm-up over the whole space: the first trained cell is the best one
            let cfg = SearchConfig { algorithm, budget: 5, warmup: nb201::NUM_CELLS, seed, ..Default::default() };
            let rows = run_search(&sp, &cfg, 0, "w", Some(&Ranker::One(&scorer)), Some(&truth)).unwrap();
            assert_eq!(rows[0].arch, best, "{algorithm:?}");
            assert_eq!(rows[0].best_accuracy, Some(top));
            assert_eq!(rows[0].how, "warmup");
            // trained in decreasing proxy order
            assert!(rows.windows(2).all(|w| w[0].proxy.unwrap() >= w[1].proxy.unwrap()));
            // a smaller warm-up: the first trained cell is the best of its pool
            let cfg = SearchConfig { algorithm, budget: 64, warmup: 300, seed, ..Default::default() };
            let rows = run_search(&sp, &cfg, 0, "w", Some(&Ranker::One(&scorer)), Some(&truth)).unwrap();
            let first = rows[0].accuracy.unwrap();
            assert!(rows.iter().all(|r| r.accuracy.unwrap() <= first));
        }
    }
    assert_eq!(scorer.computed.load(std::sync::atomic::Ordering::SeqCst), nb201::NUM_CELLS, "each cell scored once");
}

#[test]
fn move_proposal_with_a_perfect_proxy_climbs_to_the_best_cell() {
    let t = synthetic_table();
    let (best, _) = best_of(&t);
    let truth = Truth { select: t.clone(), report: None };
    let sp = space201();
    let oracle = TableOracle { id: "perfect".into(), scores: t.clone() };
    let scorer = Scorer::new(&oracle);
    let mut found_with = 0;
    let mut found_without = 0;
    for seed in 0..5 {
        let with = SearchConfig { budget: 100, move_proposal: true, move_random_prob: 0.0, population: 16, tournament: 8, seed, ..Default::default() };
        let rows = run_search(&sp, &with, 0, "mp", Some(&Ranker::One(&scorer)), Some(&truth)).unwrap();
        assert!(rows.iter().skip(16).all(|r| r.how == "move"));
        found_with += rows.iter().any(|r| r.arch == best) as usize;
        let without = SearchConfig { move_proposal: false, ..with };
        let rows = run_search(&sp, &without, 0, "b", None, Some(&truth)).unwrap();
        found_without += rows.iter().any(|r| r.arch == best) as usize;
    }
    assert_eq!(found_with, 5, "greedy moves on an additive landscape reach the optimum");
    assert!(found_without < found_with);
}

#[test]
fn rank_aggregate_of_components_drives_warm_up() {
    let t = synthetic_table();
    let (best, _) = best_of(&t);
    let truth = Truth { select: t.clone(), report: None };
    let sp = space201();
    let a = TableOracle { id: "a".into(), scores: t.clone() };
    // a component that orders the cells the same way on another scale, and one that is
    // constant: the aggregate's order is the first one's
    let b = TableOracle { id: "b".into(), scores: t.iter().map(|(k, v)| (k.clone(), v.powi(3))).collect() };
    let c = TableOracle { id: "c".into(), scores: t.keys().map(|k| (k.clone(), 1.0)).collect() };
    let (sa, sb, sc) = (Scorer::new(&a), Scorer::new(&b), Scorer::new(&c));
    let ranker = Ranker::RankAggregate(vec![&sa, &sb, &sc]);
    let cfg = SearchConfig { algorithm: Algorithm::Random, budget: 5, warmup: nb201::NUM_CELLS, seed: 0, ..Default::default() };
    let rows = run_search(&sp, &cfg, 0, "az", Some(&ranker), Some(&truth)).unwrap();
    assert_eq!(rows[0].arch, best, "warm-up trains the best aggregate first");
    let acc: Vec<f64> = rows.iter().map(|r| r.accuracy.unwrap()).collect();
    assert!(acc.windows(2).all(|w| w[0] >= w[1]), "{acc:?}");
    assert!(rows.iter().all(|r| r.proxy.is_none()), "an aggregate is no per-cell score");
    assert!(run_search(&sp, &cfg, 0, "az", Some(&ranker), None).is_err(), "no fitness without a truth table");
}

#[test]
fn proxy_alone_ranks_by_the_proxy() {
    let t = synthetic_table();
    let sp = space201();
    let oracle = TableOracle { id: "p".into(), scores: t.clone() };
    let scorer = Scorer::new(&oracle);
    let cfg = SearchConfig { algorithm: Algorithm::Evolution, budget: 80, population: 20, seed: 1, ..Default::default() };
    let rows = run_search(&sp, &cfg, 0, "p", Some(&Ranker::One(&scorer)), None).unwrap();
    assert!(rows.iter().all(|r| r.accuracy.is_none() && r.best_accuracy.is_none() && r.proxy.is_some()));
    let last = rows.last().unwrap();
    assert_eq!(last.best_proxy, rows.iter().map(|r| r.proxy.unwrap()).reduce(f64::max));
    assert_eq!(t[&last.best_arch], last.best_proxy.unwrap());
    assert!(run_search(&sp, &cfg, 0, "p", None, None).is_err(), "nothing to rank by");
}

#[test]
fn nb101_search_runs_on_hashes() {
    let sp = Nb101Space { net: nb101::Nb101Options::default() };
    // an accuracy for any cell: a function of its pruned structure
    let oracle = FnOracle { id: "f".into(), f: |k: &str| Some(k.bytes().map(|b| b as f64).sum::<f64>()) };
    let scorer = Scorer::new(&oracle);
    let cfg = SearchConfig { budget: 40, population: 10, tournament: 3, warmup: 30, move_proposal: true, seed: 2, ..Default::default() };
    let rows = run_search(&sp, &cfg, 0, "x", Some(&Ranker::One(&scorer)), None).unwrap();
    assert_eq!(rows.len(), 40);
    assert!(rows.iter().all(|r| r.arch.len() == 32 && r.spec.is_some()));
}

// ------------------------------------------------------------------ caches and tables

#[test]
fn scores_are_cached_in_a_file() {
    let sp = space201();
    let path = tmp("cache.jsonl");
    let _ = std::fs::remove_file(&path);
    let cells: Vec<Cell> = (0..20).map(|i| Cell::from_index(i * 700)).collect();
    let oracle = FnOracle { id: "len".into(), f: |k: &str| Some(k.len() as f64) };
    let s1 = Scorer::new(&oracle).with_cache_file(&sp, &path).unwrap();
    let a = s1.get_many(&sp, &cells).unwrap();
    assert_eq!(s1.computed.load(std::sync::atomic::Ordering::SeqCst), 20);
    drop(s1);
    let s2 = Scorer::new(&oracle).with_cache_file(&sp, &path).unwrap();
    assert_eq!(s2.cached(), 20);
    assert_eq!(s2.get_many(&sp, &cells).unwrap(), a);
    assert_eq!(s2.computed.load(std::sync::atomic::Ordering::SeqCst), 0);
    // another oracle id does not see these entries
    let other = FnOracle { id: "other".into(), f: |_: &str| Some(0.0) };
    assert_eq!(Scorer::new(&other).with_cache_file(&sp, &path).unwrap().cached(), 0);
}

#[test]
fn network_oracle_scores_generated_networks() {
    // the params proxy needs no data pass: cheap, and checkable
    let sp = Nb201Space { net: Nb201Options { channels: 4, ..Default::default() } };
    let o = NetworkOracle::new("params", 4, 10, 32, 0, "test".into(), 2).unwrap();
    let cells = [Cell::from_index(0), Cell::from_index(11_718), Cell::from_index(5_000)];
    let scores = zerocost::search::oracle::ProxyOracle::score(&o, &sp, &cells, &|_, _| {});
    for (c, s) in cells.iter().zip(scores) {
        assert_eq!(s, Some(param_count(&sp.build(c).unwrap()) as f64));
    }
}

#[test]
fn lookup_tables_in_every_format() {
    let sp = space201();
    let norm = |k: &str| sp.normalize_key(k);
    let a = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|";
    let csv = tmp("t.csv");
    std::fs::write(&csv, format!("arch,val,test\n\"{a}\",91.5,90.25\n\"(0, 2, 3, 2, 3, 1)\",88,87\n")).unwrap();
    let t = table::load(&csv, Some("test"), None, &norm).unwrap();
    assert_eq!(t[a], 90.25);
    assert_eq!(t["|skip_connect~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_1x1~0|nor_conv_1x1~1|none~2|"], 87.0);
    assert!(table::load(&csv, None, None, &norm).is_err(), "ambiguous column");
    let json = tmp("t.json");
    std::fs::write(&json, format!("{{\"{a}\": 93.0, \"(0, 0, 0, 0, 0, 0)\": NaN}}")).unwrap();
    let t = table::load(&json, None, None, &norm).unwrap();
    assert_eq!(t[a], 93.0);
    assert_eq!(t.len(), 1, "Python's NaN is no value");
    let nested = tmp("n.json");
    std::fs::write(&nested, format!("{{\"x\": {{\"{a}\": {{\"val_accuracy\": 80.5, \"synflow\": {{\"score\": 3.5}}}}}}}}")).unwrap();
    assert_eq!(table::load(&nested, Some("val_accuracy"), Some("x"), &norm).unwrap()[a], 80.5);
    assert_eq!(table::load(&nested, Some("synflow"), Some("x"), &norm).unwrap()[a], 3.5);
    let jl = tmp("t.jsonl");
    std::fs::write(&jl, format!("{{\"arch\": \"{a}\", \"scores\": {{\"snip\": 2.0}}}}\n")).unwrap();
    assert_eq!(table::load(&jl, Some("scores.snip"), None, &norm).unwrap()[a], 2.0);
}

// ------------------------------------------------------------------------------- CLI

fn zerocost(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_zerocost")).args(args).output().unwrap()
}

#[test]
fn cli_space_and_search() {
    let onnx = tmp("cell.onnx");
    let cell = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|";
    let o = zerocost(&["space", "export", "nb201", cell, "-o", onnx.to_str().unwrap(), "--channels", "8", "--seed", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = zerocost(&["score", onnx.to_str().unwrap(), "-p", "params", "--format", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let want = param_count(&nb201::build(&Cell::parse(cell).unwrap(), &Nb201Options { channels: 8, ..Default::default() }).unwrap());
    assert_eq!(v[0]["scores"]["params"].as_f64().unwrap(), want as f64);
    let nb101 = tmp("nb101.onnx");
    let s = r#"{"matrix": [[0,1,1,0],[0,0,0,1],[0,0,0,1],[0,0,0,0]], "ops": ["input","conv3x3-bn-relu","maxpool3x3","output"]}"#;
    let o = zerocost(&["space", "export", "nb101", s, "-o", nb101.to_str().unwrap(), "--channels", "8"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = zerocost(&["space", "list", "nb201", "--dedup", "--count"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "6466");
    let o = zerocost(&["space", "list", "nb101", "--max-vertices", "3", "--count"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "7");

    // a search over a lookup table, with and without warm-up, plotted
    let t = synthetic_table();
    let truth = tmp("truth.csv");
    let mut text = String::from("arch,accuracy\n");
    for (k, v) in &t {
        text += &format!("{k},{v}\n");
    }
    std::fs::write(&truth, text).unwrap();
    let proxy = tmp("proxy.json");
    std::fs::write(&proxy, serde_json::to_string(&t).unwrap()).unwrap();
    let trace = tmp("trace.jsonl");
    for plot in ["plot.svg", "plot.png"] {
        let plot = tmp(plot);
        let o = zerocost(&[
            "search", "--space", "nb201", "--algorithm", "evolution", "--budget", "80", "--warmup", "200", "--proxy-table", proxy.to_str().unwrap(),
            "--truth", truth.to_str().unwrap(), "--seed", "3", "--repeats", "3", "--compare", "-o", trace.to_str().unwrap(), "--plot", plot.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(std::fs::metadata(&plot).unwrap().len() > 1000);
    }
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&trace).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2 * 3 * 80);
    for k in ["repeat", "step", "arch", "proxy", "accuracy", "best_accuracy", "variant"] {
        assert!(lines[0].get(k).is_some(), "trace key {k}");
    }
    let stdout = String::from_utf8_lossy(&zerocost(&["search", "--space", "nb201", "--budget", "10", "--truth", truth.to_str().unwrap()]).stdout).to_string();
    assert!(stdout.contains("final best accuracy"), "{stdout}");
    assert!(Path::new(&trace).exists());
}

#[test]
fn a_lower_is_better_proxy_is_ranked_lowest_first() {
    let t = synthetic_table();
    let (best, _) = best_of(&t);
    let truth = Truth { select: t.clone(), report: None };
    let sp = space201();
    // the negated accuracy: perfect when read lower-is-better, as ntk_cond is
    let oracle = TableOracle { id: "neg".into(), scores: t.iter().map(|(k, v)| (k.clone(), -v)).collect() };
    let scorer = Scorer::new(&oracle).with_direction(zerocost::proxies::Direction::Lower);
    let cfg = SearchConfig { algorithm: Algorithm::Random, budget: 20, warmup: 15_625, seed: 5, ..Default::default() };
    let rows = run_search(&sp, &cfg, 0, "x", Some(&Ranker::One(&scorer)), Some(&truth)).unwrap();
    assert_eq!(rows[0].arch, best, "the lowest score is trained first");
    // without a table the best proxy so far is the lowest one
    let cfg = SearchConfig { algorithm: Algorithm::Evolution, budget: 60, population: 20, seed: 1, ..Default::default() };
    let rows = run_search(&sp, &cfg, 0, "x", Some(&Ranker::One(&scorer)), None).unwrap();
    let last = rows.last().unwrap();
    assert_eq!(last.best_proxy, rows.iter().map(|r| r.proxy.unwrap()).reduce(f64::min));
    // the registry says ntk_cond is lower-is-better, and the network oracle passes it on
    let o = NetworkOracle::new("ntk_cond", 4, 10, 8, 0, "test".into(), 1).unwrap();
    assert_eq!(Scorer::<Nb201Space>::new(&o).direction(), zerocost::proxies::Direction::Lower);
}

/// The arguments of a small proxy search over NB201 (synflow on 4-channel one-cell networks).
fn small_search_args(cache: &Path, trace: &Path, warmup: usize) -> Vec<String> {
    let truth = root().join("data/nb201_accuracy.csv");
    [
        "search", "--space", "nb201", "--algorithm", "evolution", "--budget", "60", "--population", "20", "--warmup", &warmup.to_string(), "--proxy", "synflow",
        "--channels", "4", "--cells", "1", "--image-size", "8", "--proxy-batch", "4", "--jobs", "2", "--seed", "7", "--truth", truth.to_str().unwrap(),
        "--truth-column", "cifar10_test", "--cache", cache.to_str().unwrap(), "-o", trace.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn lines_of(p: &Path) -> usize {
    std::fs::read_to_string(p).map(|t| t.lines().count()).unwrap_or(0)
}

#[test]
fn a_search_killed_mid_warmup_resumes_with_the_same_trace() {
    let bin = env!("CARGO_BIN_EXE_zerocost");
    let warmup = 800;
    let (cache_a, trace_a) = (tmp("resume_a_cache.jsonl"), tmp("resume_a_trace.jsonl"));
    let (cache_b, trace_b) = (tmp("resume_b_cache.jsonl"), tmp("resume_b_trace.jsonl"));
    for p in [&cache_a, &trace_a, &cache_b, &trace_b] {
        let _ = std::fs::remove_file(p);
    }
    let o = std::process::Command::new(bin).args(small_search_args(&cache_a, &trace_a, warmup)).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // the same search, killed once part of the warm-up pool is scored
    let mut child = std::process::Command::new(bin)
        .args(small_search_args(&cache_b, &trace_b, warmup))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while lines_of(&cache_b) < 50 && t0.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let cached = lines_of(&cache_b);
    assert!((50..warmup).contains(&cached), "killed with {cached} of {warmup} cells in the cache");
    // every cached line is complete JSON (a line is written whole and flushed)
    let text = std::fs::read_to_string(&cache_b).unwrap();
    let complete = text.lines().filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()).count();
    assert!(complete + 1 >= cached, "at most a partial last line");
    let o = std::process::Command::new(bin).args(small_search_args(&cache_b, &trace_b, warmup)).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    // the rerun scored only what the killed run had not
    let computed: usize = err.lines().find_map(|l| l.strip_prefix("proxy: ")?.split(' ').next()?.parse().ok()).unwrap();
    assert!(computed <= warmup - complete, "rerun computed {computed}, {complete} were cached:\n{err}");
    assert_eq!(std::fs::read_to_string(&trace_a).unwrap(), std::fs::read_to_string(&trace_b).unwrap());
    assert_eq!(lines_of(&trace_b), 60);
}

#[test]
fn search_outputs_are_checked_before_any_scoring() {
    let (cache, trace) = (tmp("checked_cache.jsonl"), tmp("checked_trace.jsonl"));
    let _ = std::fs::remove_file(&cache);
    let mut args = small_search_args(&cache, &trace, 5000);
    args.extend(["--plot".to_string(), tmp("plot.jpg").to_str().unwrap().to_string()]);
    let t0 = std::time::Instant::now();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_zerocost")).args(&args).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains(".svg, .png"), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(lines_of(&cache), 0, "nothing was scored");
    assert!(t0.elapsed().as_secs() < 5);
    let args = small_search_args(&cache, &tmp("no/such/folder/trace.jsonl"), 5000);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_zerocost")).args(&args).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not exist"), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(lines_of(&cache), 0, "nothing was scored");
}

#[test]
fn a_naslib_table_without_its_root_says_which_flag_to_use() {
    let sp = space201();
    let norm = |k: &str| sp.normalize_key(k);
    let path = root().join("data/naslib_zc_nasbench201_725subset.json");
    let e = format!("{:#}", table::load(&path, Some("synflow"), None, &norm).unwrap_err());
    assert!(e.contains("--proxy-root") && e.contains("cifar10"), "{e}");
    assert!(e.len() < 400, "the message lists a few keys, not hundreds: {e}");
    // 725 cells, one of them without a synflow score (counted with Python's json module)
    assert_eq!(table::load(&path, Some("synflow"), Some("cifar10"), &norm).unwrap().len(), 724);
}
