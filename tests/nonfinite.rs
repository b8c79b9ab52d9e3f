//! NaN or ±∞ in the weights or in the batch: every proxy that reads them reports an error
//! that says where, never a number.

use ndarray::IxDyn;
use std::path::PathBuf;
use zerocost::data::{load_batch, BatchRequest, DataSource};
use zerocost::engine::tract::TractEngine;
use zerocost::onnx::ir::Tensor;
use zerocost::onnx::Model;
use zerocost::proxies::{find_measures, ScoreOptions};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const PROXIES: [&str; 5] = ["l2_norm", "snip", "grad_norm", "synflow", "jacob_cov"];

fn batch(model: &Model) -> zerocost::data::Batch {
    let req = BatchRequest { batch_size: 8, num_classes: 10, input_shape: zerocost::sample_shape(model, None).unwrap(), ..Default::default() };
    load_batch(&DataSource::Synthetic, &req).unwrap()
}

#[test]
fn a_nan_weight_is_named_in_every_error() {
    let mut model = Model::load(root().join("models/tiny_cnn.onnx")).unwrap();
    let b = batch(&model);
    let w = model.raw.graph.initializers.get_mut("features.0.weight").unwrap();
    if let Tensor::F32(a) = w {
        a[IxDyn(&[0, 0, 1, 1])] = f32::NAN;
    }
    let r = find_measures(&model, &b, &PROXIES, &TractEngine::default(), &ScoreOptions::default());
    for p in PROXIES {
        let e = r[p].error.as_deref().unwrap_or_else(|| panic!("{p} gave {:?} from NaN weights", r[p].value.as_ref().map(|v| v.total)));
        assert!(e.contains("weight 'features.0.weight' holds NaN (1 of 216 values)"), "{p}: {e}");
    }
    assert!(find_measures(&model, &b, &["params"], &TractEngine::default(), &ScoreOptions::default())["params"].value.is_some(), "params does not read values");
}

#[test]
fn an_infinite_input_is_named_in_the_errors_of_data_proxies() {
    let model = Model::load(root().join("models/tiny_cnn.onnx")).unwrap();
    let mut b = batch(&model);
    b.inputs[IxDyn(&[3, 0, 0, 0])] = f32::INFINITY;
    let r = find_measures(&model, &b, &["snip", "jacob_cov"], &TractEngine::default(), &ScoreOptions::default());
    for p in ["snip", "jacob_cov"] {
        let e = r[p].error.as_deref().unwrap_or_else(|| panic!("{p} gave a value from an infinite input"));
        assert!(e.contains("the input batch holds NaN or infinite values (1 of them, the first in sample 3)"), "{p}: {e}");
    }
}
