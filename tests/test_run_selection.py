"""A run that keeps its most invariant epoch (`mibzoo train --restore-most-invariant`): the checkpoint
of the epoch with the smallest reading is kept however old (`RunCheckpoints(select=...)`), survives a
resume and a corrupt file, and is what the run's final model holds."""
import json
import subprocess
import sys

import keras
import numpy as np
import pytest

import mibzoo.data
from mibzoo import experiment
from mibzoo.checkpoints import RunCheckpoints
from mibzoo.experiment_data import hide_all_labels, save_npz
from mibzoo.metrics.invariance import recalibration_gain

# ----- the checkpoints -------------------------------------------------------------------------


def _tiny_model(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])


def _save_epochs(checkpoints, readings, first=1):
    """Saves one checkpoint per reading from epoch ``first`` on (None: the epoch is not read); returns
    each epoch's weights."""
    weights = {}
    for epoch, value in enumerate(readings, start=first):
        model = _tiny_model(epoch)
        weights[epoch] = model.get_weights()
        checkpoints.save(model, epoch, {"loss": 1.0 / epoch, **({} if value is None else {"gain": value})})
    return weights


def _files(run):
    return sorted(p.name for p in (run / "checkpoints").glob("epoch_*.keras"))


def test_the_checkpoint_of_the_smallest_reading_is_kept_beside_the_newest(tmp_path):
    checkpoints = RunCheckpoints(tmp_path, keep=2, select="gain")
    weights = _save_epochs(checkpoints, [None, 0.5, 0.2, 0.4, 0.2, 0.6])
    # epoch 3 holds the smallest (epoch 5 ties it: the earlier is kept, as Keras' EarlyStopping)
    assert _files(tmp_path) == ["epoch_0003.keras", "epoch_0005.keras", "epoch_0006.keras"]
    chosen = checkpoints.selected()
    assert (chosen["epoch"], chosen["value"], chosen["monitor"]) == (3, 0.2, "gain")
    manifest = json.loads((tmp_path / "checkpoints" / "manifest.json").read_text())
    assert manifest["selected"]["epoch"] == 3
    restored = keras.models.load_model(chosen["path"])
    for got, want in zip(restored.get_weights(), weights[3]):
        np.testing.assert_array_equal(got, want)
    # a better reading replaces it, and the old file goes
    _save_epochs(checkpoints, [0.1], first=7)
    assert _files(tmp_path) == ["epoch_0006.keras", "epoch_0007.keras"]
    assert checkpoints.selected()["epoch"] == 7


def test_without_select_only_the_newest_are_kept(tmp_path):
    checkpoints = RunCheckpoints(tmp_path, keep=2)
    _save_epochs(checkpoints, [0.1, 0.5, 0.6])
    assert _files(tmp_path) == ["epoch_0002.keras", "epoch_0003.keras"]
    assert checkpoints.selected() is None
    assert "selected" not in json.loads((tmp_path / "checkpoints" / "manifest.json").read_text())


def test_a_resume_keeps_the_selection_and_a_corrupt_selected_file_falls_back_to_the_next_kept(tmp_path):
    checkpoints = RunCheckpoints(tmp_path, keep=2, select="gain")
    _save_epochs(checkpoints, [0.3, 0.1, 0.4, 0.2, 0.5])
    assert checkpoints.resume_point()[0] == 5 and checkpoints.selected()["epoch"] == 2
    (tmp_path / "checkpoints" / "epoch_0005.keras").write_bytes(b"truncated")
    with pytest.warns(RuntimeWarning, match="epoch_0005.keras is corrupt"):
        assert checkpoints.resume_point()[0] == 4
    assert checkpoints.selected()["epoch"] == 2  # the rewind drops epoch 5's row, not the selection
    (tmp_path / "checkpoints" / "epoch_0002.keras").write_bytes(b"truncated")
    with pytest.warns(RuntimeWarning, match="selects among the other kept epochs"):
        assert checkpoints.resume_point()[0] == 4
    # epochs 1 and 3 were deleted when newer ones came: of the kept ones, epoch 4 reads smallest
    assert checkpoints.selected()["epoch"] == 4 and _files(tmp_path) == ["epoch_0004.keras"]


def test_select_must_be_a_logs_key(tmp_path):
    with pytest.raises(ValueError, match="select: got 3, expected a logs key"):
        RunCheckpoints(tmp_path, select=3)


# ----- the run ---------------------------------------------------------------------------------

MODALITIES = mibzoo.data.info("colored_mnist").modalities
# Eq. 18's entry, small: what is selected does not depend on how big the networks are.
TINY = {"shared": [{"name": "z", "size": 3}], "private": {"image": 2},
        "networks": {"image": {"network": "mlp", "hidden": 8, "layers": 1}, "categorical": {"hidden": 8, "layers": 1}}}


def _split(n, seed):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n).astype("int32")
    env = (np.arange(n) % 2).astype("int32")
    colour = np.where(rng.random(n) < np.where(env == 0, 0.9, 0.8), label, 1 - label)
    image = (rng.random((n, 14, 14, 2)) < 0.2).astype("float32")
    image[np.arange(n), :, :, colour] = np.maximum(image[np.arange(n), :, :, colour], rng.random((n, 14, 14)) < 0.5)
    return {"image": image, "label": label, "env": env}


@pytest.fixture(scope="module")
def data():
    return {"train": _split(200, 1), "test": _split(40, 2)}


def _train(data, run, epochs, **extra):
    settings = dict(batch_size=50, overrides=TINY, image_examples=0, learning_rate=1e-2,
                    hidden_labels={"label": 0.5}, restore_most_invariant=experiment.restore_most_invariant(2))
    return experiment.train_run("ood_cmnist", data, epochs, run, modalities=MODALITIES, **{**settings, **extra})


def _reading_of(model, train, seed=0):
    """The recalibration gain of ``model``'s p(label | z), one draw of z seeded as the run's, on the
    labelled training images (the run hides half of the labels with its seed)."""
    _, present = hide_all_labels(train, {"label": 0.5}, seed)
    keep = present["label"].reshape(-1) > 0
    probs = np.asarray(model.generate({"image": train["image"][keep]}, "label", num_samples=1, seed=seed,
                                      mode="mean"))[0]
    return recalibration_gain(np.log(np.clip(probs, 1e-7, 1.0)), train["label"][keep], train["env"][keep])


def _check_selected(run, data, epochs):
    record = json.loads((run / "run.json").read_text())
    rows = RunCheckpoints(run).history()
    assert [row["epoch"] for row in rows] == list(range(epochs))
    assert "invariance_gain" not in rows[0]  # read from epoch 2 on
    readings = {row["epoch"] + 1: row["invariance_gain"] for row in rows[1:]}
    assert record["selected_epoch"] == min(readings, key=readings.get)
    final = experiment.load_run_model(run)
    # the final model reads what its epoch read: it holds that epoch's weights
    np.testing.assert_allclose(_reading_of(final, data["train"]), readings[record["selected_epoch"]], rtol=1e-5)
    return record, readings


def test_the_run_ends_with_the_weights_of_its_most_invariant_epoch(data, tmp_path):
    run = tmp_path / "run"
    _train(data, run, 4)
    record, readings = _check_selected(run, data, 4)
    kept = RunCheckpoints(run, select="invariance_gain").selected()
    assert kept["epoch"] == record["selected_epoch"]
    final = experiment.load_run_model(run)
    for got, want in zip(final.get_weights(), keras.models.load_model(kept["path"]).get_weights()):
        np.testing.assert_array_equal(got, want)
    # the readings differ between epochs, so the choice is not trivial
    assert len(set(readings.values())) == 3


def test_a_resumed_run_selects_among_all_its_epochs(data, tmp_path):
    run = tmp_path / "run"
    assert _train(data, run, 2)["selected_epoch"] == 2  # the only epoch read
    _train(data, run, 4)
    record, readings = _check_selected(run, data, 4)
    assert sorted(readings) == [2, 3, 4]


def test_bad_selection_settings_are_refused_before_anything_is_written(data, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(ValueError, match="from_epoch 5, expected an epoch from 1 to the run's 4 epochs"):
        _train(data, run, 4, restore_most_invariant=experiment.restore_most_invariant(5))
    with pytest.raises(ValueError, match=r"environment 'domain' is not a modality of 'arrays' \(\['env', 'image', "
                                         r"'label'\]\)"):
        _train(data, run, 4, restore_most_invariant=experiment.restore_most_invariant(2, "label", "domain"))
    with pytest.raises(ValueError, match="expected None or a dict with the keys"):
        _train(data, run, 4, restore_most_invariant={"from": 2})
    assert not run.exists()


def test_resuming_without_the_selection_is_refused(data, tmp_path):
    run = tmp_path / "run"
    _train(data, run, 1, restore_most_invariant=None)
    with pytest.raises(ValueError, match="this run was started with restore_most_invariant None"):
        _train(data, run, 2)


def test_mibzoo_train_restores_the_most_invariant_epoch_in_its_own_process(data, tmp_path):
    path = tmp_path / "cmnist.npz"
    save_npz(path, data["train"], data["test"], MODALITIES)
    run = tmp_path / "run"
    command = ["train", "ood_cmnist", "--dataset", str(path), "--epochs", "2", "--out", str(run), "--batch-size", "50",
               "--image-examples", "0", "--verbose", "0"]
    command += [arg for key, value in TINY.items() for arg in ("--set", f"{key}={json.dumps(value)}")]
    done = subprocess.run([sys.executable, "-m", "mibzoo", *command, "--restore-most-invariant", "1",
                           "--invariance-columns", "label", "env"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((run / "run.json").read_text())
    assert record["restore_most_invariant"] == {"from_epoch": 1, "target": "label", "environment": "env"}
    assert record["selected_epoch"] in (1, 2) and f"the weights of epoch {record['selected_epoch']}" in done.stdout


def test_invariance_columns_without_the_selection_are_refused(capsys):
    from mibzoo.cli import main

    assert main(["train", "ood_cmnist", "--dataset", "colored_mnist", "--out", "unused", "--invariance-columns",
                 "label", "env"]) == 2
    assert "--invariance-columns: needs --restore-most-invariant FROM_EPOCH" in capsys.readouterr().err
