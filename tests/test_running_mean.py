"""`RunningMean`: the bias-corrected exponential average against a NumPy loop, groups left out of
an update, the limits ρ = 0 (the last value) and a constant input (the constant from the first
update on), the gradient of the returned mean along the update's values, eagerly and under
``tf.function``."""
import numpy as np
import pytest
import tensorflow as tf

from mibzoo.running_mean import RunningMean


def _np_running_mean(values, seen, momentum):
    """Per group: Σ_s (1 − ρ) ρ^(t − s) v_s / (1 − ρ^t) over the updates s that saw the group."""
    groups, size = values.shape[1:]
    mean, known = np.zeros((groups, size)), np.zeros(groups)
    for g in range(groups):
        kept = [v[g] for v, s in zip(values, seen) if s[g]]
        t = len(kept)
        if t:
            weights = np.array([(1 - momentum) * momentum ** (t - 1 - s) for s in range(t)])
            mean[g] = (weights[:, None] * np.array(kept)).sum(0) / (1 - momentum ** t)
            known[g] = 1.0
    return mean, known


@pytest.mark.parametrize("eager", [True, False], ids=["eager", "tf_function"])
@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
def test_matches_numpy_exponential_average(eager, momentum):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(6, 3, 2)).astype(np.float32)
    seen = (rng.random((6, 3)) > 0.3).astype(np.float32)
    seen[:, 2] = 0.0  # a group never seen: mean 0, not known
    running = RunningMean(3, 2, momentum)
    running.build()
    update = running.update if eager else tf.function(running.update)
    for t, (v, s) in enumerate(zip(values, seen)):
        returned = update(tf.constant(v), tf.constant(s))
        want_mean, want_known = _np_running_mean(values[:t + 1], seen[:t + 1], momentum)
        for mean, known in (returned, running.value()):
            np.testing.assert_allclose(mean, want_mean, rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(known, want_known)
    if momentum == 0.0:  # the limit: the last value each group saw
        last = [values[max(i for i in range(6) if seen[i, g])][g] for g in range(2)]
        np.testing.assert_allclose(mean[:2], last, rtol=1e-6)


def test_the_returned_mean_is_differentiable_in_the_current_values_only():
    """After t updates of a group, d mean / d v_t = (1 − ρ) / (1 − ρ^t) (the past is a constant); a
    group not seen in the update gets no gradient."""
    running = RunningMean(2, 1, 0.8)
    running.build()
    running.update(tf.constant([[1.0], [3.0]]), tf.constant([1.0, 1.0]))
    values = tf.Variable([[2.0], [5.0]])
    with tf.GradientTape() as tape:
        mean, _ = running.update(values, tf.constant([1.0, 0.0]))
        total = tf.reduce_sum(mean)
    np.testing.assert_allclose(tape.gradient(total, values), [[0.2 / (1 - 0.8 ** 2)], [0.0]], rtol=1e-6)


def test_constant_input_is_its_own_mean_from_the_first_update():
    running = RunningMean(2, 1, 0.99)
    running.build()
    for _ in range(3):
        running.update(tf.constant([[2.5], [-1.0]]), tf.constant([1.0, 1.0]))
        np.testing.assert_allclose(running.value()[0], [[2.5], [-1.0]], rtol=1e-5)


def test_variables_are_not_trainable_and_momentum_is_checked():
    running = RunningMean(2, 3, 0.9)
    running.build()
    assert not running.trainable_weights and len(running.non_trainable_weights) == 2
    assert RunningMean.from_config(running.get_config()).momentum == 0.9
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match=r"momentum=.*\[0, 1\)"):
            RunningMean(2, 3, bad)
