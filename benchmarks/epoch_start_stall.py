"""How long each epoch of a zoo entry's ``fit`` waits before its first batch, with tf.data's
autotuning on (its default) and off (`mibzoo.data.pipeline.fixed_prefetch`, what mibzoo's pipelines use).

    python benchmarks/epoch_start_stall.py [--entry ood_cmnist] [--epochs 30] [--pairs 2] [--keep-iterators]

Each run is a fresh process that trains ``--entry`` on Colored-MNIST's 50,000 training images as
`mibzoo reproduce table4` does (batch 2500, seed 0, Adam 5e-4, a full-size shuffle buffer reshuffled
every epoch), its dataset ending in ``prefetch(tf.data.AUTOTUNE)`` ("autotuned") or in
`fixed_prefetch` ("fixed"); runs alternate between the two ``--pairs`` times. Each prints the fit's
seconds, how many epoch starts (after the first, which traces) waited more than 0.8 s for their first
batch, the median wait, and the sum of the trained weights: equal sums mean the two pipelines trained
the same model. ``--keep-iterators`` keeps every dataset iterator alive in the autotuned runs (none is
released), which shows whether the wait is the release of the previous epoch's iterator.
"""
import argparse
import os
import subprocess
import sys
import time

STALL_SECONDS = 0.8


def run(variant, entry, epochs, keep_iterators):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import tensorflow as tf

    import mibzoo
    import mibzoo.data
    from mibzoo.data.pipeline import fixed_prefetch
    from mibzoo.reproduce import table4

    kept = []
    if keep_iterators:
        from tensorflow.python.data.ops import iterator_ops

        init = iterator_ops.OwnedIterator.__init__

        def keep(self, *args, **kwargs):
            init(self, *args, **kwargs)
            kept.append(self)
        iterator_ops.OwnedIterator.__init__ = keep

    train, _ = table4._arrays(None, None)
    modalities = mibzoo.data.info("colored_mnist").modalities
    keras.utils.set_random_seed(0)
    specs = {name: {k: v for k, v in spec.items() if k != "description"} for name, spec in modalities.items()}
    model = mibzoo.load(entry, modalities=specs, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(5e-4))
    columns = {name: train[name] for name in specs}
    n = len(columns["image"])
    ds = tf.data.Dataset.from_tensor_slices(columns).shuffle(n, seed=0, reshuffle_each_iteration=True).batch(2500)
    ds = ds.prefetch(tf.data.AUTOTUNE) if variant == "autotuned" else fixed_prefetch(ds)

    class FirstBatchWait(keras.callbacks.Callback):
        waits = []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                self.waits.append(time.perf_counter() - self.started)

    waits = FirstBatchWait()
    started = time.perf_counter()
    model.fit(ds, epochs=epochs, verbose=0, shuffle=False, callbacks=[waits])
    seconds = time.perf_counter() - started
    later = np.asarray(waits.waits[1:])
    weight_sum = float(np.sum(np.concatenate([np.ravel(v.numpy()) for v in model.weights]).astype("float64")))
    print(f"{variant:9s} fit {seconds:6.1f} s   epoch starts waiting > {STALL_SECONDS} s: "
          f"{int(np.sum(later > STALL_SECONDS))}/{len(later)}   median wait {np.median(later):.3f} s   "
          f"weight sum {weight_sum!r}" + ("   (iterators kept)" if keep_iterators else ""), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entry", default="ood_cmnist")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--keep-iterators", action="store_true")
    parser.add_argument("--variant", choices=["autotuned", "fixed"], help=argparse.SUPPRESS)  # one run, in-process
    args = parser.parse_args()
    if args.variant:
        run(args.variant, args.entry, args.epochs, args.keep_iterators and args.variant == "autotuned")
        return
    for _ in range(args.pairs):
        for variant in ("autotuned", "fixed"):
            command = [sys.executable, __file__, "--variant", variant, "--entry", args.entry,
                       "--epochs", str(args.epochs)] + (["--keep-iterators"] if args.keep_iterators else [])
            subprocess.run(command, check=True, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
