//! Import: read an ONNX file, fix its input shapes, canonicalise it, infer every shape.

pub mod blocks;
pub mod builder;
pub mod canon;
pub mod composite;
pub mod fold;
pub mod geometry;
pub mod infer;
pub mod ir;
pub mod layers;
pub mod model;
pub mod proto;
pub mod sequence;
pub mod weights;

pub use model::Model;
