//! The same PyTorch network exported by the TorchScript exporter and by the dynamo exporter
//! (`optimize=False`; tests/exporters/make_exports.py) scores the same on every paper proxy,
//! 1e-9 relative in float64. The dynamo file keeps its weights as external data.

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
    let opts = ScoreOptions { float64: true, ..Default::default() };
    let req = BatchRequest { batch_size: 16, num_classes: 10, input_shape: vec![3, 16, 16], seed: 3, ..Default::default() };
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
