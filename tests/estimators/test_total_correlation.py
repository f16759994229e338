"""Total correlation of the aggregate posterior: minibatch and discriminator estimators."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import special, stats

from mibzoo.estimators.adversarial import discriminator_loss
from mibzoo.estimators.critics import Discriminator
from mibzoo.estimators.total_correlation import (
    aggregate_posterior_log_densities,
    density_ratio_discriminator_loss,
    group_total_correlation_mws,
    log_density_gaussian,
    permute_dims,
    tc_discriminator_estimate,
    total_correlation_mss,
    total_correlation_mws,
)

# Minibatch estimators vs closed form; measured errors are <= 0.03 (see
# test_correlated_gaussian_matches_closed_form), the residual bias of a kernel
# estimate of q(z) from 2000 posteriors.
TC_TOL = 0.05
TC_ZERO_TOL = 0.03
DISCRIMINATOR_TOL = 0.1  # trained critic, 600 steps; measured error ~0.01

SIGMA_2D = np.array([[1.0, 0.8], [0.8, 1.0]])
SIGMA_3D = np.array([[1.0, 0.6, 0.3], [0.6, 1.0, 0.5], [0.3, 0.5, 1.0]])


def _gaussian_tc(cov):
    """TC of N(0, cov) = -½ log det R, R the correlation matrix."""
    d = np.sqrt(np.diag(cov))
    return -0.5 * np.linalg.slogdet(cov / np.outer(d, d))[1]


def _posterior_batch(cov, s, batch, seed):
    """x ~ N(0, cov), q(z|x) = N(x, s² I): q(z) = N(0, cov + s² I) exactly."""
    rng = np.random.default_rng(seed)
    dim = len(cov)
    mu = rng.multivariate_normal(np.zeros(dim), cov, size=batch)
    z = mu + s * rng.standard_normal((batch, dim))
    logvar = np.full((batch, dim), 2 * math.log(s))
    return [a.astype(np.float32) for a in (z, mu, logvar)]


def _np_tc(z, mu, logvar, log_w):
    """Reference: explicit [B, B, D] log densities, log weight matrix log_w [B, B]."""
    z, mu, logvar = (a.astype(np.float64) for a in (z, mu, logvar))
    b, dim = z.shape
    lq = np.empty((b, b, dim))
    for i in range(b):
        for j in range(b):
            lq[i, j] = stats.norm.logpdf(z[i], mu[j], np.exp(0.5 * logvar[j]))
    log_qz = special.logsumexp(lq.sum(2) + log_w, axis=1)
    log_marg = special.logsumexp(lq + log_w[:, :, None], axis=1)
    return np.mean(log_qz - log_marg.sum(1)), log_qz, log_marg


def _np_mss_log_weights(b, n):
    m = b - 1
    w = np.full((b, b), 1.0 / m)
    for i in range(b):
        w[i, i] = 1.0 / n
        w[i, (i + 1) % b] = (n - m) / (n * m)
    assert np.allclose(w.sum(1), 1.0)
    with np.errstate(divide="ignore"):  # N = B - 1 gives a zero weight
        return np.log(w)


def _small_case():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 3)).astype(np.float32)
    mu = (z + 0.5 * rng.normal(size=(6, 3))).astype(np.float32)
    logvar = rng.uniform(-1.0, 0.5, size=(6, 3)).astype(np.float32)
    return z, mu, logvar


def test_log_density_gaussian_matches_scipy(run_eagerly):
    rng = np.random.default_rng(1)
    z, mu = rng.normal(size=(2, 4, 3)).astype(np.float32)
    logvar = rng.uniform(-3, 2, size=(4, 3)).astype(np.float32)
    got = run_eagerly(log_density_gaussian, z, mu, logvar)
    np.testing.assert_allclose(got, stats.norm.logpdf(z, mu, np.exp(0.5 * logvar)), rtol=1e-5)


def test_mws_matches_numpy_reference(run_eagerly):
    z, mu, logvar = _small_case()
    want, want_qz, want_marg = _np_tc(z, mu, logvar, np.full((6, 6), -math.log(6)))
    np.testing.assert_allclose(run_eagerly(total_correlation_mws, z, mu, logvar), want, atol=1e-5)
    log_qz, log_marg = run_eagerly(aggregate_posterior_log_densities, z, mu, logvar)
    np.testing.assert_allclose(log_qz, want_qz, atol=1e-5)
    np.testing.assert_allclose(log_marg, want_marg, atol=1e-5)


def test_mws_with_dataset_size_is_chen_et_al_normalization(run_eagerly):
    # Chen et al.'s log(1/(N M)) weight: exact reference and the (D - 1) log N shift.
    z, mu, logvar = _small_case()
    n = 60000
    want, _, _ = _np_tc(z, mu, logvar, np.full((6, 6), -math.log(6 * n)))
    got = run_eagerly(total_correlation_mws, z, mu, logvar, dataset_size=n)
    np.testing.assert_allclose(got, want, atol=1e-4)
    plain = run_eagerly(total_correlation_mws, z, mu, logvar)
    np.testing.assert_allclose(got - plain, 2 * math.log(n), rtol=1e-5)


@pytest.mark.parametrize("n", [5, 6, 100, 10**7])
def test_mss_matches_numpy_reference(run_eagerly, n):
    z, mu, logvar = _small_case()
    want, _, _ = _np_tc(z, mu, logvar, _np_mss_log_weights(6, n))
    got = run_eagerly(total_correlation_mss, z, mu, logvar, dataset_size=n)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_mss_requires_dataset_size():
    z, mu, logvar = _small_case()
    with pytest.raises(ValueError, match="dataset_size"):
        aggregate_posterior_log_densities(z, mu, logvar, None, "mss")


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_independent_gaussian_near_zero(run_eagerly, estimator):
    z, mu, logvar = _posterior_batch(np.diag([1.0, 0.5, 2.0]), s=0.5, batch=2000, seed=10)
    if estimator == "mws":
        got = run_eagerly(total_correlation_mws, z, mu, logvar)
    else:
        got = run_eagerly(total_correlation_mss, z, mu, logvar, dataset_size=10**7)
    assert abs(got) < TC_ZERO_TOL, got


@pytest.mark.parametrize("estimator", ["mws", "mss"])
@pytest.mark.parametrize("cov,s", [(SIGMA_2D, 0.3), (SIGMA_3D, 0.5)], ids=["2d_rho0.8", "3d"])
def test_correlated_gaussian_matches_closed_form(run_eagerly, estimator, cov, s):
    z, mu, logvar = _posterior_batch(cov, s=s, batch=2000, seed=11)
    want = _gaussian_tc(cov + s * s * np.eye(len(cov)))  # 0.387 (2-D), 0.220 (3-D)
    if estimator == "mws":
        got = run_eagerly(total_correlation_mws, z, mu, logvar)
    else:
        got = run_eagerly(total_correlation_mss, z, mu, logvar, dataset_size=10**7)
    assert abs(got - want) < TC_TOL, (got, want)


def test_dynamic_batch_under_tf_function():
    spec = tf.TensorSpec([None, 3])
    fn = tf.function(lambda z, m, v: total_correlation_mss(z, m, v, 100),
                     input_signature=[spec, spec, spec])
    z, mu, logvar = _small_case()
    want, _, _ = _np_tc(z, mu, logvar, _np_mss_log_weights(6, 100))
    np.testing.assert_allclose(fn(z, mu, logvar).numpy(), want, atol=1e-5)


def test_bfloat16_inputs_are_cast(run_eagerly):
    z, mu, logvar = _small_case()
    got = run_eagerly(total_correlation_mws, *(tf.cast(a, tf.bfloat16) for a in (z, mu, logvar)))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, run_eagerly(total_correlation_mws, z, mu, logvar), atol=0.05)


# --- permute_dims (Kim & Mnih 2018) -------------------------------------------------

def _assert_columnwise_permutation(z, zp):
    assert zp.shape == z.shape
    for d in range(z.shape[1]):
        np.testing.assert_array_equal(np.sort(zp[:, d]), np.sort(z[:, d]))


def test_permute_dims_permutes_each_column_independently(run_eagerly):
    z = np.random.default_rng(2).multivariate_normal([0, 0], SIGMA_2D, size=5000).astype(np.float32)
    zp = run_eagerly(permute_dims, z, seed=7)
    _assert_columnwise_permutation(z, zp)
    # Each column is shuffled, and differently: the 0.8 correlation is destroyed.
    assert np.mean(zp[:, 0] == z[:, 0]) < 0.01
    assert abs(np.corrcoef(zp.T)[0, 1]) < 0.05
    np.testing.assert_array_equal(run_eagerly(permute_dims, z, seed=7), zp)  # int seed: fixed


def test_permute_dims_seed_generator_draws_fresh_permutations():
    z = np.arange(40, dtype=np.float32).reshape(20, 2)
    gen = keras.random.SeedGenerator(3)
    fn = tf.function(lambda t: permute_dims(t, gen))
    first, second = fn(z).numpy(), fn(z).numpy()
    _assert_columnwise_permutation(z, first)
    _assert_columnwise_permutation(z, second)
    assert not np.array_equal(first, second)


def test_permute_dims_stateless_tensor_seed(run_eagerly):
    z = np.arange(40, dtype=np.float32).reshape(20, 2)
    seed = tf.constant([1, 2], tf.int32)
    a = run_eagerly(permute_dims, z, seed)
    _assert_columnwise_permutation(z, a)
    np.testing.assert_array_equal(a, run_eagerly(permute_dims, z, seed))
    assert not np.array_equal(a, run_eagerly(permute_dims, z, tf.constant([1, 3], tf.int32)))


# --- density-ratio discriminator (Kim & Mnih 2018) -------------------------------------

def test_discriminator_tc_estimate_with_bayes_optimal_logits(run_eagerly):
    # The optimal logit is log q(z) - Σ_d log q(z_d); its mean over q(z) is TC.
    rng = np.random.default_rng(4)
    z = rng.multivariate_normal([0, 0, 0], SIGMA_3D, size=100_000)
    logit = (stats.multivariate_normal(np.zeros(3), SIGMA_3D).logpdf(z)
             - stats.norm.logpdf(z).sum(1)).astype(np.float32)
    got = run_eagerly(tc_discriminator_estimate, logit[:, None])
    assert abs(got - _gaussian_tc(SIGMA_3D)) < 0.01, (got, _gaussian_tc(SIGMA_3D))


def test_density_ratio_loss_is_bce(run_eagerly):
    rng = np.random.default_rng(5)
    lj, lp = rng.normal(size=(2, 32)).astype(np.float32) * 3
    got = run_eagerly(density_ratio_discriminator_loss, lj, lp)
    want = np.logaddexp(0, -lj.astype(np.float64)).mean() + np.logaddexp(0, lp.astype(np.float64)).mean()
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(got, run_eagerly(discriminator_loss, lj, lp), rtol=1e-6)


def _factor_vae_critic_setup(steps, seed=0):
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    data = rng.multivariate_normal([0, 0], SIGMA_2D, size=(steps, 512)).astype(np.float32)
    critic = Discriminator(hidden=64, layers=2, activation="elu")
    critic.build((None, 2))
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(critic.trainable_variables)
    gen = keras.random.SeedGenerator(seed + 1)

    def train_step(z):
        zp = permute_dims(z, gen)
        with tf.GradientTape() as tape:
            loss = density_ratio_discriminator_loss(critic(z), critic(zp))
        grads = tape.gradient(loss, critic.trainable_variables)
        optimizer.apply_gradients(zip(grads, critic.trainable_variables))
        return loss

    return critic, data, train_step


@pytest.fixture(scope="module")
def trained_tc_critic():
    # Training runs under tf.function (600 eager steps take ~10 s);
    # test_train_step_eager_matches_tf_function checks that the eager training
    # step computes the same thing.
    critic, data, train_step = _factor_vae_critic_setup(steps=600)
    step = tf.function(train_step)
    for batch in data:
        step(batch)
    return critic


def test_trained_discriminator_estimates_tc(run_eagerly, trained_tc_critic):
    z = np.random.default_rng(99).multivariate_normal([0, 0], SIGMA_2D, size=20000).astype(np.float32)
    got = run_eagerly(lambda t: tc_discriminator_estimate(trained_tc_critic(t)), z)
    want = _gaussian_tc(SIGMA_2D)  # 0.511
    assert abs(got - want) < DISCRIMINATOR_TOL, (got, want)


def test_train_step_eager_matches_tf_function():
    losses = {}
    for mode in ("eager", "tf_function"):
        critic, data, train_step = _factor_vae_critic_setup(steps=15, seed=1)
        step = train_step if mode == "eager" else tf.function(train_step)
        losses[mode] = [float(step(batch)) for batch in data]
    np.testing.assert_allclose(losses["eager"], losses["tf_function"], rtol=1e-4)
    assert losses["eager"][-1] != losses["eager"][0]


# ----- TC between groups of dimensions: I(z; u) of the fairness objective (Eq. 17, OURS-TC) ------

def test_group_tc_matches_numpy_reference(run_eagerly):
    z, mu, logvar = _small_case()
    got = run_eagerly(group_total_correlation_mws, z, mu, logvar, sizes=[1, 2])
    b = len(z)
    lq = stats.norm.logpdf(z[:, None, :].astype(np.float64), mu[None].astype(np.float64),
                           np.exp(0.5 * logvar[None].astype(np.float64)))  # [B, B, D]
    joint = special.logsumexp(lq.sum(2), axis=1) - np.log(b)
    groups = (special.logsumexp(lq[:, :, :1].sum(2), axis=1) + special.logsumexp(lq[:, :, 1:].sum(2), axis=1)
              - 2 * np.log(b))
    np.testing.assert_allclose(got, np.mean(joint - groups), rtol=1e-4, atol=1e-5)


def test_group_tc_with_one_dimension_per_group_is_the_total_correlation(run_eagerly):
    z, mu, logvar = _small_case()
    np.testing.assert_allclose(run_eagerly(group_total_correlation_mws, z, mu, logvar, sizes=[1, 1, 1]),
                               run_eagerly(total_correlation_mws, z, mu, logvar), rtol=1e-5)


def test_group_tc_of_correlated_blocks_matches_the_gaussian_mutual_information(run_eagerly):
    """[z1, z2] and [u] with u correlated to z1 only: I(z; u) = ½ log(det Σ_z det Σ_u / det Σ)."""
    cov = np.array([[1.0, 0.3, 0.7], [0.3, 1.0, 0.0], [0.7, 0.0, 1.0]])
    s = 0.4
    z, mu, logvar = _posterior_batch(cov, s=s, batch=2000, seed=12)
    full = cov + s * s * np.eye(3)
    want = 0.5 * (np.linalg.slogdet(full[:2, :2])[1] + np.log(full[2, 2]) - np.linalg.slogdet(full)[1])
    got = run_eagerly(group_total_correlation_mws, z, mu, logvar, sizes=[2, 1])
    assert abs(got - want) < TC_TOL, (got, want)  # want ≈ 0.35


def test_group_tc_rejects_sizes_that_do_not_cover_the_vector():
    z, mu, logvar = _small_case()
    with pytest.raises(ValueError, match="sum to 2"):
        group_total_correlation_mws(z, mu, logvar, [1, 1])
    with pytest.raises(ValueError, match="positive ints"):
        group_total_correlation_mws(z, mu, logvar, [3, 0])
