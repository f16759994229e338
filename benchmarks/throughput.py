"""Training throughput of every zoo entry at batch 128 on MNIST-shaped data, beside a minimal
hand-written Keras VAE of the same size; the ratio is the framework's overhead.

    python benchmarks/throughput.py [--steps 30] [--warmup 5] [--entries vae wyner_vae ...]

Prints examples per second over the steps after the warm-up steps (which include tracing),
measured inside one `fit` call by a callback.
Device placement is TensorFlow's: on a GPU machine the same script measures the GPU.
"""
import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers, ops  # noqa: E402

import mibzoo  # noqa: E402
from mibzoo.networks import DEFAULT_FILTERS, DEFAULT_HIDDEN  # noqa: E402

BATCH = 128


class MinimalVAE(keras.Model):
    """The plain VAE a user would write by hand: same conv encoder/decoder sizes as the zoo's
    image networks (filters 32, 64; hidden 256; 16 latents), Bernoulli likelihood, analytic KL."""

    def __init__(self, latent=16):
        super().__init__()
        self.latent = latent
        self.encoder = keras.Sequential([
            layers.Conv2D(DEFAULT_FILTERS[0], 4, 2, "same", activation="relu"),
            layers.Conv2D(DEFAULT_FILTERS[1], 4, 2, "same", activation="relu"),
            layers.Flatten(), layers.Dense(DEFAULT_HIDDEN, activation="relu"), layers.Dense(2 * latent)])
        self.decoder = keras.Sequential([
            layers.Dense(DEFAULT_HIDDEN, activation="relu"), layers.Dense(7 * 7 * 64, activation="relu"),
            layers.Reshape((7, 7, 64)),
            layers.Conv2DTranspose(DEFAULT_FILTERS[1], 4, 2, "same", activation="relu"),
            layers.Conv2DTranspose(DEFAULT_FILTERS[0], 4, 2, "same", activation="relu"),
            layers.Conv2D(1, 3, padding="same")])
        self.seed = keras.random.SeedGenerator(0)

    def call(self, x):
        return self.decoder(self.encoder(x)[:, :self.latent])

    def train_step(self, data):
        x = data["image"]
        with tf.GradientTape() as tape:
            stats = self.encoder(x)
            loc, logvar = stats[:, :self.latent], stats[:, self.latent:]
            z = loc + ops.exp(0.5 * logvar) * keras.random.normal(ops.shape(loc), seed=self.seed)
            logits = self.decoder(z)
            nll = ops.sum(ops.binary_crossentropy(x, logits, from_logits=True), axis=(1, 2, 3))
            kl = 0.5 * ops.sum(ops.exp(logvar) + ops.square(loc) - 1.0 - logvar, axis=-1)
            loss = ops.mean(nll + kl)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"nelbo": loss}


def mnist_shaped(model_modalities, n, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for name, spec in model_modalities.items():
        if spec["kind"] == "image":
            out[name] = (rng.random((n, *spec["shape"])) > 0.7).astype("float32")
        elif spec["kind"] == "categorical":
            out[name] = rng.integers(0, spec["classes"], n).astype("int32")
        else:
            raise ValueError(f"throughput benchmark expects MNIST-shaped modalities, got {spec}")
    return out


class StepTimes(keras.callbacks.Callback):
    """Wall-clock time at the end of every training step."""

    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())


def examples_per_second(model, arrays, steps, warmup):
    """Rate over the steps after ``warmup`` within one `fit` call (so that fit's own start-up,
    tracing and the optimizer build are not counted). A total, not a median: for entries that
    alternate phases (Algorithm 1), cheap critic or structure steps and full network steps both
    count, as they do in training."""
    ds = tf.data.Dataset.from_tensor_slices(arrays).batch(BATCH, drop_remainder=True).repeat().prefetch(4)
    timer = StepTimes()
    model.fit(ds, steps_per_epoch=warmup + steps, epochs=1, verbose=0, callbacks=[timer])
    durations = np.diff(timer.times[warmup:])
    # Steps of all phases count: a cycle of Algorithm 1 is the unit of training work.
    return float(BATCH * len(durations) / np.sum(durations))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=6)
    parser.add_argument("--entries", nargs="*", default=None)
    args = parser.parse_args()
    devices = [d.device_type for d in tf.config.list_logical_devices()]
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, devices {devices}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; batch {BATCH}")
    baseline_model = MinimalVAE()
    baseline_model.compile(optimizer="adam")
    baseline = examples_per_second(baseline_model, mnist_shaped(
        {"image": {"kind": "image", "shape": [28, 28, 1]}}, BATCH * 4), args.steps, args.warmup)
    print(f"{'hand-written Keras VAE':28s} {baseline:9.0f} ex/s   ratio 1.00")
    for entry in args.entries or mibzoo.list_models():
        model = mibzoo.load(entry)
        model.compile(optimizer="adam")
        rate = examples_per_second(model, mnist_shaped(model.modality_specs, BATCH * 4), args.steps, args.warmup)
        phases = "+".join(f"{p['name']}x{p['steps']}" for p in model.phases)
        print(f"{entry:28s} {rate:9.0f} ex/s   ratio {baseline / rate:4.2f}   ({', '.join(model.modality_names)}; {phases})")


if __name__ == "__main__":
    main()
