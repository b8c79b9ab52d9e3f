#!/usr/bin/env python3
"""Side-by-side benchmark: the zero-cost-proxies paper's PyTorch code vs `zerocost score`.

Run by hand (not by CI), from anywhere, after `cargo build --release`:

    python3 examples/bench_vs_pytorch.py [--configs default,tract] [--runs 3] [--threads 2]
        [--zerocost target/release/zerocost] [--extra "--bn batch"] [--export]
    examples/bench_vs_pytorch.sh ...     # the same

Needs torch, numpy, onnx, onnxruntime, pytorchcv. What it measures, for resnet20_cifar10
(pytorchcv) and nb201_a (NAS-Bench-201, 16 channels), both built as models/make_fixtures.py
builds them (same classes, same seeds), on one seeded batch of 64 (N(0,1) inputs 3x32x32,
int64 targets in 0..9):

- PyTorch: the 8 proxies grad_norm, snip, grasp, fisher, jacob_cov, plain, synflow, l2_norm,
  each computed separately as SamsungLabs/zero-cost-nas computes them (foresight/pruners/
  predictive.py find_measures + measures/*.py, Apache-2.0; copied below with the
  multi-GPU/split-data parts dropped): a deep copy of the net per proxy, its own forward and
  backward, train mode, cross-entropy. One fresh child process per measurement: "proxies"
  is the find_measures time alone (no imports, no model construction); the import time and
  the child's whole wall time are reported too. Peak RSS = that child's ru_maxrss.
- zerocost: one whole `zerocost score MODEL.onnx --inputs X.npy --targets Y.npy --proxy ...
  --threads N --format json [config flags] [--extra]` process per measurement: wall time
  and peak RSS of that process (loading, graph building and every pass included).

Every measurement runs under its own small `python3 -c` wrapper, so that the wrapper's
RUSAGE_CHILDREN ru_maxrss is that one process's peak. Each is repeated --runs times; the
table shows medians. The ONNX files are models/NAME.onnx when their forward pass (ONNX
Runtime) equals the torch model's, else (or with --export) fresh exports at batch 64.
"""

import argparse
import copy
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROXIES = ["grad_norm", "snip", "grasp", "fisher", "jacob_cov", "plain", "synflow", "l2_norm"]
NETWORKS = ["resnet20_cifar10", "nb201_a"]
CONFIGS = {"default": [], "tract": ["--engine", "tract"],
           "ort-f32": ["--engine", "ort-cpu", "--precision", "f32"]}

# Runs CMD with stdout to OUT; prints {"wall", "maxrss_kb", "rc"} of that one child.
WRAPPER = ("import json,resource,subprocess,sys,time\n"
           "t=time.perf_counter()\n"
           "with open(sys.argv[1],'wb') as f: rc=subprocess.run(sys.argv[2:],stdout=f).returncode\n"
           "w=time.perf_counter()-t\n"
           "print(json.dumps({'wall':w,'maxrss_kb':resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,'rc':rc}))")


def import_fixtures(light=False):
    """models/make_fixtures.py as a module. light: stub out onnx/onnxruntime (only its export
    and check functions use them), so that the PyTorch child's RSS is torch's alone."""
    sys.dont_write_bytecode = True
    sys.path.insert(0, str(ROOT / "models"))
    if light:
        import importlib.util
        for name in ("onnx", "onnx.numpy_helper", "onnxruntime"):
            stub = types.ModuleType(name)
            stub.__spec__ = importlib.util.spec_from_loader(name, loader=None)
            sys.modules.setdefault(name, stub)
        sys.modules["onnx"].numpy_helper = sys.modules["onnx.numpy_helper"]
    import make_fixtures
    return make_fixtures


# ----------------------------------------------------------------------------------------
# The paper's measures (SamsungLabs/zero-cost-nas, foresight/pruners, Apache-2.0)
# ----------------------------------------------------------------------------------------

def paper_measures():
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def layers(net):
        return [l for l in net.modules() if isinstance(l, (nn.Conv2d, nn.Linear))]

    def get_layer_metric_array(net, metric):
        return [metric(l) for l in layers(net)]

    def copynet(net, bn):  # predictive.py copynet
        net = copy.deepcopy(net)
        if not bn:
            for l in net.modules():
                if isinstance(l, (nn.BatchNorm2d, nn.BatchNorm1d)):
                    l.forward = types.MethodType(lambda self, x: x, l)
        return net

    def grad_norm(net, x, y):
        net.zero_grad()
        F.cross_entropy(net(x), y).backward()
        return get_layer_metric_array(net, lambda l: l.weight.grad.norm())

    def snip(net, x, y):
        def fwd_conv(self, x):
            return F.conv2d(x, self.weight * self.weight_mask, self.bias, self.stride,
                            self.padding, self.dilation, self.groups)

        def fwd_linear(self, x):
            return F.linear(x, self.weight * self.weight_mask, self.bias)
        for l in layers(net):
            l.weight_mask = nn.Parameter(torch.ones_like(l.weight))
            l.weight.requires_grad = False
            l.forward = types.MethodType(fwd_conv if isinstance(l, nn.Conv2d) else fwd_linear, l)
        net.zero_grad()
        F.cross_entropy(net(x), y).backward()
        return get_layer_metric_array(net, lambda l: torch.abs(l.weight_mask.grad))

    def grasp(net, x, y, T=1):
        weights = [l.weight for l in layers(net)]
        for w in weights:
            w.requires_grad_(True)
        net.zero_grad()
        grad_w = list(torch.autograd.grad(F.cross_entropy(net(x) / T, y), weights, allow_unused=True))
        grad_f = torch.autograd.grad(F.cross_entropy(net(x) / T, y), weights, create_graph=True,
                                     allow_unused=True)
        z = 0
        for gw, gf in zip(grad_w, grad_f):
            if gw is not None:
                z += (gw.data * gf).sum()
        z.backward()
        return get_layer_metric_array(net, lambda l: -l.weight.data * l.weight.grad)

    def fisher(net, x, y):
        def fwd_conv(self, x):
            self.act = self.dummy(F.conv2d(x, self.weight, self.bias, self.stride, self.padding,
                                           self.dilation, self.groups))
            return self.act

        def fwd_linear(self, x):
            self.act = self.dummy(F.linear(x, self.weight, self.bias))
            return self.act

        def hook_factory(layer):
            def hook(module, grad_input, grad_output):
                act, grad = layer.act.detach(), grad_output[0].detach()
                g_nk = torch.sum(act * grad, list(range(2, len(act.shape)))) if len(act.shape) > 2 else act * grad
                del_k = g_nk.pow(2).mean(0).mul(0.5)
                layer.fisher = del_k if layer.fisher is None else layer.fisher + del_k
                del layer.act
            return hook
        net.train()
        for l in layers(net):
            l.fisher, l.act, l.dummy = None, 0.0, nn.Identity()
            l.forward = types.MethodType(fwd_conv if isinstance(l, nn.Conv2d) else fwd_linear, l)
            l.dummy.register_backward_hook(hook_factory(l))
        net.zero_grad()
        F.cross_entropy(net(x), y).backward()
        ch = get_layer_metric_array(net, lambda l: torch.abs(l.fisher.detach()))
        shapes = get_layer_metric_array(net, lambda l: l.weight.shape[1:])
        # p_utils.reshape_elements: broadcast each channel's value to its weights
        return [torch.stack([torch.Tensor(sh).fill_(v) for v in e], dim=0) for e, sh in zip(ch, shapes)]

    def jacob_cov(net, x, y):
        net.zero_grad()
        x.requires_grad_(True)
        out = net(x)
        out.backward(torch.ones_like(out))
        jacob = x.grad.detach().reshape(x.shape[0], -1).cpu().numpy()
        x.requires_grad_(False)
        x.grad = None  # (the paper's x is a fresh batch each call; keeps runs independent)
        try:
            v, _ = np.linalg.eig(np.corrcoef(jacob))
            k = 1e-5
            return -np.sum(np.log(v + k) + 1. / (v + k))
        except Exception as e:
            print(e, file=sys.stderr)
            return np.nan

    def plain(net, x, y):
        net.zero_grad()
        F.cross_entropy(net(x), y).backward()
        return get_layer_metric_array(net, lambda l: l.weight.grad * l.weight)

    def synflow(net, x, y):
        with torch.no_grad():  # linearize: abs of every state entry, signs kept
            signs = {k: torch.sign(p) for k, p in net.state_dict().items()}
            for _, p in net.state_dict().items():
                p.abs_()
        net.zero_grad()
        net.double()
        out = net.forward(torch.ones([1] + list(x[0, :].shape)).double())
        torch.sum(out).backward()
        r = get_layer_metric_array(net, lambda l: torch.abs(l.weight * l.weight.grad))
        with torch.no_grad():  # nonlinearize
            for k, p in net.state_dict().items():
                p.mul_(signs[k])
        return r

    def l2_norm(net, x, y):
        return get_layer_metric_array(net, lambda l: l.weight.norm())

    fns = dict(grad_norm=grad_norm, snip=snip, grasp=grasp, fisher=fisher, jacob_cov=jacob_cov,
               plain=plain, synflow=synflow, l2_norm=l2_norm)
    bn = {"synflow": False}
    no_copy = {"l2_norm"}

    def find_measures(net, x, y, names):
        """predictive.py find_measures: per proxy a copy of the net, then sum the arrays."""
        scores, seconds = {}, {}
        for name in names:
            t = time.perf_counter()
            n = net if name in no_copy else copynet(net, bn.get(name, True))
            v = fns[name](n, x, y)
            if n is not net:  # measures/__init__.py force_clean
                del n
                gc.collect()
            if name != "jacob_cov":
                s = 0.
                for a in v:
                    s += torch.sum(a)
                v = s.item()
            scores[name] = float(np.real(v))
            seconds[name] = time.perf_counter() - t
        return scores, seconds

    return find_measures


def torch_child(args):
    """One PyTorch measurement (a fresh process): import, build, find_measures; JSON out."""
    import warnings
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    import numpy as np
    import torch
    mf = import_fixtures(light=True)
    t_import = time.perf_counter() - t0
    torch.set_num_threads(args.threads)
    t = time.perf_counter()
    model, _, _ = mf.build(args.child)
    mf.set_scoring_mode(model)  # train(), Dropout eval, ReLUs out of place (as the fixtures)
    x = torch.from_numpy(np.load(args.inputs))
    y = torch.from_numpy(np.load(args.targets)).long()
    find_measures = paper_measures()
    t_build = time.perf_counter() - t
    t = time.perf_counter()
    scores, seconds = find_measures(model, x, y, PROXIES)
    t_proxies = time.perf_counter() - t
    print(json.dumps({"import_s": t_import, "build_s": t_build, "proxies_s": t_proxies,
                      "scores": scores, "seconds": seconds}))


# ----------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------

def measure(cmd, tmp, env=None):
    """Runs cmd under the wrapper: (wall s, peak RSS MiB, stdout text)."""
    out = Path(tmp) / "stdout.txt"
    r = subprocess.run([sys.executable, "-c", WRAPPER, str(out)] + [str(c) for c in cmd],
                       capture_output=True, text=True, env=env)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    text = out.read_text()
    if res["rc"] != 0:
        sys.exit(f"failed (rc {res['rc']}): {' '.join(map(str, cmd))}\n{r.stderr}{text}")
    return res["wall"], res["maxrss_kb"] / 1024.0, text


def onnx_for(mf, name, x, tmp, force_export):
    """models/NAME.onnx if its ORT forward equals the torch model's, else a batch-64 export."""
    import numpy as np
    import onnx
    import torch
    model, _, _ = mf.build(name)
    model = mf.set_scoring_mode(model)
    path = ROOT / "models" / f"{name}.onnx"
    if not force_export and path.exists():
        dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
        b = dims[0].dim_value or 16
        with torch.no_grad():
            ref = copy.deepcopy(model)(torch.from_numpy(x[:b])).numpy()
        d = mf.diff(mf.ort_run(path, x[:b]), ref)["max_rel_diff"]
        if d < 1e-4:
            return path, f"{path.relative_to(ROOT)} (ORT forward vs torch: max rel diff {d:.1e})"
    out = Path(tmp) / f"{name}.onnx"
    pre = {k: v.clone() for k, v in model.state_dict().items()}
    torch.onnx.export(model, (torch.from_numpy(x),), str(out), dynamo=False, opset_version=mf.OPSET,
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True,
                      input_names=["input"], output_names=["output"])
    post = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(pre)
    mf.restore_running_stats(out, pre, post)  # BN running stats as before the export run
    return out, f"exported at batch {x.shape[0]} to {out}"


def rel(a, b):
    if a is None or b is None:
        return "-"
    m = max(abs(a), abs(b))
    return f"{abs(a - b) / m:.1e}" if m else "0"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default="default,tract",
                    help=f"comma-separated: {', '.join(CONFIGS)}, or LABEL=FLAGS (e.g. 'f32=--precision f32')")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--zerocost", default=str(ROOT / "target" / "release" / "zerocost"))
    ap.add_argument("--extra", default="", help="extra flags for every zerocost run")
    ap.add_argument("--networks", default=",".join(NETWORKS))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--export", action="store_true", help="always export fresh ONNX copies")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--inputs", help=argparse.SUPPRESS)
    ap.add_argument("--targets", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return torch_child(args)

    configs = []
    for c in filter(None, args.configs.split(",")):
        label, _, flags = c.partition("=")
        if not flags and label not in CONFIGS:
            ap.error(f"unknown config {c}")
        configs.append((label, flags.split() if flags else CONFIGS[label]))
    zc = Path(args.zerocost)
    if not zc.exists():
        sys.exit(f"no zerocost binary at {zc} (cargo build --release, or --zerocost PATH)")

    import numpy as np
    import onnxruntime
    import torch
    mf = import_fixtures()
    t_start = time.perf_counter()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    zver = subprocess.run([str(zc), "--version"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {platform.node()}, {cpu}, nproc {len(os.sched_getaffinity(0))} "
          f"(cpu_count {os.cpu_count()}), Linux {platform.release()}")
    print(f"python {platform.python_version()}, torch {torch.__version__}, onnxruntime "
          f"{onnxruntime.__version__}, numpy {np.__version__}, {zver or zc.name}")
    print(f"threads {args.threads}, batch {args.batch_size}, runs {args.runs} (medians), "
          f"configs: {', '.join(l + ' [' + ' '.join(f) + ']' for l, f in configs)}"
          + (f", extra [{args.extra}]" if args.extra else ""))

    tmp = tempfile.mkdtemp(prefix="bench_vs_pytorch_")
    x = np.random.default_rng(args.seed).standard_normal((args.batch_size, 3, 32, 32)).astype(np.float32)
    y = np.random.default_rng(args.seed + 1).integers(0, 10, args.batch_size).astype(np.int64)
    xp, yp = Path(tmp) / "x.npy", Path(tmp) / "y.npy"
    np.save(xp, x)
    np.save(yp, y)
    env = dict(os.environ, **{k: str(args.threads) for k in
                              ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})

    rows, scores = [], {}
    for net in filter(None, args.networks.split(",")):
        path, how = onnx_for(mf, net, x, tmp, args.export)
        print(f"{net}: {how}", flush=True)
        runs = []
        for _ in range(args.runs):
            wall, rss, out = measure([sys.executable, __file__, "--child", net, "--inputs", xp,
                                      "--targets", yp, "--threads", args.threads], tmp, env)
            runs.append((json.loads(out.strip().splitlines()[-1]), wall, rss))
        res = runs[-1][0]
        med = lambda f: statistics.median(f(r) for r in runs)
        pt = dict(s=med(lambda r: r[0]["proxies_s"]), rss=med(lambda r: r[2]), wall=med(lambda r: r[1]),
                  imp=med(lambda r: r[0]["import_s"]), build=med(lambda r: r[0]["build_s"]))
        print(f"  pytorch: proxies {pt['s']:.2f} s (" + ", ".join(
            f"{k} {v:.2f}" for k, v in res["seconds"].items()) + f"), import {pt['imp']:.2f} s, "
            f"build {pt['build']:.2f} s, child wall {pt['wall']:.2f} s, peak RSS {pt['rss']:.0f} MiB", flush=True)
        scores[net] = {"pytorch": res["scores"]}
        for label, flags in configs:
            cmd = [zc, "score", path, "--inputs", xp, "--targets", yp, "--proxy", ",".join(PROXIES),
                   "--threads", args.threads, "--format", "json"] + flags + args.extra.split()
            zr = [measure(cmd, tmp) for _ in range(args.runs)]
            js = json.loads(zr[-1][2])
            js = js[0] if isinstance(js, list) else js
            if js.get("errors"):
                print(f"  zerocost {label}: errors {js['errors']}")
            s, rss = statistics.median(r[0] for r in zr), statistics.median(r[1] for r in zr)
            print(f"  zerocost {label} (engine {js.get('engine')}): {s:.2f} s (" + ", ".join(
                f"{k} {v:.2f}" for k, v in js.get("seconds", {}).items()) + f"), peak RSS {rss:.0f} MiB",
                flush=True)
            scores[net][label] = js["scores"]
            rows.append((net, pt["s"], pt["rss"], label, s, rss))

    print("\nPyTorch s = the 8 proxies (find_measures) alone; zerocost s = the whole process "
          "(its per-proxy split above charges a shared pass to the first proxy that needs it)")
    hdr = f"{'network':18} {'PyTorch s':>10} {'RSS MiB':>8} | {'zerocost':10} {'s':>8} {'RSS MiB':>8} | {'time ratio':>10} {'RSS ratio':>9}"
    print(hdr + "\n" + "-" * len(hdr))
    for net, ps, prss, label, s, rss in rows:
        print(f"{net:18} {ps:10.2f} {prss:8.0f} | {label:10} {s:8.2f} {rss:8.0f} | {s / ps:10.2f} {rss / prss:9.2f}")

    print("\nscores (rel diff = |zerocost - pytorch| / max; grasp and plain cancel, judge them loosely)")
    for net, sc in scores.items():
        labels = [l for l, _ in configs]
        print(f"{net}\n  {'proxy':10} {'pytorch':>14}" + "".join(f" {l:>14} {'rel diff':>8}" for l in labels))
        for p in PROXIES:
            a = sc["pytorch"].get(p)
            line = f"  {p:10} {a:14.6e}"
            for l in labels:
                b = sc[l].get(p)
                line += (f" {b:14.6e}" if b is not None else f" {'null':>14}") + f" {rel(a, b):>8}"
            print(line)
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"\ntotal bench time {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
