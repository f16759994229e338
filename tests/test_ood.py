"""Colored-MNIST out-of-distribution generalization (Sec. 6, Table 4): baselines, the terms of
Eq. 18 and the IRM penalty, against independent NumPy computations."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from mibzoo.reproduce import ood_baselines


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def numpy_bce(logits, labels):
    p = _sigmoid(logits)
    return float(np.mean(-(labels * np.log(p) + (1 - labels) * np.log(1 - p))))


def numpy_irm_penalty(logits, labels, h=1e-4):
    """(dR(s f)/ds at s = 1)², by a central finite difference of the NumPy risk and in closed form."""
    fd = (numpy_bce((1 + h) * logits, labels) - numpy_bce((1 - h) * logits, labels)) / (2 * h)
    closed = float(np.mean((_sigmoid(logits) - labels) * logits))  # d/ds BCE(s f) = (σ(s f) − y) f
    assert abs(fd - closed) < 1e-6
    return closed ** 2


def test_irm_penalty_matches_numpy(rng):
    logits = rng.normal(size=7).astype("float64") * 2.0
    labels = rng.integers(0, 2, size=7).astype("float64")
    got = float(ood_baselines.irm_penalty(tf.constant(logits), tf.constant(labels)))
    np.testing.assert_allclose(got, numpy_irm_penalty(logits, labels), rtol=1e-9)


def test_irm_penalty_is_differentiable_and_zero_at_a_stationary_scale(rng):
    labels = tf.constant([1.0, 0.0, 1.0, 0.0])
    # Logits whose scale is already optimal for the risk: the penalty and its gradient vanish
    # only in that case; here the logits are too small, so the gradient is not zero.
    logits = tf.Variable([0.3, -0.2, 0.1, -0.4])
    with tf.GradientTape() as tape:
        penalty = ood_baselines.irm_penalty(logits, labels)
    grad = tape.gradient(penalty, logits)
    assert grad is not None and float(tf.reduce_sum(tf.abs(grad))) > 0
    # Finite-difference check of the gradient of the penalty itself (second-order autodiff).
    base = logits.numpy().astype("float64")
    y = labels.numpy().astype("float64")
    for k in range(4):
        step = np.zeros(4)
        step[k] = 1e-4
        fd = (numpy_irm_penalty(base + step, y) - numpy_irm_penalty(base - step, y)) / 2e-4
        np.testing.assert_allclose(float(grad[k]), fd, rtol=2e-3, atol=1e-7)


def test_features_grayscale_sums_channels(rng):
    images = rng.random((3, 14, 14, 2)).astype("float32")
    np.testing.assert_allclose(ood_baselines.features(images, grayscale=True), images.sum(-1).reshape(3, -1))
    assert ood_baselines.features(images).shape == (3, 392)
    with pytest.raises(ValueError, match="14, 14, 2"):
        ood_baselines.features(images[..., :1])


def _toy_colored(rng, n, flips):
    """A Colored-MNIST-like problem: a weak 'shape' feature that predicts y 75% of the time, and
    a strong colour that agrees with y with probability 1 − flip in each environment."""
    rows = []
    for env, flip in enumerate(flips):
        y = rng.integers(0, 2, n)
        shape = y ^ (rng.random(n) < 0.25)
        colour = y ^ (rng.random(n) < flip)
        image = np.zeros((n, 14, 14, 2), "float32")
        image[np.arange(n), :, :, colour] = 0.0
        image[np.arange(n), :7, :, colour] = shape[:, None, None]
        image[np.arange(n), 7:, :, colour] = 1 - shape[:, None, None]
        rows.append({"image": image, "label": y.astype("int32"), "env": np.full(n, env, "int32")})
    return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}


def test_erm_follows_colour_and_oracle_does_not(rng):
    train = _toy_colored(rng, 200, (0.1, 0.2))
    test = _toy_colored(rng, 200, (0.9,))
    test["env"][:] = 2
    quick = dict(hidden=16, steps=60, learning_rate=0.02)
    erm = ood_baselines.train_baseline(dataclasses.replace(ood_baselines.ERM_SETTINGS, **quick), train, test, 0)
    oracle = ood_baselines.train_baseline(dataclasses.replace(ood_baselines.ORACLE_SETTINGS, **quick), train, test, 0)
    assert erm["train_acc"] > 0.8 and erm["test_acc"] < 0.3  # colour: 85% in train, 10% in test
    assert 0.65 < oracle["test_acc"] < 0.85  # shape only: 75% everywhere
