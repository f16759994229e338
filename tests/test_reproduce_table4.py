"""`mibzoo reproduce table4`: the quick path end to end on fixture MNIST, records kept across
commands, the report's kept text, the summaries and the hidden-label option."""
import dataclasses
import json

import numpy as np
import pytest

from mibzoo.reproduce import table4, table4_records


@pytest.fixture(scope="module")
def mnist_data_dir(tmp_path_factory, monkeypatch_module):
    from mibzoo.data.fixtures import write_raw_fixtures
    folder = tmp_path_factory.mktemp("mnist_data")
    write_raw_fixtures(folder, groups=["mnist"], sizes={"mnist": (600, 60)})
    monkeypatch_module.setenv("MIBZOO_DATA_SOURCES", "local")
    return folder


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_quick_run_writes_report_json_figure_and_keeps_other_rows(mnist_data_dir, tmp_path):
    out = tmp_path / "docs"
    out.mkdir()
    (out / "results_ood_quick.md").write_text(f"# Kept title\n\nNotes.\n\n{table4.MARKER_BEGIN}\nold\n"
                                              f"{table4.MARKER_END}\n\nKept tail.\n")
    table4.run(out, seeds=[0], quick=True, methods=["ERM", "ood_cmnist_semi"], data_dir=mnist_data_dir)
    table4.run(out, seeds=[0], quick=True, methods=["oracle"], data_dir=mnist_data_dir)
    record = json.loads((out / "results_ood_quick.json").read_text())
    assert sorted((r["method"], r["seed"]) for r in record["runs"]) == [
        ("ERM", 0), ("ood_cmnist_semi", 0), ("oracle", 0)]
    assert all(0.0 <= r[k] <= 1.0 for r in record["runs"] for k in ("train_acc", "test_acc"))
    assert len(record["commands"]) == 2 and len(record["wall_seconds"]) == 2 and len(record["machines"]) == 2
    text = (out / "results_ood_quick.md").read_text()
    assert text.startswith("# Kept title\n\nNotes.") and text.rstrip().endswith("Kept tail.") and "\nold\n" not in text
    assert "IRM (published) | 70.8 ± 0.9 | 66.9 ± 2.5" in text and "**ood_cmnist_semi** (ours, OURS, 50% labels)" in text
    assert "mibzoo reproduce table4 --quick --seeds 0 --methods oracle --out" in text
    # the quick budget restores ood_cmnist's most invariant epoch from its first (and only) epoch
    assert [r.get("selected_epoch") for r in record["runs"] if r["method"] == "ood_cmnist_semi"] == [1]
    assert "ood_cmnist_semi from epoch 1 of 1: seed 0 epoch 1." in text
    assert (out / "results_ood_quick.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (out / "results_ood_quick.md").unlink()
    table4.run(out, seeds=[0], quick=True, report_only=True)  # the report again from the records alone
    assert "**oracle** (ours, oracle (ERM on grayscale))" in (out / "results_ood_quick.md").read_text()


def test_runs_shared_among_worker_processes_give_the_records_of_one_process(mnist_data_dir):
    """``jobs=2``: the runs go to two spawned workers and come back in the order methods × seeds with
    the scores one process gives (baselines of 16 units: too small for threads to change a sum)."""
    seen = []
    kwargs = dict(methods=["ERM", "oracle"], seeds=[0, 1], budget=table4.QUICK, data_dir=mnist_data_dir,
                  progress=seen.append, existing=[{"method": "IRM", "seed": 0, "train_acc": 0.5, "test_acc": 0.5,
                                                   "env_acc": {}, "seconds": 1.0}])
    serial, shared = table4.run_table(jobs=1, **kwargs), table4.run_table(jobs=2, **kwargs)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(shared) == strip(serial)
    assert [(r["method"], r["seed"]) for r in shared] == [("IRM", 0), ("ERM", 0), ("ERM", 1), ("oracle", 0), ("oracle", 1)]
    assert len(seen) == 2 * 4 and all(line.startswith("table4: ") for line in seen)
    with pytest.raises(ValueError, match="jobs got 0"):
        table4.run_table(jobs=0, **kwargs)


def test_budget_statement_sums_the_commands_and_needs_every_row_at_five_seeds():
    runs = [{"method": m, "seed": s, "train_acc": 0.5, "test_acc": 0.5, "seconds": 1.0}
            for m in table4_records.DEFAULT_METHODS for s in range(5)]
    record = {"runs": runs, "wall_seconds": [1000.0, 700.0], "machine": "M, 2 cores", "machines": ["M, 2 cores"] * 2,
              "commands": ["mibzoo reproduce table4 --methods ERM IRM oracle", "mibzoo reproduce table4 --methods "
                           "ood_cmnist ood_cmnist_semi ood_cmnist_irm"]}
    assert table4.budget_line(record) == ("- The whole table in under 30 minutes on 2 cores: **met** "
                                          "(28.3 min over 2 commands on M, 2 cores).")
    one = {**record, "wall_seconds": [1800.0], "commands": ["mibzoo reproduce table4"], "machines": ["M, 2 cores"]}
    assert "**missed** (30.0 min over 1 command on" in table4.budget_line(one)
    short = {**record, "runs": [r for r in runs if not (r["method"] == "IRM" and r["seed"] == 4)]}
    assert "not measured (not every row has 5 seeds; 28.3 min" in table4.budget_line(short)
    # Rows outside issue 12's table (Fishr, ood_cmnist_fishr) are neither needed for the statement nor timed in it.
    fishr = {**record, "runs": runs + [{**runs[0], "method": "Fishr"}, {**runs[0], "method": "ood_cmnist_fishr"}],
             "wall_seconds": [1000.0, 700.0, 900.0, 600.0], "machines": ["M, 2 cores"] * 2 + ["Other, 8 cores"] * 2,
             "commands": record["commands"] + ["mibzoo reproduce table4 --methods Fishr",
                                               "mibzoo reproduce table4 --methods ood_cmnist_fishr ood_cmnist_fishr_semi"]}
    assert "**met** (28.3 min over 2 commands on M, 2 cores)" in table4.budget_line(fishr)
    # Commands are named by their number in the report's list, the untimed ones counted too.
    elsewhere = {**fishr, "commands": fishr["commands"][2:] + fishr["commands"][:2],
                 "wall_seconds": [900.0, 600.0, 1000.0, 700.0],
                 "machines": ["M, 2 cores", "M, 2 cores", "A, 2 cores", "B, 2 cores"]}
    assert "(28.3 min over 2 commands; command 3: A, 2 cores; command 4: B, 2 cores)" in table4.budget_line(elsewhere)


def test_budget_is_judged_only_on_commands_recorded_on_one_machine():
    """Minutes summed over machines of other speeds measure none of them: the statement says where each
    command ran instead of met or missed. A record written before machines were kept per command knows
    only its last command's (the one that wrote it)."""
    runs = [{"method": m, "seed": s, "train_acc": 0.5, "test_acc": 0.5, "seconds": 1.0}
            for m in table4_records.DEFAULT_METHODS for s in range(5)]
    commands = ["mibzoo reproduce table4 --methods ERM IRM oracle",
                "mibzoo reproduce table4 --methods ood_cmnist ood_cmnist_semi ood_cmnist_irm"]
    mixed = {"runs": runs, "wall_seconds": [1000.0, 700.0], "machine": "B, 2 cores", "commands": commands,
             "machines": ["A, 2 cores", "B, 2 cores"], "budget": {"epochs": 30}, "versions": {"mibzoo": "0"}}
    assert table4.budget_line(mixed) == ("- The whole table in under 30 minutes on 2 cores: not measured on one "
                                         "machine (28.3 min over 2 commands; command 1: A, 2 cores; command 2: B, 2 cores).")
    legacy = {key: value for key, value in mixed.items() if key != "machines"}
    assert table4_records.command_entries(legacy) == [(commands[0], 1000.0, None), (commands[1], 700.0, "B, 2 cores")]
    assert "command 1: machine not recorded; command 2: B, 2 cores" in table4.budget_line(legacy)
    assert "Machines: command 1: machine not recorded; command 2: B, 2 cores." in table4.render(legacy)
    same = {**mixed, "machines": ["B, 2 cores"] * 2}
    assert "Machine: B, 2 cores." in table4.render(same) and "**met** (28.3 min over 2 commands on B, 2 cores)" in \
        table4.render(same)
    # Filtering the commands keeps each one's machine with it.
    kept = table4_records.drop_superseded(mixed, ["ERM", "IRM", "oracle"], [0, 1, 2, 3, 4])
    assert kept["commands"] == commands[1:] and kept["machines"] == ["B, 2 cores"] and kept["wall_seconds"] == [700.0]


def test_summary_in_percent_with_sample_std_and_target_statements():
    runs = [{"method": "ERM", "seed": s, "train_acc": a, "test_acc": b, "seconds": 1.0}
            for s, (a, b) in enumerate([(0.87, 0.16), (0.88, 0.18)])]
    runs += [{"method": "IRM", "seed": 0, "train_acc": 0.7, "test_acc": 0.6, "seconds": 2.0}]
    summary = table4.summarize(runs)
    np.testing.assert_allclose(summary["ERM"]["test"], (17.0, np.std([16.0, 18.0], ddof=1)))
    assert summary["IRM"]["test"] == (60.0, None) and summary["ERM"]["n"] == 2  # one run: no spread
    lines = "\n".join(table4.target_lines(summary))
    assert "ERM test-env accuracy ≤ 20%: **met**" in lines
    assert "IRM test-env accuracy within ±3 points of 66.9%: **missed** (60.0, 1 seed)" in lines
    assert "ood_cmnist test-env accuracy ≥ 66.9% with std < 6.1: not run" in lines


def test_environment_gap_reads_the_training_environments_of_each_record():
    # JSON turns the environments' keys into strings; a fresh record has ints.
    runs = [{"method": "ood_cmnist", "seed": s, "train_acc": 0.7, "test_acc": 0.6, "seconds": 1.0, "env_acc": acc}
            for s, acc in enumerate([{"0": 0.71, "1": 0.69, "2": 0.6}, {0: 0.66, 1: 0.67, 2: 0.6}])]
    assert table4.environment_gap(runs[0]) == pytest.approx(2.0)
    assert table4.environment_gap(runs[1]) == pytest.approx(-1.0)
    assert table4.environment_gap({"env_acc": {"0": 0.7}}) is None and table4.environment_gap({}) is None
    summary = table4.summarize(runs)
    np.testing.assert_allclose(summary["ood_cmnist"]["gap"], (0.5, np.std([2.0, -1.0], ddof=1)))
    # One run without the environments' accuracies leaves the method without a gap, not a partial mean.
    assert table4.summarize(runs + [{**runs[0], "seed": 2, "env_acc": None}])["ood_cmnist"]["gap"] is None


def test_hide_labels_is_deterministic_per_seed_and_hides_the_values():
    from mibzoo.errors import ConfigError
    from mibzoo.experiment_data import hide_labels

    arrays = {"label": np.arange(10) % 2 + 1, "image": np.zeros((10, 3))}
    out, present = hide_labels(arrays, "label", 0.3, seed=4)
    again, same = hide_labels(arrays, "label", 0.3, seed=4)
    _, other = hide_labels(arrays, "label", 0.3, seed=5)
    mask = present["label"]
    assert mask.sum() == 7 and np.array_equal(mask, same["label"]) and not np.array_equal(mask, other["label"])
    assert np.all(out["label"][mask == 0] == 0) and np.array_equal(out["label"][mask == 1], arrays["label"][mask == 1])
    assert np.all(arrays["label"] > 0)  # the input is not modified
    with pytest.raises(ConfigError, match="fraction"):
        hide_labels(arrays, "label", 1.5, seed=0)
    with pytest.raises(ConfigError, match="Did you mean 'label'"):
        hide_labels(arrays, "labels", 0.5, seed=0)


def test_train_run_hides_labels_through_presence_masks(tmp_path):
    """`mibzoo train --hide-labels label=0.5`: the training batches carry 'present' masks with the
    chosen share of labels absent (zeroed), recorded in run.json; any entry with that modality."""
    from mibzoo.experiment import train_run
    from mibzoo.experiment_data import resolve

    rng = np.random.default_rng(0)
    arrays = {"image": rng.random((40, 4)).astype("float32"), "label": rng.integers(1, 3, 40).astype("int32")}
    modalities = {"image": {"kind": "vector", "size": 4}, "label": {"kind": "categorical", "classes": 3}}
    data = resolve({"train": arrays, "test": arrays}, modalities=modalities)
    batches = list(data.train_dataset(40, seed=2, hidden_labels={"label": 0.5}))
    present = batches[0]["present"]["label"].numpy()
    assert present.sum() == 20 and np.all(batches[0]["label"].numpy()[present == 0] == 0)
    with pytest.raises(ValueError, match="hidden_labels"):
        train_run("jmvae", {"train": arrays, "test": arrays}, 1, tmp_path / "bad", modalities=modalities,
                  hidden_labels={"label": 2.0})
    with pytest.raises(ValueError, match="not a modality"):
        train_run("jmvae", {"train": arrays, "test": arrays}, 1, tmp_path / "bad", modalities=modalities,
                  hidden_labels={"labels": 0.5})
    assert not (tmp_path / "bad").exists()  # refused before anything is written


@pytest.mark.slow
def test_train_run_with_hidden_labels_trains_and_records_them(tmp_path):
    from mibzoo.experiment import train_run

    rng = np.random.default_rng(0)
    arrays = {"image": rng.random((40, 4)).astype("float32"), "label": rng.integers(1, 3, 40).astype("int32")}
    modalities = {"image": {"kind": "vector", "size": 4}, "label": {"kind": "categorical", "classes": 3}}
    record = train_run("jmvae", {"train": arrays, "test": arrays}, 1, tmp_path / "run", batch_size=20, seed=2,
                       modalities=modalities, hidden_labels={"label": 0.5}, image_examples=0,
                       overrides={"networks": {"vector": {"hidden": 8, "layers": 1},
                                               "categorical": {"hidden": 8, "layers": 1}}})
    assert record["hidden_labels"] == {"label": 0.5} and record["epochs_completed"] == 1


def test_a_change_of_one_entrys_budget_keeps_the_other_rows_records():
    # ood_cmnist_irm's batch size set apart from ood_cmnist's, whatever the defaults are, so that the
    # legacy budget below (one batch size for every entry) matches one entry and not the other
    defaults = table4.Budget()
    old = dataclasses.replace(defaults, batch_size={**defaults.batch_size,
                                                    "ood_cmnist_irm": 2 * defaults.batch_size["ood_cmnist"]})
    runs = [{"method": m, "seed": 0, "train_acc": 0.5, "test_acc": 0.5, "seconds": 1.0}
            for m in ("IRM", "ERM", "ood_cmnist", "ood_cmnist_semi", "ood_cmnist_irm")]
    record = {"budget": dataclasses.asdict(old), "runs": runs,
              "commands": ["mibzoo reproduce table4 --seeds 0 --methods IRM", "mibzoo reproduce table4 --methods ERM",
                           "mibzoo reproduce table4 --methods ood_cmnist_irm --out x"],
              "wall_seconds": [1.0, 2.0, 3.0]}
    new = dataclasses.replace(old, epochs={**old.epochs, "ood_cmnist_irm": old.epochs["ood_cmnist_irm"] + 1})
    kept = table4_records.keep_same_budget(record, new)
    assert [r["method"] for r in kept["runs"]] == ["IRM", "ERM", "ood_cmnist", "ood_cmnist_semi"]
    assert kept["commands"] == record["commands"][:2] and kept["wall_seconds"] == [1.0, 2.0]
    assert kept["budget"] == dataclasses.asdict(new)
    assert table4_records.keep_same_budget(record, old)["runs"] == runs  # the same budget keeps everything
    # a baseline field changed: only the entries' records stay; a shared field: nothing is kept
    assert [r["method"] for r in table4_records.keep_same_budget(record, dataclasses.replace(old, baseline_steps=3))["runs"]] == [
        "ood_cmnist", "ood_cmnist_semi", "ood_cmnist_irm"]
    assert table4_records.keep_same_budget(record, dataclasses.replace(old, test_limit=10)) is None
    # records written when every entry had one number of epochs and one batch size
    legacy = {**record, "budget": {**dataclasses.asdict(old), "epochs": old.epochs["ood_cmnist"],
                                   "batch_size": old.batch_size["ood_cmnist"]}}
    assert [r["method"] for r in table4_records.keep_same_budget(legacy, old)["runs"]] == [
        "IRM", "ERM", "ood_cmnist", "ood_cmnist_semi"]


def test_records_from_before_the_precision_field_are_float32_baselines():
    old = dataclasses.asdict(table4.Budget())
    del old["baseline_precision"]
    runs = [{"method": m, "seed": 0, "train_acc": 0.5, "test_acc": 0.5, "seconds": 1.0} for m in ("IRM", "ood_cmnist")]
    record = {"budget": old, "runs": runs, "commands": ["mibzoo reproduce table4 --seeds 0 --methods IRM ood_cmnist"],
              "wall_seconds": [1.0]}
    assert table4_records.keep_same_budget(record, table4.Budget(baseline_precision="float32"))["runs"] == runs
    mixed = table4_records.keep_same_budget(record, table4.Budget(baseline_precision="mixed_bfloat16"))
    assert [r["method"] for r in mixed["runs"]] == ["ood_cmnist"]  # bfloat16 baselines are other runs


def test_a_command_without_baselines_keeps_the_recorded_precision(monkeypatch):
    from mibzoo.reproduce import ood_baselines

    monkeypatch.setattr(ood_baselines, "default_precision", lambda: "float32")  # a machine without AMX
    assert table4.default_baseline_precision(False, "mixed_bfloat16") == "mixed_bfloat16"  # only zoo rows
    assert table4.default_baseline_precision(True, "mixed_bfloat16") == "float32"  # it trains baselines
    assert table4.default_baseline_precision(False, None) == "float32"  # nothing recorded
    assert table4_records.recorded_precision(None) is None
    record = {"budget": {**dataclasses.asdict(table4.Budget()), "baseline_precision": "mixed_bfloat16"}}
    assert table4_records.recorded_precision(record) == "mixed_bfloat16"
    assert table4_records.recorded_precision({"budget": {"baseline_steps": 501}}) == "float32"  # written before the field


def test_a_command_whose_runs_are_all_redone_leaves_the_report():
    record = {"commands": ["mibzoo reproduce table4 --methods ood_cmnist ood_cmnist_irm",
                           "mibzoo reproduce table4 --seeds 0 --methods IRM", "mibzoo reproduce table4"],
              "wall_seconds": [1.0, 2.0, 3.0], "runs": []}
    kept = table4_records.drop_superseded(record, ["ood_cmnist", "ood_cmnist_semi", "ood_cmnist_irm"], [0, 1, 2, 3, 4])
    assert kept["commands"] == record["commands"][1:] and kept["wall_seconds"] == [2.0, 3.0]
    # fewer seeds than the earlier command ran: it still holds runs of its own
    assert table4_records.drop_superseded(record, ["ood_cmnist", "ood_cmnist_irm"], [0])["commands"] == record["commands"]
    assert table4_records.drop_superseded(record, ["IRM"], [0, 1])["commands"] == [record["commands"][0], record["commands"][2]]


def test_runs_no_longer_in_the_table_are_counted_against_the_command_that_trained_them():
    """A command that trains again some of an earlier command's runs leaves that command in the list
    (it still holds other runs) with its whole wall time: the seconds of the redone runs go to the
    last command whose methods and seeds hold them, and the budget leaves them out. So do runs
    dropped as another budget's."""
    runs = [{"method": m, "seed": s, "train_acc": 0.5, "test_acc": 0.5, "seconds": 60.0 if m == "ood_cmnist" else 300.0}
            for m in table4_records.DEFAULT_METHODS for s in range(5)]
    commands = ["mibzoo reproduce table4", "mibzoo reproduce table4 --seeds 0 1 --methods ood_cmnist"]
    record = {"runs": runs, "commands": commands, "wall_seconds": [1800.0, 130.0], "machines": ["M"] * 2,
              "machine": "M", "budget": dataclasses.asdict(table4.Budget())}
    # the second command trained seeds 0 and 1 of ood_cmnist again (60 s each in the first), but this record
    # was written without the field that says so: nothing is left out
    assert table4.budget_line(record).endswith("**missed** (32.2 min over 2 commands on M).")
    # a third command redoes ood_cmnist on seeds 1-2: seed 1 was the second command's, seed 2 the first's
    redone = table4_records.drop_superseded(table4_records.with_redone_runs(record, ["ood_cmnist"], [1, 2]),
                                            ["ood_cmnist"], [1, 2])
    assert table4_records.dropped_run_seconds(redone) == {commands[0]: 60.0, commands[1]: 60.0}
    assert redone["commands"] == commands
    assert "(30.2 min over 2 commands (their 32.2 min less 2.0 min of their runs that are no longer in the table) " \
           "on M)" in table4.budget_line(redone)
    # redoing seeds 0-1 as well drops the second command and its seconds; the first keeps its own
    all_four = table4_records.drop_superseded(table4_records.with_redone_runs(redone, ["ood_cmnist"], [0, 1, 2]),
                                              ["ood_cmnist"], [0, 1, 2])
    assert all_four["commands"] == commands[:1]
    assert table4_records.dropped_run_seconds(all_four) == {commands[0]: 120.0}
    # a change of the baselines' precision drops the first command's baseline runs (15 × 300 s)
    other = table4_records.keep_same_budget(record, table4.Budget(baseline_precision="mixed_bfloat16"))
    assert table4_records.dropped_run_seconds(other) == {commands[0]: 4500.0}
    assert table4_records.dropped_run_seconds({"runs": []}) == {}  # records written before the field


def test_a_command_that_redoes_part_of_an_earlier_one_is_timed_without_the_redone_runs(tmp_path, monkeypatch):
    out = tmp_path / "docs"
    out.mkdir()
    monkeypatch.setattr(table4, "measure", _stopping_measure([]))  # 10 s a run
    table4.run(out, seeds=[0, 1], quick=True, methods=["ERM", "IRM"])
    table4.run(out, seeds=[1], quick=True, methods=["IRM"])
    record = json.loads((out / "results_ood_quick.json").read_text())
    assert record["commands"] == ["mibzoo reproduce table4 --quick --seeds 0 1 --methods ERM IRM --out " + str(out)
                                  + " --baseline-precision float32",
                                  "mibzoo reproduce table4 --quick --seeds 1 --methods IRM --out " + str(out)
                                  + " --baseline-precision float32"]
    assert record["dropped_run_seconds"] == {record["commands"][0]: 10.0}


def test_colour_neutral_accuracy_is_the_mean_of_the_test_env_and_its_colours_swapped():
    """A predictor that reads the colour alone, right where the colour agrees with the label: 10% on
    the test environment, 90% swapped, so 50% colour-neutral; one that ignores the colour scores the
    same on both, and that is its colour-neutral accuracy."""
    colour = {"method": "ERM", "seed": 0, "train_acc": 0.85, "test_acc": 0.1, "swapped_acc": 0.9, "seconds": 1.0}
    shape = {"method": "oracle", "seed": 0, "train_acc": 0.75, "test_acc": 0.73, "swapped_acc": 0.73, "seconds": 1.0}
    assert table4.colour_neutral_accuracy(colour) == pytest.approx(50.0)
    assert table4.colour_neutral_accuracy(shape) == pytest.approx(73.0)
    assert table4.colour_neutral_accuracy({**shape, "swapped_acc": None}) is None
    runs = [colour, {**colour, "seed": 1, "test_acc": 0.2, "swapped_acc": 0.86}, shape]
    summary = table4.summarize(runs)
    np.testing.assert_allclose(summary["ERM"]["swapped"], (88.0, np.std([90.0, 86.0], ddof=1)))
    np.testing.assert_allclose(summary["ERM"]["neutral"], (51.5, np.std([50.0, 53.0], ddof=1)))
    # One run without it (a record from before the column) leaves the method without the columns.
    assert table4.summarize(runs + [{**shape, "seed": 1, "swapped_acc": None}])["oracle"]["neutral"] is None
    record = {"commands": ["mibzoo reproduce table4"], "machine": "m", "versions": {}, "wall_seconds": [60.0],
              "budget": {}, "runs": runs}
    text = table4.render(record)
    assert "| test env, colours swapped | colour-neutral |" in text
    assert "| 15.0 ± 7.1 |  | 88.0 ± 2.8 | 51.5 ± 2.1 | 0, 1 |" in text
    assert "ood_cmnist_fishr (run on request" not in text  # its note comes with its rows
    fishr = table4.render({**record, "runs": runs + [{**shape, "method": "ood_cmnist_fishr_semi"}]})
    assert "| **ood_cmnist_fishr_semi** (ours) | 75.0 | 73.0 |" in fishr and "ood_cmnist_fishr (run on request" in fishr


def test_each_entry_trains_at_its_own_learning_rate_in_the_table():
    # The table's rate of every entry row is the rate `mibzoo train` takes from the entry's config
    # (optimizers.dist), so a user's run and the table's agree; the epochs and batch sizes cover every row.
    from mibzoo.registry import entry_spec

    entries = set(table4_records.ENTRY_OF.values())
    for budget in (table4.FULL, table4.QUICK):
        assert set(budget.epochs) == set(budget.batch_size) == set(budget.learning_rate) == entries
    for entry in entries:
        own = entry_spec(entry).config["optimizers"]["dist"]["learning_rate"]
        assert table4.FULL.learning_rate[entry] == own, entry
    assert table4.FULL.learning_rate == {"ood_cmnist": 5e-4, "ood_cmnist_irm": 5e-4, "ood_cmnist_fishr": 5e-4}


def test_records_with_one_learning_rate_stay_for_the_entries_that_still_train_at_it():
    # a budget in which ood_cmnist (and so its 50 %-label row) still trains at the old single rate
    budget = dataclasses.replace(table4.Budget(), learning_rate={**table4.Budget().learning_rate, "ood_cmnist": 1e-3})
    runs = [{"method": m, "seed": 0, "train_acc": 0.5, "test_acc": 0.5, "seconds": 1.0}
            for m in ("IRM", "ood_cmnist", "ood_cmnist_semi", "ood_cmnist_irm", "ood_cmnist_fishr",
                      "ood_cmnist_fishr_semi")]
    record = {"budget": {**dataclasses.asdict(budget), "learning_rate": 1e-3}, "runs": runs,
              "commands": ["mibzoo reproduce table4 --seeds 0"], "wall_seconds": [1.0]}
    kept = table4_records.keep_same_budget(record, budget)
    assert [r["method"] for r in kept["runs"]] == ["IRM", "ood_cmnist", "ood_cmnist_semi"]  # the others train at 5e-4


def test_the_fishr_entry_is_read_against_ood_cmnists_target_as_a_comparison():
    runs = [{"method": "ood_cmnist_fishr", "seed": s, "train_acc": 0.69, "test_acc": t, "seconds": 1.0}
            for s, t in enumerate([0.70, 0.66, 0.68])]
    lines = "\n".join(table4.target_lines(table4.summarize(runs)))
    assert "for comparison, ood_cmnist's target on ood_cmnist_fishr" in lines
    assert "≥ 66.9% with std < 6.1: **met** (68.0 ± 2.0, 3 seeds; 95 % interval of the mean 63.0–73.0, which holds" in lines
    low = [{**r, "test_acc": r["test_acc"] - 0.02} for r in runs]
    assert "**missed** (66.0 ± 2.0, 3 seeds;" in "\n".join(table4.target_lines(table4.summarize(low)))
    assert "ood_cmnist test-env accuracy ≥ 66.9% with std < 6.1: not run" in lines


class _Stop(Exception):
    """The command stopped (killed, out of time) in the middle of a run."""


def _stopping_measure(calls, stop_at=None):
    """A `table4.measure` that records its calls, scores from the method and seed, and stops the
    command at call number ``stop_at`` (1-based)."""
    def measure(method, seed, budget, data_dir=None):
        calls.append((method, seed))
        if len(calls) == stop_at:
            raise _Stop
        accuracy = 0.5 + 0.01 * seed + 0.1 * ("IRM" in method)
        return {"train_acc": accuracy, "test_acc": accuracy, "swapped_acc": accuracy, "env_acc": {0: 0.5, 1: 0.5}}, 10.0
    return measure


def test_a_stopped_command_given_again_resumes_training_only_the_runs_it_had_not_finished(tmp_path, monkeypatch):
    out, methods, seeds = tmp_path / "docs", ["ERM", "IRM"], [0, 1, 2]
    out.mkdir()
    json_path = out / "results_ood_quick.json"
    # an earlier command's row, kept by both parts of the stopped one
    monkeypatch.setattr(table4, "measure", _stopping_measure([]))
    table4.run(out, seeds=[0], quick=True, methods=["oracle"])
    calls = []
    monkeypatch.setattr(table4, "measure", _stopping_measure(calls, stop_at=4))
    with pytest.raises(_Stop):
        table4.run(out, seeds=seeds, quick=True, methods=methods)
    stopped = json.loads(json_path.read_text())
    assert stopped["unfinished"] is True and len(stopped["commands"]) == 2
    assert [(r["method"], r["seed"]) for r in stopped["runs"]] == [("oracle", 0), ("ERM", 0), ("ERM", 1), ("ERM", 2)]
    table4.run(out, seeds=seeds, quick=True, report_only=True)  # a report of what the stopped command measured
    assert "The last command stopped before its last run" in (out / "results_ood_quick.md").read_text()

    calls.clear()
    monkeypatch.setattr(table4, "measure", _stopping_measure(calls))
    table4.run(out, seeds=seeds, quick=True, methods=methods)
    assert calls == [("IRM", 0), ("IRM", 1), ("IRM", 2)]  # only what the stopped command had not finished
    record = json.loads(json_path.read_text())
    assert "unfinished" not in record
    assert [(r["method"], r["seed"]) for r in record["runs"]] == [
        ("oracle", 0), ("ERM", 0), ("ERM", 1), ("ERM", 2), ("IRM", 0), ("IRM", 1), ("IRM", 2)]
    assert [r["test_acc"] for r in record["runs"] if r["method"] == "IRM"] == pytest.approx([0.6, 0.61, 0.62])
    # one command in the report, whose minutes are the stopped part's and the rest's
    assert record["commands"] == [stopped["commands"][0], stopped["commands"][1]]
    assert record["wall_seconds"][0] == stopped["wall_seconds"][0]
    assert record["wall_seconds"][1] >= stopped["wall_seconds"][1]
    assert "The last command stopped" not in (out / "results_ood_quick.md").read_text()

    # finished, the same command again redoes every run; another command never resumes a stopped one
    calls.clear()
    table4.run(out, seeds=seeds, quick=True, methods=methods)
    assert len(calls) == 6
    monkeypatch.setattr(table4, "measure", _stopping_measure(calls, stop_at=len(calls) + 2))
    with pytest.raises(_Stop):
        table4.run(out, seeds=seeds, quick=True, methods=methods)
    calls.clear()
    monkeypatch.setattr(table4, "measure", _stopping_measure(calls))
    table4.run(out, seeds=[0, 1], quick=True, methods=methods)
    assert calls == [("ERM", 0), ("ERM", 1), ("IRM", 0), ("IRM", 1)]


def test_a_stopped_command_resumed_on_another_machine_keeps_each_parts_machine_and_minutes(tmp_path, monkeypatch):
    import mibzoo.run_records

    out = tmp_path / "docs"
    out.mkdir()
    calls = []
    monkeypatch.setattr(table4, "measure", _stopping_measure(calls, stop_at=2))
    monkeypatch.setattr(mibzoo.run_records, "machine", lambda: "machine A")
    with pytest.raises(_Stop):
        table4.run(out, seeds=[0, 1], quick=True, methods=["ERM"])
    monkeypatch.setattr(table4, "measure", _stopping_measure(calls))
    monkeypatch.setattr(mibzoo.run_records, "machine", lambda: "machine B")
    table4.run(out, seeds=[0, 1], quick=True, methods=["ERM"])
    assert calls == [("ERM", 0), ("ERM", 1), ("ERM", 1)]
    record = json.loads((out / "results_ood_quick.json").read_text())
    assert record["machines"] == ["machine A", "machine B"] and len(set(record["commands"])) == 1
    assert "command 1: machine A; command 2: machine B" in (out / "results_ood_quick.md").read_text()


def test_the_mean_interval_is_students_t_and_the_targets_say_when_it_holds_the_threshold():
    # t_{0.975} with 4 and 9 degrees of freedom (tables): 2.776445, 2.262157
    low, high = table4.mean_interval(66.5, 5.0, 5)
    assert (low + high) / 2 == pytest.approx(66.5) and (high - low) / 2 == pytest.approx(2.776445 * 5.0 / np.sqrt(5), rel=1e-6)
    assert (np.subtract(*table4.mean_interval(0.0, 3.0, 10)[::-1]) / 2) == pytest.approx(2.262157 * 3.0 / np.sqrt(10), rel=1e-6)
    assert table4.mean_interval(66.5, None, 1) is None
    # coverage: over many draws of 5 runs from a normal law, the interval holds the mean 95 % of the time
    rng = np.random.default_rng(0)
    draws = rng.normal(67.0, 4.0, size=(4000, 5))
    held = [lo < 67.0 < hi for lo, hi in (table4.mean_interval(d.mean(), d.std(ddof=1), 5) for d in draws)]
    assert np.mean(held) == pytest.approx(0.95, abs=0.015)

    def runs(method, accuracies):
        return [{"method": method, "seed": s, "train_acc": 0.7, "test_acc": a, "seconds": 1.0} for s, a in enumerate(accuracies)]
    tight = "\n".join(table4.target_lines(table4.summarize(runs("ERM", [0.150, 0.152, 0.154]))))
    assert "ERM test-env accuracy ≤ 20%: **met** (15.2 ± 0.2, 3 seeds; 95 % interval of the mean 14.7–15.7)." in tight
    spread = "\n".join(table4.target_lines(table4.summarize(runs("ood_cmnist", [0.712, 0.708, 0.602, 0.678, 0.626]))))
    assert "**missed** (66.5 ± 4.9, 5 seeds; 95 % interval of the mean 60.4–72.6, which holds the threshold" in spread


def test_records_from_before_epoch_selection_stay_only_for_the_rows_that_still_keep_their_last_epoch():
    old = dataclasses.asdict(table4.Budget())
    del old["select_from_epoch"]  # written before the field: every entry kept its last epoch
    runs = [{"method": m, "seed": 0, "train_acc": 0.5, "test_acc": 0.5, "seconds": 1.0}
            for m in ("IRM", "ood_cmnist", "ood_cmnist_semi", "ood_cmnist_irm")]
    record = {"budget": old, "runs": runs, "commands": ["mibzoo reproduce table4 --seeds 0"], "wall_seconds": [1.0]}
    assert table4.Budget().select_from_epoch == {"ood_cmnist_semi": 20}
    kept = table4_records.keep_same_budget(record, table4.Budget())
    # the 50 %-label row selects now; ood_cmnist, the same entry with all labels, keeps its last epoch
    assert [r["method"] for r in kept["runs"]] == ["IRM", "ood_cmnist", "ood_cmnist_irm"]
    unchanged = table4_records.keep_same_budget(record, table4.Budget(select_from_epoch={}))
    assert unchanged["runs"] == runs


def test_the_report_names_the_epoch_each_selecting_run_restored():
    runs = [{"method": "ood_cmnist_semi", "seed": s, "train_acc": 0.5, "test_acc": 0.5, "seconds": 1.0,
             "selected_epoch": e} for s, e in ((1, 27), (0, 22))]
    runs.append({"method": "ood_cmnist_irm", "seed": 0, "train_acc": 0.5, "test_acc": 0.5, "seconds": 1.0})
    lines = table4.selection_lines({"runs": runs, "budget": dataclasses.asdict(table4.Budget())})
    assert len(lines) == 2 and lines[1].endswith("ood_cmnist_semi from epoch 20 of 30: seed 0 epoch 22, seed 1 epoch 27.")
    assert table4.selection_lines({"runs": runs[2:], "budget": {}}) == []


@pytest.mark.parametrize("selection, message", [
    ({"ood_cmnist_sem": 20}, "Did you mean 'ood_cmnist_semi'"),
    ({"ood_cmnist_semi": 31}, "an epoch from 1 to the row's 30 epochs"),
    ({"ood_cmnist_semi": 0}, "an epoch from 1 to the row's 30 epochs"),
])
def test_a_selection_the_rows_cannot_make_is_refused_when_the_budget_is_made(selection, message):
    from mibzoo.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        table4.Budget(select_from_epoch=selection)
