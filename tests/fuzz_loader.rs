//! Hostile files: mutations of the fixtures (truncations, byte flips, random dimensions,
//! deleted or duplicated nodes and initializers, cycles, wrong element types, external
//! data outside the model's folder, absurd attributes) are loaded, inspected and scored
//! with `params,synflow`. Every case must end in a value or an error naming the file: no
//! panic, no abort, no case slower than its limit.
//!
//! In-process (fast): `ZEROCOST_FUZZ_CASES` cases (default 2000), under a 1 GiB memory
//! budget. As subprocesses under a 4 GiB address-space limit (every command, a sample of
//! the cases and the regression files in tests/hostile/): exit 0, 1 or 2 with a one-line
//! error. Crashing inputs it finds are kept in tests/hostile/ as regression files.

use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tract_onnx::pb;
use zerocost::data::{load_batch, BatchRequest, DataSource};
use zerocost::engine::tract::TractEngine;
use zerocost::onnx::canon::BnMode;
use zerocost::onnx::Model;
use zerocost::proxies::{find_measures, ScoreOptions};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const FIXTURES: [&str; 4] = ["tiny_cnn", "tiny_cnn_dynamo", "shuffle_tiny", "tiny_mlp"];
/// Per case, in process (a slow case is a hang waiting to happen on a bigger file).
const CASE_LIMIT: Duration = Duration::from_secs(20);

/// One mutation of a fixture: its name (for the report) and the bytes of the file.
struct Mutant {
    what: String,
    bytes: Vec<u8>,
}

fn random_dim(rng: &mut ChaCha8Rng) -> i64 {
    match rng.gen_range(0..6) {
        0 => 0,
        1 => -rng.gen_range(1..5),
        2 => 1 << rng.gen_range(20..62),
        3 => rng.gen_range(1..4),
        4 => rng.gen_range(5..100),
        _ => i64::MAX,
    }
}

fn mutate_bytes(rng: &mut ChaCha8Rng, mut b: Vec<u8>) -> Mutant {
    match rng.gen_range(0..3) {
        0 => {
            let at = rng.gen_range(0..b.len());
            b.truncate(at);
            Mutant { what: format!("truncated at {at}"), bytes: b }
        }
        1 => {
            let k = rng.gen_range(1..20);
            for _ in 0..k {
                let i = rng.gen_range(0..b.len());
                b[i] ^= 1 << rng.gen_range(0..8);
            }
            Mutant { what: format!("{k} bits flipped"), bytes: b }
        }
        _ => {
            let at = rng.gen_range(0..b.len());
            let junk: Vec<u8> = (0..rng.gen_range(1..64)).map(|_| rng.gen()).collect();
            b.splice(at..at, junk);
            Mutant { what: format!("bytes inserted at {at}"), bytes: b }
        }
    }
}

/// A structural mutation of the decoded model.
fn mutate_model(rng: &mut ChaCha8Rng, mut m: pb::ModelProto) -> (String, pb::ModelProto) {
    let g = m.graph.as_mut().unwrap();
    let what = match rng.gen_range(0..10) {
        0 => {
            // random input dimensions, possibly another rank
            let dims: Vec<i64> = (0..rng.gen_range(0..6)).map(|_| random_dim(rng)).collect();
            let vi = &mut g.input[0];
            if let Some(pb::type_proto::Value::TensorType(t)) = vi.r#type.as_mut().and_then(|t| t.value.as_mut()) {
                t.shape = Some(pb::TensorShapeProto {
                    dim: dims.iter().map(|&d| pb::tensor_shape_proto::Dimension { value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(d)), ..Default::default() }).collect(),
                });
            }
            format!("input dims {dims:?}")
        }
        1 if !g.node.is_empty() => {
            let i = rng.gen_range(0..g.node.len());
            let n = g.node.remove(i);
            format!("node {i} ({}) deleted", n.op_type)
        }
        2 if !g.node.is_empty() => {
            let i = rng.gen_range(0..g.node.len());
            let n = g.node[i].clone();
            g.node.insert(rng.gen_range(0..g.node.len()), n);
            format!("node {i} duplicated")
        }
        3 if g.node.len() > 2 => {
            // a cycle: an early node reads a later node's output
            let (a, b) = (rng.gen_range(0..g.node.len() / 2), rng.gen_range(g.node.len() / 2..g.node.len()));
            let out = g.node[b].output[0].clone();
            if !g.node[a].input.is_empty() {
                let k = rng.gen_range(0..g.node[a].input.len());
                g.node[a].input[k] = out;
            }
            format!("cycle: node {a} reads node {b}'s output")
        }
        4 if !g.initializer.is_empty() => {
            let i = rng.gen_range(0..g.initializer.len());
            let t = &mut g.initializer[i];
            t.data_type = [0, 2, 3, 5, 8, 10, 12, 13, 16, 99][rng.gen_range(0..10)];
            format!("initializer {i} element type {}", t.data_type)
        }
        5 if !g.initializer.is_empty() => {
            let i = rng.gen_range(0..g.initializer.len());
            let t = &mut g.initializer[i];
            let d = t.dims.len().max(1);
            t.dims = (0..rng.gen_range(0..d + 2)).map(|_| random_dim(rng)).collect();
            format!("initializer {i} dims {:?}", t.dims)
        }
        6 if !g.initializer.is_empty() => {
            let i = rng.gen_range(0..g.initializer.len());
            if rng.gen() {
                let t = g.initializer.remove(i);
                format!("initializer {} deleted", t.name)
            } else {
                let t = g.initializer[i].clone();
                g.initializer.push(t);
                format!("initializer {i} duplicated")
            }
        }
        7 if !g.initializer.is_empty() => {
            let i = rng.gen_range(0..g.initializer.len());
            let location = ["../../../etc/passwd", "/etc/passwd", "missing.bin", "../outside.bin"][rng.gen_range(0..4)];
            let t = &mut g.initializer[i];
            t.raw_data.clear();
            t.float_data.clear();
            t.data_location = Some(pb::tensor_proto::DataLocation::External as i32);
            t.external_data = vec![pb::StringStringEntryProto { key: "location".into(), value: location.into() }];
            if rng.gen() {
                t.external_data.push(pb::StringStringEntryProto { key: "offset".into(), value: u64::MAX.to_string() });
                t.external_data.push(pb::StringStringEntryProto { key: "length".into(), value: "16".into() });
            }
            format!("initializer {i} external data at {location}")
        }
        8 if !g.node.is_empty() => {
            // absurd attribute values (kernel sizes, pads, strides, axes)
            let i = rng.gen_range(0..g.node.len());
            let n = &mut g.node[i];
            let v = [0, -1, -7, 3, 1 << 40, i64::MIN][rng.gen_range(0..6)];
            for a in n.attribute.iter_mut() {
                if rng.gen_bool(0.5) {
                    a.i = v;
                    for x in a.ints.iter_mut() {
                        *x = v;
                    }
                }
            }
            format!("node {i} ({}) attributes set to {v}", n.op_type)
        }
        _ if !g.node.is_empty() => {
            let i = rng.gen_range(0..g.node.len());
            let op = ["Conv", "Gemm", "Reshape", "Concat", "Relu", "MatMul", "Flatten", "Unknown"][rng.gen_range(0..8)];
            g.node[i].op_type = op.into();
            format!("node {i} op changed to {op}")
        }
        _ => "unchanged".into(),
    };
    (what, m)
}

fn mutant(rng: &mut ChaCha8Rng, fixture: &[u8]) -> Mutant {
    if rng.gen_bool(0.3) {
        return mutate_bytes(rng, fixture.to_vec());
    }
    let m = pb::ModelProto::decode(fixture).unwrap();
    let (what, m) = mutate_model(rng, m);
    Mutant { what, bytes: m.encode_to_vec() }
}

/// What `zerocost inspect` and `zerocost score -p params,synflow --batch-size 2` do, in
/// process. Errors are fine; each must name the file.
fn inspect_and_score(path: &Path) -> Result<(), String> {
    let shown = path.display().to_string();
    let named = |e: anyhow::Error| {
        let text = format!("{e:#}");
        if text.contains(&shown) || text.contains(path.file_name().unwrap().to_str().unwrap()) {
            Ok(())
        } else {
            Err(format!("an error that does not name the file: {text}"))
        }
    };
    let model = match Model::load(path) {
        Ok(m) => m,
        Err(e) => return named(e),
    };
    if let Err(e) = zerocost::inspect::inspect(&model, 1, None, BnMode::Batch) {
        named(e)?;
    }
    let opts = ScoreOptions::default();
    let prepared = (|| {
        let sample = zerocost::sample_shape(&model, None)?;
        let classes = zerocost::num_classes(&model, &opts)?;
        let req = BatchRequest { batch_size: 2, num_classes: classes, input_shape: sample, ..Default::default() };
        load_batch(&DataSource::Synthetic, &req)
    })();
    let batch = match prepared {
        Ok(b) => b,
        Err(e) => return named(e.context(shown.clone())),
    };
    let results = find_measures(&model, &batch, &["params", "synflow"], &TractEngine::default(), &opts);
    for (name, r) in &results {
        if let Some(e) = &r.error {
            if e.contains("internal error (panic)") {
                return Err(format!("{name}: {e}"));
            }
        }
    }
    Ok(())
}

#[test]
fn mutated_fixtures_never_panic_in_process() {
    zerocost::memory::set_max_memory(1 << 30);
    let cases: usize = std::env::var("ZEROCOST_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let seed: u64 = std::env::var("ZEROCOST_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let fixtures: Vec<Vec<u8>> = FIXTURES.iter().map(|f| std::fs::read(root().join(format!("models/{f}.onnx"))).unwrap()).collect();
    let dir = std::env::temp_dir().join(format!("zerocost-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut failures = Vec::new();
    let start = Instant::now();
    for case in 0..cases {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(case as u64));
        let f = rng.gen_range(0..fixtures.len());
        let m = mutant(&mut rng, &fixtures[f]);
        let path = dir.join(format!("case{case}.onnx"));
        std::fs::write(&path, &m.bytes).unwrap();
        let t0 = Instant::now();
        let outcome = std::panic::catch_unwind(|| inspect_and_score(&path)).unwrap_or_else(|p| Err(format!("panic: {}", zerocost::memory::panic_message(p))));
        let took = t0.elapsed();
        let bad = match outcome {
            Err(why) => Some(why),
            Ok(()) if took > CASE_LIMIT => Some(format!("took {took:?}")),
            Ok(()) => None,
        };
        match bad {
            Some(why) => {
                // kept for the regression set (copy into tests/hostile/ to keep it)
                failures.push(format!("case {case} (seed {seed}, {}: {}): {why}\n    file kept at {}", FIXTURES[f], m.what, path.display()));
            }
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    eprintln!("{cases} cases in {:.1}s, {} failures", start.elapsed().as_secs_f64(), failures.len());
    assert!(failures.is_empty(), "{} of {cases} cases failed:\n{}", failures.len(), failures.join("\n"));
}

/// The regression files and a sample of mutants, run as the binary under a 4 GiB
/// address-space limit: every command ends with exit 0, 1 or 2 and, on error, one line
/// naming the file.
#[test]
fn hostile_files_end_cleanly_under_an_address_space_limit() {
    let bin = env!("CARGO_BIN_EXE_zerocost");
    let dir = std::env::temp_dir().join(format!("zerocost-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/hostile")).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "onnx")).collect();
    files.sort();
    assert!(!files.is_empty());
    let fixture = std::fs::read(root().join("models/tiny_cnn.onnx")).unwrap();
    for case in 0..24 {
        let mut rng = ChaCha8Rng::seed_from_u64(7_000 + case);
        let m = mutant(&mut rng, &fixture);
        let p = dir.join(format!("mutant{case}.onnx"));
        std::fs::write(&p, &m.bytes).unwrap();
        files.push(p);
    }
    let mut failures = Vec::new();
    for f in &files {
        let file = f.to_str().unwrap();
        let out = dir.join("out.onnx");
        let commands: [Vec<&str>; 3] = [vec!["inspect", file], vec!["score", file, "-p", "params,synflow", "--engine", "tract", "--batch-size", "2"], vec!["grad-graph", file, "-o", out.to_str().unwrap(), "--batch-size", "2"]];
        for args in commands {
            let script = format!("ulimit -v 4194304; exec \"$0\" \"$@\"");
            let o = std::process::Command::new("sh").arg("-c").arg(script).arg(bin).args(&args).output().unwrap();
            let code = o.status.code();
            let err = String::from_utf8_lossy(&o.stderr);
            let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("zerocost: ") && !l.starts_with("zerocost: warning") && !l.starts_with("zerocost: note")).collect();
            let name = f.file_name().unwrap().to_str().unwrap();
            let ok = matches!(code, Some(0..=2)) && !err.contains("panicked") && (code == Some(0) || (lines.len() == 1 && lines[0].contains(name)));
            if !ok {
                failures.push(format!("{} {}: exit {code:?}\n{err}", args[0], f.display()));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every hostile file in one batch job, with a good model among them, under a 4 GiB
/// address-space limit: each hostile file is a `failed` line with its reason and the good
/// model is scored.
#[test]
fn a_batch_job_over_hostile_files_records_them_as_failed_and_goes_on() {
    let dir = std::env::temp_dir().join(format!("zerocost-hostile-job-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut models: Vec<PathBuf> = std::fs::read_dir(root().join("tests/hostile")).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "onnx")).collect();
    models.sort();
    models.push(root().join("models/tiny_cnn.onnx"));
    let list: String = models.iter().map(|m| format!("  - {}\n", m.display())).collect();
    let job = dir.join("job.yaml");
    std::fs::write(&job, format!("models:\n{list}proxies: [params, synflow]\nbatch_size: 2\nengine: tract\nworkers: 2\n")).unwrap();
    let out = dir.join("r.jsonl");
    let script = "ulimit -v 4194304; exec \"$0\" \"$@\"";
    let o = std::process::Command::new("sh").arg("-c").arg(script).arg(env!("CARGO_BIN_EXE_zerocost")).args(["batch", job.to_str().unwrap(), "-o", out.to_str().unwrap(), "-q"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "some models failed: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), models.len(), "{err}");
    for l in &lines {
        let good = l["model"].as_str().unwrap().contains("tiny_cnn");
        assert_eq!(l["status"] == "failed", !good, "{l}");
    }
    let huge = lines.iter().find(|l| l["model"].as_str().unwrap().contains("huge_input_dims")).unwrap();
    assert!(huge.to_string().contains("over the memory budget"), "{huge}");
    let _ = std::fs::remove_dir_all(&dir);
}
