//! Exit statuses (0 ok, 1 a model failed, 2 usage or input error), one-line messages that
//! name the file once, conflicting inputs, `--output-name`, help and completions.

mod common;

use prost::Message;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};
use zerocost::onnx::ir::{Attr, DType, Graph, Node, TypeInfo};

fn zerocost(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zerocost")).args(args).current_dir(common::root()).output().unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("zerocost-cli-exit-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// tiny_cnn with every input dimension symbolic (N, C, H, W).
fn symbolic_model() -> PathBuf {
    let path = tmp("sym.onnx");
    let mut proto = tract_onnx::pb::ModelProto::decode(std::fs::read(common::root().join("models/tiny_cnn.onnx")).unwrap().as_slice()).unwrap();
    let graph = proto.graph.as_mut().unwrap();
    if let Some(tract_onnx::pb::type_proto::Value::TensorType(t)) = graph.input[0].r#type.as_mut().unwrap().value.as_mut() {
        for (d, name) in t.shape.as_mut().unwrap().dim.iter_mut().zip(["N", "C", "H", "W"]) {
            d.value = Some(tract_onnx::pb::tensor_shape_proto::dimension::Value::DimParam(name.into()));
        }
    }
    std::fs::write(&path, proto.encode_to_vec()).unwrap();
    path
}

/// A convolution feeding two heads: `logits` (10 classes) and `aux` (5).
fn two_output_model() -> PathBuf {
    let mut g = Graph { opset: 17, source: "two_heads".into(), ..Graph::default() };
    g.inputs.push("input".into());
    g.types.insert("input".into(), TypeInfo::new(DType::F32, vec![2, 3, 8, 8]));
    let rand = |shape: &[usize], seed| zerocost::autodiff::check::rand_tensor(shape, seed).cast(DType::F32);
    g.set_initializer("conv.weight", rand(&[4, 3, 3, 3], 1));
    g.set_initializer("fc_a.weight", rand(&[10, 4], 2));
    g.set_initializer("fc_b.weight", rand(&[5, 4], 3));
    g.nodes.push(Node::new("conv", "Conv", vec!["input".into(), "conv.weight".into()], vec!["c".into()]).with_attr("pads", Attr::Ints(vec![1, 1, 1, 1])));
    g.nodes.push(Node::new("gap", "GlobalAveragePool", vec!["c".into()], vec!["p".into()]));
    g.nodes.push(Node::new("flat", "Flatten", vec!["p".into()], vec!["f".into()]));
    for (head, out) in [("fc_a", "logits"), ("fc_b", "aux")] {
        let w = format!("{head}.weight");
        g.nodes.push(Node::new(head, "Gemm", vec!["f".into(), w], vec![out.into()]).with_attr("transB", Attr::Int(1)));
        g.outputs.push(out.into());
    }
    zerocost::onnx::fold::infer_and_fold(&mut g).unwrap();
    let path = tmp("two_heads.onnx");
    zerocost::onnx::proto::write_model(&g, &path).unwrap();
    path
}

#[test]
fn missing_model_exits_1_naming_it_once() {
    let missing = tmp("missing.onnx");
    let m = missing.to_str().unwrap();
    let gg = tmp("gg.onnx");
    for args in [vec!["score", m], vec!["inspect", m], vec!["grad-graph", m, "-o", gg.to_str().unwrap()]] {
        let out = zerocost(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.matches(m).count(), 1, "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert!(!gg.exists());
}

#[test]
fn failing_model_exits_1_naming_it_once() {
    let sym = symbolic_model();
    let s = sym.to_str().unwrap();
    let gg = tmp("gg_sym.onnx");
    for args in [vec!["score", s, "-p", "params"], vec!["inspect", s], vec!["grad-graph", s, "-o", gg.to_str().unwrap()]] {
        let out = zerocost(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("symbolic") && err.contains("--input-shape"), "{err}");
        assert_eq!(err.matches(s).count(), 1, "{args:?}: {err}");
    }
}

/// A proxy failing is reported in the output (exit 0); every proxy failing means the model
/// could not be scored (exit 1), its errors still written.
#[test]
fn proxy_errors_are_output_and_exit_1_only_when_no_proxy_has_a_value() {
    let score = |p: &str| zerocost(&["score", "models/tiny_mlp.onnx", "-p", p, "--batch-size", "4", "--format", "jsonl"]);
    let out = score("az_expressivity,params");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = score("az_expressivity");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["errors"]["az_expressivity"].is_string(), "{v}");
    assert_eq!(stderr(&out).matches("models/tiny_mlp.onnx").count(), 1, "{}", stderr(&out));
}

#[test]
fn bad_flag_values_and_conflicts_exit_2() {
    let gg = tmp("gg_bad.onnx");
    let cases: Vec<Vec<&str>> = vec![
        vec!["score", "models/tiny_cnn.onnx", "--batch-size", "0"],
        vec!["score", "models/tiny_cnn.onnx", "-p", ""],
        vec!["score", "models/tiny_cnn.onnx", "-p", "nope"],
        vec!["score", "models/tiny_cnn.onnx", "--data", "cifar10:/nonexistent"],
        vec!["score", "models/tiny_cnn.onnx", "--inputs", "tests/fixtures/tiny_cnn/inputs.npy", "--targets", "tests/fixtures/tiny_cnn/targets.npy", "--data", "cifar10:/nonexistent"],
        vec!["inspect", "models/tiny_cnn.onnx", "--format", "xml"],
        vec!["inspect", "models/tiny_cnn.onnx", "--batch-size", "0"],
        vec!["grad-graph", "models/tiny_cnn.onnx", "-o", gg.to_str().unwrap(), "--batch-size", "0"],
        vec!["grad-graph", "models/tiny_cnn.onnx", "-o", "/nonexistent/dir/g.onnx"],
        vec!["grad-graph", "models/tiny_cnn.onnx", "-o", "g.txt"],
    ];
    for args in cases {
        let out = zerocost(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert!(!gg.exists() && !common::root().join("g.txt").exists());
}

#[test]
fn explicit_inputs_fix_symbolic_dimensions() {
    let sym = symbolic_model();
    let out = zerocost(&["score", sym.to_str().unwrap(), "-p", "grad_norm", "--format", "json"]
        .iter()
        .copied()
        .chain(["--inputs", "tests/fixtures/tiny_cnn/inputs.npy", "--targets", "tests/fixtures/tiny_cnn/targets.npy"])
        .collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["batch"], 16);
    assert!(v[0]["scores"]["grad_norm"].as_f64().unwrap() > 0.0);
}

#[test]
fn several_outputs_the_scored_one_is_named_and_can_be_chosen() {
    let model = two_output_model();
    let m = model.to_str().unwrap();
    let score = |extra: &[&str]| zerocost(&[&["score", m, "-p", "params,grad_norm", "--batch-size", "2", "--format", "json"], extra].concat());
    let out = score(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("scoring 'logits'") && stderr(&out).contains("--output-name"), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["scores"]["params"], 108.0 + 40.0);
    let out = score(&["--output-name", "aux"]);
    assert!(out.status.success() && stderr(&out).is_empty(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["scores"]["params"], 108.0 + 20.0);
    assert!(v[0]["scores"]["grad_norm"].as_f64().unwrap() > 0.0, "{v}");
    let out = score(&["--output-name", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("logits, aux"), "{}", stderr(&out));
}

#[test]
fn completions_and_engine_flags_only_where_an_engine_runs() {
    let out = zerocost(&["completions", "bash"]);
    assert!(out.status.success() && out.stdout.len() > 1000 && String::from_utf8_lossy(&out.stdout).contains("zerocost"));
    for (cmd, has) in [("score", true), ("batch", true), ("merge", false), ("correlate", false), ("space", false), ("search", false), ("inspect", false)] {
        let help = String::from_utf8(zerocost(&[cmd, "--help"]).stdout).unwrap();
        assert_eq!(help.contains("--ort-lib"), has, "{cmd}: {help}");
        assert_eq!(help.contains("ONNX Runtime:"), has, "{cmd}: {help}");
    }
}

/// The commands without models (merge, correlate, search, space) follow the same
/// convention: a missing input file or a bad flag value is a usage or input error, exit 2,
/// in one line.
#[test]
fn commands_without_models_exit_2_on_a_missing_file_or_a_bad_value() {
    let cases: [&[&str]; 8] = [
        &["merge", "/nonexistent/a.jsonl"],
        &["correlate", "/nonexistent/a.jsonl"],
        &["search", "--space", "nb201", "--truth", "/nonexistent/t.csv", "--budget", "3"],
        &["space", "info", "nb201", "not-a-cell"],
        &["merge", "a.jsonl", "--rtol", "x"],
        &["correlate", "a.jsonl", "--format", "xml"],
        &["search", "--space", "nb999"],
        &["space", "list", "nb999"],
    ];
    for args in cases {
        let o = zerocost(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        if args[1].starts_with("/nonexistent") || args.contains(&"/nonexistent/t.csv") {
            assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
            assert!(err.contains("/nonexistent/"), "{args:?}: {err}");
        }
    }
}
