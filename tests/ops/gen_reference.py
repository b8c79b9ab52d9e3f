"""Reference outputs for the ops zerocost lowers at import (src/onnx/lower.rs).

Writes, for each case, <case>.onnx (one node, float32), <case>.x.npy (the input) and
<case>.y.npy (the output of ONNX Runtime, or of the numpy formula where ONNX Runtime does
not implement the op form). The Rust test `lower::tests::forward_matches_the_references`
imports each model, runs the lowered graph on tract and compares.

Run from the repository root: python3 tests/ops/gen_reference.py
"""
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(0)


def model(name, op, x_shape, opset, attrs=None, consts=(), n_out_dims=None):
    """One-node model: input x, optional constant inputs (name -> array, or None = absent)."""
    inits, inputs = [], ["x"]
    for cname, arr in consts:
        if arr is None:
            inputs.append("")
            continue
        inits.append(numpy_helper.from_array(arr, name=cname))
        inputs.append(cname)
    node = helper.make_node(op, inputs, ["y"], **(attrs or {}))
    graph = helper.make_graph(
        [node], name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def save(name, m, x, y=None):
    """y: None runs ONNX Runtime, "reference" the ONNX reference evaluator, else the array."""
    if isinstance(y, str):
        y = ReferenceEvaluator(m).run(None, {"x": x})[0]
    elif y is None:
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        y = sess.run(None, {"x": x})[0]
    onnx.save(m, os.path.join(HERE, f"{name}.onnx"))
    np.save(os.path.join(HERE, f"{name}.x.npy"), x)
    np.save(os.path.join(HERE, f"{name}.y.npy"), y.astype(np.float32))


def x_of(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def lrn_ref(x, size, alpha, beta, bias):
    """ONNX LRN: sum of squares over channels c - floor((size-1)/2) ..= c + ceil((size-1)/2)."""
    x64 = x.astype(np.float64)
    c = x.shape[1]
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = np.zeros_like(x64)
    for k in range(c):
        sq[:, k] = (x64[:, max(0, k - lo):min(c, k + hi + 1)] ** 2).sum(axis=1)
    return x64 / (bias + alpha / size * sq) ** beta


def group_norm_ref(x, scale, bias, groups, eps, per_channel):
    n, c = x.shape[:2]
    xr = x.reshape(n, groups, -1).astype(np.float64)
    xr = (xr - xr.mean(-1, keepdims=True)) / np.sqrt(xr.var(-1, keepdims=True) + eps)
    if per_channel:
        y = xr.reshape(x.shape)
        shape = [1, c] + [1] * (x.ndim - 2)
        return y * scale.reshape(shape) + bias.reshape(shape)
    y = xr * scale.reshape(1, groups, 1) + bias.reshape(1, groups, 1)
    return y.reshape(x.shape)


def main():
    # LRN, odd and even windows. ONNX Runtime takes odd sizes only, and the ONNX reference
    # evaluator (1.23) loops over the batch instead of the channels, so the even window is
    # the spec's formula, which matches ONNX Runtime on the odd one.
    for size in (3, 4):
        x = x_of(2, 7, 3, 3)
        m = model("lrn", "LRN", x.shape, 13, dict(size=size, alpha=0.1, beta=0.75, bias=2.0))
        y = lrn_ref(x, size, 0.1, 0.75, 2.0)
        if size % 2:
            ort_y = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
            assert np.allclose(y, ort_y, atol=1e-6)
        save(f"lrn_{size}", m, x, y)
    # GroupNormalization: opset 21 (per channel) through ONNX Runtime, opset 18 (per group)
    # by the formula (ONNX Runtime expands the opset-18 function), checked against the
    # reference evaluator
    x = x_of(2, 6, 3, 2)
    for opset, per_channel in ((18, False), (21, True)):
        k = 6 if per_channel else 3
        scale, bias = x_of(k), x_of(k)
        m = model("gn", "GroupNormalization", x.shape, opset, dict(num_groups=3, epsilon=1e-5), [("scale", scale), ("bias", bias)])
        y = None if per_channel else group_norm_ref(x, scale, bias, 3, 1e-5, False)
        if y is not None:
            assert np.allclose(y, ReferenceEvaluator(m).run(None, {"x": x})[0], atol=1e-5)
        save(f"group_norm_{opset}", m, x, y)
    # Resize linear and cubic
    x = x_of(1, 2, 4, 5)
    cases = [
        ("linear", "half_pixel", {}, [1, 1, 2.0, 1.5]),
        ("linear", "align_corners", {}, [1, 1, 1.75, 0.6]),
        ("linear", "pytorch_half_pixel", {}, [1, 1, 2.0, 3.0]),
        ("linear", "asymmetric", {}, [1, 1, 0.5, 2.0]),
        ("cubic", "half_pixel", {}, [1, 1, 2.0, 1.5]),
        ("cubic", "align_corners", {}, [1, 1, 1.5, 2.0]),
        ("cubic", "asymmetric", dict(cubic_coeff_a=-0.5), [1, 1, 2.0, 2.0]),
        ("cubic", "half_pixel", dict(exclude_outside=1), [1, 1, 0.75, 2.5]),
    ]
    for i, (mode, coord, extra, scales) in enumerate(cases):
        attrs = dict(mode=mode, coordinate_transformation_mode=coord, **extra)
        consts = [("roi", None), ("scales", np.array(scales, np.float32))]
        save(f"resize_{i}_{mode}_{coord}", model("resize", "Resize", x.shape, 13, attrs, consts), x)
    # Resize with sizes
    consts = [("roi", None), ("scales", None), ("sizes", np.array([1, 2, 7, 3], np.int64))]
    save("resize_sizes_linear", model("resize", "Resize", x.shape, 13, dict(mode="linear"), consts), x)
    # Upsample-9 linear (asymmetric)
    consts = [("scales", np.array([1, 1, 2.0, 2.0], np.float32))]
    save("upsample_9_linear", model("up", "Upsample", x.shape, 9, dict(mode="linear"), consts), x)
    # DepthToSpace / SpaceToDepth
    x = x_of(2, 8, 2, 3)
    for mode in ("DCR", "CRD"):
        save(f"depth_to_space_{mode}", model("d2s", "DepthToSpace", x.shape, 13, dict(blocksize=2, mode=mode)), x)
    x = x_of(2, 2, 4, 6)
    save("space_to_depth", model("s2d", "SpaceToDepth", x.shape, 13, dict(blocksize=2)), x)
    # Gelu (opset 20), Mish, ThresholdedRelu
    x = 3 * x_of(3, 7)
    save("gelu_tanh", model("gelu", "Gelu", x.shape, 20, dict(approximate="tanh")), x)
    save("gelu_none", model("gelu", "Gelu", x.shape, 20), x)
    save("mish", model("mish", "Mish", x.shape, 18), x)
    save("thresholded_relu", model("trelu", "ThresholdedRelu", x.shape, 10, dict(alpha=0.5)), x)


if __name__ == "__main__":
    main()
