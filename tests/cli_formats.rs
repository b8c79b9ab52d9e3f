//! Every `--format` of `score`, `inspect` and `proxies` is what its name says; `-o` picks
//! the format from its extension and is checked before any work.

mod common;

use serde_json::Value;
use std::process::{Command, Output};

fn zerocost(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zerocost")).args(args).current_dir(common::root()).output().unwrap()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("zerocost-cli-formats-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Each line a compact JSON object.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert!(v.is_object() && !l.starts_with(' '), "{l}");
            v
        })
        .collect()
}

/// Header and records, every record as long as the header.
fn csv_rows(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let header = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r.records().map(|rec| rec.unwrap().iter().map(String::from).collect()).collect();
    (header, rows)
}

/// Byte offset where the `n`-th (0-based) whitespace-separated token of `l` ends.
fn token_end(l: &str, n: usize) -> usize {
    let starts: Vec<usize> = l.char_indices().filter(|&(i, c)| !c.is_whitespace() && (i == 0 || l[..i].ends_with(char::is_whitespace))).map(|(i, _)| i).collect();
    let start = starts[n];
    start + l[start..].find(char::is_whitespace).unwrap_or(l.len() - start)
}

const TWO: [&str; 6] = ["score", "models/tiny_mlp.onnx", "models/tiny_cnn.onnx", "-p", "params,flops,grad_norm", "--batch-size=4"];

#[test]
fn score_json_is_one_array_jsonl_one_object_per_line() {
    let v: Value = serde_json::from_str(&ok(&zerocost(&[&TWO[..], &["--format", "json"]].concat()))).unwrap();
    let models: Vec<&str> = v.as_array().unwrap().iter().map(|m| m["model"].as_str().unwrap()).collect();
    assert_eq!(models, ["models/tiny_mlp.onnx", "models/tiny_cnn.onnx"]);
    let one: Value = serde_json::from_str(&ok(&zerocost(&["score", "models/tiny_cnn.onnx", "-p", "params", "--format", "json"]))).unwrap();
    assert_eq!(one.as_array().unwrap().len(), 1, "one model is still an array");
    let lines = json_lines(&ok(&zerocost(&[&TWO[..], &["--format", "jsonl"]].concat())));
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["scores"]["flops"], 295072.0);
}

#[test]
fn score_csv_has_a_header_and_per_layer_rows() {
    let (header, rows) = csv_rows(&ok(&zerocost(&[&TWO[..], &["--format", "csv"]].concat())));
    assert_eq!(header, ["model", "proxy", "score", "seconds", "error"]);
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|r| r[2].parse::<f64>().is_ok()), "{rows:?}");
    let (header, rows) = csv_rows(&ok(&zerocost(&["score", "models/tiny_cnn.onnx", "-p", "grad_norm,params", "--per-layer", "--format", "csv"])));
    assert_eq!(header, ["model", "proxy", "layer", "score", "seconds", "error"]);
    let layers: Vec<&Vec<String>> = rows.iter().filter(|r| r[1] == "grad_norm" && !r[2].is_empty()).collect();
    assert_eq!(layers.len(), 3, "{rows:?}");
    let total: f64 = rows.iter().find(|r| r[1] == "grad_norm" && r[2].is_empty()).unwrap()[3].parse().unwrap();
    let sum: f64 = layers.iter().map(|r| r[3].parse::<f64>().unwrap()).sum();
    assert!((total - sum).abs() <= 1e-9 * total.abs(), "{total} vs {sum}");
}

#[test]
fn score_table_sizes_columns_and_prints_integers_in_full() {
    let text = ok(&zerocost(&["score", "models/nb201_a.onnx", "-p", "az_nas,params", "--batch-size", "4", "--engine", "tract"]));
    let lines: Vec<&str> = text.lines().skip(1).collect();
    // the score column (right-aligned) ends at the same place on every row
    let ends: Vec<usize> = lines.iter().map(|l| token_end(l, 1)).collect();
    assert!(ends.windows(2).all(|w| w[0] == w[1]), "{text}");
    let params = lines.iter().find(|l| l.trim_start().starts_with("params")).unwrap();
    assert!(params.split_whitespace().nth(1).unwrap().parse::<u64>().is_ok(), "{text}");
}

#[test]
fn inspect_formats_and_shapes_at_one_batch_size() {
    let v: Value = serde_json::from_str(&ok(&zerocost(&["inspect", "models/tiny_cnn.onnx", "--format", "json", "--batch-size", "2"]))).unwrap();
    for t in v["inputs"].as_array().unwrap().iter().chain(v["outputs"].as_array().unwrap()) {
        assert!(t["name"].is_string() && t["dtype"] == "float32", "{t}");
        assert_eq!(t["shape"][0], 2, "{t}");
    }
    let lines = json_lines(&ok(&zerocost(&["inspect", "models/tiny_cnn.onnx", "--format", "jsonl"])));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["params"], 1610);
    let (header, rows) = csv_rows(&ok(&zerocost(&["inspect", "models/tiny_cnn.onnx", "--format", "csv"])));
    assert_eq!(header, ["model", "layer", "node", "op", "weight_shape", "macs_per_sample"]);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows.iter().map(|r| r[5].parse::<u64>().unwrap()).sum::<u64>(), 295072);
    let text = ok(&zerocost(&["inspect", "models/tiny_cnn.onnx"]));
    assert!(text.contains("[1, 3, 32, 32]") && text.contains("[1, 10]"), "{text}");
}

#[test]
fn proxies_lists_the_registry_in_every_format() {
    let v: Value = serde_json::from_str(&ok(&zerocost(&["proxies", "--format", "json"]))).unwrap();
    let all = v.as_array().unwrap();
    let ntk = all.iter().find(|p| p["name"] == "ntk_cond").unwrap();
    assert_eq!(ntk["direction"], "lower");
    assert_eq!(ntk["default"], false);
    assert!(all.iter().any(|p| p["name"] == "synflow" && p["default"] == true && p["direction"] == "higher"));
    assert!(all.iter().all(|p| ["paper", "data", "passes", "about"].iter().all(|k| p[k].is_string())));
    assert_eq!(json_lines(&ok(&zerocost(&["proxies", "--format", "jsonl"]))).len(), all.len());
    let (header, rows) = csv_rows(&ok(&zerocost(&["proxies", "--format", "csv"])));
    assert_eq!(header[..3], ["name", "default", "direction"]);
    assert_eq!(rows.len(), all.len());
    let text = ok(&zerocost(&["proxies"]));
    assert!(text.contains("ntk_cond") && text.contains("lower") && text.contains("default"), "{text}");
}

#[test]
fn output_format_follows_the_extension_and_contradictions_are_refused_before_work() {
    let json = tmp("scores.json");
    ok(&zerocost(&["score", "models/tiny_cnn.onnx", "-p", "params", "-o", json.to_str().unwrap()]));
    let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v[0]["scores"]["params"], 1610.0);
    for (flags, file) in [(vec![], "scores.xlsx"), (vec!["--format", "csv"], "other.json"), (vec!["-p", "nope"], "x.csv")] {
        let path = tmp(file);
        // a missing model too: had any work started, it would have exited 1
        let out = zerocost(&[&["score", "missing.onnx", "-o", path.to_str().unwrap()], &flags[..]].concat());
        assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("Usage:"), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(!path.exists(), "{file} was created");
    }
    let out = zerocost(&["score", "models/tiny_cnn.onnx", "-o", "/nonexistent/dir/x.json"]);
    assert_eq!(out.status.code(), Some(2));
    // nothing scored: no file
    let none = tmp("none.json");
    let out = zerocost(&["score", "missing.onnx", "-o", none.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!none.exists());
}
