//! `torch.split`, `torch.chunk` and `torch.unbind` as PyTorch's dynamo exporter writes them
//! (SplitToSequence + SequenceAt, lowered to Slice at import) give the same scores as the
//! TorchScript export of the same network (Split): tests/sequences/make_split.py.

use std::path::PathBuf;
use zerocost::data::{load_batch, BatchRequest, DataSource};
use zerocost::engine::tract::TractEngine;
use zerocost::onnx::Model;
use zerocost::proxies::{find_measures, ScoreOptions, PAPER_PROXIES};

fn file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sequences").join(name)
}

#[test]
fn split_sequences_score_as_the_torchscript_split() {
    let req = BatchRequest { batch_size: 6, input_shape: vec![3, 16, 16], ..Default::default() };
    let batch = load_batch(&DataSource::Synthetic, &req).unwrap();
    let opts = ScoreOptions { float64: true, ..Default::default() };
    let score = |f: &str| find_measures(&Model::load(file(f)).unwrap(), &batch, PAPER_PROXIES, &TractEngine::default(), &opts);
    let (ts, dynamo) = (score("split_ts.onnx"), score("split_dynamo.onnx"));
    let mut failures = Vec::new();
    for name in PAPER_PROXIES {
        match (&ts[*name].value, &dynamo[*name].value) {
            (Some(a), Some(b)) => {
                let rel = (a.total - b.total).abs() / a.total.abs().max(1e-300);
                eprintln!("{name:<10} TorchScript {:.12e} dynamo {:.12e} rel {rel:.1e}", a.total, b.total);
                if !(rel < 1e-9) {
                    failures.push(format!("{name}: TorchScript {} vs dynamo {}", a.total, b.total));
                }
            }
            _ => failures.push(format!("{name}: {:?} / {:?}", ts[*name].error, dynamo[*name].error)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
