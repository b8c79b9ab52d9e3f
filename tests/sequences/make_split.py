"""A small network with torch.split, torch.chunk and unbind (ShuffleNet's channel split,
MixNet's mixed kernels), exported by both PyTorch exporters, for tests/sequences.rs: the
dynamo exporter writes the splits as SplitToSequence + SequenceAt, the TorchScript
exporter as Split. No BatchNorm, so both exports hold the same network.

    python3 tests/sequences/make_split.py     # writes tests/sequences/split_{ts,dynamo}.onnx
"""
import os
import warnings

import torch

warnings.filterwarnings("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))


class SplitNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 12, 3, padding=1)
        self.a = torch.nn.Conv2d(5, 5, 3, padding=1)
        self.b = torch.nn.Conv2d(7, 7, 5, padding=2)
        self.c = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.head = torch.nn.Linear(12 * 2 + 4, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        p, q = torch.split(x, [5, 7], dim=1)             # sizes
        y = torch.cat([torch.relu(self.a(p)), torch.relu(self.b(q))], 1)
        u, v, w = torch.chunk(y, 3, dim=1)                 # equal pieces
        z = torch.relu(self.c(u)) + v * w
        rows = torch.unbind(y.mean(dim=(2, 3)), dim=1)     # pieces of size 1, axis dropped
        s = torch.stack(rows[:4], 1)
        pooled = torch.cat([y.mean(dim=(2, 3)), y.amax(dim=(2, 3)), z.mean(dim=(2, 3)) * s], 1)
        return self.head(pooled)


def main():
    torch.manual_seed(0)
    m = SplitNet().eval()
    x = torch.randn(2, 3, 16, 16)
    torch.onnx.export(m, (x,), os.path.join(HERE, "split_ts.onnx"), dynamo=False, opset_version=17)
    torch.onnx.export(m, (x,), os.path.join(HERE, "split_dynamo.onnx"), dynamo=True, optimize=False, external_data=False)
    print("torch", torch.__version__)


if __name__ == "__main__":
    main()
