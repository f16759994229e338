"""Encoders and decoders per modality kind: a small conv net or an MLP for images, MLPs otherwise.

Sizes come from the modality spec (``network``, ``hidden``, ``layers``, ``filters``) with the
defaults below. An image MLP flattens the pixels and has ``layers`` dense layers of width
``hidden`` (MultiVae's MNIST networks are 512-512 MLPs; on CPU they are also much faster than
the convolutions). Output layers compute in float32 so that distribution parameters stay in float32
under a ``mixed_bfloat16`` policy.
"""
import math

import keras

from mibzoo.likelihoods import param_shape
from mibzoo.modalities import event_shape

DEFAULT_HIDDEN = 256
DEFAULT_LAYERS = 2
DEFAULT_FILTERS = (32, 64)


def _sizes(spec):
    return (spec.get("hidden", DEFAULT_HIDDEN), spec.get("layers", DEFAULT_LAYERS),
            tuple(spec.get("filters", DEFAULT_FILTERS)))


def _convolutional(spec):
    return spec["kind"] == "image" and spec.get("network", "conv") == "conv"


@keras.saving.register_keras_serializable(package="mibzoo")
class ModalityEncoder(keras.layers.Layer):
    """Maps one modality to ``output_size`` raw numbers (expert and private-latent parameters).

    Args:
        spec: normalized modality spec.
        output_size: number of outputs (2 × latent sizes: means and log-variances).
    """

    def __init__(self, spec, output_size, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.output_size = output_size
        hidden, layers, filters = _sizes(spec)
        stack = []
        if _convolutional(spec):
            for f in filters:
                stack.append(keras.layers.Conv2D(f, 4, strides=2, padding="same", activation="relu"))
            stack.append(keras.layers.Flatten())
            stack.append(keras.layers.Dense(hidden, activation="relu"))
        else:
            if spec["kind"] == "image":
                stack.append(keras.layers.Flatten())
            stack.extend(keras.layers.Dense(hidden, activation="relu") for _ in range(layers))
        stack.append(keras.layers.Dense(output_size, dtype="float32"))
        self.net = keras.Sequential(stack, name="net")

    def build(self, input_shape=None):
        self.net.build((None,) + event_shape(self.spec))
        super().build(input_shape)

    def call(self, x):
        return self.net(x)

    def get_config(self):
        config = super().get_config()
        config.update(spec=self.spec, output_size=self.output_size)
        return config


@keras.saving.register_keras_serializable(package="mibzoo")
class ModalityDecoder(keras.layers.Layer):
    """Maps a latent vector (gated shared latents and the private latent) to likelihood parameters.

    Convolutional images: a dense layer to a coarse feature map, one stride-2 transposed convolution per
    entry of ``filters`` (reversed), a final convolution to the parameter channels, and a crop
    to the image size (so sizes not divisible by 2^len(filters), like 14×14, work). MLPs (every
    other kind, and images with ``"network": "mlp"``): ``layers`` dense layers of width ``hidden``
    and a dense output reshaped to the parameter shape.

    Args:
        spec: normalized modality spec.
        latent_size: size of the decoder input.
    """

    def __init__(self, spec, latent_size, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.latent_size = latent_size
        hidden, layers, filters = _sizes(spec)
        out_shape = param_shape(spec)
        stack = []
        if _convolutional(spec):
            h, w, channels = out_shape
            scale = 2 ** len(filters)
            h0, w0 = math.ceil(h / scale), math.ceil(w / scale)
            stack.append(keras.layers.Dense(hidden, activation="relu"))
            stack.append(keras.layers.Dense(h0 * w0 * filters[-1], activation="relu"))
            stack.append(keras.layers.Reshape((h0, w0, filters[-1])))
            for f in reversed(filters):
                stack.append(keras.layers.Conv2DTranspose(f, 4, strides=2, padding="same", activation="relu"))
            stack.append(keras.layers.Conv2D(channels, 3, padding="same", dtype="float32"))
            crop_h, crop_w = h0 * scale - h, w0 * scale - w
            if crop_h or crop_w:
                stack.append(keras.layers.Cropping2D(((0, crop_h), (0, crop_w)), dtype="float32"))
        else:
            stack.extend(keras.layers.Dense(hidden, activation="relu") for _ in range(layers))
            stack.append(keras.layers.Dense(math.prod(out_shape), dtype="float32"))
            if len(out_shape) > 1:
                stack.append(keras.layers.Reshape(out_shape, dtype="float32"))
        self.net = keras.Sequential(stack, name="net")

    def build(self, input_shape=None):
        self.net.build((None, self.latent_size))
        super().build(input_shape)

    def call(self, latent):
        return self.net(latent)

    def get_config(self):
        config = super().get_config()
        config.update(spec=self.spec, latent_size=self.latent_size)
        return config


@keras.saving.register_keras_serializable(package="mibzoo")
class CodePredictor(keras.layers.Layer):
    """InfoGAN's auxiliary network Q(c | x): an MLP from the flattened joint x to the parameters of
    each code block (class logits for categorical codes, mean and log-variance for Gaussian ones).

    Args:
        input_size: size of the flattened x.
        output_size: total number of code parameters.
        hidden: width of the hidden layers.
        layers: number of hidden layers.
    """

    def __init__(self, input_size, output_size, hidden=DEFAULT_HIDDEN, layers=DEFAULT_LAYERS, **kwargs):
        super().__init__(**kwargs)
        self.input_size, self.output_size, self.hidden, self.layers_count = input_size, output_size, hidden, layers
        stack = [keras.layers.Dense(hidden, activation="relu") for _ in range(layers)]
        self.net = keras.Sequential(stack + [keras.layers.Dense(output_size, dtype="float32")], name="net")

    def build(self, input_shape=None):
        self.net.build((None, self.input_size))
        super().build(input_shape)

    def call(self, x):
        return self.net(x)

    def get_config(self):
        config = super().get_config()
        config.update(input_size=self.input_size, output_size=self.output_size, hidden=self.hidden,
                      layers=self.layers_count)
        return config
