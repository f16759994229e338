"""`RunningMean`: an exponential moving average of a per-group statistic that a loss term keeps
across training steps (e.g. `environment_recalibration`'s running mean of each environment's
gradient along the recalibration, ``term_options`` ``{"pairs": "running"}``)."""
import keras
from keras import ops


class RunningMean(keras.layers.Layer):
    """An exponential moving average of a ``[groups, size]`` statistic, one per group, with Adam's
    bias correction per group: after t updates of a group, its mean is
    (1 − ρ) Σ_s ρ^(t − s) v_s / (1 − ρ^t), so the first update gives the value itself rather
    than (1 − ρ) times it. A group absent from an update (``seen`` 0) keeps its mean and count.

    The variables are not trainable (no optimizer touches them) and are saved with the model, so a
    run resumed from a checkpoint continues the same average. Under `tf.distribute` each replica
    proposes its update and the variables keep the mean over replicas (``aggregation="mean"``).

    Args:
        groups: number of groups (e.g. environments).
        size: length of each group's statistic.
        momentum: ρ in [0, 1): the weight of the past in each update (ρ = 0: the last value).

    Example:

    ```python
    running = RunningMean(groups=3, size=2, momentum=0.9)
    mean, known = running.update(ops.ones((3, 2)), ops.convert_to_tensor([1.0, 1.0, 0.0]))
    # mean [[1, 1], [1, 1], [0, 0]], known [1, 1, 0]; running.value() gives the same
    ```
    """

    def __init__(self, groups, size, momentum, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"RunningMean: momentum={momentum!r}; allowed: a number in [0, 1)")
        self.groups, self.size, self.momentum = int(groups), int(size), float(momentum)

    def build(self, input_shape=None):
        self.total = self.add_weight(shape=(self.groups, self.size), initializer="zeros", trainable=False,
                                     aggregation="mean", name="total")
        self.updates = self.add_weight(shape=(self.groups,), initializer="zeros", trainable=False,
                                       aggregation="mean", name="updates")
        self.built = True

    def value(self):
        """``(mean [groups, size], known [groups])``: the bias-corrected averages, and 1 where a group
        has had at least one update (its mean is 0 before)."""
        return self._corrected(self.total, self.updates)

    def _corrected(self, total, updates):
        known = ops.cast(updates > 0, "float32")
        correction = 1.0 - ops.power(self.momentum, updates)
        return total / ops.maximum(correction, 1e-12)[:, None] * known[:, None], known

    def update(self, values, seen):
        """Folds ``values`` ``[groups, size]`` into the averages of the groups where ``seen`` ``[groups]``
        is 1, and returns ``(mean, known)`` as `value` would after it, with the mean differentiable
        in ``values`` (the part (1 − ρ) / (1 − ρ^t) that this update contributes; the past is a
        constant): a loss on the returned mean sees the current batch through it."""
        values = ops.cast(values, "float32")
        seen = ops.cast(seen, "float32")
        blended = self.momentum * self.total + (1.0 - self.momentum) * values
        total = ops.where(seen[:, None] > 0, blended, self.total)
        updates = self.updates + seen
        self.total.assign(ops.stop_gradient(total))
        self.updates.assign(updates)
        return self._corrected(total, updates)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "size": self.size, "momentum": self.momentum}
