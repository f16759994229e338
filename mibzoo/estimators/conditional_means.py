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

__all__ = ["group_conditional_mean_gap", "label_weighted_pair_mean"]


def label_weighted_pair_mean(pair_values, usable, counts):
    """Σ_y P(y) · (mean over the usable pairs g < h of ``pair_values[y, g, h]``): the average both
    label-conditional group comparisons (`group_conditional_mean_gap`,
    `mibzoo.estimators.mmd.group_conditional_mmd`) report.

    Args:
      pair_values: ``[K, G, G]`` a value per label and ordered pair of groups (only g < h is read).
      usable: ``[K, G]`` 1.0 where a (label, group) cell has enough rows for its estimate, else 0.0.
      counts: ``[K, G]`` the cells' weighted row counts.

    Returns:
      A float32 scalar; a pair counts where both of its cells are usable, labels without a usable
      pair are left out and P(y) (the labels' shares of the weighted rows) is renormalized over the rest.
    """
    n_groups = ops.shape(usable)[-1]
    upper = ops.triu(ops.ones((n_groups, n_groups), "float32"), k=1)
    pair_mask = usable[:, :, None] * usable[:, None, :] * upper[None]  # [K, G, G]
    n_pairs = ops.sum(pair_mask, axis=(1, 2))  # [K]
    per_label = ops.sum(pair_values * pair_mask, axis=(1, 2)) / ops.maximum(n_pairs, 1.0)
    label_share = ops.sum(counts, axis=1) * ops.cast(n_pairs > 0, "float32")  # [K]
    return ops.sum(per_label * label_share) / ops.maximum(ops.sum(label_share), 1.0)


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
      without such a pair are left out and P(y) is renormalized over the rest
      (`label_weighted_pair_mean`).
    """
    x = ops.cast(x, "float32")
    labels = ops.cast(labels, "float32")
    groups = ops.cast(groups, "float32")
    rows, dim = ops.shape(x)[0], ops.shape(x)[-1]
    weights = ops.ones((rows,), "float32") if weights is None else ops.cast(weights, "float32")
    n_labels, n_groups = ops.shape(labels)[-1], ops.shape(groups)[-1]
    cells = weights[:, None, None] * labels[:, :, None] * groups[:, None, :]  # [B, K, G]
    halves, _, kept = group_half_means(x, ops.reshape(cells, (rows, n_labels * n_groups)))
    halves = ops.reshape(halves, (2, n_labels, n_groups, dim))
    counts = ops.sum(cells, axis=0)  # [K, G]
    means = ops.einsum("bkg,bd->kgd", cells, x) / ops.maximum(counts, 1.0)[:, :, None]
    centred = x[:, None, None, :] - means[None]  # [B, K, G, D]
    covariance = (ops.einsum("bkg,bkgd,bkge->kde", cells, centred, centred)
                  / ops.maximum(ops.sum(counts, axis=1), 1.0)[:, None, None])  # pooled over each label's groups
    precision = ops.inv(covariance + ridge * ops.eye(dim, dtype="float32")[None])
    even = halves[0][:, :, None, :] - halves[0][:, None, :, :]  # [K, G, G, D]
    odd = halves[1][:, :, None, :] - halves[1][:, None, :, :]
    pair_values = ops.einsum("kghd,kde,kghe->kgh", even, precision, odd)
    return label_weighted_pair_mean(pair_values, ops.reshape(kept, (n_labels, n_groups)), counts)
