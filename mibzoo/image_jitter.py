"""Random nuisance transforms of image batches, differentiable in the images: stroke-width jitter
(grey-scale dilation or erosion, blended) and rotation about the image centre.

InfoGAN's Q can read its categorical code from whatever differs between the codes' images. On MNIST
two codes settle on drawing the same pair of digits and tell themselves apart by stroke width or
slant (docs/results.md, findings 12-13): the information bound is then as high as for the digit
partition. Q reading jittered images (`mibzoo.objectives.critics.infogan_information`) cannot see
those differences, so the bound rewards only a code that survives them.
"""
import math

import keras
from keras import ops

__all__ = ["stroke_width_jitter", "rotate", "jitter_images"]


def _dilate(images):
    return ops.max_pool(images, pool_size=3, strides=1, padding="same")


def _erode(images):
    return -ops.max_pool(-images, pool_size=3, strides=1, padding="same")


def stroke_width_jitter(images, amounts):
    """Thickens or thins bright strokes: ``x + a (dilate(x) − x)`` for ``a ≥ 0`` and
    ``x + |a| (erode(x) − x)`` for ``a < 0``, where dilate / erode are the 3 × 3 grey-scale maximum /
    minimum filters (over the neighbours inside the image at the border).

    Args:
      images: ``[B, H, W, C]`` float images, bright strokes on a dark background (MNIST).
      amounts: ``[B]`` blend weights in ``[−1, 1]``: 1 is a full one-pixel dilation, −1 a full erosion,
        0 the image unchanged.

    Returns:
      ``[B, H, W, C]`` images.
    """
    images = ops.cast(images, "float32")  # also bfloat16 decoder outputs under mixed precision
    a = ops.reshape(ops.cast(amounts, "float32"), (-1, 1, 1, 1))
    thicker = images + ops.maximum(a, 0.0) * (_dilate(images) - images)
    return thicker + ops.minimum(a, 0.0) * (images - _erode(images))


def rotate(images, angles):
    """Rotates each image by its angle about the image centre, bilinear, zero outside the image.

    A positive angle turns the image counter-clockwise as displayed (rows downwards), so
    ``rotate(x, π/2)`` of a square image is ``numpy.rot90(x, 1, axes=(1, 2))``.

    Args:
      images: ``[B, H, W, C]`` float images.
      angles: ``[B]`` angles in radians.

    Returns:
      ``[B, H, W, C]`` images.
    """
    images = ops.cast(images, "float32")  # also bfloat16 decoder outputs under mixed precision
    height, width = images.shape[1], images.shape[2]
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    angles = ops.cast(angles, "float32")
    cos, sin = ops.cos(angles), ops.sin(angles)
    # affine_transform reads output pixel (x, y) from the input point (a0 x + a1 y + a2,
    # b0 x + b1 y + b2): the output point turned by the inverse rotation about the centre.
    a0, a1 = cos, -sin
    b0, b1 = sin, cos
    a2 = cx - a0 * cx - a1 * cy
    b2 = cy - b0 * cx - b1 * cy
    zeros = ops.zeros_like(cos)
    transform = ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=-1)
    return ops.image.affine_transform(images, transform, interpolation="bilinear", fill_mode="constant",
                                      fill_value=0.0, data_format="channels_last")


def jitter_images(images, max_rotation=0.0, stroke_jitter=0.0, seed=None):
    """Draws one stroke-width amount ``U(−stroke_jitter, stroke_jitter)`` and one angle
    ``U(−max_rotation, max_rotation)`` per image and applies `stroke_width_jitter`, then `rotate`
    (each skipped when its range is 0).

    Args:
      images: ``[B, H, W, C]`` float images.
      max_rotation: the largest angle in radians, in ``[0, π]``.
      stroke_jitter: the largest blend weight, in ``[0, 1]``.
      seed: a ``keras.random.SeedGenerator`` (or an int) for the draws.

    Returns:
      ``[B, H, W, C]`` images.
    """
    if not 0.0 <= max_rotation <= math.pi:
        raise ValueError(f"jitter_images: max_rotation must be in [0, pi] radians, got {max_rotation}")
    if not 0.0 <= stroke_jitter <= 1.0:
        raise ValueError(f"jitter_images: stroke_jitter must be in [0, 1], got {stroke_jitter}")
    images = ops.cast(images, "float32")  # also bfloat16 decoder outputs under mixed precision
    batch = (ops.shape(images)[0],)
    if stroke_jitter > 0:
        images = stroke_width_jitter(images, keras.random.uniform(batch, -stroke_jitter, stroke_jitter, seed=seed))
    if max_rotation > 0:
        images = rotate(images, keras.random.uniform(batch, -max_rotation, max_rotation, seed=seed))
    return images
