//! The exporter corpus (tests/exporters/make_exports.py):
//! - the same PyTorch network exported by the TorchScript exporter and by the dynamo exporter
//!   (`optimize=False`) scores the same on every paper proxy, 1e-9 relative in float64 (the
//!   residual network, whose dynamo file keeps its weights as external data, and every
//!   fixture of models/make_fixtures.py);
//! - the dynamo exporter with `optimize=True` folds BatchNormalization into the convolutions:
//!   such files score, and say so once (and BN-free files say nothing);
//! - an onnx.helper model at opset 21 and a TensorFlow-style (tf2onnx) model, whose weights
//!   are constant expressions (Constant, Cast of float16, DequantizeLinear of int8,
//!   Transpose of a constant), score, every weight a parameter;
//! - a float16 export (`model.half()`) and a QDQ-quantized export of tiny_cnn score, with
//!   tiny_cnn's `params`.

use prost::Message;
use std::path::PathBuf;
use tract_onnx::pb;
use zerocost::data::{load_batch, BatchRequest, DataSource};
use zerocost::engine::tract::TractEngine;
use zerocost::onnx::Model;
use zerocost::proxies::{find_measures, ScoreOptions, PAPER_PROXIES};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scores(model: &Model) -> Vec<(String, f64)> {
    scores_at(model, 16, &[3, 16, 16])
}

/// Every paper proxy in float64 on tract, on a synthetic batch of `batch_size` samples of
/// `sample` shape (10 classes).
fn scores_at(model: &Model, batch_size: usize, sample: &[usize]) -> Vec<(String, f64)> {
    let opts = ScoreOptions { float64: true, ..Default::default() };
    let req = BatchRequest { batch_size, num_classes: 10, input_shape: sample.to_vec(), seed: 3, ..Default::default() };
    let batch = load_batch(&DataSource::Synthetic, &req).unwrap();
    let r = find_measures(model, &batch, PAPER_PROXIES, &TractEngine::default(), &opts);
    r.iter()
        .map(|(name, v)| (name.clone(), v.value.as_ref().unwrap_or_else(|| panic!("{}: {name}: {:?}", model.path.display(), v.error)).total))
        .collect()
}

fn assert_same(a: &[(String, f64)], b: &[(String, f64)], what: &str) {
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(b) {
        let rel = (x - y).abs() / x.abs().max(1e-300);
        assert!(rel <= 1e-9, "{what}: {name}: {x} vs {y} ({rel:.1e} relative)");
    }
}

#[test]
fn dynamo_and_torchscript_exports_score_the_same() {
    let ts = Model::load(root().join("tests/exporters/residual_torchscript.onnx")).unwrap();
    let dy = Model::load(root().join("tests/exporters/residual_dynamo.onnx")).unwrap();
    assert_same(&scores(&ts), &scores(&dy), "dynamo vs TorchScript");
}

#[test]
fn cast_like_is_a_cast_to_the_other_input_type() {
    // the TorchScript export with `CastLike(x, fc.weight)` before its last Gemm (the dynamo
    // exporter writes such nodes around residual additions)
    let path = root().join("tests/exporters/residual_torchscript.onnx");
    let mut proto = pb::ModelProto::decode(std::fs::read(&path).unwrap().as_slice()).unwrap();
    let g = proto.graph.as_mut().unwrap();
    let gemm = g.node.iter().position(|n| n.op_type == "Gemm").unwrap();
    let x = g.node[gemm].input[0].clone();
    let w = g.node[gemm].input[1].clone();
    g.node[gemm].input[0] = "x_cast".into();
    g.node.insert(gemm, pb::NodeProto { op_type: "CastLike".into(), name: "cast_like".into(), input: vec![x, w], output: vec!["x_cast".into()], ..Default::default() });
    let dir = std::env::temp_dir().join(format!("zerocost-castlike-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let with = dir.join("cast_like.onnx");
    std::fs::write(&with, proto.encode_to_vec()).unwrap();
    let plain = Model::load(&path).unwrap();
    let cast = Model::load(&with).unwrap();
    assert_same(&scores(&plain), &scores(&cast), "with CastLike");
    let _ = std::fs::remove_dir_all(&dir);
}

const FIXTURES: &[&str] = &["tiny_cnn", "tiny_mlp", "nb201_a", "nb201_b", "nb201_c", "resnet20_cifar10", "mobilenetv3_tiny", "shuffle_tiny"];

const BN_FOLDED: &str = "BatchNormalization was folded";

fn value(scores: &[(String, f64)], name: &str) -> f64 {
    scores.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name}")).1
}

#[test]
fn dynamo_exports_of_every_fixture_score_as_their_torchscript_exports() {
    let mut compared = 0;
    let mut failed = Vec::new();
    for name in FIXTURES {
        let dy = root().join(format!("tests/exporters/dynamo/{name}.onnx"));
        if !dy.exists() {
            eprintln!("{name}: no dynamo export (the export failed in torch: see make_exports.py's printout)");
            continue;
        }
        let ts = Model::load(root().join(format!("models/{name}.onnx"))).unwrap();
        let dy = Model::load(&dy).unwrap();
        assert!(dy.notes.is_empty() && ts.notes.is_empty(), "{name}: {:?} {:?}", ts.notes, dy.notes);
        let t = std::time::Instant::now();
        let r = std::panic::catch_unwind(|| {
            let (a, b) = (scores_at(&ts, 4, &[3, 32, 32]), scores_at(&dy, 4, &[3, 32, 32]));
            assert_same(&a, &b, &format!("{name}: dynamo (optimize=False) vs TorchScript"));
            a.len()
        });
        match r {
            Ok(n) => {
                eprintln!("{name}: {n} proxies agree ({:.1}s)", t.elapsed().as_secs_f64());
                compared += 1;
            }
            Err(_) => failed.push(*name),
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
    assert_eq!(compared, FIXTURES.len());
}

#[test]
fn dynamo_optimized_exports_score_and_say_once_that_bn_was_folded() {
    for name in FIXTURES {
        let path = root().join(format!("tests/exporters/dynamo_opt/{name}.onnx"));
        if !path.exists() {
            continue;
        }
        let m = Model::load(&path).unwrap();
        let folded = m.notes.iter().filter(|n| n.contains(BN_FOLDED)).count();
        // tiny_mlp has no BatchNormalization: nothing was folded, nothing is said
        assert_eq!(folded, usize::from(*name != "tiny_mlp"), "{name}: {:?}", m.notes);
        let s = scores_at(&m, 4, &[3, 32, 32]);
        let plain = Model::load(root().join(format!("models/{name}.onnx"))).unwrap();
        let p = scores_at(&plain, 4, &[3, 32, 32]);
        // folding moves BN's scale into the convolution's weights: flops stay, params lose
        // the BatchNorms' scales and biases
        assert_eq!(value(&s, "flops"), value(&p, "flops"), "{name}");
        assert!(value(&s, "params") <= value(&p, "params"), "{name}");
    }
    // the command line says it once, on stderr
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zerocost"))
        .args(["score", "--engine", "tract", "--format", "json", "--batch-size", "2", "--proxy", "grad_norm,params"])
        .arg(root().join("tests/exporters/dynamo_opt/tiny_cnn.onnx"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches(BN_FOLDED).count(), 1, "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zerocost")).arg("inspect").arg(root().join("tests/exporters/dynamo_opt/tiny_cnn.onnx")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).matches(BN_FOLDED).count(), 1);
}

#[test]
fn genuinely_bn_free_and_torchscript_files_raise_no_bn_note() {
    for f in ["models/tiny_mlp.onnx", "tests/exporters/dynamo/tiny_mlp.onnx", "tests/exporters/dynamo_opt/tiny_mlp.onnx", "tests/exporters/residual_dynamo.onnx", "models/tiny_cnn_dynamo.onnx"] {
        let m = Model::load(root().join(f)).unwrap();
        assert!(m.notes.is_empty(), "{f}: {:?}", m.notes);
    }
    for name in FIXTURES {
        let m = Model::load(root().join(format!("models/{name}.onnx"))).unwrap();
        assert!(m.notes.is_empty(), "{name}: {:?}", m.notes);
    }
}

/// `inspect`'s scored layers: (weight, where it came from), and the params.
fn layers(m: &Model) -> (Vec<(String, String)>, u64) {
    let info = zerocost::inspect::inspect(m, 1, None, zerocost::onnx::canon::BnMode::Batch).unwrap();
    let v = serde_json::to_value(&info).unwrap();
    let l = v["scored_layers"].as_array().unwrap().iter().map(|l| (l["weight"].as_str().unwrap().to_string(), l["weight_from"].as_str().unwrap().to_string())).collect();
    (l, v["params"].as_u64().unwrap())
}

#[test]
fn constant_expression_weights_are_parameters() {
    // onnx.helper, opset 21: Constant, Cast of float16, DequantizeLinear of int8 (per axis),
    // Transpose of a Constant
    let m = Model::load(root().join("tests/exporters/helper_opset21.onnx")).unwrap();
    let (l, params) = layers(&m);
    let from: Vec<&str> = l.iter().map(|(_, f)| f.as_str()).collect();
    assert_eq!(from, ["Constant", "Cast from float16", "DequantizeLinear of int8", "Transpose of Constant"], "{l:?}");
    assert_eq!(params, (8 * 27 + 8) + (8 * 8 * 9 + 8) + 16 * 8 + (16 * 10 + 10));
    let s = scores_at(&m, 4, &[3, 16, 16]);
    assert_eq!(value(&s, "params"), params as f64);
    // the text report says where each weight came from
    let text = zerocost::inspect::render(&zerocost::inspect::inspect(&m, 1, None, zerocost::onnx::canon::BnMode::Batch).unwrap());
    assert!(text.contains("DequantizeLinear of int8") && text.contains("Cast from float16"), "{text}");

    // tf2onnx's patterns by hand: NHWC input, MatMul weight a Transpose of a constant
    let m = Model::load(root().join("tests/exporters/tf_patterns.onnx")).unwrap();
    let (l, params) = layers(&m);
    assert_eq!(l, [("conv/kernel".to_string(), "initializer".to_string()), ("dense/kernel".into(), "Transpose of initializer".into())]);
    // (the bias of MatMul + Add is not one of `params`' slots: canon::parameter_inputs)
    assert_eq!(params, 8 * 27 + 8 + 512 * 10);
    let s = scores_at(&m, 4, &[16, 16, 3]);
    assert_eq!(value(&s, "params"), params as f64);
}

#[test]
fn tf2onnx_keras_cnn_scores() {
    // Keras: Conv2D 3->8, MaxPool, Conv2D 8->16, Flatten, Dense 1024->10, all with biases
    let path = root().join("tests/exporters/tf_cnn.onnx");
    if !path.exists() {
        eprintln!("SKIPPED: no tf_cnn.onnx (make_exports.py found no TensorFlow)");
        return;
    }
    let m = Model::load(&path).unwrap();
    let (l, params) = layers(&m);
    assert_eq!(l.len(), 3, "{l:?}");
    // the Dense bias is an Add after the MatMul: not one of `params`' slots
    assert_eq!(params, (8 * 27 + 8) + (16 * 8 * 9 + 16) + 1024 * 10);
    let s = scores_at(&m, 4, &[16, 16, 3]);
    assert_eq!(value(&s, "params"), params as f64);
}

#[test]
fn float16_and_qdq_exports_score_with_the_float_params() {
    let plain = Model::load(root().join("models/tiny_cnn.onnx")).unwrap();
    let p = scores_at(&plain, 4, &[3, 32, 32]);
    for (f, what) in [("tiny_cnn_fp16.onnx", "half-precision"), ("tiny_cnn_qdq.onnx", "quantized (QDQ)")] {
        let m = Model::load(root().join("tests/exporters").join(f)).unwrap();
        assert_eq!(m.notes.len(), 1, "{f}: {:?}", m.notes);
        assert!(m.notes[0].contains(what), "{f}: {:?}", m.notes);
        let s = scores_at(&m, 4, &[3, 32, 32]);
        assert_eq!(value(&s, "params"), value(&p, "params"), "{f}");
        assert_eq!(value(&s, "flops"), value(&p, "flops"), "{f}");
        for ((name, x), (_, y)) in p.iter().zip(&s) {
            eprintln!("{f}: {name:<10} float {x:>14.6e} {y:>14.6e} ({:.1e} relative)", (x - y).abs() / x.abs().max(1e-300));
        }
        // float16 weights are float32's to 1e-3: the proxies move by about that much
        if f.contains("fp16") {
            for name in ["grad_norm", "snip", "synflow", "l2_norm"] {
                let (x, y) = (value(&p, name), value(&s, name));
                assert!((x - y).abs() <= 1e-2 * x.abs(), "{f}: {name}: {x} vs {y}");
            }
        }
    }
}
