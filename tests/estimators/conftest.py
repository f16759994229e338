"""Shared fixtures for the estimator tests."""

import numpy as np
import pytest
import tensorflow as tf


class Runner:
    """Call a function eagerly or through ``tf.function``; results come back as NumPy."""

    def __init__(self, eager):
        self.eager = eager

    def __call__(self, fn, *args, **kwargs):
        args = [tf.convert_to_tensor(a) if isinstance(a, np.ndarray) else a for a in args]
        if self.eager:
            out = fn(*args, **kwargs)
        else:
            def traced(*a):
                return fn(*a, **kwargs)
            out = tf.function(traced)(*args)
        return tf.nest.map_structure(lambda t: np.asarray(t), out)

    def __repr__(self):
        return "eager" if self.eager else "tf_function"


@pytest.fixture(params=[True, False], ids=["eager", "tf_function"])
def run_eagerly(request):
    """``run_eagerly(fn, *tensors, **python_kwargs)``: eager, then under ``tf.function``."""
    return Runner(request.param)


def _coloured_groups(rows, seed=0):
    """Two groups with different label shares (30 % / 70 % ones); a 'shape' ``[rows, 1]`` that
    depends on the label alike in both groups (label · 2 plus unit noise); and whether each row's
    'colour' is flipped against its label, 10 % of the time in group 0 and 20 % in group 1
    (Colored-MNIST's construction). Returns ``(groups, labels, shape, flip, rng)``, the generator
    left for the caller's further draws."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 2, rows)
    labels = (rng.random(rows) < np.where(groups == 0, 0.3, 0.7)).astype(int)
    shape = labels[:, None] * 2.0 + rng.normal(size=(rows, 1))
    flip = rng.random(rows) < np.where(groups == 0, 0.1, 0.2)
    return groups, labels, shape, flip, rng


@pytest.fixture
def coloured_groups():
    """``coloured_groups(rows)`` → ``(groups, labels, shape, flip, rng)``, see `_coloured_groups`."""
    return _coloured_groups
