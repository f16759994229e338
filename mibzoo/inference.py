"""Inference model: the weighted product of Gaussian experts (Eq. 10-13) and Gaussian helpers.

For each shared block Z_j the posterior given the present modalities S is (Eq. 12)

    q(z_j | x^S) ∝ p(z_j) · Π_{i ∈ S} q̃(z_j | x_i)^{m_ij^q},

whose closed form for diagonal Gaussians is (Eq. 13, with the prior as expert 0, m_0j = 1)

    1/σ_j^q = Σ_{i ∈ S ∪ {0}} m_ij / σ_ij,      μ_j^q = σ_j^q Σ_{i ∈ S ∪ {0}} (m_ij / σ_ij) μ_ij,

where σ denotes a variance. The paper states Eq. 13 with diag(σ); we read σ as the variance
(the precision-weighted mean only holds in that reading). Everything is computed in precision
form from log-variances, which are clipped to [LOGVAR_MIN, LOGVAR_MAX] so that a tiny variance
cannot overflow; the prior expert keeps the total precision positive, so "no modality present"
gives exactly the prior and never a division by zero.
"""
import math

from keras import ops

LOGVAR_MIN = -12.0
LOGVAR_MAX = 8.0


def clip_logvar(logvar):
    """Clamps log-variances to the range in which precisions stay finite in float32."""
    return ops.clip(logvar, LOGVAR_MIN, LOGVAR_MAX)


def product_of_experts(prior_loc, prior_logvar, expert_loc, expert_logvar, weights):
    """Weighted product of diagonal Gaussian experts with the prior expert always included (Eq. 13).

    Args:
        prior_loc: prior means, shape ``[D]`` (or broadcastable to ``[B, D]``).
        prior_logvar: prior log-variances, same shape as ``prior_loc``.
        expert_loc: expert means, ``[B, N, D]`` (N modality experts).
        expert_logvar: expert log-variances, ``[B, N, D]``.
        weights: expert weights ``m_ij^q`` times presence, ``[B, N, D]``, each in [0, 1];
            continuous values are allowed (they carry the structure-learning gradient),
            0 removes an expert, an absent modality has weight 0.

    Returns:
        ``(loc, logvar)`` of the combined posterior, each ``[B, D]``.
    """
    expert_logvar = clip_logvar(ops.cast(expert_logvar, "float32"))
    expert_loc = ops.cast(expert_loc, "float32")
    weights = ops.cast(weights, "float32")
    prior_precision = ops.exp(-clip_logvar(ops.cast(prior_logvar, "float32")))
    weighted_precision = weights * ops.exp(-expert_logvar)  # [B, N, D]
    precision = prior_precision + ops.sum(weighted_precision, axis=1)  # [B, D]
    numerator = prior_precision * ops.cast(prior_loc, "float32") + ops.sum(weighted_precision * expert_loc, axis=1)
    loc = numerator / precision
    logvar = -ops.log(precision)
    return loc, logvar


def kl_diagonal_gaussians(loc_q, logvar_q, loc_p, logvar_p):
    """KL(N(loc_q, e^logvar_q) || N(loc_p, e^logvar_p)) summed over the last axis (closed form)."""
    var_ratio = ops.exp(logvar_q - logvar_p)
    mean_term = ops.square(loc_q - loc_p) * ops.exp(-logvar_p)
    return 0.5 * ops.sum(var_ratio + mean_term - 1.0 - (logvar_q - logvar_p), axis=-1)


def gaussian_log_density(z, loc, logvar):
    """Element-wise log N(z; loc, e^logvar) (no sum), broadcasting its arguments."""
    return -0.5 * (math.log(2.0 * math.pi) + logvar + ops.square(z - loc) * ops.exp(-logvar))
