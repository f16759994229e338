"""Adversarial (discriminator) estimators of the Jensen–Shannon divergence, cost C2.

Table 1 of the paper lists ``C2(x) = D_JS(q(x) || p(x))``: the data distribution
``q(x)`` against the model distribution ``p(x)``. It is estimated through a
discriminator ``D(x) = sigmoid(logit(x))`` that tells real samples (label 1)
from generated ones (label 0), Goodfellow et al. 2014. All functions take
*logits* (any shape; every element is one sample) and work in float32 with
``softplus`` forms of ``log sigmoid`` so that large logits never give inf/NaN:
``log D = -softplus(-logit)`` and ``log(1 - D) = -softplus(logit)``.
"""

import math

from keras import ops

__all__ = ["discriminator_loss", "generator_loss", "js_divergence_estimate"]

_LOG2 = math.log(2.0)


def _flat32(t):
    return ops.reshape(ops.cast(t, "float32"), (-1,))


def discriminator_loss(real_logits, fake_logits):
    """Standard GAN discriminator loss (binary cross-entropy, real=1, fake=0).

    ``L_D = -E_q(x)[log D(x)] - E_p(x)[log(1 - D(x))]``
    (Goodfellow et al. 2014, Eq. (1), negated value function). Its minimum over
    ``D`` is ``log 4 - 2 * D_JS(q || p)``, reached at the Bayes-optimal logit
    ``log q(x) / p(x)`` (Goodfellow et al. 2014, Prop. 1 and Thm. 1).

    Args:
      real_logits: discriminator logits on data samples ``x ~ q(x)``, any shape.
      fake_logits: discriminator logits on model samples ``x ~ p(x)``, any shape.

    Returns:
      Scalar float32 loss: ``mean(softplus(-real)) + mean(softplus(fake))``.
    """
    real = _flat32(real_logits)
    fake = _flat32(fake_logits)
    return ops.mean(ops.softplus(-real)) + ops.mean(ops.softplus(fake))


def generator_loss(fake_logits):
    """Non-saturating generator loss ``-E_p(x)[log D(x)]``.

    Goodfellow et al. 2014, Sec. 3 (the "maximize log D(G(z))" heuristic that
    replaces minimizing ``log(1 - D(G(z)))``): same fixed point, strong gradients
    early in training.

    Args:
      fake_logits: discriminator logits on model samples ``x = G(z)``, any shape.

    Returns:
      Scalar float32 loss ``mean(softplus(-fake_logits))``.
    """
    return ops.mean(ops.softplus(-_flat32(fake_logits)))


def js_divergence_estimate(real_logits, fake_logits):
    """Jensen–Shannon divergence ``D_JS(q || p)`` through a discriminator (cost C2).

    ``D_JS ≈ 0.5 * (E_q[log D(x)] + E_p[log(1 - D(x))]) + log 2``
    (Goodfellow et al. 2014, Thm. 1: ``V(G, D*) = -log 4 + 2 D_JS``). Exact in
    expectation for the optimal discriminator; for any other discriminator it is
    a lower bound (in expectation), i.e. ``log 2 - 0.5 * discriminator_loss``.

    Args:
      real_logits: discriminator logits on data samples ``x ~ q(x)``, any shape.
      fake_logits: discriminator logits on model samples ``x ~ p(x)``, any shape.

    Returns:
      Scalar float32 estimate in nats, in ``(-inf, log 2]``.
    """
    real = _flat32(real_logits)
    fake = _flat32(fake_logits)
    log_d_real = -ops.softplus(-real)
    log_one_minus_d_fake = -ops.softplus(fake)
    return 0.5 * (ops.mean(log_d_real) + ops.mean(log_one_minus_d_fake)) + _LOG2
