//! NAS-Bench-201: cells, their strings, enumeration, isomorphism classes, one-edit
//! mutations, and the network of a cell generated as ONNX.
//!
//! A cell is a DAG on 4 nodes; each of the 6 edges j→i (j < i) carries one of 5 ops. Its
//! string is `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|` (node 1, node 2, node 3; `op~j` is the
//! edge from node j). Edges are indexed in that order: (1←0), (2←0), (2←1), (3←0), (3←1),
//! (3←2); a cell's index in 0..15625 reads its ops (indices into [`OPS`]) as base-5 digits,
//! first edge most significant.

use super::net::Net;
use crate::onnx::ir::{Attr, DType, Tensor};
use crate::onnx::proto::RawModel;
use anyhow::{anyhow, bail, Result};
use std::fmt;
use std::str::FromStr;

/// The operations, in NAS-Bench-201's order.
pub const OPS: [&str; 5] = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"];
/// (to, from) of each edge, in string order.
pub const EDGES: [(usize, usize); 6] = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)];
/// Number of cells.
pub const NUM_CELLS: usize = 15_625;

/// One NAS-Bench-201 cell: the op index of each edge, in [`EDGES`] order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cell(pub [u8; 6]);

impl Cell {
    /// The cell with index `i` (0..15625).
    pub fn from_index(mut i: usize) -> Cell {
        assert!(i < NUM_CELLS, "NB201 cell index {i} out of range");
        let mut ops = [0u8; 6];
        for k in (0..6).rev() {
            ops[k] = (i % 5) as u8;
            i /= 5;
        }
        Cell(ops)
    }

    pub fn index(&self) -> usize {
        self.0.iter().fold(0, |acc, &o| acc * 5 + o as usize)
    }

    /// Every cell, in index order.
    pub fn all() -> impl Iterator<Item = Cell> {
        (0..NUM_CELLS).map(Cell::from_index)
    }

    pub fn op(&self, edge: usize) -> &'static str {
        OPS[self.0[edge] as usize]
    }

    /// Every cell that differs in exactly one edge (24 of them).
    pub fn neighbours(&self) -> Vec<Cell> {
        let mut out = Vec::with_capacity(24);
        for e in 0..6 {
            for o in 0..OPS.len() as u8 {
                if o != self.0[e] {
                    let mut c = *self;
                    c.0[e] = o;
                    out.push(c);
                }
            }
        }
        out
    }

    /// NAS-Bench-201's isomorphism key (`Structure.to_unique_str(consider_zero=True)` of the
    /// reference code): per node, the sorted `+`-join of its inputs' expressions, where a
    /// `none` edge (or an edge from a node that is exactly zero) is `#`, `skip_connect`
    /// passes its input's expression and any other op is `(input)@op`. Cells with the same
    /// key compute the same function up to the order of summation; 6,466 classes.
    pub fn unique_key(&self) -> String {
        let mut nodes: Vec<String> = vec!["0".to_string()];
        let mut e = 0;
        for i in 1..4 {
            let mut cur: Vec<String> = Vec::new();
            for j in 0..i {
                let op = self.op(e);
                e += 1;
                let x = if op == "none" || nodes[j] == "#" {
                    "#".to_string()
                } else if op == "skip_connect" {
                    nodes[j].clone()
                } else {
                    format!("({})@{op}", nodes[j])
                };
                cur.push(x);
            }
            cur.sort();
            nodes.push(cur.join("+"));
        }
        nodes.pop().unwrap()
    }

    /// Reads NASLib's tuple form "(e0, e1, e2, e3, e4, e5)" with op indices into
    /// [skip_connect, none, nor_conv_3x3, nor_conv_1x1, avg_pool_3x3] on the edges
    /// (1,2),(1,3),(1,4),(2,3),(2,4),(3,4) — i.e. our edges 0, 1, 3, 2, 4, 5.
    pub fn from_naslib(s: &str) -> Result<Cell> {
        let t = s.trim().trim_start_matches(['(', '[']).trim_end_matches([')', ']']);
        let v: Vec<usize> = t.split(',').map(|x| x.trim().parse::<usize>()).collect::<Result<_, _>>().map_err(|_| anyhow!("not a NASLib NB201 tuple: '{s}'"))?;
        if v.len() != 6 || v.iter().any(|&x| x > 4) {
            bail!("not a NASLib NB201 tuple: '{s}'");
        }
        const NASLIB: [usize; 5] = [1, 0, 3, 2, 4]; // NASLib op index -> ours
        let e = |k: usize| NASLIB[v[k]] as u8;
        Ok(Cell([e(0), e(1), e(3), e(2), e(4), e(5)]))
    }

    /// Parses the cell string (any order of the edges within a node; whitespace ignored),
    /// or NASLib's tuple form.
    pub fn parse(s: &str) -> Result<Cell> {
        let s = s.trim();
        if s.starts_with('(') || s.starts_with('[') {
            return Cell::from_naslib(s);
        }
        let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let parts: Vec<&str> = compact.split('+').collect();
        if parts.len() != 3 {
            bail!("NB201 cell '{s}' must have 3 nodes separated by '+' (e.g. |nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|)");
        }
        let mut ops = [255u8; 6];
        for (k, part) in parts.iter().enumerate() {
            let i = k + 1;
            if !part.starts_with('|') || !part.ends_with('|') {
                bail!("NB201 cell '{s}': node {i} '{part}' must be written |op~j|...|");
            }
            let items: Vec<&str> = part.split('|').filter(|t| !t.is_empty()).collect();
            if items.len() != i {
                bail!("NB201 cell '{s}': node {i} needs {i} input(s), found {}", items.len());
            }
            for it in items {
                let (op, j) = it.split_once('~').ok_or_else(|| anyhow!("NB201 cell '{s}': '{it}' is not op~j"))?;
                let j: usize = j.parse().map_err(|_| anyhow!("NB201 cell '{s}': bad input index in '{it}'"))?;
                if j >= i {
                    bail!("NB201 cell '{s}': node {i} cannot read node {j}");
                }
                let o = OPS.iter().position(|x| *x == op).ok_or_else(|| anyhow!("NB201 cell '{s}': unknown op '{op}' (known: {})", OPS.join(", ")))?;
                let e = EDGES.iter().position(|&(to, from)| to == i && from == j).unwrap();
                if ops[e] != 255 {
                    bail!("NB201 cell '{s}': edge {j}→{i} given twice");
                }
                ops[e] = o as u8;
            }
        }
        Ok(Cell(ops))
    }
}

impl fmt::Display for Cell {
    /// The canonical string `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let mut e = 0;
        for i in 1..4 {
            if i > 1 {
                write!(f, "+")?;
            }
            write!(f, "|")?;
            for j in 0..i {
                write!(f, "{}~{j}|", self.op(e))?;
                e += 1;
            }
        }
        Ok(())
    }
}

impl FromStr for Cell {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Cell> {
        Cell::parse(s)
    }
}

/// Which NB201 network the cells are placed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// The zero-cost-proxies paper's NB201 model (and this crate's fixtures): cell convs
    /// with bias, cell BatchNorm affine=False.
    #[default]
    Zc,
    /// NAS-Bench-201's own TinyNetwork: cell convs without bias, affine cell BatchNorm
    /// (the networks whose parameter counts NAS-Bench-201 publishes).
    Nb201,
}

/// Network options of NB201.
#[derive(Clone, Debug, PartialEq)]
pub struct Nb201Options {
    /// Channels of the first stage (16 in NAS-Bench-201); stages have C, 2C, 4C.
    pub channels: usize,
    /// Cells per stage (5 in NAS-Bench-201).
    pub cells_per_stage: usize,
    pub num_classes: usize,
    /// Seed of the parameter initialisation.
    pub seed: u64,
    pub variant: Variant,
    /// Input image side (32 for CIFAR; 16 for ImageNet16-120).
    pub image_size: usize,
}

impl Default for Nb201Options {
    fn default() -> Self {
        Nb201Options { channels: 16, cells_per_stage: 5, num_classes: 10, seed: 0, variant: Variant::Zc, image_size: 32 }
    }
}

/// The network of `cell`, node by node, as PyTorch's export of the reference module would
/// write it (the fixtures' `NB201Net` of `models/make_fixtures.py`, or NAS-Bench-201's
/// TinyNetwork with [`Variant::Nb201`]). Initializers are named and ordered as the PyTorch
/// state dict: `stem.0.weight`, `stem.1.*`, `body.K.ops.I_J_OP.1.weight/bias`,
/// `body.K.conv_a.*`, `body.K.conv_b.*`, `body.K.shortcut.1.weight`, `head_bn.*`,
/// `classifier.*`.
pub fn build(cell: &Cell, o: &Nb201Options) -> Result<RawModel> {
    if o.channels == 0 || o.num_classes == 0 {
        bail!("channels and num_classes must be positive");
    }
    let c = o.channels;
    let mut net = Net::new(&format!("nb201 {cell}"), &[3, o.image_size, o.image_size], o.seed);
    let x = net.conv("stem.0", super::net::INPUT, 3, c, 3, 1, 1, false);
    let mut x = net.batch_norm("stem.1", &x, c, Some("stem.1"));
    let mut body = 0;
    let mut cin = c;
    for (stage, cc) in [c, 2 * c, 4 * c].into_iter().enumerate() {
        if stage > 0 {
            x = res_block(&mut net, &format!("body.{body}"), &x, cin, cc);
            body += 1;
            cin = cc;
        }
        for _ in 0..o.cells_per_stage {
            x = cell_block(&mut net, &format!("body.{body}"), &x, cell, cc, o.variant);
            body += 1;
        }
    }
    let x = net.batch_norm("head_bn", &x, 4 * c, Some("head_bn"));
    let x = net.relu("head_relu", &x);
    net.classifier("classifier", &x, 4 * c, o.num_classes);
    Ok(net.finish(o.num_classes))
}

/// ResNetBasicblock with stride 2: shortcut AvgPool2d(2,2)+Conv1x1 (no BN), then
/// ReLU-Conv3x3 s2-BN and ReLU-Conv3x3-BN (affine BN, convs without bias); shortcut + branch.
/// Parameters in the module's order (conv_a, conv_b, shortcut), nodes in the forward's
/// (shortcut first), as PyTorch exports it.
fn res_block(net: &mut Net, p: &str, x: &str, cin: usize, cout: usize) -> String {
    let wa = net.conv_params(&format!("{p}.conv_a.1"), cin, cout, 3, false);
    let bna = net.bn_params(cout, Some(&format!("{p}.conv_a.2")));
    let wb = net.conv_params(&format!("{p}.conv_b.1"), cout, cout, 3, false);
    let bnb = net.bn_params(cout, Some(&format!("{p}.conv_b.2")));
    let ws = net.conv_params(&format!("{p}.shortcut.1"), cin, cout, 1, false);
    let pool = net.node(&format!("{p}/shortcut"), "AveragePool", &[x], vec![
        ("ceil_mode", Attr::Int(0)),
        ("count_include_pad", Attr::Int(1)),
        ("kernel_shape", Attr::Ints(vec![2, 2])),
        ("pads", Attr::Ints(vec![0, 0, 0, 0])),
        ("strides", Attr::Ints(vec![2, 2])),
    ]);
    let r = net.conv_node(&format!("{p}/shortcut"), &pool, &ws, 1, 1, 0);
    let a = net.relu(&format!("{p}/conv_a"), x);
    let a = net.conv_node(&format!("{p}/conv_a"), &a, &wa, 3, 2, 1);
    let a = net.bn_node(&format!("{p}/conv_a"), &a, &bna);
    let b = net.relu(&format!("{p}/conv_b"), &a);
    let b = net.conv_node(&format!("{p}/conv_b"), &b, &wb, 3, 1, 1);
    let b = net.bn_node(&format!("{p}/conv_b"), &b, &bnb);
    net.add(p, &r, &b)
}

fn cell_block(net: &mut Net, p: &str, x: &str, cell: &Cell, c: usize, variant: Variant) -> String {
    let mut feats = vec![x.to_string()];
    let mut e = 0;
    for i in 1..4 {
        let mut parts = Vec::with_capacity(i);
        for j in 0..i {
            let op = cell.op(e);
            e += 1;
            let scope = format!("{p}/{i}_{j}_{op}");
            let prefix = format!("{p}.ops.{i}_{j}_{op}");
            let y = match op {
                "none" => {
                    let zero = net.constant("zero", Tensor::scalar(DType::F32, 0.0));
                    net.node(&scope, "Mul", &[&feats[j], &zero], vec![])
                }
                "skip_connect" => feats[j].clone(),
                "avg_pool_3x3" => net.node(&scope, "AveragePool", &[&feats[j]], vec![
                    ("ceil_mode", Attr::Int(0)),
                    ("count_include_pad", Attr::Int(0)),
                    ("kernel_shape", Attr::Ints(vec![3, 3])),
                    ("pads", Attr::Ints(vec![1, 1, 1, 1])),
                    ("strides", Attr::Ints(vec![1, 1])),
                ]),
                "nor_conv_1x1" | "nor_conv_3x3" => {
                    let k = if op == "nor_conv_1x1" { 1 } else { 3 };
                    let r = net.relu(&scope, &feats[j]);
                    let (bias, bn) = match variant {
                        Variant::Zc => (true, None),
                        Variant::Nb201 => (false, Some(format!("{prefix}.2"))),
                    };
                    let y = net.conv(&format!("{prefix}.1"), &r, c, c, k, 1, (k - 1) / 2, bias);
                    net.batch_norm(&scope, &y, c, bn.as_deref())
                }
                _ => unreachable!(),
            };
            parts.push(y);
        }
        let s = net.sum(p, &parts);
        feats.push(s);
    }
    feats.pop().unwrap()
}
