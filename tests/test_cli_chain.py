"""The command line as a user drives it: every command its own process, on a tiny configuration.

train -> SIGKILL mid-epoch -> train again (resumes) -> evaluate -> export -> serve -> REST predict
equal to the Python model -> compare, plus the clear errors of a few common mistakes. Nothing is
shared between the processes but the files they write, so a class that only this test process
registered, or a module that only it imported, cannot hide a bug.
"""
import csv
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from evaluation_testdata import tiny_label_npz

TINY = ["--set", 'shared=[{"name": "z", "size": 4}]', "--modality-options",
        '{"hidden": 16, "layers": 1, "filters": [4, 8]}']
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


def mibzoo(*args, timeout=600, check=True):
    """``python -m mibzoo ARGS`` in a new process; returns the finished process."""
    done = subprocess.run([sys.executable, "-m", "mibzoo", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=ENV)
    if check:
        assert done.returncode == 0, f"mibzoo {' '.join(map(str, args))} failed:\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return tiny_label_npz(tmp_path_factory.mktemp("chain_data"), 1600, 64)


def history_epochs(run):
    with open(run / "history.csv", encoding="utf-8") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def post(url, body):
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_whole_chain_one_process_per_command(data_file, tmp_path):
    run, base = tmp_path / "run", tmp_path / "exports"
    train = ["train", "wyner_vae", "--dataset", data_file, "--epochs", "3", "--out", run, "--batch-size", "8",
             "--image-examples", "0", "--verbose", "0"] + TINY

    # 1. train, killed with SIGKILL in the middle of its second epoch
    process = subprocess.Popen([sys.executable, "-m", "mibzoo", *map(str, train)], env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while not (run / "checkpoints" / "manifest.json").exists():
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint after 10 minutes"
        time.sleep(0.05)
    time.sleep(0.5)  # well inside epoch 2 (an epoch is 200 steps)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not (run / "model.keras").exists() and history_epochs(run) == [0]

    # 2. the same command resumes from the checkpoint and counts every epoch once
    done = mibzoo(*train)
    assert "trained wyner_vae" in done.stdout and "for 3 epochs" in done.stdout
    assert history_epochs(run) == [0, 1, 2]
    record = json.loads((run / "run.json").read_text())
    assert record["epochs_completed"] == 3 and len(record["model_sha256"]) == 64

    # 3. evaluate in a new process
    done = mibzoo("evaluate", run, "--iwae-k", "2", "--prior-samples", "50", "--plot-examples", "2")
    values = json.loads((run / "metrics.json").read_text())["metrics"]
    assert "cross_coherence/image->label" in done.stdout and np.isfinite(values["log_likelihood/joint"])

    # 4. export in a new process (the class is registered by nothing but mibzoo itself)
    done = mibzoo("export", run, "--base", base)
    version = base / "wyner_vae" / "1"
    assert f"exported {version}" in done.stdout
    card = (version / "assets.extra" / "model_card.md").read_text()
    assert "cross_coherence/image->label" in card  # the run's metrics, not only their timing
    refused = mibzoo("export", run, "--base", base, "--version", "1", check=False)
    assert refused.returncode == 2 and "--overwrite replaces it" in refused.stderr and "Traceback" not in refused.stderr

    # 5. serve in a new process; REST answers equal the Python model's
    server = subprocess.Popen([sys.executable, "-m", "mibzoo", "serve", base, "--port", "0"], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        while url is None:
            line = server.stdout.readline()
            assert line, server.stderr.read()[-3000:]
            if line.startswith("REST: "):
                url = line.split()[1].split("/v1/")[0]
        test = np.load(data_file)
        images, labels = test["test__image"][:5], test["test__label"][:5]
        present = np.array([[1, 1], [1, 0], [0, 1], [1, 1], [1, 0]], "float32")
        status, answer = post(f"{url}/v1/models/wyner_vae:predict", {
            "signature_name": "encode",
            "inputs": {"image": images.tolist(), "label": labels.tolist(), "present": present.tolist()}})
        assert status == 200, answer
        from mibzoo.experiment import load_run_model
        model = load_run_model(run)
        local = model.encode({"image": images, "label": labels},
                             present={"image": present[:, 0], "label": present[:, 1]})
        np.testing.assert_allclose(np.asarray(answer["outputs"]["loc"]), np.asarray(local["loc"]), rtol=1e-4, atol=1e-5)

        bad = images.copy()
        bad[0, 0, 0, 0] = float("nan")
        status, answer = post(f"{url}/v1/models/wyner_vae:predict", {
            "signature_name": "generate_image_to_label", "inputs": {"image": bad.tolist()}})
        assert status == 400 and "modality 'image' contains NaN or Inf" in answer["error"], answer
        assert "Graph execution" not in answer["error"] and "mibzoo-input-error" not in answer["error"]
        try:
            urllib.request.urlopen(f"{url}/v1/models/wyner_vae:predict", timeout=30)
            raise AssertionError("GET on :predict was answered")
        except urllib.error.HTTPError as err:
            assert err.code == 405 and err.headers["Allow"] == "POST"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)

    # 6. compare in a new process
    out = tmp_path / "compare"
    done = mibzoo("compare", "jmvae", "mvae", "--dataset", data_file, "--epochs", "1", "--seeds", "0",
                  "--limit", "128", "--out", out, "--iwae-k", "2", "--prior-samples", "50", "--no-progress",
                  "--batch-size", "32", *TINY)
    assert "| metric | jmvae | mvae | chance |" in done.stdout
    assert (out / "runs" / "jmvae" / "seed_0" / "model.keras").is_file() and (out / "results.json").is_file()


@pytest.mark.parametrize("args, message", [
    (["train", "wyner_vae", "--batch-size", "0"], "batch_size: got 0, expected an integer >= 1"),
    (["serve", "BASE", "--port", "70000"], "70000 is not a port: expected 0..65535"),
])
def test_command_line_mistakes_get_one_clear_line(data_file, tmp_path, args, message):
    # One mistake per command path (train, serve) in a subprocess; the messages for NaN settings and
    # overrides are checked in-process (test_experiment.py, test_config.py).
    args = [a.replace("BASE", str(tmp_path)) for a in args]
    if args[0] == "train":
        args += ["--dataset", data_file, "--out", tmp_path / "run"]
    done = mibzoo(*args, check=False)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "run" / "run.json").exists()
