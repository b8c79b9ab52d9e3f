"""A tiny torchvision VisionTransformer exported at batch 2 with both of PyTorch's ONNX
exporters, and PyTorch's values at batch 8, for tests/rebatch.rs: the exports carry the
export batch in their attention Reshapes ([S, N·heads, d], [S·N, E], ...), which zerocost
must rewrite to score at another batch.

    python3 tests/rebatch/make_vit.py      # writes tests/rebatch/{vit_ts,vit_dynamo,vit_dynamo_opt}.onnx,
                                           # inputs.npy, targets.npy, ref.json

Seeded; the head is re-initialised (torchvision zeroes it, which would zero every gradient
but the head's). Values in float64, train mode (no dropout in this configuration).
"""
import json
import os
import warnings

import numpy as np
import torch
from torchvision.models.vision_transformer import VisionTransformer

warnings.filterwarnings("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))


def network():
    torch.manual_seed(0)
    m = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10)
    torch.nn.init.normal_(m.heads.head.weight, std=0.2)
    return m


def main():
    m = network().eval()
    x2 = torch.randn(2, 3, 32, 32)
    torch.onnx.export(m, (x2,), os.path.join(HERE, "vit_ts.onnx"), dynamo=False, opset_version=17)
    torch.onnx.export(m, (x2,), os.path.join(HERE, "vit_dynamo.onnx"), dynamo=True, optimize=False, external_data=False)
    # the optimiser folds the class token, expanded to the export batch, into a constant
    torch.onnx.export(m, (x2,), os.path.join(HERE, "vit_dynamo_opt.onnx"), dynamo=True, optimize=True, external_data=False)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 8).astype(np.int64)
    np.save(os.path.join(HERE, "inputs.npy"), x)
    np.save(os.path.join(HERE, "targets.npy"), y)

    m = m.double().train()
    xs = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out = m(xs)
    loss = torch.nn.functional.cross_entropy(out, torch.tensor(y))
    loss.backward()
    # the scored weights: every Conv and Linear, and MultiheadAttention's in_proj_weight
    # (a MatMul weight in the export)
    weights = [mod.weight for mod in m.modules() if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear))]
    weights += [a.in_proj_weight for a in m.modules() if isinstance(a, torch.nn.MultiheadAttention)]
    grad_norm = sum(w.grad.norm().item() for w in weights)
    snip = sum((w.grad * w).abs().sum().item() for w in weights)
    # jacob_cov: J = d(sum of outputs)/d(input), one row per sample
    xj = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    m.zero_grad()
    m(xj).sum().backward()
    j = xj.grad.reshape(8, -1).numpy()
    c = np.corrcoef(j)
    v = np.linalg.eigvalsh(c)
    jacob_cov = float(-np.sum(np.log(v + 1e-5) + 1.0 / (v + 1e-5)))
    ref = {"batch": 8, "export_batch": 2, "torch": torch.__version__,
           "proxies_f64": {"grad_norm": grad_norm, "snip": snip, "jacob_cov": jacob_cov}}
    with open(os.path.join(HERE, "ref.json"), "w") as f:
        json.dump(ref, f, indent=1)
    print(json.dumps(ref))


if __name__ == "__main__":
    main()
