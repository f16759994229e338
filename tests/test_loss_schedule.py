"""`mibzoo.schedules.PiecewiseConstant` and the model's ``loss_schedule`` (IRM's division of its loss
once its penalty is on): the schedule against a NumPy piecewise function, its config form and
errors, and a training step whose update is the schedule's factor times the unscaled one."""
import numpy as np
import pytest
import tensorflow as tf

import keras
import mibzoo
from mibzoo.errors import ConfigError
from mibzoo.schedules import PiecewiseConstant, get, validate_schedule
from tests.model_test_case import TINY_LABEL, TINY_SHARED, TINY_VECTOR, dataset, synthetic_batches

PAIR = {"x": dict(TINY_VECTOR), "y": dict(TINY_LABEL)}


def numpy_piecewise(step, boundaries, values):
    """γ_t written out: the value of the last boundary at or below t (the first value before any)."""
    return values[int(np.searchsorted(boundaries, step, side="right"))]


@pytest.mark.parametrize("run", ["eager", "function"])
@pytest.mark.parametrize("step", [0, 1, 199, 200, 201, 499, 500, 10_000])
def test_piecewise_constant_matches_numpy(run, step):
    boundaries, values = [200, 500], [1.0, 1e-3, 2.5e-9]
    schedule = PiecewiseConstant(boundaries, values)
    call = schedule if run == "eager" else tf.function(lambda t: schedule(t))
    got = float(call(tf.constant(step, tf.int64)))
    assert got == pytest.approx(numpy_piecewise(step, boundaries, values), rel=1e-6)


def test_serialized_form_validates_and_round_trips():
    spec = PiecewiseConstant([200], [1.0, 2e-3]).serialize()
    assert spec == {"class_name": "PiecewiseConstant", "config": {"boundaries": [200], "values": [1.0, 2e-3]}}
    assert validate_schedule(spec, "test") == spec
    assert float(get(spec)(250)) == pytest.approx(2e-3)


@pytest.mark.parametrize("config, field, allowed", [
    ({"boundaries": [], "values": [1.0]}, "config.boundaries", "strictly increasing positive integers"),
    ({"boundaries": [200, 100], "values": [1.0, 0.5, 0.1]}, "config.boundaries", "strictly increasing"),
    ({"boundaries": [0], "values": [1.0, 0.5]}, "config.boundaries", "positive integers"),
    ({"boundaries": [200], "values": [1.0]}, "config.values", "a list of 2 positive numbers"),
    ({"boundaries": [200], "values": [1.0, 0.0]}, "config.values", "positive numbers"),
    ({"boundaries": [200], "values": [1.0, float("nan")]}, "config.values", "positive numbers"),
    ({"boundaries": [200], "value": [1.0, 0.5]}, "config.value", "Did you mean 'values'"),
])
def test_bad_piecewise_configs_are_config_errors_naming_field_and_allowed(config, field, allowed):
    with pytest.raises(ConfigError, match=rf"loss_schedule\.{field}.*{allowed}"):
        validate_schedule({"class_name": "PiecewiseConstant", "config": config}, "test", "loss_schedule")


def test_constructor_refuses_values_that_do_not_fit_the_boundaries():
    with pytest.raises(ValueError, match="2 boundaries need 3 values, got 2"):
        PiecewiseConstant([10, 20], [1.0, 0.5])


def test_loss_schedule_reaches_the_model_config_and_is_absent_unless_given():
    schedule = {"class_name": "PiecewiseConstant", "config": {"boundaries": [5], "values": [1.0, 0.1]}}
    model = mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED, loss_schedule=schedule)
    assert isinstance(model.loss_schedule, PiecewiseConstant)
    assert model.get_config()["loss_schedule"] == schedule
    plain = mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED)
    assert plain.loss_schedule is None and "loss_schedule" not in plain.get_config()  # config digests unchanged
    with pytest.raises(ConfigError, match=r"loss_schedule\.class_name.*Did you mean 'PiecewiseConstant'"):
        mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED,
                    loss_schedule={"class_name": "PiecewiseConstan", "config": {}})


def _two_sgd_updates(loss_schedule):
    """The weights before and after each of two SGD updates on one batch, and the logged losses."""
    keras.utils.set_random_seed(0)
    model = mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED, seed=3, loss_schedule=loss_schedule)
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    arrays = synthetic_batches(PAIR, n=32)
    batch = {name: arrays[name] for name in PAIR}
    weights, losses = [[np.array(w) for w in model.get_weights()]], []
    for _ in range(2):
        losses.append(model.fit(dataset(batch, 32), epochs=1, verbose=0).history["loss"][0])
        weights.append([np.array(w) for w in model.get_weights()])
    return weights, losses


def test_the_update_after_a_boundary_is_the_factor_times_the_unscaled_update():
    """With SGD an update is −lr · c_t · ∇L: before the boundary (c = 1) both models take the same step
    from the same weights and noise; after it the scheduled model's step is c times the other's. The
    logged loss is L itself in both."""
    plain, plain_losses = _two_sgd_updates(None)
    scheduled, scheduled_losses = _two_sgd_updates(PiecewiseConstant([1], [1.0, 0.25]))
    for a, b in zip(plain[1], scheduled[1]):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
    moved = 0
    for p1, p2, s1, s2 in zip(plain[1], plain[2], scheduled[1], scheduled[2]):
        np.testing.assert_allclose(s2 - s1, 0.25 * (p2 - p1), rtol=1e-3, atol=1e-7)
        moved += np.abs(p2 - p1).sum()
    assert moved > 1e-3
    np.testing.assert_allclose(scheduled_losses, plain_losses, rtol=1e-5)


def test_the_structure_phase_is_not_scaled():
    """``loss_schedule`` scales network updates only: a structure update (Algorithm 1's other phase,
    its own optimizer) after the boundary moves ρ exactly as in a model without the schedule."""
    from tests.model_test_case import tiny_overrides

    def after_two_calls(loss_schedule):
        keras.utils.set_random_seed(0)
        model = mibzoo.load("mib_mm", **{**tiny_overrides("mib_mm"), "loss_schedule": loss_schedule,
                                         "phases": [{"name": "dist", "steps": 1}, {"name": "structure", "steps": 1}]})
        model.compile(optimizer=keras.optimizers.SGD(0.05), structure_optimizer=keras.optimizers.SGD(0.5))
        arrays = synthetic_batches(model.modality_specs, n=32)
        before = [np.array(v) for v in model.phase_variables("structure")]
        for call in range(2):  # a network update (factor 1 in both), then a structure update at iteration 1
            model.fit(dataset({k: v[16 * call:16 * (call + 1)] for k, v in arrays.items()}, 16), epochs=1, verbose=0)
        return before, [np.array(v) for v in model.phase_variables("structure")]

    before, plain = after_two_calls(None)
    _, scheduled = after_two_calls({"class_name": "PiecewiseConstant", "config": {"boundaries": [1], "values": [1.0, 1e-3]}})
    assert any(np.abs(p - b).max() > 1e-4 for p, b in zip(plain, before))  # the structure update moved ρ
    for p, s in zip(plain, scheduled):
        np.testing.assert_allclose(s, p, rtol=1e-6, atol=1e-7)
