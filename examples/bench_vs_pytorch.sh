#!/usr/bin/env bash
# Side-by-side benchmark of the zero-cost-proxies paper's PyTorch code vs `zerocost score`
# (run by hand, after `cargo build --release`). See examples/bench_vs_pytorch.py for what it
# measures; every argument is passed on, e.g.
#   examples/bench_vs_pytorch.sh --configs default,tract --runs 3
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 examples/bench_vs_pytorch.py "$@"
