"""`benchmarks/compare_mnist.py --resume`: the rows of two invocations share a table only when they measured
the same models under the same budget; a (model, seed) whose zoo config changed is measured again."""
import importlib.util
import re
import pathlib

import pytest

from mibzoo.compare_report import Report

_SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "compare_mnist.py"


def _script():
    spec = importlib.util.spec_from_file_location("compare_mnist", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(model, seed, digest, value):
    return {"model": model, "entry": model, "seed": seed, "metrics": {"joint_coherence": value},
            "config_sha256": digest, "train_seconds": 1.0, "eval_seconds": 1.0, "final_loss": 1.0}


def _report(rows, epochs=5):
    budget = {"dataset": "mnist_label", "epochs": epochs, "batch_size": 128, "seeds": sorted({r["seed"] for r in rows})}
    return Report(rows, budget, {"mibzoo": "0"}, wall_seconds=60.0)


MODELS = ["jmvae", "mib_mm"]


def test_resume_keeps_current_rows_and_measures_the_changed_model_again(tmp_path, monkeypatch):
    script = _script()
    _report([_row("jmvae", 0, "j1", 0.4), _row("mib_mm", 0, "m-old", 0.2)]).save(tmp_path / "mnist_label")
    earlier = script.resumed(tmp_path, ["mnist_label", "mnist_plus1"])
    assert list(earlier) == ["mnist_label"]  # nothing on disk for mnist_plus1
    monkeypatch.setattr(importlib.import_module("mibzoo.compare"), "entry_digest", lambda m, d: {"jmvae": "j1", "mib_mm": "m-new"}[m])
    kept = script.current_rows(earlier["mnist_label"], MODELS, "mnist_label")
    assert script.current_rows(earlier["mnist_label"], ["mib_mm"], "mnist_label") is None  # nothing current
    assert [(r["model"], r["seed"]) for r in kept.rows] == [("jmvae", 0)]
    assert script.missing_models(kept, MODELS, 0) == ["mib_mm"]
    assert script.missing_models(kept, MODELS, 1) == MODELS
    merged = script.merge(kept, _report([_row("mib_mm", 0, "m-new", 0.9)]), MODELS, 0, 120.0)
    assert [(r["model"], r["config_sha256"]) for r in merged.rows] == [("jmvae", "j1"), ("mib_mm", "m-new")]
    assert merged.budget["seeds"] == [0]
    merged = script.merge(merged, _report([_row("jmvae", 1, "j1", 0.6)]), MODELS, 0, 180.0)
    assert script.missing_models(merged, MODELS, 1) == ["mib_mm"]  # what the docs list as missing
    stat = merged.summary()["jmvae"]["joint_coherence"]
    assert stat["n"] == 2 and stat["mean"] == pytest.approx(0.5)
    merged = script.merge(merged, _report([_row("mib_mm", 1, "m-new", 0.7)]), MODELS, 0, 240.0)
    assert merged.budget["seeds"] == [0, 1]
    assert [r["model"] for r in merged.rows] == ["jmvae", "jmvae", "mib_mm", "mib_mm"]


@pytest.mark.parametrize("later, message", [
    (_report([_row("jmvae", 1, "other", 0.5)]), "zoo config of ['jmvae'] differs"),
    (_report([_row("jmvae", 1, None, 0.5)]), "zoo config of ['jmvae'] differs"),
    (_report([_row("jmvae", 1, "j1", 0.5)], epochs=2), "budget differs in ['epochs']"),
])
def test_resume_refuses_seeds_of_another_model_or_budget(later, message):
    with pytest.raises(SystemExit, match=message.replace("[", r"\[").replace("]", r"\]")):
        _script().merge(_report([_row("jmvae", 0, "j1", 0.4)]), later, ["jmvae"], 0, 120.0)


def test_reproducing_command_keeps_the_budget_and_drops_selection_and_continuation():
    script = _script()
    argv = ["--resume", "--runs", "/work/x", "--datasets", "mnist_label", "--seeds", "0", "1",
            "--structure-seeds", "--other-classifier", "--epochs", "2", "--models=jmvae", "--limit", "500"]
    assert script.reproducing_command(argv) == "python benchmarks/compare_mnist.py --epochs 2 --limit 500"


def _fake_training(monkeypatch, value):
    """Zoo digests j1 (jmvae) and m1 (mib_mm), and a `mibzoo.compare.compare` that records what it is asked
    to train and returns one row of ``value``: the list of what was trained."""
    monkeypatch.setattr(importlib.import_module("mibzoo.compare"), "entry_digest", lambda m, d: {"jmvae": "j1", "mib_mm": "m1"}.get(m, "new"))
    trained = []

    def fake_compare(models, dataset, seeds, out=None, **budget):
        trained.append((tuple(models), dataset, tuple(seeds)))
        return _report([_row(models[0], seeds[0], "j1", value)])

    monkeypatch.setattr("mibzoo.compare.compare", fake_compare)
    return trained


def test_a_run_on_one_data_set_keeps_the_others_in_the_docs_and_on_disk(tmp_path, monkeypatch):
    script = _script()
    plus1 = Report([_row("jmvae", 0, "j1", 0.8), _row("mib_mm", 0, "m1", 0.7)],
                   {"dataset": "mnist_plus1", "epochs": 5, "batch_size": 128, "seeds": [0]}, {"mibzoo": "0"},
                   wall_seconds=60.0)
    plus1.save(tmp_path / "mnist_plus1")
    _report([_row("jmvae", 0, "j1", 0.4), _row("mib_mm", 0, "m1", 0.3)]).save(tmp_path / "mnist_label")
    trained = _fake_training(monkeypatch, 0.5)
    docs = tmp_path / "results.md"
    script.main(["--resume", "--models", "jmvae", "--datasets", "mnist_label", "--seeds", "0", "1",
                 "--structure-seeds", "--out", str(tmp_path), "--docs", str(docs)])
    assert trained == [(("jmvae",), "mnist_label", (1,))]  # only the missing pair of the selection
    label = Report.from_json(tmp_path / "mnist_label" / "results.json")
    # mib_mm's row is not among --models but stays on disk
    assert sorted((r["model"], r["seed"]) for r in label.rows) == [("jmvae", 0), ("jmvae", 1), ("mib_mm", 0)]
    text = docs.read_text()
    assert "## MNIST-Plus-1" in text and "## MNIST-Label" in text
    assert f"Command: `python benchmarks/compare_mnist.py --out {tmp_path} --docs {docs}`" in text
    # missing against the full plan: MNIST-Plus-1's seeds 1 and 2, MNIST-Label's mib_mm seed 1
    assert re.search(r"`mnist_plus1`: [^;]*jmvae seed 1", text) and re.search(r"`mnist_label`: [^;]*mib_mm seed 1", text)


def test_remeasure_measures_current_rows_again_for_the_seeds_asked_only(tmp_path, monkeypatch):
    script = _script()
    _report([_row("jmvae", 0, "j1", 0.4), _row("jmvae", 1, "j1", 0.45), _row("mib_mm", 0, "m1", 0.3)]).save(
        tmp_path / "mnist_label")
    trained = _fake_training(monkeypatch, 0.9)
    docs = tmp_path / "results.md"
    script.main(["--resume", "--remeasure", "jmvae", "--models", "jmvae", "mib_mm", "--datasets", "mnist_label",
                 "--seeds", "0", "--structure-seeds", "--out", str(tmp_path), "--docs", str(docs)])
    assert trained == [(("jmvae",), "mnist_label", (0,))]  # current, but asked for; mib_mm's row is kept
    label = Report.from_json(tmp_path / "mnist_label" / "results.json")
    values = {(r["model"], r["seed"]): r["metrics"]["joint_coherence"] for r in label.rows}
    assert values == {("jmvae", 0): 0.9, ("jmvae", 1): 0.45, ("mib_mm", 0): 0.3}  # seed 1 not asked: kept
    assert "--remeasure" not in docs.read_text()  # a continuation option: not in the reproducing command


@pytest.mark.parametrize("argv, message", [
    (["--remeasure", "jmvae"], "needs --resume"),
    (["--resume", "--remeasure", "mib_mm", "--models", "jmvae"], "not among --models"),
])
def test_remeasure_refuses_what_it_would_lose(argv, message, capsys):
    with pytest.raises(SystemExit):
        _script().main(argv + ["--structure-seeds"])
    assert message in capsys.readouterr().err


def _scored(report, **classifier):
    report.versions["classifiers"] = {"mnist_digit": classifier}
    return report


def test_resume_refuses_rows_scored_by_another_classifier():
    # A machine whose classifier cache lacks the classifier that scored the rows on disk trains its own;
    # its readings are another measurement, so they do not join the old rows' table.
    script = _script()
    kept = _scored(_report([_row("jmvae", 0, "j1", 0.4)]), sha256="f1", test_accuracy=0.9914, weights_sha256="w1")
    same = _scored(_report([_row("jmvae", 1, "j1", 0.5)]), sha256="f2", test_accuracy=0.9914, weights_sha256="w1")
    merged = script.merge(kept, same, MODELS, 0, 60.0)  # same weights, another file (save time): one classifier
    assert merged.versions["classifiers"]["mnist_digit"]["weights_sha256"] == "w1"
    other = _scored(_report([_row("jmvae", 1, "j1", 0.5)]), sha256="f3", test_accuracy=0.9910, weights_sha256="w2")
    with pytest.raises(SystemExit, match="scored by another 'mnist_digit' classifier"):
        script.merge(kept, other, MODELS, 0, 60.0)
    # Rows from before weights digests: equal weights cannot be shown, so the test accuracy decides, and says so.
    legacy = _scored(_report([_row("jmvae", 0, "j1", 0.4)]), sha256="f0", test_accuracy=0.9914)
    merged = script.merge(legacy, same, MODELS, 0, 60.0)
    assert merged.versions["classifiers"]["mnist_digit"] == {
        "sha256": "f2", "test_accuracy": 0.9914, "weights_sha256": "w1", "matched_by": "test_accuracy",
        "earlier_sha256": "f0"}
    assert "weights sha256 `w1…` (rows measured before weights digests matched by test accuracy)" in "\n".join(
        merged.header())
    with pytest.raises(SystemExit, match="scored by another"):
        script.merge(legacy, other, MODELS, 0, 60.0)
    # Later rows of the same classifier keep the note: the legacy rows are still in the table.
    later = _scored(_report([_row("jmvae", 2, "j1", 0.5)]), sha256="f4", test_accuracy=0.9914, weights_sha256="w1")
    again = script.merge(merged, later, MODELS, 0, 60.0)
    assert again.versions["classifiers"]["mnist_digit"] == dict(
        merged.versions["classifiers"]["mnist_digit"], sha256="f4")



def test_other_classifier_keeps_another_copys_rows_marked_per_model_and_never_mixed_within_one(tmp_path):
    # Another machine kind trains another copy of the classifier from the same recipe (docs/results.md
    # section 12). With --other-classifier its rows join the table marked with their own record; the
    # seeds of one model must still be read by one copy.
    script = _script()
    table = _scored(_report([_row("jmvae", 0, "j1", 0.4), _row("mib_mm", 0, "m-old", 0.3)]),
                    sha256="f1", test_accuracy=0.9914, weights_sha256="w1")
    copy = {"sha256": "f9", "test_accuracy": 0.9910, "weights_sha256": "w2"}
    with pytest.raises(SystemExit, match="--other-classifier"):
        script.merge(table, _scored(_report([_row("mib_mm", 0, "m-new", 0.9)]), **copy), MODELS, 0, 60.0)
    table.rows = [table.rows[0]]  # mib_mm's old-config row, dropped by --resume (current_rows)
    merged = script.merge(table, _scored(_report([_row("mib_mm", 0, "m-new", 0.9)]), **copy), MODELS, 0, 60.0,
                          other_classifier=True)
    merged = script.merge(merged, _scored(_report([_row("mib_mm", 1, "m-new", 0.8)]), **copy), MODELS, 0, 90.0,
                          other_classifier=True)
    assert merged.versions["classifiers"]["mnist_digit"]["weights_sha256"] == "w1"  # the table's copy
    assert [r.get("classifiers") for r in merged.rows] == [None, {"mnist_digit": copy}, {"mnist_digit": copy}]
    assert merged.summary()["mib_mm"]["joint_coherence"]["mean"] == pytest.approx(0.85)
    header = "\n".join(merged.header())
    assert "weights sha256 `w1…`" in header
    assert "Columns `mib_mm`: scored by another copy of `mnist_digit` (test accuracy 0.9910, weights sha256 `w2…`)" in header
    assert "`jmvae`" not in header.split("Columns")[1]
    # A further jmvae seed read by the other copy would average two measurements in one column.
    with pytest.raises(SystemExit, match=r"seeds of \['jmvae'\] would be scored by different copies"):
        script.merge(merged, _scored(_report([_row("jmvae", 1, "j1", 0.5)]), **copy), MODELS, 0, 120.0,
                     other_classifier=True)
    # And the marks survive the JSON round trip that --resume reads.
    path = tmp_path / "results.json"
    merged.to_json(path)
    assert Report.from_json(path).other_scorers() == merged.other_scorers()
    # Once jmvae's seed is measured again by the other copy too (--remeasure), every row is that copy's:
    # it becomes the table's classifier and no column is marked.
    again = script.merge(Report([r for r in merged.rows if r["model"] == "mib_mm"], merged.budget, merged.versions),
                         _scored(_report([_row("jmvae", 0, "j1", 0.5)]), **copy), MODELS, 0, 150.0,
                         other_classifier=True)
    assert again.versions["classifiers"] == {"mnist_digit": copy}
    assert [r.get("classifiers") for r in again.rows] == [None, None, None]
    assert "another copy" not in "\n".join(again.header()) and "weights sha256 `w2…`" in "\n".join(again.header())
