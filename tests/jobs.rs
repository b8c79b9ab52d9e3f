//! Batch jobs on real runs over the bundled fixtures: kill and resume (also `kill -9` with an
//! immediate rerun, and the lock of the results file), shards merged equal a single run,
//! merge refuses conflicting duplicates and combines added proxies, outputs and settings
//! checked before work, dry runs, exit codes, line-numbered job errors, rank correlations
//! against known values, the correlate report and plots.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use zerocost::jobs::stats;

const CHEAP: &str = "grad_norm,snip,synflow,jacob_cov,l2_norm";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The binary, without any scheduler variables from the environment.
fn zerocost() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zerocost"));
    for v in ["SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP", "JOB_COMPLETION_INDEX"] {
        c.env_remove(v);
    }
    c
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("cannot start zerocost")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A fresh folder for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("zerocost-jobs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("models")).unwrap();
    d
}

/// Copies bundled fixtures into `dir/models` under new names.
fn copy_models(dir: &Path, pairs: &[(&str, &str)]) {
    for (from, to) in pairs {
        std::fs::copy(root().join("models").join(from), dir.join("models").join(to)).unwrap();
    }
}

fn write_job(dir: &Path, extra: &str) -> PathBuf {
    let job = dir.join("job.yaml");
    std::fs::write(
        &job,
        format!("models:\n  - models/*.onnx\nproxies: {CHEAP}\nbatch_size: 4\nprecision: f64\noutput: out/results.jsonl\n{extra}"),
    )
    .unwrap();
    job
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: bad line {l}: {e}", path.display())))
        .collect()
}

/// model → scores
fn scores(path: &Path) -> BTreeMap<String, Value> {
    lines(path).into_iter().map(|v| (v["model"].as_str().unwrap().to_string(), v["scores"].clone())).collect()
}

/// model → the `"scores":{...}` text exactly as written (numbers digit for digit).
fn raw_scores(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let start = l.find("\"scores\":{").expect("a scores object");
            let end = start + l[start..].find('}').unwrap();
            (v["model"].as_str().unwrap().to_string(), l[start..=end].to_string())
        })
        .collect()
}

#[test]
fn kill_and_resume_scores_each_model_once() {
    let dir = scratch("resume");
    let mut names = Vec::new();
    for i in 0..12 {
        let from = if i % 2 == 0 { "tiny_cnn.onnx" } else { "tiny_mlp.onnx" };
        names.push(format!("m{i:02}.onnx"));
        copy_models(&dir, &[(from, names[i].as_str())]);
    }
    let job = write_job(&dir, "workers: 1\n");
    let out = dir.join("out/results.jsonl");

    // first run: killed as soon as the first result line is on disk
    let mut child = zerocost().arg("batch").arg(&job).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    loop {
        let n = std::fs::read(&out).map(|b| b.iter().filter(|c| **c == b'\n').count()).unwrap_or(0);
        if n >= 1 || start.elapsed() > Duration::from_secs(60) {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    child.wait().unwrap();
    let first = std::fs::read(&out).unwrap();
    let complete = first.iter().filter(|c| **c == b'\n').count();
    assert!(complete >= 1, "no result line was written before the kill");

    // and a crash in the middle of a line: the last complete line cut in half
    let text_now = String::from_utf8(first.clone()).unwrap();
    let body = text_now.trim_end_matches(|c| c != '\n');
    let kept: Vec<&str> = body.lines().collect();
    let cut_model: String = {
        let last: Value = serde_json::from_str(kept[kept.len() - 1]).unwrap();
        last["model"].as_str().unwrap().to_string()
    };
    let mut damaged = kept[..kept.len() - 1].join("\n");
    if !damaged.is_empty() {
        damaged.push('\n');
    }
    let half = kept[kept.len() - 1];
    damaged.push_str(&half[..half.len() / 2]);
    std::fs::write(&out, &damaged).unwrap();

    // second run: completes the job
    let o = run(zerocost().arg("batch").arg(&job));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("partial last line"), "{}", text(&o.stderr));
    let results = lines(&out);
    let mut seen: Vec<String> = results.iter().map(|v| v["model"].as_str().unwrap().to_string()).collect();
    seen.sort();
    let mut want: Vec<String> = names.iter().map(|n| format!("models/{n}")).collect();
    want.sort();
    assert_eq!(seen, want, "each model exactly once");
    assert!(seen.contains(&format!("models/{}", cut_model.trim_start_matches("models/"))));
    for v in &results {
        assert_eq!(v["status"], "ok", "{v}");
        assert!(v["scores"]["snip"].as_f64().unwrap() > 0.0);
    }

    // a third run has nothing left to do; --force redoes everything
    let o = run(zerocost().arg("batch").arg(&job));
    assert!(o.status.success());
    assert!(text(&o.stderr).contains("0 to score"), "{}", text(&o.stderr));
    assert_eq!(lines(&out).len(), 12);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shards_merged_equal_a_single_run() {
    let dir = scratch("shards");
    copy_models(&dir, &[("tiny_mlp.onnx", "tiny_mlp.onnx"), ("tiny_cnn.onnx", "tiny_cnn.onnx"), ("shuffle_tiny.onnx", "shuffle_tiny.onnx")]);
    let job = write_job(&dir, "workers: 2\n");
    let o = run(zerocost().arg("batch").arg(&job).arg("--output").arg(dir.join("single.jsonl")));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let single = scores(&dir.join("single.jsonl"));
    assert_eq!(single.len(), 3);

    // shard 0 by flag, shard 1 from a Slurm array (1-based task ids), into derived names
    let o = run(zerocost().arg("batch").arg(&job).args(["--shard", "0/2"]));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = run(
        zerocost()
            .arg("batch")
            .arg(&job)
            .env("SLURM_ARRAY_TASK_ID", "2")
            .env("SLURM_ARRAY_TASK_MIN", "1")
            .env("SLURM_ARRAY_TASK_COUNT", "2"),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let s0 = dir.join("out/results.shard-0-of-2.jsonl");
    let s1 = dir.join("out/results.shard-1-of-2.jsonl");
    assert_eq!(lines(&s0).len() + lines(&s1).len(), 3);

    let merged = dir.join("merged.jsonl");
    let o = run(zerocost().arg("merge").arg(&s0).arg(&s1).arg("-o").arg(&merged));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(scores(&merged), single, "sharded and merged == single run");
    assert_eq!(raw_scores(&merged), raw_scores(&dir.join("single.jsonl")), "digit for digit");
    let models: Vec<String> = lines(&merged).iter().map(|v| v["model"].as_str().unwrap().to_string()).collect();
    let mut sorted = models.clone();
    sorted.sort();
    assert_eq!(models, sorted, "merge output is sorted by model");

    // identical duplicates are collapsed
    let o = run(zerocost().arg("merge").arg(&merged).arg(dir.join("single.jsonl")).arg(&s1));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).lines().count(), 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn merge_refuses_a_conflicting_duplicate() {
    let dir = scratch("conflict");
    copy_models(&dir, &[("tiny_mlp.onnx", "tiny_mlp.onnx"), ("tiny_cnn.onnx", "tiny_cnn.onnx")]);
    let job = write_job(&dir, "");
    let a = dir.join("a.jsonl");
    let o = run(zerocost().arg("batch").arg(&job).arg("-o").arg(&a).arg("-q"));
    assert!(o.status.success(), "{}", text(&o.stderr));
    // b: the same results, one score changed
    let mut vals = lines(&a);
    let target = vals[0]["model"].as_str().unwrap().to_string();
    let snip = vals[0]["scores"]["snip"].as_f64().unwrap();
    vals[0]["scores"]["snip"] = serde_json::json!(snip * 1.01);
    let b = dir.join("b.jsonl");
    std::fs::write(&b, vals.iter().map(|v| v.to_string() + "\n").collect::<String>()).unwrap();
    let out = dir.join("merged.jsonl");
    let o = run(zerocost().arg("merge").arg(&a).arg(&b).arg("-o").arg(&out));
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(err.contains("conflicting") && err.contains(&target) && err.contains("snip"), "{err}");
    assert!(!out.exists(), "nothing is written on a conflict");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_malformed_job_reports_every_error_with_its_line() {
    let dir = scratch("malformed");
    copy_models(&dir, &[("tiny_mlp.onnx", "tiny_mlp.onnx")]);
    let job = dir.join("bad.yaml");
    std::fs::write(
        &job,
        "models:\n\
         \x20 - models/tiny_mlp.onnx\n\
         \x20 - models/missing.onnx\n\
         \x20 - path: models/tiny_mlp.onnx\n\
         \x20   acuracy: 93.1\n\
         proxies: [snip, snipp]\n\
         bach_size: 8\n\
         batch_size: zero\n\
         dataload: sometimes\n\
         precision: f16\n",
    )
    .unwrap();
    let o = run(zerocost().arg("batch").arg(&job));
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    for (line, what) in [(3, "missing.onnx"), (5, "acuracy"), (6, "snipp"), (7, "bach_size"), (8, "batch_size"), (9, "sometimes"), (10, "f16")] {
        let hit = err.lines().any(|l| l.contains(&format!("bad.yaml:{line}:")) && l.contains(what));
        assert!(hit, "no error at line {line} about {what}:\n{err}");
    }
    assert!(err.contains("7 errors"), "{err}");
    assert!(err.contains("did you mean `batch_size`"), "{err}");
    assert!(!dir.join("bad.jsonl").exists(), "nothing runs when the job is invalid");

    // a syntax error has its line too
    std::fs::write(&job, "models:\n  - a.onnx\nproxies: [snip\nseed: 1\n").unwrap();
    let o = run(zerocost().arg("batch").arg(&job));
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("bad.yaml:4:") || text(&o.stderr).contains("bad.yaml:3:"), "{}", text(&o.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_example_job_is_valid() {
    // a fresh output: a dry run lists only what is not in it yet
    let fresh = scratch("example").join("fresh.jsonl");
    let o = run(zerocost().args(["batch", "examples/job.yaml", "--dry-run", "--output"]).arg(&fresh).current_dir(root()));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    for m in ["models/tiny_mlp.onnx", "models/tiny_cnn.onnx", "models/nb201_a.onnx"] {
        assert!(out.lines().any(|l| l == m), "{m} not in\n{out}");
    }
    // the list-file example, as one shard of a Kubernetes indexed Job would see it
    let o = run(zerocost().args(["batch", "examples/job_list.yaml", "--dry-run"]).env("JOB_COMPLETION_INDEX", "1").current_dir(root()));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("shard 1/4"), "{out}");
    assert!(out.contains("models/nb201_a.onnx  {\"family\":\"nas-bench-201\""), "{out}");
    let _ = std::fs::remove_dir_all(fresh.parent().unwrap());
}

#[test]
fn rank_correlations_match_known_values() {
    // scipy.stats.spearmanr([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) = 0.8207826816681233 (a tie in y)
    let r = stats::spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[5.0, 6.0, 7.0, 8.0, 7.0]);
    assert!((r - 0.8207826816681233).abs() < 1e-12, "{r}");
    // scipy.stats.kendalltau([12, 2, 1, 12, 2], [1, 4, 7, 1, 0]) = -0.47140452079103173:
    // 2 concordant, 6 discordant, 2 pairs tied in x, 1 in y (and x): -4 / sqrt(8 * 9)
    let t = stats::kendall(&[12.0, 2.0, 1.0, 12.0, 2.0], &[1.0, 4.0, 7.0, 1.0, 0.0]);
    assert!((t - -0.47140452079103173).abs() < 1e-12, "{t}");
    assert!((t - -4.0 / 72f64.sqrt()).abs() < 1e-15);
    // perfect and reversed orders, monotone transforms
    let x = [0.1, 5.0, 2.0, 40.0, 3.0];
    let y: Vec<f64> = x.iter().map(|v: &f64| v.ln()).collect();
    assert!((stats::spearman(&x, &y) - 1.0).abs() < 1e-12);
    assert_eq!(stats::kendall(&x, &y), 1.0);
    let neg: Vec<f64> = x.iter().map(|v| -v).collect();
    assert_eq!(stats::kendall(&x, &neg), -1.0);
    // ties on both sides, by hand: x = [1,1,2,2,3], y = [1,2,1,2,3]
    // pairs: C = 5 ((0,3),(0,4),(1,4),(2,4),(3,4)), D = 1 ((1,2)), tied x = 2, tied y = 2, both = 0
    // tau-b = (5 - 1) / sqrt((10 - 2)(10 - 2)) = 0.5
    let (x, y) = ([1.0, 1.0, 2.0, 2.0, 3.0], [1.0, 2.0, 1.0, 2.0, 3.0]);
    assert!((stats::kendall(&x, &y) - 0.5).abs() < 1e-12);
    // spearman: ranks [1.5,1.5,3.5,3.5,5] vs [1.5,3.5,1.5,3.5,5]: Σdxdy = 5, Σdx² = Σdy² = 9
    assert!((stats::spearman(&x, &y) - 5.0 / 9.0).abs() < 1e-12, "{}", stats::spearman(&x, &y));
    // constant input: undefined
    assert!(stats::spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_nan());
    assert!(stats::kendall(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_nan());
    // pairwise accuracy: 5 of the 8 pairs with different y ordered right... plus half of the
    // 2 pairs tied in x only: (5 + 0.5 * 2) / 8
    assert!((stats::pairwise_accuracy(&x, &y) - 6.0 / 8.0).abs() < 1e-12);
    // the vote: two of three proxies right on every pair → 1; a 1-1-1 split → tie counts half
    let acc = [1.0, 2.0, 3.0];
    let good = [1.0, 2.0, 3.0];
    let bad = [3.0, 2.0, 1.0];
    assert_eq!(stats::vote_accuracy(&[&good, &good, &bad], &acc), (1.0, 3));
    assert_eq!(stats::vote_accuracy(&[&bad, &bad, &good], &acc), (0.0, 3));
    let flat = [1.0, 1.0, 1.0];
    assert_eq!(stats::vote_accuracy(&[&good, &bad, &flat], &acc), (0.5, 3));
    // top-k overlap
    assert_eq!(stats::top_k_overlap(&[4.0, 3.0, 2.0, 1.0], &[4.0, 1.0, 3.0, 2.0], 2), 0.5);
}

#[test]
fn correlate_prints_the_contracted_json_and_plots() {
    let dir = scratch("correlate");
    copy_models(&dir, &[("tiny_mlp.onnx", "tiny_mlp.onnx"), ("tiny_cnn.onnx", "tiny_cnn.onnx"), ("shuffle_tiny.onnx", "shuffle_tiny.onnx")]);
    let job = write_job(&dir, "workers: 2\n");
    let o = run(zerocost().arg("batch").arg(&job));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let res = dir.join("out/results.jsonl");
    let truth = dir.join("truth.csv");
    std::fs::write(&truth, "# made-up numbers for a test\nmodel,accuracy\ntiny_mlp,40\ntiny_cnn,60.5\nshuffle_tiny,55\n").unwrap();
    let o = run(zerocost().arg("correlate").arg(&res).arg("--truth").arg(&truth).args(["--format", "json", "--plot"]).arg(dir.join("plots")));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["n"], 3);
    let acc: BTreeMap<&str, f64> = [("models/tiny_mlp.onnx", 40.0), ("models/tiny_cnn.onnx", 60.5), ("models/shuffle_tiny.onnx", 55.0)].into();
    let got = scores(&res);
    for p in CHEAP.split(',') {
        let entry = &v["proxies"][p];
        let (x, y): (Vec<f64>, Vec<f64>) = got.iter().map(|(m, s)| (s[p].as_f64().unwrap(), acc[m.as_str()])).unzip();
        assert_eq!(entry["spearman"].as_f64().unwrap(), stats::spearman(&x, &y), "{p}");
        assert_eq!(entry["kendall"].as_f64().unwrap(), stats::kendall(&x, &y), "{p}");
        assert_eq!(entry["n"], 3);
    }
    assert_eq!(v["vote"]["pairs"], 3);
    assert!(v["vote"]["pairwise_accuracy"].is_number());

    // accuracy from the job's metadata instead of a truth file; CSV and table outputs
    std::fs::write(dir.join("list.csv"), "path,accuracy,family\nmodels/tiny_mlp.onnx,40,mlp\nmodels/tiny_cnn.onnx,60.5,cnn\nmodels/shuffle_tiny.onnx,55,shuffle\n").unwrap();
    std::fs::write(dir.join("job2.yaml"), format!("models: [list.csv]\nproxies: {CHEAP}\nbatch_size: 4\noutput: out/meta.jsonl\n")).unwrap();
    let o = run(zerocost().arg("batch").arg(dir.join("job2.yaml")));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let meta = lines(&dir.join("out/meta.jsonl"));
    assert!(meta.iter().any(|m| m["metadata"]["family"] == "mlp" && m["metadata"]["accuracy"] == 40));
    let o = run(zerocost().arg("correlate").arg(dir.join("out/meta.jsonl")).args(["--format", "json"]));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let w: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(w["proxies"], v["proxies"]);
    let o = run(zerocost().arg("correlate").arg(&res).arg("--truth").arg(&truth).args(["--format", "csv"]));
    assert!(text(&o.stdout).starts_with("proxy,direction,n,spearman,kendall"));
    let o = run(zerocost().arg("correlate").arg(&res).arg("--truth").arg(&truth));
    assert!(text(&o.stdout).contains("absolute"), "the table says the paper reports absolute correlations");

    for f in ["scatter_snip.svg", "scatter_snip.png", "scatter_synflow.png", "spearman.svg", "spearman.png"] {
        let b = std::fs::read(dir.join("plots").join(f)).unwrap_or_else(|_| panic!("{f} missing"));
        if f.ends_with(".png") {
            assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n");
        } else {
            assert!(String::from_utf8_lossy(&b).contains("<svg"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failing_model_is_recorded_and_the_job_goes_on() {
    let dir = scratch("failing");
    copy_models(&dir, &[("tiny_mlp.onnx", "a_ok.onnx"), ("tiny_cnn.onnx", "c_ok.onnx")]);
    std::fs::write(dir.join("models/b_broken.onnx"), b"not an onnx file").unwrap();
    let job = write_job(&dir, "workers: 2\n");
    let out = dir.join("out/results.jsonl");
    let o = run(zerocost().arg("batch").arg(&job));
    assert_eq!(o.status.code(), Some(1), "a failed model gives exit code 1: {}", text(&o.stderr));
    assert!(text(&o.stderr).contains("b_broken.onnx"), "{}", text(&o.stderr));
    let res = lines(&out);
    assert_eq!(res.len(), 3);
    let broken = res.iter().find(|v| v["model"] == "models/b_broken.onnx").unwrap();
    assert_eq!(broken["status"], "failed");
    assert!(broken["error"].as_str().unwrap().contains("ONNX"), "{broken}");
    assert_eq!(res.iter().filter(|v| v["status"] == "ok").count(), 2);
    // a rerun keeps the failure; --retry-failed tries that model again, still once in the file
    let o = run(zerocost().arg("batch").arg(&job));
    assert!(text(&o.stderr).contains("0 to score"), "{}", text(&o.stderr));
    let o = run(zerocost().arg("batch").arg(&job).arg("--retry-failed"));
    assert!(text(&o.stderr).contains("1 to score"), "{}", text(&o.stderr));
    let res = lines(&out);
    assert_eq!(res.len(), 3);
    assert_eq!(res.iter().filter(|v| v["model"] == "models/b_broken.onnx").count(), 1);
    // correlate leaves failed lines out
    std::fs::write(dir.join("t.csv"), "model,accuracy\na_ok,1\nb_broken,2\nc_ok,3\n").unwrap();
    let o = run(zerocost().arg("correlate").arg(&out).arg("--truth").arg(dir.join("t.csv")).args(["--format", "json"]));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["n"], 2);
    assert_eq!(v["failed"], 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn correlate_aggregates_az_nas_components_by_log_rank() {
    let dir = scratch("correlate_az");
    // components whose ranks are easy to write down by hand (below)
    let comps = [[1.0, 4.0, 2.0, 10.0], [2.0, 3.0, 1.0, 30.0], [3.0, 2.0, 4.0, 20.0], [4.0, 1.0, 3.0, 40.0]];
    let acc = [70.0, 80.0, 75.0, 90.0];
    let mut text_lines = String::new();
    for (i, (c, a)) in comps.iter().zip(acc).enumerate() {
        text_lines.push_str(&format!(
            "{{\"model\":\"m{i}.onnx\",\"status\":\"ok\",\"scores\":{{\"az_expressivity\":{},\"az_progressivity\":{},\"az_trainability\":{},\"az_complexity\":{}}},\"metadata\":{{\"accuracy\":{a}}}}}\n",
            c[0], c[1], c[2], c[3]
        ));
    }
    // a model whose trainability the authors' code sets to −∞ (an identity block) ranks last
    // on it; a model without one component is left out of the aggregate (not of the others)
    text_lines.push_str("{\"model\":\"m4.onnx\",\"status\":\"ok\",\"scores\":{\"az_expressivity\":5,\"az_progressivity\":0,\"az_trainability\":null,\"az_complexity\":25},\"errors\":{\"az_trainability\":\"block 3 ('a' → 'b') passes the gradient through unchanged (an identity block): AZ-NAS's trainability is −∞\"},\"metadata\":{\"accuracy\":65}}\n");
    text_lines.push_str("{\"model\":\"m5.onnx\",\"status\":\"ok\",\"scores\":{\"az_expressivity\":9,\"az_progressivity\":9,\"az_complexity\":5},\"metadata\":{\"accuracy\":60}}\n");
    let res = dir.join("az.jsonl");
    std::fs::write(&res, text_lines).unwrap();
    let o = run(zerocost().arg("correlate").arg(&res).args(["--format", "json"]));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let az = &v["proxies"]["az_nas"];
    assert_eq!(az["n"], 5);
    // Σ ln(rank/5), ranks of the five complete models by hand (expr, prog, train, compl)
    let ranks = [[1.0, 5.0, 3.0, 1.0], [2.0, 4.0, 2.0, 4.0], [3.0, 3.0, 5.0, 2.0], [4.0, 2.0, 4.0, 5.0], [5.0, 1.0, 1.0, 3.0]];
    let agg: Vec<f64> = ranks.iter().map(|r| r.iter().map(|x: &f64| (x / 5.0).ln()).sum()).collect();
    let acc = [70.0, 80.0, 75.0, 90.0, 65.0];
    assert_eq!(az["spearman"].as_f64().unwrap(), stats::spearman(&agg, &acc));
    assert_eq!(v["proxies"]["az_expressivity"]["n"], 6);
    assert_eq!(v["proxies"]["az_trainability"]["n"], 5, "the −∞ counts in its own row too");
}

#[test]
fn a_job_can_score_the_cells_of_a_space() {
    let dir = scratch("space");
    // three cells of a sample, an accuracy table of our own for two of them
    let o = run(zerocost().args(["space", "list", "nb201", "--sample", "3", "--seed", "7"]));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let cells: Vec<String> = text(&o.stdout).lines().map(str::to_string).collect();
    assert_eq!(cells.len(), 3);
    std::fs::write(dir.join("acc.csv"), format!("arch,acc\n{},91.5\n{},80.25\n", cells[0], cells[1])).unwrap();
    std::fs::write(
        dir.join("space.yaml"),
        "space:\n  name: nb201\n  sample: 3\n  seed: 7\n  truth: acc.csv\n  truth_column: acc\nproxies: [synflow, params]\nbatch_size: 4\noutput: out/space.jsonl\n",
    )
    .unwrap();
    let o = run(zerocost().arg("batch").arg(dir.join("space.yaml")));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let got = lines(&dir.join("out/space.jsonl"));
    let mut ids: Vec<&str> = got.iter().map(|v| v["model"].as_str().unwrap()).collect();
    ids.sort();
    let mut want: Vec<&str> = cells.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(ids, want, "the sample is the one `space list --sample` prints, named by cell string");
    for v in &got {
        assert_eq!(v["status"], "ok");
        assert_eq!(v["metadata"]["arch"], v["model"]);
        let acc = v["metadata"].get("accuracy").and_then(Value::as_f64);
        match v["model"].as_str().unwrap() {
            m if m == cells[0] => assert_eq!(acc, Some(91.5)),
            m if m == cells[1] => assert_eq!(acc, Some(80.25)),
            _ => assert_eq!(acc, None),
        }
    }
    // the same cell exported as a file scores the same
    let onnx = dir.join("c0.onnx");
    let o = run(zerocost().args(["space", "export", "nb201", &cells[0], "-o"]).arg(&onnx));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = run(zerocost().arg("score").arg(&onnx).args(["--proxy", "synflow,params", "--batch-size", "4", "--format", "json"]));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let file: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mem = got.iter().find(|v| v["model"] == cells[0].as_str()).unwrap();
    assert_eq!(file[0]["scores"], mem["scores"]);
    // a bad space is reported with its line
    std::fs::write(dir.join("bad.yaml"), "proxies: [params]\nspace:\n  name: nb201\n  start: 9\n  end: 9\n").unwrap();
    let o = run(zerocost().arg("batch").arg(dir.join("bad.yaml")).arg("--dry-run"));
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("bad.yaml:3") && text(&o.stderr).contains("no cell"), "{}", text(&o.stderr));
}

/// A job over `n` copies of the tiny CNN, scored with `proxies`; more settings in `extra`.
fn tiny_job(dir: &Path, n: usize, proxies: &str, extra: &str) -> PathBuf {
    for i in 0..n {
        copy_models(dir, &[("tiny_cnn.onnx", &format!("m{i:02}.onnx"))]);
    }
    let job = dir.join("job.yaml");
    std::fs::write(&job, format!("models: [models/*.onnx]\nproxies: {proxies}\nbatch_size: 4\noutput: out/results.jsonl\n{extra}")).unwrap();
    job
}

fn newlines(path: &Path) -> usize {
    std::fs::read(path).map(|b| b.iter().filter(|c| **c == b'\n').count()).unwrap_or(0)
}

/// model → how many lines it has
fn line_counts(path: &Path) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for v in lines(path) {
        *n.entry(v["model"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    n
}

/// Starts `batch job` writing its stderr to `log`.
fn spawn_batch(job: &Path, log: &Path) -> std::process::Child {
    let err = std::fs::File::create(log).unwrap();
    zerocost().arg("batch").arg(job).arg("-q").stdout(Stdio::null()).stderr(err).spawn().unwrap()
}

#[test]
fn sigkill_and_an_immediate_rerun_twenty_times_loses_nothing() {
    let dir = scratch("sigkill20");
    let job = tiny_job(&dir, 64, "params,synflow", "");
    let out = dir.join("out/results.jsonl");
    let mut killed: Vec<std::process::Child> = Vec::new();
    let mut mid_job = 0;
    for round in 0..20 {
        // started at once after the kill of the previous round, before that one is reaped
        let log = dir.join(format!("round{round}.log"));
        let mut child = spawn_batch(&job, &log);
        for k in killed.drain(..) {
            let mut k = k;
            k.wait().unwrap();
        }
        let (before, start) = (newlines(&out), Instant::now());
        let exited = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if newlines(&out) > before {
                break None;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "round {round}: no progress: {}", std::fs::read_to_string(&log).unwrap());
            std::thread::sleep(Duration::from_millis(2));
        };
        let log_text = std::fs::read_to_string(&log).unwrap();
        assert!(!log_text.contains("another process"), "round {round} was refused: {log_text}");
        match exited {
            Some(status) => assert!(status.success(), "round {round}: {status}: {log_text}"),
            None => {
                child.kill().unwrap();
                mid_job += 1;
                killed.push(child);
            }
        }
    }
    let o = run(zerocost().arg("batch").arg(&job));
    for mut k in killed {
        k.wait().unwrap();
    }
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(mid_job >= 10, "only {mid_job} kills landed while scoring");
    let counts = line_counts(&out);
    assert_eq!(counts.len(), 64, "no model lost");
    assert!(counts.values().all(|n| *n == 1), "each model once: {counts:?}");
    assert!(lines(&out).iter().all(|v| v["status"] == "ok" && v["scores"]["synflow"].is_number()));
    assert!(!dir.join("out/results.jsonl.lock").exists(), "a finished run removes its lock record");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_held_lock_is_waited_for_then_its_holder_is_named() {
    let dir = scratch("lock");
    let job = tiny_job(&dir, 12, "params,synflow", "");
    let out = dir.join("out/results.jsonl");
    // a run killed mid-job leaves its lock record behind
    let mut child = spawn_batch(&job, &dir.join("first.log"));
    let start = Instant::now();
    while newlines(&out) == 0 && child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(2));
    }
    let pid = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    let record = std::fs::read_to_string(dir.join("out/results.jsonl.lock")).unwrap();
    assert!(record.starts_with(&format!("pid {pid} on ")), "{record}");

    // another process (here: this test) holds the lock: the rerun waits for it
    let held = std::fs::OpenOptions::new().append(true).open(&out).unwrap();
    held.lock().unwrap();
    let log = dir.join("second.log");
    let mut second = spawn_batch(&job, &log);
    let start = Instant::now();
    while !std::fs::read_to_string(&log).unwrap().contains("waiting for the lock") {
        assert!(second.try_wait().unwrap().is_none(), "gave up at once: {}", std::fs::read_to_string(&log).unwrap());
        assert!(start.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(held);
    assert!(second.wait().unwrap().success(), "{}", std::fs::read_to_string(&log).unwrap());
    assert_eq!(line_counts(&out).len(), 12);

    // a lock that stays is an error after the wait, naming who recorded it
    std::fs::write(dir.join("out/results.jsonl.lock"), &record).unwrap();
    let held = std::fs::OpenOptions::new().append(true).open(&out).unwrap();
    held.lock().unwrap();
    let o = run(zerocost().arg("batch").arg(&job).env("ZEROCOST_LOCK_WAIT", "0.5"));
    drop(held);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("being written by another process") && err.contains(&format!("pid {pid} on ")), "{err}");
    assert!(err.contains("has exited"), "the killed holder is said to be gone: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn outputs_are_checked_before_any_work() {
    let dir = scratch("outputs");
    let job = tiny_job(&dir, 2, "params", "");
    std::fs::write(dir.join("afile"), "").unwrap();
    let cases: [(&[&str], &str); 3] = [
        (&["--output", "no/such/folder/r.jsonl"], "does not exist"),
        (&["--output", "afile/r.jsonl"], "does not exist"),
        (&["--output", "models"], "is a folder"),
    ];
    for (args, why) in cases {
        for dry in [false, true] {
            let mut cmd = zerocost();
            cmd.arg("batch").arg(&job).args(args).current_dir(&dir);
            if dry {
                cmd.arg("--dry-run");
            }
            let o = run(&mut cmd);
            let err = text(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
            assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
            assert!(err.contains(why) && err.contains("--output"), "{args:?}: {err}");
            assert!(text(&o.stdout).is_empty());
        }
    }
    // the job's own output: a folder that cannot be made
    std::fs::write(&job, "models: [models/*.onnx]\nproxies: params\noutput: afile/sub/r.jsonl\n").unwrap();
    let o = run(zerocost().arg("batch").arg(&job));
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot create folder") && err.trim_end().lines().count() == 1, "{err}");
    assert!(!dir.join("no").exists() && std::fs::read(dir.join("afile")).unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dry_run_lists_only_what_would_run() {
    let dir = scratch("dryrun");
    let job = tiny_job(&dir, 3, "params", "");
    let o = run(zerocost().arg("batch").arg(&job).arg("-q"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let o = run(zerocost().arg("batch").arg(&job).arg("--dry-run"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let listed = text(&o.stdout);
    assert_eq!(listed.lines().count(), 1, "only the summary line: {listed}");
    assert!(listed.contains("3 already done, 0 to score"), "{listed}");
    // one model more, and --force
    copy_models(&dir, &[("tiny_cnn.onnx", "m03.onnx")]);
    let o = run(zerocost().arg("batch").arg(&job).arg("--dry-run"));
    let listed = text(&o.stdout);
    assert!(listed.contains("3 already done, 1 to score"), "{listed}");
    assert_eq!(listed.lines().skip(1).collect::<Vec<_>>(), ["models/m03.onnx"]);
    let o = run(zerocost().arg("batch").arg(&job).args(["--dry-run", "--force"]));
    assert_eq!(text(&o.stdout).lines().count(), 5, "{}", text(&o.stdout));
    assert_eq!(newlines(&dir.join("out/results.jsonl")), 3, "a dry run writes nothing");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn failures_kept_from_before_give_exit_1_and_a_hint() {
    let dir = scratch("keptfailed");
    let job = tiny_job(&dir, 1, "params", "");
    std::fs::write(dir.join("models/broken.onnx"), b"not an onnx file").unwrap();
    let o = run(zerocost().arg("batch").arg(&job));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    for extra in [&[][..], &["-q"][..]] {
        let o = run(zerocost().arg("batch").arg(&job).args(extra));
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "a failure kept from before still fails the job: {err}");
        assert!(err.contains("1 model failed earlier (kept as failed); rerun with --retry-failed to score it again"), "{err}");
    }
    let o = run(zerocost().arg("batch").arg(&job).arg("--dry-run"));
    assert!(text(&o.stdout).contains("1 already done, 1 failed earlier"), "{}", text(&o.stdout));
    let o = run(zerocost().arg("batch").arg(&job).arg("--retry-failed"));
    assert_eq!(o.status.code(), Some(1), "the model fails again: {}", text(&o.stderr));
    assert!(!text(&o.stderr).contains("failed earlier"), "{}", text(&o.stderr));
    std::fs::remove_file(dir.join("models/broken.onnx")).unwrap();
    let o = run(zerocost().arg("batch").arg(&job));
    assert_eq!(o.status.code(), Some(0), "the failed line is not of this job's models: {}", text(&o.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn other_settings_are_refused_with_what_to_do() {
    let dir = scratch("settings");
    let job = tiny_job(&dir, 2, "params,synflow", "");
    let out = dir.join("out/results.jsonl");
    assert_eq!(run(zerocost().arg("batch").arg(&job).arg("-q")).status.code(), Some(0));
    let before = std::fs::read(&out).unwrap();
    let job_text = std::fs::read_to_string(&job).unwrap();
    std::fs::write(&job, job_text.replace("batch_size: 4", "batch_size: 8")).unwrap();
    for dry in [false, true] {
        let o = run(zerocost().arg("batch").arg(&job).args(if dry { &["--dry-run"][..] } else { &[][..] }));
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains("2 models were scored with other settings") && err.contains("new --output") && err.contains("--force"), "{err}");
    }
    assert_eq!(std::fs::read(&out).unwrap(), before, "nothing written");
    // lines of older versions (no `scoring`) are checked by their settings fingerprint
    let old: String = lines(&out).into_iter().map(|mut v| { v.as_object_mut().unwrap().shift_remove("scoring"); v.to_string() + "\n" }).collect();
    std::fs::write(&out, &old).unwrap();
    assert_eq!(run(zerocost().arg("batch").arg(&job)).status.code(), Some(2));
    std::fs::write(&job, &job_text).unwrap();
    let o = run(zerocost().arg("batch").arg(&job));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("0 to score"), "{}", text(&o.stderr));
    // --force starts over with the new settings
    std::fs::write(&job, job_text.replace("batch_size: 4", "batch_size: 8")).unwrap();
    let o = run(zerocost().arg("batch").arg(&job).arg("--force"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(lines(&out).iter().all(|v| v["batch"] == 8));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn proxies_added_to_a_job_score_only_the_missing_ones() {
    let dir = scratch("addproxy");
    let job = tiny_job(&dir, 3, "params", "");
    let out = dir.join("out/results.jsonl");
    assert_eq!(run(zerocost().arg("batch").arg(&job).arg("-q")).status.code(), Some(0));
    let job_text = std::fs::read_to_string(&job).unwrap();
    std::fs::write(&job, job_text.replace("proxies: params", "proxies: params,synflow")).unwrap();
    let o = run(zerocost().arg("batch").arg(&job).arg("--dry-run"));
    assert!(text(&o.stdout).contains("models/m00.onnx  (only synflow)"), "{}", text(&o.stdout));
    let o = run(zerocost().arg("batch").arg(&job));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("3 to score (3 only for the proxies added since)"), "{}", text(&o.stderr));
    let all = lines(&out);
    assert_eq!(all.len(), 6);
    let added: Vec<&Value> = all[3..].iter().collect();
    assert!(added.iter().all(|v| v["scores"].as_object().unwrap().keys().eq(["synflow"])), "only the missing proxy: {added:?}");
    let o = run(zerocost().arg("batch").arg(&job));
    assert!(text(&o.stderr).contains("0 to score"), "{}", text(&o.stderr));

    // reading combines the lines of a model: as one run with both proxies, digit for digit
    let single = dir.join("single.jsonl");
    assert_eq!(run(zerocost().arg("batch").arg(&job).arg("-o").arg(&single).arg("-q")).status.code(), Some(0));
    let merged = dir.join("merged.jsonl");
    let o = run(zerocost().arg("merge").arg(&out).arg("-o").arg(&merged));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("3 lines with more proxies of a model combined"), "{}", text(&o.stderr));
    assert_eq!(raw_scores(&merged), raw_scores(&single));
    // the merged file is a complete result for the job: nothing to score, nothing refused
    let o = run(zerocost().arg("batch").arg(&job).arg("-o").arg(&merged));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("0 to score"), "{}", text(&o.stderr));

    // merge: disjoint proxy sets of one model in two files combine; one proxy with two values is a conflict
    let (a, b) = (dir.join("a.jsonl"), dir.join("b.jsonl"));
    std::fs::write(&a, all[..3].iter().map(|v| v.to_string() + "\n").collect::<String>()).unwrap();
    std::fs::write(&b, all[3..].iter().map(|v| v.to_string() + "\n").collect::<String>()).unwrap();
    let o = run(zerocost().arg("merge").arg(&b).arg(&a));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).lines().count(), 3);
    let mut changed = all[0].clone();
    changed["scores"]["params"] = serde_json::json!(1.0);
    changed["scores"]["synflow"] = serde_json::json!(2.0);
    std::fs::write(&b, changed.to_string() + "\n").unwrap();
    let o = run(zerocost().arg("merge").arg(&a).arg(&b));
    assert!(!o.status.success() && text(&o.stderr).contains("params"), "{}", text(&o.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_job_without_proxies_runs_the_papers_like_score() {
    let dir = scratch("defaults");
    copy_models(&dir, &[("tiny_cnn.onnx", "a.onnx")]);
    std::fs::write(dir.join("job.yaml"), "models: [models/a.onnx]\n").unwrap();
    let o = run(zerocost().arg("batch").arg(dir.join("job.yaml")).arg("--dry-run"));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let want = format!("proxies {};", zerocost::proxies::PAPER_PROXIES.join(","));
    assert!(text(&o.stdout).contains(&want), "{}", text(&o.stdout));
    // and a typo of a key gets the nearest one
    std::fs::write(dir.join("job.yaml"), "models: [models/a.onnx]\nproxy: snip\n").unwrap();
    let o = run(zerocost().arg("batch").arg(dir.join("job.yaml")).arg("--dry-run"));
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("job.yaml:2:1: unknown key `proxy` (did you mean `proxies`?)"), "{}", text(&o.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn correlate_reads_minus_infinity_as_a_value_as_it_read_the_older_error() {
    let dir = scratch("correlate_inf");
    let line = |i: usize, train: &str, extra: &str, acc: f64| {
        format!("{{\"model\":\"m{i}.onnx\",\"status\":\"ok\",\"scores\":{{\"az_expressivity\":{i},\"az_progressivity\":{},\"az_trainability\":{train},\"az_complexity\":{}}}{extra},\"metadata\":{{\"accuracy\":{acc}}}}}\n", 5 - i, i * i)
    };
    let mut new_form = String::new();
    let mut old_form = String::new();
    for i in 0..4 {
        new_form.push_str(&line(i, &format!("{}", i % 3), "", 70.0 + i as f64));
        old_form.push_str(&line(i, &format!("{}", i % 3), "", 70.0 + i as f64));
    }
    new_form.push_str(&line(4, "\"-inf\"", ",\"infinite\":{\"az_trainability\":\"block 1 passes the gradient through unchanged\"}", 60.0));
    old_form.push_str(&line(4, "null", ",\"errors\":{\"az_trainability\":\"block 1 ('a' → 'b') passes the gradient through unchanged (an identity block): AZ-NAS's trainability is −∞\"}", 60.0));
    let mut got = Vec::new();
    for (name, text_lines) in [("new.jsonl", new_form), ("old.jsonl", old_form)] {
        std::fs::write(dir.join(name), text_lines).unwrap();
        let o = run(zerocost().arg("correlate").arg(dir.join(name)).args(["--format", "json"]));
        assert!(o.status.success(), "{}", text(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["proxies"]["az_trainability"]["n"], 5, "{name}: the −∞ is ranked");
        assert_eq!(v["proxies"]["az_nas"]["n"], 5, "{name}");
        got.push(v["proxies"].clone());
    }
    assert_eq!(got[0], got[1]);
    let _ = std::fs::remove_dir_all(&dir);
}
