"""Minibatch estimate of the aggregate posterior q(z) = E_{q(x)} q(z | x).

C3 (Table 1) is KL(q(z) ‖ p(z)) on the aggregate posterior, which has no closed form. Within a
minibatch of B examples with Gaussian posteriors q(z | x_c) and samples z_b ~ q(z | x_b),

    log q(z_b) ≈ logsumexp_c log q(z_b | x_c) − log B,

the plug-in estimate that Chen et al. (2018) refine with dataset-size weights (their MWS
estimator, used for total correlation in `total_correlation`).
"""
from keras import ops

from mibzoo.inference import gaussian_log_density


def pairwise_log_density(z, loc, logvar):
    """``[B, B, D]``: log q(z_b,d | x_c), every sample b under every posterior c of the batch, per
    coordinate (float32). The aggregate-posterior estimates here and in `total_correlation` sum or
    weight it."""
    z, loc, logvar = (ops.cast(t, "float32") for t in (z, loc, logvar))
    return gaussian_log_density(z[:, None, :], loc[None, :, :], logvar[None, :, :])


def log_aggregate_posterior(z, loc, logvar):
    """Minibatch estimate of log q(z_b) for each sample.

    Args:
        z: samples ``[B, D]``, ``z_b ~ q(z | x_b)``.
        loc: posterior means ``[B, D]``.
        logvar: posterior log-variances ``[B, D]``.

    Returns:
        ``[B]`` estimates of ``log q(z_b)``.
    """
    # pairwise[b, c] = log q(z_b | x_c), summed over dimensions.
    pairwise = ops.sum(pairwise_log_density(z, loc, logvar), axis=-1)
    batch = ops.cast(ops.shape(z)[0], "float32")
    return ops.logsumexp(pairwise, axis=1) - ops.log(batch)


def aggregate_kl_to_prior(z, loc, logvar, prior_loc, prior_logvar):
    """C3 = KL(q(z) ‖ p(z)) estimated as mean_b [log q̂(z_b) − log p(z_b)] (Table 1, C3)."""
    log_q = log_aggregate_posterior(z, loc, logvar)
    log_p = ops.sum(gaussian_log_density(z, prior_loc, prior_logvar), axis=-1)
    return ops.mean(log_q - log_p)
