#!/usr/bin/env python3
"""NASLib's NAS-Bench-Suite-Zero proxy values as zerocost results lines, so that
`zerocost correlate` ranks them exactly as it ranks zerocost's own.

    python3 examples/naslib_to_jsonl.py data/naslib_zc_nasbench201_725subset.json \
        > naslib.jsonl
    zerocost correlate naslib.jsonl --truth truth.csv

Each line: {"model": NB201 cell string, "status": "ok", "scores": {proxy: value} (finite values only),
"metadata": {"val_accuracy": NASLib's validation accuracy}}. NASLib's `jacov` is zerocost's
`jacob_cov`. The key is NASLib's tuple of op indices on edges (1,2),(1,3),(1,4),(2,3),(2,4),
(3,4) with ops [skip_connect, none, nor_conv_3x3, nor_conv_1x1, avg_pool_3x3].
Optional second argument: dataset (default cifar10).
"""
import json
import math
import sys

OPS = ["skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3"]
NAMES = {"jacov": "jacob_cov"}


def cell(key):
    e = [OPS[int(v)] for v in key.strip("()").split(",")]
    return f"|{e[0]}~0|+|{e[1]}~0|{e[3]}~1|+|{e[2]}~0|{e[4]}~1|{e[5]}~2|"


def main():
    data = json.load(open(sys.argv[1]))
    dataset = sys.argv[2] if len(sys.argv) > 2 else "cifar10"
    for key, rec in data[dataset].items():
        # non-finite values (NASLib stores -inf/NaN where a proxy failed) are left out,
        # as zerocost leaves out a failed proxy
        scores = {NAMES.get(k, k): v["score"] for k, v in rec.items()
                  if isinstance(v, dict) and isinstance(v.get("score"), (int, float)) and math.isfinite(v["score"])}
        print(json.dumps({"model": cell(key), "status": "ok", "scores": scores,
                          "metadata": {"val_accuracy": rec["val_accuracy"]}}))


if __name__ == "__main__":
    main()
