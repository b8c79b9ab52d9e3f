#!/usr/bin/env python3
"""Runs a `zerocost grad-graph` program in ONNX Runtime (CPU) and saves every output.

usage: ort_run.py PROGRAM.onnx INPUTS.npy TARGETS.npy OUT.npz

The program's inputs are the model's input and `zerocost/targets` (= -onehot(targets)/N).
Used by tests/grad_graph_ort.rs to check that the emitted ONNX is valid and gives the
same gradients in another engine.
"""
import sys

import numpy as np
import onnxruntime as ort


def main():
    program, inputs, targets, out = sys.argv[1:5]
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only (unused-initializer warnings are noise)
    sess = ort.InferenceSession(program, opts, providers=["CPUExecutionProvider"])
    x = np.load(inputs)
    y = np.load(targets).astype(np.int64)
    feeds = {}
    for i in sess.get_inputs():
        if i.name == "zerocost/targets":
            n, c = i.shape
            t = np.zeros((n, c), dtype=x.dtype)
            t[np.arange(n), y] = -1.0 / n
            feeds[i.name] = t
        else:
            feeds[i.name] = x
    names = [o.name for o in sess.get_outputs()]
    values = sess.run(names, feeds)
    np.savez(out, **{f"out{k}": v for k, v in enumerate(values)})


if __name__ == "__main__":
    main()
