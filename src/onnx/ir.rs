//! The in-memory graph every stage works on: ONNX nodes, initializers and, once shapes are
//! inferred, the static type of every tensor.

use anyhow::{anyhow, bail, Result};
use indexmap::IndexMap;
use ndarray::{ArrayD, IxDyn};
use std::collections::{BTreeMap, HashMap};

/// Element types a gradient program uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
    I64,
    I32,
    Bool,
}

impl DType {
    /// ONNX `TensorProto.DataType` code.
    pub fn onnx_code(self) -> i32 {
        match self {
            DType::F32 => 1,
            DType::I32 => 6,
            DType::I64 => 7,
            DType::Bool => 9,
            DType::F64 => 11,
        }
    }

    /// The numpy name of the element type.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::Bool => "bool",
        }
    }

    pub fn from_onnx(code: i32) -> Result<DType> {
        Ok(match code {
            1 => DType::F32,
            6 => DType::I32,
            7 => DType::I64,
            9 => DType::Bool,
            11 => DType::F64,
            other => bail!("unsupported ONNX element type {other} (only float, double, int32, int64 and bool are handled)"),
        })
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// Bytes of one element.
    pub fn width(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::Bool => 1,
        }
    }
}

/// A constant tensor (an initializer, a folded constant, or a value bound to an input).
#[derive(Clone, Debug, PartialEq)]
pub enum Tensor {
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    I64(ArrayD<i64>),
    I32(ArrayD<i32>),
    Bool(ArrayD<bool>),
}

impl Tensor {
    pub fn dtype(&self) -> DType {
        match self {
            Tensor::F32(_) => DType::F32,
            Tensor::F64(_) => DType::F64,
            Tensor::I64(_) => DType::I64,
            Tensor::I32(_) => DType::I32,
            Tensor::Bool(_) => DType::Bool,
        }
    }

    pub fn shape(&self) -> &[usize] {
        match self {
            Tensor::F32(a) => a.shape(),
            Tensor::F64(a) => a.shape(),
            Tensor::I64(a) => a.shape(),
            Tensor::I32(a) => a.shape(),
            Tensor::Bool(a) => a.shape(),
        }
    }

    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn info(&self) -> TypeInfo {
        TypeInfo::new(self.dtype(), self.shape().to_vec())
    }

    /// A scalar (rank 0) of the given float or integer type.
    pub fn scalar(dtype: DType, v: f64) -> Tensor {
        Tensor::full(dtype, &[], v)
    }

    pub fn full(dtype: DType, shape: &[usize], v: f64) -> Tensor {
        let s = IxDyn(shape);
        match dtype {
            DType::F32 => Tensor::F32(ArrayD::from_elem(s, v as f32)),
            DType::F64 => Tensor::F64(ArrayD::from_elem(s, v)),
            DType::I64 => Tensor::I64(ArrayD::from_elem(s, v as i64)),
            DType::I32 => Tensor::I32(ArrayD::from_elem(s, v as i32)),
            DType::Bool => Tensor::Bool(ArrayD::from_elem(s, v != 0.0)),
        }
    }

    pub fn from_i64(values: &[i64]) -> Tensor {
        Tensor::I64(ArrayD::from_shape_vec(IxDyn(&[values.len()]), values.to_vec()).unwrap())
    }

    /// Values as f64 (any element type), in logical (row-major) order.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            Tensor::F32(a) => a.iter().map(|&x| x as f64).collect(),
            Tensor::F64(a) => a.iter().copied().collect(),
            Tensor::I64(a) => a.iter().map(|&x| x as f64).collect(),
            Tensor::I32(a) => a.iter().map(|&x| x as f64).collect(),
            Tensor::Bool(a) => a.iter().map(|&x| x as u8 as f64).collect(),
        }
    }

    /// Values as i64 (integer or boolean tensors; floats are truncated).
    pub fn to_i64_vec(&self) -> Vec<i64> {
        match self {
            Tensor::I64(a) => a.iter().copied().collect(),
            Tensor::I32(a) => a.iter().map(|&x| x as i64).collect(),
            Tensor::Bool(a) => a.iter().map(|&x| x as i64).collect(),
            Tensor::F32(a) => a.iter().map(|&x| x as i64).collect(),
            Tensor::F64(a) => a.iter().map(|&x| x as i64).collect(),
        }
    }

    /// The same values as an f64 array.
    pub fn to_f64_array(&self) -> ArrayD<f64> {
        ArrayD::from_shape_vec(IxDyn(self.shape()), self.to_f64_vec()).unwrap()
    }

    /// Converts to another element type (as ONNX `Cast` would).
    pub fn cast(&self, to: DType) -> Tensor {
        if self.dtype() == to {
            return self.clone();
        }
        let shape = IxDyn(self.shape());
        match to {
            DType::F32 => Tensor::F32(
                ArrayD::from_shape_vec(shape, self.to_f64_vec().iter().map(|&x| x as f32).collect()).unwrap(),
            ),
            DType::F64 => Tensor::F64(self.to_f64_array()),
            DType::I64 => Tensor::I64(ArrayD::from_shape_vec(shape, self.to_i64_vec()).unwrap()),
            DType::I32 => Tensor::I32(
                ArrayD::from_shape_vec(shape, self.to_i64_vec().iter().map(|&x| x as i32).collect()).unwrap(),
            ),
            DType::Bool => Tensor::Bool(
                ArrayD::from_shape_vec(shape, self.to_f64_vec().iter().map(|&x| x != 0.0).collect()).unwrap(),
            ),
        }
    }

    /// Builds a tensor of `dtype` from f64 values (used by constant folding).
    pub fn from_f64(dtype: DType, shape: &[usize], values: Vec<f64>) -> Tensor {
        Tensor::F64(ArrayD::from_shape_vec(IxDyn(shape), values).expect("shape and values agree")).cast(dtype)
    }

    pub fn map_float(&self, f: impl Fn(f64) -> f64) -> Tensor {
        match self {
            Tensor::F32(a) => Tensor::F32(a.mapv(|x| f(x as f64) as f32)),
            Tensor::F64(a) => Tensor::F64(a.mapv(f)),
            other => other.clone(),
        }
    }
}

/// The static type of a tensor: element type and shape (every dimension known).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeInfo {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl TypeInfo {
    pub fn new(dtype: DType, shape: Vec<usize>) -> TypeInfo {
        TypeInfo { dtype, shape }
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    /// Number of elements (saturating: a hostile file's dimensions must not wrap around).
    pub fn numel(&self) -> usize {
        self.shape.iter().fold(1usize, |a, &d| a.saturating_mul(d))
    }

    pub fn bytes(&self) -> u128 {
        crate::memory::elements(&self.shape).saturating_mul(self.dtype.width() as u128)
    }
}

/// An ONNX attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Int(i64),
    Float(f32),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    Str(String),
    Tensor(Tensor),
}

/// One ONNX node. An empty input name means "optional input not given".
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub name: String,
    pub op: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attrs: BTreeMap<String, Attr>,
}

impl Node {
    pub fn new(name: impl Into<String>, op: impl Into<String>, inputs: Vec<String>, outputs: Vec<String>) -> Node {
        Node { name: name.into(), op: op.into(), inputs, outputs, attrs: BTreeMap::new() }
    }

    pub fn with_attr(mut self, key: &str, value: Attr) -> Node {
        self.attrs.insert(key.to_string(), value);
        self
    }

    /// The i-th input if present (non-empty name).
    pub fn input(&self, i: usize) -> Option<&str> {
        self.inputs.get(i).map(|s| s.as_str()).filter(|s| !s.is_empty())
    }

    pub fn int(&self, key: &str, default: i64) -> i64 {
        match self.attrs.get(key) {
            Some(Attr::Int(v)) => *v,
            _ => default,
        }
    }

    pub fn float(&self, key: &str, default: f32) -> f32 {
        match self.attrs.get(key) {
            Some(Attr::Float(v)) => *v,
            Some(Attr::Int(v)) => *v as f32,
            _ => default,
        }
    }

    pub fn ints(&self, key: &str) -> Option<Vec<i64>> {
        match self.attrs.get(key) {
            Some(Attr::Ints(v)) => Some(v.clone()),
            Some(Attr::Int(v)) => Some(vec![*v]),
            _ => None,
        }
    }

    pub fn string(&self, key: &str) -> Option<&str> {
        match self.attrs.get(key) {
            Some(Attr::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// "node 'NAME' (OP)" for error messages.
    pub fn describe(&self) -> String {
        format!("node '{}' ({})", self.name, self.op)
    }
}

/// A whole ONNX graph. Nodes are kept in topological order.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub name: String,
    pub nodes: Vec<Node>,
    /// Values fed at run time (initializers are not listed here).
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub initializers: IndexMap<String, Tensor>,
    /// Static type of every tensor, filled by shape inference.
    pub types: HashMap<String, TypeInfo>,
    /// The ai.onnx opset the graph is written in.
    pub opset: i64,
    /// Where the graph came from, for error messages.
    pub source: String,
    /// Counter for fresh tensor and node names.
    pub next_id: usize,
    /// Tensors of the file that canonicalisation renamed (an Identity's output, a
    /// BatchNormalization's expanded output): file name → canonical name.
    pub aliases: HashMap<String, String>,
}

/// See [`Graph::tensor_bytes`].
const ALLOCATOR_HEADROOM: u128 = 2;

impl Graph {
    /// The bytes an engine needs to run the graph: twice the most it holds at once when it
    /// runs the nodes in order and frees each tensor after its last use (weights and inputs
    /// throughout, every intermediate from its node to its last reader, plus a
    /// convolution's unfolded input while it runs). The factor is allocator headroom:
    /// DenseNet-121's loss pass at batch 8 (light zoo, `--bn running`) peaked at 0.99 GB
    /// resident on tract and 2.0 GB on ONNX Runtime (its arena keeps freed blocks) against
    /// 1.0 GiB held at once. An estimate at the inferred shapes, not a bound; with the
    /// largest tensor's name and type.
    pub fn tensor_bytes(&self) -> (u128, Option<(&str, &TypeInfo)>) {
        let mut largest: Option<(&str, &TypeInfo)> = None;
        for (name, info) in &self.types {
            if largest.is_none_or(|(_, l)| info.bytes() > l.bytes()) {
                largest = Some((name.as_str(), info));
            }
        }
        (self.peak_bytes().saturating_mul(ALLOCATOR_HEADROOM), largest)
    }

    fn peak_bytes(&self) -> u128 {
        let bytes = |t: &str| self.types.get(t).map_or(0, TypeInfo::bytes);
        let mut last_use: HashMap<&str, usize> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            for x in n.inputs.iter().filter(|x| !x.is_empty()) {
                last_use.insert(x.as_str(), i);
            }
        }
        let kept: std::collections::HashSet<&str> = self.outputs.iter().map(String::as_str).collect();
        let mut live: u128 = self.initializers.keys().chain(&self.inputs).map(|t| bytes(t)).fold(0, u128::saturating_add);
        let mut peak = live;
        let mut allocated: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for (i, n) in self.nodes.iter().enumerate() {
            for o in n.outputs.iter().filter(|o| !o.is_empty()) {
                if allocated.insert(o.as_str()) {
                    live = live.saturating_add(bytes(o));
                }
            }
            peak = peak.max(live.saturating_add(self.workspace_bytes(n)));
            for t in n.inputs.iter().chain(&n.outputs) {
                let done = last_use.get(t.as_str()).is_none_or(|&l| l <= i);
                if done && !kept.contains(t.as_str()) && allocated.remove(t.as_str()) {
                    live = live.saturating_sub(bytes(t));
                }
            }
        }
        peak
    }

    /// A convolution's unfolded input while it runs: N × C_in × kernel area × output
    /// positions elements (nothing for 1×1 kernels, which need no unfolding).
    fn workspace_bytes(&self, n: &Node) -> u128 {
        if n.op != "Conv" {
            return 0;
        }
        let (Some(x), Some(w), Some(y)) = (n.input(0).and_then(|t| self.types.get(t)), n.input(1).and_then(|t| self.types.get(t)), n.outputs.first().and_then(|t| self.types.get(t))) else {
            return 0;
        };
        let area = crate::memory::elements(w.shape.get(2..).unwrap_or(&[]));
        if area <= 1 || x.shape.len() < 2 {
            return 0;
        }
        let positions = crate::memory::elements(y.shape.get(2..).unwrap_or(&[]));
        crate::memory::elements(&x.shape[..2]).saturating_mul(area).saturating_mul(positions).saturating_mul(x.dtype.width() as u128)
    }

    /// Fails, naming the largest tensor, when the graph's tensors at their inferred shapes
    /// are over the memory budget (before an engine allocates them).
    pub fn check_memory(&self) -> Result<()> {
        let (total, largest) = self.tensor_bytes();
        let what = match largest {
            Some((name, l)) => format!("{}: the program's tensors at this batch (largest '{name}' {:?} {:?}, {})", self.source, l.shape, l.dtype, crate::memory::human(l.bytes())),
            None => format!("{}: the program", self.source),
        };
        crate::memory::check(what, total)
    }

    pub fn info(&self, name: &str) -> Result<&TypeInfo> {
        self.types.get(name).ok_or_else(|| anyhow!("{}: no type known for tensor '{name}'", self.source))
    }

    /// The canonical name of a tensor of the file (see `aliases`).
    pub fn resolve<'a>(&'a self, name: &'a str) -> &'a str {
        self.aliases.get(name).map(String::as_str).unwrap_or(name)
    }

    pub fn shape(&self, name: &str) -> Result<&[usize]> {
        Ok(&self.info(name)?.shape)
    }

    pub fn constant(&self, name: &str) -> Option<&Tensor> {
        self.initializers.get(name)
    }

    /// Index of the node producing each tensor.
    pub fn producers(&self) -> HashMap<String, usize> {
        let mut map = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            for o in &n.outputs {
                if !o.is_empty() {
                    map.insert(o.clone(), i);
                }
            }
        }
        map
    }

    /// Number of nodes consuming each tensor (graph outputs count as a consumer).
    pub fn use_counts(&self) -> HashMap<String, usize> {
        let mut map: HashMap<String, usize> = HashMap::new();
        for n in &self.nodes {
            for i in n.inputs.iter().filter(|s| !s.is_empty()) {
                *map.entry(i.clone()).or_default() += 1;
            }
        }
        for o in &self.outputs {
            *map.entry(o.clone()).or_default() += 1;
        }
        map
    }

    /// A tensor or node name not used yet.
    pub fn fresh(&mut self, prefix: &str) -> String {
        loop {
            self.next_id += 1;
            let name = format!("{prefix}__{}", self.next_id);
            if !self.types.contains_key(&name) && !self.initializers.contains_key(&name) {
                return name;
            }
        }
    }

    /// Adds (or replaces) an initializer and records its type.
    pub fn set_initializer(&mut self, name: &str, t: Tensor) {
        self.types.insert(name.to_string(), t.info());
        self.initializers.insert(name.to_string(), t);
    }

    /// Replaces every use of tensor `from` by `to` (node inputs and graph outputs).
    pub fn rename_uses(&mut self, from: &str, to: &str) {
        for n in &mut self.nodes {
            for i in n.inputs.iter_mut() {
                if i == from {
                    *i = to.to_string();
                }
            }
        }
        for o in self.outputs.iter_mut() {
            if o == from {
                *o = to.to_string();
            }
        }
    }

    /// Drops nodes, initializers and types of tensors that no graph output depends on.
    pub fn prune(&mut self) {
        let mut live: std::collections::HashSet<String> = self.outputs.iter().cloned().collect();
        let mut keep = vec![false; self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate().rev() {
            if n.outputs.iter().any(|o| live.contains(o)) {
                keep[i] = true;
                for inp in n.inputs.iter().filter(|s| !s.is_empty()) {
                    live.insert(inp.clone());
                }
            }
        }
        let mut k = keep.into_iter();
        self.nodes.retain(|_| k.next().unwrap());
        self.initializers.retain(|name, _| live.contains(name));
        for n in &self.nodes {
            live.extend(n.outputs.iter().cloned());
        }
        live.extend(self.inputs.iter().cloned());
        self.types.retain(|name, _| live.contains(name));
    }

    /// Sorts nodes topologically (stable: keeps the file's order where it is valid).
    pub fn toposort(&mut self) -> Result<()> {
        let mut available: std::collections::HashSet<String> =
            self.inputs.iter().chain(self.initializers.keys()).cloned().collect();
        let mut pending: Vec<Node> = std::mem::take(&mut self.nodes);
        let mut sorted = Vec::with_capacity(pending.len());
        while !pending.is_empty() {
            let before = pending.len();
            let mut rest = Vec::new();
            for n in pending {
                if n.inputs.iter().all(|i| i.is_empty() || available.contains(i)) {
                    available.extend(n.outputs.iter().cloned());
                    sorted.push(n);
                } else {
                    rest.push(n);
                }
            }
            if rest.len() == before {
                let n = &rest[0];
                let missing: Vec<_> =
                    n.inputs.iter().filter(|i| !i.is_empty() && !available.contains(*i)).collect();
                bail!("{}: {} reads undefined tensor(s) {:?} (or the graph has a cycle)", self.source, n.describe(), missing);
            }
            pending = rest;
        }
        self.nodes = sorted;
        Ok(())
    }
}
