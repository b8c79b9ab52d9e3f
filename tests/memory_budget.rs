//! The memory budget (`--max-memory`, `max_memory:`): a model just over it is refused with
//! the size it needed; just under, it is scored. One test per process state: the budget is
//! process-wide, so this file holds one test.

use std::path::PathBuf;
use std::process::Command;
use zerocost::onnx::canon::CanonOptions;
use zerocost::onnx::Model;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The exact byte count an error of the budget reports.
fn needed(message: &str) -> u64 {
    let i = message.find(" bytes), over the memory budget").unwrap_or_else(|| panic!("not a budget error: {message}"));
    let start = message[..i].rfind('(').unwrap() + 1;
    message[start..i].parse().unwrap()
}

#[test]
fn a_model_just_over_the_budget_is_refused_with_the_size_it_needed() {
    let model = Model::load(root().join("models/tiny_cnn.onnx")).unwrap();
    let shapes = model.input_shapes(64, None).unwrap();
    zerocost::memory::set_max_memory(1000);
    let e = format!("{:#}", model.canonical(&shapes, &CanonOptions::default()).unwrap_err());
    assert!(e.contains("tiny_cnn.onnx") && e.contains("largest"), "{e}");
    let bytes = needed(&e);
    assert!(bytes > 1_000_000, "the tensors of tiny_cnn at batch 64 take megabytes: {bytes}");
    zerocost::memory::set_max_memory(bytes - 1);
    let e = format!("{:#}", model.canonical(&shapes, &CanonOptions::default()).unwrap_err());
    assert_eq!(needed(&e), bytes);
    zerocost::memory::set_max_memory(bytes);
    model.canonical(&shapes, &CanonOptions::default()).unwrap();
    zerocost::memory::set_max_memory(0);

    // a batch job records the model as failed with the size, and the job goes on
    let dir = std::env::temp_dir().join(format!("zerocost-budget-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let job = dir.join("job.yaml");
    let models = root().join("models");
    std::fs::write(
        &job,
        format!("models:\n  - {}\n  - {}\nproxies: [params, snip]\nbatch_size: 64\nengine: tract\nmax_memory: {}\n", models.join("tiny_cnn.onnx").display(), models.join("tiny_mlp.onnx").display(), bytes - 1),
    )
    .unwrap();
    let out = dir.join("r.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_zerocost")).args(["batch", job.to_str().unwrap(), "-o", out.to_str().unwrap(), "-q"]).output().unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "both models have a line:\n{text}\n{}", String::from_utf8_lossy(&o.stderr));
    let cnn = lines.iter().find(|l| l["model"].as_str().unwrap().contains("tiny_cnn")).unwrap();
    let why = cnn.to_string();
    assert!(why.contains("over the memory budget") && why.contains(&format!("({bytes} bytes)")), "{why}");
    // --max-memory on the command line wins over the job's
    let _ = std::fs::remove_file(&out);
    let o = Command::new(env!("CARGO_BIN_EXE_zerocost")).args(["batch", job.to_str().unwrap(), "-o", out.to_str().unwrap(), "-q", "--max-memory", "8G"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    // the same on the command line of score, inspect and grad-graph
    let cnn = models.join("tiny_cnn.onnx");
    for args in [vec!["score", cnn.to_str().unwrap(), "-p", "snip", "--engine", "tract"], vec!["inspect", cnn.to_str().unwrap(), "--batch-size", "64"], vec!["grad-graph", cnn.to_str().unwrap(), "-o", dir.join("g.onnx").to_str().unwrap()]] {
        let o = Command::new(env!("CARGO_BIN_EXE_zerocost")).args(&args).args(["--max-memory", &(bytes - 1).to_string()]).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{}: {err}", args[0]);
        assert!(err.contains(&format!("({bytes} bytes), over the memory budget")), "{}: {err}", args[0]);
        let o = Command::new(env!("CARGO_BIN_EXE_zerocost")).args(&args).args(["--max-memory", "4G"]).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}: {}", args[0], String::from_utf8_lossy(&o.stderr));
    }
    let o = Command::new(env!("CARGO_BIN_EXE_zerocost")).args(["inspect", cnn.to_str().unwrap(), "--max-memory", "4X"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "a bad size is a usage error");
    let _ = std::fs::remove_dir_all(&dir);
}
