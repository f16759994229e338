"""`mibzoo.schedules.GeometricWarmup`: the log-linear ramp, its config form and its errors."""
import numpy as np
import pytest
import tensorflow as tf

import mibzoo
from mibzoo.errors import ConfigError
from mibzoo.schedules import GeometricWarmup, LinearWarmup, get, validate_schedule


def numpy_geometric(step, warmup_steps, start, delay_steps):
    """γ_t written out independently: log γ moves linearly from log start to 0 over the ramp."""
    progress = min(max((step - delay_steps) / warmup_steps, 0.0), 1.0)
    return float(np.exp(np.log(start) + progress * (0.0 - np.log(start))))


@pytest.mark.parametrize("run", ["eager", "function"])
@pytest.mark.parametrize("step", [0, 5, 6, 30, 55, 105, 106, 500])
def test_geometric_warmup_matches_the_log_linear_closed_form(run, step):
    schedule = GeometricWarmup(warmup_steps=100, start=1e-4, delay_steps=5)
    call = schedule if run == "eager" else tf.function(lambda t: schedule(t))
    got = float(call(tf.constant(step, tf.int64)))
    assert got == pytest.approx(numpy_geometric(step, 100, 1e-4, 5), rel=1e-5)


def test_every_decade_of_the_ramp_takes_the_same_number_of_updates():
    schedule = GeometricWarmup(warmup_steps=100, start=1e-4)
    # start 1e-4 spans four decades over 100 updates: one decade per 25 updates.
    for step, want in [(0, 1e-4), (25, 1e-3), (50, 1e-2), (75, 1e-1), (100, 1.0)]:
        assert float(schedule(step)) == pytest.approx(want, rel=1e-5)
    # A linear ramp from the same start is at 25 % of the weight after a quarter of its updates.
    assert float(LinearWarmup(warmup_steps=100, start=1e-4)(25)) == pytest.approx(0.25, rel=1e-3)


def test_start_one_is_the_constant_weight():
    schedule = GeometricWarmup(warmup_steps=10, start=1.0, delay_steps=3)
    assert [float(schedule(t)) for t in (0, 3, 8, 20)] == [1.0, 1.0, 1.0, 1.0]


def test_serialized_form_validates_and_round_trips():
    spec = GeometricWarmup(200, start=2e-5, delay_steps=200).serialize()
    assert spec == {"class_name": "GeometricWarmup",
                    "config": {"warmup_steps": 200, "start": 2e-5, "delay_steps": 200}}
    assert validate_schedule(spec, "test") == spec
    restored = get(validate_schedule(spec, "test"))
    assert isinstance(restored, GeometricWarmup)
    assert float(restored(300)) == pytest.approx(numpy_geometric(300, 200, 2e-5, 200), rel=1e-5)


def test_a_term_weight_schedule_reaches_the_model_and_its_keras_config():
    schedule = {"class_name": "GeometricWarmup", "config": {"warmup_steps": 20, "start": 1e-3, "delay_steps": 5}}
    model = mibzoo.load("ood_cmnist", term_options={"environment_recalibration": {"weight_schedule": schedule}})
    assert isinstance(model.term_schedules["environment_recalibration"], GeometricWarmup)
    assert model.get_config()["term_options"]["environment_recalibration"]["weight_schedule"] == schedule


@pytest.mark.parametrize("config, field, allowed", [
    ({"warmup_steps": 10, "start": 0.0}, "config.start", "(0, 1]"),
    ({"warmup_steps": 10}, "config.start", "(0, 1]"),
    ({"warmup_steps": 10, "start": 2.0}, "config.start", "(0, 1]"),
    ({"warmup_steps": 0, "start": 0.1}, "config.warmup_steps", "positive integer"),
    ({"warmup_steps": 10, "start": 0.1, "delay": 3}, "config.delay", "delay_steps"),
])
def test_bad_geometric_configs_are_config_errors_naming_field_and_allowed(config, field, allowed):
    with pytest.raises(ConfigError) as err:
        validate_schedule({"class_name": "GeometricWarmup", "config": config}, "test", "weight_schedule")
    assert f"weight_schedule.{field}" in str(err.value) and allowed in str(err.value)


def test_constructor_refuses_a_start_whose_log_is_not_finite():
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        GeometricWarmup(warmup_steps=10, start=0.0)


def test_a_misspelt_class_name_suggests_the_geometric_schedule():
    with pytest.raises(ConfigError, match="Did you mean 'GeometricWarmup'"):
        validate_schedule({"class_name": "GeometricWarmUp", "config": {"warmup_steps": 10, "start": 0.1}}, "test")
