"""Reductions over the groups (environments) of a minibatch that several estimators share: the
U-statistic of a pair function within each group, and the mean over groups weighted by their share
of the rows."""

from keras import ops

__all__ = ["group_pair_means", "share_weighted_mean"]


def group_pair_means(pairs, groups, weights=None):
    """Per group, the weighted mean of ``pairs[i, j]`` over its ordered pairs of distinct rows:
    (Σ_ij w_i w_j h_ij − Σ_i w_i² h_ii) / ((Σ_i w_i)² − Σ_i w_i²), i.e. / (n_g (n_g − 1)) for 0/1
    weights, the U-statistic of a symmetric pair function h.

    Args:
      pairs: ``[B, B]`` the pair function h_ij.
      groups: ``[B, G]`` one-hot group of each row.
      weights: ``[B]`` row weights (0 leaves a row out); ``None``: all 1.

    Returns:
      ``(means, kept, counts)``, each ``[G]``: the per-group mean (0 where left out), 1 where the group
      has two weighted rows or more, and the weighted row counts.
    """
    groups = ops.cast(groups, "float32")
    weights = ops.ones_like(groups[:, 0]) if weights is None else ops.cast(weights, "float32")
    members = weights[:, None] * groups  # [B, G]
    squared = members * members  # w_i² per group: what the diagonal i = j adds to the sums of pairs
    all_pairs = ops.sum(members * ops.matmul(pairs, members), axis=0)  # [G]: Σ_ij w_i w_j h_ij
    diagonal = ops.sum(squared * ops.diagonal(pairs)[:, None], axis=0)  # [G]: Σ_i w_i² h_ii
    counts = ops.sum(members, axis=0)
    pair_counts = counts * counts - ops.sum(squared, axis=0)
    kept = ops.cast(pair_counts > 0.5, "float32")
    return (all_pairs - diagonal) / ops.maximum(pair_counts, 1.0) * kept, kept, counts


def share_weighted_mean(values, kept_counts):
    """Σ_g P(g) values_g, P(g) = kept_counts_g / Σ kept_counts: each group weighted by its share of the
    weighted rows of the groups kept (0 counts leave a group out; none kept gives 0).

    Args:
      values: ``[G]`` a value per group.
      kept_counts: ``[G]`` each group's weighted row count, 0 for a group left out.
    """
    shares = kept_counts / ops.maximum(ops.sum(kept_counts), 1.0)
    return ops.sum(shares * values)
