//! The ONNX model zoo's Caffe2-era `light_*.onnx` files (shipped by the `onnx` Python
//! package; skipped when it is not installed, a failure under CI): every weight is a
//! `ConstantOfShape` node (Inception v1's classifier a Reshape of one). All nine import (LRN
//! lowered at import for AlexNet, Inception v1 and ZFNet-512); each one has every Conv and
//! Gemm as a scored layer, `params` equals the weights, biases and normalisation scales and
//! biases counted from the protobuf itself, and every paper proxy scores at batch 8 (on ONNX
//! Runtime, float32, when its library is found; on tract otherwise). About 12 minutes on 2
//! busy cores with ONNX Runtime (VGG-19 5 minutes); `ZEROCOST_LIGHT_ZOO=import` checks the
//! import only (seconds).

mod common;

use prost::Message;
use std::collections::HashMap;
use std::path::PathBuf;
use tract_onnx::pb;
use zerocost::data::{load_batch, BatchRequest, DataSource};
use zerocost::engine::Engine;
use zerocost::onnx::canon::BnMode;
use zerocost::onnx::Model;
use zerocost::proxies::{find_measures, ScoreOptions, PAPER_PROXIES};

/// The folder of the light models in the installed `onnx` package.
fn light_dir() -> Option<PathBuf> {
    let out = std::process::Command::new("python3")
        .args(["-c", "import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), 'backend/test/data/light'))"])
        .output()
        .ok()?;
    let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (out.status.success() && dir.is_dir()).then_some(dir)
}

/// (Conv + Gemm nodes, parameter elements) read from the protobuf: inputs 1 and 2 of Conv
/// and Gemm and 1 and 2 of BatchNormalization, sized by the shapes their ConstantOfShape
/// nodes (or initializers) declare, through a Reshape.
fn count(path: &std::path::Path) -> (usize, usize) {
    let m = pb::ModelProto::decode(std::fs::read(path).unwrap().as_slice()).unwrap();
    let g = m.graph.unwrap();
    let inits: HashMap<&str, &pb::TensorProto> = g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let ints = |t: &pb::TensorProto| -> Vec<i64> {
        if !t.int64_data.is_empty() {
            t.int64_data.clone()
        } else {
            t.raw_data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
        }
    };
    let mut size: HashMap<&str, usize> = inits.iter().map(|(k, t)| (*k, t.dims.iter().product::<i64>() as usize)).collect();
    for n in &g.node {
        if n.op_type == "ConstantOfShape" {
            if let Some(t) = inits.get(n.input[0].as_str()) {
                size.insert(n.output[0].as_str(), ints(t).iter().product::<i64>() as usize);
            }
        }
        // a Reshape keeps the size (Inception v1's classifier weight)
        if n.op_type == "Reshape" {
            if let Some(&k) = size.get(n.input[0].as_str()) {
                size.insert(n.output[0].as_str(), k);
            }
        }
    }
    let mut layers = 0;
    let mut params = 0;
    for n in &g.node {
        let slots: &[usize] = match n.op_type.as_str() {
            "Conv" | "Gemm" => {
                layers += 1;
                &[1, 2]
            }
            "BatchNormalization" => &[1, 2],
            _ => &[],
        };
        for &i in slots {
            params += n.input.get(i).and_then(|x| size.get(x.as_str())).copied().unwrap_or(0);
        }
    }
    (layers, params)
}


/// (model, proxy) whose float32 value overflows on these constant-weight files.
const FLOAT32_OVERFLOW: &[(&str, &str)] = &[("light_vgg19.onnx", "grasp"), ("light_inception_v1.onnx", "grasp")];

/// ONNX Runtime (float32) when its library is found, else tract.
fn engine() -> Box<dyn Engine> {
    #[cfg(feature = "ort")]
    if zerocost::engine::ort::available().is_ok() {
        if let Ok(e) = zerocost::engine::ort::OrtEngine::cpu(0) {
            eprintln!("engine: ONNX Runtime (CPU)");
            return Box::new(e);
        }
    }
    eprintln!("engine: tract");
    Box::new(zerocost::engine::tract::TractEngine::default())
}

#[test]
fn light_zoo_models_import_with_every_layer_and_parameter_and_score() {
    let Some(dir) = light_dir() else {
        common::skip_or_fail("light_zoo", "the onnx Python package is not installed (pip install onnx)");
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "onnx")).collect();
    files.sort();
    assert_eq!(files.len(), 9, "{files:?}");
    let score = std::env::var("ZEROCOST_LIGHT_ZOO").map(|v| v != "import").unwrap_or(true);
    let engine = engine();
    let started = std::time::Instant::now();
    for f in &files {
        let t = std::time::Instant::now();
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let model = Model::load(f).unwrap();
        let (layers, params) = count(f);
        let info = zerocost::inspect::inspect(&model, 1, None, BnMode::Batch).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let v = serde_json::to_value(&info).unwrap();
        assert_eq!(v["scored_layers"].as_array().map(Vec::len), Some(layers), "{name}: scored layers");
        assert_eq!(v["params"].as_u64(), Some(params as u64), "{name}: params");
        assert!(info.scored_layers.iter().all(|l| l.weight_from.contains("ConstantOfShape") || l.weight_from == "initializer"), "{name}");
        let batch_size = 8;
        if score {
            let req = BatchRequest { batch_size, num_classes: 1000, input_shape: model.sample_shape().unwrap(), seed: 0, ..Default::default() };
            let batch = load_batch(&DataSource::Synthetic, &req).unwrap();
            let r = find_measures(&model, &batch, PAPER_PROXIES, engine.as_ref(), &ScoreOptions::default());
            for (proxy, v) in &r {
                match (&v.value, &v.error) {
                    (Some(_), _) => {}
                    // every weight of these files is one constant (0.02 in VGG-19): 16 convolutions
                    // of fan-in up to 4608 overflow float32, and grasp's Hessian product with them;
                    // Inception v1's grasp is 1.36e44 in float64 at batch 8 (measured), beyond
                    // float32's 3.4e38: the proxy ran, its float32 value is not finite
                    (None, Some(e)) if FLOAT32_OVERFLOW.contains(&(name.as_str(), proxy.as_str())) && e.contains("(NaN or infinite)") => {
                        eprintln!("{name}: {proxy}: {e}")
                    }
                    (None, e) => panic!("{name}: {proxy} at batch {batch_size}: {e:?}"),
                }
            }
            assert_eq!(r["params"].value.as_ref().unwrap().total, params as f64, "{name}: params");
        }
        eprintln!("{name}: {layers} scored layers, {params} params, scored at batch {batch_size} ({:.1}s)", t.elapsed().as_secs_f64());
    }
    eprintln!("light zoo: {:.1}s", started.elapsed().as_secs_f64());
}
