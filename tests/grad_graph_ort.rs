//! `zerocost grad-graph` writes ordinary ONNX: every fixture's forward+backward program
//! loads in ONNX Runtime (Python package) and gives the same outputs (logits, loss,
//! gradients w.r.t. every scored weight and the input) as tract's float64 run of the same
//! program (zerocost's default precision; ONNX Runtime's CPU provider has no float64
//! convolution, so ONNX Runtime runs the float32 file). Skipped, with the reason printed,
//! when python3 with onnxruntime is not installed (.ci/run installs it).

mod common;

use common::fixtures;
use ndarray::ArrayD;
use ndarray_npy::NpzReader;
use std::process::Command;

/// ONNX Runtime runs the float32 program and tract the float64 one: float32 rounding alone
/// moves the gradients of the small-batch, non-affine-BN NAS-Bench-201 fixtures by up to
/// ~6e-4 (the others agree to ~1e-6); a wrong rule gives errors of order 1.
const FLOAT32_TOLERANCE: f64 = 2e-3;

fn onnxruntime_available() -> Result<(), String> {
    let out = Command::new("python3").args(["-c", "import onnxruntime, numpy"]).output().map_err(|e| format!("python3 not runnable: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("import failed").to_string())
    }
}

#[test]
fn grad_graph_runs_in_onnxruntime_with_the_same_gradients() {
    if let Err(why) = onnxruntime_available() {
        common::skip_or_fail(
            "grad_graph_runs_in_onnxruntime",
            &format!("onnxruntime for python3 is not available ({why}); `pip install onnxruntime numpy` to run it"),
        );
        return;
    }
    let bin = env!("CARGO_BIN_EXE_zerocost");
    let dir = std::env::temp_dir().join(format!("zerocost-ort-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut failures = Vec::new();
    for case in fixtures() {
        let program = dir.join(format!("{}.onnx", case.name));
        let batch = case.batch();
        let st = Command::new(bin)
            .args(["grad-graph", case.model.to_str().unwrap(), "-o", program.to_str().unwrap(), "--wrt", "all"])
            .args(["--batch-size", &batch.len().to_string()])
            .output()
            .unwrap();
        assert!(st.status.success(), "grad-graph failed on {}", case.name);
        // tract's outputs for the same program, in float64
        let model = zerocost::onnx::Model::load(&case.model).unwrap();
        let shapes = model.input_shapes(batch.len(), None).unwrap();
        let opts = zerocost::onnx::canon::CanonOptions { float64: true, ..Default::default() };
        let g = model.canonical(&shapes, &opts).unwrap();
        let layers = zerocost::onnx::layers::scored_layers(&g).unwrap();
        let p = zerocost::proxies::passes::grad_graph(&g, &layers, true, true).unwrap();
        let prog = zerocost::engine::Engine::load(&zerocost::engine::tract::TractEngine::default(), &p).unwrap();
        check_names(&case.name, &program, &model, &layers, &mut failures);
        let x = zerocost::onnx::ir::Tensor::F32(batch.inputs.clone()).cast(zerocost::onnx::ir::DType::F64);
        let classes = g.shape(&g.outputs[0]).unwrap()[1];
        let t = zerocost::proxies::passes::target_tensor(&batch.targets, classes, zerocost::onnx::ir::DType::F64).unwrap();
        let tract_out = prog.run(&[(&g.inputs[0], &x), ("zerocost/targets", &t)]).unwrap();
        // ONNX Runtime's
        let npz = dir.join(format!("{}.npz", case.name));
        let st = Command::new("python3")
            .arg(common::root().join("tests/ort_run.py"))
            .args([&program, &case.dir.join("inputs.npy"), &case.dir.join("targets.npy"), &npz])
            .status()
            .unwrap();
        if !st.success() {
            failures.push(format!("{}: ONNX Runtime could not run the program", case.name));
            continue;
        }
        let mut z = NpzReader::new(std::fs::File::open(&npz).unwrap()).unwrap();
        for (k, (name, ours)) in tract_out.iter().enumerate() {
            let theirs: ArrayD<f32> = z.by_name(&format!("out{k}")).unwrap();
            let a = ours.to_f64_vec();
            let num: f64 = a.iter().zip(theirs.iter()).map(|(x, y)| (x - *y as f64).powi(2)).sum::<f64>().sqrt();
            let den: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-30);
            let err = num / den;
            if !(err < FLOAT32_TOLERANCE) {
                failures.push(format!("{}: output {name}: tract vs ONNX Runtime relative error {err:.2e}", case.name));
            }
        }
        eprintln!("{}: {} outputs compared between tract and ONNX Runtime", case.name, tract_out.len());
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The written program names each gradient `grad/<weight initializer>` or `grad/<input>`,
/// in scored-layer order, and holds no initializer that no node reads.
fn check_names(case: &str, program: &std::path::Path, model: &zerocost::onnx::Model, layers: &[zerocost::onnx::layers::ScoredLayer], failures: &mut Vec<String>) {
    let written = zerocost::onnx::Model::load(program).unwrap().raw.graph;
    let mut want: Vec<String> = vec![model.raw.graph.outputs[0].clone(), "zerocost/loss".into()];
    want.extend(layers.iter().map(|l| format!("grad/{}", l.weight)));
    want.push(format!("grad/{}", model.raw.graph.inputs[0]));
    if written.outputs != want {
        failures.push(format!("{case}: outputs {:?}, expected {want:?}", written.outputs));
    }
    for l in layers {
        if !model.raw.graph.initializers.contains_key(&l.weight) {
            failures.push(format!("{case}: gradient output grad/{} does not name an initializer of the model", l.weight));
        }
    }
    let read: std::collections::HashSet<&String> = written.nodes.iter().flat_map(|n| n.inputs.iter()).chain(written.outputs.iter()).collect();
    let unused: Vec<&String> = written.initializers.keys().filter(|k| !read.contains(k)).collect();
    if !unused.is_empty() {
        failures.push(format!("{case}: unused initializers {unused:?}"));
    }
}
