"""Shared checks every zoo model passes (keras-hub style `run_*_test` helpers), and tiny data.

A model's test is then a few lines: a tiny config and calls to these helpers.
"""
import numpy as np
import tensorflow as tf

import keras
import mibzoo
from mibzoo.modalities import NAME_FREE_KEYS

TINY_VECTOR = {"kind": "vector", "size": 12, "likelihood": "bernoulli", "hidden": 32, "layers": 1}
TINY_LABEL = {"kind": "categorical", "classes": 4, "hidden": 32, "layers": 1}
TINY_SHARED = [{"name": "z", "size": 4}]


def tiny_overrides(entry):
    """Small modalities of the entry's arity: one binary vector, or a vector with labels (named
    ``x``, ``y``, or after the entry's own modalities when its config keys weights or private
    sizes by modality, as the fairness entries' ``{"a": "alpha_a"}``)."""
    described = mibzoo.describe(entry)["model"]
    default = described["modalities"]

    def by_name(mapping):  # keys that are only kinds or "*" apply to the tiny modalities whatever their names
        return isinstance(mapping, dict) and bool(set(mapping) & set(default) or
                                                  set(mapping) - NAME_FREE_KEYS)

    keyed = by_name(described["private"]) or any(
        by_name(weight) for field in ("dist", "str_reg") for weight, _ in described[field])
    names = list(default) if keyed else ["x", "y"][:len(default)]
    # The first modality becomes the binary vector, every other one a label (Colored-MNIST's entries
    # have two: the label Y and the environment E).
    modalities = {names[0]: dict(TINY_VECTOR), **{name: dict(TINY_LABEL) for name in names[1:]}}
    overrides = {"modalities": modalities, "shared": TINY_SHARED}
    if any(block["code"] for block in described["shared"]):
        overrides["shared"] = [{"name": "noise", "size": 4},
                               {"name": "c", "size": 3, "prior": "categorical", "code": True},
                               {"name": "s", "size": 1, "code": True}]
    if isinstance(described["private"], dict):
        overrides["private"] = {name: 2 for name, size in described["private"].items() if size}
    elif described["private"]:
        overrides["private"] = 2
    if any(phase.get("start") for phase in described["phases"]):  # as the warm-ups (MNIST epochs)
        overrides["phases"] = [{k: v for k, v in phase.items() if k != "start"} for phase in described["phases"]]
    if described["kl_schedule"]:  # warm-ups are sized for MNIST epochs: a few steps for tiny runs
        overrides["kl_schedule"] = {"class_name": "LinearWarmup", "config": {"warmup_steps": 10}}
    return overrides


def is_adversarial(model):
    """Models trained through a critic phase: their loss is a minimax value, not a bound that falls."""
    return any(p["name"].startswith("critic:") for p in model.phases)


def synthetic_batches(modalities, n=256, seed=0, flip=0.1):
    """A learnable problem: a class c in {0..3} picks a binary prototype (12 pixels, a share ``flip``
    of them flipped) and is the label. Returns a dict of arrays keyed like ``modalities`` plus ``class``."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((4, 12)) > 0.5
    c = rng.integers(0, 4, n)
    flips = rng.random((n, 12)) < flip
    x = np.logical_xor(prototypes[c], flips).astype("float32")
    out = {"class": c.astype("int32")}
    for name, spec in modalities.items():
        out[name] = x if spec["kind"] == "vector" else c.astype("int32")
    return out


def dataset(arrays, batch_size=32):
    return tf.data.Dataset.from_tensor_slices(arrays).batch(batch_size)


def run_model_test(entry, steps=8, run_eagerly=False, **extra):
    """Loads ``entry`` with tiny modalities, fits a few steps; every reported loss is finite."""
    overrides = {**tiny_overrides(entry), **extra}
    model = mibzoo.load(entry, **overrides)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=run_eagerly)
    arrays = synthetic_batches(model.modality_specs, n=steps * 16)
    history = model.fit(dataset(arrays, 16), epochs=1, verbose=0)
    for key, values in history.history.items():
        assert np.all(np.isfinite(values)), f"{entry}: loss term {key} is not finite: {values}"
    expected = {"loss"} | {t.name for _, t, _ in model.loss_terms}
    assert expected <= set(history.history), f"{entry}: missing reported terms {expected - set(history.history)}"
    return model, arrays


def run_saving_test(model, arrays, tmp_path):
    """`.keras` round trip (safe mode) gives identical `encode` outputs and config; `get_config`
    mirrors `__init__` (`from_config(get_config())` rebuilds the same model)."""
    config = model.get_config()
    assert type(model).from_config(config).get_config() == config
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert restored.get_config() == model.get_config()
    if not model.has_inference:  # GAN-type: compare seeded generation instead
        a, b = model.sample(8, seed=5), restored.sample(8, seed=5)
        for name in model.modality_names:
            np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]))
        return restored
    inputs = {k: v[:8] for k, v in arrays.items() if k in model.modality_specs}
    a, b = model.encode(inputs), restored.encode(inputs)
    np.testing.assert_array_equal(np.asarray(a["loc"]), np.asarray(b["loc"]))
    np.testing.assert_array_equal(np.asarray(a["logvar"]), np.asarray(b["logvar"]))
    return restored


def collapse_floor(model, arrays):
    """The loss of the best model that ignores its latents, in nats per example.

    Such a model can do no better than each modality's marginal: independent Bernoulli pixels at
    their data frequencies, labels at their class frequencies. Its likelihood terms (C0, C1 over
    the joint, the single-modality ELBOs of ``marginal``, each modality generated from the others in
    ``cross_generation``) are then at least those entropies and its
    KL terms zero. A model whose trained loss is clearly below this floor uses its latents; one
    that collapsed to the prior cannot get there.
    """
    def entropy(name):
        values = np.asarray(arrays[name])
        if model.modality_specs[name]["kind"] == "categorical":
            p = np.bincount(values, minlength=model.modality_specs[name]["classes"]) / len(values)
            return float(-np.sum(p[p > 0] * np.log(p[p > 0])))
        p = np.clip(values.reshape(len(values), -1).mean(0), 1e-6, 1 - 1e-6)
        return float(-np.sum(p * np.log(p) + (1 - p) * np.log(1 - p)))

    per_modality = [entropy(name) for name in model.modality_names]
    floor = 0.0
    for _, term, weight in model.loss_terms:
        if term.name in ("C0", "C1"):
            floor += weight * sum(per_modality)
        elif term.name in ("C4", "marginal", "cross_generation"):
            floor += float(np.dot(weight, per_modality))
    return floor
