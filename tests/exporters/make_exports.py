"""Exports one small PyTorch network with both of PyTorch's ONNX exporters, for
tests/exporters.rs: the TorchScript exporter and the dynamo exporter (optimize=False, so
BatchNormalization stays). The network has what real exports trip on: convolutions with
bias before BatchNorm, an affine=False BatchNorm, a residual addition (the dynamo exporter
writes CastLike around it), pooling and a linear head.

    python3 tests/exporters/make_exports.py        # writes tests/exporters/*.onnx

Seeded: a rerun writes the same weights. Versions used: see the printout (torch 2.x).
"""
import os
import warnings

import torch

warnings.filterwarnings("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))


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


def main():
    m = network()
    x = torch.randn(2, 3, 16, 16)
    common = dict(training=torch.onnx.TrainingMode.PRESERVE, input_names=["input"], output_names=["output"])
    torch.onnx.export(m, (x,), os.path.join(HERE, "residual_torchscript.onnx"), dynamo=False, do_constant_folding=False, dynamic_axes={"input": {0: "N"}}, **common)
    torch.onnx.export(m, (x,), os.path.join(HERE, "residual_dynamo.onnx"), dynamo=True, optimize=False, dynamic_shapes=({0: torch.export.Dim("N")},), **common)
    print("torch", torch.__version__)


if __name__ == "__main__":
    main()
