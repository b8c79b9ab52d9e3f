//! tract vs ONNX Runtime's CPU provider on resnet20 and a NAS-Bench-201 network at batch 64:
//! the forward program, the loss pass (forward + backward) and all the paper's proxies
//! together (float32 data passes, as `--precision f32`; each engine loads every program it
//! runs, so program preparation is included there).
//!
//! Run: `cargo bench --features ort --bench engines` (env ZEROCOST_THREADS=1,2 chooses the
//! thread counts, default 1; ZEROCOST_BENCH_RUNS the runs per measurement, default 5; the
//! median is reported). Without the `ort` feature it says so and exits.

#[cfg(not(feature = "ort"))]
fn main() {
    println!("engines bench: ONNX Runtime is not enabled in this build; run `cargo bench --features ort --bench engines`");
}

#[cfg(feature = "ort")]
fn main() {
    bench::run();
}

#[cfg(feature = "ort")]
mod bench {
    use std::time::Instant;
    use zerocost::data::{load_batch, BatchRequest, DataSource};
    use zerocost::engine::ort::{self, OrtEngine};
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
        median(
            (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_secs_f64()
                })
                .collect(),
        )
    }

    pub fn run() {
        let threads: Vec<usize> =
            std::env::var("ZEROCOST_THREADS").unwrap_or("1".into()).split(',').filter_map(|s| s.parse().ok()).collect();
        let runs: usize = std::env::var("ZEROCOST_BENCH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
        let rt = match ort::available() {
            Ok(rt) => rt,
            Err(why) => {
                println!("engines bench: skipped, no ONNX Runtime library ({why})");
                return;
            }
        };
        let root = env!("CARGO_MANIFEST_DIR");
        let batch_size = 64;
        println!("{rt:?}");
        println!("batch {batch_size}, float32, median of {runs} runs after a warm-up (seconds; 'all proxies': median of {})", 1.max(runs / 2));
        println!(
            "{:<18} {:<8} {:>7} {:>10} {:>10} {:>10} {:>12}",
            "model", "engine", "threads", "load fwd", "forward", "fwd+bwd", "all proxies"
        );
        let names = ["grad_norm", "snip", "grasp", "fisher", "jacob_cov", "plain", "synflow"];
        let opts = ScoreOptions { float64: false, ..Default::default() };
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
            let input = g.inputs[0].clone();
            for &n in &threads {
                let engines: Vec<Box<dyn Engine>> = vec![Box::new(TractEngine::with_threads(n)), Box::new(OrtEngine::cpu(n).unwrap())];
                for engine in &engines {
                    let start = Instant::now();
                    let fwd = engine.load(&g).unwrap();
                    let tload = start.elapsed().as_secs_f64();
                    let bwd = engine.load(&lp.graph).unwrap();
                    let tf = time(runs, || {
                        fwd.run(&[(&input, &x)]).unwrap();
                    });
                    let tb = time(runs, || {
                        bwd.run(&[(&input, &x), (passes::TARGETS, &t)]).unwrap();
                    });
                    let tall = time(1.max(runs / 2), || {
                        let r = proxies::find_measures(&model, &batch, &names, engine.as_ref(), &opts);
                        assert!(r.values().all(|v| v.value.is_some()), "{r:?}");
                    });
                    println!("{name:<18} {:<8} {n:>7} {tload:>10.3} {tf:>10.3} {tb:>10.3} {tall:>12.3}", engine.name());
                }
            }
        }
        println!("(synflow's program is float64 and runs on tract under both engines; ONNX Runtime threads = intra-op threads)");
    }
}
