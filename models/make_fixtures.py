#!/usr/bin/env python3
"""Make the small ONNX test fixtures and their PyTorch oracle values.

Run by hand (not by CI), from anywhere:

    python3 models/make_fixtures.py                 # all fixtures
    python3 models/make_fixtures.py tiny_cnn nb201_a  # only some
    python3 models/make_fixtures.py --validate tests/reference
        # re-run the proxy code below on the shared reference models (weights read
        # back from their model.onnx) and compare with their ref.json proxies_f64
    python3 models/make_fixtures.py --update-az [NAME ...]
        # only compute AZ-NAS's components (az_nas(); features from module hooks) of
        # existing fixtures and add them to their ref.json
    python3 models/make_fixtures.py --update-later [NAME ...]
        # only (re)compute the later proxies (meco, epe_nas, swap, grad_sign, ntk_cond,
        # linear_regions, zen; class LaterScorer) of existing fixtures and add them to
        # their ref.json, leaving the ONNX files, the .npy/.npz files and every other value
        # as they are (about 5 minutes for all fixtures on 2 cores)

For every fixture NAME it writes

    models/NAME.onnx
    tests/fixtures/NAME/inputs.npy   float32 [16,3,32,32], np.random.default_rng(0).standard_normal
    tests/fixtures/NAME/targets.npy  int64 [16], np.random.default_rng(1).integers(0, num_classes, 16)
    tests/fixtures/NAME/grads.npz    float32 gradients computed in float64 (train mode, mean CE):
                                     one key per scored weight (its ONNX initializer name) + "input"
    tests/fixtures/NAME/ref.json     proxies (float32 run), proxies_f64, per-layer values, details

Every number comes from PyTorch autograd on the torch module (never from ONNX Runtime,
which is used only to check that the export computes the same forward pass).
Definitions: shared/SPEC.md section 1 (the zero-cost-proxies paper's code).
Everything is seeded; the output is deterministic up to float32 thread-order noise
in the float32 (`proxies`) values.
"""

import argparse
import copy
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import numpy_helper
from torch.overrides import TorchFunctionMode

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "models"
FIXTURES_DIR = ROOT / "tests" / "fixtures"

BATCH = 16
NUM_CLASSES = 10
IMG = (3, 32, 32)
OPSET = 17
ORT_DISABLED = ["ConstantSharing"]

PROXIES = ["grad_norm", "snip", "grasp", "fisher", "jacob_cov", "plain", "synflow",
           "synflow_bn", "l2_norm", "nwot", "zico", "zico_paper"]
LAYERWISE = ["grad_norm", "snip", "grasp", "fisher", "plain", "synflow", "synflow_bn",
             "l2_norm", "zico", "zico_paper"]


def versions():
    import pytorchcv
    return {"torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": ort.__version__, "numpy": np.__version__,
            "pytorchcv": getattr(pytorchcv, "__version__", "?"),
            "onnxscript": _version_of("onnxscript"),
            "python": platform.python_version()}


def _version_of(mod):
    try:
        return __import__(mod).__version__
    except Exception:
        return None


# ----------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------

class MatMulLinear(nn.Module):
    """y = x @ weight, weight [in, out] a parameter: exports as MatMul(x, initializer)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cin, cout))
        bound = 1.0 / math.sqrt(cin)
        nn.init.uniform_(self.weight, -bound, bound)
        self.node_out = nn.Identity()  # fisher reads the MatMul node's output here

    def forward(self, x):
        return self.node_out(x @ self.weight)


class TinyMLP(nn.Module):
    """Flatten, Linear 3072->32 (Gemm), ReLU, x @ W 32->16 (MatMul), ReLU, Linear 16->10 (Gemm)."""

    def __init__(self, hidden=32, mid=16, ncls=NUM_CLASSES):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(3 * 32 * 32, hidden)
        self.relu1 = nn.ReLU()
        self.mm = MatMulLinear(hidden, mid)
        self.relu2 = nn.ReLU()
        self.fc2 = nn.Linear(mid, ncls)

    def forward(self, x):
        return self.fc2(self.relu2(self.mm(self.relu1(self.fc1(self.flatten(x))))))


class RefTinyMLP(nn.Module):
    """The shared reference tiny_mlp (Linear 3072->64, ReLU, Linear 64->10)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3072, 64)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(torch.flatten(x, 1))))


class TinyCNN(nn.Module):
    """Conv3x3 3->8 (bias)+BN+ReLU+MaxPool2+Conv3x3 8->16 s2 (bias)+BN+ReLU
    [+MaxPool(3, s2, p1)]+AdaptiveAvgPool+Linear 16->10 (the shared reference tiny_cnn,
    plus an overlapping max pool when extra_pool)."""

    def __init__(self, extra_pool=False):
        super().__init__()
        layers = [nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                  nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU()]
        if extra_pool:
            layers.append(nn.MaxPool2d(3, stride=2, padding=1))
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(16, NUM_CLASSES)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


# --- NAS-Bench-201 (as the zero-cost-proxies paper's nasbench2 model builds it) ---------

def parse_nb201(arch):
    """'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' -> [[(op, j)], [(op, j), ...], ...]"""
    nodes = []
    for part in arch.split("+"):
        ops = [t for t in part.split("|") if t]
        nodes.append([(o.split("~")[0], int(o.split("~")[1])) for o in ops])
    return nodes


class Zero(nn.Module):
    def forward(self, x):
        return x.mul(0.0)


class Pooling(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    def forward(self, x):
        return self.pool(x)


def relu_conv_bn(cin, cout, k):
    # cell ops: affine=False (so the conv has a bias), no running statistics
    return nn.Sequential(nn.ReLU(inplace=False),
                         nn.Conv2d(cin, cout, k, stride=1, padding=(k - 1) // 2, bias=True),
                         nn.BatchNorm2d(cout, affine=False, track_running_stats=False))


def nb201_op(op, c):
    if op == "none":
        return Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op == "avg_pool_3x3":
        return Pooling()
    if op == "nor_conv_1x1":
        return relu_conv_bn(c, c, 1)
    if op == "nor_conv_3x3":
        return relu_conv_bn(c, c, 3)
    raise ValueError(op)


class NB201Cell(nn.Module):
    def __init__(self, nodes, c):
        super().__init__()
        self.nodes = nodes
        self.ops = nn.ModuleDict()
        for i, node in enumerate(nodes, start=1):
            for op, j in node:
                self.ops[f"{i}_{j}_{op}"] = nb201_op(op, c)

    def forward(self, x):
        feats = [x]
        for i, node in enumerate(self.nodes, start=1):
            s = None
            for op, j in node:
                y = self.ops[f"{i}_{j}_{op}"](feats[j])
                s = y if s is None else s + y
            feats.append(s)
        return feats[-1]


class NB201ResBlock(nn.Module):
    """ResNetBasicblock (stride 2): shortcut AvgPool2d(2,2)+Conv1x1, ReLU-Conv3x3 s2-BN,
    ReLU-Conv3x3-BN (affine BN with running stats, convs without bias)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv_a = nn.Sequential(nn.ReLU(inplace=False), nn.Conv2d(cin, cout, 3, 2, 1, bias=False),
                                    nn.BatchNorm2d(cout))
        self.conv_b = nn.Sequential(nn.ReLU(inplace=False), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                                    nn.BatchNorm2d(cout))
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2, 0), nn.Conv2d(cin, cout, 1, 1, 0, bias=False))

    def forward(self, x):
        r = self.shortcut(x)
        return r + self.conv_b(self.conv_a(x))


class NB201Net(nn.Module):
    def __init__(self, arch, c=16, n=5, ncls=NUM_CLASSES):
        super().__init__()
        nodes = parse_nb201(arch)
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        layers, cin = [], c
        for stage, cc in enumerate([c, 2 * c, 4 * c]):
            if stage > 0:
                layers.append(NB201ResBlock(cin, cc))
                cin = cc
            for _ in range(n):
                layers.append(NB201Cell(nodes, cc))
        self.body = nn.Sequential(*layers)
        self.head_bn = nn.BatchNorm2d(4 * c)
        self.head_relu = nn.ReLU(inplace=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(4 * c, ncls)

    def forward(self, x):
        x = self.body(self.stem(x))
        x = self.pool(self.head_relu(self.head_bn(x)))
        return self.classifier(torch.flatten(x, 1))


# --- MobileNetV3-style tiny net: depthwise conv, squeeze-excitation, hardswish, ReLU6 ----

class HardSigmoid(nn.Module):
    """torch's hardsigmoid has no double backward (grasp needs one), so the torch forward
    computes the same function as clamp(x/6 + 1/2, 0, 1); while exporting it calls
    F.hardsigmoid, which writes an ONNX HardSigmoid node (alpha=1/6, beta=1/2)."""

    def forward(self, x):
        if torch.onnx.is_in_onnx_export():
            return F.hardsigmoid(x)
        return torch.clamp(x / 6.0 + 0.5, 0.0, 1.0)


class SqueezeExcite(nn.Module):
    def __init__(self, c, r, gate):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, r, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(r, c, 1)
        self.gate = gate()

    def forward(self, x):
        return x * self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cexp, cout, stride, act, gate):
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(cin, cexp, 1, bias=False), nn.BatchNorm2d(cexp), act())
        self.dw = nn.Sequential(nn.Conv2d(cexp, cexp, 3, stride, 1, groups=cexp, bias=False),
                                nn.BatchNorm2d(cexp), act())
        self.se = SqueezeExcite(cexp, cexp // 4, gate)
        self.project = nn.Sequential(nn.Conv2d(cexp, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.use_res = stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + y if self.use_res else y


class MobileNetV3Tiny(nn.Module):
    def __init__(self, ncls=NUM_CLASSES):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.blocks = nn.Sequential(
            InvertedResidual(16, 32, 16, 1, nn.ReLU6, HardSigmoid),
            InvertedResidual(16, 48, 24, 2, nn.Hardswish, nn.Sigmoid),
            InvertedResidual(24, 72, 24, 1, nn.Hardswish, HardSigmoid),
        )
        self.head = nn.Sequential(nn.Conv2d(24, 96, 1, bias=False), nn.BatchNorm2d(96), nn.Hardswish())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(96, 64), nn.Hardswish(), nn.Dropout(0.2),
                                        nn.Linear(64, ncls))

    def forward(self, x):
        x = self.pool(self.head(self.blocks(self.stem(x))))
        return self.classifier(torch.flatten(x, 1))


# --- shuffle_tiny: grouped conv, channel shuffle, dense concat, Pad, Slice ---------------

def channel_shuffle(x, groups):
    # int(): the exporter writes the dimensions (batch included) as constants
    n, c, h, w = (int(d) for d in x.shape)
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleTiny(nn.Module):
    def __init__(self, ncls=NUM_CLASSES):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.gconv = nn.Conv2d(16, 16, 3, 1, 0, groups=4, bias=False)  # after an explicit Pad
        self.gbn = nn.BatchNorm2d(16)
        self.grelu = nn.ReLU()
        self.dense = nn.Sequential(nn.Conv2d(16, 8, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.branch = nn.Sequential(nn.Conv2d(12, 12, 3, 1, 1, groups=12, bias=False), nn.BatchNorm2d(12),
                                    nn.Conv2d(12, 12, 1, bias=False), nn.BatchNorm2d(12), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(24, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, ncls)

    def forward(self, x):
        x = self.stem(x)
        x = self.grelu(self.gbn(self.gconv(F.pad(x, (1, 1, 1, 1)))))
        x = channel_shuffle(x, 4)
        x = torch.cat([x, self.dense(x)], 1)          # DenseNet-style concat, 24 channels
        x = self.pool(x)
        a, b = x[:, :12], x[:, 12:]                   # channel split (Slice)
        x = torch.cat([a, self.branch(b)], 1)
        x = channel_shuffle(x, 2)
        x = self.gap(self.down(x))
        x = x.reshape(int(x.shape[0]), -1)            # Reshape with the batch baked in
        return self.fc(x)


def resnet20_cifar10():
    from pytorchcv.model_provider import get_model
    return get_model("resnet20_cifar10", pretrained=False)


# ----------------------------------------------------------------------------------------
# Model preparation helpers
# ----------------------------------------------------------------------------------------

BN_TYPES = (nn.modules.batchnorm._BatchNorm,)
DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


def set_scoring_mode(m):
    """train mode (BN batch statistics), every Dropout in eval (identity), no in-place ops."""
    m.train()
    for mod in m.modules():
        if isinstance(mod, DROPOUT_TYPES):
            mod.eval()
        if hasattr(mod, "inplace") and isinstance(getattr(mod, "inplace"), bool):
            mod.inplace = False
    return m


def prep(model, dtype):
    m = copy.deepcopy(model).to(dtype)
    return set_scoring_mode(m)


def replace_bn_with_identity(m):
    for name, mod in list(m.named_modules()):
        for cname, child in list(mod.named_children()):
            if isinstance(child, BN_TYPES):
                setattr(mod, cname, nn.Identity())
    return m


def is_scored_module(mod):
    return isinstance(mod, (nn.Conv2d, nn.Linear, MatMulLinear))


def act_module(mod):
    """module whose output is the scored ONNX node's output (fisher's activation)."""
    return mod.node_out if isinstance(mod, MatMulLinear) else mod


def num_out_channels(mod):
    if isinstance(mod, MatMulLinear):
        return mod.weight.shape[1]
    return mod.weight.shape[0]


def loss_fn(out, y):
    return F.cross_entropy(out, y)


class ReluRecorder(TorchFunctionMode):
    """Records (input > 0) codes of every ReLU call (nn.ReLU modules, F.relu, torch.relu,
    Tensor.relu); ReLU6 / hardtanh / hardswish are not ReLUs."""

    RELU = {F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_}
    if hasattr(F, "relu_"):
        RELU.add(F.relu_)

    def __init__(self):
        super().__init__()
        self.codes = []
        self.inputs = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.RELU:
            x = args[0]
            self.codes.append((x.detach() > 0))
            self.inputs.append(x)
        return func(*args, **kwargs)


# ----------------------------------------------------------------------------------------
# Proxies (PyTorch autograd is the oracle)
# ----------------------------------------------------------------------------------------

class Scorer:
    """Computes every proxy for one torch model on one batch in one dtype."""

    def __init__(self, model, scored_names, x, y, dtype):
        self.model = model           # the pristine float32 model (never modified)
        self.names = scored_names    # torch module names of the scored layers, ONNX order
        self.dtype = dtype
        self.x = torch.as_tensor(x).to(dtype)
        self.y = torch.as_tensor(y).long()

    def _mods(self, m):
        d = dict(m.named_modules())
        return [d[n] for n in self.names]

    def _weights(self, m):
        return [mod.weight for mod in self._mods(m)]

    # grad_norm, plain, snip (+ loss, logits, input gradient)
    def first_order(self):
        m = prep(self.model, self.dtype)
        W = self._weights(m)
        x = self.x.clone().requires_grad_(True)
        out = m(x)
        loss = loss_fn(out, self.y)
        grads = torch.autograd.grad(loss, W + [x])
        gW, gx = grads[:-1], grads[-1]
        res = {
            "grad_norm": [g.norm().item() for g in gW],
            "plain": [(w * g).sum().item() for w, g in zip(W, gW)],
            "snip": [(w * g).abs().sum().item() for w, g in zip(W, gW)],
        }
        extra = {"loss": loss.item(), "logits_sum": out.sum().item(),
                 "grads": [g.detach().cpu().numpy() for g in gW],
                 "input_grad": gx.detach().cpu().numpy()}
        return res, extra

    def grasp(self):
        m = prep(self.model, self.dtype)
        W = self._weights(m)
        g = [t.detach() for t in torch.autograd.grad(loss_fn(m(self.x), self.y), W)]
        gf = torch.autograd.grad(loss_fn(m(self.x), self.y), W, create_graph=True)
        z = sum((gi * gfi).sum() for gi, gfi in zip(g, gf))
        Hg = torch.autograd.grad(z, W)
        vals = [(-w.detach() * h) for w, h in zip(W, Hg)]
        return {"grasp": [v.sum().item() for v in vals]}, {
            "abs_sum": float(sum(v.abs().sum().item() for v in vals))}

    def fisher(self):
        m = prep(self.model, self.dtype)
        mods = self._mods(m)
        acts = {}
        calls = {}
        hooks = []
        for i, mod in enumerate(mods):
            def hook(module, inp, out, i=i):
                acts[i] = out
                calls[i] = calls.get(i, 0) + 1
            hooks.append(act_module(mod).register_forward_hook(hook))
        loss = loss_fn(m(self.x), self.y)
        for h in hooks:
            h.remove()
        assert all(calls.get(i, 0) == 1 for i in range(len(mods))), calls
        A = [acts[i] for i in range(len(mods))]
        dA = torch.autograd.grad(loss, A)
        per_layer, per_channel = [], []
        for mod, a, da in zip(mods, A, dA):
            prod = a.detach() * da
            gnk = prod.sum(dim=tuple(range(2, prod.dim()))) if prod.dim() > 2 else prod
            delta = 0.5 * gnk.pow(2).mean(0)
            k = num_out_channels(mod)
            assert delta.numel() == k
            per_layer.append((delta.sum() * (mod.weight.numel() / k)).item())
            per_channel.append(delta.cpu().double().tolist())
        return {"fisher": per_layer}, {"per_channel": per_channel}

    def jacob_cov(self):
        m = prep(self.model, self.dtype)
        x = self.x.clone().requires_grad_(True)
        out = m(x)
        (J,) = torch.autograd.grad(out.sum(), x)
        J = J.reshape(J.shape[0], -1).detach().cpu().numpy()
        C = np.corrcoef(J)
        det = {"jacobian_shape": list(J.shape)}
        if not np.all(np.isfinite(C)):
            det["eigvalsh"] = None
            return float("nan"), det
        v = np.linalg.eigvalsh(C)
        k = 1e-5
        score = float(-np.sum(np.log(v + k) + 1.0 / (v + k)))
        det.update({"eigvalsh": v.tolist(), "min_eig": float(v.min())})
        return score, det

    def nwot(self):
        m = prep(self.model, self.dtype)
        n = self.x.shape[0]
        rec = ReluRecorder()
        with torch.no_grad(), rec:
            m(self.x)
        K = np.zeros((n, n))
        Ku = np.zeros((n, n))
        seen = set()
        units = 0
        not_batched = 0
        unique_calls = 0
        for code, inp in zip(rec.codes, rec.inputs):
            if code.shape[0] != n:
                not_batched += 1
                continue
            c = code.reshape(n, -1).double().cpu().numpy()
            units += c.shape[1]
            kk = c @ c.T + (1.0 - c) @ (1.0 - c).T
            K += kk
            if id(inp) not in seen:
                seen.add(id(inp))
                Ku += kk
                unique_calls += 1
        sign, ld = np.linalg.slogdet(K)
        sign_u, ld_u = np.linalg.slogdet(Ku)
        return float(ld), {"sign": float(sign), "relu_calls": len(rec.codes), "units": int(units),
                           "relu_calls_not_batched": not_batched,
                           "relu_calls_unique_input": unique_calls,
                           "value_unique_inputs": float(ld_u), "sign_unique_inputs": float(sign_u)}

    def zico(self, cumulative):
        m = prep(self.model, self.dtype)
        W = self._weights(m)
        n = self.x.shape[0]
        recs = [[] for _ in W]
        acc = None
        for sp in range(2):
            st, en = sp * n // 2, (sp + 1) * n // 2
            g = torch.autograd.grad(loss_fn(m(self.x[st:en]), self.y[st:en]), W)
            if cumulative:
                acc = [gi.detach() for gi in g] if acc is None else [a + gi for a, gi in zip(acc, g)]
                cur = acc
            else:
                cur = [gi.detach() for gi in g]
            for r, gi in zip(recs, cur):
                r.append(gi.reshape(-1).cpu().numpy())
        per_layer = []
        for r in recs:
            arr = np.array(r)
            std = np.std(arr, axis=0)
            nz = np.nonzero(std)[0]
            mabs = np.mean(np.abs(arr), axis=0)
            s = np.sum(mabs[nz] / std[nz])
            per_layer.append(float(np.log(s)) if s != 0 else 0.0)
        return per_layer

    def l2_norm(self):
        m = prep(self.model, self.dtype)
        return [w.norm().item() for w in self._weights(m)]

    def synflow(self, bn):
        # always float64, as the paper's code
        m = copy.deepcopy(self.model)
        if not bn:
            replace_bn_with_identity(m)
        m = m.double()
        set_scoring_mode(m)
        with torch.no_grad():
            for _, t in m.state_dict().items():
                if t.is_floating_point():
                    t.abs_()
        W = self._weights(m)
        inp = torch.ones((1,) + tuple(self.x.shape[1:]), dtype=torch.float64)
        out = m(inp)
        g = torch.autograd.grad(out.sum(), W, allow_unused=True)
        return [(w * gi).abs().sum().item() if gi is not None else 0.0 for w, gi in zip(W, g)]

    def all(self):
        per_layer, details, timing = {}, {}, {}

        def timed(name, fn):
            t = time.time()
            r = fn()
            timing[name] = round(time.time() - t, 4)
            return r

        fo, extra = timed("first_order", self.first_order)
        per_layer.update(fo)
        gr, det = timed("grasp", self.grasp)
        per_layer.update(gr)
        details["grasp"] = det
        fi, det = timed("fisher", self.fisher)
        per_layer.update(fi)
        details["fisher"] = det
        jc, det = timed("jacob_cov", self.jacob_cov)
        details["jacob_cov"] = det
        per_layer["synflow"] = timed("synflow", lambda: self.synflow(False))
        per_layer["synflow_bn"] = timed("synflow_bn", lambda: self.synflow(True))
        per_layer["l2_norm"] = timed("l2_norm", self.l2_norm)
        nw, det = timed("nwot", self.nwot)
        details["nwot"] = det
        per_layer["zico"] = timed("zico", lambda: self.zico(True))
        per_layer["zico_paper"] = timed("zico_paper", lambda: self.zico(False))
        details["zico"] = {"splits": 2, "cumulative": True}
        details["zico_paper"] = {"splits": 2, "cumulative": False}
        totals = {}
        for p in PROXIES:
            if p == "jacob_cov":
                totals[p] = jc
            elif p == "nwot":
                totals[p] = nw
            else:
                totals[p] = float(sum(per_layer[p]))
        return totals, {k: per_layer[k] for k in LAYERWISE}, details, extra, timing


# ----------------------------------------------------------------------------------------
# Later proxies (issue 7): independent PyTorch implementations following each paper's
# official code, on the same torch module. Stored as extra keys of ref.json (proxies,
# proxies_f64, per_layer*, rel_diff_f32_vs_f64, details, definitions); the values above
# are left as they are.
# ----------------------------------------------------------------------------------------

LATER = ["meco", "epe_nas", "swap", "grad_sign", "ntk_cond", "linear_regions", "zen"]
LATER_LAYERWISE = ["meco", "grad_sign"]
LATER_DEFINITIONS = {
    "meco": "MeCo (official meco.py forward hook) on the scored layers' outputs: for each, "
            "fea = out[0].reshape(C, -1) (sample 0, channels x positions), torch.corrcoef, NaN/inf "
            "entries set to 0, minimum real eigenvalue (torch.linalg.eig); sum over layers. The "
            "official code hooks every nn.Module; an ONNX graph has no modules, so the hooked "
            "layers are the scored Conv/Linear layers",
    "epe_nas": "EPE-NAS eval_score_perclass on J = d(sum outputs)/d(input) rows: per class "
               "s_c = sum(log(|np.corrcoef(J_c)| + 1e-5)) (one sample: corrcoef = 1); score = "
               "sum_c |s_c| (<= 100 classes)",
    "swap": "SWAP (unregularised): sign(ReLU output) of every ReLU call with a 4-D input, "
            "concatenated per sample (N x M), number of distinct rows of the transpose "
            "(distinct sample-wise patterns of the units)",
    "grad_sign": "GradSign get_gradsign: each sample alone (batch of 1, train-mode BN), CE of "
                 "that sample, gradient w.r.t. every Conv2d/Linear weight; "
                 "np.nansum(|sum_n sign(g_n)|)",
    "ntk_cond": "TE-NAS get_ntk_n (train mode, one batch): per sample n, backward of "
                "logit[n:n+1] with ones (retain_graph, whole-batch forward), gradients of every "
                "parameter whose name contains 'weight'; NTK = G G^T; eigenvalues ascending "
                "(eigh); score = last / first (NaN -> 100000)",
    "linear_regions": "TE-NAS LinearRegionCount on the batch: sign(ReLU output) of every ReLU "
                      "call with a 4-D input, concatenated per sample; number of distinct "
                      "sample patterns (calc_LR)",
    "zen": "Zen-NAS compute_zen_score (repeat 1, mixup_gamma 0.01, train mode): scored "
           "Conv/Linear weights := normal_stream(0, scored-layer index) (rounded to float32, "
           "ONNX layout), their biases 0, affine BN weight 1 / bias 0; x = normal_stream(0, "
           "2^32), eps = normal_stream(0, 2^32+1) (float32, batch shape); f = input of the last "
           "global average pooling; log(mean_n sum|f(x) - f(x + 0.01 eps)|) + sum over "
           "BatchNorm2d with running stats of log(sqrt(mean(running_var))) after the two "
           "forwards (running stats from the fixture's, momentum 0.1)",
}

_M64 = (1 << 64) - 1


def _splitmix64(x):
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def normal_stream(seed, stream, n):
    """The reproducible N(0,1) stream of zerocost's passes::reinit::normal_stream (splitmix64 +
    Box-Muller), re-implemented here so that both sides draw the same numbers."""
    s = _splitmix64(np.array([(stream * 0x100000001B3 + 1) & _M64], dtype=np.uint64))
    key = _splitmix64(np.array([seed], dtype=np.uint64) ^ s)
    k = np.arange(2 * n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        u = ((_splitmix64(key + k) >> np.uint64(11)).astype(np.float64) + 0.5) / 9007199254740992.0
    u1, u2 = u[0::2], u[1::2]
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


class GapRecorder(TorchFunctionMode):
    """Records the input of every global average pooling call (adaptive_avg_pool2d to 1x1,
    avg_pool2d whose kernel covers the map, mean over dims (2, 3))."""

    def __init__(self):
        super().__init__()
        self.inputs = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        x = args[0] if args else None
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            glob = False
            if name == "adaptive_avg_pool2d":
                os_ = args[1] if len(args) > 1 else kwargs.get("output_size")
                glob = os_ in (1, (1, 1), [1, 1])
            elif name == "avg_pool2d":
                k = args[1] if len(args) > 1 else kwargs.get("kernel_size")
                k = (k, k) if isinstance(k, int) else tuple(k)
                pad = args[3] if len(args) > 3 else kwargs.get("padding", 0)
                glob = k == tuple(x.shape[2:]) and pad in (0, (0, 0), [0, 0])
            elif name == "mean":
                d = args[1] if len(args) > 1 else kwargs.get("dim")
                glob = d is not None and sorted(int(v) % 4 for v in (d if isinstance(d, (tuple, list)) else [d])) == [2, 3]
            if glob:
                self.inputs.append(x)
        return func(*args, **kwargs)


def _corrcoef_eig_min(fea):
    fea = fea.reshape(fea.shape[0], -1)
    corr = torch.corrcoef(fea)
    corr[torch.isnan(corr)] = 0
    corr[torch.isinf(corr)] = 0
    values = torch.linalg.eig(corr)[0]
    return torch.min(torch.real(values)).item()


class LaterScorer(Scorer):
    """The later proxies; `layers` are ref.json's scored layers (torch names, ONNX order)."""

    def __init__(self, model, layers, x, y, dtype):
        super().__init__(model, [l["name"] for l in layers], x, y, dtype)
        self.layers = layers

    def meco(self):
        m = prep(self.model, self.dtype)
        mods = self._mods(m)
        vals = {}
        hooks = []
        for i, mod in enumerate(mods):
            def hook(module, inp, out, i=i):
                assert i not in vals
                vals[i] = _corrcoef_eig_min(out[0].detach())
            hooks.append(act_module(mod).register_forward_hook(hook))
        with torch.no_grad():
            m(self.x)
        for h in hooks:
            h.remove()
        per = [vals[i] for i in range(len(mods))]
        per = [0.0 if math.isnan(v) else v for v in per]
        return per

    def epe_nas(self):
        m = prep(self.model, self.dtype)
        x = self.x.clone().requires_grad_(True)
        y = m(x)
        y.backward(torch.ones_like(y))
        jacob = x.grad.detach().reshape(x.shape[0], -1).cpu().numpy()
        labels = self.y.cpu().numpy()
        n_classes = y.shape[-1]
        k = 1e-5
        per_class = {}
        for i, label in enumerate(labels):
            if label in per_class:
                per_class[label] = np.vstack((per_class[label], jacob[i]))
            else:
                per_class[label] = jacob[i]
        ind = {}
        for c in per_class.keys():
            try:
                corrs = np.corrcoef(per_class[c])
                s = np.sum(np.log(abs(corrs) + k))
                if n_classes > 100:
                    s /= len(corrs)
            except Exception:
                continue
            ind[c] = s
        score = 0
        if n_classes <= 100:
            for c in ind:
                score += np.absolute(ind[c])
        else:
            for c in ind:
                for cj in ind:
                    score += np.absolute(ind[c] - ind[cj])
            score /= len(ind)
        return float(score)

    def _relu4d_codes(self):
        m = prep(self.model, self.dtype)
        rec = ReluRecorder()
        with torch.no_grad(), rec:
            m(self.x)
        n = self.x.shape[0]
        feats = [c.reshape(n, -1) for c, inp in zip(rec.codes, rec.inputs) if inp.dim() == 4]
        if not feats:
            return None
        return torch.cat(feats, 1).to(torch.uint8).cpu().numpy()

    def swap(self):
        a = self._relu4d_codes()  # samples x units, sign(relu output)
        if a is None:
            return None, 0  # no ReLU on a 4-D map: undefined
        return int(np.unique(a.T, axis=0).shape[0]), int(a.shape[1])

    def linear_regions(self):
        a = self._relu4d_codes()
        return None if a is None else int(np.unique(a, axis=0).shape[0])

    def grad_sign(self):
        m = prep(self.model, self.dtype)
        W = self._weights(m)
        n = self.x.shape[0]
        per_layer_codes = [[] for _ in W]
        for i in range(n):
            out = m(self.x[[i]])
            loss = loss_fn(out, self.y[[i]])
            g = torch.autograd.grad(loss, W)
            for r, gi in zip(per_layer_codes, g):
                r.append(np.sign(gi.detach().cpu().numpy().reshape(-1)))
        per = []
        for r in per_layer_codes:
            code = np.abs(np.stack(r).sum(axis=0))
            per.append(float(np.nansum(code)))
        return per

    def ntk_cond(self):
        m = prep(self.model, self.dtype)
        m.zero_grad()
        logit = m(self.x.clone())
        grads = []
        params = [(k, W) for k, W in m.named_parameters() if "weight" in k]
        for idx in range(len(self.x)):
            logit[idx:idx + 1].backward(torch.ones_like(logit[idx:idx + 1]), retain_graph=True)
            grad = []
            for k, W in params:
                if W.grad is not None:
                    grad.append(W.grad.view(-1).detach())
            grads.append(torch.cat(grad, -1))
            m.zero_grad(set_to_none=False)
        G = torch.stack(grads, 0)
        ntk = torch.einsum("nc,mc->nm", G, G)
        ev = torch.linalg.eigvalsh(ntk)
        cond = np.nan_to_num((ev[-1] / ev[0]).item(), copy=True, nan=100000.0)
        return float(cond), {"lambda_min": ev[0].item(), "lambda_max": ev[-1].item(),
                             "parameters": int(G.shape[1]),
                             "weight_params": [k for k, W in params if W.grad is not None]}

    def zen(self, seed=0, gamma=1e-2):
        m = prep(self.model, self.dtype)
        mods = self._mods(m)
        with torch.no_grad():
            for k, (mod, lay) in enumerate(zip(mods, self.layers)):
                w = mod.weight
                shape = tuple(w.shape[::-1]) if lay["matched_by"] == "value_transposed" else tuple(w.shape)
                v = normal_stream(seed, k, w.numel()).astype(np.float32).reshape(shape)
                if lay["matched_by"] == "value_transposed":
                    v = v.T
                w.copy_(torch.from_numpy(np.ascontiguousarray(v)).to(self.dtype))
                if getattr(mod, "bias", None) is not None:
                    mod.bias.zero_()
            for mod in m.modules():
                if isinstance(mod, (nn.BatchNorm2d, nn.GroupNorm)) and mod.weight is not None:
                    mod.weight.fill_(1.0)
                    mod.bias.zero_()
            shape = tuple(self.x.shape)
            numel = int(np.prod(shape))
            x1 = torch.from_numpy(normal_stream(seed, 1 << 32, numel).astype(np.float32).reshape(shape))
            e = torch.from_numpy(normal_stream(seed, (1 << 32) + 1, numel).astype(np.float32).reshape(shape))
            # the mixup input as the Rust side forms it: x + gamma*eps in float64, then float32
            xm = (x1.double() + gamma * e.double()).float()
            feats = []
            for inp in (x1, xm):
                rec = GapRecorder()
                with rec:
                    m(inp.to(self.dtype))
                if not rec.inputs:
                    return None, {"error": "no global average pooling"}
                feats.append(rec.inputs[-1].detach())
            diff = torch.sum(torch.abs(feats[0] - feats[1]), dim=[1, 2, 3]).mean()
            log_bn = 0.0
            n_bn = 0
            for mod in m.modules():
                if isinstance(mod, nn.BatchNorm2d) and mod.running_var is not None:
                    log_bn += torch.log(torch.sqrt(torch.mean(mod.running_var))).item()
                    n_bn += 1
            return float(torch.log(diff).item() + log_bn), {
                "log_feature_diff": torch.log(diff).item(), "log_bn_scaling": log_bn, "bn_nodes": n_bn}

    def all_later(self):
        totals, per_layer, details = {}, {}, {}
        per_layer["meco"] = self.meco()
        totals["meco"] = float(sum(per_layer["meco"]))
        totals["epe_nas"] = self.epe_nas()
        sw, units = self.swap()
        totals["swap"] = sw
        details["swap"] = {"units": units}
        per_layer["grad_sign"] = self.grad_sign()
        totals["grad_sign"] = float(sum(per_layer["grad_sign"]))
        totals["ntk_cond"], details["ntk_cond"] = self.ntk_cond()
        totals["linear_regions"] = self.linear_regions()
        totals["zen"], details["zen"] = self.zen()
        return totals, per_layer, details


# --- AZ-NAS (Lee & Ham, CVPR 2024) ------------------------------------------------------

AZ_COMPONENTS = ["az_expressivity", "az_progressivity", "az_trainability"]
AZ_DEFINITION = ("AZ-NAS, as NB201/ZeroShotProxy/compute_az_nas_score.py: Kaiming-normal fan-in "
                 "re-init (normal_stream(0, k) * sqrt(2/fan_in), k = scored-layer index), biases 0, BN "
                 "weight 1 bias 0, train mode; features = the outputs of the model's blocks (module "
                 "forward hooks: NB201 stem + body cells, pytorchcv ResNet init_block + units, TinyCNN "
                 "ReLUs); expressivity = sum of eigen-entropies, progressivity = min increase, "
                 "trainability = mean of 2 - s - 1/(s+1e-6) over blocks with +-1 seeds = signs of "
                 "normal_stream(0, 2**33 + l)")


def az_feature_modules(m):
    """The modules whose outputs AZ-NAS scores (None: no block structure defined here)."""
    if isinstance(m, NB201Net):
        return [m.stem] + list(m.body)
    if isinstance(m, TinyCNN):
        return [mod for mod in m.features if isinstance(mod, nn.ReLU)]
    if type(m).__name__ == "CIFARResNet":
        f = m.features
        return [f.init_block] + [u for st in (f.stage1, f.stage2, f.stage3) for u in st]
    return None


def rademacher(seed, stream, n):
    return np.where(normal_stream(seed, stream, n) > 0, 1.0, -1.0)


def az_nas(model, layers, x, dtype, seed=0):
    """Returns {component: value} (the authors' code, features from module hooks)."""
    m = prep(model, dtype)
    feat_mods = az_feature_modules(m)
    if feat_mods is None:
        return None
    mods = [mm for mm in m.modules() if is_scored_module(mm)]
    by_name = dict(m.named_modules())
    mods = [by_name[l["name"]] for l in layers]
    with torch.no_grad():
        for k, (mod, lay) in enumerate(zip(mods, layers)):
            w = mod.weight
            fan_in = nn.init._calculate_fan_in_and_fan_out(w)[0]
            shape = tuple(w.shape[::-1]) if lay["matched_by"] == "value_transposed" else tuple(w.shape)
            v = (normal_stream(seed, k, w.numel()) * np.sqrt(2.0 / fan_in)).astype(np.float32).reshape(shape)
            if lay["matched_by"] == "value_transposed":
                v = v.T
            w.copy_(torch.from_numpy(np.ascontiguousarray(v)).to(dtype))
            if getattr(mod, "bias", None) is not None:
                mod.bias.zero_()
        for mod in m.modules():
            if isinstance(mod, (nn.BatchNorm2d, nn.GroupNorm)) and mod.affine:
                mod.weight.fill_(1.0)
                mod.bias.zero_()
    feats = []
    hooks = [fm.register_forward_hook(lambda mod, i, o: feats.append(o)) for fm in feat_mods]
    xin = torch.from_numpy(x).to(dtype).requires_grad_(True)
    m(xin)
    for h in hooks:
        h.remove()
    layer_features = feats
    # --- the authors' code from here (expressivity, progressivity, trainability) ---
    expressivity_scores = []
    for i in range(len(layer_features)):
        feat = layer_features[i].detach().clone()
        b, c, h, w = feat.size()
        feat = feat.permute(0, 2, 3, 1).contiguous().view(b * h * w, c)
        mm = feat.mean(dim=0, keepdim=True)
        feat = feat - mm
        sigma = torch.mm(feat.transpose(1, 0), feat) / (feat.size(0))
        s = torch.linalg.eigvalsh(sigma)
        prob_s = s / s.sum()
        score = (-prob_s) * torch.log(prob_s + 1e-8)
        expressivity_scores.append(score.sum().item())
    expressivity_scores = np.array(expressivity_scores)
    progressivity = np.min(expressivity_scores[1:] - expressivity_scores[:-1])
    expressivity = np.sum(expressivity_scores)
    scores = []
    for i in reversed(range(1, len(layer_features))):
        f_out = layer_features[i]
        f_in = layer_features[i - 1]
        g_out = torch.from_numpy(rademacher(seed, (1 << 33) + i, f_out.numel()).reshape(f_out.shape)).to(dtype)
        g_in = torch.autograd.grad(outputs=f_out, inputs=f_in, grad_outputs=g_out, retain_graph=True)[0]
        if g_out.size() == g_in.size() and torch.all(g_in == g_out):
            scores.append(-np.inf)
        else:
            if g_out.size(2) != g_in.size(2) or g_out.size(3) != g_in.size(3):
                bo, co, ho, wo = g_out.size()
                bi, ci, hi, wi = g_in.size()
                g_in = nn.PixelUnshuffle(int(hi / ho))(g_in)
            bo, co, ho, wo = g_out.size()
            bi, ci, hi, wi = g_in.size()
            g_out = g_out.permute(0, 2, 3, 1).contiguous().view(bo * ho * wo, co)
            g_in = g_in.permute(0, 2, 3, 1).contiguous().view(bi * hi * wi, ci)
            mat = torch.mm(g_in.transpose(1, 0), g_out) / (bo * ho * wo)
            if mat.size(0) < mat.size(1):
                mat = mat.transpose(0, 1)
            s = torch.linalg.svdvals(mat)
            scores.append(-s.max().item() - 1 / (s.max().item() + 1e-6) + 2)
    trainability = np.mean(scores)
    return {"az_expressivity": float(expressivity), "az_progressivity": float(progressivity),
            "az_trainability": float(trainability), "blocks": len(layer_features)}


def update_az(names):
    """Adds AZ-NAS's components to existing fixtures' ref.json (nothing else changes)."""
    for name in names:
        fdir = FIXTURES_DIR / name
        ref = json.load(open(fdir / "ref.json"))
        model, _, _ = build(name)
        model = model.float()
        x = np.load(fdir / "inputs.npy")
        r32 = az_nas(model, ref["layers"], x, torch.float32)
        r64 = az_nas(model, ref["layers"], x, torch.float64)
        if r64 is None:
            # declared, so that the parity tests know the value is absent on purpose
            ref.setdefault("not_computed", {})
            for p in AZ_COMPONENTS:
                ref["not_computed"][p] = "az_nas: no block structure is defined for this network in make_fixtures.py"
            with open(fdir / "ref.json", "w") as f:
                json.dump(ref, f, indent=1)
            print(f"[{name}] az_nas: no block structure defined, declared not computed")
            continue
        for p in AZ_COMPONENTS:
            ref["proxies"][p] = r32[p]
            ref["proxies_f64"][p] = r64[p]
            ref["rel_diff_f32_vs_f64"][p] = rel(r32[p], r64[p])
            ref["definitions"][p] = AZ_DEFINITION
        ref["details"]["az_nas"] = {"blocks": r64["blocks"]}
        with open(fdir / "ref.json", "w") as f:
            json.dump(ref, f, indent=1)
        print(f"[{name}] az_nas: " + ", ".join(f"{p} {r64[p]}" for p in AZ_COMPONENTS) + f" ({r64['blocks']} blocks)", flush=True)


def merge_later(ref, model, x, y):
    """Adds the later proxies' values to a ref dict (existing keys are not touched)."""
    layers = ref["layers"]
    t32, pl32, _ = LaterScorer(model, layers, x, y, torch.float32).all_later()
    t64, pl64, det64 = LaterScorer(model, layers, x, y, torch.float64).all_later()
    for p in LATER:
        ref["proxies"][p] = t32[p]
        ref["proxies_f64"][p] = t64[p]
        ref["rel_diff_f32_vs_f64"][p] = rel(t32[p], t64[p])
        if p in LATER_LAYERWISE:
            ref["per_layer"][p] = pl32[p]
            ref["per_layer_f64"][p] = pl64[p]
        if p in det64:
            ref["details"][p] = det64[p]
        ref["definitions"][p] = LATER_DEFINITIONS[p]
    return ref


def update_later(names):
    """Recomputes only the later proxies of existing fixtures and writes them into ref.json;
    the ONNX files, inputs, targets and every existing value stay as they are."""
    torch.set_num_threads(2)
    for name in names:
        t0 = time.time()
        fdir = FIXTURES_DIR / name
        ref = json.load(open(fdir / "ref.json"))
        model, _, _ = build(name)
        model = model.float()
        x = np.load(fdir / "inputs.npy")
        y = np.load(fdir / "targets.npy")
        # the rebuilt module must be the one the fixture was made from
        s = Scorer(model, [l["name"] for l in ref["layers"]], x, y, torch.float64)
        _, extra = s.first_order()
        if rel(extra["loss"], ref["loss_f64"]) > 1e-12:
            raise RuntimeError(f"{name}: rebuilt model's loss {extra['loss']} != {ref['loss_f64']}")
        merge_later(ref, model, x, y)
        nonfinite = dict(ref.get("non_finite", {}))
        ref.pop("non_finite", None)
        ref = sanitize(ref, nonfinite)
        ref["non_finite"] = nonfinite
        with open(fdir / "ref.json", "w") as f:
            json.dump(ref, f, indent=1)
        print(f"[{name}] later proxies: " + ", ".join(f"{p} {ref['proxies_f64'][p]}" for p in LATER)
              + f" ({time.time() - t0:.1f}s)", flush=True)


def count_params(model, x):
    """(params of the modules the forward pass calls, params of all modules,
    elements of the constant scale/bias of called non-affine BN modules)."""
    mm = prep(model, torch.float32)
    name_of = {id(mod): n for n, mod in mm.named_modules()}
    called = set()
    hooks = [mod.register_forward_hook(lambda mod, i, o: called.add(name_of[id(mod)]))
             for mod in mm.modules()]
    with torch.no_grad():
        mm(torch.as_tensor(x[:2]).float())
    for h in hooks:
        h.remove()
    used = 0
    nonaffine_bn_elems = 0
    for n, mod in mm.named_modules():
        if n not in called:
            continue
        used += sum(p.numel() for p in mod.parameters(recurse=False))
        if isinstance(mod, BN_TYPES) and not mod.affine:
            nonaffine_bn_elems += 2 * mod.num_features
    total = sum(p.numel() for p in model.parameters())
    return used, total, nonaffine_bn_elems


def count_bn_calls(model, x):
    m = prep(model, torch.float32)
    n = [0]
    hooks = [mod.register_forward_hook(lambda *a: n.__setitem__(0, n[0] + 1))
             for mod in m.modules() if isinstance(mod, BN_TYPES)]
    with torch.no_grad():
        m(torch.as_tensor(x).float())
    for h in hooks:
        h.remove()
    return n[0]


def layer_info(model, scored_names, x):
    """calls, output shape and MACs per sample of each scored layer (one forward, float32)."""
    m = prep(model, torch.float32)
    mods = dict(m.named_modules())
    info = {n: {"calls": 0} for n in scored_names}
    hooks = []
    for n in scored_names:
        def hook(mod, inp, out, n=n):
            info[n]["calls"] += 1
            info[n]["out_shape"] = list(out.shape)
        hooks.append(act_module(mods[n]).register_forward_hook(hook))
    with torch.no_grad():
        m(torch.as_tensor(x).float())
    for h in hooks:
        h.remove()
    for n in scored_names:
        mod = mods[n]
        out = info[n]["out_shape"]
        if isinstance(mod, nn.Conv2d):
            per_out = (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
            macs = int(np.prod(out[1:])) * per_out
            typ = "Conv2d"
        elif isinstance(mod, nn.Linear):
            macs = mod.in_features * mod.out_features
            typ = "Linear"
        else:
            macs = mod.weight.shape[0] * mod.weight.shape[1]
            typ = "MatMul"
        info[n].update({"type": typ, "weight_shape": list(mod.weight.shape),
                        "has_bias": getattr(mod, "bias", None) is not None,
                        "macs_per_sample": int(macs)})
    return info


# ----------------------------------------------------------------------------------------
# ONNX export and inspection
# ----------------------------------------------------------------------------------------

def onnx_summary(path):
    mp = onnx.load(str(path))
    g = mp.graph
    ops = {}
    for n in g.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    bn_modes = {}
    for n in g.node:
        if n.op_type == "BatchNormalization":
            tm = 0
            for a in n.attribute:
                if a.name == "training_mode":
                    tm = a.i
            k = f"training_mode={tm}"
            bn_modes[k] = bn_modes.get(k, 0) + 1
    init_names = {t.name for t in g.initializer}
    inputs = []
    for i in g.input:
        if i.name in init_names:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param
                for d in i.type.tensor_type.shape.dim]
        inputs.append([i.name, dims])
    return {"opset": {(o.domain or "ai.onnx"): o.version for o in mp.opset_import},
            "ir_version": mp.ir_version, "producer": f"{mp.producer_name} {mp.producer_version}",
            "op_types": dict(sorted(ops.items())), "n_nodes": len(g.node),
            "n_initializers": len(g.initializer), "batchnorm_modes": bn_modes,
            "inputs": inputs, "outputs": [o.name for o in g.output],
            "file_bytes": Path(path).stat().st_size}


def ort_run(path, x, disabled=True):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    kw = {"disabled_optimizers": ORT_DISABLED} if disabled else {}
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"], **kw)
    name = sess.get_inputs()[0].name
    return sess.run(None, {name: np.asarray(x, dtype=np.float32)})[0]


def diff(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    mad = float(np.max(np.abs(a - b)))
    ref = float(np.max(np.abs(b)))
    return {"max_abs_diff": mad, "max_abs_ref": ref, "max_rel_diff": mad / ref if ref else mad}


def torch_forward(model, x, train=True):
    m = copy.deepcopy(model)
    if train:
        set_scoring_mode(m)
    else:
        m.eval()
    with torch.no_grad():
        return m(torch.as_tensor(x).float()).numpy()


def restore_running_stats(path, pre_state, post_state):
    """Exporting a train-mode model runs it, which updates BN running stats; write the
    pre-export values back into the ONNX initializers that BatchNormalization nodes read as
    running mean / variance (matched by name, else by the post-export value)."""
    mp = onnx.load(str(path))
    stat_keys = [k for k in pre_state if k.endswith("running_mean") or k.endswith("running_var")]
    bn_stat_inputs = set()
    for node in mp.graph.node:
        if node.op_type == "BatchNormalization":
            bn_stat_inputs.update(node.input[3:5])
    restored = 0
    for t in mp.graph.initializer:
        if t.name not in bn_stat_inputs:
            continue
        key = t.name if t.name in stat_keys else None
        if key is None:
            arr = numpy_helper.to_array(t)
            for k in stat_keys:
                post = post_state[k].numpy()
                if arr.shape == post.shape and np.array_equal(arr, post):
                    key = k
                    break
        if key is None:
            continue
        dtype = numpy_helper.to_array(t).dtype
        t.CopyFrom(numpy_helper.from_array(pre_state[key].numpy().astype(dtype), t.name))
        restored += 1
    onnx.save(mp, str(path))
    return restored


def strip_metadata(path):
    """The dynamo exporter writes per-node metadata (stack traces with this file's path and
    line numbers, FX node text): dropped so that the file does not change with unrelated edits."""
    mp = onnx.load(path)
    for node in mp.graph.node:
        del node.metadata_props[:]
    for coll in (mp.graph.input, mp.graph.output, mp.graph.value_info, mp.graph.initializer):
        for v in coll:
            if hasattr(v, "metadata_props"):
                del v.metadata_props[:]
    onnx.save(mp, path)


def export_torchscript(model, path, batch):
    m = set_scoring_mode(copy.deepcopy(model))
    pre = {k: v.clone() for k, v in m.state_dict().items()}
    x = torch.as_tensor(make_inputs()[:batch])
    torch.onnx.export(m, (x,), str(path), dynamo=False, opset_version=OPSET,
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True,
                      input_names=["input"], output_names=["output"])
    post = {k: v.clone() for k, v in m.state_dict().items()}
    restored = restore_running_stats(path, pre, post)
    return {"exporter": "torchscript (torch.onnx.export dynamo=False)", "opset_version": OPSET,
            "training": "TrainingMode.PRESERVE",
            "model_mode_at_export": "train(), every Dropout module eval()",
            "do_constant_folding": True, "input_names": ["input"], "output_names": ["output"],
            "dynamic_axes": None, "export_batch": batch,
            "post_processing": "BN running_mean/running_var initializers reset to pre-export values",
            "ok": True, "running_stats_restored": restored}


def export_dynamo(model, path, batch):
    m = set_scoring_mode(copy.deepcopy(model))
    pre = {k: v.clone() for k, v in m.state_dict().items()}
    x = torch.as_tensor(make_inputs()[:batch])
    prog = torch.onnx.export(m, (x,), dynamo=True, opset_version=OPSET, optimize=False,
                             input_names=["input"], output_names=["output"])
    prog.save(str(path), external_data=False)
    strip_metadata(str(path))
    post = {k: v.clone() for k, v in m.state_dict().items()}
    restored = restore_running_stats(path, pre, post)
    return {"exporter": "dynamo (torch.onnx.export dynamo=True, optimize=False)",
            "call": "torch.onnx.export(model, (x,), dynamo=True, opset_version=17, optimize=False, "
                    "input_names=[\"input\"], output_names=[\"output\"]).save(path)",
            "opset_version_requested": OPSET, "model_mode_at_export": "train(), every Dropout module eval()",
            "export_batch": batch, "note": "BN is written as inference-mode BatchNormalization "
            "(training_mode=0, running statistics); the reference values are the train-mode "
            "(batch statistics) ones, as for tiny_cnn: the scorer must rewrite BN to batch "
            "statistics (--bn batch)",
            "post_processing": "BN running_mean/running_var initializers reset to pre-export values "
                               "(no-op when the export did not change them)",
            "ok": True, "running_stats_restored": restored}


def match_scored_layers(model, path):
    """Scored layers = Conv2d / Linear / MatMulLinear whose weight is a Conv/Gemm/MatMul
    initializer of the ONNX graph; returns them in ONNX graph order with their names."""
    mp = onnx.load(str(path))
    g = mp.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    consumers = {}
    for idx, node in enumerate(g.node):
        for inp in node.input:
            if inp in inits:
                consumers.setdefault(inp, []).append((idx, node.name, node.op_type))
    used = set()
    layers, unused = [], []
    for name, mod in model.named_modules():
        if not is_scored_module(mod):
            continue
        w = mod.weight.detach().numpy()
        pname = f"{name}.weight"
        found, how = None, None
        if pname in inits and inits[pname].shape == w.shape and pname not in used:
            found, how = pname, "name"
        else:
            for k, v in inits.items():
                if k in used:
                    continue
                if v.shape == w.shape and np.array_equal(v, w):
                    found, how = k, "value"
                    break
                if w.ndim == 2 and v.shape == w.T.shape and np.array_equal(v, w.T):
                    found, how = k, "value_transposed"
                    break
        if found is None or not any(op in ("Conv", "Gemm", "MatMul") for _, _, op in consumers.get(found, [])):
            unused.append(name)
            continue
        used.add(found)
        cons = consumers[found]
        layers.append({"name": name, "onnx_weight": found, "matched_by": how,
                       "onnx_nodes": [c[1] for c in cons], "onnx_ops": [c[2] for c in cons],
                       "onnx_node_index": [c[0] for c in cons]})
    layers.sort(key=lambda l: min(l["onnx_node_index"]))
    return layers, unused


# ----------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------

def make_inputs(n=BATCH):
    return np.random.default_rng(0).standard_normal((n,) + IMG).astype(np.float32)


def make_targets(n=BATCH, ncls=NUM_CLASSES):
    return np.random.default_rng(1).integers(0, ncls, n).astype(np.int64)


# ----------------------------------------------------------------------------------------
# Reference computation
# ----------------------------------------------------------------------------------------

def rel(a, b):
    if a is None or b is None:
        return None
    if isinstance(a, float) and math.isnan(a) and isinstance(b, float) and math.isnan(b):
        return 0.0
    if b == 0:
        return abs(a - b)
    return abs(a - b) / abs(b)


def compute_reference(model, scored_names, x, y):
    s32 = Scorer(model, scored_names, x, y, torch.float32)
    s64 = Scorer(model, scored_names, x, y, torch.float64)
    t32, pl32, det32, ex32, tim32 = s32.all()
    t64, pl64, det64, ex64, tim64 = s64.all()
    return {"proxies": t32, "per_layer": pl32, "proxies_f64": t64, "per_layer_f64": pl64,
            "details": det64, "details_f32": det32, "extra_f64": ex64, "timing_s": tim64}


def sanitize(o, nonfinite, path=""):
    """JSON has no NaN/inf: store null and list the path under non_finite."""
    if isinstance(o, dict):
        return {k: sanitize(v, nonfinite, f"{path}.{k}" if path else k) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [sanitize(v, nonfinite, f"{path}[{i}]") for i, v in enumerate(o)]
    if isinstance(o, (float, np.floating)):
        f = float(o)
        if not math.isfinite(f):
            nonfinite[path] = repr(f)
            return None
        return f
    if isinstance(o, np.integer):
        return int(o)
    return o


def write_fixture(name, model, description, export="torchscript", export_batch=BATCH,
                  extra_meta=None, reuse_from=None):
    t0 = time.time()
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    fdir = FIXTURES_DIR / name
    fdir.mkdir(parents=True, exist_ok=True)
    onnx_path = MODELS_DIR / f"{name}.onnx"
    x = make_inputs()
    y = make_targets()
    model = model.float()
    model_snapshot = copy.deepcopy(model.state_dict())

    if export == "torchscript":
        exp = export_torchscript(model, onnx_path, export_batch)
    else:
        exp = export_dynamo(model, onnx_path, export_batch)
    model.load_state_dict(model_snapshot)
    onnx.checker.check_model(onnx.load(str(onnx_path)))
    summ = onnx_summary(onnx_path)

    # ONNX Runtime check of the export (forward pass only)
    xb = x[:export_batch]
    ortc = {"ort_disabled_optimizers": ORT_DISABLED, "batch": export_batch}
    y_train = torch_forward(model, xb, train=True)
    y_eval = torch_forward(model, xb, train=False)
    o = ort_run(onnx_path, xb)
    if export == "torchscript":
        ortc["as_exported_vs_torch_train"] = diff(o, y_train)
        ortc["as_exported_vs_torch_train_ort_default_optimizers"] = diff(ort_run(onnx_path, xb, False), y_train)
        if summ["batchnorm_modes"].get("training_mode=0"):
            raise RuntimeError(f"{name}: inference-mode BN in a torchscript export")
        n_bn_calls = count_bn_calls(model, xb)
        if summ["batchnorm_modes"].get("training_mode=1", 0) != n_bn_calls:
            raise RuntimeError(f"{name}: {n_bn_calls} BN calls in torch but ONNX has "
                               f"{summ['batchnorm_modes']}")
        ortc["bn_calls_torch"] = n_bn_calls
        if ortc["as_exported_vs_torch_train"]["max_rel_diff"] > 1e-4:
            raise RuntimeError(f"{name}: ORT disagrees with torch: {ortc}")
    else:
        ortc["as_exported_vs_torch_eval"] = diff(o, y_eval)
        ortc["as_exported_vs_torch_train"] = diff(o, y_train)
        if ortc["as_exported_vs_torch_eval"]["max_rel_diff"] > 1e-4:
            raise RuntimeError(f"{name}: ORT disagrees with torch eval: {ortc}")

    layers, unused = match_scored_layers(model, onnx_path)
    scored_names = [l["name"] for l in layers]
    info = layer_info(model, scored_names, x)
    for l in layers:
        i = info[l["name"]]
        l.update({"type": i["type"], "calls": i["calls"], "weight_shape": i["weight_shape"],
                  "has_bias": i["has_bias"], "macs_per_sample": i["macs_per_sample"],
                  "out_shape": i["out_shape"]})
    key_order = ["name", "type", "calls", "weight_shape", "has_bias", "macs_per_sample", "out_shape",
                 "onnx_weight", "matched_by", "onnx_nodes", "onnx_ops", "onnx_node_index"]
    layers = [{k: l[k] for k in key_order} for l in layers]

    if reuse_from is not None:
        R = reuse_from
    else:
        R = compute_reference(model, scored_names, x, y)
    params, params_all, nonaffine = count_params(model, x)
    flops = int(sum(l["macs_per_sample"] for l in layers))

    proxies = dict(R["proxies"])
    proxies["params"] = int(params)
    proxies["flops"] = flops
    proxies_f64 = dict(R["proxies_f64"])
    proxies_f64["params"] = int(params)
    proxies_f64["flops"] = flops
    reldiff = {p: rel(R["proxies"][p], R["proxies_f64"][p]) for p in PROXIES}

    # gradients (float64 computation, stored float32) keyed by ONNX initializer name
    grads = {}
    for l, g in zip(layers, R["extra_f64"]["grads"]):
        g = np.asarray(g)
        if l["matched_by"] == "value_transposed":
            g = g.T
        grads[l["onnx_weight"]] = g.astype(np.float32)
    grads["input"] = np.asarray(R["extra_f64"]["input_grad"]).astype(np.float32)
    np.save(fdir / "inputs.npy", x)
    np.save(fdir / "targets.npy", y)
    np.savez_compressed(fdir / "grads.npz", **grads)

    details = R["details"]
    details["jacob_cov"]["value_eig"] = R["proxies_f64"]["jacob_cov"]
    details["params"] = {
        "nonaffine_bn_scale_bias_elems": int(nonaffine),
        "note": "params counts Conv/Linear weights+biases and affine BN scale/bias of the modules "
                "the forward pass calls; the exporter writes the constant scale (ones) and bias "
                "(zeros) of non-affine BN (affine=False) as Constant nodes / initializers: "
                "params + nonaffine_bn_scale_bias_elems counts those too"}
    details["fisher"]["contribution"] = ("per layer sum_k delta[k] * numel(W)/K, K = number of "
                                        "output channels (W.shape[0] for Conv/Gemm, W.shape[1] "
                                        "for a MatMul initializer [in, out])")
    nonfinite = {}
    ref = {
        "case": name,
        "description": description,
        "versions": versions(),
        "inputs": {"file": "inputs.npy", "shape": list(x.shape), "dtype": "float32",
                   "generator": "np.random.default_rng(0).standard_normal(shape).astype(np.float32)"},
        "targets": {"file": "targets.npy", "shape": list(y.shape), "dtype": "int64",
                    "num_classes": NUM_CLASSES,
                    "generator": f"np.random.default_rng(1).integers(0, {NUM_CLASSES}, {BATCH})"},
        "grads": {"file": "grads.npz",
                  "content": "float32 arrays, computed in float64 (train mode, mean cross-entropy on "
                             "the whole batch): dL/dW for every scored weight keyed by its ONNX "
                             "initializer name (in the initializer's layout), and 'input' = dL/dinput"},
        "semantics": "train mode (BN batch statistics), Dropout off, loss = mean cross-entropy; "
                     "definitions as shared/SPEC.md section 1",
        "model_file": f"models/{name}.onnx",
        "export_batch": export_batch,
        "export": exp,
        "onnx": summ,
        "ort_check": ortc,
        "num_scored_layers": len(layers),
        "layers": layers,
        "unused_scored_modules": unused,
        "proxies": proxies,
        "per_layer": R["per_layer"],
        "proxies_f64": proxies_f64,
        "per_layer_f64": R["per_layer_f64"],
        "rel_diff_f32_vs_f64": reldiff,
        "loss_f64": R["extra_f64"]["loss"],
        "logits_f64_sum": R["extra_f64"]["logits_sum"],
        "details": details,
        "params_all_modules": int(params_all),
        "definitions": {
            "params": "trainable parameters of the modules the forward pass calls (weights+biases "
                      "of Conv/Linear, scale/bias of affine normalization; no running stats)",
            "flops": "multiply-accumulates of the scored layers for one sample",
            "nwot": "every ReLU call of the torch forward (nn.ReLU modules and F.relu; not ReLU6/"
                    "hardswish); a ReLU applied twice to the same tensor counts twice (the "
                    "TorchScript exporter merges such duplicates into one Relu node: "
                    "details.nwot.value_unique_inputs counts each distinct input once)",
            "zico": "2 half batches, gradients accumulated without zeroing (the original code); "
                    "per layer ln(sum over weights with std != 0 of mean|g|/std(g)), population "
                    "std over the 2 recorded gradients; 0 where that sum is 0",
            "zico_paper": "as zico with independent per-half gradients",
            "synflow": "BN removed, |params|, float64, one all-ones sample, L = sum of outputs",
            "synflow_bn": "as synflow with BN kept in train mode (batch of one)",
        },
    }
    if extra_meta:
        ref.update(extra_meta)
    merge_later(ref, model, x, y)
    ref = sanitize(ref, nonfinite)
    ref["non_finite"] = nonfinite
    with open(fdir / "ref.json", "w") as f:
        json.dump(ref, f, indent=1)
    print(f"[{name}] {len(layers)} scored layers, onnx {summ['file_bytes']} B, "
          f"ort rel {ortc.get('as_exported_vs_torch_train', {}).get('max_rel_diff'):.2e}, "
          f"{time.time() - t0:.1f}s", flush=True)
    return R


# ----------------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------------

NB201_ARCHS = {
    # (arch, init_channels, seed)
    "nb201_a": ("|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|", 16, 201),
    "nb201_b": ("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|skip_connect~1|skip_connect~2|", 8, 202),
    "nb201_c": ("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|nor_conv_1x1~1|avg_pool_3x3~2|", 8, 203),
}


def build(name):
    """-> (model, description, kwargs for write_fixture)"""
    if name == "tiny_mlp":
        torch.manual_seed(1)
        return TinyMLP(), ("Flatten, Linear 3072->32 (Gemm), ReLU, x @ W with W [32,16] a parameter "
                           "(MatMul with an initializer, no bias), ReLU, Linear 16->10 (Gemm)"), {}
    if name in ("tiny_cnn", "tiny_cnn_dynamo"):
        torch.manual_seed(2)
        desc = ("Conv3x3 3->8 (bias) + BN + ReLU + MaxPool2 + Conv3x3 8->16 s2 (bias) + BN + ReLU + "
                "MaxPool(3, stride 2, pad 1) + AdaptiveAvgPool + Linear 16->10")
        if name == "tiny_cnn_dynamo":
            desc += (" -- the same model and weights as tiny_cnn, exported with the dynamo exporter "
                     "(optimize=False): BN nodes are inference-mode; reference values are tiny_cnn's "
                     "train-mode (batch statistics) values")
            return TinyCNN(extra_pool=True), desc, {"export": "dynamo"}
        return TinyCNN(extra_pool=True), desc, {}
    if name in NB201_ARCHS:
        arch, c, seed = NB201_ARCHS[name]
        torch.manual_seed(seed)
        std = " (standard)" if c == 16 else " (reduced from the standard 16 to keep the fixture small)"
        desc = (f"NAS-Bench-201 {arch}, init_channels {c}{std}, 5 cells per stage, "
                f"torch.manual_seed({seed}); cell ops ReLU-Conv(bias)-BN(affine=False, no running "
                f"stats), avg_pool_3x3 = AvgPool2d(3,1,1,count_include_pad=False), none = x.mul(0.), "
                f"skip = identity; only the chosen op of each edge is instantiated")
        return NB201Net(arch, c=c), desc, {"extra_meta": {"nb201": {"arch": arch, "init_channels": c,
                                                                    "cells_per_stage": 5}}}
    if name == "resnet20_cifar10":
        torch.manual_seed(20)
        return resnet20_cifar10(), ("pytorchcv resnet20_cifar10 (pretrained=False, torch.manual_seed(20) "
                                    "init); in-place ReLUs run out of place for scoring"), {}
    if name == "mobilenetv3_tiny":
        torch.manual_seed(3)
        return MobileNetV3Tiny(), (
            "MobileNetV3-style tiny CIFAR net: stem Conv3x3 s2+BN+ReLU; 3 inverted residual "
            "blocks (1x1 expand+BN+act, depthwise 3x3 (groups=C)+BN+act, squeeze-excitation "
            "(global pool, 1x1 conv+ReLU, 1x1 conv, Hardsigmoid or Sigmoid, Mul), 1x1 project+BN, "
            "residual add when shapes allow) with ReLU6 / Hardswish activations; 1x1 conv 24->96+BN+"
            "Hardswish, global pool, Linear 96->64, Hardswish, Dropout(0.2) (eval: identity), "
            "Linear 64->10"), {}
    if name == "shuffle_tiny":
        torch.manual_seed(4)
        return ShuffleTiny(), (
            "Conv3x3+BN+ReLU; Pad + grouped Conv3x3 (groups=4, pad 0)+BN+ReLU; channel shuffle "
            "(Reshape [N,4,4,H,W], Transpose, Reshape); DenseNet-style Concat with a 1x1 conv branch; "
            "MaxPool2; channel split (Slice) with a depthwise+pointwise branch, Concat, channel "
            "shuffle (g=2); Conv3x3 s2+BN+ReLU; global pool; Reshape [N,-1]; Linear 32->10. "
            "Exported at batch 8 (8 is baked into the Reshape constants); the reference values "
            "are on the 16-sample batch, so the graph must be re-batched"), {"export_batch": 8}
    raise KeyError(name)


ALL = ["tiny_mlp", "tiny_cnn", "nb201_a", "nb201_b", "nb201_c", "resnet20_cifar10",
       "mobilenetv3_tiny", "shuffle_tiny", "tiny_cnn_dynamo"]


def make(names):
    torch.set_num_threads(2)
    cache = {}
    for name in names:
        model, desc, kw = build(name)
        if name == "tiny_cnn_dynamo":
            # same weights and reference values as tiny_cnn
            if "tiny_cnn" not in cache:
                m2, _, _ = build("tiny_cnn")
                assert all(torch.equal(a, b) for a, b in zip(m2.state_dict().values(),
                                                              model.state_dict().values()))
            kw["reuse_from"] = cache.get("tiny_cnn")
        R = write_fixture(name, model, desc, **kw)
        cache[name] = R
    # check that the dynamo fixture's values equal tiny_cnn's (same weights, same batch)
    if "tiny_cnn_dynamo" in names and "tiny_cnn" in names:
        a = json.load(open(FIXTURES_DIR / "tiny_cnn" / "ref.json"))
        b = json.load(open(FIXTURES_DIR / "tiny_cnn_dynamo" / "ref.json"))
        assert a["proxies_f64"] == b["proxies_f64"], "tiny_cnn_dynamo differs from tiny_cnn"


# ----------------------------------------------------------------------------------------
# Validation against the shared reference (their ONNX weights, their ref.json)
# ----------------------------------------------------------------------------------------

def load_onnx_weights(model, path):
    mp = onnx.load(str(path))
    inits = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in mp.graph.initializer}
    sd = model.state_dict()
    missing = []
    for k in sd:
        if k.endswith("num_batches_tracked"):
            continue
        if k not in inits:
            missing.append(k)
            continue
        assert sd[k].shape == inits[k].shape, k
        sd[k] = inits[k]
    if missing:
        raise RuntimeError(f"weights missing from {path}: {missing[:5]}")
    model.load_state_dict(sd)
    return model


def validate(refdir):
    torch.set_num_threads(2)
    refdir = Path(refdir)
    worst = {}
    ok = True
    for case in sorted(p.name for p in refdir.iterdir() if (p / "ref.json").exists()):
        ref = json.load(open(refdir / case / "ref.json"))
        if case == "tiny_cnn":
            model = TinyCNN(extra_pool=False)
        elif case == "tiny_mlp":
            model = RefTinyMLP()
        elif case.startswith("nb201"):
            arch = ref["description"].split()[1]
            model = NB201Net(arch, c=ref["layers"][0]["weight_shape"][0])
        else:
            print(f"[validate] skipping {case}")
            continue
        load_onnx_weights(model, refdir / case / "model.onnx")
        # tests/reference keeps one copy of the batch the cases share, beside them
        bdir = refdir / case if (refdir / case / "inputs.npy").exists() else refdir
        x = np.load(bdir / "inputs.npy")
        y = np.load(bdir / "targets.npy")
        layers, _ = match_scored_layers(model, refdir / case / "model.onnx")
        names = [l["name"] for l in layers]
        assert [l["onnx_weight"] for l in layers] == [l["onnx_weight"] for l in ref["layers"]], case
        s64 = Scorer(model, names, x, y, torch.float64)
        t64, pl64, det64, ex64, _ = s64.all()
        params, _, _ = count_params(model, x)
        info = layer_info(model, names, x)
        flops = sum(i["macs_per_sample"] for i in info.values())
        print(f"[validate] {case}: batch {x.shape[0]}, {len(names)} layers")
        for p in PROXIES:
            r = rel(t64[p], ref["proxies_f64"][p])
            tol = 1e-6
            if p in ("zico", "zico_paper"):
                tol = 1e-4
            if p == "grasp":
                r = abs(t64[p] - ref["proxies_f64"][p]) / ref["details"]["grasp"]["abs_sum"]
            flag = "" if r <= tol else "  <-- MISMATCH"
            ok &= r <= tol
            worst[p] = max(worst.get(p, 0.0), r)
            print(f"   {p:11s} ours {t64[p]: .10e} ref {ref['proxies_f64'][p]: .10e} rel {r:.1e}{flag}")
            if p in LAYERWISE and p in ref.get("per_layer_f64", {}):
                a = np.array(pl64[p])
                b = np.array(ref["per_layer_f64"][p])
                scale = np.maximum(np.abs(b), 1e-300)
                lr = float(np.max(np.abs(a - b) / scale)) if p != "grasp" else \
                    float(np.max(np.abs(a - b)) / ref["details"]["grasp"]["abs_sum"])
                if lr > max(tol, 1e-6) and p not in ("plain",):
                    print(f"      per-layer max rel {lr:.1e}")
        for p, v in (("params", params), ("flops", flops)):
            same = v == ref["proxies"][p]
            ok &= same
            print(f"   {p:11s} ours {v} ref {ref['proxies'][p]}{'' if same else '  <-- MISMATCH'}")
        if "details" in ref and "grasp" in ref["details"]:
            r = rel(det64["grasp"]["abs_sum"], ref["details"]["grasp"]["abs_sum"])
            print(f"   grasp abs_sum rel {r:.1e}")
    print("[validate] worst relative difference per proxy:", json.dumps(worst))
    print("[validate]", "OK" if ok else "MISMATCHES")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help=f"fixtures to make (default all: {' '.join(ALL)})")
    ap.add_argument("--validate", metavar="REFDIR",
                    help="compare this script's proxy code with a shared reference directory")
    ap.add_argument("--update-later", action="store_true",
                    help="only (re)compute the later proxies (meco, epe_nas, swap, grad_sign, ntk_cond, "
                         "linear_regions, zen) of existing fixtures and add them to their ref.json")
    ap.add_argument("--update-az", action="store_true",
                    help="only compute AZ-NAS's components of existing fixtures and add them to their ref.json")
    args = ap.parse_args()
    if args.update_az:
        update_az(args.names or ALL)
        return
    if args.validate:
        sys.exit(0 if validate(args.validate) else 1)
    if args.update_later:
        for n in args.names:
            if n not in ALL:
                ap.error(f"unknown fixture {n}")
        update_later(args.names or ALL)
        return
    names = args.names or ALL
    for n in names:
        if n not in ALL:
            ap.error(f"unknown fixture {n}")
    if "tiny_cnn_dynamo" in names and "tiny_cnn" not in names:
        names = ["tiny_cnn"] + names
    names = sorted(names, key=ALL.index)
    make(names)


if __name__ == "__main__":
    main()
