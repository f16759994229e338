"""`mibzoo reproduce table3`: the quick path end to end in a subprocess on fixture data, and the
pieces (German splits, summaries, target statements, the report's kept text) on known inputs."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mibzoo.reproduce import table3


def test_quick_command_writes_report_json_and_figure(fairness_data_dir, tmp_path):
    out = tmp_path / "docs"
    out.mkdir()
    (out / "results_fairness_quick.md").write_text("# Kept title\n\nHand-written notes.\n\n"
                                                   f"{table3.MARKER_BEGIN}\nold\n{table3.MARKER_END}\n\nKept tail.\n")
    env = {**os.environ, "MIBZOO_DATA_SOURCES": "local", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-m", "mibzoo", "reproduce", "table3", "--quick", "--seeds", "0",
                           "--out", str(out), "--data-dir", str(fairness_data_dir)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "results_fairness_quick.md" in done.stdout
    record = json.loads((out / "results_fairness_quick.json").read_text())
    models = list(table3.BASELINES) + list(table3.ENTRIES)
    assert sorted((r["model"], r["dataset"]) for r in record["rows"]) == sorted(
        (m, d) for m in models for d in table3.DATASETS)
    assert all(0.0 <= r[k] <= 1.0 for r in record["rows"] for k in ("acc", "deo", "dp"))
    assert [r["beta2"] for r in record["sweep"]] == [float(table3._default_beta2())]  # the quick sweep: the default
    text = (out / "results_fairness_quick.md").read_text()
    assert text.startswith("# Kept title\n\nHand-written notes.") and text.rstrip().endswith("Kept tail.")
    assert "\nold\n" not in text and "OURS-MMD (published)" in text and "**fair_mine** (ours, OURS-MINE)" in text
    assert "mibzoo reproduce table3 --quick --seeds 0 --out" in text and "--data-dir" in text and "Wall time" in text
    assert (out / "results_fairness_quick.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "results_fairness.md").exists()  # a quick run never replaces measured results


def test_german_split_is_stratified_disjoint_and_restandardized():
    rng = np.random.default_rng(0)
    n = 1000
    pooled = {"x": np.concatenate([rng.normal(3.0, 2.0, (n, 2)), rng.integers(0, 2, (n, 3))], 1).astype("float32"),
              "a": (rng.random(n) < 0.8).astype("int32"), "target": (rng.random(n) < 0.7).astype("int32"),
              "row": np.arange(n)}
    train, test = table3.german_split(pooled, seed=1, test_size=200, numeric=2)
    assert len(test["row"]) == 200 and len(train["row"]) == 800
    assert not set(train["row"]) & set(test["row"])
    for a in (0, 1):
        for y in (0, 1):  # each (a, y) cell keeps its share in the test split (to one row)
            share = np.mean((pooled["a"] == a) & (pooled["target"] == y))
            assert abs(np.sum((test["a"] == a) & (test["target"] == y)) - 200 * share) <= 1
    np.testing.assert_allclose(train["x"][:, :2].mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train["x"][:, :2].std(0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(test["x"][:, 2:], pooled["x"][test["row"], 2:])  # one-hot columns untouched
    again, _ = table3.german_split(pooled, seed=1, test_size=200, numeric=2)
    np.testing.assert_array_equal(again["row"], train["row"])


def test_summary_and_target_statements_on_known_rows():
    rows = [{"model": "fair_mmd", "dataset": "adult", "acc": acc, "deo": deo, "dp": 0.1}
            for acc, deo in ((0.84, 0.01), (0.82, 0.03))]
    rows += [{"model": table3.LR_RAW, "dataset": "adult", "acc": 0.85, "deo": 0.12, "dp": 0.2}]
    rows += [{"model": "fair_mmd", "dataset": "german", "acc": 0.70, "deo": 0.02, "dp": 0.1}]
    summary = table3.summarize(rows)
    assert summary[("fair_mmd", "adult")]["acc"] == pytest.approx((0.83, np.std([0.84, 0.82], ddof=1)))
    assert summary[("fair_mmd", "adult")]["deo"][0] == pytest.approx(0.02)
    lines = table3.target_lines(summary, entries=["fair_mmd"])
    assert lines[0] == "- adult: ACC ≥ 0.83 with DEO ≤ 0.02 for one entry: **met by fair_mmd**."
    assert "(0.120): **met**" in lines[1]
    assert lines[2] == "- german: ACC ≥ 0.74 with DEO ≤ 0.05 for one entry: **missed by every entry**."


def test_runs_shared_among_worker_processes_give_the_rows_of_one_process(fairness_data_dir, monkeypatch):
    """``jobs=2``: the runs go to two spawned workers and come back in the table's order with the
    same scores (logistic regressions, which do not depend on threads: equal to the digit)."""
    monkeypatch.setenv("MIBZOO_DATA_SOURCES", "local")
    seen = []
    kwargs = dict(seeds=[0, 1], budget=table3.QUICK, data_dir=str(fairness_data_dir), entries=(),
                  baselines=(table3.LR_RAW, table3.LR_X), progress=seen.append)
    serial, shared = table3.run_table(jobs=1, **kwargs), table3.run_table(jobs=2, **kwargs)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert strip(shared["rows"]) == strip(serial["rows"])
    assert [(r["dataset"], r["seed"], r["model"]) for r in shared["rows"]] == [
        (d, s, m) for d in table3.DATASETS for s in (0, 1) for m in (table3.LR_RAW, table3.LR_X)]
    assert shared["sweep"] == serial["sweep"] == []
    assert len(seen) == 2 * 8 and all(line.startswith("table3: ") for line in seen)
    with pytest.raises(ValueError, match="jobs got 0"):
        table3.run(str(fairness_data_dir), [0], quick=True, data_dir=str(fairness_data_dir), jobs=0)


class _Stop(Exception):
    """The command stopped (killed, out of time) in the middle of a run."""


def test_a_stopped_command_given_again_resumes_training_only_the_runs_it_had_not_finished(tmp_path, monkeypatch):
    import mibzoo.run_records
    from mibzoo.reproduce import table3_runs

    calls, stop_at = [], [3]

    def measure(planned_run, budget, data_dir=None):
        calls.append(tuple(planned_run))
        if len(calls) == stop_at[0]:
            raise _Stop
        dataset, seed, name, beta2 = planned_run
        return {"acc": 0.8 + 0.01 * seed, "deo": 0.05, "dp": 0.1 + (beta2 or 0.0) * 1e-6}, 2.0

    monkeypatch.setattr(table3_runs, "measure", measure)
    monkeypatch.setattr(mibzoo.run_records, "machine", lambda: "machine A")
    out = tmp_path / "docs"
    out.mkdir()
    planned, _ = table3_runs.planned_runs([0], table3.QUICK)
    with pytest.raises(_Stop):
        table3.run(out, [0], quick=True)
    partial = json.loads((out / "results_fairness_quick.partial.json").read_text())
    assert [tuple(r["run"]) for r in partial["runs"]] == planned[:2] and partial["machine"] == "machine A"

    calls.clear()
    stop_at[0] = None
    table3.run(out, [0], quick=True)
    assert calls == planned[2:]  # only the runs the stopped command had not finished
    record = json.loads((out / "results_fairness_quick.json").read_text())
    assert [(r["dataset"], r["model"]) for r in record["rows"]] == [(d, m) for d, _, m, b in planned if b is None]
    assert record["wall_seconds"] >= partial["wall_seconds"] and record["machine"] == "machine A"
    assert not (out / "results_fairness_quick.partial.json").exists()

    # another command (other seeds) starts afresh; a stop resumed on another machine names both
    calls.clear()
    stop_at[0] = 2
    with pytest.raises(_Stop):
        table3.run(out, [0], quick=True)
    calls.clear()
    stop_at[0] = None
    table3.run(out, [1], quick=True)
    assert len(calls) == len(table3_runs.planned_runs([1], table3.QUICK)[0])
    stop_at[0] = len(calls) + 2
    with pytest.raises(_Stop):
        table3.run(out, [0], quick=True)
    calls.clear()
    stop_at[0] = None
    monkeypatch.setattr(mibzoo.run_records, "machine", lambda: "machine B")
    table3.run(out, [0], quick=True)
    assert calls == planned[1:]
    assert json.loads((out / "results_fairness_quick.json").read_text())["machine"] == (
        "machine A (stopped), resumed on machine B")
