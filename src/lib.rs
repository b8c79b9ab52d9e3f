//! zerocost: zero-cost proxies for neural architecture search, computed on any ONNX network.
//!
//! The data flows top to bottom through the modules:
//! `onnx` (load, canonicalise, infer shapes) → `autodiff` (append the reverse pass as ONNX
//! nodes) → `engine` (run the program) → `proxies` (scores from the results). `data`
//! supplies the batch.

pub mod autodiff;
pub mod data;
pub mod engine;
pub mod onnx;
pub mod proxies;
