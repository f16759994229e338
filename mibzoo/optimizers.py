"""`RestartingAdam`: Adam whose moment estimates start afresh at given steps, for objectives whose
scale jumps during training (a penalty annealed in at a step, as IRM's and the OOD entries')."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mibzoo")
class RestartingAdam(keras.optimizers.Adam):
    """Adam (Kingma & Ba 2015) that zeroes its first and second moment estimates at each step in
    ``restarts`` and counts its bias correction from there, as a new Adam would.

    Why: when a loss's scale jumps at step r (a penalty weight going from 100 to 5 × 10⁶), plain
    Adam's second moment still holds the small gradients from before: in the k-th step after the
    jump its update is about (1 − β1^k) / √(1 − β2^k) times the learning rate, up to 6.5 times
    (k ≈ 10 for β1 = 0.9, β2 = 0.999) and still 3 times after 100 steps. Restarting the moments with
    their bias correction makes the steps after the jump the learning rate's size, as in the first
    steps of training. DomainBed's IRM, VREx and IB-ERM make a new Adam at their penalty's anneal
    step for this reason ("Adam doesn't like the sharp jump in gradient magnitudes").

    The step count ``iterations`` is not reset (schedules read it); only the moments and the bias
    correction restart.

    Args:
        learning_rate: as `keras.optimizers.Adam`'s.
        restarts: (keyword only) the optimizer steps (``iterations`` values, ≥ 1) at whose update the moments
            restart.
        **kwargs: `keras.optimizers.Adam`'s arguments (``amsgrad`` is not supported with restarts).

    Example:

    ```python
    optimizer = RestartingAdam(learning_rate=1e-3, restarts=[200])   # fresh moments at step 200
    ```
    """

    def __init__(self, learning_rate=0.001, *, restarts=(), **kwargs):
        super().__init__(learning_rate, **kwargs)
        restarts = list(restarts)
        if any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in restarts):
            raise ValueError(f"RestartingAdam: restarts={restarts!r}; allowed: a list of integer steps >= 1")
        if restarts and self.amsgrad:
            raise ValueError("RestartingAdam: amsgrad=True with restarts is not supported (its running maximum "
                             "of the second moment would survive the restart)")
        self.restarts = sorted(set(restarts))

    def update_step(self, gradient, variable, learning_rate):
        if not self.restarts:
            return super().update_step(gradient, variable, learning_rate)
        step = ops.cast(self.iterations, "int64")
        last = ops.zeros((), "int64")
        for restart in self.restarts:
            last = ops.where(step >= restart, ops.cast(restart, "int64"), last)
        restarting = ops.logical_and(ops.equal(step, last), last > 0)  # restarts are >= 1

        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        local_step = ops.cast(step - last + 1, variable.dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, variable.dtype), local_step)
        beta_2_power = ops.power(ops.cast(self.beta_2, variable.dtype), local_step)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign(m, ops.where(restarting, ops.zeros_like(m), m))
        self.assign(v, ops.where(restarting, ops.zeros_like(v), v))

        alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        self.assign_sub(variable, ops.divide(ops.multiply(m, alpha), ops.add(ops.sqrt(v), self.epsilon)))

    def get_config(self):
        return {**super().get_config(), "restarts": list(self.restarts)}
