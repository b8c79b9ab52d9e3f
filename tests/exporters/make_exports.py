"""The exporter corpus of tests/exporters.rs: the same networks written by different
exporters, eras and precisions.

    python3 tests/exporters/make_exports.py        # writes tests/exporters/*.onnx

Seeded: a rerun writes the same weights. Versions used: see the printout (and README.md,
"Exporters"). What it writes:

* residual_torchscript.onnx, residual_dynamo.onnx(.data): one small residual network with
  both of PyTorch's exporters (the dynamo one optimize=False, weights as external data).
* dynamo/NAME.onnx and dynamo_opt/NAME.onnx for every PyTorch fixture of
  models/make_fixtures.py (the network built by that script, its weights checked equal to
  the committed TorchScript export models/NAME.onnx), exported with `dynamo=True`,
  `optimize=False` and `optimize=True` (the latter folds BatchNormalization into the
  convolutions: batch statistics cannot be recovered from such a file).
* helper_opset21.onnx: a CNN written with onnx.helper at opset 21 whose weights are
  constant expressions (a Constant node, Identity, Cast of a float16 initializer,
  DequantizeLinear of an int8 initializer with per-axis scales, Transpose of a constant).
* tf_cnn.onnx: a TensorFlow/Keras CNN converted by tf2onnx (`from_function`), run in the
  virtual environment $TF_PYTHON (default /tmp/tfvenv/bin/python: TensorFlow pins numpy
  and protobuf versions of its own, so it is kept apart from the torch environment);
  skipped, saying so, when that is absent.
* tf_patterns.onnx: the same patterns written by hand with onnx.helper (NHWC input,
  Transpose to NCHW, Conv, Transpose back, Reshape, MatMul whose weight is a Transpose of a
  constant, Add bias).
* tiny_cnn_fp16.onnx: models/make_fixtures.py's tiny_cnn, `model.half()`, TorchScript export
  (float16 input, weights and output).
* tiny_cnn_qdq.onnx: models/tiny_cnn.onnx quantised by
  onnxruntime.quantization.quantize_static (QDQ format, int8 per-channel weights, uint8
  activations, 8 calibration batches of seeded noise).
"""
import copy
import os
import subprocess
import sys
import warnings

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

warnings.filterwarnings("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "models"))
import make_fixtures as mf  # noqa: E402  (the fixtures' builders, seeds and scoring mode)

FIXTURES = ["tiny_cnn", "tiny_mlp", "nb201_a", "nb201_b", "nb201_c", "resnet20_cifar10", "mobilenetv3_tiny", "shuffle_tiny"]


class Residual(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(c, c, 3, padding=1, bias=True), torch.nn.BatchNorm2d(c, affine=False), torch.nn.ReLU())

    def forward(self, x):
        return x + self.body(x)


def network():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1, bias=True), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        Residual(8), torch.nn.MaxPool2d(2), Residual(8),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10),
    ).train()


def residual():
    m = network()
    x = torch.randn(2, 3, 16, 16)
    common = dict(training=torch.onnx.TrainingMode.PRESERVE, input_names=["input"], output_names=["output"])
    torch.onnx.export(m, (x,), os.path.join(HERE, "residual_torchscript.onnx"), dynamo=False, do_constant_folding=False, dynamic_axes={"input": {0: "N"}}, **common)
    torch.onnx.export(m, (x,), os.path.join(HERE, "residual_dynamo.onnx"), dynamo=True, optimize=False, dynamic_shapes=({0: torch.export.Dim("N")},), **common)


def fixture(name):
    """The fixture's torch module in scoring mode, its weights checked against the committed
    TorchScript export (same seed, same builder)."""
    model, _, kw = mf.build(name)
    model = mf.set_scoring_mode(model.float())
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(os.path.join(ROOT, "models", f"{name}.onnx")).graph.initializer}
    values = [v for v in inits.values() if v.dtype == np.float32]
    checked = 0
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked") or "running" in k:
            continue
        a = v.detach().numpy()
        if k in inits:
            assert np.array_equal(inits[k], a), f"{name}: {k} differs from models/{name}.onnx"
        else:  # renamed by constant folding: look for the same values
            assert any(x.shape in (a.shape, a.T.shape) and (np.array_equal(x, a) or np.array_equal(x, a.T)) for x in values), f"{name}: {k} not in models/{name}.onnx"
        checked += 1
    return model, kw.get("export_batch", mf.BATCH), checked


def dynamo(name):
    for optimize, folder in ((False, "dynamo"), (True, "dynamo_opt")):
        os.makedirs(os.path.join(HERE, folder), exist_ok=True)
        path = os.path.join(HERE, folder, f"{name}.onnx")
        model, batch, checked = fixture(name)
        x = torch.as_tensor(mf.make_inputs()[:batch])
        try:
            prog = torch.onnx.export(model, (x,), dynamo=True, opset_version=mf.OPSET, optimize=optimize, input_names=["input"], output_names=["output"])
            prog.save(path, external_data=False)
        except Exception as e:  # noqa: BLE001
            print(f"  {folder}/{name}: the dynamo export FAILED in torch ({type(e).__name__}: {str(e).splitlines()[0][:200]}): skipped")
            continue
        mf.strip_metadata(path)
        ops = sorted({n.op_type for n in onnx.load(path).graph.node})
        print(f"  {folder}/{name}.onnx: {checked} weights as committed, {os.path.getsize(path)} B, BatchNormalization {'present' if 'BatchNormalization' in ops else 'absent'}")


def helper_opset21():
    """Conv(weight = Constant node) + bias Identity(initializer), Relu, Conv(weight = Cast of a
    float16 initializer, bias = Constant), Relu, Conv(weight = DequantizeLinear of int8 with
    per-axis scales and zero points), GlobalAveragePool, Flatten, Gemm(weight = Transpose of a
    Constant)."""
    rng = np.random.default_rng(21)
    w1 = (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32)
    b1 = (rng.standard_normal(8) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((8, 8, 3, 3)) * 0.2).astype(np.float16)
    b2 = (rng.standard_normal(8) * 0.1).astype(np.float32)
    w3 = rng.integers(-100, 100, (16, 8, 1, 1)).astype(np.int8)
    s3 = (rng.uniform(0.001, 0.01, 16)).astype(np.float32)
    z3 = rng.integers(-3, 3, 16).astype(np.int8)
    w4 = (rng.standard_normal((16, 10)) * 0.2).astype(np.float32)  # [in, out]: Gemm reads its transpose
    b4 = (rng.standard_normal(10) * 0.1).astype(np.float32)
    nodes = [
        helper.make_node("Constant", [], ["w1"], value=numpy_helper.from_array(w1)),
        helper.make_node("Identity", ["b1_init"], ["b1"]),
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Cast", ["w2_f16"], ["w2"], to=TensorProto.FLOAT),
        helper.make_node("Constant", [], ["b2"], value=numpy_helper.from_array(b2)),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("DequantizeLinear", ["w3_q", "w3_scale", "w3_zero"], ["w3"], axis=0),
        helper.make_node("Conv", ["r2", "w3"], ["c3"], name="conv3"),
        helper.make_node("GlobalAveragePool", ["c3"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Constant", [], ["w4_t"], value=numpy_helper.from_array(w4)),
        helper.make_node("Transpose", ["w4_t"], ["w4"], perm=[1, 0]),
        helper.make_node("Gemm", ["f", "w4", "b4"], ["output"], transB=1, name="fc"),
    ]
    inits = [numpy_helper.from_array(b1, "b1_init"), numpy_helper.from_array(w2, "w2_f16"), numpy_helper.from_array(w3, "w3_q"),
             numpy_helper.from_array(s3, "w3_scale"), numpy_helper.from_array(z3, "w3_zero"), numpy_helper.from_array(b4, "b4")]
    g = helper.make_graph(nodes, "helper_opset21", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 16, 16])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], producer_name="onnx.helper", ir_version=10)
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, os.path.join(HERE, "helper_opset21.onnx"))
    print(f"  helper_opset21.onnx: onnx {onnx.__version__}, opset 21")


TF_SCRIPT = r"""
import sys, tensorflow as tf, tf2onnx
tf.keras.utils.set_random_seed(7)
bias = tf.keras.initializers.RandomNormal(stddev=0.1)
m = tf.keras.Sequential([tf.keras.Input((16, 16, 3), name="input"),
    tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu", bias_initializer=bias),
    tf.keras.layers.MaxPooling2D(2),
    tf.keras.layers.Conv2D(16, 3, padding="same", activation="relu", bias_initializer=bias),
    tf.keras.layers.Flatten(), tf.keras.layers.Dense(10, bias_initializer=bias)])
spec = (tf.TensorSpec((None, 16, 16, 3), tf.float32, name="input"),)
@tf.function(input_signature=spec)
def f(x):
    return m(x)
# from_function: tf2onnx 1.17's from_keras fails on Keras 3 models (KeyError 'keras_tensor_N')
tf2onnx.convert.from_function(f, input_signature=spec, opset=17, output_path=sys.argv[1])
print("tensorflow", tf.__version__, "keras", tf.keras.__version__, "tf2onnx", tf2onnx.__version__)
"""


def tf_cnn():
    """tf_cnn.onnx by tf2onnx (TensorFlow in its own virtual environment: it pins numpy and
    protobuf versions of its own), when it runs; tf_patterns.onnx by hand in any case."""
    path = os.path.join(HERE, "tf_cnn.onnx")
    py = os.environ.get("TF_PYTHON", "/tmp/tfvenv/bin/python")
    if os.path.exists(py):
        r = subprocess.run([py, "-c", TF_SCRIPT, path], capture_output=True, text=True)
        if r.returncode == 0:
            print("  tf_cnn.onnx: " + r.stdout.strip().splitlines()[-1])
        else:
            print("  tf2onnx failed: " + (r.stderr.strip().splitlines() or ["?"])[-1])
    else:
        print(f"  tf_cnn.onnx: no TensorFlow at {py} (python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu tf2onnx): not written")
    # by hand, with tf2onnx's patterns (and a MatMul weight that is a Transpose of a constant)
    rng = np.random.default_rng(7)
    w1 = (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32)
    b1 = (rng.standard_normal(8) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((10, 8 * 8 * 8)) * 0.05).astype(np.float32)  # [out, in]
    b2 = (rng.standard_normal(10) * 0.1).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["input"], ["x_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["x_nchw", "conv/kernel", "conv/bias"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Transpose", ["p"], ["p_nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["p_nhwc", "flat_shape"], ["f"]),
        helper.make_node("Transpose", ["dense/kernel_t"], ["dense/kernel"], perm=[1, 0]),
        helper.make_node("MatMul", ["f", "dense/kernel"], ["mm"], name="dense/MatMul"),
        helper.make_node("Add", ["mm", "dense/bias"], ["output"]),
    ]
    inits = [numpy_helper.from_array(w1, "conv/kernel"), numpy_helper.from_array(b1, "conv/bias"), numpy_helper.from_array(w2, "dense/kernel_t"),
             numpy_helper.from_array(b2, "dense/bias"), numpy_helper.from_array(np.array([-1, 8 * 8 * 8], np.int64), "flat_shape")]
    g = helper.make_graph(nodes, "tf_like", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["unk__0", 16, 16, 3])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["unk__0", 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="hand-built (tf2onnx patterns)")
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, os.path.join(HERE, "tf_patterns.onnx"))
    print("  tf_patterns.onnx: hand-built with tf2onnx's patterns")


def fp16():
    model, batch, _ = fixture("tiny_cnn")
    m = copy.deepcopy(model).half()
    x = torch.as_tensor(mf.make_inputs()[:batch]).half()
    torch.onnx.export(m, (x,), os.path.join(HERE, "tiny_cnn_fp16.onnx"), dynamo=False, opset_version=mf.OPSET, training=torch.onnx.TrainingMode.PRESERVE,
                      do_constant_folding=False, input_names=["input"], output_names=["output"], dynamic_axes={"input": {0: "N"}})
    print("  tiny_cnn_fp16.onnx: model.half(), TorchScript exporter")


def qdq():
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    import onnxruntime

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(5)
            self.batches = iter([{"input": rng.standard_normal((16, 3, 32, 32)).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.batches, None)

    src = os.path.join(ROOT, "models", "tiny_cnn.onnx")
    out = os.path.join(HERE, "tiny_cnn_qdq.onnx")
    quantize_static(src, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    ops = sorted({n.op_type for n in onnx.load(out).graph.node})
    print(f"  tiny_cnn_qdq.onnx: onnxruntime {onnxruntime.__version__} quantize_static QDQ per-channel; ops {ops}")


def main():
    torch.set_num_threads(2)
    which = sys.argv[1:] or ["residual", "dynamo", "helper", "tf", "fp16", "qdq"]
    print("torch", torch.__version__, "onnx", onnx.__version__)
    if "residual" in which:
        residual()
    if "dynamo" in which:
        for name in FIXTURES:
            dynamo(name)
    if "helper" in which:
        helper_opset21()
    if "tf" in which:
        tf_cnn()
    if "fp16" in which:
        fp16()
    if "qdq" in which:
        qdq()


if __name__ == "__main__":
    main()
