"""How far the mean of a representation given the label differs between groups, in units of its
within-group spread: Σ_y P(y) · mean over group pairs of Δμ_yᵀ (Σ_y + ridge · I)⁻¹ Δμ_y, the squared
Mahalanobis distance between the groups' label-conditional means (Hotelling's T² without its
sample-size factor). It is 0 when x ⊥ G | Y holds for the first moments, and unlike a kernel MMD
it does not shrink with the amplitude a feature is encoded at, down to the ridge added to the
covariance: a direction along which the groups differ by little but which varies little within
them (a feature a linear read-out can amplify) counts as fully as a large one.

Each Δμ is estimated twice from disjoint rows (the even and the odd rows, `halves`) and the two are
multiplied, Δ_evenᵀ A Δ_odd, so the estimate carries no positive bias from the means' own noise
(which for D dimensions and n rows per cell would be about 2D / n)."""

from keras import ops

from mibzoo.estimators.halves import group_half_means

__all__ = ["group_conditional_mean_gap"]


def group_conditional_mean_gap(x, labels, groups, weights=None, ridge=1e-2):
    """Σ_y P(y) · mean over pairs g < h of Δ_evenᵀ (Σ_y + ridge · I)⁻¹ Δ_odd, with Δ = μ_{y,g} − μ_{y,h}
    from the even and from the odd rows and Σ_y the covariance of x within the (y, group) cells of
    label y, pooled over its groups.

    Args:
      x: ``[B, D]`` samples (e.g. a representation z).
      labels: ``[B, K]`` one-hot labels (the conditioning variable).
      groups: ``[B, G]`` one-hot groups (e.g. environments).
      weights: ``[B]`` 0/1 row weights (0 where the label is missing); ``None``: all 1.
      ridge: added to Σ_y's diagonal (in x's units squared), so a direction without spread gives a
        finite distance.

    Returns:
      A float32 scalar; a (label, pair) needs a weighted row in both halves of both cells, labels
      without such a pair are left out and P(y) is renormalized over the rest.
    """
    x = ops.cast(x, "float32")
    labels = ops.cast(labels, "float32")
    groups = ops.cast(groups, "float32")
    rows, dim = ops.shape(x)[0], ops.shape(x)[-1]
    weights = ops.ones((rows,), "float32") if weights is None else ops.cast(weights, "float32")
    n_groups = ops.shape(groups)[-1]
    upper = ops.triu(ops.ones((n_groups, n_groups), "float32"), k=1)
    total, share = 0.0, 0.0
    for k in range(labels.shape[-1]):
        membership = (weights * labels[:, k])[:, None] * groups  # [B, G]
        halves, _, kept = group_half_means(x, membership)  # [2, G, D], [G]
        counts = ops.sum(membership, axis=0)
        means = ops.einsum("bg,bd->gd", membership, x) / ops.maximum(counts, 1.0)[:, None]
        centred = x[:, None, :] - means[None]  # [B, G, D]
        cell_rows = ops.sum(counts)
        covariance = ops.einsum("bg,bgd,bge->de", membership, centred, centred) / ops.maximum(cell_rows, 1.0)
        precision = ops.inv(covariance + ridge * ops.eye(dim, dtype="float32"))
        even = halves[0][:, None, :] - halves[0][None, :, :]  # [G, G, D]
        odd = halves[1][:, None, :] - halves[1][None, :, :]
        pair_values = ops.einsum("ghd,de,ghe->gh", even, precision, odd)
        pair_mask = kept[:, None] * kept[None, :] * upper
        n_pairs = ops.sum(pair_mask)
        label_value = ops.sum(pair_values * pair_mask) / ops.maximum(n_pairs, 1.0)
        label_share = ops.sum(counts) * ops.cast(n_pairs > 0, "float32")
        total, share = total + label_value * label_share, share + label_share
    return total / ops.maximum(share, 1.0)
