"""`RestartingAdam` against a NumPy Adam: without restarts it is Keras' Adam; at a restart its
moments and bias correction start afresh, so from there it moves like a new Adam fed the same
gradients, while ``iterations`` keeps counting. Eagerly and under ``tf.function``."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from mibzoo.optimizers import RestartingAdam


def _np_adam(theta, grads, lr=1e-2, beta_1=0.9, beta_2=0.999, epsilon=1e-7, restarts=()):
    """Adam (Kingma & Ba 2015, Algorithm 1) in float64, its moments and step count zeroed at the
    steps in ``restarts`` (0-based indices into ``grads``)."""
    theta = np.array(theta, np.float64)
    m = v = np.zeros_like(theta)
    t = 0
    for step, g in enumerate(grads):
        if step in restarts:
            m, v, t = np.zeros_like(theta), np.zeros_like(theta), 0
        t += 1
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g ** 2
        theta = theta - lr * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t) * m / (np.sqrt(v) + epsilon)
    return theta


def _run(optimizer, theta, grads, eager):
    variable = keras.Variable(np.asarray(theta, np.float32))
    optimizer.build([variable])

    def apply(g):
        optimizer.apply_gradients([(g, variable)])

    apply = apply if eager else tf.function(apply)
    for g in grads:
        apply(tf.constant(g, tf.float32))
    return np.asarray(variable), int(optimizer.iterations)


@pytest.mark.parametrize("eager", [True, False], ids=["eager", "tf_function"])
def test_restarts_follow_a_numpy_adam_whose_moments_start_afresh(eager):
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=3) * (1.0 if step < 4 else 1000.0) for step in range(9)]
    theta = rng.normal(size=3)
    got, iterations = _run(RestartingAdam(learning_rate=1e-2, restarts=[4, 7]), theta, grads, eager)
    np.testing.assert_allclose(got, _np_adam(theta, grads, restarts={4, 7}), rtol=1e-5, atol=1e-6)
    assert iterations == 9


def test_after_a_jump_a_restarted_adam_steps_by_the_learning_rate_and_plain_adam_by_more():
    """200 steps of gradients ~ 10⁻³, then 20 of a constant gradient 1 (a penalty's onset at step
    200): restarted there, every step after it is the learning rate (a new Adam on a constant
    gradient); plain Adam's second moment still remembers the small gradients and its steps are
    about 2.8 times the learning rate on average (at most (1 − β1^k) / √(1 − β2^k) · √(1 − β2^t)
    / (1 − β1^t) times)."""
    rng = np.random.default_rng(2)
    grads = [rng.normal(size=2) * 1e-3 for _ in range(200)] + [np.ones(2)] * 20
    theta = np.zeros(2)
    lr = 1e-3
    steps = {}
    for name, restarts in (("restarted", {200}), ("plain", ())):
        path = [_np_adam(theta, grads[:n], lr=lr, restarts=restarts) for n in range(200, 221)]
        steps[name] = np.abs(np.diff(np.array(path), axis=0)).max(axis=1)
    np.testing.assert_allclose(steps["restarted"], lr, rtol=1e-3)
    assert steps["plain"].mean() > 2.0 * lr
    got, _ = _run(RestartingAdam(learning_rate=lr, restarts=[200]), theta, grads, True)
    np.testing.assert_allclose(got, _np_adam(theta, grads, lr=lr, restarts={200}), rtol=1e-4, atol=1e-7)


def test_without_restarts_it_is_keras_adam():
    rng = np.random.default_rng(1)
    grads = [rng.normal(size=4) for _ in range(5)]
    theta = rng.normal(size=4)
    got, _ = _run(RestartingAdam(learning_rate=3e-3, beta_1=0.5), theta, grads, True)
    want, _ = _run(keras.optimizers.Adam(learning_rate=3e-3, beta_1=0.5), theta, grads, True)
    np.testing.assert_array_equal(got, want)


def test_config_round_trip_and_bad_restarts():
    optimizer = RestartingAdam(learning_rate=5e-4, restarts=[201, 50])
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, RestartingAdam) and restored.restarts == [50, 201]
    assert restored.get_config()["learning_rate"] == pytest.approx(5e-4)
    for bad in ([0], [2.5], [True]):
        with pytest.raises(ValueError, match="restarts=.*integer steps >= 1"):
            RestartingAdam(restarts=bad)
    with pytest.raises(ValueError, match="amsgrad"):
        RestartingAdam(restarts=[3], amsgrad=True)
