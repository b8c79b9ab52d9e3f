//! The one table of ops zerocost accepts (`zerocost ops`): for each, the opsets whose form
//! import reads and how it is handled — differentiated by a rule (its family file in
//! `autodiff/rules/`), lowered at import into primitive ops that have rules (`canon.rs`,
//! `lower.rs`), removed at import, or run forward without a gradient (and why).
//!
//! Conventions the tests below enforce, so the table stays honest:
//! - an op marked [`Handling::Rule`] has a rule (`rules::rule_for`); one marked
//!   [`Handling::Lowered`] is named as a match arm (`"Op" =>` or `| "Op"`) in `canon.rs`;
//! - every listed op is known to shape inference (`infer_node` does not call it unsupported);
//! - every op with a rule or a lowering has a finite-difference check: its quoted name
//!   (`"Op"`) appears in the `#[cfg(test)]` part of a rule family file or of `lower.rs`,
//!   where the checks call `check_op`, `check_graph` or `check_lowered` (directly or through
//!   a file's helper such as `unary("Op", ..)`). Adding an op without such a check fails
//!   `cargo test`.

use serde::Serialize;

/// The newest opset whose forms the table was written against.
pub const LATEST_OPSET: i64 = 21;

/// How an op is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handling {
    /// Differentiated by a vector-Jacobian rule (family: `rules::family_of`).
    Rule,
    /// Rewritten at import into the named primitive ops, which have rules.
    Lowered(&'static str),
    /// Removed at import (what becomes of it).
    Removed(&'static str),
    /// Accepted and run forward; no gradient flows through it (why).
    NoGradient(&'static str),
}

/// One accepted op.
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

const L: i64 = LATEST_OPSET;

const fn rule(name: &'static str, since: i64, note: &'static str) -> OpInfo {
    OpInfo { name, since, until: L, handling: Handling::Rule, note }
}

const fn lowered(name: &'static str, since: i64, into: &'static str, note: &'static str) -> OpInfo {
    OpInfo { name, since, until: L, handling: Handling::Lowered(into), note }
}

const fn no_grad(name: &'static str, since: i64, why: &'static str) -> OpInfo {
    OpInfo { name, since, until: L, handling: Handling::NoGradient(why), note: "" }
}

const INT_BOOL: &str = "integer or boolean output";
const PIECEWISE: &str = "piecewise constant (zero gradient almost everywhere)";
const NO_RULE: &str = "no gradient rule yet: gradient proxies fail on a path through it";

/// Every op zerocost accepts, by name.
pub const OPS: &[OpInfo] = &[
    // elementwise
    rule("Add", 7, ""),
    rule("Sub", 7, ""),
    rule("Mul", 7, ""),
    rule("Div", 7, ""),
    rule("Neg", 6, ""),
    rule("Pow", 7, ""),
    rule("Abs", 6, ""),
    rule("Sqrt", 6, ""),
    rule("Reciprocal", 6, ""),
    rule("Exp", 6, ""),
    rule("Log", 6, ""),
    rule("Erf", 9, ""),
    rule("Sin", 7, ""),
    rule("Cos", 7, ""),
    rule("Softplus", 1, ""),
    rule("Softsign", 1, ""),
    rule("Sum", 8, "variadic, broadcasting"),
    rule("Mean", 8, "variadic, broadcasting"),
    rule("Max", 8, "variadic, broadcasting; ties share the gradient"),
    rule("Min", 8, "variadic, broadcasting; ties share the gradient"),
    rule("Where", 9, "gradient to the two branches"),
    rule("Cast", 6, "gradient between float types only"),
    // activations
    rule("Relu", 6, ""),
    rule("LeakyRelu", 6, ""),
    rule("PRelu", 7, "slopes broadcast (per channel or full)"),
    rule("Clip", 6, "bounds as attributes (< 11) or inputs"),
    rule("Sigmoid", 6, ""),
    rule("HardSigmoid", 6, ""),
    rule("HardSwish", 14, ""),
    rule("Tanh", 6, ""),
    rule("Softmax", 1, "any axis; before opset 13 the input is coerced to 2-D at `axis` (Reshape around it)"),
    rule("LogSoftmax", 1, "as Softmax"),
    rule("Elu", 6, ""),
    rule("Selu", 6, ""),
    rule("Celu", 12, ""),
    // reductions
    rule("ReduceSum", 1, "axes as attribute (< 13) or input"),
    rule("ReduceMean", 1, "axes as attribute (< 18) or input"),
    rule("ReduceMax", 1, "ties share the gradient"),
    rule("ReduceMin", 1, "ties share the gradient"),
    rule("ReduceSumSquare", 1, ""),
    rule("ReduceL1", 1, ""),
    rule("ReduceL2", 1, ""),
    rule("ReduceLogSumExp", 1, ""),
    rule("CumSum", 11, "exclusive, reverse, negative axis"),
    // shape
    rule("Reshape", 5, "shape must be a constant"),
    rule("Flatten", 1, ""),
    rule("Squeeze", 1, ""),
    rule("Unsqueeze", 1, ""),
    rule("Transpose", 1, ""),
    rule("Concat", 4, ""),
    rule("Split", 2, "sizes as attribute, input or num_outputs"),
    rule("Slice", 1, "constant starts/ends/axes/steps"),
    rule("Gather", 1, "constant indices"),
    rule("Pad", 2, "constant mode only"),
    rule("Expand", 8, ""),
    rule("Tile", 6, ""),
    // linear algebra, convolution, pooling
    rule("MatMul", 1, "batched, broadcasting batch dims; both operands may be activations"),
    rule("Gemm", 7, ""),
    rule("Einsum", 12, "no ellipsis"),
    rule("Conv", 1, ""),
    rule("ConvTranspose", 1, ""),
    rule("MaxPool", 1, "the indices output has no gradient"),
    rule("AveragePool", 1, ""),
    rule("GlobalMaxPool", 1, ""),
    rule("GlobalAveragePool", 1, ""),
    rule("Resize", 10, "nearest by a rule; linear and cubic lowered to MatMul (see below); no antialias, axes, tf_crop_and_resize"),
    // lowered at import
    lowered("BatchNormalization", 9, "zerocost.BatchNormTrain (batch statistics), Mul+Add (running) or nothing (--bn remove)", ""),
    lowered("InstanceNormalization", 6, "ReduceMean, Sub, Mul, Sqrt, Div, Add", ""),
    lowered("LayerNormalization", 17, "ReduceMean, Sub, Mul, Sqrt, Div, Add", "any axis; Mean and InvStdDev outputs unsupported"),
    lowered("GroupNormalization", 18, "Reshape and the LayerNormalization ops", "scale/bias per group (18) or per channel (21)"),
    lowered("Gelu", 20, "Erf (approximate none) or Tanh (approximate tanh) with Mul/Add", ""),
    lowered("LRN", 1, "Mul, AveragePool over channels, Pow, Div", ""),
    lowered("Mish", 18, "Softplus, Tanh, Mul", ""),
    lowered("ThresholdedRelu", 10, "Greater, Cast, Mul", ""),
    lowered("DepthToSpace", 1, "Reshape, Transpose, Reshape", "DCR and CRD"),
    lowered("SpaceToDepth", 1, "Reshape, Transpose, Reshape", ""),
    OpInfo {
        name: "Upsample",
        since: 7,
        until: 9,
        handling: Handling::Lowered("Resize (asymmetric coordinates, floor rounding)"),
        note: "scales as attribute (7) or input (9)",
    },
    lowered("CastLike", 15, "Cast", ""),
    // sequences from a split (sequence.rs), before shape inference sees them
    lowered("SplitToSequence", 11, "nothing itself: each SequenceAt of it becomes a Slice", "only read by SequenceAt at constant positions"),
    lowered("SequenceAt", 11, "Slice of the split input (and Squeeze where keepdims=0)", "of a SplitToSequence; other sequence ops are refused"),
    // removed at import
    OpInfo { name: "Constant", since: 1, until: L, handling: Handling::Removed("an initializer"), note: "" },
    OpInfo { name: "Identity", since: 1, until: L, handling: Handling::Removed("its input"), note: "" },
    OpInfo { name: "Dropout", since: 1, until: L, handling: Handling::Removed("its input (inference; the mask is all ones)"), note: "" },
    // no gradient
    no_grad("Equal", 1, INT_BOOL),
    no_grad("Less", 1, INT_BOOL),
    no_grad("Greater", 1, INT_BOOL),
    no_grad("LessOrEqual", 12, INT_BOOL),
    no_grad("GreaterOrEqual", 12, INT_BOOL),
    no_grad("Not", 1, INT_BOOL),
    no_grad("And", 1, INT_BOOL),
    no_grad("Or", 1, INT_BOOL),
    no_grad("Xor", 1, INT_BOOL),
    no_grad("ArgMax", 1, INT_BOOL),
    no_grad("ArgMin", 1, INT_BOOL),
    no_grad("Shape", 1, INT_BOOL),
    no_grad("Size", 1, INT_BOOL),
    no_grad("IsNaN", 9, INT_BOOL),
    no_grad("IsInf", 10, INT_BOOL),
    no_grad("ConstantOfShape", 9, "a constant"),
    no_grad("Range", 11, "a constant"),
    no_grad("OneHot", 9, "a constant of the indices"),
    no_grad("Floor", 6, PIECEWISE),
    no_grad("Ceil", 6, PIECEWISE),
    no_grad("Round", 11, PIECEWISE),
    no_grad("Sign", 9, PIECEWISE),
    no_grad("Mod", 10, NO_RULE),
    no_grad("ReduceProd", 1, NO_RULE),
    no_grad("LpPool", 1, NO_RULE),
    no_grad("GatherElements", 11, NO_RULE),
    no_grad("ScatterElements", 11, NO_RULE),
    no_grad("ScatterND", 11, NO_RULE),
];

/// The table row of `op`, if zerocost accepts it.
pub fn lookup(op: &str) -> Option<&'static OpInfo> {
    OPS.iter().find(|o| o.name == op)
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
        }
    }

    /// The rule's family, what it is lowered into, what it becomes, or why it has no gradient.
    pub fn detail(&self) -> String {
        match self.handling {
            Handling::Rule => crate::autodiff::rules::family_of(self.name).unwrap_or("?").to_string(),
            Handling::Lowered(into) => into.to_string(),
            Handling::Removed(what) => what.to_string(),
            Handling::NoGradient(why) => why.to_string(),
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
    let mut v: Vec<OpRow> = OPS
        .iter()
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
    use crate::autodiff::rules::rule_for;
    use crate::onnx::infer::infer_node;
    use crate::onnx::ir::{DType, Graph, Node, TypeInfo};
    use std::collections::HashSet;

    /// Test sources scanned for finite-difference checks (see the module's conventions).
    const CHECKED_SOURCES: &[&str] = &[
        include_str!("../autodiff/rules/activation.rs"),
        include_str!("../autodiff/rules/conv.rs"),
        include_str!("../autodiff/rules/elementwise.rs"),
        include_str!("../autodiff/rules/linalg.rs"),
        include_str!("../autodiff/rules/norm.rs"),
        include_str!("../autodiff/rules/pool.rs"),
        include_str!("../autodiff/rules/reduce.rs"),
        include_str!("../autodiff/rules/shape.rs"),
        include_str!("lower.rs"),
        include_str!("sequence.rs"),
    ];

    /// Ops lowered by `sequence.rs` before shape inference sees the node.
    const SEQUENCE_OPS: &[&str] = &["SplitToSequence", "SequenceAt"];

    #[test]
    fn names_are_unique() {
        let mut seen = HashSet::new();
        for o in OPS {
            assert!(seen.insert(o.name), "{} is listed twice", o.name);
            assert!(o.since >= 1 && o.since <= o.until, "{}: opsets {}", o.name, o.opsets());
        }
    }

    #[test]
    fn every_op_with_a_rule_has_one_and_the_others_do_not_claim_one() {
        for o in OPS {
            match o.handling {
                Handling::Rule => {
                    assert!(rule_for(o.name).is_some(), "{} is listed with a rule but has none", o.name);
                    assert!(crate::autodiff::rules::family_of(o.name).is_some(), "{}: no family", o.name);
                }
                Handling::NoGradient(_) => {
                    // either no rule at all or the no-gradient rule of NON_DIFFERENTIABLE
                    let silent = crate::autodiff::rules::NON_DIFFERENTIABLE.contains(&o.name);
                    assert!(silent || rule_for(o.name).is_none(), "{} has a rule but is listed without gradient", o.name);
                }
                _ => {}
            }
        }
    }

    #[test]
    fn every_lowered_op_is_lowered_in_canon() {
        let canon = include_str!("canon.rs");
        for o in OPS.iter().filter(|o| matches!(o.handling, Handling::Lowered(_) | Handling::Removed(_))) {
            if SEQUENCE_OPS.contains(&o.name) {
                assert!(include_str!("sequence.rs").contains(&format!("\"{}\" =>", o.name)), "{} is not lowered in sequence.rs", o.name);
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
        for o in OPS.iter().filter(|o| !SEQUENCE_OPS.contains(&o.name)) {
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
        for o in OPS.iter().filter(|o| matches!(o.handling, Handling::Rule | Handling::Lowered(_))) {
            let quoted = format!("\"{}\"", o.name);
            if !tests.iter().any(|t| t.contains(&quoted)) {
                missing.push(o.name);
            }
        }
        assert!(missing.is_empty(), "ops without a finite-difference check in a rule file's or lower.rs's tests: {missing:?}");
    }

    #[test]
    fn every_rule_is_in_the_table() {
        // the quoted op names of each family's `rule` match (composite ops are internal)
        for src in &CHECKED_SOURCES[..8] {
            let body = src.split("pub fn rule(op: &str)").nth(1).unwrap().split("_ => return None").next().unwrap();
            for part in body.split('"').skip(1).step_by(2) {
                assert!(lookup(part).is_some(), "{part} has a rule but is not in the ops table");
            }
        }
    }
}
