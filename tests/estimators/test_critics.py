"""Critic networks: shapes, tf.function, config and .keras round trips."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mibzoo.estimators.critics import Discriminator, MINEStatistics


def test_discriminator_flattens_images_to_one_logit(run_eagerly):
    keras.utils.set_random_seed(0)
    critic = Discriminator(hidden=16, layers=2)
    x = np.random.default_rng(0).normal(size=(5, 8, 8, 1)).astype(np.float32)
    out = run_eagerly(critic, x)
    assert out.shape == (5,) and out.dtype == np.float32
    # Same weights on the flattened input give the same logits.
    np.testing.assert_allclose(run_eagerly(critic.head, x.reshape(5, 64)), out, rtol=1e-6)
    assert len(critic.trainable_variables) == 6  # 2 hidden + output, kernel and bias
    out16 = run_eagerly(critic, tf.cast(x, tf.bfloat16))
    assert out16.dtype == np.float32


def test_discriminator_without_hidden_layers_is_logistic():
    critic = Discriminator(hidden=4, layers=0)
    x = np.random.default_rng(1).normal(size=(3, 2)).astype(np.float32)
    out = np.asarray(critic(x))
    kernel, bias = (v.numpy() for v in critic.trainable_variables)
    np.testing.assert_allclose(out, (x @ kernel + bias)[:, 0], rtol=1e-5)


def test_mine_statistics_concatenates_inputs(run_eagerly):
    keras.utils.set_random_seed(1)
    critic = MINEStatistics(hidden=8, layers=1)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 3)).astype(np.float32)
    y = rng.normal(size=(4, 2, 2)).astype(np.float32)
    out = run_eagerly(lambda a, b: critic([a, b]), x, y)
    assert out.shape == (4,)
    joint = np.concatenate([x, y.reshape(4, 4)], axis=1)
    np.testing.assert_allclose(run_eagerly(critic.head, joint), out, rtol=1e-6)
    with pytest.raises(ValueError, match="pair"):
        critic(x)


@pytest.mark.parametrize("cls,kwargs", [
    (Discriminator, dict(hidden=12, layers=3, activation="tanh")),
    (MINEStatistics, dict(hidden=7, layers=1, activation="relu")),
])
def test_config_round_trip(cls, kwargs):
    layer = cls(**kwargs, name="critic")
    config = layer.get_config()
    for key, value in kwargs.items():
        assert config[key] == value
    clone = cls.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is cls and restored.get_config() == config
    assert keras.saving.get_registered_name(cls) == f"mibzoo>{cls.__name__}"


def test_keras_file_round_trip(tmp_path):
    keras.utils.set_random_seed(2)
    rng = np.random.default_rng(3)
    img = keras.Input((4, 4, 1))
    d_model = keras.Model(img, Discriminator(hidden=8, layers=2)(img))
    x_in, y_in = keras.Input((3,)), keras.Input((2,))
    t_model = keras.Model([x_in, y_in], MINEStatistics(hidden=8, layers=2)([x_in, y_in]))
    x_img = rng.normal(size=(6, 4, 4, 1)).astype(np.float32)
    x, y = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(6, 2)).astype(np.float32)
    for model, inputs in [(d_model, x_img), (t_model, [x, y])]:
        path = str(tmp_path / f"{model.name}.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        np.testing.assert_allclose(loaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0),
                                   rtol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(hidden=0), dict(layers=-1), dict(hidden=2.5)])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        Discriminator(**kwargs)
    with pytest.raises(ValueError):
        MINEStatistics(**kwargs)
