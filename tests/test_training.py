"""Algorithm 1: alternating phases, eager and compiled, under MirroredStrategy and bfloat16."""
import numpy as np
import pytest
import tensorflow as tf

import keras
import mibzoo
from tests.model_test_case import dataset, run_model_test, synthetic_batches, tiny_overrides


def snapshot(variables):
    return [np.array(v) for v in variables]


def changed(before, variables):
    return [not np.array_equal(b, np.array(v)) for b, v in zip(before, variables)]


def phases_taken(phases, steps, run_eagerly):
    """Trains tiny mib_mm one batch per `fit` for ``steps`` batches with ``phases``; the model and, per
    batch, which groups of variables moved ("dist": the networks, "structure": ρ, "dist+structure":
    both, in one call on one minibatch)."""
    keras.utils.set_random_seed(0)
    model = mibzoo.load("mib_mm", **{**tiny_overrides("mib_mm"), "phases": phases})
    model.compile(optimizer="adam", run_eagerly=run_eagerly)
    arrays = synthetic_batches(model.modality_specs, n=16 * steps)
    structure_vars, network_vars = model.phase_variables("structure"), model.phase_variables("dist")
    assert len(structure_vars) == 2 and network_vars
    observed = []
    for step in range(steps):
        s0, n0 = snapshot(structure_vars), snapshot(network_vars)
        model.fit(dataset({k: v[16 * step:16 * (step + 1)] for k, v in arrays.items()}, 16), epochs=1, verbose=0)
        s_moved, n_moved = any(changed(s0, structure_vars)), any(changed(n0, network_vars))
        assert s_moved or n_moved, f"step {step}: nothing moved"
        observed.append("+".join(name for name, moved in (("dist", n_moved), ("structure", s_moved)) if moved))
    return model, observed


@pytest.mark.parametrize("run_eagerly", [True, False])
def test_phases_alternate_exactly_as_algorithm_1(run_eagerly):
    """steps_dist = 2, steps_str = 1: networks move only on dist steps, ρ only on structure steps."""
    model, observed = phases_taken([{"name": "dist", "steps": 2}, {"name": "structure", "steps": 1}], 6, run_eagerly)
    assert observed == ["dist", "dist", "structure"] * 2
    assert float(model.structure_masks.structure_steps) == 2.0  # temperature schedule advanced twice
    assert model.structure_optimizer.iterations.numpy() == 2 and model.optimizer.iterations.numpy() == 4


@pytest.mark.parametrize("run_eagerly", [True, False])
def test_a_phase_with_a_start_takes_no_turn_before_it(run_eagerly):
    """``"start": 3`` on the structure phase: ρ does not move in the first 3 steps (network steps);
    from step 3 on the phases alternate as Algorithm 1 (steps 3, 5: structure)."""
    model, observed = phases_taken([{"name": "dist", "steps": 1}, {"name": "structure", "steps": 1, "start": 3}], 7,
                                   run_eagerly)
    assert observed == ["dist"] * 3 + ["structure", "dist", "structure", "dist"]
    assert model.structure_optimizer.iterations.numpy() == 2 and model.optimizer.iterations.numpy() == 5
    # The sequence is a function of the position alone, so a resumed run (position = steps taken) continues it.
    assert [model.phases_at(p) for p in range(7)] == [(0,), (0,), (0,), (1,), (0,), (1,), (0,)]
    assert model._calls_taken() == 7


@pytest.mark.parametrize("run_eagerly", [True, False])
def test_a_phase_on_the_previous_minibatch_takes_no_call_of_its_own(run_eagerly):
    """``"batch": "previous"``: the structure step runs in the network step's call, on its minibatch, so
    every minibatch is a network update; with ``"start": 2`` it joins from the third call on."""
    model, observed = phases_taken([{"name": "dist", "steps": 2},
                                    {"name": "structure", "steps": 1, "batch": "previous", "start": 2}], 6, run_eagerly)
    assert observed == ["dist", "dist", "dist", "dist+structure", "dist", "dist+structure"]
    assert model.optimizer.iterations.numpy() == 6 and model.structure_optimizer.iterations.numpy() == 2
    assert float(model.structure_masks.structure_steps) == 2.0
    assert [model.phases_at(p) for p in range(6)] == [(0,), (0,), (0,), (0, 1), (0,), (0, 1)]
    assert model._calls_taken() == 6  # a resumed run continues at call 6, not 8


@pytest.mark.parametrize("run_eagerly", [True, False])
def test_a_shared_call_is_a_network_step_then_a_structure_step_on_the_same_minibatch(run_eagerly):
    """One call of (dist, structure) on a minibatch leaves the weights where a network step and then a
    structure step leave them when each is given that minibatch in a call of its own."""
    def trained(phases, repeats):
        keras.utils.set_random_seed(0)
        model = mibzoo.load("mib_mm", **{**tiny_overrides("mib_mm"), "phases": phases})
        model.compile(optimizer="adam", run_eagerly=run_eagerly)
        batch = synthetic_batches(model.modality_specs, n=16)
        for _ in range(repeats):
            model.fit(dataset(batch, 16), epochs=1, verbose=0)
        return model

    shared = trained([{"name": "dist", "steps": 1}, {"name": "structure", "steps": 1, "batch": "previous"}], 1)
    separate = trained([{"name": "dist", "steps": 1}, {"name": "structure", "steps": 1}], 2)
    assert separate.optimizer.iterations.numpy() == shared.optimizer.iterations.numpy() == 1
    assert separate.structure_optimizer.iterations.numpy() == shared.structure_optimizer.iterations.numpy() == 1
    for a, b in zip(shared.weights, separate.weights):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-6, err_msg=a.path)


def test_mib_mm_waits_one_epoch_before_learning_its_structure():
    """The zoo default: 469 network steps (one MNIST epoch at batch 128) before the first structure step,
    then a structure step on the minibatch of every fifth network step (docs/results.md section 22): every
    minibatch is a network update, as for the entries without structure learning, and there are as many
    structure updates as at four network steps per structure step on minibatches of their own (section 18)."""
    model = mibzoo.load("mib_mm")
    assert model.phases == [{"name": "dist", "steps": 5},
                            {"name": "structure", "steps": 1, "start": 469, "batch": "previous"}]
    calls = [model.phases_at(p) for p in range(2345)]  # 5 MNIST epochs at batch 128
    assert all(call[0] == 0 for call in calls)  # 2,345 network updates
    assert calls[:469] == [(0,)] * 469 and (0, 1) in calls[469:474]
    assert sum(call == (0, 1) for call in calls) == 376
    assert all(calls[p:p + 5].count((0, 1)) == 1 for p in range(469, 2340))  # one structure step in any five


def test_fixed_structure_entries_never_learn_structure():
    model = mibzoo.load("wyner_vae", **tiny_overrides("wyner_vae"))
    assert model.phase_variables("structure") == []
    assert [p["name"] for p in model.phases] == ["dist"]


def test_mirrored_strategy_over_two_logical_cpus():
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        pytest.skip("two logical CPU devices could not be configured (TensorFlow initialized earlier)")
    strategy = tf.distribute.MirroredStrategy([d.name for d in devices[:2]])
    with strategy.scope():
        # Without the entry's KL warm-up: the loss of a rising KL weight is not one objective over time.
        model = mibzoo.load("mib_mm", **{**tiny_overrides("mib_mm"), "kl_schedule": None})
        model.compile(optimizer="adam")
    arrays = synthetic_batches(model.modality_specs, n=128)
    rho_before = snapshot(model.phase_variables("structure"))
    history = model.fit(dataset(arrays, 32), epochs=2, verbose=0)
    assert model.distribute_strategy.num_replicas_in_sync == 2
    assert all(np.all(np.isfinite(v)) for v in history.history.values())
    assert any(changed(rho_before, model.phase_variables("structure")))
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_trains_under_mixed_bfloat16_without_nan():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model, arrays = run_model_test("mib_mm", steps=6)
        first = next(iter(model.modality_specs))  # the binary vector of tiny_overrides
        assert model.encoders[first].net.layers[0].compute_dtype == "bfloat16"
        enc = model.encode({first: arrays[first][:4]})
        assert enc["loc"].dtype == "float32" and np.all(np.isfinite(np.asarray(enc["loc"])))
    finally:
        keras.config.set_dtype_policy(previous)


def test_structure_optimizer_defaults_and_can_be_set():
    model = mibzoo.load("mib_mm", **tiny_overrides("mib_mm"))
    model.compile(optimizer="adam")
    assert isinstance(model.structure_optimizer, keras.optimizers.Adam)
    # The zoo config's structure_learning.learning_rate (3e-2 for mib_mm), 1e-2 when a config omits it.
    assert np.isclose(float(model.structure_optimizer.learning_rate), 3e-2)
    plain = mibzoo.load("mib_mm", **tiny_overrides("mib_mm"), structure_learning={"sparsity": 1.0})
    plain.compile(optimizer="adam")
    assert np.isclose(float(plain.structure_optimizer.learning_rate), 1e-2)
    model.compile(optimizer="adam", structure_optimizer=keras.optimizers.SGD(0.1))
    assert isinstance(model.structure_optimizer, keras.optimizers.SGD)


def test_keras_file_restores_both_optimizers_for_resuming(tmp_path):
    # mib_mm takes four network steps per structure step: 6 steps train both optimizers.
    model, arrays = run_model_test("mib_mm", steps=6)
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    for a, b in ((model.optimizer, restored.optimizer), (model.structure_optimizer, restored.structure_optimizer)):
        assert int(a.iterations) == int(b.iterations) > 0
        for va, vb in zip(a.variables, b.variables):
            np.testing.assert_array_equal(np.asarray(va), np.asarray(vb))
