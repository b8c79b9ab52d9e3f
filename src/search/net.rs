//! A small builder for the networks of the built-in spaces: ONNX nodes appended one by one
//! to a [`Graph`], parameters initialised as PyTorch does by default (seeded), and the
//! result handed out as an in-memory [`RawModel`] or written as an ONNX file.
//!
//! Initialisation (PyTorch's defaults, drawn from one ChaCha8 stream in parameter order):
//! Conv/Linear weights Kaiming-uniform with a = √5, i.e. U(±1/√fan_in); biases U(±1/√fan_in);
//! BatchNorm scale 1, bias 0, running mean 0, running variance 1.

use crate::onnx::ir::{Attr, DType, Graph, Node, Tensor, TypeInfo};
use crate::onnx::proto::{to_model_proto, InputDecl, RawModel};
use anyhow::{Context, Result};
use ndarray::{ArrayD, IxDyn};
use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::Path;
use tract_onnx::pb;

/// Name of the data input of every generated network.
pub const INPUT: &str = "input";
/// Name of the logits output.
pub const OUTPUT: &str = "output";

pub struct Net {
    pub g: Graph,
    rng: ChaCha8Rng,
    count: usize,
    shared: HashMap<String, String>,
    sample_shape: Vec<usize>,
}

impl Net {
    /// An empty network with one float32 input of per-sample shape `sample_shape` (NCHW
    /// with a symbolic batch) and parameters drawn from `seed`.
    pub fn new(name: &str, sample_shape: &[usize], seed: u64) -> Net {
        let g = Graph { name: name.to_string(), opset: 17, source: name.to_string(), inputs: vec![INPUT.to_string()], ..Graph::default() };
        Net { g, rng: ChaCha8Rng::seed_from_u64(seed), count: 0, shared: HashMap::new(), sample_shape: sample_shape.to_vec() }
    }

    /// Appends a node; returns its (single) output.
    pub fn node(&mut self, scope: &str, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        self.node_to(scope, op, inputs, attrs, None)
    }

    /// As [`Net::node`], naming the output `out` when given.
    pub fn node_to(&mut self, scope: &str, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>, out: Option<&str>) -> String {
        self.count += 1;
        let name = format!("/{scope}/{op}_{}", self.count);
        let out = out.map(str::to_string).unwrap_or_else(|| format!("{name}_output"));
        let mut n = Node::new(name, op, inputs.iter().map(|s| s.to_string()).collect(), vec![out.clone()]);
        for (k, v) in attrs {
            n.attrs.insert(k.to_string(), v);
        }
        self.g.nodes.push(n);
        out
    }

    /// A constant produced by a `Constant` node (not an initializer, so never counted as a
    /// parameter), shared between uses with the same `key`.
    pub fn constant(&mut self, key: &str, t: Tensor) -> String {
        if let Some(name) = self.shared.get(key) {
            return name.clone();
        }
        let out = self.node(&format!("const/{key}"), "Constant", &[], vec![("value", Attr::Tensor(t))]);
        self.shared.insert(key.to_string(), out.clone());
        out
    }

    fn add_param(&mut self, name: &str, shape: &[usize], values: Vec<f32>) -> String {
        let t = Tensor::F32(ArrayD::from_shape_vec(IxDyn(shape), values).expect("shape and values agree"));
        self.g.set_initializer(name, t);
        name.to_string()
    }

    /// U(-bound, bound) values, `n` of them, from the network's stream.
    fn uniform(&mut self, n: usize, bound: f64) -> Vec<f32> {
        (0..n).map(|_| self.rng.gen_range(-bound..bound) as f32).collect()
    }

    /// Conv2d parameters: weight `[cout, cin, k, k]` (and bias `[cout]`) with PyTorch's
    /// default init, drawn now (parameter order = creation order).
    pub fn conv_params(&mut self, prefix: &str, cin: usize, cout: usize, k: usize, bias: bool) -> Vec<String> {
        let fan_in = cin * k * k;
        let bound = 1.0 / (fan_in as f64).sqrt();
        let w = self.uniform(cout * fan_in, bound);
        let mut names = vec![self.add_param(&format!("{prefix}.weight"), &[cout, cin, k, k], w)];
        if bias {
            let b = self.uniform(cout, bound);
            names.push(self.add_param(&format!("{prefix}.bias"), &[cout], b));
        }
        names
    }

    /// A Conv node (square kernel `k`) on parameters made by [`Net::conv_params`].
    pub fn conv_node(&mut self, scope: &str, x: &str, params: &[String], k: usize, stride: usize, pad: usize) -> String {
        let refs: Vec<&str> = std::iter::once(x).chain(params.iter().map(|s| s.as_str())).collect();
        let (k, s, p) = (k as i64, stride as i64, pad as i64);
        self.node(
            scope,
            "Conv",
            &refs,
            vec![
                ("dilations", Attr::Ints(vec![1, 1])),
                ("group", Attr::Int(1)),
                ("kernel_shape", Attr::Ints(vec![k, k])),
                ("pads", Attr::Ints(vec![p, p, p, p])),
                ("strides", Attr::Ints(vec![s, s])),
            ],
        )
    }

    /// Conv parameters and node at once.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(&mut self, prefix: &str, x: &str, cin: usize, cout: usize, k: usize, stride: usize, pad: usize, bias: bool) -> String {
        let params = self.conv_params(prefix, cin, cout, k, bias);
        self.conv_node(prefix, x, &params, k, stride, pad)
    }

    /// BatchNormalization inputs 1-4 over `c` channels. `Some(prefix)`: affine, with
    /// `prefix.weight/.bias/.running_mean/.running_var` initializers; `None`: affine=False,
    /// constant scale 1 and bias 0 (Constant nodes, not parameters), as PyTorch exports
    /// `BatchNorm2d(c, affine=False)`.
    pub fn bn_params(&mut self, c: usize, affine: Option<&str>) -> Vec<String> {
        match affine {
            Some(p) => vec![
                self.add_param(&format!("{p}.weight"), &[c], vec![1.0; c]),
                self.add_param(&format!("{p}.bias"), &[c], vec![0.0; c]),
                self.add_param(&format!("{p}.running_mean"), &[c], vec![0.0; c]),
                self.add_param(&format!("{p}.running_var"), &[c], vec![1.0; c]),
            ],
            None => {
                let one = self.constant(&format!("ones{c}"), Tensor::full(DType::F32, &[c], 1.0));
                let zero = self.constant(&format!("zeros{c}"), Tensor::full(DType::F32, &[c], 0.0));
                vec![one.clone(), zero.clone(), zero, one]
            }
        }
    }

    /// A BatchNormalization node in training mode (batch statistics).
    pub fn bn_node(&mut self, scope: &str, x: &str, params: &[String]) -> String {
        let refs: Vec<&str> = std::iter::once(x).chain(params.iter().map(|s| s.as_str())).collect();
        self.node(
            scope,
            "BatchNormalization",
            &refs,
            vec![("epsilon", Attr::Float(1e-5)), ("momentum", Attr::Float(0.9)), ("training_mode", Attr::Int(1))],
        )
    }

    /// BatchNorm parameters and node at once.
    pub fn batch_norm(&mut self, scope: &str, x: &str, c: usize, affine: Option<&str>) -> String {
        let params = self.bn_params(c, affine);
        self.bn_node(scope, x, &params)
    }

    pub fn relu(&mut self, scope: &str, x: &str) -> String {
        self.node(scope, "Relu", &[x], vec![])
    }

    pub fn add(&mut self, scope: &str, a: &str, b: &str) -> String {
        self.node(scope, "Add", &[a, b], vec![])
    }

    /// Sum of the tensors in order: ((a + b) + c) + ...
    pub fn sum(&mut self, scope: &str, parts: &[String]) -> String {
        let mut acc = parts[0].clone();
        for p in &parts[1..] {
            acc = self.add(scope, &acc, p);
        }
        acc
    }

    /// Global average pool, flatten, and a Linear layer (Gemm with transB) to `classes`.
    pub fn classifier(&mut self, prefix: &str, x: &str, cin: usize, classes: usize) -> String {
        let p = self.node("pool", "GlobalAveragePool", &[x], vec![]);
        let f = self.node("flatten", "Flatten", &[&p], vec![("axis", Attr::Int(1))]);
        let bound = 1.0 / (cin as f64).sqrt();
        let w = self.uniform(classes * cin, bound);
        let wn = self.add_param(&format!("{prefix}.weight"), &[classes, cin], w);
        let b = self.uniform(classes, bound);
        let bn = self.add_param(&format!("{prefix}.bias"), &[classes], b);
        let attrs = vec![("alpha", Attr::Float(1.0)), ("beta", Attr::Float(1.0)), ("transB", Attr::Int(1))];
        self.node_to(prefix, "Gemm", &[&f, &wn, &bn], attrs, Some(OUTPUT))
    }

    /// The finished graph as a model held in memory (batch dimension symbolic).
    pub fn finish(mut self, classes: usize) -> RawModel {
        self.g.outputs = vec![OUTPUT.to_string()];
        let mut shape = vec![1];
        shape.extend(&self.sample_shape);
        self.g.types.insert(INPUT.to_string(), TypeInfo::new(DType::F32, shape));
        self.g.types.insert(OUTPUT.to_string(), TypeInfo::new(DType::F32, vec![1, classes]));
        let mut dims = vec![None];
        dims.extend(self.sample_shape.iter().map(|&d| Some(d)));
        let mut dim_names = vec!["N".to_string()];
        dim_names.extend(self.sample_shape.iter().map(|_| String::new()));
        let decl = InputDecl { name: INPUT.to_string(), dtype: DType::F32, dims, dim_names };
        RawModel { graph: self.g, input_decls: vec![decl] }
    }
}

/// Number of parameters of a generated model: what zerocost's `params` proxy counts
/// (Conv/Gemm weights and biases, affine BatchNorm scale and bias).
pub fn param_count(raw: &RawModel) -> usize {
    crate::onnx::canon::parameter_names(&raw.graph).iter().map(|n| raw.graph.initializers[n].len()).sum()
}

/// Writes a generated model as ONNX (opset 17), with the batch dimension of the input
/// and output symbolic ("N").
pub fn write_onnx(raw: &RawModel, path: &Path) -> Result<()> {
    let mut proto = to_model_proto(&raw.graph);
    if let Some(g) = proto.graph.as_mut() {
        for vi in g.input.iter_mut().chain(g.output.iter_mut()) {
            if let Some(pb::type_proto::Value::TensorType(tt)) = vi.r#type.as_mut().and_then(|t| t.value.as_mut()) {
                if let Some(d) = tt.shape.as_mut().and_then(|s| s.dim.first_mut()) {
                    d.value = Some(pb::tensor_shape_proto::dimension::Value::DimParam("N".into()));
                }
            }
        }
    }
    std::fs::write(path, proto.encode_to_vec()).with_context(|| format!("cannot write {}", path.display()))
}
