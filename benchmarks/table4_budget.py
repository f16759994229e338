"""What `mibzoo reproduce table4`'s baselines cost on this machine, and the least any
implementation of their recipe built from matrix products could cost: issue 12 asks for the whole
table in 30 minutes on 2 cores.

    python benchmarks/table4_budget.py [--steps 20] [--seeds 5] [--gemm 2048]
        [--precision float32 | mixed_bfloat16] [--compare-inputs ROUNDS]

IRM's recipe (Arjovsky et al. 2019) trains an MLP 392 → 390 → 390 → 1 for 501 full-batch steps on
the 50,000 training images; the table has three such baselines (ERM, IRMv1, the grayscale oracle)
times the seeds. The script

1. times full-batch steps of `mibzoo.reproduce.ood_baselines.train_baseline`'s IRMv1 step at the
   given precision (default: the table's, `ood_baselines.default_precision()`; its first steps,
   which trace and compile, are left out);
2. counts the step's floating-point operations: the forward pass is 2 · N · (d·h + h·h + h)
   FLOPs, the backward pass twice that (the gradients of the activations and of the weights; the
   input's gradient is not needed, so the first layer's backward is one product, not two). d is
   the number of inputs the first layer multiplies: 196, the pixels of the channel each digit is
   drawn in (`ood_baselines.single_channel_split`; the other 196 are 0), or 392 where the images
   are not of that form;
3. measures what this machine's matrix multiply reaches (a square `tf.matmul` in float32 and
   in bfloat16), the ceiling for any implementation made of such products;

and prints the seconds per step, the FLOP/s reached, and the baselines' minutes for the table at
the measured speed and at the ceiling. Device and threads are TensorFlow's defaults.

``--compare-inputs ROUNDS`` instead times, in alternating pairs, the step as the table runs it
(196 inputs multiplied) and the same step with `single_channel_split` refused (all 392 inputs), and
prints each pair and the mean paired difference with its standard error.
"""
import argparse
import dataclasses
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import mibzoo  # noqa: E402
from mibzoo.reproduce import ood_baselines  # noqa: E402
from mibzoo.run_records import machine  # noqa: E402


def step_flops(rows, inputs, hidden):
    """FLOPs of one full-batch training step of the MLP inputs → hidden → hidden → 1 on ``rows``
    examples: 2 per multiply-add; forward once, backward twice less the first layer's input gradient."""
    forward = 2 * rows * (inputs * hidden + hidden * hidden + hidden)
    backward = 2 * forward - 2 * rows * inputs * hidden
    return forward + backward


def gemm_flops_per_second(size, repeats=10, dtype="float32"):
    """FLOP/s of a ``size`` × ``size`` matrix product in ``dtype`` (best of ``repeats``, after a warm-up)."""
    a = tf.cast(tf.random.normal((size, size)), dtype)
    b = tf.cast(tf.random.normal((size, size)), dtype)
    product = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
    product(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        product(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best


def timed_steps(steps, precision, warmup=3):
    """Seconds per full-batch IRMv1 step of the table's baseline, the rows of a step and the inputs
    its first layer multiplies: a run of ``warmup + steps`` steps less a run of ``warmup`` (both pay
    the same data set-up, tracing and compile), divided by ``steps``."""
    train = mibzoo.data.load_arrays("colored_mnist", "train")
    test = mibzoo.data.load_arrays("colored_mnist", "test", limit=100)
    settings = ood_baselines.IRM_SETTINGS

    def run(count):
        start = time.perf_counter()
        ood_baselines.train_baseline(dataclasses.replace(settings, steps=count), train, test, seed=0,
                                     precision=precision)
        return time.perf_counter() - start

    run(warmup)  # loads and caches what the first run of a process pays once
    seconds = (run(warmup + steps) - run(warmup)) / steps
    inputs = 392 if ood_baselines.single_channel_split(train["image"]) is None else 196
    return seconds, int(np.sum(np.asarray(train["env"]) < 2)), inputs


def compare_inputs(rounds, steps, precision):
    """Alternating pairs of `timed_steps`: the table's step, then the step with the first layer
    multiplying all 392 inputs (`ood_baselines.single_channel_split` refused in this process)."""
    split = ood_baselines.single_channel_split
    differences = []
    try:
        for i in range(rounds):
            seconds = {}
            for label, function in (("196 inputs", split), ("392 inputs", lambda images: None)):
                ood_baselines.single_channel_split = function
                seconds[label] = timed_steps(steps, precision)[0]
            differences.append(seconds["196 inputs"] - seconds["392 inputs"])
            print(f"round {i + 1}: " + ", ".join(f"{k} {v:.3f} s per step" for k, v in seconds.items()), flush=True)
    finally:
        ood_baselines.single_channel_split = split
    error = np.std(differences, ddof=1) / np.sqrt(rounds) if rounds > 1 else float("nan")
    print(f"196 minus 392 inputs: {np.mean(differences):+.3f} ± {error:.3f} s per step (mean ± standard error, "
          f"{rounds} pairs)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed full-batch steps")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per baseline in the table")
    parser.add_argument("--gemm", type=int, default=2048, help="size of the square matrix product")
    parser.add_argument("--precision", default=None, choices=ood_baselines.PRECISIONS,
                        help="precision of the timed step (default: the table's on this machine)")
    parser.add_argument("--compare-inputs", type=int, default=0, metavar="ROUNDS",
                        help="instead: time ROUNDS alternating pairs of the step with 196 and with all 392 inputs")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.seeds < 1 or args.gemm < 64 or args.compare_inputs < 0:
        parser.error("--steps and --seeds must be ≥ 1, --gemm ≥ 64 and --compare-inputs ≥ 0")

    precision = args.precision or ood_baselines.default_precision()
    if args.compare_inputs:
        compare_inputs(args.compare_inputs, args.steps, precision)
        return
    settings = ood_baselines.IRM_SETTINGS
    seconds, rows, inputs = timed_steps(args.steps, precision)
    flops = step_flops(rows, inputs, settings.hidden)
    peaks = {dtype: gemm_flops_per_second(args.gemm, dtype=dtype) for dtype in ("float32", "bfloat16")}
    peak = peaks["bfloat16" if precision == "mixed_bfloat16" else "float32"]
    runs = 3 * args.seeds
    print(f"machine: {machine()}; tensorflow {tf.__version__}")
    print(f"baseline step ({precision}): {rows} rows, MLP 392-{settings.hidden}-{settings.hidden}-1 with "
          f"{inputs} inputs multiplied, {flops / 1e9:.1f} GFLOP; {seconds:.3f} s per step "
          f"({flops / seconds / 1e9:.1f} GFLOP/s)")
    for dtype, speed in peaks.items():
        print(f"{dtype} matrix product {args.gemm}x{args.gemm}: {speed / 1e9:.1f} GFLOP/s")
    print(f"baselines of the table ({runs} runs x {settings.steps} steps, {precision}): "
          f"{runs * settings.steps * seconds / 60:.1f} min at the measured step, "
          f"{runs * settings.steps * flops / peak / 60:.1f} min at the matrix-product ceiling "
          "(issue 12's budget for the whole table: 30 min)")


if __name__ == "__main__":
    main()
