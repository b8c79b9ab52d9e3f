#!/usr/bin/env bash
# Spearman's rho of every proxy against NAS-Bench-201 CIFAR-10 test accuracy on a random
# sample of cells: the README's "Proxies on NAS-Bench-201" table.
#
#   examples/nb201_spearman.sh [N] [WORKDIR]
#
# A batch job over N cells of the NB201 space (default 200; `space: {sample: N, seed: 0}`,
# the cells `zerocost space list nb201 --sample N --seed 0` prints), each generated in memory
# as the zero-cost-proxies paper's NB201 network (16 channels, 5 cells per stage, seed-0
# initialisation) and scored with every proxy (`proxies: all`) on one batch of 64 samples,
# with its CIFAR-10 test accuracy from data/nb201_accuracy.csv (override with
# NB201_ACCURACY=FILE) in its metadata; then `zerocost correlate`. Environment:
#   DATA    data source of the job (default synthetic; e.g. cifar10:/data/cifar-10-batches-bin
#           with NORMALIZE=cifar10 for the paper's setting)
#   ENGINE  ort-cpu (default; needs an ONNX Runtime library, e.g. `pip install onnxruntime`)
#           or tract
#   PRECISION f32 (default, as the paper's code) or f64
#   WORKERS models scored at once (default 2)
# The job is resumable: run the script again to finish an interrupted run.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200}
WORK=${2:-target/nb201_spearman}
ACC=${NB201_ACCURACY:-data/nb201_accuracy.csv}
DATA=${DATA:-synthetic}
ENGINE=${ENGINE:-ort-cpu}
PRECISION=${PRECISION:-f32}
WORKERS=${WORKERS:-2}
[ -f "$ACC" ] || { echo "no accuracy table at $ACC (set NB201_ACCURACY)" >&2; exit 1; }

cargo build --release --features ort --quiet
ZC=target/release/zerocost
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
ACC=$(cd "$(dirname "$ACC")" && pwd)/$(basename "$ACC")

cat > "$WORK/job.yaml" <<EOF
name: nb201-spearman-$N
space:
  name: nb201
  sample: $N
  seed: 0
  truth: $ACC
  truth_column: cifar10_test
proxies: [all]
data: $DATA
${NORMALIZE:+normalize: $NORMALIZE}
batch_size: 64
seed: 0
precision: $PRECISION
engine: $ENGINE
workers: $WORKERS
output: results.jsonl
EOF
$ZC batch "$WORK/job.yaml"
$ZC correlate "$WORK/results.jsonl" --format csv -o "$WORK/spearman.csv"
$ZC correlate "$WORK/results.jsonl"

# NAS-Bench-Suite-Zero's own proxy values (NASLib's 725-cell sample, other weights and
# data), ranked by the same `zerocost correlate` against the same accuracy column
NASLIB=${NASLIB:-data/naslib_zc_nasbench201_725subset.json}
echo "proxy,direction,n,spearman" > "$WORK/naslib.csv"
if [ -f "$NASLIB" ] && command -v python3 > /dev/null; then
    python3 examples/naslib_to_jsonl.py "$NASLIB" > "$WORK/naslib.jsonl"
    $ZC correlate "$WORK/naslib.jsonl" --truth "$ACC" --truth-column cifar10_test --format csv -o "$WORK/naslib.csv"
fi

# the README table: ours, NASLib's values, and what the proxies' papers report (Spearman ρ
# on NB201 CIFAR-10; sources in README.md). Columns of `correlate --format csv`: proxy,
# direction, n, spearman (in the proxy's direction), ...
awk -F, '
    BEGIN {
        split("grad_norm=0.58 snip=0.58 grasp=0.48 fisher=0.36 jacob_cov=0.73 synflow=0.74 params=0.753 meco=0.89 az_nas=0.91", kv, " ")
        for (i in kv) { split(kv[i], p, "="); paper[p[1]] = p[2] }
    }
    function rho(x) { return x == "" ? "undefined" : sprintf("%.3f", x) }
    FNR == 1 { file++; next }
    $1 == "vote" { next }
    file == 1 { naslib[$1] = rho($4); next }
    file == 2 { order[++n] = $1; ours[$1] = rho($4); cnt[$1] = $3 }
    END {
        print "| proxy | ρ, zerocost (cells) | ρ, NAS-Bench-Suite-Zero values (725 cells) | reported |"
        print "|---|---|---|---|"
        for (i = 1; i <= n; i++) {
            k = order[i]
            printf "| `%s` | %s (%d) | %s | %s |\n", k, ours[k], cnt[k], (k in naslib) ? naslib[k] : "—", (k in paper) ? paper[k] : "—"
        }
    }' "$WORK/naslib.csv" "$WORK/spearman.csv" > "$WORK/table.md"
cat "$WORK/table.md"
