"""InfoGAN variational lower bounds on the code/observation mutual information.

The ``infogan`` row adds to C2 (GAN) the structural term ``-λ I(c; x)``,
``x = G(z, c)``, estimated with an auxiliary network ``Q(c | x)``
(Chen et al. 2016, "InfoGAN", Sec. 5, Lemma 5.1):

    I(c; G(z, c)) >= L_I = E_{c ~ p(c), x ~ G(z, c)}[log Q(c | x)] + H(c),

tight when ``Q(c | x)`` is the true posterior. Both functions return ``L_I``
(maximize it, i.e. add ``-λ L_I`` to the generator and ``Q`` losses).
"""

import math

from keras import ops

from mibzoo.estimators.total_correlation import log_density_gaussian

__all__ = ["categorical_code_mi_lower_bound", "gaussian_code_mi_lower_bound", "uniform_code_mi_lower_bound"]

_LOG_2PI_E = math.log(2.0 * math.pi) + 1.0


def categorical_code_mi_lower_bound(code_onehot, q_logits, prior_probs=None):
    """``L_I = H(c) + E[log Q(c | x)]`` for a categorical code.

    Chen et al. 2016, Lemma 5.1 with a categorical ``Q(c | x) = softmax(q_logits)``.

    Args:
      code_onehot: ``[B, K]`` one-hot codes the generator was given (soft
        codes are allowed: the cross-entropy ``Σ_k c_k log Q_k`` is used).
      q_logits: ``[B, K]`` logits of ``Q(c | x)`` on the generated ``x``.
      prior_probs: ``None`` for a uniform code prior (``H(c) = log K``), or a
        ``[K]`` probability vector of the code prior (``H(c) = -Σ p log p``).

    Returns:
      Scalar float32 lower bound in nats, in ``(-inf, H(c)]``: ``H(c)`` for a
      perfect ``Q``, 0 for a ``Q`` that outputs the prior.
    """
    code = ops.cast(code_onehot, "float32")
    logits = ops.cast(q_logits, "float32")
    log_q = ops.log_softmax(logits, axis=-1)
    expected_log_q = ops.mean(ops.sum(code * log_q, axis=-1))
    if prior_probs is None:
        entropy = ops.log(ops.cast(ops.shape(logits)[-1], "float32"))
    else:
        p = ops.cast(prior_probs, "float32")
        entropy = -ops.sum(ops.where(p > 0.0, p * ops.log(ops.where(p > 0.0, p, 1.0)), 0.0))
    return entropy + expected_log_q


def gaussian_code_mi_lower_bound(code, q_mean, q_logvar, prior_logvar=0.0):
    """``L_I = H(c) + E[log Q(c | x)]`` for a continuous code ``c ~ N(0, e^prior_logvar I)``.

    Chen et al. 2016, Lemma 5.1 with a factored Gaussian
    ``Q(c | x) = N(q_mean, exp(q_logvar))``; ``H(c) = Σ_d 0.5 (log 2πe + prior_logvar_d)``.

    Args:
      code: ``[B, D]`` continuous codes the generator was given.
      q_mean: ``[B, D]`` means of ``Q(c | x)``.
      q_logvar: ``[B, D]`` log-variances of ``Q(c | x)`` (a fixed value, e.g.
        zeros, is the InfoGAN default).
      prior_logvar: scalar or ``[D]`` log-variance of the zero-mean Gaussian
        code prior.

    Returns:
      Scalar float32 lower bound in nats (sum over the ``D`` code dimensions).
    """
    code = ops.cast(code, "float32")
    prior_logvar = ops.cast(prior_logvar, "float32") + ops.zeros_like(code[0])
    entropy = ops.sum(0.5 * (_LOG_2PI_E + prior_logvar))
    return entropy + _expected_gaussian_log_q(code, q_mean, q_logvar)


def uniform_code_mi_lower_bound(code, q_mean, q_logvar, half_width=1.0):
    """``L_I = H(c) + E[log Q(c | x)]`` for a continuous code ``c ~ U(−a, a)^D``.

    Chen et al. 2016, Lemma 5.1 with a factored Gaussian ``Q(c | x) = N(q_mean, exp(q_logvar))``,
    as the official InfoGAN code treats its ``Uniform`` codes (MNIST: two of them, and uniform
    noise); ``H(c) = D log 2a``.

    Args:
      code: ``[B, D]`` continuous codes the generator was given.
      q_mean: ``[B, D]`` means of ``Q(c | x)``.
      q_logvar: ``[B, D]`` log-variances of ``Q(c | x)``.
      half_width: scalar or ``[D]`` half-width ``a`` of the code prior.

    Returns:
      Scalar float32 lower bound in nats (sum over the ``D`` code dimensions).
    """
    code = ops.cast(code, "float32")
    half_width = ops.cast(half_width, "float32") + ops.zeros_like(code[0])
    return ops.sum(ops.log(2.0 * half_width)) + _expected_gaussian_log_q(code, q_mean, q_logvar)


def _expected_gaussian_log_q(code, q_mean, q_logvar):
    """``E[log Q(c | x)]`` over the batch for a factored Gaussian Q, summed over the code dimensions."""
    return ops.mean(ops.sum(log_density_gaussian(ops.cast(code, "float32"), q_mean, q_logvar), axis=-1))
