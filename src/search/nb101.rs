//! NAS-Bench-101: cell specs (upper-triangular adjacency + ops), pruning, validity, the
//! benchmark's graph hash, enumeration, one-edit mutations, and the network as ONNX.
//!
//! Follows the original `nasbench` code: `ModelSpec` pruning (vertices not on an
//! input→output path are dropped), `api._check_spec` validity (≤ 7 vertices and ≤ 9 edges
//! after pruning), `graph_util.hash_module` (iterated MD5 label hashing; the op labels are
//! -1 input, 0 conv3x3-bn-relu, 1 conv1x1-bn-relu, 2 maxpool3x3, -2 output) and
//! `model_builder.build_module` / `compute_vertex_channels` for the network.

use super::net::{Net, INPUT};
use crate::onnx::ir::{Attr, Tensor};
use crate::onnx::proto::RawModel;
use anyhow::{anyhow, bail, Result};
use md5::{Digest, Md5};
use rand::Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub const MAX_VERTICES: usize = 7;
pub const MAX_EDGES: usize = 9;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Input,
    Conv3x3,
    Conv1x1,
    MaxPool3x3,
    Output,
}

/// The interior ops, in NAS-Bench-101's `available_ops` order (their hash labels 0, 1, 2).
pub const INTERIOR_OPS: [Op; 3] = [Op::Conv3x3, Op::Conv1x1, Op::MaxPool3x3];

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv3x3 => "conv3x3-bn-relu",
            Op::Conv1x1 => "conv1x1-bn-relu",
            Op::MaxPool3x3 => "maxpool3x3",
            Op::Output => "output",
        }
    }

    pub fn parse(s: &str) -> Result<Op> {
        Ok(match s.trim() {
            "input" => Op::Input,
            "output" => Op::Output,
            "conv3x3-bn-relu" | "conv3x3" => Op::Conv3x3,
            "conv1x1-bn-relu" | "conv1x1" => Op::Conv1x1,
            "maxpool3x3" => Op::MaxPool3x3,
            other => bail!("unknown NB101 op '{other}' (input, conv3x3-bn-relu, conv1x1-bn-relu, maxpool3x3, output)"),
        })
    }

    fn label(self) -> i64 {
        match self {
            Op::Input => -1,
            Op::Conv3x3 => 0,
            Op::Conv1x1 => 1,
            Op::MaxPool3x3 => 2,
            Op::Output => -2,
        }
    }
}

/// A cell: `matrix[i][j]` = edge i→j (upper triangular), `ops[0]` input, last output.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Spec {
    pub matrix: Vec<Vec<u8>>,
    pub ops: Vec<Op>,
}

impl Spec {
    /// Checks the shape: square, strictly upper triangular 0/1, input first, output last,
    /// interior ops among the three.
    pub fn new(matrix: Vec<Vec<u8>>, ops: Vec<Op>) -> Result<Spec> {
        let n = matrix.len();
        if n < 2 {
            bail!("an NB101 cell needs at least the input and output vertices");
        }
        if ops.len() != n {
            bail!("NB101 cell: {} ops for a {n}×{n} matrix", ops.len());
        }
        for (i, row) in matrix.iter().enumerate() {
            if row.len() != n {
                bail!("NB101 cell: the matrix is not square");
            }
            for (j, &v) in row.iter().enumerate() {
                if v > 1 {
                    bail!("NB101 cell: matrix entries must be 0 or 1");
                }
                if v == 1 && j <= i {
                    bail!("NB101 cell: the matrix must be strictly upper triangular (edge {i}→{j})");
                }
            }
        }
        if ops[0] != Op::Input || ops[n - 1] != Op::Output {
            bail!("NB101 cell: the first op must be 'input' and the last 'output'");
        }
        if ops[1..n - 1].iter().any(|o| matches!(o, Op::Input | Op::Output)) {
            bail!("NB101 cell: interior ops must be conv3x3-bn-relu, conv1x1-bn-relu or maxpool3x3");
        }
        Ok(Spec { matrix, ops })
    }

    /// Parses `{"matrix": [[...]], "ops": [...]}` (JSON) or NASLib's flat tuple of 49
    /// matrix entries + 7 op indices into [input, output, maxpool3x3, conv1x1-bn-relu,
    /// conv3x3-bn-relu].
    pub fn parse(s: &str) -> Result<Spec> {
        let t = s.trim();
        if t.starts_with('(') {
            return Spec::from_naslib(t);
        }
        let v: Value = serde_json::from_str(t).map_err(|e| anyhow!("NB101 cell: expected JSON {{\"matrix\": [[..]], \"ops\": [..]}}: {e}"))?;
        Spec::from_json(&v)
    }

    pub fn from_json(v: &Value) -> Result<Spec> {
        let m = v.get("matrix").and_then(Value::as_array).ok_or_else(|| anyhow!("NB101 cell: no 'matrix' array"))?;
        let matrix: Vec<Vec<u8>> = m
            .iter()
            .map(|r| {
                r.as_array()
                    .ok_or_else(|| anyhow!("NB101 cell: matrix rows must be arrays"))?
                    .iter()
                    .map(|x| x.as_u64().or_else(|| x.as_bool().map(u64::from)).map(|x| x as u8).ok_or_else(|| anyhow!("NB101 cell: matrix entries must be 0 or 1")))
                    .collect::<Result<Vec<u8>>>()
            })
            .collect::<Result<_>>()?;
        let ops = v
            .get("ops")
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow!("NB101 cell: no 'ops' array"))?
            .iter()
            .map(|o| Op::parse(o.as_str().unwrap_or("?")))
            .collect::<Result<Vec<_>>>()?;
        Spec::new(matrix, ops)
    }

    pub fn from_naslib(s: &str) -> Result<Spec> {
        let t = s.trim().trim_start_matches('(').trim_end_matches(')');
        let v: Vec<usize> = t.split(',').map(|x| x.trim().parse::<usize>()).collect::<Result<_, _>>().map_err(|_| anyhow!("not a NASLib NB101 tuple"))?;
        if v.len() != 56 {
            bail!("not a NASLib NB101 tuple (49 + 7 numbers expected, got {})", v.len());
        }
        let matrix = (0..7).map(|i| (0..7).map(|j| v[i * 7 + j] as u8).collect()).collect();
        const NASLIB: [Op; 5] = [Op::Input, Op::Output, Op::MaxPool3x3, Op::Conv1x1, Op::Conv3x3];
        let ops = v[49..].iter().map(|&k| NASLIB.get(k).copied().ok_or_else(|| anyhow!("bad NASLib op index {k}"))).collect::<Result<_>>()?;
        Spec::new(matrix, ops)
    }

    pub fn to_json(&self) -> Value {
        json!({"matrix": self.matrix, "ops": self.ops.iter().map(|o| o.name()).collect::<Vec<_>>()})
    }

    pub fn num_vertices(&self) -> usize {
        self.ops.len()
    }

    pub fn num_edges(&self) -> usize {
        self.matrix.iter().flatten().map(|&v| v as usize).sum()
    }

    /// The spec without the vertices that are not on an input→output path; `None` when the
    /// input does not reach the output.
    pub fn pruned(&self) -> Option<Spec> {
        let n = self.num_vertices();
        let mut from_in = vec![false; n];
        from_in[0] = true;
        for i in 0..n {
            if from_in[i] {
                for j in i + 1..n {
                    if self.matrix[i][j] == 1 {
                        from_in[j] = true;
                    }
                }
            }
        }
        let mut to_out = vec![false; n];
        to_out[n - 1] = true;
        for j in (0..n).rev() {
            if to_out[j] {
                for i in 0..j {
                    if self.matrix[i][j] == 1 {
                        to_out[i] = true;
                    }
                }
            }
        }
        let keep: Vec<usize> = (0..n).filter(|&v| from_in[v] && to_out[v]).collect();
        if keep.len() < 2 || !keep.contains(&0) || !keep.contains(&(n - 1)) {
            return None;
        }
        let matrix = keep.iter().map(|&i| keep.iter().map(|&j| self.matrix[i][j]).collect()).collect();
        let ops = keep.iter().map(|&v| self.ops[v]).collect();
        Some(Spec { matrix, ops })
    }

    /// NAS-Bench-101's validity: the input reaches the output, and the pruned cell has at
    /// most 7 vertices and 9 edges.
    pub fn is_valid(&self) -> bool {
        match self.pruned() {
            Some(p) => p.num_vertices() <= MAX_VERTICES && p.num_edges() <= MAX_EDGES,
            None => false,
        }
    }

    /// The benchmark's hash of the pruned cell (`ModelSpec.hash_spec`); `None` if invalid.
    pub fn hash(&self) -> Option<String> {
        let p = self.pruned()?;
        let labels: Vec<i64> = p.ops.iter().map(|o| o.label()).collect();
        Some(hash_module(&p.matrix, &labels))
    }

    /// Every valid cell one edit away (one edge flipped or one interior op changed), with a
    /// hash different from this one, one per hash.
    pub fn neighbours(&self) -> Vec<Spec> {
        let own = self.hash();
        let n = self.num_vertices();
        let mut seen = BTreeMap::new();
        let mut consider = |s: Spec| {
            if s.is_valid() {
                let h = s.hash().unwrap();
                if Some(&h) != own.as_ref() {
                    seen.entry(h).or_insert(s);
                }
            }
        };
        for i in 0..n {
            for j in i + 1..n {
                let mut s = self.clone();
                s.matrix[i][j] ^= 1;
                consider(s);
            }
        }
        for v in 1..n - 1 {
            for &op in &INTERIOR_OPS {
                if op != self.ops[v] {
                    let mut s = self.clone();
                    s.ops[v] = op;
                    consider(s);
                }
            }
        }
        seen.into_values().collect()
    }

    /// A uniformly random valid 7-vertex cell (NAS-Bench-101's `random_spec`: each upper
    /// entry 0/1 with probability ½, random interior ops, retried until valid).
    pub fn random(rng: &mut impl Rng) -> Spec {
        loop {
            let matrix: Vec<Vec<u8>> = (0..MAX_VERTICES).map(|i| (0..MAX_VERTICES).map(|j| if j > i { rng.gen_range(0..2) } else { 0 }).collect()).collect();
            let mut ops = vec![Op::Input];
            ops.extend((1..MAX_VERTICES - 1).map(|_| INTERIOR_OPS[rng.gen_range(0..3)]));
            ops.push(Op::Output);
            let s = Spec { matrix, ops };
            if s.is_valid() {
                return s;
            }
        }
    }
}

fn md5_hex(s: &str) -> String {
    let d = Md5::digest(s.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// `graph_util.hash_module` of NAS-Bench-101: each vertex starts from the MD5 of its
/// Python tuple string `(out_degree, in_degree, label)`; for `n` rounds a vertex becomes
/// the MD5 of its sorted in-neighbour hashes, `|`, sorted out-neighbour hashes, `|`, its own
/// hash; the fingerprint is the MD5 of the Python list string of the sorted hashes.
pub fn hash_module(matrix: &[Vec<u8>], labels: &[i64]) -> String {
    let n = matrix.len();
    let in_deg: Vec<usize> = (0..n).map(|j| (0..n).map(|i| matrix[i][j] as usize).sum()).collect();
    let out_deg: Vec<usize> = (0..n).map(|i| matrix[i].iter().map(|&v| v as usize).sum()).collect();
    let mut hashes: Vec<String> = (0..n).map(|v| md5_hex(&format!("({}, {}, {})", out_deg[v], in_deg[v], labels[v]))).collect();
    for _ in 0..n {
        let mut next = Vec::with_capacity(n);
        for v in 0..n {
            let mut ins: Vec<&str> = (0..n).filter(|&w| matrix[w][v] == 1).map(|w| hashes[w].as_str()).collect();
            let mut outs: Vec<&str> = (0..n).filter(|&w| matrix[v][w] == 1).map(|w| hashes[w].as_str()).collect();
            ins.sort();
            outs.sort();
            next.push(md5_hex(&format!("{}|{}|{}", ins.concat(), outs.concat(), hashes[v])));
        }
        hashes = next;
    }
    hashes.sort();
    let list: Vec<String> = hashes.iter().map(|h| format!("'{h}'")).collect();
    md5_hex(&format!("[{}]", list.join(", ")))
}

/// Every distinct cell (by hash) with at most `max_vertices` vertices and `max_edges`
/// edges, as NAS-Bench-101's `generate_graphs.py` counts them (full DAGs — every vertex on
/// an input→output path — times every labelling of the interior vertices). 423,624 for
/// 7 vertices and 9 edges.
pub fn enumerate(max_vertices: usize, max_edges: usize) -> BTreeMap<String, Spec> {
    let mut out = BTreeMap::new();
    for n in 2..=max_vertices {
        let pairs: Vec<(usize, usize)> = (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))).collect();
        for bits in 0u64..(1u64 << pairs.len()) {
            if bits.count_ones() as usize > max_edges {
                continue;
            }
            let mut matrix = vec![vec![0u8; n]; n];
            for (k, &(i, j)) in pairs.iter().enumerate() {
                if bits >> k & 1 == 1 {
                    matrix[i][j] = 1;
                }
            }
            // full DAG: every vertex but the output has an out-edge, every vertex but the
            // input an in-edge
            if (0..n - 1).any(|i| matrix[i].iter().all(|&v| v == 0)) || (1..n).any(|j| (0..n).all(|i| matrix[i][j] == 0)) {
                continue;
            }
            let interior = n - 2;
            for code in 0..3usize.pow(interior as u32) {
                let mut ops = vec![Op::Input];
                let mut c = code;
                for _ in 0..interior {
                    ops.push(INTERIOR_OPS[c % 3]);
                    c /= 3;
                }
                ops.push(Op::Output);
                let labels: Vec<i64> = ops.iter().map(|o| o.label()).collect();
                let h = hash_module(&matrix, &labels);
                out.entry(h).or_insert_with(|| Spec { matrix: matrix.clone(), ops });
            }
        }
    }
    out
}

/// `compute_vertex_channels` of NAS-Bench-101's model builder: vertices feeding the output
/// split its channels (the remainder going to the first ones); others take the largest
/// channel count of their successors.
pub fn vertex_channels(cin: usize, cout: usize, m: &[Vec<u8>]) -> Vec<usize> {
    let n = m.len();
    let mut ch = vec![0usize; n];
    ch[0] = cin;
    ch[n - 1] = cout;
    if n == 2 {
        return ch;
    }
    let in_degree_out: usize = (1..n).map(|i| m[i][n - 1] as usize).sum();
    let interior = cout / in_degree_out;
    let mut correction = cout % in_degree_out;
    for v in 1..n - 1 {
        if m[v][n - 1] == 1 {
            ch[v] = interior;
            if correction > 0 {
                ch[v] += 1;
                correction -= 1;
            }
        }
    }
    for v in (1..n.saturating_sub(2)).rev() {
        if m[v][n - 1] == 0 {
            for dst in v + 1..n - 1 {
                if m[v][dst] == 1 {
                    ch[v] = ch[v].max(ch[dst]);
                }
            }
        }
    }
    ch
}

/// Network options of NB101.
#[derive(Clone, Debug, PartialEq)]
pub struct Nb101Options {
    /// Output channels of the stem (128 in NAS-Bench-101); each stack doubles them.
    pub channels: usize,
    pub stacks: usize,
    pub cells_per_stack: usize,
    pub num_classes: usize,
    pub seed: u64,
    pub image_size: usize,
}

impl Default for Nb101Options {
    fn default() -> Self {
        Nb101Options { channels: 128, stacks: 3, cells_per_stack: 3, num_classes: 10, seed: 0, image_size: 32 }
    }
}

/// The network of a (valid) cell: stem Conv3x3-BN-ReLU to C channels; `stacks` stacks of
/// `cells_per_stack` cells, a 2×2 max-pool and channel doubling before every stack but the
/// first; global average pool; Linear. Inside a cell (pruned first), each vertex sums its
/// predecessors' outputs (truncated to its channel count) and a 1×1 Conv-BN-ReLU
/// projection of the cell input when connected to it, then applies its op; the output
/// concatenates the vertices feeding it (+ a projection of the input when connected).
/// Convs have no bias; BatchNorm is affine (eps 1e-5).
pub fn build(spec: &Spec, o: &Nb101Options) -> Result<RawModel> {
    let p = spec.pruned().ok_or_else(|| anyhow!("NB101 cell: the input is not connected to the output"))?;
    if !spec.is_valid() {
        bail!("NB101 cell: more than {MAX_VERTICES} vertices or {MAX_EDGES} edges after pruning");
    }
    if o.channels == 0 || o.num_classes == 0 {
        bail!("channels and num_classes must be positive");
    }
    let mut net = Net::new("nb101", &[3, o.image_size, o.image_size], o.seed);
    let mut x = conv_bn_relu(&mut net, "stem", INPUT, 3, o.channels, 3);
    let mut cin = o.channels;
    let mut c = o.channels;
    for s in 0..o.stacks {
        if s > 0 {
            x = net.node(&format!("stack{s}/downsample"), "MaxPool", &[&x], vec![
                ("kernel_shape", Attr::Ints(vec![2, 2])),
                ("pads", Attr::Ints(vec![0, 0, 0, 0])),
                ("strides", Attr::Ints(vec![2, 2])),
            ]);
            c *= 2;
        }
        for m in 0..o.cells_per_stack {
            x = cell(&mut net, &format!("stack{s}.cell{m}"), &x, &p, cin, c);
            cin = c;
        }
    }
    net.classifier("classifier", &x, c, o.num_classes);
    Ok(net.finish(o.num_classes))
}

fn conv_bn_relu(net: &mut Net, p: &str, x: &str, cin: usize, cout: usize, k: usize) -> String {
    let y = net.conv(&format!("{p}.conv"), x, cin, cout, k, 1, (k - 1) / 2, false);
    let y = net.batch_norm(p, &y, cout, Some(&format!("{p}.bn")));
    net.relu(p, &y)
}

fn cell(net: &mut Net, p: &str, x: &str, spec: &Spec, cin: usize, cout: usize) -> String {
    let m = &spec.matrix;
    let n = spec.num_vertices();
    let ch = vertex_channels(cin, cout, m);
    let mut tensors = vec![x.to_string()];
    let mut concat_in = Vec::new();
    for t in 1..n - 1 {
        let mut add_in = Vec::new();
        for src in 1..t {
            if m[src][t] == 1 {
                add_in.push(truncate(net, &format!("{p}/vertex{t}"), &tensors[src], ch[src], ch[t]));
            }
        }
        if m[0][t] == 1 {
            add_in.push(conv_bn_relu(net, &format!("{p}.proj{t}"), x, cin, ch[t], 1));
        }
        let vin = net.sum(&format!("{p}/vertex{t}"), &add_in);
        let v = match spec.ops[t] {
            Op::Conv3x3 => conv_bn_relu(net, &format!("{p}.vertex{t}"), &vin, ch[t], ch[t], 3),
            Op::Conv1x1 => conv_bn_relu(net, &format!("{p}.vertex{t}"), &vin, ch[t], ch[t], 1),
            Op::MaxPool3x3 => net.node(&format!("{p}/vertex{t}"), "MaxPool", &[&vin], vec![
                ("kernel_shape", Attr::Ints(vec![3, 3])),
                ("pads", Attr::Ints(vec![1, 1, 1, 1])),
                ("strides", Attr::Ints(vec![1, 1])),
            ]),
            Op::Input | Op::Output => unreachable!(),
        };
        tensors.push(v);
        if m[t][n - 1] == 1 {
            concat_in.push(tensors[t].clone());
        }
    }
    if concat_in.is_empty() {
        return conv_bn_relu(net, &format!("{p}.proj{}", n - 1), x, cin, cout, 1);
    }
    let mut out = if concat_in.len() == 1 {
        concat_in[0].clone()
    } else {
        let refs: Vec<&str> = concat_in.iter().map(|s| s.as_str()).collect();
        net.node(&format!("{p}/output"), "Concat", &refs, vec![("axis", Attr::Int(1))])
    };
    if m[0][n - 1] == 1 {
        let pr = conv_bn_relu(net, &format!("{p}.proj{}", n - 1), x, cin, cout, 1);
        out = net.add(&format!("{p}/output"), &out, &pr);
    }
    out
}

/// The first `c` channels of `x` (which has `have` ≥ `c`).
fn truncate(net: &mut Net, scope: &str, x: &str, have: usize, c: usize) -> String {
    if have == c {
        return x.to_string();
    }
    let starts = net.constant("i64_0", Tensor::from_i64(&[0]));
    let ends = net.constant(&format!("i64_{c}"), Tensor::from_i64(&[c as i64]));
    let axes = net.constant("i64_1", Tensor::from_i64(&[1]));
    net.node(scope, "Slice", &[x, &starts, &ends, &axes], vec![])
}
