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
