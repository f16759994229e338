"""Two config options any entry may use, tried on InfoGAN's code (docs/results.md, issue 16):
``term_options.<term>.trains_critic_trunk`` (false: an auxiliary on a critic's trunk does not train the
trunk) and ``term_options.<term>.weight_schedule`` (the term's weight times γ_t while training), with
`mibzoo.schedules.LinearWarmup`'s ``delay_steps``."""
import numpy as np
import pytest
import tensorflow as tf

import keras
import mibzoo
from mibzoo.errors import ConfigError
from mibzoo.objectives import TERMS
from mibzoo.schedules import LinearWarmup, validate_schedule
from tests.model_test_case import synthetic_batches, tiny_overrides


def _infogan(options, **overrides):
    keras.utils.set_random_seed(0)
    model = mibzoo.load("infogan", **tiny_overrides("infogan"), term_options={"infogan": options}, **overrides)
    model.compile(optimizer="adam")
    return model


def _batch(model):
    return model._prepare(synthetic_batches(model.modality_specs, n=16), strict=False)


def numpy_linear_warmup(t, warmup_steps, start=0.0, delay_steps=0):
    return start + (1.0 - start) * min(max((t - delay_steps) / warmup_steps, 0.0), 1.0)


@pytest.mark.parametrize("t", [0, 3, 5, 9, 15, 40])
def test_linear_warmup_with_a_delay_holds_start_then_ramps(t):
    schedule = LinearWarmup(warmup_steps=10, start=0.2, delay_steps=5)
    np.testing.assert_allclose(float(schedule(t)), numpy_linear_warmup(t, 10, 0.2, 5), rtol=1e-6)


def test_linear_warmup_serializes_a_delay_only_when_given():
    assert LinearWarmup(10).get_config() == {"warmup_steps": 10, "start": 0.0}  # as before the option
    assert LinearWarmup(10, delay_steps=3).get_config() == {"warmup_steps": 10, "start": 0.0, "delay_steps": 3}
    spec = {"class_name": "LinearWarmup", "config": {"warmup_steps": 10, "delay_steps": 0}}
    assert validate_schedule(spec, "test") == {"class_name": "LinearWarmup",
                                               "config": {"warmup_steps": 10, "start": 0.0}}
    for bad, message in ((-1, "delay_steps"), (2.5, "delay_steps"), (True, "delay_steps")):
        with pytest.raises(ConfigError, match=message):
            validate_schedule({"class_name": "LinearWarmup", "config": {"warmup_steps": 10, "delay_steps": bad}},
                              "test")
    with pytest.raises(ConfigError, match="Did you mean 'delay_steps'"):
        validate_schedule({"class_name": "LinearWarmup", "config": {"warmup_steps": 10, "delay_step": 1}}, "test")


def test_a_critic_trunk_not_trained_by_the_term_gets_only_the_critic_loss_gradient():
    """trains_critic_trunk false: in phase critic:C2 the trunk's gradient is that of D's loss alone,
    Q's is that of λ L_I (the same as with the trunk trained), and the objective's value is unchanged;
    in the dist phase L_I still reaches the generator through the trunk."""
    fixed = _infogan({"shares_critic": "C2", "trains_critic_trunk": False},
                     hyperparameters={"lambda_info": 2.0, "q_fixed_std": 1.0})
    trained = _infogan({"shares_critic": "C2"}, hyperparameters={"lambda_info": 2.0, "q_fixed_std": 1.0})
    for a, b in zip(fixed.weights, trained.weights):  # the same networks: only the option differs
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    grads = {}
    for name, model in (("fixed", fixed), ("trained", trained)):
        x, present = _batch(model)
        fp = model.forward(x, present, training=True, phase="critic:C2")
        critic, q = model.critics["C2"], model.auxiliaries["infogan"]
        with tf.GradientTape(persistent=True) as tape:
            objective = model.critic_objective(fp, "C2")
            critic_loss = TERMS["C2"].critic_loss(fp)
        grads[name] = {"trunk": tape.gradient(objective, critic.trainable_variables),
                       "critic_only": tape.gradient(critic_loss, critic.trainable_variables),
                       "q": tape.gradient(objective, q.trainable_variables),
                       "value": float(objective), "critic_value": float(critic_loss)}
    for g, c in zip(grads["fixed"]["trunk"], grads["fixed"]["critic_only"]):
        np.testing.assert_allclose(np.asarray(g), np.asarray(c), rtol=1e-6, atol=1e-8)
    differs = [np.abs(np.asarray(g) - np.asarray(c)).max() for g, c in
               zip(grads["trained"]["trunk"], grads["trained"]["critic_only"])]
    assert max(differs) > 1e-6  # by default the term does move the trunk
    for a, b in zip(grads["fixed"]["q"], grads["trained"]["q"]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
        assert np.abs(np.asarray(a)).max() > 0
    np.testing.assert_allclose(grads["fixed"]["value"], grads["trained"]["value"], rtol=1e-6)
    assert grads["fixed"]["value"] != grads["fixed"]["critic_value"]  # λ L_I is still in D's phase loss
    x, present = _batch(fixed)
    fp = fixed.forward(x, present, training=True, phase="dist")
    with tf.GradientTape() as tape:
        info = TERMS["infogan"].fn(fp)
    generator = tape.gradient(info, fixed.decoders["x"].trainable_variables[0])
    assert np.abs(np.asarray(generator)).max() > 0


def test_a_weight_schedule_multiplies_the_term_weight_while_training_only():
    """weight_schedule γ_t (t = the network optimizer's updates): InfoGAN's −λ L_I enters the generator's
    and D's phase losses as γ_t λ (−L_I), with γ_t from the NumPy schedule; at evaluation γ = 1."""
    schedule = {"class_name": "LinearWarmup", "config": {"warmup_steps": 10, "delay_steps": 5}}
    model = _infogan({"shares_critic": "C2", "weight_schedule": schedule},
                     hyperparameters={"lambda_info": 2.0, "q_fixed_std": 1.0})
    assert model.get_config()["term_options"]["infogan"]["weight_schedule"] == {
        "class_name": "LinearWarmup", "config": {"warmup_steps": 10, "start": 0.0, "delay_steps": 5}}
    x, present = _batch(model)
    for t in (0, 8, 30):
        model.optimizer.iterations.assign(t)
        gamma = numpy_linear_warmup(t, 10, 0.0, 5)
        fp = model.forward(x, present, training=True, phase="dist")
        terms, _ = model.compute_terms(fp)
        info = float(TERMS["infogan"].fn(fp))
        np.testing.assert_allclose(float(terms["infogan"]), gamma * 2.0 * info, rtol=1e-5, atol=1e-7)
        fp = model.forward(x, present, training=True, phase="critic:C2")
        expected = float(TERMS["C2"].critic_loss(fp)) + gamma * 2.0 * float(TERMS["infogan"].fn(fp))
        np.testing.assert_allclose(float(model.critic_objective(fp, "C2")), expected, rtol=1e-5, atol=1e-6)
    model.optimizer.iterations.assign(0)
    fp = model.forward(x, present, training=False, seed=3)
    terms, _ = model.compute_terms(fp)
    np.testing.assert_allclose(float(terms["infogan"]), 2.0 * float(TERMS["infogan"].fn(fp)), rtol=1e-5)


def test_the_new_term_options_leave_configs_without_them_unchanged():
    base = mibzoo.describe("infogan")["model"]["term_options"]
    assert base == {"infogan": {"shares_critic": "C2", "q_batch_norm": True}}
    assert _infogan({"shares_critic": "C2"}).get_config()["term_options"] == {"infogan": {"shares_critic": "C2"}}


@pytest.mark.parametrize("options, message", [
    ({"shares_critic": "C2", "trains_critic_trunk": "no"}, "true \\(default\\) or false"),
    ({"trains_critic_trunk": False}, "give term_options.infogan.shares_critic too"),
    ({"shares_critic": "C2", "trains_critic_trunc": False}, "Did you mean 'trains_critic_trunk'"),
    ({"weight_schedule": {"class_name": "LinearWarmpu", "config": {"warmup_steps": 5}}},
     "Did you mean 'LinearWarmup'"),
    ({"weight_schedule": {"class_name": "LinearWarmup", "config": {"warmup_steps": 0}}}, "positive integer"),
    ({"weight_schedule": None}, "constant weight"),
])
def test_the_new_term_options_are_validated(options, message):
    with pytest.raises(ConfigError, match=message):
        mibzoo.load("infogan", **tiny_overrides("infogan"), term_options={"infogan": options})
