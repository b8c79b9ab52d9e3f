#!/bin/bash
# Aging evolution on NAS-Bench-201 with and without a proxy warm-up, over the public
# accuracy table (CIFAR-10 test accuracy after 200 epochs), plotted like Figure 2 of the
# zero-cost-proxies paper.
#
#   bash examples/search_nb201.sh                 # synflow, warm-up 100, 5 repeats (~3 min)
#   PROXY=params WARMUP=3000 REPEATS=20 bash examples/search_nb201.sh   # ~30 s
#   PROXY=synflow WARMUP=3000 REPEATS=20 BUDGET=300 bash examples/search_nb201.sh
#       # the paper's setting: synflow of every cell, once (~0.2 s a cell on one core,
#       # about 20-30 min for the 15,625 cells on 2 cores); later runs read the cache
#
# TABLE defaults to data/nb201_accuracy.csv (columns arch,cifar10_test,
# cifar100_test,imagenet16_test); COLUMN picks the column.
set -euo pipefail
cd "$(dirname "$0")/.."

TABLE=${TABLE:-data/nb201_accuracy.csv}
COLUMN=${COLUMN:-cifar10_test}
PROXY=${PROXY:-synflow}
WARMUP=${WARMUP:-100}
REPEATS=${REPEATS:-5}
BUDGET=${BUDGET:-200}
OUT=${OUT:-search_out}
ZEROCOST=${ZEROCOST:-}

if [ ! -f "$TABLE" ]; then
    echo "no accuracy table at $TABLE (set TABLE=FILE.csv with columns arch,$COLUMN)" >&2
    exit 1
fi
if [ -z "$ZEROCOST" ]; then
    cargo build --release --quiet
    ZEROCOST=target/release/zerocost
fi
mkdir -p "$OUT"
"$ZEROCOST" search --space nb201 --algorithm evolution --budget "$BUDGET" \
    --warmup "$WARMUP" --proxy "$PROXY" --compare \
    --truth "$TABLE" --truth-column "$COLUMN" \
    --seed 0 --repeats "$REPEATS" \
    --cache "$OUT/nb201_${PROXY}_cache.jsonl" \
    -o "$OUT/nb201_evolution_${PROXY}.jsonl" --plot "$OUT/nb201_evolution_${PROXY}.png"
