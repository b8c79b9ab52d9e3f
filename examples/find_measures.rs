//! The library API, as the paper's `find_measures`: load a model, get a batch, score it
//! with named proxies on an engine.
//!
//! Run: `cargo run --release --example find_measures [MODEL.onnx]`

use zerocost::data::{load_batch, BatchRequest, DataSource, Dataload};
use zerocost::engine::tract::TractEngine;
use zerocost::onnx::Model;
use zerocost::proxies::{find_measures, ScoreOptions};

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| format!("{}/models/tiny_cnn.onnx", env!("CARGO_MANIFEST_DIR")));
    let model = Model::load(&path)?;
    // training-mode BatchNorm, float32 data passes (synflow always runs in float64), the
    // input shape from the file: the same defaults as `zerocost score`
    let opts = ScoreOptions::default();
    // 'grasp' dataload: one sample of each of the 10 classes, in class order
    let request = BatchRequest {
        dataload: Dataload::Grasp,
        dataload_info: 1,
        num_classes: zerocost::num_classes(&model, &opts)?,
        input_shape: zerocost::sample_shape(&model, None)?,
        ..Default::default()
    };
    let batch = load_batch(&DataSource::Synthetic, &request)?;
    let engine = TractEngine::default();
    let scores = find_measures(&model, &batch, &["grad_norm", "snip", "synflow", "jacob_cov"], &engine, &opts);
    for (name, result) in &scores {
        match (&result.value, &result.error) {
            (Some(v), _) => println!("{name:<10} {:>14.6e}   ({:.3}s)", v.total, result.seconds),
            (None, Some(e)) => println!("{name:<10} {:>14}   {e}", "null"),
            (None, None) => unreachable!(),
        }
    }
    Ok(())
}
