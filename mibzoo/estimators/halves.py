"""Per-group means over the even and over the odd rows of a batch: two independent estimates of each
group's mean, whose product is an unbiased estimate of its square where the square of one estimate
is biased upwards by its variance (IRMv1's unbiased penalty, Arjovsky et al. 2019, Sec. 3.2).
Shared by `recalibration` (the paired gradients), `risk_variance`, `gradient_variance` and IRMv1's
term (`mibzoo.objectives.ood.invariant_risk`)."""

from keras import ops

__all__ = ["group_half_means", "kept_group_deviations"]


def group_half_means(values, membership):
    """The even rows' and the odd rows' weighted means of ``values`` per group.

    Args:
      values: ``[B, P]`` per-row values (e.g. gradients, or losses as ``[B, 1]``).
      membership: ``[B, G]`` each row's weight in each group (0/1 weights times one-hot groups).

    Returns:
      ``(means, counts, kept)``: ``[2, G, P]`` the even rows' and the odd rows' weighted means (0 for
      an empty half), ``[2, G]`` the halves' weighted counts, and ``[G]`` 1.0 where both halves of a
      group have weight, else 0.0.
    """
    parity = ops.cast(ops.arange(ops.shape(values)[0]) % 2, "float32")[:, None]
    halves = [membership * (1.0 - parity), membership * parity]
    counts = ops.stack([ops.sum(h, axis=0) for h in halves])
    sums = ops.stack([ops.einsum("bg,bp->gp", h, values) for h in halves])
    kept = ops.cast(ops.logical_and(counts[0] > 0, counts[1] > 0), "float32")
    return sums / ops.maximum(counts, 1.0)[:, :, None], counts, kept


def kept_group_deviations(values, kept):
    """``values`` minus their mean over the kept groups, and 0 for the groups not kept.

    Args:
      values: ``[H, G, ...]`` per part of the batch (e.g. its two halves) and per group.
      kept: ``[G]`` 1.0 for a group that counts, else 0.0.
    """
    kept = ops.reshape(kept, (1, -1) + (1,) * (len(values.shape) - 2))
    centre = ops.sum(values * kept, axis=1, keepdims=True) / ops.maximum(ops.sum(kept), 1.0)
    return (values - centre) * kept
