"""MVTCAE's step written out by hand in TensorFlow on MultiVae's networks, against mibzoo's
`mvtcae` with the same networks, interleaved in one process: the zoo's own overhead per step.

    REPS=8 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 python benchmarks/handwritten_step.py mvtcae 50

Prints the graph's op count, then per round the milliseconds per step of both and their ratio.
"""
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

import throughput as T  # noqa: E402  (benchmarks/, the script's folder)

B = T.BATCH
def mlp(inp, widths):
    return keras.Sequential([keras.Input((inp,))] + [layers.Dense(w, activation="relu") for w in widths[:-1]] + [layers.Dense(widths[-1])])
enc_i, enc_l = mlp(784, [512, 512, 40]), mlp(10, [512, 512, 40])
dec_i, dec_l = mlp(20, [512, 784]), mlp(20, [512, 10])
opt = keras.optimizers.Adam(1e-3)
vars_ = enc_i.trainable_variables + enc_l.trainable_variables + dec_i.trainable_variables + dec_l.trainable_variables
opt.build(vars_)

def kl(m1, lv1, m2, lv2):
    return 0.5 * tf.reduce_sum(lv2 - lv1 + (tf.exp(lv1) + (m1 - m2) ** 2) / tf.exp(lv2) - 1, -1)

@tf.function(jit_compile=bool(int(os.environ.get("XLA", "0"))))
def step(img, lab):
    x = tf.reshape(img, (B, 784)); y = tf.one_hot(lab, 10)
    with tf.GradientTape() as tape:
        oi, ol = enc_i(x), enc_l(y)
        mi, lvi, ml, lvl = oi[:, :20], oi[:, 20:], ol[:, :20], ol[:, 20:]
        pi, pl = tf.exp(-lvi), tf.exp(-lvl)
        prec = 1 + pi + pl
        lv = -tf.math.log(prec); m = (mi * pi + ml * pl) / prec
        z = m + tf.exp(0.5 * lv) * tf.random.normal(tf.shape(m))
        li, ll = dec_i(z), dec_l(z)
        nll_i = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(x, li), -1)
        nll_l = tf.nn.softmax_cross_entropy_with_logits(y, ll)
        # q(z|x_i) with prior expert
        lvi1 = -tf.math.log(1 + pi); mi1 = mi * pi / (1 + pi)
        lvl1 = -tf.math.log(1 + pl); ml1 = ml * pl / (1 + pl)
        loss = tf.reduce_mean(nll_i + 50 * nll_l + (2 - 0.9) / 2 * kl(m, lv, 0., 0.) + 0.9 / 2 * (kl(m, lv, mi1, lvi1) + kl(m, lv, ml1, lvl1)))
    g = tape.gradient(loss, vars_)
    opt.apply_gradients(zip(g, vars_))
    return loss

entry = sys.argv[1] if len(sys.argv) > 1 else "mvtcae"
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 100
model = T.peer_model(entry)
model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=bool(int(os.environ.get("XLA", "0"))))
arrays = T.mnist_shaped(model.modality_specs, B * steps)
ds = tf.data.Dataset.from_tensor_slices(arrays).batch(B, drop_remainder=True).repeat().prefetch(tf.data.AUTOTUNE)
model.fit(ds, steps_per_epoch=5, epochs=1, verbose=0)
it = iter(ds)
batches = [next(it) for _ in range(steps)]
step(batches[0]["image"], batches[0]["label"])
print("graph ops hand:", len(step.get_concrete_function(batches[0]["image"], batches[0]["label"]).graph.get_operations()))
fn = model.train_function
for rep in range(int(os.environ.get("REPS", "4"))):
    t = time.perf_counter()
    for b in batches:
        l = step(b["image"], b["label"])
    float(l)
    hand = (time.perf_counter() - t) / steps
    t = time.perf_counter()
    for _ in range(steps):
        out = fn(it)
    float(keras.ops.convert_to_numpy(out["loss"]))
    ours = (time.perf_counter() - t) / steps
    print(json.dumps({"hand_ms": round(hand * 1e3, 2), "ours_ms": round(ours * 1e3, 2), "ratio": round(ours / hand, 3), "load": os.getloadavg()[0]}), flush=True)
