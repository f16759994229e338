"""Encoders and decoders per modality kind: a small conv net or an MLP for images, MLPs otherwise.

Sizes come from the modality spec (``network``, ``decoder_network``, ``hidden``, ``layers``,
``decoder_layers``, ``filters``) with the defaults below. An image MLP flattens the pixels and has
``layers`` dense layers of width ``hidden`` (its decoder ``decoder_layers``, by default ``layers``)
(MultiVae's MNIST networks are 512-512 MLPs; on CPU they are also much faster than the
convolutions). A conv image encoder has one stride-2 4×4 convolution per entry of ``filters`` and
one dense layer of width ``hidden``; its decoder mirrors it with transposed convolutions. Output
layers compute in float32 so that distribution parameters stay in float32 under a
``mixed_bfloat16`` policy.

``"decoder_network"`` (images: ``"conv"`` or ``"mlp"``) gives the decoder a network other than the
encoder's ``network``: ``{"network": "conv", "decoder_network": "mlp"}`` is a conv encoder, which
reads the digit better than an MLP, with the MLP decoder, whose cost is a small part of the
transposed convolutions'. Per 28×28 image with ``hidden`` 512, ``filters`` [32, 64] and 20 latents,
in multiply-adds: MLP decoder 0.67 M, conv decoder 11.5 M (40 M as the transposed convolutions are
computed, over every output pixel); MLP encoder 0.68 M, conv encoder 3.3 M. Absent, the decoder has
``network``, so specs without it build what they always built.

``"network": "dcgan"`` (images) selects the DCGAN architecture (Radford et al. 2016) in the form
InfoGAN used on MNIST (Chen et al. 2016, Appendix C.1): a generator of dense layers and stride-2
transposed convolutions with batch normalization and ReLU, and discriminators (`DataCritic`)
of stride-2 convolutions with leaky ReLU (with ``"critic_batch_norm": true``, batch normalization
after the second and later convolutions and the dense layers, as InfoGAN's discriminator; C2's dense
layer has ``"critic_hidden"`` units, `mibzoo.objectives.critics`). Batch normalization makes the
networks depend on ``training``, which the model passes down.
"""
import math

import keras

from mibzoo.likelihoods import param_shape
from mibzoo.modalities import decoder_network, event_shape

DEFAULT_HIDDEN = 256
DEFAULT_LAYERS = 2
DEFAULT_FILTERS = (32, 64)


def _sizes(spec):
    return (spec.get("hidden", DEFAULT_HIDDEN), spec.get("layers", DEFAULT_LAYERS),
            tuple(spec.get("filters", DEFAULT_FILTERS)))


def _convolutional(spec):
    """Whether the modality's encoder is the small conv net (images' default network)."""
    return spec["kind"] == "image" and spec.get("network", "conv") == "conv"


def _convolutional_decoder(spec):
    """Whether the modality's decoder is the transposed-conv net: its ``decoder_network``, else its
    ``network`` (`mibzoo.modalities.decoder_network`)."""
    return spec["kind"] == "image" and decoder_network(spec) == "conv"


def _dcgan(spec):
    return spec["kind"] == "image" and spec.get("network", "conv") == "dcgan"


def _leaky_relu():
    return keras.layers.LeakyReLU(negative_slope=0.2)  # DCGAN's slope


def dcgan_image_features(filters, batch_norm=False):
    """The convolutional trunk of a DCGAN discriminator: per entry of ``filters`` a 4×4 stride-2
    convolution and leaky ReLU (slope 0.2), then a flatten. With ``batch_norm``, batch normalization
    after every convolution but the first (Radford et al. 2016, Sec. 3; InfoGAN's MNIST
    discriminator, Chen et al. 2016, App. C.1). Layers, to be put in a Sequential."""
    stack = []
    for k, f in enumerate(filters):
        stack.append(keras.layers.Conv2D(f, 4, strides=2, padding="same"))
        if batch_norm and k > 0:
            stack.append(keras.layers.BatchNormalization())
        stack.append(_leaky_relu())
    return stack + [keras.layers.Flatten()]


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
        elif _dcgan(spec):
            stack += dcgan_image_features(filters)
            stack += [keras.layers.Dense(hidden), keras.layers.BatchNormalization(), _leaky_relu()]
        else:
            if spec["kind"] == "image":
                stack.append(keras.layers.Flatten())
            stack.extend(keras.layers.Dense(hidden, activation="relu") for _ in range(layers))
        stack.append(keras.layers.Dense(output_size, dtype="float32"))
        self.net = keras.Sequential(stack, name="net")

    def build(self, input_shape=None):
        self.net.build((None,) + event_shape(self.spec))
        super().build(input_shape)

    def call(self, x, training=None):
        return self.net(x, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(spec=self.spec, output_size=self.output_size)
        return config


@keras.saving.register_keras_serializable(package="mibzoo")
class ModalityDecoder(keras.layers.Layer):
    """Maps a latent vector (gated shared latents and the private latent) to likelihood parameters.

    Convolutional images: a dense layer to a coarse feature map, one stride-2 transposed convolution per
    entry of ``filters`` (reversed), a final convolution to the parameter channels, and a crop
    to the image size (so sizes not divisible by 2^len(filters), like 14×14, work). DCGAN images
    (``"network": "dcgan"``; InfoGAN's MNIST generator with ``hidden=1024, filters=[64, 128]``):
    dense(``hidden``) and dense to an ⌈H/2^L⌉×⌈W/2^L⌉×``filters[-1]`` map, each with batch
    normalization and ReLU, then 4×4 stride-2 transposed convolutions through the reversed
    ``filters[:-1]`` (batch normalization, ReLU), the last one to the parameter channels, and a crop.
    MLPs (every
    other kind, and images with ``"network": "mlp"`` or ``"decoder_network": "mlp"``): ``decoder_layers``
    (default ``layers``) dense layers of width ``hidden`` and a dense output reshaped to the parameter
    shape. The decoder's network is ``decoder_network`` where the spec has one, else ``network``.

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
        if _convolutional_decoder(spec):
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
        elif _dcgan(spec):
            h, w, channels = out_shape
            scale = 2 ** len(filters)
            h0, w0 = math.ceil(h / scale), math.ceil(w / scale)
            stack += [keras.layers.Dense(hidden), keras.layers.BatchNormalization(), keras.layers.ReLU(),
                      keras.layers.Dense(h0 * w0 * filters[-1]), keras.layers.BatchNormalization(),
                      keras.layers.ReLU(), keras.layers.Reshape((h0, w0, filters[-1]))]
            for f in reversed(filters[:-1]):
                stack += [keras.layers.Conv2DTranspose(f, 4, strides=2, padding="same"),
                          keras.layers.BatchNormalization(), keras.layers.ReLU()]
            stack.append(keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same", dtype="float32"))
            crop_h, crop_w = h0 * scale - h, w0 * scale - w
            if crop_h or crop_w:
                stack.append(keras.layers.Cropping2D(((0, crop_h), (0, crop_w)), dtype="float32"))
        else:
            decoder_layers = spec.get("decoder_layers", layers)
            stack.extend(keras.layers.Dense(hidden, activation="relu") for _ in range(decoder_layers))
            stack.append(keras.layers.Dense(math.prod(out_shape), dtype="float32"))
            if len(out_shape) > 1:
                stack.append(keras.layers.Reshape(out_shape, dtype="float32"))
        self.net = keras.Sequential(stack, name="net")

    def build(self, input_shape=None):
        self.net.build((None, self.latent_size))
        super().build(input_shape)

    def call(self, latent, training=None):
        return self.net(latent, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(spec=self.spec, latent_size=self.latent_size)
        return config


@keras.saving.register_keras_serializable(package="mibzoo")
class CodePredictor(keras.layers.Layer):
    """InfoGAN's auxiliary network Q(c | x): an MLP from the flattened joint x (or from a
    discriminator's features, when Q shares its trunk) to the parameters of each code block (class
    logits for categorical codes, mean and log-variance for Gaussian ones).

    Args:
        input_size: size of the input (the flattened x, or the features).
        output_size: total number of code parameters.
        hidden: width of the hidden layers.
        layers: number of hidden layers.
        activation: Keras activation of the hidden layers.
        batch_norm: batch normalization between each hidden layer's dense map and its activation
            (InfoGAN's Q on MNIST: FC 128, batch normalization, leaky ReLU; Chen et al. 2016, App. C.1).
    """

    def __init__(self, input_size, output_size, hidden=DEFAULT_HIDDEN, layers=DEFAULT_LAYERS, activation="relu",
                 batch_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.input_size, self.output_size, self.hidden, self.layers_count = input_size, output_size, hidden, layers
        self.activation, self.batch_norm = activation, batch_norm
        stack = []
        for _ in range(layers):
            if batch_norm:
                stack += [keras.layers.Dense(hidden), keras.layers.BatchNormalization(),
                          keras.layers.Activation(activation)]
            else:
                stack.append(keras.layers.Dense(hidden, activation=activation))
        self.net = keras.Sequential(stack + [keras.layers.Dense(output_size, dtype="float32")], name="net")

    def build(self, input_shape=None):
        self.net.build((None, self.input_size))
        super().build(input_shape)

    def call(self, x, training=None):
        return self.net(x, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(input_size=self.input_size, output_size=self.output_size, hidden=self.hidden,
                      layers=self.layers_count, activation=self.activation, batch_norm=self.batch_norm)
        return config


@keras.saving.register_keras_serializable(package="mibzoo")
class DataCritic(keras.layers.Layer):
    """A network on the joint x of every modality, flattened and concatenated in modality order
    (`mibzoo.forward.ForwardPass.data_vector`), to ``output_size`` numbers: the DCGAN discriminator
    of C2 (``output_size=1``, squeezed to ``[B]``) and InfoGAN's Q(c | x).

    Each DCGAN image modality (``"network": "dcgan"``) is cut out of the vector, reshaped to its
    image and read by `dcgan_image_features` with its ``filters``; other modalities enter as they
    are. The features are concatenated and pass ``layers`` dense layers of width ``hidden`` with
    leaky ReLU, then a float32 dense output (Radford et al. 2016; Chen et al. 2016, Appendix C.1).
    A modality with ``"critic_batch_norm": true`` adds batch normalization to its reader, and then
    after each dense layer too, as InfoGAN's discriminator has it.

    Args:
        specs: ``{modality: spec}`` with the networks' options (per-kind defaults merged in).
        output_size: number of outputs; 1 gives a ``[B]`` logit.
        hidden: width of the dense layers.
        layers: number of dense layers after the features.
    """

    def __init__(self, specs, output_size, hidden=DEFAULT_HIDDEN, layers=1, **kwargs):
        super().__init__(**kwargs)
        self.specs, self.output_size, self.hidden, self.layers_count = specs, output_size, hidden, layers
        self.sizes = [math.prod(event_shape(spec)) for spec in specs.values()]
        self.readers = [keras.Sequential([keras.layers.Reshape(event_shape(spec))]
                                         + dcgan_image_features(_sizes(spec)[2], spec.get("critic_batch_norm", False)),
                                         name=f"features_{name}")
                        if _dcgan(spec) else None for name, spec in specs.items()]
        batch_norm = any(_dcgan(spec) and spec.get("critic_batch_norm", False) for spec in specs.values())
        self.batch_norm = batch_norm
        head = []
        for _ in range(layers):
            head += [keras.layers.Dense(hidden)] + ([keras.layers.BatchNormalization()] if batch_norm else []) \
                + [_leaky_relu()]
        self.head = keras.Sequential(head + [keras.layers.Dense(output_size, dtype="float32")], name="head")

    def build(self, input_shape=None):
        width = 0
        for size, reader in zip(self.sizes, self.readers):
            if reader is None:
                width += size
            else:
                reader.build((None, size))
                width += reader.compute_output_shape((None, size))[-1]
        self.head.build((None, width))
        super().build(input_shape)

    @property
    def features_size(self):
        """Width of `features`: the last dense layer's, or the readers' output without dense layers."""
        if self.layers_count:
            return self.hidden
        return sum(size if reader is None else reader.compute_output_shape((None, size))[-1]
                   for size, reader in zip(self.sizes, self.readers))

    def features(self, x, training=None):
        """``[B, features_size]``: the last hidden layer (the input of the output layer), the
        features InfoGAN's Q shares with the discriminator (Chen et al. 2016, Sec. 6)."""
        parts, start = [], 0
        for size, reader in zip(self.sizes, self.readers):
            part = x[:, start:start + size]
            parts.append(part if reader is None else reader(part, training=training))
            start += size
        h = parts[0] if len(parts) == 1 else keras.ops.concatenate(parts, axis=-1)
        for layer in self.head.layers[:-1]:
            h = layer(h, training=training)
        return h

    def call(self, x, training=None):
        out = self.head.layers[-1](self.features(x, training=training))
        return keras.ops.squeeze(out, axis=-1) if self.output_size == 1 else out

    def get_config(self):
        config = super().get_config()
        config.update(specs=self.specs, output_size=self.output_size, hidden=self.hidden, layers=self.layers_count)
        return config


def uses_dcgan(specs):
    """Whether any modality of ``{name: spec}`` selects the DCGAN networks."""
    return any(_dcgan(spec) for spec in specs.values())
