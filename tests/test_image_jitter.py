"""Stroke-width jitter and rotation (`mibzoo.image_jitter`) against NumPy filters and numpy.rot90,
eagerly and under tf.function, and their gradient reaching the images."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from mibzoo.image_jitter import jitter_images, rotate, stroke_width_jitter


def _np_filter(images, reduce, pad):
    """3 × 3 maximum / minimum filter over the neighbours inside the image (padding never wins)."""
    b, h, w, c = images.shape
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=pad)
    windows = [padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)]
    return reduce(np.stack(windows), axis=0)


@pytest.mark.parametrize("amount", [1.0, -1.0, 0.5, -0.25, 0.0])
def test_stroke_width_jitter_blends_towards_the_max_or_min_filter(rng, run_mode, amount):
    images = rng.random((3, 9, 7, 2)).astype("float32")
    amounts = np.full((3,), amount, "float32")
    got = np.asarray(run_mode(stroke_width_jitter, tf.constant(images), tf.constant(amounts)))
    target = _np_filter(images, np.max, -np.inf) if amount > 0 else _np_filter(images, np.min, np.inf)
    expected = images + abs(amount) * (target - images)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_stroke_width_jitter_uses_each_images_own_amount(rng):
    images = np.repeat(rng.random((1, 8, 8, 1)).astype("float32"), 3, axis=0)
    got = np.asarray(stroke_width_jitter(images, np.array([1.0, 0.0, -1.0], "float32")))
    np.testing.assert_allclose(got[0], _np_filter(images, np.max, -np.inf)[0], atol=1e-6)
    np.testing.assert_allclose(got[1], images[1], atol=1e-6)
    np.testing.assert_allclose(got[2], _np_filter(images, np.min, np.inf)[2], atol=1e-6)


@pytest.mark.parametrize("angle, turns", [(math.pi / 2, 1), (-math.pi / 2, -1), (math.pi, 2), (0.0, 0)])
def test_rotate_by_right_angles_is_numpy_rot90(rng, run_mode, angle, turns):
    images = rng.random((2, 6, 6, 1)).astype("float32")
    got = np.asarray(run_mode(rotate, tf.constant(images), tf.constant([angle, angle], tf.float32)))
    np.testing.assert_allclose(got, np.rot90(images, turns, axes=(1, 2)), atol=1e-5)


def test_rotate_turns_a_centred_bar_and_keeps_it_centred():
    """A horizontal bar through the centre of an odd-sized image, turned by 45°, lies on the diagonal."""
    image = np.zeros((1, 15, 15, 1), "float32")
    image[0, 7, 2:13, 0] = 1.0
    got = np.asarray(rotate(image, np.array([math.pi / 4], "float32")))[0, ..., 0]
    assert got[7, 7] == pytest.approx(1.0, abs=1e-5)
    # counter-clockwise as displayed: the bar's right end goes up (smaller row), the left end down
    assert got[4, 10] > 0.5 and got[10, 4] > 0.5
    assert got[10, 10] < 0.05 and got[4, 4] < 0.05


def test_jitter_images_draws_per_image_within_range_and_is_the_identity_at_zero(rng):
    images = np.repeat(rng.random((1, 10, 10, 1)).astype("float32"), 4, axis=0)
    np.testing.assert_allclose(np.asarray(jitter_images(images)), images)
    seed = keras.random.SeedGenerator(0)
    jittered = np.asarray(jitter_images(images, max_rotation=0.3, stroke_jitter=0.5, seed=seed))
    assert not np.allclose(jittered[0], jittered[1])  # each image draws its own transform
    assert np.all(jittered >= -1e-6) and np.all(jittered <= 1 + 1e-6)  # blends and bilinear reads of [0, 1]


@pytest.mark.parametrize("kwargs, message", [
    ({"max_rotation": -0.1}, "max_rotation must be in [0, pi]"),
    ({"max_rotation": 4.0}, "max_rotation must be in [0, pi]"),
    ({"stroke_jitter": 1.5}, "stroke_jitter must be in [0, 1]"),
])
def test_jitter_images_refuses_ranges_outside_their_bounds(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        jitter_images(np.zeros((1, 4, 4, 1), "float32"), **kwargs)


def test_the_gradient_reaches_the_images_through_both_transforms(rng, run_mode):
    """Rotation is linear in the images: the gradient of Σ w · rot90(x) is rot90(w) turned back; the
    stroke jitter's gradient is finite and nonzero (it trains the generator through Q)."""
    images = tf.Variable(rng.random((2, 8, 8, 1)).astype("float32"))
    weights = tf.constant(rng.random((2, 8, 8, 1)).astype("float32"))

    def grads():
        with tf.GradientTape(persistent=True) as tape:
            turned = tf.reduce_sum(weights * rotate(images, tf.constant([math.pi / 2] * 2)))
            thickened = tf.reduce_sum(weights * stroke_width_jitter(images, tf.constant([0.7, -0.4])))
        return tape.gradient(turned, images), tape.gradient(thickened, images)

    turned, thickened = (np.asarray(g) for g in run_mode(grads))
    np.testing.assert_allclose(turned, np.rot90(np.asarray(weights), -1, axes=(1, 2)), atol=1e-5)
    assert np.isfinite(thickened).all() and np.abs(thickened).sum() > 0


def test_jitter_takes_low_precision_images_and_computes_in_float32(rng):
    """Under a mixed-precision policy a decoder may hand over bfloat16 images."""
    images = rng.random((2, 8, 8, 1)).astype("float32")
    low = tf.cast(images, tf.bfloat16)
    got = jitter_images(low, max_rotation=0.2, stroke_jitter=0.5, seed=keras.random.SeedGenerator(1))
    assert got.dtype == tf.float32 and np.isfinite(np.asarray(got)).all()
    np.testing.assert_allclose(np.asarray(rotate(low, tf.constant([math.pi / 2] * 2))),
                               np.rot90(np.asarray(tf.cast(low, tf.float32)), 1, axes=(1, 2)), atol=1e-6)
