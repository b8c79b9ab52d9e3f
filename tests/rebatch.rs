//! Files exported at a fixed batch, scored at another: attention layers write the export
//! batch into Reshape targets at any position ([S, N·heads, d], [S·N, E]), and optimisers
//! fold a class token expanded to the export batch into a constant. A tiny torchvision ViT
//! exported at batch 2 by both PyTorch exporters (dynamo with and without its optimiser;
//! tests/rebatch/make_vit.py) is scored at
//! batch 8 against PyTorch's float64 values on the same batch, and synflow's one-sample
//! pass runs.

use ndarray::ArrayD;
use ndarray_npy::ReadNpyExt;
use serde_json::Value;
use std::fs::File;
use std::path::PathBuf;
use zerocost::data::Batch;
use zerocost::engine::tract::TractEngine;
use zerocost::onnx::Model;
use zerocost::proxies::{find_measures, ScoreOptions};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/rebatch")
}

fn batch() -> Batch {
    let x = ArrayD::<f32>::read_npy(File::open(dir().join("inputs.npy")).unwrap()).unwrap();
    let t = ArrayD::<i64>::read_npy(File::open(dir().join("targets.npy")).unwrap()).unwrap();
    Batch { inputs: x, targets: t.iter().copied().collect() }
}

#[test]
fn vit_exported_at_batch_2_scores_at_batch_8_as_pytorch() {
    let reference: Value = serde_json::from_reader(File::open(dir().join("ref.json")).unwrap()).unwrap();
    let want = reference["proxies_f64"].as_object().unwrap();
    assert_eq!(want.len(), 3, "ref.json holds grad_norm, snip and jacob_cov");
    let batch = batch();
    let opts = ScoreOptions { float64: true, ..Default::default() };
    let mut failures = Vec::new();
    for file in ["vit_ts.onnx", "vit_dynamo.onnx", "vit_dynamo_opt.onnx"] {
        let model = Model::load(dir().join(file)).unwrap();
        assert_eq!(model.export_batch(), Some(2), "{file} is exported at a fixed batch of 2");
        let names: Vec<&str> = want.keys().map(String::as_str).chain(["synflow"]).collect();
        let r = find_measures(&model, &batch, &names, &TractEngine::default(), &opts);
        for (name, v) in want {
            let want = v.as_f64().unwrap();
            match &r[name.as_str()].value {
                Some(got) => {
                    let err = (got.total - want).abs() / want.abs();
                    eprintln!("{file:<16} {name:<10} ours {:.12e} PyTorch {want:.12e} rel {err:.1e}", got.total);
                    // float64 throughout, except GELU's Erf, which tract evaluates in float32
                    // (src/engine/tract.rs): about 1e-8 relative
                    if !(err < 1e-7) {
                        failures.push(format!("{file}: {name}: ours {}, PyTorch {want}, relative error {err:.1e}", got.total));
                    }
                }
                None => failures.push(format!("{file}: {name}: {}", r[name.as_str()].error.clone().unwrap_or_default())),
            }
        }
        // synflow runs one sample: the batch-2 constants rewritten to batch 1
        if let Some(e) = &r["synflow"].error {
            failures.push(format!("{file}: synflow at batch 1: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
