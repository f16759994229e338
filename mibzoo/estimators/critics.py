"""Small critic networks for the adversarial and MI estimators.

* :class:`Discriminator` — an MLP from a sample (images are flattened) to one
  logit: the GAN discriminator of C2 and the density-ratio discriminator of the
  ``factor_vae`` total-correlation term.
* :class:`MINEStatistics` — the statistics network ``T(x, y)`` of MINE.

Both return shape ``[B]`` (one logit / statistic per example); the estimators
in this package accept any shape.
"""

import keras
from keras import ops

__all__ = ["Discriminator", "MINEStatistics"]


def _check(name, hidden, layers):
    if not isinstance(hidden, int) or hidden <= 0:
        raise ValueError(f"{name}: hidden got {hidden!r}, expected a positive integer")
    if not isinstance(layers, int) or layers < 0:
        raise ValueError(f"{name}: layers got {layers!r}, expected an integer >= 0")


class _MLPHead(keras.layers.Layer):
    """``layers`` Dense(hidden, activation) blocks and a Dense(1) output, squeezed."""

    def __init__(self, hidden, layers, activation, **kwargs):
        super().__init__(**kwargs)
        self.hidden_layers = [
            keras.layers.Dense(hidden, activation=activation, name=f"dense_{i}")
            for i in range(layers)
        ]
        self.out = keras.layers.Dense(1, name="logit")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.hidden_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.out.build(shape)

    def call(self, h):
        for layer in self.hidden_layers:
            h = layer(h)
        return ops.squeeze(self.out(h), axis=-1)


def _flatten(x):
    x = ops.cast(x, "float32")
    if len(x.shape) == 1:
        return ops.reshape(x, (-1, 1))
    if len(x.shape) > 2:
        return ops.reshape(x, (ops.shape(x)[0], -1))
    return x


def _flat_size(shape):
    size = 1
    for d in shape[1:]:
        if d is None:
            raise ValueError(f"critic input needs known non-batch dimensions, got shape {shape}")
        size *= d
    return size


class _MLPCritic(keras.layers.Layer):
    """What the MLP critics share: their options (width and number of hidden layers, activation),
    checked, their `_MLPHead` and their config."""

    def __init__(self, hidden, layers, activation, **kwargs):
        super().__init__(**kwargs)
        _check(type(self).__name__, hidden, layers)
        self.hidden = hidden
        self.num_hidden_layers = layers
        self.activation = activation
        self.head = _MLPHead(hidden, layers, activation, name="mlp")

    def get_config(self):
        config = super().get_config()
        config.update(hidden=self.hidden, layers=self.num_hidden_layers, activation=self.activation)
        return config


@keras.saving.register_keras_serializable(package="mibzoo")
class Discriminator(_MLPCritic):
    """MLP discriminator: flattened input -> ``layers`` x Dense(hidden) -> one logit.

    Args:
      hidden: width of each hidden layer.
      layers: number of hidden layers (0 gives a linear/logistic critic).
      activation: Keras activation of the hidden layers.

    Call:
      ``logits = critic(x)`` with ``x`` of shape ``[B, ...]``; returns ``[B]`` float32.
    """

    def __init__(self, hidden=256, layers=2, activation="leaky_relu", **kwargs):
        super().__init__(hidden, layers, activation, **kwargs)

    def build(self, input_shape):
        self.input_size = _flat_size(input_shape)
        self.head.build((input_shape[0], self.input_size))

    def call(self, x):
        return self.head(_flatten(x))

    def features(self, x, training=None):
        """``[B, features_size]``: the last hidden layer (the flattened input with ``layers=0``),
        the features an auxiliary network may share (InfoGAN's Q)."""
        h = _flatten(x)
        for layer in self.head.hidden_layers:
            h = layer(h)
        return h

    @property
    def features_size(self):
        """Width of `features` (known once built)."""
        return self.hidden if self.num_hidden_layers else self.input_size

    def compute_output_shape(self, input_shape):
        return (input_shape[0],)


@keras.saving.register_keras_serializable(package="mibzoo")
class MINEStatistics(_MLPCritic):
    """Statistics network ``T(x, y)`` of MINE: concat(flatten x, flatten y) -> MLP -> scalar.

    Belghazi et al. 2018, Sec. 3.1 (``T_θ`` a neural network on the joint
    input); the two inputs are concatenated after flattening.

    Args:
      hidden: width of each hidden layer.
      layers: number of hidden layers.
      activation: Keras activation of the hidden layers.

    Call:
      ``t = critic([x, y])`` (a pair; more tensors are concatenated too); returns
      ``[B]`` float32.
    """

    def __init__(self, hidden=128, layers=2, activation="elu", **kwargs):
        super().__init__(hidden, layers, activation, **kwargs)

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or not input_shape \
                or not isinstance(input_shape[0], (list, tuple)):
            raise ValueError("MINEStatistics expects a pair of inputs [x, y], "
                             f"got input shape {input_shape}")
        size = sum(_flat_size(s) for s in input_shape)
        self.head.build((input_shape[0][0], size))

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 2:
            raise ValueError("MINEStatistics expects a pair of inputs [x, y]")
        return self.head(ops.concatenate([_flatten(t) for t in inputs], axis=-1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0],)


@keras.saving.register_keras_serializable(package="mibzoo")
class MovingAverageMINE(MINEStatistics):
    """`MINEStatistics` that also keeps the moving average of E_marginal[e^T] which MINE's
    bias-corrected gradient divides by (Belghazi et al. 2018, Sec. 3.2); see `mine.mine_loss`.

    Args:
      decay: decay of the moving average.
      **kwargs: as `MINEStatistics`.
    """

    def __init__(self, decay=0.99, **kwargs):
        super().__init__(**kwargs)
        self.decay = float(decay)

    def build(self, input_shape):
        super().build(input_shape)
        # Only the first replica's update is kept under tf.distribute (it is a statistic, not a
        # parameter); 0 means "not started" for `mine_loss`.
        self.moving_average = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                              name="moving_average", aggregation="only_first_replica")

    def get_config(self):
        config = super().get_config()
        config.update(decay=self.decay)
        return config
