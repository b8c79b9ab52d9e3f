//! Matrix products: MatMul (numpy semantics), Gemm, Einsum. Each gradient is again a
//! product of the output gradient with the other operands.

use super::OpDef;
use crate::onnx::infer::{broadcast, input};
use crate::onnx::ir::{Graph, TypeInfo};
use anyhow::anyhow;
use super::{gy0, Grads};
use crate::onnx::builder::Builder;
use crate::onnx::infer::einsum_terms;
use crate::onnx::ir::{Attr, Node, Tensor};
use anyhow::{bail, Result};
use ndarray::{ArrayD, IxDyn};
use std::collections::HashMap;

pub const OPS: &[OpDef] = &[
    OpDef::rule("MatMul", 1, "batched, broadcasting batch dims; both operands may be activations", infer_matmul, matmul),
    OpDef::rule("Gemm", 7, "", infer_gemm, gemm),
    OpDef::rule("Einsum", 12, "no ellipsis", infer_einsum, einsum),
];

fn infer_matmul(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let (a, b) = (input(g, n, 0)?, input(g, n, 1)?);
    Ok(vec![TypeInfo::new(a.dtype, matmul_shape(&a.shape, &b.shape)?)])
}

pub fn matmul_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    if a.is_empty() || b.is_empty() {
        bail!("MatMul of a scalar");
    }
    let a2: Vec<usize> = if a.len() == 1 { vec![1, a[0]] } else { a.to_vec() };
    let b2: Vec<usize> = if b.len() == 1 { vec![b[0], 1] } else { b.to_vec() };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, nn) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != k2 {
        bail!("MatMul inner dimensions differ: {a:?} x {b:?}");
    }
    let mut s = broadcast(&a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
    if a.len() > 1 {
        s.push(m);
    }
    if b.len() > 1 {
        s.push(nn);
    }
    Ok(s)
}

fn infer_gemm(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let (a, b) = (input(g, n, 0)?, input(g, n, 1)?);
    if a.rank() != 2 || b.rank() != 2 {
        bail!("Gemm wants 2-D operands, got {:?} and {:?}", a.shape, b.shape);
    }
    let (m, ka) = if n.int("transA", 0) == 1 { (a.shape[1], a.shape[0]) } else { (a.shape[0], a.shape[1]) };
    let (kb, nn) = if n.int("transB", 0) == 1 { (b.shape[1], b.shape[0]) } else { (b.shape[0], b.shape[1]) };
    if ka != kb {
        bail!("Gemm inner dimensions differ: {:?} x {:?}", a.shape, b.shape);
    }
    if let Some(c) = n.input(2) {
        broadcast(&[m, nn], &g.info(c)?.shape)?;
    }
    Ok(vec![TypeInfo::new(a.dtype, vec![m, nn])])
}

fn infer_einsum(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let (terms, out) = einsum_terms(n, n.inputs.len())?;
    let mut sizes: HashMap<char, usize> = HashMap::new();
    for (i, t) in terms.iter().enumerate() {
        let s = &input(g, n, i)?.shape;
        if s.len() != t.len() {
            bail!("Einsum operand {i} has rank {}, subscripts {t:?}", s.len());
        }
        for (c, &d) in t.iter().zip(s) {
            if let Some(&prev) = sizes.get(c) {
                if prev != d && prev != 1 && d != 1 {
                    bail!("Einsum subscript {c} has sizes {prev} and {d}");
                }
                sizes.insert(*c, prev.max(d));
            } else {
                sizes.insert(*c, d);
            }
        }
    }
    let s = out.iter().map(|c| sizes.get(c).copied().ok_or_else(|| anyhow!("Einsum output {c} not in inputs"))).collect::<Result<_>>()?;
    Ok(vec![TypeInfo::new(input(g, n, 0)?.dtype, s)])
}

/// `x` with its last two axes swapped.
fn swap_last(b: &mut Builder, x: &str) -> Result<String> {
    let r = b.shape(x)?.len();
    let mut perm: Vec<usize> = (0..r).collect();
    perm.swap(r - 2, r - 1);
    b.transpose(x, &perm)
}

/// C = A·B with numpy batching: dA = g·Bᵀ, dB = Aᵀ·g, each summed over the batch axes its
/// operand was broadcast along. A 1-D A is a row [1, k], a 1-D B a column [k, 1].
fn matmul(b: &mut Builder, n: &Node, gy: &[Option<String>], wants: &[bool]) -> Grads {
    let (a, bb) = (n.inputs[0].clone(), n.inputs[1].clone());
    let (sa, sb) = (b.shape(&a)?, b.shape(&bb)?);
    let sa2 = if sa.len() == 1 { vec![1, sa[0]] } else { sa.clone() };
    let sb2 = if sb.len() == 1 { vec![sb[0], 1] } else { sb.clone() };
    // g with the axes a 1-D operand dropped put back: [batch.., m, n]
    let mut sg = b.shape(gy0(gy)?)?;
    if sa.len() == 1 {
        sg.insert(sg.len() - usize::from(sb.len() > 1), 1);
    }
    if sb.len() == 1 {
        sg.push(1);
    }
    let g = b.reshape(gy0(gy)?, &sg)?;
    let mut out = vec![None, None];
    if wants[0] {
        let b2 = b.reshape(&bb, &sb2)?;
        let bt = swap_last(b, &b2)?;
        let da = b.op("MatMul", &[&g, &bt], vec![])?;
        let da = b.unbroadcast(&da, &sa2)?;
        out[0] = Some(b.reshape(&da, &sa)?);
    }
    if wants[1] {
        let a2 = b.reshape(&a, &sa2)?;
        let db = if sb2.len() == 2 && sa2.len() > 2 {
            // B shared by the whole batch: fold the batch into the rows (no batch of
            // products to sum): dB = Aᵀ·g with A as [batch·m, k] and g as [batch·m, n]
            let (k, nn) = (sb2[0], sb2[1]);
            let rows = sa2[..sa2.len() - 1].iter().product();
            let af = b.reshape(&a2, &[rows, k])?;
            let at = b.transpose(&af, &[1, 0])?;
            let gf = b.reshape(&g, &[rows, nn])?;
            b.op("MatMul", &[&at, &gf], vec![])?
        } else {
            let at = swap_last(b, &a2)?;
            let db = b.op("MatMul", &[&at, &g], vec![])?;
            b.unbroadcast(&db, &sb2)?
        };
        out[1] = Some(b.reshape(&db, &sb)?);
    }
    Ok(out)
}

/// Y = α·op(A)·op(B) + β·C, op = identity or transpose. dop(A) = α·g·op(B)ᵀ and
/// dop(B) = α·op(A)ᵀ·g, written as Gemms whose trans flags absorb every transpose:
/// dA = α·g·op(B)ᵀ (transA = 0) or α·op(B)·gᵀ (transA = 1); dB = α·op(A)ᵀ·g (transB = 0)
/// or α·gᵀ·op(A) (transB = 1). dC = β·g summed over C's broadcast axes. α and β are
/// applied with Mul: tract's float64 Gemm mishandles α, β ≠ 1 (it multiplies by float32).
fn gemm(b: &mut Builder, n: &Node, gy: &[Option<String>], wants: &[bool]) -> Grads {
    let g = gy0(gy)?;
    let (a, bm) = (n.inputs[0].as_str(), n.inputs[1].as_str());
    let (ta, tb) = (n.int("transA", 0), n.int("transB", 0));
    let alpha = n.float("alpha", 1.0) as f64;
    let beta = n.float("beta", 1.0) as f64;
    let product = |b: &mut Builder, x: &str, y: &str, tx: i64, ty: i64| -> Result<String> {
        let p = b.op("Gemm", &[x, y], vec![("transA", Attr::Int(tx)), ("transB", Attr::Int(ty))])?;
        if alpha == 1.0 { Ok(p) } else { b.mul_scalar(&p, alpha) }
    };
    let mut out = vec![None; n.inputs.len()];
    if wants[0] {
        out[0] = Some(if ta == 0 { product(b, g, bm, 0, 1 - tb)? } else { product(b, bm, g, tb, 1)? });
    }
    if wants[1] {
        out[1] = Some(if tb == 0 { product(b, a, g, 1 - ta, 0)? } else { product(b, g, a, 1, ta)? });
    }
    if let Some(c) = n.input(2) {
        if wants[2] {
            let sc = b.shape(c)?;
            let gc = if beta == 1.0 { g.to_string() } else { b.mul_scalar(g, beta)? };
            out[2] = Some(b.unbroadcast(&gc, &sc)?);
        }
    }
    Ok(out)
}

/// Einsum (no ellipsis): y is linear in each operand, so the gradient of operand k is the
/// Einsum of g with the other operands producing k's subscripts. Two cases need more:
/// - a subscript repeated within an operand (a diagonal, `ii->i`): every repeat is renamed
///   to a fresh subscript tied to the first by a constant identity matrix δ
///   (`x_ii = Σ_j x_ij δ_ij`), so the gradient Einsums have distinct subscripts per operand
///   and the gradient lands on the diagonal (`i,ij->ij` for `ii->i`);
/// - a subscript only operand k has (summed out in the forward): it is left out of the
///   gradient Einsum and broadcast back with Expand.
fn einsum(b: &mut Builder, n: &Node, gy: &[Option<String>], wants: &[bool]) -> Grads {
    let g = gy0(gy)?;
    let (terms, out_term) = einsum_terms(n, n.inputs.len())?;
    let mut sizes: HashMap<char, usize> = HashMap::new();
    for (t, x) in terms.iter().zip(&n.inputs) {
        for (&c, &d) in t.iter().zip(&b.shape(x)?) {
            let prev = *sizes.entry(c).or_insert(d);
            if prev != d {
                bail!("Einsum subscript '{c}' broadcasts between sizes {prev} and {d}; only equal sizes have a gradient");
            }
        }
    }
    // distinct subscripts per operand, plus the δ operands tying renamed repeats
    let used: Vec<char> = terms.iter().flatten().copied().collect();
    let mut fresh = ('a'..='z').chain('A'..='Z').filter(|c| !used.contains(c));
    let dtype = b.dtype(g)?;
    let mut renamed: Vec<Vec<char>> = Vec::with_capacity(terms.len());
    let mut deltas: Vec<(String, String)> = Vec::new();
    for t in &terms {
        let mut r: Vec<char> = Vec::with_capacity(t.len());
        for &c in t {
            if !r.contains(&c) {
                r.push(c);
                continue;
            }
            let Some(f) = fresh.next() else { bail!("Einsum uses too many subscripts") };
            let d = sizes[&c];
            sizes.insert(f, d);
            let eye = ArrayD::from_shape_fn(IxDyn(&[d, d]), |i| if i[0] == i[1] { 1.0 } else { 0.0 });
            deltas.push((b.constant(Tensor::F64(eye).cast(dtype)), [c, f].iter().collect()));
            r.push(f);
        }
        renamed.push(r);
    }
    let mut out = vec![None; n.inputs.len()];
    for k in 0..n.inputs.len() {
        if !wants[k] {
            continue;
        }
        let mut ops: Vec<(String, String)> = vec![(g.to_string(), out_term.iter().collect())];
        for (j, t) in renamed.iter().enumerate() {
            if j != k {
                ops.push((n.inputs[j].clone(), t.iter().collect()));
            }
        }
        ops.extend(deltas.iter().cloned());
        let present: Vec<char> = ops.iter().flat_map(|(_, s)| s.chars()).collect();
        let target = &renamed[k];
        let kept: String = target.iter().filter(|c| present.contains(c)).collect();
        let subs: Vec<&str> = ops.iter().map(|(_, s)| s.as_str()).collect();
        let eq = format!("{}->{kept}", subs.join(","));
        let refs: Vec<&str> = ops.iter().map(|(x, _)| x.as_str()).collect();
        let mut gk = b.op("Einsum", &refs, vec![("equation", Attr::Str(eq))])?;
        if kept.len() < target.len() {
            let keep_shape: Vec<usize> = target.iter().map(|c| if kept.contains(*c) { sizes[c] } else { 1 }).collect();
            gk = b.reshape(&gk, &keep_shape)?;
            let xs = b.shape(&n.inputs[k])?;
            gk = b.expand(&gk, &xs)?;
        }
        out[k] = Some(gk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::autodiff::check::{check_op, rand_tensor, Arg};
    use crate::ops::shape::tests::check;
    use crate::onnx::ir::Attr;


    fn matmul(a: &[usize], b: &[usize]) {
        check("MatMul", &[Arg::var(a, 1), Arg::var(b, 2)], vec![], 1);
    }

    #[test]
    fn matmul_2d() {
        matmul(&[3, 4], &[4, 2]);
    }

    #[test]
    fn matmul_batched_broadcast() {
        matmul(&[2, 1, 3, 4], &[3, 4, 5]);
        matmul(&[2, 3, 4], &[4, 5]);
        matmul(&[2, 2, 3, 4], &[1, 4, 5]);
        matmul(&[4, 5], &[2, 5, 3]);
    }

    /// tract cannot run a MatMul of two 1-D operands (the forward), so that case is left out.
    #[test]
    fn matmul_1d_operands() {
        matmul(&[4], &[4, 3]);
        matmul(&[2, 3, 4], &[4]);
        matmul(&[4], &[2, 4, 3]);
    }

    #[test]
    fn gemm_trans_flags() {
        for (ta, tb) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            let a = if ta == 1 { [4, 3] } else { [3, 4] };
            let b = if tb == 1 { [2, 4] } else { [4, 2] };
            let attrs = vec![("transA", Attr::Int(ta)), ("transB", Attr::Int(tb))];
            check("Gemm", &[Arg::var(&a, 1), Arg::var(&b, 2)], attrs, 1);
        }
    }

    /// tract's float64 Gemm with α ≠ 1 runs alone but breaks tract's optimiser once its
    /// output feeds a Mul (α is a float32 constant there), so no squared-output check.
    #[test]
    fn gemm_alpha() {
        let attrs = vec![("alpha", Attr::Float(0.5)), ("transA", Attr::Int(1))];
        check_op("Gemm", &[Arg::var(&[4, 3], 1), Arg::var(&[4, 2], 2)], attrs, 1, true, 1e-6).unwrap();
    }

    /// tract's float64 Gemm fails to run with β ≠ 1, so β is checked at 1 only.
    #[test]
    fn gemm_bias_broadcast() {
        for c in [&[2][..], &[3, 1], &[1, 2], &[3, 2], &[]] {
            check("Gemm", &[Arg::var(&[3, 4], 1), Arg::var(&[2, 4], 2), Arg::var(c, 3)], vec![("transB", Attr::Int(1))], 1);
        }
    }

    fn einsum(eq: &str, shapes: &[&[usize]]) {
        let args: Vec<Arg> = shapes.iter().enumerate().map(|(i, s)| Arg::var(s, i as u64 + 1)).collect();
        check("Einsum", &args, vec![("equation", Attr::Str(eq.into()))], 1);
    }

    #[test]
    fn einsum_contractions() {
        einsum("ij,jk->ik", &[&[2, 3], &[3, 4]]);
        einsum("bij,bjk->bki", &[&[2, 3, 4], &[2, 4, 5]]);
        einsum("ij,ij->", &[&[2, 3], &[2, 3]]);
        einsum("i,j,k->ijk", &[&[2], &[3], &[2]]);
    }

    #[test]
    fn einsum_implicit_output() {
        einsum("ij,jk", &[&[2, 3], &[3, 4]]);
    }

    #[test]
    fn einsum_summed_out_subscript() {
        einsum("ij,jk->i", &[&[2, 3], &[3, 4]]);
        einsum("ijk->j", &[&[2, 3, 4]]);
    }

    /// Only single-operand diagonals: tract computes the forward of multi-operand Einsums
    /// with a repeated subscript wrongly (`ij,jj->ij`) or not at all (`ij,jj->i`).
    #[test]
    fn einsum_diagonal() {
        einsum("ii->i", &[&[3, 3]]);
        einsum("ii->", &[&[3, 3]]);
        einsum("iij->ji", &[&[3, 3, 2]]);
        einsum("iji->j", &[&[2, 3, 2]]);
    }

    /// A vision-transformer attention block as exporters write it: qkv = x·W, Split into
    /// q, k, v, heads by Reshape + Transpose, softmax(q·kᵀ/√d) over the last axis, a batched
    /// MatMul of two activations, Gather of one head added back: first and second order.
    #[test]
    fn attention_heads_split_gather_softmax() {
        use crate::autodiff::check::check_graph;
        use crate::onnx::builder::Builder;
        use crate::onnx::ir::{Graph, Tensor, TypeInfo};
        let (x, w) = (rand_tensor(&[2, 4, 6], 1), rand_tensor(&[6, 18], 2));
        let mut g = Graph { opset: crate::onnx::canon::TARGET_OPSET, source: "attention".into(), ..Graph::default() };
        for (name, t) in [("x", &x), ("w", &w)] {
            g.inputs.push(name.into());
            g.types.insert(name.into(), TypeInfo::new(t.dtype(), t.shape().to_vec()));
        }
        let mut b = Builder::new(&mut g, "attn");
        let qkv = b.op("MatMul", &["x", "w"], vec![]).unwrap();
        let split = b.ints(&[6, 6, 6]);
        let parts = b.node("Split", &[&qkv, &split], vec![("axis", Attr::Int(-1))], 3).unwrap();
        let heads = |b: &mut Builder, t: &str, perm: &[usize]| {
            let r = b.reshape(t, &[2, 4, 2, 3]).unwrap();
            b.transpose(&r, perm).unwrap()
        };
        let q = heads(&mut b, &parts[0], &[0, 2, 1, 3]);
        let k = heads(&mut b, &parts[1], &[0, 2, 3, 1]);
        let v = heads(&mut b, &parts[2], &[0, 2, 1, 3]);
        let s = b.op("MatMul", &[&q, &k], vec![]).unwrap();
        let s = b.mul_scalar(&s, 1.0 / 3f64.sqrt()).unwrap();
        let a = b.op("Softmax", &[&s], vec![("axis", Attr::Int(-1))]).unwrap();
        let o = b.op("MatMul", &[&a, &v], vec![]).unwrap();
        let one = b.constant(Tensor::from_i64(&[1]));
        let h1 = b.op("Gather", &[&o, &one], vec![("axis", Attr::Int(1))]).unwrap();
        let y = b.add(&o, &h1).unwrap();
        g.outputs = vec![y.clone()];
        check_graph(&g, &[y], &[("x".into(), x), ("w".into(), w)], true, 1e-6).unwrap();
    }
}
