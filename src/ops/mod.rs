//! Everything zerocost knows about an op, in one registry built from the op families (one
//! module each: `elementwise`, `discrete`, `activation`, `reduce`, `shape`, `constant`,
//! `linalg`, `conv`, `pool`, `norm`). Each family module lists its ops in a `pub const OPS:
//! &[OpDef]`; an [`OpDef`] holds the op's row of the `zerocost ops` table (opsets, how it is
//! handled, restrictions), its shape inference, its constant folding (where it folds), its
//! vector-Jacobian rule and, for a composite op, its lowering at import. Shape inference (`onnx::infer`), folding (`onnx::fold`), the reverse
//! pass (`autodiff`), the lowering at import (`onnx::canon`), `zerocost inspect` and
//! `zerocost ops` all read this registry, so no other list of op names needs to change.
//!
//! A rule receives the node, the gradient of each output (None where nothing flows back) and
//! which inputs need a gradient; it appends nodes through the builder and returns one
//! optional gradient per input, of that input's shape. Rules emit only ops that have rules
//! themselves, so gradient programs can be differentiated again.
//!
//! Adding an op means one entry in its family's `OPS` plus the functions it names, in that
//! same file, and a finite-difference check in the file's tests (the tests below fail
//! without one). `Tan` in `elementwise.rs` was added so:
//!
//! ```ignore
//! pub const OPS: &[OpDef] = &[
//!     // ...
//!     OpDef::rule("Tan", 7, "", same_as_input, tan).folds(Fold::Values(fold_tan)),
//! ];
//!
//! /// tan' = 1 + tan², from the forward output.
//! fn tan(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
//!     let y = &n.outputs[0];
//!     let y2 = b.mul(y, y)?;
//!     let one = b.scalar_like(y, 1.0)?;
//!     let d = b.add(&y2, &one)?;
//!     times(b, gy, &d)
//! }
//!
//! fn fold_tan(g: &Graph, n: &Node, _: &[usize], _: DType) -> Result<ArrayD<f64>> {
//!     Ok(arg(g, n, 0)?.mapv(f64::tan))
//! }
//!
//! // in the file's tests: finite differences, first and second order (check_op)
//! unary("Tan", rand_tensor(&[2, 3], 1));
//! ```
//!
//! A composite op is written at import as ops that have rules: `OpDef::lowered` names them
//! in its table row and `.lowers(f)` gives the [`Lower`] function, in the same family file,
//! with `check_lowered` checks in its tests; e.g. `Mish` in `activation.rs`:
//!
//! ```ignore
//! OpDef::lowered("Mish", 18, "Softplus, Tanh, Mul", "", same_as_input).lowers(lower_mish),
//!
//! /// Mish: x · tanh(softplus(x)).
//! fn lower_mish(b: &mut Builder, n: &Node, _: &LowerCtx) -> Result<Option<String>> {
//!     let x = n.input(0).unwrap();
//!     let sp = b.op("Softplus", &[x], vec![])?;
//!     let t = b.op("Tanh", &[&sp], vec![])?;
//!     let y = b.mul(x, &t)?;
//!     first_output_only(n, y)
//! }
//! ```
//!
//! Rewrites of an older opset's form into the current one (attributes that became inputs,
//! `Upsample`, `CastLike`) stay in `onnx/canon.rs`, split sequences in `onnx/sequence.rs`.
//!
//! Conventions the tests below enforce, so the table stays honest:
//! - an op marked [`Handling::Rule`] has a rule; one marked [`Handling::Lowered`] has a
//!   lowering or is a match arm (`"Op" =>` or `| "Op"`) of `canon.rs` (or `sequence.rs`); one marked
//!   [`Handling::NoGradient`] has the zero-gradient rule unless it has no rule yet;
//! - every listed op is known to shape inference (`infer_node` does not call it unsupported);
//! - every op with a rule or a lowering has a finite-difference check: its quoted name
//!   (`"Op"`) appears in the `#[cfg(test)]` part of a family file (or `sequence.rs`), where
//!   the checks call `check_op`, `check_graph` or `check_lowered` (directly or through a
//!   file's helper such as `unary("Op", ..)`). Adding an op without such a check fails
//!   `cargo test`.

pub mod activation;
pub mod constant;
pub mod conv;
pub mod discrete;
pub mod elementwise;
pub mod linalg;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod shape;

use crate::onnx::builder::Builder;
use crate::onnx::ir::{DType, Graph, Node, Tensor, TypeInfo};
use crate::onnx::canon::BnMode;
use anyhow::{bail, Result};
use ndarray::ArrayD;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The newest opset whose forms the table was written against.
pub const LATEST_OPSET: i64 = 21;

/// How an op is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handling {
    /// Differentiated by a vector-Jacobian rule (its family: [`family_of`]).
    Rule,
    /// Rewritten at import into the named primitive ops, which have rules.
    Lowered(&'static str),
    /// Removed at import (what becomes of it).
    Removed(&'static str),
    /// Accepted and run forward; no gradient flows through it (why).
    NoGradient(&'static str),
    /// An op zerocost builds itself (`zerocost.*`, see `onnx::composite`); not in the table.
    Internal,
}

/// One op's row of the table.
#[derive(Clone, Copy, Debug)]
pub struct OpInfo {
    pub name: &'static str,
    /// First opset whose form import reads.
    pub since: i64,
    /// Last opset the op exists in (LATEST_OPSET if it is current).
    pub until: i64,
    pub handling: Handling,
    /// Restrictions worth knowing (empty if none).
    pub note: &'static str,
}

/// One optional gradient per input of a node.
pub type Grads = Result<Vec<Option<String>>>;

/// A vector-Jacobian rule (see the module doc).
pub type Rule = fn(&mut Builder, &Node, &[Option<String>], &[bool]) -> Grads;

/// Output types of a node, from its inputs' types (and constant inputs where needed).
pub type Infer = fn(&Graph, &Node) -> Result<Vec<TypeInfo>>;

/// The value of a node whose inputs are all constants, at its inferred shape and type (in
/// f64; the folding driver casts it to the type).
pub type Eval = fn(&Graph, &Node, &[usize], DType) -> Result<ArrayD<f64>>;

/// What a lowering reads besides the node: the opset the model was written against and how
/// BatchNormalization is scored (`--bn`).
pub struct LowerCtx {
    pub opset: i64,
    pub bn: BnMode,
}

/// A lowering: writes the node's output with ops that have rules, through the builder, and
/// returns its name; None where this form of the op is kept as it is (Resize's nearest
/// mode, which has a rule). Import (`onnx::canon`) runs it once shapes are known.
pub type Lower = fn(&mut Builder, &Node, &LowerCtx) -> Result<Option<String>>;

/// The end of a lowering that writes only the first output: a node whose other outputs are
/// read is refused.
pub fn first_output_only(n: &Node, y: String) -> Result<Option<String>> {
    if n.outputs.iter().skip(1).any(|o| !o.is_empty()) {
        bail!("{}: only its first output is supported", n.describe());
    }
    Ok(Some(y))
}

/// How an op folds into a constant before running.
#[derive(Clone, Copy, Debug)]
pub enum Fold {
    /// Evaluated when all its inputs are constants.
    Values(Eval),
    /// As `Values`, but only up to `onnx::fold::MAX_FOLDED_FILL` elements (ops that fill).
    Fill(Eval),
    /// Computed from its input's shape alone (the input need not be constant).
    Shape(fn(&Graph, &Node) -> Result<Tensor>),
}

/// Everything the code knows about one op.
#[derive(Clone, Copy, Debug)]
pub struct OpDef {
    pub info: OpInfo,
    pub infer: Infer,
    pub fold: Option<Fold>,
    pub rule: Option<Rule>,
    /// Its rewrite at import into ops that have rules (a lowered op, or a form of a rule
    /// op such as Resize's linear mode).
    pub lower: Option<Lower>,
}

const L: i64 = LATEST_OPSET;

const INT_BOOL: &str = "integer or boolean output";
const PIECEWISE: &str = "piecewise constant (zero gradient almost everywhere)";
const NO_RULE: &str = "no gradient rule yet: gradient proxies fail on a path through it";

impl OpDef {
    const fn new(name: &'static str, since: i64, handling: Handling, note: &'static str, infer: Infer) -> Self {
        OpDef { info: OpInfo { name, since, until: L, handling, note }, infer, fold: None, rule: None, lower: None }
    }

    /// An op differentiated by `rule`.
    pub const fn rule(name: &'static str, since: i64, note: &'static str, infer: Infer, rule: Rule) -> Self {
        Self::new(name, since, Handling::Rule, note, infer).with_rule(rule)
    }

    /// An op rewritten at import (by `onnx/canon.rs`) into the ops named by `into`.
    pub const fn lowered(name: &'static str, since: i64, into: &'static str, note: &'static str, infer: Infer) -> Self {
        Self::new(name, since, Handling::Lowered(into), note, infer)
    }

    /// An op removed at import; `what` it becomes.
    pub const fn removed(name: &'static str, since: i64, what: &'static str, infer: Infer) -> Self {
        Self::new(name, since, Handling::Removed(what), "", infer)
    }

    /// An op whose output is integer or boolean: its inputs receive no gradient.
    pub const fn int_bool(name: &'static str, since: i64, infer: Infer) -> Self {
        Self::new(name, since, Handling::NoGradient(INT_BOOL), "", infer).with_rule(no_gradient)
    }

    /// A piecewise-constant op: its inputs receive no gradient.
    pub const fn piecewise(name: &'static str, since: i64, infer: Infer) -> Self {
        Self::new(name, since, Handling::NoGradient(PIECEWISE), "", infer).with_rule(no_gradient)
    }

    /// An op whose value is a constant (`what`): its inputs receive no gradient.
    pub const fn constant(name: &'static str, since: i64, what: &'static str, infer: Infer) -> Self {
        Self::new(name, since, Handling::NoGradient(what), "", infer).with_rule(no_gradient)
    }

    /// An op that runs forward but has no rule yet: gradients through it fail.
    pub const fn no_rule_yet(name: &'static str, since: i64, infer: Infer) -> Self {
        Self::new(name, since, Handling::NoGradient(NO_RULE), "", infer)
    }

    /// An op zerocost builds itself (not in the table).
    pub const fn internal(name: &'static str, infer: Infer, rule: Rule) -> Self {
        Self::new(name, 1, Handling::Internal, "", infer).with_rule(rule)
    }

    pub const fn with_rule(mut self, rule: Rule) -> Self {
        self.rule = Some(rule);
        self
    }

    /// Rewritten at import by `lower` (see [`Lower`]).
    pub const fn lowers(mut self, lower: Lower) -> Self {
        self.lower = Some(lower);
        self
    }

    pub const fn folds(mut self, fold: Fold) -> Self {
        self.fold = Some(fold);
        self
    }

    /// The last opset of an op that was removed from ONNX.
    pub const fn until(mut self, opset: i64) -> Self {
        self.info.until = opset;
        self
    }
}

/// The families, one module each, by name.
const FAMILIES: &[(&str, &[OpDef])] = &[
    ("elementwise", elementwise::OPS),
    ("discrete", discrete::OPS),
    ("activation", activation::OPS),
    ("reduce", reduce::OPS),
    ("shape", shape::OPS),
    ("constant", constant::OPS),
    ("linalg", linalg::OPS),
    ("conv", conv::OPS),
    ("pool", pool::OPS),
    ("norm", norm::OPS),
];

/// Every registered op by name, with its family.
fn registry() -> &'static HashMap<&'static str, (&'static str, &'static OpDef)> {
    static REGISTRY: OnceLock<HashMap<&'static str, (&'static str, &'static OpDef)>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut m = HashMap::new();
        for (family, ops) in FAMILIES {
            for d in ops.iter() {
                let before = m.insert(d.info.name, (*family, d));
                assert!(before.is_none(), "op {} is registered twice", d.info.name);
            }
        }
        m
    })
}

/// Every registered op, internal ones included, family by family.
pub fn all() -> impl Iterator<Item = &'static OpDef> {
    FAMILIES.iter().flat_map(|(_, ops)| ops.iter())
}

/// What the code knows about `op` (internal ops included).
pub fn def(op: &str) -> Option<&'static OpDef> {
    registry().get(op).map(|(_, d)| *d)
}

/// The table: every op zerocost accepts in a model (internal ops left out).
pub fn table() -> impl Iterator<Item = &'static OpInfo> {
    all().map(|d| &d.info).filter(|i| i.handling != Handling::Internal)
}

/// The table row of `op`, if zerocost accepts it in a model.
pub fn lookup(op: &str) -> Option<&'static OpInfo> {
    def(op).map(|d| &d.info).filter(|i| i.handling != Handling::Internal)
}

/// The family (module of `ops`) that holds `op`.
pub fn family_of(op: &str) -> Option<&'static str> {
    registry().get(op).map(|(f, _)| *f)
}

/// The vector-Jacobian rule of `op`, if it has one.
pub fn rule_for(op: &str) -> Option<Rule> {
    def(op).and_then(|d| d.rule)
}

pub fn is_differentiable(op: &str) -> bool {
    rule_for(op).is_some()
}

/// The rule of ops whose outputs carry no gradient: their inputs receive none.
fn no_gradient(_: &mut Builder, n: &Node, _: &[Option<String>], _: &[bool]) -> Grads {
    Ok(vec![None; n.inputs.len()])
}

/// The gradient of output 0, which single-output rules are only called with.
pub(crate) fn gy0(gy: &[Option<String>]) -> Result<&str> {
    gy.first().and_then(|g| g.as_deref()).ok_or_else(|| anyhow::anyhow!("no gradient for output 0"))
}

impl OpInfo {
    /// Whether gradients flow through the op (by a rule, a lowering or its removal).
    pub fn differentiable(&self) -> bool {
        !matches!(self.handling, Handling::NoGradient(_))
    }

    /// Short name of the handling: rule, lowered, removed or no-gradient.
    pub fn kind(&self) -> &'static str {
        match self.handling {
            Handling::Rule => "rule",
            Handling::Lowered(_) => "lowered",
            Handling::Removed(_) => "removed",
            Handling::NoGradient(_) => "no-gradient",
            Handling::Internal => "internal",
        }
    }

    /// The rule's family, what it is lowered into, what it becomes, or why it has no gradient.
    pub fn detail(&self) -> String {
        match self.handling {
            Handling::Rule => family_of(self.name).unwrap_or("?").to_string(),
            Handling::Lowered(into) => into.to_string(),
            Handling::Removed(what) => what.to_string(),
            Handling::NoGradient(why) => why.to_string(),
            Handling::Internal => String::new(),
        }
    }

    /// The opset range as "7-21".
    pub fn opsets(&self) -> String {
        format!("{}-{}", self.since, self.until)
    }
}

/// Serialisable row of the table (`zerocost ops --format json`).
#[derive(Serialize)]
pub struct OpRow {
    pub op: &'static str,
    pub since: i64,
    pub until: i64,
    pub handling: &'static str,
    pub differentiable: bool,
    pub detail: String,
    pub note: &'static str,
}

/// The table's rows, sorted by name.
pub fn rows() -> Vec<OpRow> {
    let mut v: Vec<OpRow> = table()
        .map(|o| OpRow {
            op: o.name,
            since: o.since,
            until: o.until,
            handling: o.kind(),
            differentiable: o.differentiable(),
            detail: o.detail(),
            note: o.note,
        })
        .collect();
    v.sort_by_key(|r| r.op);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::infer::infer_node;
    use crate::onnx::ir::{DType, Graph, Node, TypeInfo};
    use std::collections::HashSet;

    /// Test sources scanned for finite-difference checks (see the module's conventions).
    const CHECKED_SOURCES: &[&str] = &[
        include_str!("activation.rs"),
        include_str!("constant.rs"),
        include_str!("conv.rs"),
        include_str!("discrete.rs"),
        include_str!("elementwise.rs"),
        include_str!("linalg.rs"),
        include_str!("norm.rs"),
        include_str!("pool.rs"),
        include_str!("reduce.rs"),
        include_str!("shape.rs"),
        include_str!("../onnx/sequence.rs"),
    ];

    /// Ops lowered by `sequence.rs` before shape inference sees the node.
    const SEQUENCE_OPS: &[&str] = &["SplitToSequence", "SequenceAt"];

    #[test]
    fn names_are_unique() {
        let mut seen = HashSet::new();
        for o in table() {
            assert!(seen.insert(o.name), "{} is listed twice", o.name);
            assert!(o.since >= 1 && o.since <= o.until, "{}: opsets {}", o.name, o.opsets());
        }
    }

    #[test]
    fn every_op_with_a_rule_has_one_and_the_others_do_not_claim_one() {
        for o in table() {
            match o.handling {
                Handling::Rule => {
                    assert!(rule_for(o.name).is_some(), "{} is listed with a rule but has none", o.name);
                    assert!(family_of(o.name).is_some(), "{}: no family", o.name);
                }
                Handling::NoGradient(why) => {
                    // the zero-gradient rule (constructors int_bool, piecewise, constant) unless none yet
                    let silent = why != NO_RULE;
                    assert_eq!(silent, rule_for(o.name).is_some(), "{}: rule and table disagree ({why})", o.name);
                }
                _ => {}
            }
        }
    }

    #[test]
    fn every_lowered_op_is_lowered() {
        let canon = include_str!("../onnx/canon.rs");
        for o in table().filter(|o| matches!(o.handling, Handling::Lowered(_) | Handling::Removed(_))) {
            // a lowering in the registry, else a rewrite of the form in canon.rs or sequence.rs
            if def(o.name).is_some_and(|d| d.lower.is_some()) {
                assert!(matches!(o.handling, Handling::Lowered(_)), "{} has a lowering but is listed as removed", o.name);
                continue;
            }
            if SEQUENCE_OPS.contains(&o.name) {
                assert!(include_str!("../onnx/sequence.rs").contains(&format!("\"{}\" =>", o.name)), "{} is not lowered in sequence.rs", o.name);
                continue;
            }
            let arm = format!("\"{}\" =>", o.name);
            let alt = format!("| \"{}\"", o.name);
            let first = format!("\"{}\" |", o.name);
            assert!(canon.contains(&arm) || canon.contains(&alt) || canon.contains(&first), "{} has no lowering and is not a match arm of canon.rs", o.name);
        }
        // only lowered ops and rule ops with a lowered form (Resize) have a lowering
        for d in all().filter(|d| d.lower.is_some()) {
            assert!(matches!(d.info.handling, Handling::Lowered(_) | Handling::Rule), "{}", d.info.name);
        }
    }

    #[test]
    fn every_listed_op_is_known_to_shape_inference() {
        let mut g = Graph::default();
        g.types.insert("x".into(), TypeInfo::new(DType::F32, vec![2, 4, 4, 4]));
        for o in table().filter(|o| !SEQUENCE_OPS.contains(&o.name)) {
            let n = Node::new("n", o.name, vec!["x".into()], vec!["y".into()]);
            if let Err(e) = infer_node(&g, &n) {
                let e = format!("{e:#}");
                assert!(!e.contains("is not supported (`zerocost ops`"), "{}: {e}", o.name);
            }
        }
        // and an op that is not listed is refused, naming `zerocost ops`
        let n = Node::new("n", "NoSuchOp", vec!["x".into()], vec!["y".into()]);
        assert!(format!("{:#}", infer_node(&g, &n).unwrap_err()).contains("zerocost ops"));
    }

    #[test]
    fn every_differentiable_op_has_a_finite_difference_check() {
        let tests: Vec<&str> = CHECKED_SOURCES.iter().map(|s| s.split("#[cfg(test)]").nth(1).unwrap_or("")).collect();
        let mut missing = Vec::new();
        for o in table().filter(|o| matches!(o.handling, Handling::Rule | Handling::Lowered(_))) {
            let quoted = format!("\"{}\"", o.name);
            if !tests.iter().any(|t| t.contains(&quoted)) {
                missing.push(o.name);
            }
        }
        assert!(missing.is_empty(), "ops without a finite-difference check in their family file's tests: {missing:?}");
    }

    #[test]
    fn every_rule_is_in_the_table() {
        // an op with a rule is listed, unless zerocost builds it itself (`zerocost.*`)
        for d in all().filter(|d| d.rule.is_some()) {
            let internal = d.info.handling == Handling::Internal;
            assert!(lookup(d.info.name).is_some() || internal, "{} has a rule but is not in the ops table", d.info.name);
            assert_eq!(internal, d.info.name.starts_with("zerocost."), "{}", d.info.name);
        }
    }

    /// The cases of tests/ops/ (written by tests/ops/gen_reference.py from ONNX Runtime or
    /// the ONNX reference): (name, canonical float32 graph, input, expected output).
    fn reference_cases() -> Vec<(String, crate::onnx::ir::Graph, Tensor, Tensor)> {
        use crate::onnx::canon::CanonOptions;
        use crate::onnx::Model;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ops");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().to_str().and_then(|f| f.strip_suffix(".onnx")).map(String::from))
            .collect();
        names.sort();
        assert!(names.len() >= 20, "reference cases missing in {}", dir.display());
        names
            .into_iter()
            .map(|name| {
                let read = |k: &str| -> Tensor {
                    let a: ndarray::ArrayD<f32> = ndarray_npy::read_npy(dir.join(format!("{name}.{k}.npy"))).unwrap();
                    Tensor::F32(a)
                };
                let (x, y) = (read("x"), read("y"));
                let m = Model::load(dir.join(format!("{name}.onnx"))).unwrap();
                let shapes = m.input_shapes(x.shape()[0], Some(x.shape())).unwrap();
                let g = m.canonical(&shapes, &CanonOptions::default()).unwrap_or_else(|e| panic!("{name}: {e:#}"));
                (name, g, x, y)
            })
            .collect()
    }

    fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f64) {
        assert_eq!(got.shape(), want.shape(), "{what}");
        for (a, b) in got.to_f64_vec().iter().zip(want.to_f64_vec()) {
            assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{what}: {a} vs {b}");
        }
    }

    /// Forward values of the lowered ops against the references, on tract and (when a
    /// library is installed) on ONNX Runtime; the gradient programs of both engines agree.
    #[test]
    fn forward_matches_the_references() {
        use crate::autodiff::append_gradients;
        use crate::autodiff::check::rand_tensor;
        use crate::engine::{tract::TractEngine, Engine};
        use crate::onnx::builder::Builder;
        let mut engines: Vec<(&str, Box<dyn Engine>)> = vec![("tract", Box::new(TractEngine::default()))];
        #[cfg(feature = "ort")]
        match crate::engine::ort::available() {
            Ok(_) => engines.push(("ort", Box::new(crate::engine::ort::OrtEngine::cpu(1).unwrap()))),
            Err(why) => eprintln!("ONNX Runtime part SKIPPED: {why}"),
        }
        let cases = reference_cases();
        eprintln!("{} reference cases on {:?}", cases.len(), engines.iter().map(|(n, _)| *n).collect::<Vec<_>>());
        for (name, g, x, y) in cases {
            let input = g.inputs[0].clone();
            let out = g.outputs[0].clone();
            let mut p = g.clone();
            let seed = Builder::new(&mut p, "seed").constant(rand_tensor(y.shape(), 3).cast(DType::F32));
            let grads = append_gradients(&mut p, &[(out.clone(), seed)], std::slice::from_ref(&input)).unwrap();
            p.outputs = vec![out.clone(), grads[0].clone()];
            let mut first: Option<Tensor> = None;
            for (ename, e) in &engines {
                let res = e.load(&p).unwrap_or_else(|err| panic!("{name} on {ename}: {err:#}")).run(&[(input.as_str(), &x)]).unwrap();
                assert_close(&format!("{name} on {ename}"), &res[&out], &y, 2e-5);
                let dx = &res[&grads[0]];
                match &first {
                    None => first = Some(dx.clone()),
                    Some(d0) => assert_close(&format!("{name}: gradient, {ename} vs tract"), dx, d0, 1e-4),
                }
            }
        }
    }
}
