//! Forward alone vs forward+backward (the loss pass: mean cross-entropy, gradients w.r.t.
//! every scored weight) on the tract engine, side by side in one run, for resnet20 and a
//! NAS-Bench-201 network at batch 64. Also the time of every paper proxy together.
//!
//! Run: `cargo bench --bench passes` (env ZEROCOST_THREADS=1,2 chooses the thread counts,
//! ZEROCOST_BENCH_RUNS the runs per measurement, default 5; the median is reported).

use std::time::Instant;
use zerocost::data::{load_batch, BatchRequest, DataSource};
use zerocost::engine::{tract::TractEngine, Engine};
use zerocost::onnx::canon::CanonOptions;
use zerocost::onnx::ir::{DType, Tensor};
use zerocost::onnx::layers::scored_layers;
use zerocost::onnx::Model;
use zerocost::proxies::{self, passes, ScoreOptions};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn time(runs: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    median((0..runs).map(|_| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64()
    }).collect())
}

fn main() {
    let threads: Vec<usize> = std::env::var("ZEROCOST_THREADS").unwrap_or("1,2".into()).split(',').filter_map(|s| s.parse().ok()).collect();
    let runs: usize = std::env::var("ZEROCOST_BENCH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let root = env!("CARGO_MANIFEST_DIR");
    let batch_size = 64;
    println!("tract, batch {batch_size}, median of {runs} runs after a warm-up (seconds)");
    println!("{:<20} {:>7} {:>9} {:>10} {:>12} {:>8} {:>14}", "model", "threads", "optimize", "forward", "fwd+bwd", "ratio", "all proxies");
    for name in ["resnet20_cifar10", "nb201_a"] {
        let model = Model::load(format!("{root}/models/{name}.onnx")).unwrap();
        let req = BatchRequest { batch_size, num_classes: 10, input_shape: vec![3, 32, 32], ..Default::default() };
        let batch = load_batch(&DataSource::Synthetic, &req).unwrap();
        let shapes = model.input_shapes(batch_size, None).unwrap();
        let g = model.canonical(&shapes, &CanonOptions::default()).unwrap();
        let layers = scored_layers(&g).unwrap();
        let lp = passes::loss_program(&g, &layers, false, false).unwrap();
        let x = Tensor::F32(batch.inputs.clone());
        let t = passes::target_tensor(&batch.targets, 10, DType::F32).unwrap();
        for (&n, optimize) in threads.iter().flat_map(|n| [(n, false), (n, true)]) {
            let engine = TractEngine { optimize, ..TractEngine::with_threads(n) };
            let fwd = engine.load(&g).unwrap();
            let bwd = engine.load(&lp.graph).unwrap();
            let input = g.inputs[0].clone();
            let tf = time(runs, || {
                fwd.run(&[(&input, &x)]).unwrap();
            });
            let tb = time(runs, || {
                bwd.run(&[(&input, &x), (passes::TARGETS, &t)]).unwrap();
            });
            let names = ["grad_norm", "snip", "grasp", "fisher", "jacob_cov", "plain", "synflow"];
            let opts = ScoreOptions::default();
            let tall = time(1.max(runs / 2), || {
                let r = proxies::find_measures(&model, &batch, &names, &engine, &opts);
                assert!(r.values().all(|v| v.value.is_some()));
            });
            println!("{name:<20} {n:>7} {optimize:>9} {tf:>10.3} {tb:>12.3} {:>8.2} {tall:>14.3}", tb / tf);
        }
    }
    println!("(fwd+bwd includes the forward; 'all proxies' loads and runs every pass of the 7 paper proxies, plan building included,");
    println!(" which is why optimised plans lose there: tract's optimiser takes seconds on programs of thousands of nodes)");
}
