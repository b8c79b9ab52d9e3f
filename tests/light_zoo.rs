//! The ONNX model zoo's Caffe2-era `light_*.onnx` files (shipped by the `onnx` Python
//! package; skipped when it is not installed): every weight is a `ConstantOfShape` node.
//! Each one imports with every Conv and Gemm as a scored layer, and `params` equals the
//! weights, biases and normalisation scales and biases counted from the protobuf itself.

use prost::Message;
use std::collections::HashMap;
use std::path::PathBuf;
use tract_onnx::pb;
use zerocost::onnx::canon::BnMode;
use zerocost::onnx::Model;

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
/// nodes (or initializers) declare.
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

#[test]
fn light_zoo_models_import_with_every_layer_and_parameter() {
    let Some(dir) = light_dir() else {
        eprintln!("SKIPPED: the onnx Python package is not installed (pip install onnx)");
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "onnx")).collect();
    files.sort();
    assert!(files.len() >= 9, "{files:?}");
    let mut checked = 0;
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let model = Model::load(f).unwrap();
        let (layers, params) = count(f);
        match zerocost::inspect::inspect(&model, 1, None, BnMode::Batch) {
            Ok(info) => {
                let v = serde_json::to_value(&info).unwrap();
                assert_eq!(v["scored_layers"].as_array().map(Vec::len), Some(layers), "{name}: scored layers");
                assert_eq!(v["params"].as_u64(), Some(params as u64), "{name}: params");
                checked += 1;
            }
            // AlexNet, Inception v1 and ZFNet use LRN, which has no rule yet (issue #12)
            Err(e) => assert!(format!("{e:#}").contains("LRN"), "{name}: {e:#}"),
        }
    }
    assert!(checked >= 6, "only {checked} light models imported");
}
