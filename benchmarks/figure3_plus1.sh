#!/usr/bin/env bash
# Figure 3 (right) of the paper on MNIST-Plus-1 through the command line: from an image of digit m
# OURS-MM generates an image of digit m + 1. One training run of `mib_mm` at its zoo defaults (run
# directory with checkpoints, TensorBoard logs and the final model), its metrics (with the learned
# structure), and the sample grids copied into benchmarks/results/figure3/.
#
# The Figure 3 grids of every multimodal entry, at the budget of docs/results.md, are drawn by
# benchmarks/compare_mnist.py; this script is the same experiment as a user runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-runs/figure3_mib_mm}
mibzoo train mib_mm --dataset mnist_plus1 --epochs 5 --out "$RUN"
mibzoo evaluate "$RUN" --test-limit 2000 --likelihood-limit 500
mkdir -p benchmarks/results/figure3
cp "$RUN"/plots/*.png "$RUN"/metrics.json "$RUN"/run.json "$RUN"/history.csv benchmarks/results/figure3/
