"""Training runs survive kills, corrupt files and bad settings (`mibzoo.experiment`, `mibzoo.checkpoints`).

Kills are simulated by an exception raised between the steps of a checkpoint (the steps are
atomic file operations, so an exception there leaves the files exactly as a SIGKILL would);
tests/test_cli_chain.py kills a real `mibzoo train` process.
"""
import csv
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from mibzoo import checkpoints as checkpoint_lib
from mibzoo import experiment
from mibzoo.checkpoints import CorruptFileError, RunCheckpoints
from mibzoo.model import MIBModel

from evaluation_testdata import IMAGE, LABEL, TINY_OPTIONS, TINY_SHARED, label_arrays

SETTINGS = dict(batch_size=32, overrides={"shared": TINY_SHARED}, modality_options=TINY_OPTIONS, image_examples=0)


@pytest.fixture(scope="module")
def data():
    return {"train": label_arrays(64, seed=1), "test": label_arrays(32, seed=2)}


def train(data, run, epochs, entry="wyner_vae", **extra):
    return experiment.train_run(entry, data, epochs, run, modalities={"image": IMAGE, "label": LABEL},
                                **{**SETTINGS, **extra})


def history_epochs(run):
    with open(run / "history.csv", encoding="utf-8") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


class Killed(Exception):
    """Stands for a SIGKILL between two steps of a checkpoint."""


def state(model):
    """Every weight and every optimizer variable (network, structure and critic optimizers)."""
    optimizers = [model.optimizer, model.structure_optimizer] + list(model.critic_optimizers.values())
    return ([np.array(w) for w in model.get_weights()],
            [np.array(v) for opt in optimizers if opt is not None for v in opt.variables])


@pytest.mark.parametrize("structure_batch, updates", [
    ("own", (1, 1)),       # one epoch is 2 batches: 1 dist step, then 1 structure step, each on a batch
    ("previous", (2, 2)),  # each batch: a dist step, then a structure step on the same batch
])
def test_a_resumed_run_starts_from_the_checkpoints_weights_and_optimizer_state(data, tmp_path, monkeypatch,
                                                                               structure_batch, updates):
    run = tmp_path / "run"
    phases = [{"name": "dist", "steps": 1}, {"name": "structure", "steps": 1, "batch": structure_batch}]
    mib_mm = {"entry": "mib_mm", "overrides": {"shared": TINY_SHARED, "private": 2,  # structure from the first step
                                               "phases": phases}}
    train(data, run, 1, **mib_mm)
    weights, optimizer = state(experiment.load_model(run / "checkpoints" / "epoch_0001.keras"))
    at_fit = {}
    original_fit = MIBModel.fit

    def recording_fit(self, *args, **kwargs):
        at_fit.update(state=state(self), initial_epoch=kwargs.get("initial_epoch"),
                      iterations=int(self.optimizer.iterations), structure=int(self.structure_optimizer.iterations))
        self.make_train_function()
        at_fit["schedule_position"] = self._schedule_position
        return original_fit(self, *args, **kwargs)

    monkeypatch.setattr(MIBModel, "fit", recording_fit)
    train(data, run, 2, **mib_mm)
    resumed_weights, resumed_optimizer = at_fit["state"]
    assert at_fit["initial_epoch"] == 1
    assert len(resumed_weights) == len(weights) and len(resumed_optimizer) == len(optimizer)
    for a, b in zip(weights + optimizer, resumed_weights + resumed_optimizer):
        np.testing.assert_array_equal(a, b)
    assert (at_fit["iterations"], at_fit["structure"]) == updates
    assert at_fit["schedule_position"] == 2  # the alternation continues where the killed run stopped (2 calls)
    assert history_epochs(run) == [0, 1]


@pytest.mark.parametrize("stage, resumes_at", [
    ("_write_manifest", 1),   # checkpoint file renamed, manifest not written: the file is not trusted
    ("_write_history", 2),    # manifest written, history.csv not: rewritten from the manifest
    ("_remove_unlisted", 2),  # everything written, old files not pruned yet
])
def test_a_kill_at_any_step_of_a_checkpoint_resumes_exactly_once(data, tmp_path, monkeypatch, stage, resumes_at):
    run = tmp_path / "run"
    original = getattr(RunCheckpoints, stage)

    def dies_in_epoch_2(self, arg):
        epochs = arg["history"] if isinstance(arg, dict) else arg
        if stage == "_remove_unlisted":
            epochs = [{"epoch": c["epoch"] - 1} for c in arg]
        if any(row["epoch"] == 1 for row in epochs):
            raise Killed(stage)
        return original(self, arg)

    monkeypatch.setattr(RunCheckpoints, stage, dies_in_epoch_2)
    with pytest.raises(Killed):
        train(data, run, 2, keep_checkpoints=1)
    monkeypatch.setattr(RunCheckpoints, stage, original)
    starts = []
    original_fit = MIBModel.fit
    monkeypatch.setattr(MIBModel, "fit", lambda self, *a, **k: starts.append(k["initial_epoch"]) or
                        original_fit(self, *a, **k))
    record = train(data, run, 2, keep_checkpoints=1)
    assert starts == ([resumes_at] if resumes_at < 2 else [])
    assert history_epochs(run) == [0, 1]
    assert [row["epoch"] for row in RunCheckpoints(run).history()] == [0, 1]
    assert record["epochs_completed"] == 2 and record["finished"]
    assert sorted(p.name for p in (run / "checkpoints").glob("epoch_*.keras")) == ["epoch_0002.keras"]


def test_a_corrupt_newest_checkpoint_is_skipped_for_the_newest_intact_one(data, tmp_path):
    run = tmp_path / "run"
    train(data, run, 3)
    newest = run / "checkpoints" / "epoch_0003.keras"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated, as by a full disk or a bad copy
    with pytest.warns(RuntimeWarning, match=r"checkpoint .*epoch_0003.keras is corrupt.*older checkpoint"):
        train(data, run, 4)
    assert history_epochs(run) == [0, 1, 2, 3]
    assert json.loads((run / "run.json").read_text())["epochs_completed"] == 4


def test_a_corrupt_final_model_is_reported_and_restored_from_the_checkpoint(data, tmp_path):
    run = tmp_path / "run"
    train(data, run, 2)
    final = run / "model.keras"
    good = experiment.load_run_model(run).get_weights()
    final.write_bytes(final.read_bytes()[:-500])
    with pytest.raises(CorruptFileError, match=r"model file .*model.keras is corrupt.*mibzoo train wyner_vae .*"
                                               r"--epochs 2 --out"):
        experiment.load_run_model(run)
    with pytest.warns(RuntimeWarning, match=r"model.keras is corrupt.*restoring it"):
        train(data, run, 2)
    for a, b in zip(good, experiment.load_run_model(run).get_weights()):
        np.testing.assert_array_equal(a, b)
    assert history_epochs(run) == [0, 1]


REJECTED = [
    ({"batch_size": 0}, r"batch_size: got 0, expected an integer >= 1"),
    ({"limit": -5}, r"limit: got -5, expected an integer >= 1"),
    ({"limit": 0}, r"limit: got 0"),
    ({"learning_rate": float("nan")}, r"learning_rate: got nan, expected a finite number > 0"),
    ({"learning_rate": -1.0}, r"learning_rate: got -1.0"),
    ({"seed": -2}, r"seed: got -2"),
    ({"overrides": {"beta": float("nan")}}, r"field 'hyperparameters.beta': got nan, expected a finite number"),
    ({"overrides": {"privat": 2}}, r"field 'privat'.*an override among"),
]


def test_a_rejected_setting_writes_nothing(data, tmp_path):
    run = tmp_path / "run"
    for setting, message in REJECTED:
        with pytest.raises(ValueError, match=message):
            train(data, run, 1, **setting)
        assert not run.exists() or not any(run.iterdir()), setting
    train(data, run, 1)  # the corrected command works: nothing of the rejected ones was kept
    assert history_epochs(run) == [0]


def test_zero_epochs_and_an_empty_dataset_are_refused(data, tmp_path):
    with pytest.raises(ValueError, match=r"epochs: got 0"):
        train(data, tmp_path / "a", 0)
    empty = {"train": {k: v[:0] for k, v in data["train"].items()}, "test": data["test"]}
    with pytest.raises(ValueError, match=r"training split has no examples"):
        train(empty, tmp_path / "b", 1)
    assert not (tmp_path / "b" / "run.json").exists()


def test_resuming_with_other_settings_is_refused(data, tmp_path):
    run = tmp_path / "run"
    train(data, run, 1)
    with pytest.raises(ValueError, match=r"started with batch_size 32 \(given 64\).*pass the same values or none"):
        train(data, run, 2, batch_size=64)
    record = experiment.train_run(None, data, 2, run)  # nothing given: the recorded settings
    assert record["batch_size"] == 32 and history_epochs(run) == [0, 1]


def test_a_diverging_run_stops_with_an_error_and_keeps_its_finite_checkpoints(data, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(data, run, 1)
    from mibzoo import callbacks

    original = callbacks.StopOnNonFiniteLoss.on_epoch_end
    monkeypatch.setattr(callbacks.StopOnNonFiniteLoss, "on_epoch_end",
                        lambda self, epoch, logs=None: original(self, epoch, {**logs, "loss": float("nan")}))
    with pytest.raises(callbacks.NonFiniteLossError, match=r"training diverged in epoch 2: loss = nan"):
        train(data, run, 2)
    assert history_epochs(run) == [0]
    assert [c["epoch"] for c in RunCheckpoints(run).manifest()["checkpoints"]] == [1]


def test_leftovers_of_killed_writers_are_removed(data, tmp_path):
    run = tmp_path / "run"
    train(data, run, 1)
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    leftovers = [run / f".model.keras.pid{dead}.abcdef.keras", run / "checkpoints" / f".epoch_0002.keras.pid{dead}.x1y2z3.keras"]
    live = run / f".run.json.pid{os.getpid()}.qwerty.part"  # a live writer's: kept
    for path in leftovers + [live]:
        path.write_bytes(b"half a file")
    train(data, run, 2)
    assert not any(path.exists() for path in leftovers) and live.exists()


def test_keras_loads_a_saved_zoo_model_in_a_fresh_process_after_import_mibzoo(data, tmp_path):
    run = tmp_path / "run"
    train(data, run, 1)
    expected = experiment.load_run_model(run).encode({"image": data["test"]["image"][:4]})["loc"]
    np.save(tmp_path / "expected.npy", np.asarray(expected))
    np.save(tmp_path / "images.npy", data["test"]["image"][:4])
    # mibzoo.registry imports keras part-way through config.py: registration must wait for it.
    for imports in ("import mibzoo, keras", "import keras, mibzoo", "import mibzoo.registry, keras"):
        code = (f"{imports}; import numpy as np\n"
                f"m = keras.saving.load_model({str(run / 'model.keras')!r})\n"
                f"loc = m.encode({{'image': np.load({str(tmp_path / 'images.npy')!r})}})['loc']\n"
                f"np.testing.assert_allclose(np.asarray(loc), np.load({str(tmp_path / 'expected.npy')!r}), rtol=1e-5)\n"
                "print(type(m).__name__)")
        done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", code], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        assert done.returncode == 0 and done.stdout.strip() == "MIBModel", (imports, done.stderr[-2000:])


def test_history_csv_matches_the_manifest_and_keras_names(data, tmp_path):
    run = tmp_path / "run"
    train(data, run, 2)
    rows = RunCheckpoints(run).history()
    assert checkpoint_lib.history_csv(rows) == (run / "history.csv").read_text()
    assert {"loss", "C1", "cross", "private"} <= set(rows[0]) and all(np.isfinite(r["loss"]) for r in rows)
    assert keras.saving.get_registered_object("mibzoo>MIBModel") is MIBModel


def test_an_epoch_is_one_pass_over_the_training_split_of_a_repeated_dataset(data, tmp_path):
    # 64 examples at batch 24: 3 batches per pass (the last one partial); Keras keeps one iterator
    # over the repeated dataset, so epochs must stay aligned with passes by steps_per_epoch.
    run = tmp_path / "run"
    train(data, run, 2, batch_size=24)
    model = experiment.load_run_model(run)
    assert int(model.optimizer.iterations.numpy()) == 2 * 3
    assert history_epochs(run) == [0, 1]


@pytest.mark.parametrize("steps, wanted, want", [(469, 10, 7), (200, 10, 10), (3, 2, 1), (12, 20, 12), (None, 8, 8)])
def test_steps_per_execution_is_cut_to_a_divisor_of_the_steps_of_a_pass(steps, wanted, want):
    from mibzoo.experiment_data import aligned_steps_per_execution

    assert aligned_steps_per_execution(steps, wanted) == want


@pytest.mark.slow  # a whole run (43 s under load); the divisor itself is tested above
def test_a_run_with_steps_per_execution_keeps_epochs_aligned_with_passes(data, tmp_path):
    # 64 examples at batch 16: 4 steps per pass; 3 per call would drift, so the run takes 2.
    run = tmp_path / "run"
    record = train(data, run, 2, batch_size=16, overrides={"shared": TINY_SHARED, "steps_per_execution": 3})
    assert record["steps_per_execution"] == 2
    assert int(experiment.load_run_model(run).optimizer.iterations.numpy()) == 2 * 4


def test_a_new_run_without_a_batch_size_takes_the_entrys(data, tmp_path):
    # The config's batch_size (here an override; infogan's zoo config sets 64) is a new run's default:
    # 64 examples at 16 are 4 steps per epoch; a resumed run keeps its own. (A given batch size wins:
    # every other test here gives 32 to the wyner_vae entry, whose config sets none.)
    overrides = {"shared": TINY_SHARED, "batch_size": 16}
    record = train(data, tmp_path / "a", 1, batch_size=None, overrides=overrides)
    assert record["batch_size"] == 16
    assert int(experiment.load_run_model(tmp_path / "a").optimizer.iterations.numpy()) == 4
    assert experiment.train_run(None, data, 1, tmp_path / "a")["batch_size"] == 16
    with pytest.raises(ValueError, match="batch_size"):
        train(data, tmp_path / "c", 1, batch_size=None, overrides={"shared": TINY_SHARED, "batch_size": 0})
    assert not (tmp_path / "c").exists()
