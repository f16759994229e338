"""The one import point for TensorFlow Probability.

TFP has a TensorFlow and a JAX substrate; importing it here, once, keeps the choice in one
place. mibzoo uses distributions only (never `tfp.layers`, which needs the legacy tf-keras).
"""
import tensorflow_probability as _tfp

tfp = _tfp
tfd = _tfp.distributions

__all__ = ["tfp", "tfd"]
