"""DCGAN networks ("network": "dcgan"), the joint-data critic and per-entry optimizer settings."""
import keras
import numpy as np
import pytest

import mibzoo
from mibzoo.errors import ConfigError
from mibzoo.networks import CodePredictor, DataCritic, ModalityDecoder, ModalityEncoder

DCGAN_IMAGE = {"kind": "image", "shape": [28, 28, 1], "likelihood": "bernoulli", "network": "dcgan",
               "hidden": 32, "filters": [8, 16]}


@pytest.mark.parametrize("shape", [[28, 28, 1], [14, 14, 3], [8, 8, 1]])
def test_dcgan_decoder_and_encoder_shapes(shape):
    spec = {**DCGAN_IMAGE, "shape": shape}
    decoder = ModalityDecoder(spec, 5)
    decoder.build()
    assert tuple(decoder(np.zeros((3, 5), "float32")).shape) == (3, *shape)
    encoder = ModalityEncoder(spec, 7)
    encoder.build()
    assert tuple(encoder(np.zeros((3, *shape), "float32")).shape) == (3, 7)
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in decoder.net.layers)
    assert sum(isinstance(layer, keras.layers.Conv2DTranspose) for layer in decoder.net.layers) == 2


def test_dcgan_decoder_batch_norm_follows_the_training_flag():
    keras.utils.set_random_seed(0)
    decoder = ModalityDecoder(DCGAN_IMAGE, 4)
    decoder.build()
    z = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    # Training: batch statistics, so an example's output depends on the rest of the batch.
    full = keras.ops.convert_to_numpy(decoder(z, training=True))
    half = keras.ops.convert_to_numpy(decoder(z[:8], training=True))
    assert np.abs(full[:8] - half).max() > 1e-4
    # Inference: moving statistics, each example on its own.
    full = keras.ops.convert_to_numpy(decoder(z, training=False))
    np.testing.assert_allclose(full[:8], keras.ops.convert_to_numpy(decoder(z[:8], training=False)), atol=1e-5)
    # The first normalization of a training pass: zero mean, unit variance over the batch (Ioffe & Szegedy 2015).
    dense, norm = decoder.net.layers[0], decoder.net.layers[1]
    normalized = keras.ops.convert_to_numpy(norm(dense(z), training=True))
    gamma, beta = (keras.ops.convert_to_numpy(w) for w in (norm.gamma, norm.beta))
    standardized = (normalized - beta) / gamma
    np.testing.assert_allclose(standardized.mean(0), 0.0, atol=1e-4)
    h = keras.ops.convert_to_numpy(dense(z))
    np.testing.assert_allclose(standardized.std(0), np.sqrt(h.var(0) / (h.var(0) + norm.epsilon)), atol=1e-3)


def test_training_updates_the_generator_batch_norm_statistics():
    keras.utils.set_random_seed(0)
    model = mibzoo.load("gan", modalities={"image": {**DCGAN_IMAGE, "shape": [8, 8, 1]}})
    model.compile()
    norm = next(layer for layer in model.decoders["image"].net.layers
                if isinstance(layer, keras.layers.BatchNormalization))
    before = keras.ops.convert_to_numpy(norm.moving_mean).copy()
    images = np.random.default_rng(0).uniform(size=(64, 8, 8, 1)).astype("float32")
    model.fit({"image": images}, batch_size=32, epochs=1, verbose=0)
    assert np.abs(keras.ops.convert_to_numpy(norm.moving_mean) - before).max() > 0


def test_data_critic_reads_each_modality_with_its_own_network():
    keras.utils.set_random_seed(0)
    image = {**DCGAN_IMAGE, "shape": [8, 8, 1]}
    specs = {"image": image, "v": {"kind": "vector", "size": 3, "likelihood": "normal"}}
    critic = DataCritic(specs, 1, hidden=16)
    critic.build((None, 67))
    rng = np.random.default_rng(1)
    images, vectors = rng.uniform(size=(5, 8, 8, 1)).astype("float32"), rng.normal(size=(5, 3)).astype("float32")
    flat = np.concatenate([images.reshape(5, -1), vectors], axis=1)
    logits = keras.ops.convert_to_numpy(critic(flat))
    assert logits.shape == (5,)
    # The same computation by hand: convolutional features of the image, the vector as it is, the head.
    features = critic.readers[0](images.reshape(5, -1))
    expected = critic.head(keras.ops.concatenate([features, vectors], axis=-1))
    np.testing.assert_allclose(logits, keras.ops.convert_to_numpy(expected)[:, 0], rtol=1e-5, atol=1e-5)
    conv = critic.readers[0].layers[1]
    assert isinstance(conv, keras.layers.Conv2D) and conv.strides == (2, 2) and conv.filters == 8
    clone = DataCritic.from_config(critic.get_config())
    clone.build((None, 67))
    assert clone.count_params() == critic.count_params()


def test_gan_zoo_defaults_use_dcgan_networks_and_gan_optimizers():
    model = mibzoo.load("gan")
    assert model.network_specs["image"]["network"] == "dcgan"
    assert isinstance(model.critics["C2"], DataCritic)
    # InfoGAN's discriminator normalization (docs/results.md: 3-epoch and 10-epoch MNIST runs with and without)
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.critics["C2"].head.layers)
    model.compile()
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)  # the generator: InfoGAN's rate
    assert float(model.optimizer.beta_1) == 0.5
    critic = model.critic_optimizers["critic:C2"]
    assert float(critic.learning_rate) == pytest.approx(2e-4) and float(critic.beta_1) == 0.5
    infogan = mibzoo.load("infogan")  # Q: a head on the discriminator's last hidden layer, as in InfoGAN
    assert infogan.shared_critics == {"infogan": "C2"} and isinstance(infogan.critics["C2"], DataCritic)
    assert isinstance(infogan.auxiliaries["infogan"], CodePredictor)
    # InfoGAN's own widths (Chen et al. 2016, App. C.1; docs/results.md finding 11): D's dense layer of 1,024
    assert infogan.auxiliaries["infogan"].input_size == infogan.critics["C2"].features_size == 1024
    # InfoGAN's discriminator normalization (docs/results.md: code -> class 0.69 with it, 0.52 without, 10 epochs)
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in infogan.critics["C2"].head.layers)
    assert any(isinstance(layer, keras.layers.BatchNormalization)
               for layer in infogan.critics["C2"].readers[0].layers)
    # InfoGAN's update count at alternating phases (docs/results.md finding 7); gan sets none
    assert infogan.model_config["batch_size"] == 64 and "batch_size" not in model.model_config
    separate = mibzoo.load("infogan", term_options={})  # the term on its own: Q with its own DCGAN trunk
    assert isinstance(separate.auxiliaries["infogan"], DataCritic) and separate.shared_critics == {}


def test_default_optimizers_of_other_entries_are_unchanged():
    model = mibzoo.load("vae")
    model.compile()
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert float(model.optimizer.beta_1) == 0.9


def test_optimizer_settings_are_validated():
    with pytest.raises(ConfigError, match="Did you mean 'critic'"):
        mibzoo.load("gan", optimizers={"critc": {"learning_rate": 1e-4}})
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        mibzoo.load("gan", optimizers={"dist": {"beta_1": 1.5}})
    with pytest.raises(ConfigError, match="> 0"):
        mibzoo.load("gan", optimizers={"dist": {"learning_rate": 0}})
    with pytest.raises(ConfigError, match="Did you mean 'beta_1'"):
        mibzoo.load("gan", optimizers={"dist": {"beta1": 0.5}})
    with pytest.raises(ConfigError, match="network"):
        mibzoo.load("vae", networks={"vector": {"network": "dcgan"}})


def test_infogan_fixed_q_std_replaces_the_predicted_log_variance():
    from mibzoo.estimators import infogan
    from mibzoo.objectives.critics import infogan_information, shared_critic_features

    keras.utils.set_random_seed(0)
    image = {**DCGAN_IMAGE, "shape": [8, 8, 1]}
    x, present = {"image": np.zeros((4, 8, 8, 1), "float32")}, keras.ops.ones((4, 1))
    for std in (None, 0.5):
        hyper = {"lambda_info": 1.0, **({"q_fixed_std": std} if std else {})}
        model = mibzoo.load("infogan", modalities={"image": image}, hyperparameters=hyper)
        fp = model.forward(x, present, training=False, seed=0)
        got = float(infogan_information(fp))
        # By hand, from the pass's cached code and Q's outputs: blocks noise (62), digit_code (10), style_code
        # (2, Uniform(−1, 1)).
        z, _ = fp.prior_latents()
        params = model.auxiliaries["infogan"](shared_critic_features(fp, "infogan", fp.generated()))
        mean = params[:, 10:12]
        logvar = keras.ops.full_like(mean, 2 * np.log(std)) if std else params[:, 12:14]
        expected = -(float(infogan.categorical_code_mi_lower_bound(z[:, 62:72], params[:, :10]))
                     + float(infogan.uniform_code_mi_lower_bound(z[:, 72:74], mean, logvar)))
        assert got == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ConfigError, match="q_fixed_std"):  # refused when the config is parsed
        mibzoo.load("infogan", modalities={"image": image}, q_fixed_std=0.0)


def test_critic_batch_norm_follows_the_training_flag_and_normalizes_the_second_convolution():
    keras.utils.set_random_seed(0)
    image = {**DCGAN_IMAGE, "shape": [8, 8, 1], "critic_batch_norm": True}
    critic = DataCritic({"image": image}, 1, hidden=16)
    critic.build((None, 64))
    layers = critic.readers[0].layers  # reshape, conv, leaky ReLU, conv, batch norm, leaky ReLU, flatten
    kinds = [type(layer).__name__ for layer in layers]
    assert kinds == ["Reshape", "Conv2D", "LeakyReLU", "Conv2D", "BatchNormalization", "LeakyReLU", "Flatten"]
    assert [type(layer).__name__ for layer in critic.head.layers] == ["Dense", "BatchNormalization", "LeakyReLU",
                                                                    "Dense"]
    x = np.random.default_rng(2).uniform(size=(16, 64)).astype("float32")
    full = keras.ops.convert_to_numpy(critic(x, training=True))
    assert np.abs(full[:8] - keras.ops.convert_to_numpy(critic(x[:8], training=True))).max() > 1e-4
    np.testing.assert_allclose(keras.ops.convert_to_numpy(critic(x, training=False))[:8],
                               keras.ops.convert_to_numpy(critic(x[:8], training=False)), atol=1e-5)
    # The head's normalization in a training pass: (h − batch mean) / sqrt(batch variance + ε), then γ, β.
    h = keras.ops.convert_to_numpy(critic.head.layers[0](critic.readers[0](x, training=True)))
    norm = critic.head.layers[1]
    expected = (h - h.mean(0)) / np.sqrt(h.var(0) + norm.epsilon) * keras.ops.convert_to_numpy(norm.gamma) \
        + keras.ops.convert_to_numpy(norm.beta)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(norm(h, training=True)), expected, atol=1e-4)
    with pytest.raises(ConfigError, match="critic_batch_norm"):
        mibzoo.load("gan", networks={"image": {"network": "dcgan", "critic_batch_norm": "yes"}})


def test_critic_hidden_sets_the_width_of_the_discriminators_dense_layer():
    """``"critic_hidden"``: the width of C2's dense layer (InfoGAN's 1024), default 256; Q on its
    trunk reads that width."""
    image = {"network": "dcgan", "hidden": 16, "filters": [4, 8]}
    default = mibzoo.load("gan", modalities={"image": {**DCGAN_IMAGE, "shape": [8, 8, 1]}}, networks={"image": image})
    assert default.critics["C2"].hidden == 256
    wide = mibzoo.load("infogan", modalities={"image": {**DCGAN_IMAGE, "shape": [8, 8, 1]}},
                       networks={"image": {**image, "critic_hidden": 24}})
    dense = [layer for layer in wide.critics["C2"].head.layers if type(layer).__name__ == "Dense"]
    assert [layer.units for layer in dense] == [24, 1]
    assert wide.auxiliaries["infogan"].input_size == 24
    for value in (0, "1024", True):
        with pytest.raises(ConfigError, match="critic_hidden"):
            mibzoo.load("gan", networks={"image": {"network": "dcgan", "critic_hidden": value}})
