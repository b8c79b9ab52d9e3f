//! Everything zerocost knows about an op, in one registry built from the op families (one
//! module each: `elementwise`, `discrete`, `activation`, `reduce`, `shape`, `constant`,
//! `linalg`, `conv`, `pool`, `norm`). Each family module lists its ops in a `pub const OPS:
//! &[OpDef]`; an [`OpDef`] holds the op's row of the `zerocost ops` table (opsets, how it is
//! handled, restrictions), its shape inference, its constant folding (where it folds) and its
//! vector-Jacobian rule. Shape inference (`onnx::infer`), folding (`onnx::fold`), the reverse
//! pass (`autodiff`), `zerocost inspect` and `zerocost ops` all read [`def`] / [`OPS`]-style
//! tables through this registry, so no other list of op names needs to change.
//!
//! A rule receives the node, the gradient of each output (None where nothing flows back) and
//! which inputs need a gradient; it appends nodes through the builder and returns one
//! optional gradient per input, of that input's shape. Rules emit only ops that have rules
//! themselves, so gradient programs can be differentiated again.
//!
//! Adding an op means one entry in its family's `OPS` plus the functions it names, in that
//! same file, and a finite-difference check in the file's tests (the tests below fail
//! without one). For example, a `Cube` (y = x³) in `elementwise.rs`:
//!
//! ```ignore
//! pub const OPS: &[OpDef] = &[
//!     // ...
//!     OpDef::rule("Cube", 1, "", same_as_input, cube).folds(Fold::Values(fold_cube)),
//! ];
//!
//! /// d(x³) = 3x²·g.
//! fn cube(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
//!     let x2 = b.mul(&n.inputs[0], &n.inputs[0])?;
//!     let d = b.mul_scalar(&x2, 3.0)?;
//!     Ok(vec![Some(b.mul(gy0(gy)?, &d)?)])
//! }
//!
//! fn fold_cube(g: &Graph, n: &Node, _: &[usize], _: DType) -> Result<ArrayD<f64>> {
//!     Ok(arg(g, n, 0)?.mapv(|x| x * x * x))
//! }
//!
//! // in the file's tests: finite differences, first and second order (check_op)
//! #[test]
//! fn cube() {
//!     unary("Cube", rand_tensor(&[2, 3], 1));
//! }
//! ```
//!
//! An op rewritten at import (`OpDef::lowered`) names its lowering's target ops; the
//! rewrite itself is an arm of `onnx/canon.rs` (the tests check that it is there).
//!
//! Conventions the tests below enforce, so the table stays honest:
//! - an op marked [`Handling::Rule`] has a rule; one marked [`Handling::Lowered`] is named
//!   as a match arm (`"Op" =>` or `| "Op"`) in `canon.rs` (or `sequence.rs`); one marked
//!   [`Handling::NoGradient`] has the zero-gradient rule unless it has no rule yet;
//! - every listed op is known to shape inference (`infer_node` does not call it unsupported);
//! - every op with a rule or a lowering has a finite-difference check: its quoted name
//!   (`"Op"`) appears in the `#[cfg(test)]` part of a family file or of `lower.rs`, where
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
use anyhow::Result;
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
}

const L: i64 = LATEST_OPSET;

const INT_BOOL: &str = "integer or boolean output";
const PIECEWISE: &str = "piecewise constant (zero gradient almost everywhere)";
const NO_RULE: &str = "no gradient rule yet: gradient proxies fail on a path through it";

impl OpDef {
    const fn new(name: &'static str, since: i64, handling: Handling, note: &'static str, infer: Infer) -> Self {
        OpDef { info: OpInfo { name, since, until: L, handling, note }, infer, fold: None, rule: None }
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
        include_str!("../onnx/lower.rs"),
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
    fn every_lowered_op_is_lowered_in_canon() {
        let canon = include_str!("../onnx/canon.rs");
        for o in table().filter(|o| matches!(o.handling, Handling::Lowered(_) | Handling::Removed(_))) {
            if SEQUENCE_OPS.contains(&o.name) {
                assert!(include_str!("../onnx/sequence.rs").contains(&format!("\"{}\" =>", o.name)), "{} is not lowered in sequence.rs", o.name);
                continue;
            }
            let arm = format!("\"{}\" =>", o.name);
            let alt = format!("| \"{}\"", o.name);
            let first = format!("\"{}\" |", o.name);
            assert!(canon.contains(&arm) || canon.contains(&alt) || canon.contains(&first), "{} is not a match arm of canon.rs", o.name);
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
        assert!(missing.is_empty(), "ops without a finite-difference check in a rule file's or lower.rs's tests: {missing:?}");
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
}
