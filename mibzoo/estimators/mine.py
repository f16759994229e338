"""MINE: mutual information neural estimation (Belghazi et al. 2018).

The fairness case study (Sec. 5, Table 3 "OURS-MINE") estimates and minimizes
``I_q(z; u)`` with MINE. A statistics network ``T(x, y)`` (see
:class:`mibzoo.estimators.critics.MINEStatistics`) is evaluated on joint pairs
``(x_b, y_b)`` and on pairs from the product of marginals (``y`` shuffled across
the batch); the Donsker–Varadhan representation gives a lower bound on
``I(X; Y)`` that is tight at ``T = log p(x, y) / (p(x) p(y)) + const``.
"""

import math

from keras import ops

__all__ = ["mine_lower_bound", "mine_loss"]


def _flat32(t):
    return ops.reshape(ops.cast(t, "float32"), (-1,))


def _log_mean_exp(t):
    n = ops.cast(ops.shape(t)[0], "float32")
    return ops.logsumexp(t) - ops.log(n)


def mine_lower_bound(t_joint, t_marginal):
    """Donsker–Varadhan lower bound ``E_joint[T] - log E_marginal[e^T]`` on ``I(X; Y)``.

    Belghazi et al. 2018, Sec. 3.1 (Thm. 1 / Def. 3.1, the MINE estimator);
    ``log E[e^T]`` is computed as ``logsumexp(T) - log n``.

    Args:
      t_joint: statistics ``T(x_b, y_b)`` on joint samples, any shape.
      t_marginal: statistics ``T(x_b, y'_b)`` on product-of-marginal samples
        (e.g. ``y`` permuted across the batch), any shape.

    Returns:
      Scalar float32 estimate in nats.
    """
    return ops.mean(_flat32(t_joint)) - _log_mean_exp(_flat32(t_marginal))


def mine_loss(t_joint, t_marginal, moving_average, decay=0.99):
    """Negative MINE bound with the bias-corrected (moving-average) gradient.

    The minibatch gradient of ``log E[e^T]`` is ``E[∇T e^T] / E[e^T]``; MINE
    replaces the denominator by an exponential moving average of ``E[e^T]``
    across minibatches to reduce the bias (Belghazi et al. 2018, Sec. 3.2 and
    Alg. 1). Derived surrogate (one line): the returned loss is
    ``-(E_joint[T] - [sg(lme) + (mean(e^T) - sg(mean(e^T))) / sg(ma)])`` with
    ``sg`` = stop-gradient, so its *value* is exactly ``-mine_lower_bound`` and
    its *gradient* is ``-(E_joint[∇T] - E_marg[∇T e^T] / ma)``.

    The moving average is updated first,
    ``ma_new = decay * ma + (1 - decay) * mean(e^{T_marginal})``, and ``ma_new`` is
    the denominator (computed in log space). A ``moving_average <= 0`` means "not
    started": ``ma_new`` is then the minibatch mean, so an optimizer state or a
    variable initialized to zero works without a warm-up bias.

    Args:
      t_joint: statistics on joint samples, any shape.
      t_marginal: statistics on product-of-marginal samples, any shape.
      moving_average: scalar, the running average of ``E[e^T]`` (≤ 0 to start).
      decay: weight of the old average, in ``[0, 1)``; Belghazi et al.'s
        moving-average rate ``α`` is ``1 - decay``.

    Returns:
      ``(loss, new_moving_average)``: scalar float32 loss to minimize with
      respect to the parameters of ``T``, and the scalar float32 updated
      average (no gradient; store it, e.g. ``variable.assign(new_ma)``).
    """
    if not 0.0 <= float(decay) < 1.0:
        raise ValueError(f"mine_loss: decay got {decay!r}, expected a float in [0, 1)")
    t_joint = _flat32(t_joint)
    t_marginal = _flat32(t_marginal)
    ma = ops.cast(moving_average, "float32")

    lme = _log_mean_exp(t_marginal)  # log mean e^T on this batch
    lme_sg = ops.stop_gradient(lme)
    started = ma > 0.0
    log_ma = ops.log(ops.where(started, ma, 1.0))
    if decay > 0.0:
        log_ma_updated = ops.logaddexp(log_ma + math.log(decay), lme_sg + math.log1p(-decay))
    else:
        log_ma_updated = lme_sg
    log_ma_new = ops.stop_gradient(ops.where(started, log_ma_updated, lme_sg))

    # mean(e^T) / ma_new, in log space; equals exp(lme - log_ma_new) in value.
    ratio = ops.mean(ops.exp(t_marginal - log_ma_new))
    log_denominator = lme_sg + ratio - ops.stop_gradient(ratio)
    loss = -(ops.mean(t_joint) - log_denominator)
    # The value of `ratio - sg(ratio)` is 0, so `loss` equals -mine_lower_bound.
    return loss, ops.exp(log_ma_new)
