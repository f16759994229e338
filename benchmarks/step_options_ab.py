"""Compile options of the training step (XLA, steps_per_execution) A/B'd in one process, interleaved.

    python benchmarks/step_options_ab.py ENTRY STEPS ROUNDS [plain,xla,spe10,spe20,spe60,xla_spe10]

ENTRY is built with MultiVae's networks (`throughput.peer_model`); each variant is its own model,
warmed up by 20 steps, then every round runs a `fit` of STEPS steps per variant in turn. Prints each
round's examples/s with the load average, then the medians and the median ratio to the first variant.
"""
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import throughput as T  # noqa: E402  (benchmarks/, the script's folder)
entry, steps, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
variants = {"plain": {}, "xla": {"jit_compile": True}, "spe10": {"steps_per_execution": 10}, "spe60": {"steps_per_execution": 60}, "spe20": {"steps_per_execution": 20}, "xla_spe10": {"jit_compile": True, "steps_per_execution": 10}}
sel = sys.argv[4].split(",") if len(sys.argv) > 4 else list(variants)
models = {}
for name in sel:
    m = T.peer_model(entry)
    m.compile(optimizer=keras.optimizers.Adam(1e-3), **variants[name])
    arrays = T.mnist_shaped(m.modality_specs, T.BATCH * 200)
    ds = tf.data.Dataset.from_tensor_slices(arrays).batch(T.BATCH, drop_remainder=True).repeat().prefetch(tf.data.AUTOTUNE)
    m.fit(ds, steps_per_epoch=20, epochs=1, verbose=0)
    models[name] = (m, ds)
res = {n: [] for n in sel}
for r in range(reps):
    for name in sel:
        m, ds = models[name]
        t = time.perf_counter()
        m.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
        res[name].append(T.BATCH * steps / (time.perf_counter() - t))
    print(json.dumps({n: round(v[-1]) for n, v in res.items()} | {"load": round(os.getloadavg()[0], 1)}), flush=True)
base = np.array(res[sel[0]])
print(entry, "median ex/s", {n: round(float(np.median(v))) for n, v in res.items()},
      "median ratio to", sel[0], {n: round(float(np.median(np.array(v) / base)), 3) for n, v in res.items()})
