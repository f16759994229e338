"""MINE lower bound, bias-corrected loss, and training on a bivariate Gaussian."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import special, stats

from mibzoo.estimators.critics import MINEStatistics
from mibzoo.estimators.mine import mine_loss, mine_lower_bound

RHO = 0.8
TRUE_MI = -0.5 * math.log(1 - RHO**2)  # 0.5108 nats
COV = np.array([[1.0, RHO], [RHO, 1.0]])
TRAINED_TOL = 0.1  # trained critic after 400 steps; measured error ~0.03


def _np_bound(tj, tm):
    tj, tm = tj.astype(np.float64).ravel(), tm.astype(np.float64).ravel()
    return tj.mean() - (special.logsumexp(tm) - math.log(tm.size))


def test_lower_bound_matches_numpy_and_is_stable(run_eagerly):
    rng = np.random.default_rng(0)
    tj = rng.normal(size=(64, 1)).astype(np.float32)
    tm = rng.normal(size=(64, 1)).astype(np.float32)
    np.testing.assert_allclose(run_eagerly(mine_lower_bound, tj, tm), _np_bound(tj, tm), atol=1e-5)
    big = tm + 200.0  # e^T overflows float32; logsumexp does not
    got = run_eagerly(mine_lower_bound, tj, big)
    assert np.isfinite(got)
    np.testing.assert_allclose(got, _np_bound(tj, big), rtol=1e-5)


def test_bound_with_optimal_statistics_equals_mi(run_eagerly):
    # T* = log p(x, y) / (p(x) p(y)) makes the Donsker–Varadhan bound tight.
    rng = np.random.default_rng(1)
    xy = rng.multivariate_normal([0, 0], COV, size=100_000)
    xy_marg = np.stack([xy[:, 0], rng.permutation(xy[:, 1])], axis=1)

    def t_star(v):
        return (stats.multivariate_normal([0, 0], COV).logpdf(v)
                - stats.norm.logpdf(v).sum(1)).astype(np.float32)

    got = run_eagerly(mine_lower_bound, t_star(xy), t_star(xy_marg))
    assert abs(got - TRUE_MI) < 0.02, (got, TRUE_MI)
    # Any other statistic gives less (here: a constant gives exactly 0).
    assert abs(run_eagerly(mine_lower_bound, 0 * t_star(xy), 0 * t_star(xy_marg))) < 1e-6


@pytest.mark.parametrize("moving_average", [0.0, 1.7])
def test_mine_loss_value_gradient_and_moving_average(run_eagerly, moving_average):
    rng = np.random.default_rng(2)
    tj = rng.normal(size=(8,)).astype(np.float32)
    tm = rng.normal(size=(10,)).astype(np.float32)
    decay = 0.9

    def loss_and_grads(a, b, ma):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([a, b])
            loss, new_ma = mine_loss(a, b, ma, decay)
        return loss, new_ma, tape.gradient(loss, a), tape.gradient(loss, b)

    loss, new_ma, g_joint, g_marg = run_eagerly(
        loss_and_grads, tj, tm, tf.constant(moving_average))
    batch_mean = np.exp(tm.astype(np.float64)).mean()
    want_ma = batch_mean if moving_average <= 0 else decay * moving_average + (1 - decay) * batch_mean
    np.testing.assert_allclose(new_ma, want_ma, rtol=1e-5)
    np.testing.assert_allclose(loss, -_np_bound(tj, tm), atol=1e-5)  # value: -bound
    np.testing.assert_allclose(g_joint, -np.ones(8) / 8, rtol=1e-5)
    # Bias-corrected gradient: e^T / (n * moving average), not e^T / (n * batch mean).
    np.testing.assert_allclose(g_marg, np.exp(tm) / (10 * want_ma), rtol=1e-4)


def test_mine_loss_rejects_bad_decay():
    with pytest.raises(ValueError, match="decay"):
        mine_loss(tf.zeros(3), tf.zeros(3), 1.0, decay=1.0)


@pytest.fixture(scope="module")
def trained_mine_critic():
    # Training runs under tf.function; the bound is evaluated in both modes.
    steps, batch = 400, 512
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    data = rng.multivariate_normal([0, 0], COV, size=(steps, batch)).astype(np.float32)
    perms = np.stack([rng.permutation(batch) for _ in range(steps)]).astype(np.int32)
    critic = MINEStatistics(hidden=64, layers=2)
    optimizer = keras.optimizers.Adam(1e-3)
    moving_average = tf.Variable(0.0, trainable=False)

    @tf.function
    def train_step(xy, perm):
        x, y = xy[:, :1], xy[:, 1:]
        with tf.GradientTape() as tape:
            loss, new_ma = mine_loss(critic([x, y]), critic([x, tf.gather(y, perm)]),
                                     moving_average, decay=0.99)
        grads = tape.gradient(loss, critic.trainable_variables)
        optimizer.apply_gradients(zip(grads, critic.trainable_variables))
        moving_average.assign(new_ma)
        return loss

    for xy, perm in zip(data, perms):
        train_step(xy, perm)
    assert float(moving_average.numpy()) > 0.0
    return critic


def test_trained_statistics_network_approaches_true_mi(run_eagerly, trained_mine_critic):
    rng = np.random.default_rng(7)
    test = rng.multivariate_normal([0, 0], COV, size=20000).astype(np.float32)
    x, y = test[:, :1], test[:, 1:]
    y_marg = y[rng.permutation(len(y))]
    critic = trained_mine_critic
    got = run_eagerly(lambda a, b, c: mine_lower_bound(critic([a, b]), critic([a, c])), x, y, y_marg)
    assert abs(got - TRUE_MI) < TRAINED_TOL, (got, TRUE_MI)
