"""`mibzoo train` and `mibzoo evaluate` in-process on a tiny configuration: what a run directory
holds (TensorBoard events, metrics, plots). tests/test_cli_chain.py drives every command, compare
included, in its own process."""
import csv
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from mibzoo.cli import main
from mibzoo.experiment_data import resolve

from evaluation_testdata import TINY_SHARED, tiny_label_npz

TINY = ["--set", json.dumps(TINY_SHARED).join(["shared=", ""]), "--modality-options",
        '{"hidden": 32, "layers": 1, "filters": [8, 16]}', "--batch-size", "64"]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return str(tiny_label_npz(tmp_path_factory.mktemp("data"), 192, 64, classifier_examples=192))


def _events(folder):
    """``{tag: number of values}`` over the TensorBoard event files under ``folder``."""
    tags = {}
    for path in folder.rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tags[value.tag] = tags.get(value.tag, 0) + 1
    return tags


def test_npz_data_round_trip(data_file):
    data = resolve(data_file)
    assert list(data.modalities) == ["image", "label"]
    assert data.spec.labels["image"].classifier.endswith("digit.keras")
    assert data.arrays("test")["image"].shape == (64, 8, 8, 1)


def test_train_resume_evaluate(data_file, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "wyner_vae", "--dataset", data_file, "--epochs", "1", "--out", str(run),
                 "--image-examples", "2", "--verbose", "0"] + TINY) == 0
    for name in ("run.json", "model_config.json", "model.keras", "history.csv", "checkpoints/epoch_0001.keras"):
        assert (run / name).is_file(), name
    record = json.loads((run / "run.json").read_text())
    assert record["entry"] == "wyner_vae" and record["epochs_completed"] == 1 and record["finished"]
    assert record["versions"]["keras"] == keras.__version__
    assert [b["size"] for b in json.loads((run / "model_config.json").read_text())["shared"]] == [4]

    # Training again with more epochs resumes from the last checkpoint.
    assert main(["train", "wyner_vae", "--dataset", data_file, "--epochs", "2", "--out", str(run),
                 "--image-examples", "2", "--verbose", "0"] + TINY) == 0
    with open(run / "history.csv", encoding="utf-8") as handle:
        epochs = [int(row["epoch"]) for row in csv.DictReader(handle)]
    assert epochs == [0, 1]
    assert json.loads((run / "run.json").read_text())["epochs_completed"] == 2
    assert (run / "checkpoints" / "epoch_0002.keras").is_file()

    # TensorBoard: every loss term per epoch, and cross-modal image summaries per epoch.
    scalars = _events(run / "logs" / "train")
    for term in ("epoch_loss", "epoch_C1", "epoch_cross", "epoch_private"):
        assert scalars.get(term) == 2, (term, scalars)
    images = _events(run / "logs" / "images")
    assert images.get("cross/image->label") == 2 and images.get("cross/label->image") == 2 and images.get("prior") == 2

    capsys.readouterr()
    assert main(["evaluate", str(run), "--iwae-k", "3", "--prior-samples", "100", "--plot-examples", "3"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((run / "metrics.json").read_text())
    values = metrics["metrics"]
    for key in ("cross_coherence/image->label", "cross_coherence/label->image", "joint_coherence",
                "log_likelihood/joint", "probe/joint", "reconstruction/image"):
        assert key in values and np.isfinite(values[key]) and key in printed, key
    assert metrics["settings"]["iwae_k"] == 3 and metrics["classifiers"]
    for name in ("samples_image-to-label.png", "samples_label-to-image.png", "prior.png"):
        assert (run / "plots" / name).is_file(), name


def test_cli_errors_are_clear(data_file, tmp_path, capsys):
    assert main(["train", "jmvea", "--dataset", data_file, "--epochs", "1", "--out", str(tmp_path / "r")]) == 2
    assert "unknown zoo entry 'jmvea'" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert main(["compare", "jmvae", "--dataset", "mnist_lable", "--out", str(tmp_path / "c")]) == 2
    assert "unknown dataset 'mnist_lable'" in capsys.readouterr().err
    assert main(["train", "jmvae", "--dataset", data_file, "--epochs", "1", "--out", str(tmp_path / "r"),
                 "--set", "beta"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
