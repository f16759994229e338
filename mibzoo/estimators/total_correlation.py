"""Total correlation of the aggregate posterior, ``TC = D_KL(q(z) || Π_j q(z_j))``.

The ``beta_tcvae`` and ``factor_vae`` rows penalize the structural term
``D(q(z) || G^p)`` with ``G^p`` the fully factorized Bayesian network over the
latent dimensions, i.e. the total correlation (multi-information, Sec. 2.2 of the
paper) of ``q(z) = E_{q(x)} q(z|x)``. Two families of estimators:

* minibatch estimators with Gaussian posteriors ``q(z|x_b) = N(mu_b, exp(logvar_b))``
  (Chen et al. 2018): :func:`total_correlation_mws`, :func:`total_correlation_mss`, and between
  groups of dimensions (Esmaeili et al. 2019): :func:`group_total_correlation_mws`;
* a density-ratio discriminator on ``z`` against dimension-wise permuted ``z``
  (Kim & Mnih 2018): :func:`permute_dims`, :func:`density_ratio_discriminator_loss`,
  :func:`tc_discriminator_estimate`.

All math is float32 and log-domain (``logsumexp``); inputs of other float
dtypes (e.g. bfloat16) are cast.
"""

import keras
from keras import ops

from mibzoo.estimators.adversarial import discriminator_loss
from mibzoo.estimators.aggregate import pairwise_log_density
from mibzoo.inference import gaussian_log_density

__all__ = [
    "log_density_gaussian",
    "aggregate_posterior_log_densities",
    "total_correlation_mws",
    "total_correlation_mss",
    "group_total_correlation_mws",
    "permute_dims",
    "density_ratio_discriminator_loss",
    "tc_discriminator_estimate",
]

def _f32(t):
    return ops.cast(t, "float32")


def log_density_gaussian(z, mu, logvar):
    """Elementwise log-density of a diagonal Gaussian, ``log N(z; mu, exp(logvar))``, in float32
    (`mibzoo.inference.gaussian_log_density` on float32 inputs).

    Args:
      z, mu, logvar: float tensors, broadcastable to one shape.

    Returns:
      float32 tensor of the broadcast shape (one value per coordinate; sum the
      last axis for the density of a vector).
    """
    return gaussian_log_density(_f32(z), _f32(mu), _f32(logvar))


def _batch_size(z):
    return ops.cast(ops.shape(z)[0], "float32")


def _mws_log_weight(z, dataset_size):
    # Without a dataset size: log(1/M), the minibatch average (1/M) Σ_j q(z|x_j).
    # With one: Chen et al. 2018's importance weight p(B_M)/r(B_M|n) / M = 1/(N M).
    m = _batch_size(z)
    log_w = -ops.log(m)
    if dataset_size is not None:
        log_w = log_w - ops.log(ops.cast(dataset_size, "float32"))
    return log_w


def _mss_log_weight_matrix(z, dataset_size):
    # Chen et al. 2018, App. C.2 (MSS), with the diagonal placed as the text
    # says (the reference code's strided assignment fills columns instead, see
    # rtqichen/beta-tcvae PR #1). With M = B - 1 the other samples of the batch:
    # weight 1/N for the sample's own posterior (i = j), (N - M)/(N M) for one
    # other sample (j = i + 1 mod B), 1/M for the remaining M - 1; rows sum to 1.
    b = ops.shape(z)[0]
    m = _batch_size(z) - 1.0
    n = ops.cast(dataset_size, "float32")
    eye = ops.eye(b, dtype="float32")
    nxt = ops.roll(eye, 1, axis=1)
    rest = 1.0 - eye - nxt
    w = eye / n + nxt * ((n - m) / (n * m)) + rest / m
    return ops.log(w)


def aggregate_posterior_log_densities(z, mu, logvar, dataset_size=None, sampling="mws"):
    """Minibatch estimates of ``log q(z_b)`` and ``log q(z_b,d)`` for every sample.

    ``q(z) = E_{q(x)} q(z|x)`` is estimated at each ``z_b`` by a weighted sum of
    the batch's posteriors, ``log Σ_j w_bj q(z_b | x_j)``, and likewise for each
    one-dimensional marginal ``q(z_d)`` (Chen et al. 2018, Sec. 3.1 and App. C).

    Args:
      z: ``[B, D]`` samples, ``z_b ~ q(z | x_b)``.
      mu: ``[B, D]`` posterior means.
      logvar: ``[B, D]`` posterior log-variances.
      dataset_size: ``N``, the number of training examples. For ``"mws"``,
        ``None`` uses ``w = 1/B`` and an integer uses Chen et al.'s ``1/(N B)``
        (see :func:`total_correlation_mws`); ``"mss"`` requires it.
      sampling: ``"mws"`` (minibatch weighted) or ``"mss"`` (minibatch stratified).

    Returns:
      ``(log_qz, log_qz_marginals)``: float32 ``[B]`` and ``[B, D]``.
    """
    log_q = pairwise_log_density(z, mu, logvar)  # [B, B, D]
    if sampling == "mws":
        log_w = _mws_log_weight(z, dataset_size)
        log_qz = ops.logsumexp(ops.sum(log_q, axis=2), axis=1) + log_w
        log_qz_marginals = ops.logsumexp(log_q, axis=1) + log_w
    elif sampling == "mss":
        if dataset_size is None:
            raise ValueError("total_correlation_mss: dataset_size is required (got None)")
        log_w = _mss_log_weight_matrix(z, dataset_size)  # [B, B]
        log_qz = ops.logsumexp(ops.sum(log_q, axis=2) + log_w, axis=1)
        log_qz_marginals = ops.logsumexp(log_q + log_w[:, :, None], axis=1)
    else:
        raise ValueError(f"sampling: got {sampling!r}, expected 'mws' or 'mss'")
    return log_qz, log_qz_marginals


def total_correlation_mws(z, mu, logvar, dataset_size=None):
    """Total correlation of ``q(z)`` by minibatch weighted sampling (MWS).

    ``TC ≈ (1/B) Σ_b [log q̂(z_b) - Σ_d log q̂(z_b,d)]`` with
    ``log q̂(z_b) = logsumexp_j log q(z_b | x_j) + log w`` and the same for each
    dimension (Chen et al. 2018, Sec. 3.1 and App. C.1, minibatch weighted sampling).

    About ``w`` (derived, one constant): Chen et al.'s importance weight is
    ``w = 1/(N B)``; it enters ``log q̂(z)`` once and each of the ``D`` marginals
    once, so the returned value is shifted by ``(D - 1) log N`` relative to
    ``w = 1/B``, the plain minibatch average ``(1/B) Σ_j q(z | x_j)``, which is
    the one whose value estimates TC in nats. The shift has no gradient.

    Args:
      z: ``[B, D]`` samples ``z_b ~ q(z | x_b)``.
      mu: ``[B, D]`` posterior means.
      logvar: ``[B, D]`` posterior log-variances.
      dataset_size: ``None`` (default) for ``w = 1/B`` (value in nats); the
        dataset size ``N`` to reproduce Chen et al.'s ``w = 1/(N B)`` exactly
        (value ``+ (D - 1) log N``, same gradients).

    Returns:
      Scalar float32 estimate.
    """
    log_qz, log_qz_marginals = aggregate_posterior_log_densities(
        z, mu, logvar, dataset_size, "mws")
    return ops.mean(log_qz - ops.sum(log_qz_marginals, axis=1))


def total_correlation_mss(z, mu, logvar, dataset_size):
    """Total correlation of ``q(z)`` by minibatch stratified sampling (MSS).

    As :func:`total_correlation_mws`, with the importance weights of Chen et al.
    2018, App. C.2: for sample ``b`` its own posterior weighs ``1/N``, one other
    posterior ``(N - M)/(N M)`` and the remaining ``M - 1`` weigh ``1/M``
    (``M = B - 1``). The weights sum to one, so the value is on the nats scale;
    as ``N -> inf`` it becomes the leave-one-out batch average.

    Args:
      z: ``[B, D]`` samples ``z_b ~ q(z | x_b)``, ``B >= 2``.
      mu: ``[B, D]`` posterior means.
      logvar: ``[B, D]`` posterior log-variances.
      dataset_size: ``N >= B - 1``, the number of training examples.

    Returns:
      Scalar float32 estimate of TC in nats.
    """
    log_qz, log_qz_marginals = aggregate_posterior_log_densities(
        z, mu, logvar, dataset_size, "mss")
    return ops.mean(log_qz - ops.sum(log_qz_marginals, axis=1))


def group_total_correlation_mws(z, mu, logvar, sizes):
    """Total correlation between *groups* of latent dimensions, by minibatch weighted sampling.

    ``TC_groups = KL(q(z_1, ..., z_G) ‖ Π_g q(z_g))`` over consecutive blocks of sizes
    ``sizes`` (Esmaeili et al. 2019's group-level term of the hierarchically factorized VAE);
    for two groups ``[z, u]`` it is the mutual information ``I_q(z; u)`` of the fairness
    objective (Eq. 17, OURS-TC in Table 3). Estimated as
    ``(1/B) Σ_b [log q̂(z_b) − Σ_g log q̂(z_b,g)]`` with
    ``log q̂(v) = logsumexp_j log q(v | x_j) − log B`` for the whole vector and for each group,
    the posteriors being diagonal Gaussians (the MWS estimator of Chen et al. 2018, App. C.1,
    with groups in place of single dimensions).

    Args:
      z: ``[B, D]`` samples ``z_b ~ q(z | x_b)``, the groups side by side.
      mu: ``[B, D]`` posterior means.
      logvar: ``[B, D]`` posterior log-variances.
      sizes: group sizes (positive ints summing to ``D``).

    Returns:
      Scalar float32 estimate in nats.
    """
    sizes = [int(s) for s in sizes]
    if not sizes or any(s <= 0 for s in sizes):
        raise ValueError(f"group_total_correlation_mws: sizes got {sizes!r}, expected positive ints")
    if z.shape[-1] is not None and sum(sizes) != z.shape[-1]:
        raise ValueError(f"group_total_correlation_mws: sizes {sizes} sum to {sum(sizes)}, but z has "
                         f"{z.shape[-1]} dimensions")
    log_q = pairwise_log_density(z, mu, logvar)  # [B, B, D]
    log_w = _mws_log_weight(z, None)
    log_joint = ops.logsumexp(ops.sum(log_q, axis=2), axis=1) + log_w
    log_groups, start = 0.0, 0
    for size in sizes:
        log_groups = log_groups + ops.logsumexp(ops.sum(log_q[:, :, start:start + size], axis=2), axis=1) + log_w
        start += size
    return ops.mean(log_joint - log_groups)


def permute_dims(z, seed=None):
    """Permute each latent dimension independently across the batch.

    Kim & Mnih 2018, Alg. 1 (PERMUTE_DIMS): if the rows of ``z`` are samples
    of ``q(z)``, the rows of the result are (approximately) samples of
    ``Π_d q(z_d)``.

    Args:
      z: ``[B, D]`` tensor.
      seed: a ``keras.random.SeedGenerator`` (a fresh permutation at every call,
        also inside ``tf.function``; use this in training), a Python int (the
        same permutation at every call), a ``[2]`` int tensor (stateless TF
        seed, e.g. from a serving request) or ``None`` (Keras' global generator).

    Returns:
      Tensor like ``z`` (dtype kept) whose column ``d`` is a permutation of
      column ``d`` of ``z``.
    """
    if seed is not None and not isinstance(seed, (int, keras.random.SeedGenerator)):
        import tensorflow as tf  # stateless tensor seeds are TensorFlow-only
        keys = tf.random.stateless_uniform(tf.shape(z), seed=seed)
    else:
        keys = keras.random.uniform(ops.shape(z), seed=seed)
    order = ops.argsort(keys, axis=0)
    return ops.take_along_axis(z, order, axis=0)


def density_ratio_discriminator_loss(logits_joint, logits_permuted):
    """Loss of the discriminator that tells ``q(z)`` from ``Π_d q(z_d)``.

    Binary cross-entropy with ``z ~ q(z)`` labelled 1 and ``permute_dims(z)``
    labelled 0 (Kim & Mnih 2018, Sec. 3, the discriminator objective of Alg. 1,
    here with one logit instead of two softmax outputs). At the optimum the
    logit is the log density ratio ``log q(z) / Π_d q(z_d)``.

    Args:
      logits_joint: discriminator logits on ``z ~ q(z)``, any shape.
      logits_permuted: logits on permuted samples, any shape.

    Returns:
      Scalar float32 loss, ``mean(softplus(-joint)) + mean(softplus(permuted))``
      (the same as :func:`mibzoo.estimators.adversarial.discriminator_loss`).
    """
    return discriminator_loss(logits_joint, logits_permuted)


def tc_discriminator_estimate(logits_joint):
    """Density-ratio estimate of TC, ``E_q(z)[log D(z) / (1 - D(z))] = E_q(z)[logit]``.

    Kim & Mnih 2018, Sec. 3: ``TC(z) = E_q(z)[log q(z)/q̄(z)] ≈
    E_q(z)[log D(z)/(1 - D(z))]`` for a discriminator trained with
    :func:`density_ratio_discriminator_loss`; for a one-logit discriminator the
    log odds is the logit itself.

    Args:
      logits_joint: discriminator logits on ``z ~ q(z)`` (not permuted), any shape.

    Returns:
      Scalar float32 estimate of TC in nats.
    """
    return ops.mean(_f32(logits_joint))
