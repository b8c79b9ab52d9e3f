//! Batch jobs on real runs over the bundled fixtures: kill and resume, shards merged equal a
//! single run, merge refuses conflicting duplicates, line-numbered job errors, rank
//! correlations against known values, the correlate report and plots.

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
    let o = run(zerocost().args(["batch", "examples/job.yaml", "--dry-run"]).current_dir(root()));
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
    assert_eq!(file["scores"], mem["scores"]);
    // a bad space is reported with its line
    std::fs::write(dir.join("bad.yaml"), "proxies: [params]\nspace:\n  name: nb201\n  start: 9\n  end: 9\n").unwrap();
    let o = run(zerocost().arg("batch").arg(dir.join("bad.yaml")).arg("--dry-run"));
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("bad.yaml:3") && text(&o.stderr).contains("no cell"), "{}", text(&o.stderr));
}
