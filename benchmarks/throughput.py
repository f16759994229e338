"""Training throughput of every zoo entry at batch 128 on MNIST-shaped data, beside a minimal
hand-written Keras VAE of the same size; the ratio is the framework's overhead.

    python benchmarks/throughput.py [--steps 40] [--warmup 6] [--entries vae wyner_vae ...]
    python benchmarks/throughput.py --peer-architecture [--epochs 3] [--peer-python PEER_VENV/bin/python]

Prints examples per second over the steps after the warm-up steps (which include tracing),
measured inside one `fit` call by a callback.

``--peer-architecture`` builds every multimodal entry with the networks MultiVae 1.0.3 builds for its
counterpart at `peer_multivae.py`'s settings (`MULTIVAE_MODELS`: MLP encoders of two 512-unit layers
and decoders of one for every modality, DMVAE's encoders of one; latent 20; batch 128) so that examples/s
compare one to one with that peer, and runs each entry in its own process over several epochs:
it prints the steady rate, the seconds of an epoch, what the first step of each later epoch
costs relative to a steady step (an epoch-start stall shows there), and the process's peak RSS.
Device placement is TensorFlow's: on a GPU machine the same script measures the GPU.

``--peer-python`` names a Python that has MultiVae (`benchmarks/peer_multivae.py` says how to
make one): each entry that has a MultiVae counterpart is then followed by that model, timed the
same way in its own process, and the rows give our examples/s over the peer's from the same run.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers, ops  # noqa: E402

import mibzoo  # noqa: E402
from step_profile import epoch_figures  # noqa: E402  (benchmarks/, the script's folder)
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
    """Wall-clock time at the end of every training step, and at the start of every epoch."""

    def __init__(self):
        super().__init__()
        self.times = []
        self.epoch_starts = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_starts.append((len(self.times), time.perf_counter()))

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


# MultiVae 1.0.3's default networks at `peer_multivae.py`'s settings, read off its model objects
# (`peer_multivae.py --describe` prints every Linear layer and each network's parameter count):
# for every modality an encoder of two 512-unit ReLU layers and a decoder of one (Encoder_VAE_MLP,
# Decoder_AE_MLP), latent 20. DMVAE's encoders (Encoder_VAE_MLP_Style) have one hidden layer, and
# its private latents are 4-dimensional for every modality. JMVAE adds a joint encoder network
# (MultipleHeadJointEncoder, 1.28 M parameters) that no zoo entry has: ours uses the product of
# the unimodal experts as q(z | X).
MULTIVAE_MLP = {"hidden": 512, "layers": 2, "decoder_layers": 1}
# zoo entry -> (MultiVae class, its networks where they differ from MULTIVAE_MLP, private size per modality)
MULTIVAE_MODELS = {"jmvae": ("JMVAE", {}, 0), "mvae": ("MVAE", {}, 0), "mmvae": ("MMVAE", {}, 0),
                   "mopoe": ("MoPoE", {}, 0), "mvtcae": ("MVTCAE", {}, 0), "dmvae": ("DMVAE", {"layers": 1}, 4)}


def peer_model(entry, steps_per_execution=None):
    """Zoo entry ``entry`` with the networks and private latents of its MultiVae counterpart, latent
    20; an entry without a counterpart gets MultiVae's default MLPs and keeps its own private latents."""
    overrides = {} if steps_per_execution is None else {"steps_per_execution": steps_per_execution}
    networks = MULTIVAE_MLP
    if entry in MULTIVAE_MODELS:
        _, changes, private = MULTIVAE_MODELS[entry]
        networks = {**MULTIVAE_MLP, **changes}
        overrides["private"] = {name: private for name in mibzoo.describe(entry)["model"]["modalities"]}
    return mibzoo.load(entry, networks={"image": {"network": "mlp", **networks}, "categorical": networks},
                       shared=[{"name": "z", "size": 20}], **overrides)


def epoch_profile(entry, steps, epochs, finite=False, steps_per_execution=None):
    """One entry with the peer's networks, ``epochs`` epochs of ``steps`` steps in one `fit`:
    steady rate (every epoch after the first, without its first step), epoch seconds, the first
    step of epochs 2.. against the median steady step, and this process's peak RSS. With
    ``steps_per_execution`` k > 1 (None: the entry's config) a "step" of these figures is one call
    of k training steps, and the rate counts k batches per call."""
    model = peer_model(entry, steps_per_execution)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    arrays = mnist_shaped(model.modality_specs, BATCH * steps)
    ds = tf.data.Dataset.from_tensor_slices(arrays).batch(BATCH, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    timer = StepTimes()
    if finite:  # a new iterator per epoch, as `mibzoo train` did before it repeated its dataset
        model.fit(ds, epochs=epochs, verbose=0, callbacks=[timer])
    else:  # what `mibzoo train` does (mibzoo.experiment_data.repeated_training_dataset)
        model.fit(ds.repeat(), steps_per_epoch=steps, epochs=epochs, verbose=0, callbacks=[timer])
    # With steps_per_execution > 1 (the entry's config) a callback sees one call of that many steps.
    return {"entry": entry, **epoch_figures(timer.times, timer.epoch_starts, BATCH * model.steps_per_execution),
            "steps_per_execution": model.steps_per_execution,
            "parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables))}


def _profile_process(command, threads=None):
    """Runs one profiling process (with ``threads``: that many intra-op threads and one inter-op
    thread for TensorFlow); its JSON line, or None after printing why it failed."""
    env = dict(os.environ)
    if threads:
        env.update(TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS="1")
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        print(f"  {' '.join(command[1:4])} failed: {done.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def _row(r, ratio=""):
    return (f"{r['entry']:16s} {r['parameters']:9d} {r['examples_per_second']:7.0f} {r['epoch_seconds']:8.1f} "
            f"{r['first_step_seconds'] * 1000:9.0f}ms {r['first_step_ratio']:8.1f}x {r['peak_rss_mb']:12.0f}  {ratio}")


def main_peer(args):
    entries = args.entries or [e for e in mibzoo.list_models() if len(mibzoo.describe(e)["model"]["modalities"]) > 1
                               and not e.startswith("fair_")]
    print(f"--peer-architecture: MultiVae's default MLPs (encoders 512-512, decoders 512), latent 20, batch {BATCH}, {args.epochs} epochs of "
          f"{args.epoch_steps} steps per entry ({'a finite dataset per epoch' if args.finite_epochs else 'repeated dataset'}), "
          f"each entry in its own process; {os.cpu_count()} cores, threads {args.threads or 'default'}")
    print(f"{'entry':16s} {'params':>9s} {'ex/s':>7s} {'epoch s':>8s} {'first step':>11s} {'x steady':>9s} "
          f"{'peak RSS MB':>12s}  {'ours / peer' if args.peer_python else ''}")
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in entries:
        runs = []
        for per_call in args.steps_per_execution or [None]:
            extra = ["--finite-epochs"] * args.finite_epochs
            extra += [] if per_call is None else ["--steps-per-execution", str(per_call)]
            runs.append(_profile_process([sys.executable, __file__, "--one", entry, "--epochs", str(args.epochs),
                                          "--epoch-steps", str(args.epoch_steps)] + extra, args.threads))
        peer = None
        if args.peer_python and entry in MULTIVAE_MODELS:
            peer = _profile_process([args.peer_python, os.path.join(here, "peer_multivae.py"), "--model",
                                     MULTIVAE_MODELS[entry][0], "--epochs", str(args.epochs),
                                     "--epoch-steps", str(args.epoch_steps)]
                                    + (["--threads", str(args.threads)] if args.threads else []))
        for ours in filter(None, runs):
            ratio = ""
            if peer:
                ratio = (f"{ours['examples_per_second'] / peer['examples_per_second']:.2f}x ex/s, "
                         f"{ours['peak_rss_mb'] / peer['peak_rss_mb']:.2f}x RSS")
            ours = {**ours, "entry": f"{ours['entry']} spe{ours['steps_per_execution']}"}
            print(_row(ours, ratio), flush=True)
        if peer:
            print(_row(peer), flush=True)
        print(f"  load average {os.getloadavg()[0]:.1f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=6)
    parser.add_argument("--entries", nargs="*", default=None)
    parser.add_argument("--peer-architecture", action="store_true",
                        help="MultiVae's networks for every multimodal entry, per-epoch figures and peak RSS")
    parser.add_argument("--epochs", type=int, default=3, help="with --peer-architecture")
    parser.add_argument("--epoch-steps", type=int, default=469, help="steps per epoch with --peer-architecture "
                        "(469 = 60,000 examples at batch 128)")
    parser.add_argument("--finite-epochs", action="store_true", help="with --peer-architecture: a finite dataset "
                        "iterated anew each epoch instead of the repeated one `mibzoo train` uses (shows the stall)")
    parser.add_argument("--peer-python", default=None, help="with --peer-architecture: a Python that has MultiVae; "
                        "each entry is followed by its MultiVae counterpart (benchmarks/peer_multivae.py)")
    parser.add_argument("--steps-per-execution", type=int, nargs="*", default=None,
                        help="with --peer-architecture: training steps per call of the train function (the "
                        "config's steps_per_execution; default: the entry's); several values run one process "
                        "each, beside the same peer run")
    parser.add_argument("--threads", type=int, default=None, help="with --peer-architecture: intra-op threads of "
                        "both frameworks (default: theirs, one per core); 1 keeps a comparison meaningful on a "
                        "loaded machine, where the peer's OpenMP threads stall")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: one entry, JSON out
    args = parser.parse_args()
    if args.one:
        per_call = args.steps_per_execution[0] if args.steps_per_execution else None
        print(json.dumps(epoch_profile(args.one, args.epoch_steps, args.epochs, args.finite_epochs, per_call)))
        return
    if args.peer_architecture:
        main_peer(args)
        return
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
