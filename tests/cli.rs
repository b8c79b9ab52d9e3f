//! The command-line contract (SPEC §2): JSON shape, exit codes, clear errors.

mod common;

use prost::Message;
use serde_json::Value;
use std::process::Command;
use zerocost::onnx::ir::{Attr, DType, Graph, Node, Tensor, TypeInfo};

fn zerocost() -> Command {
    Command::new(env!("CARGO_BIN_EXE_zerocost"))
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("zerocost-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// `score --format json` prints an array of per-model objects: the one model's.
fn only_model(stdout: &[u8]) -> Value {
    let all: Value = serde_json::from_slice(stdout).unwrap();
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
    all[0].clone()
}

#[test]
fn score_json_has_the_contracted_shape() {
    let root = common::root();
    let out = zerocost()
        .args(["score", "models/tiny_cnn.onnx", "--inputs", "tests/fixtures/tiny_cnn/inputs.npy", "--targets", "tests/fixtures/tiny_cnn/targets.npy"])
        .args(["--proxy", "grad_norm,snip", "--proxy", "l2_norm", "--format", "json", "--per-layer"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = only_model(&out.stdout);
    assert_eq!(v["model"], "models/tiny_cnn.onnx");
    // the default engine: ONNX Runtime's CPU provider when its library is found, else tract
    let ort_found = cfg!(feature = "ort") && std::process::Command::new("python3").args(["-c", "import onnxruntime"]).status().is_ok_and(|s| s.success());
    let ort_found = ort_found || std::env::var_os("ORT_DYLIB_PATH").is_some() || std::env::var_os("ZEROCOST_ORT_LIB").is_some();
    assert_eq!(v["engine"], if ort_found { "ort-cpu" } else { "tract" });
    assert_eq!(v["batch"], 16);
    let scores = v["scores"].as_object().unwrap();
    assert_eq!(scores.keys().collect::<Vec<_>>(), ["grad_norm", "snip", "l2_norm"]);
    let reference: Value = serde_json::from_reader(std::fs::File::open(root.join("tests/fixtures/tiny_cnn/ref.json")).unwrap()).unwrap();
    for p in ["grad_norm", "snip", "l2_norm"] {
        let (got, want) = (scores[p].as_f64().unwrap(), reference["proxies_f64"][p].as_f64().unwrap());
        assert!(common::rel(got, want) < 1e-4, "{p}: {got} vs {want}");
        assert_eq!(v["per_layer"][p].as_array().unwrap().len(), 3);
        assert!(v["seconds"][p].as_f64().unwrap() >= 0.0);
    }
    assert_eq!(v["layers"].as_array().unwrap().len(), 3);
    assert!(v.get("errors").is_none());
}

#[test]
fn jsonl_gives_one_line_per_model() {
    let out = zerocost()
        .args(["score", "models/tiny_mlp.onnx", "models/tiny_cnn.onnx", "-p", "params,flops", "--format", "jsonl", "--batch-size", "4"])
        .current_dir(common::root())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["scores"]["params"], 99018.0);
    assert_eq!(lines[1]["scores"]["flops"], 295072.0);
}

#[test]
fn unreadable_files_fail_with_one_line_naming_the_file() {
    let bytes = std::fs::read(common::root().join("models/tiny_cnn.onnx")).unwrap();
    let truncated = tmp("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let text = tmp("text.onnx");
    std::fs::write(&text, "not a model\n").unwrap();
    for f in [&truncated, &text, &tmp("missing.onnx")] {
        let out = zerocost().args(["score", f.to_str().unwrap(), "--format", "json"]).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(f.to_str().unwrap()), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn symbolic_input_dimensions_need_input_shape() {
    let mut proto = tract_onnx::pb::ModelProto::decode(std::fs::read(common::root().join("models/tiny_mlp.onnx")).unwrap().as_slice()).unwrap();
    let graph = proto.graph.as_mut().unwrap();
    if let Some(tract_onnx::pb::type_proto::Value::TensorType(t)) = graph.input[0].r#type.as_mut().unwrap().value.as_mut() {
        for (d, name) in t.shape.as_mut().unwrap().dim.iter_mut().zip(["N", "C", "H", "W"]) {
            d.value = Some(tract_onnx::pb::tensor_shape_proto::dimension::Value::DimParam(name.into()));
        }
    }
    let path = tmp("symbolic.onnx");
    std::fs::write(&path, proto.encode_to_vec()).unwrap();
    let out = zerocost().args(["score", path.to_str().unwrap(), "-p", "grad_norm"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("symbolic") && err.contains("--input-shape") && err.contains(path.to_str().unwrap()), "{err}");
    let out = zerocost()
        .args(["score", path.to_str().unwrap(), "-p", "grad_norm", "--input-shape", "1x3x32x32", "--batch-size", "8", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = only_model(&out.stdout);
    assert!(v["scores"]["grad_norm"].as_f64().unwrap() > 0.0);
    assert_eq!(v["batch"], 8);
}

/// A model with an op that has no gradient rule (Mod): gradient proxies are null with
/// the op and node named; l2_norm, params and flops are still computed.
#[test]
fn an_op_without_gradient_rule_nulls_only_the_gradient_proxies() {
    let mut g = Graph { opset: 17, source: "mod".into(), ..Graph::default() };
    g.inputs.push("input".into());
    g.types.insert("input".into(), TypeInfo::new(DType::F32, vec![2, 3, 8, 8]));
    let w = zerocost::autodiff::check::rand_tensor(&[4, 3, 3, 3], 1).cast(DType::F32);
    g.set_initializer("conv.weight", w);
    g.set_initializer("divisor", Tensor::scalar(DType::F32, 3.0));
    let fc = zerocost::autodiff::check::rand_tensor(&[10, 4], 2).cast(DType::F32);
    g.set_initializer("fc.weight", fc);
    g.nodes.push(Node::new("conv", "Conv", vec!["input".into(), "conv.weight".into()], vec!["c".into()]).with_attr("pads", Attr::Ints(vec![1, 1, 1, 1])));
    g.nodes.push(Node::new("the_mod", "Mod", vec!["c".into(), "divisor".into()], vec!["s".into()]).with_attr("fmod", Attr::Int(1)));
    g.nodes.push(Node::new("gap", "GlobalAveragePool", vec!["s".into()], vec!["p".into()]));
    g.nodes.push(Node::new("flat", "Flatten", vec!["p".into()], vec!["f".into()]));
    g.nodes.push(Node::new("fc", "Gemm", vec!["f".into(), "fc.weight".into()], vec!["output".into()]).with_attr("transB", Attr::Int(1)));
    g.outputs.push("output".into());
    zerocost::onnx::fold::infer_and_fold(&mut g).unwrap();
    let path = tmp("mod.onnx");
    zerocost::onnx::proto::write_model(&g, &path).unwrap();
    let out = zerocost().args(["score", path.to_str().unwrap(), "--batch-size", "2", "--format", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = only_model(&out.stdout);
    for p in ["grad_norm", "snip", "grasp", "fisher", "jacob_cov", "plain", "synflow"] {
        assert!(v["scores"][p].is_null(), "{p} should be null: {v}");
        let e = v["errors"][p].as_str().unwrap();
        assert!(e.contains("Mod") && e.contains("the_mod"), "{p}: {e}");
    }
    for p in ["l2_norm", "params", "flops"] {
        assert!(v["scores"][p].as_f64().unwrap() > 0.0, "{p}: {v}");
    }
}

#[test]
fn inspect_lists_layers_and_differentiability() {
    let out = zerocost().args(["inspect", "models/tiny_cnn.onnx", "--format", "json"]).current_dir(common::root()).output().unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["params"], 1610);
    assert_eq!(v["macs_per_sample"], 295072);
    assert_eq!(v["scored_layers"].as_array().unwrap().len(), 3);
    assert_eq!(v["ops"]["BatchNormalization"], 2);
    assert!(v["non_differentiable"].as_array().unwrap().is_empty(), "{v}");
}

#[test]
fn az_nas_names_its_four_components_and_search_needs_a_truth_table() {
    let root = common::root();
    let out = zerocost()
        .args(["score", "models/nb201_a.onnx", "--inputs", "tests/fixtures/nb201_a/inputs.npy", "--targets", "tests/fixtures/nb201_a/targets.npy"])
        .args(["--proxy", "az_nas,flops", "--format", "json", "--per-layer"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = only_model(&out.stdout);
    let scores = v["scores"].as_object().unwrap();
    assert_eq!(scores.keys().collect::<Vec<_>>(), ["az_expressivity", "az_progressivity", "az_trainability", "az_complexity", "flops"]);
    assert_eq!(scores["az_complexity"], scores["flops"]);
    // NAS-Bench-201: the stem and 17 cells, as the authors' extract_cell_features
    assert_eq!(v["details"]["az_expressivity"]["features"].as_array().unwrap().len(), 18);
    assert_eq!(v["details"]["az_trainability"]["blocks"].as_array().unwrap().len(), 17);
    // a network without feature maps has no blocks: an error naming why, the others still run
    let out = zerocost()
        .args(["score", "models/tiny_mlp.onnx", "--proxy", "az_nas,params", "--format", "json", "--batch-size", "4"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = only_model(&out.stdout);
    assert!(v["scores"]["az_trainability"].is_null() && v["scores"]["params"].is_number());
    assert!(v["errors"]["az_expressivity"].as_str().unwrap().contains("at least two block outputs"), "{}", v["errors"]);
    // a rank aggregate gives no fitness of its own
    let out = zerocost().args(["search", "--space", "nb201", "--proxy", "az_nas", "--budget", "2", "--warmup", "2"]).current_dir(&root).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--truth"), "{}", String::from_utf8_lossy(&out.stderr));
}
