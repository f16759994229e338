"""Which records of an earlier `mibzoo reproduce table4` a new run keeps.

The baselines cost 20+ minutes per run on a CPU and the zoo entries about a minute, so a change of
the entries' budget must not throw the baselines' records away (and the other way round): each
kind of row depends on its own fields of `mibzoo.reproduce.table4.Budget` (`budget_fields`), and a
recorded command whose every run is redone leaves the report's command list (`drop_superseded`).
"""
import dataclasses

# The rows of the table, in the report's order.
METHODS = ("ERM", "IRM", "oracle", "Fishr", "ood_cmnist", "ood_cmnist_semi", "ood_cmnist_irm", "ood_cmnist_fishr",
           "ood_cmnist_fishr_semi")
# The rows a command runs without ``--methods``: issue 12's table, whose CPU budget is 30 minutes.
# A recorded command without ``--methods`` is read as having run these (`command_methods`), so a
# change of the tuple changes what the records say earlier commands ran.
# Rows the paper's Table 4 does not have are run on request: the baseline Fishr (Rame et al. 2022)
# and the entry ``ood_cmnist_fishr``, the framework's Fishr, with and without hidden labels.
DEFAULT_METHODS = ("ERM", "IRM", "oracle", "ood_cmnist", "ood_cmnist_semi", "ood_cmnist_irm")
# At least five seeds per row (issue 12; the paper reports mean ± std).
DEFAULT_SEEDS = (0, 1, 2, 3, 4)

# The budget fields each kind of row depends on: a change of the zoo entries' training keeps the
# baselines' records (20+ min each) and the other way round.
SHARED_FIELDS = ("test_limit", "run_eagerly")
BASELINE_FIELDS = ("baseline_train_limit", "baseline_steps", "baseline_hidden", "baseline_precision") + SHARED_FIELDS
ENTRY_FIELDS = ("epochs", "batch_size", "learning_rate", "critic_learning_rate", "train_limit", "predict_samples",
                "hidden_fraction", "select_from_epoch") + SHARED_FIELDS
BASELINE_METHODS = ("ERM", "IRM", "oracle", "Fishr")
# Budget fields added after records were first written, with the value those records had.
ADDED_FIELDS = {"baseline_precision": "float32", "select_from_epoch": {}}


# The zoo entry each entry row trains (the semi-supervised rows: the entry with hidden labels).
ENTRY_OF = {"ood_cmnist": "ood_cmnist", "ood_cmnist_semi": "ood_cmnist", "ood_cmnist_irm": "ood_cmnist_irm",
            "ood_cmnist_fishr": "ood_cmnist_fishr", "ood_cmnist_fishr_semi": "ood_cmnist_fishr"}


def budget_fields(method):
    """The `Budget` fields a row of ``method`` depends on."""
    return BASELINE_FIELDS if method in BASELINE_METHODS else ENTRY_FIELDS


# Fields keyed by table row rather than by zoo entry (a semi-supervised row apart from its entry's).
ROW_FIELDS = ("select_from_epoch",)


def budget_value(budget, field, method):
    """``budget[field]`` as row ``method`` sees it: per-entry fields are ``{entry: value}`` (a
    single number in records written before they were), `ROW_FIELDS` ``{row: value}``."""
    value = budget.get(field, ADDED_FIELDS.get(field))
    if isinstance(value, dict):
        return value.get(method if field in ROW_FIELDS else ENTRY_OF[method])
    return value


def _command_values(command, flag, default, convert=str):
    """The values a recorded command gave ``flag`` (``default`` when it did not give the flag)."""
    words = command.split()
    if flag not in words:
        return set(default)
    chosen = []
    for word in words[words.index(flag) + 1:]:
        if word.startswith("--"):
            break
        chosen.append(convert(word))
    return set(chosen)


def command_methods(command):
    """The methods a recorded command ran (`DEFAULT_METHODS` without ``--methods``)."""
    return _command_values(command, "--methods", DEFAULT_METHODS)


def _command_seeds(command):
    """The seeds a recorded command ran (the table's default seeds without ``--seeds``)."""
    return _command_values(command, "--seeds", DEFAULT_SEEDS, int)


def command_entries(record):
    """``[(command, wall seconds, machine)]`` of the commands ``record`` kept. Records written before
    each command's machine was kept name one machine, the one of the command that wrote them (the
    last): the earlier commands' machines are None, unknown."""
    commands = record.get("commands", [])
    machines = record.get("machines")
    if machines is None:
        machines = [None] * (len(commands) - 1) + [record.get("machine")] if commands else []
    return list(zip(commands, record.get("wall_seconds", []), machines))


def with_commands(record, entries):
    """``record`` with its commands, wall times and machines those of ``entries`` (`command_entries`);
    the dropped runs' seconds (`dropped_run_seconds`) of the commands it drops go with them."""
    kept = {c for c, _, _ in entries}
    return {**record, "commands": [c for c, _, _ in entries], "wall_seconds": [w for _, w, _ in entries],
            "machines": [m for _, _, m in entries],
            "dropped_run_seconds": {c: s for c, s in dropped_run_seconds(record).items() if c in kept}}


def dropped_run_seconds(record):
    """``{command: seconds}``: the seconds of runs each recorded command trained that are no longer in
    the table: trained again by a later command (`with_redone_runs`) or of another budget
    (`keep_same_budget`). They are part of the command's wall time but not of the table as it stands,
    so `mibzoo.reproduce.table4.budget_line` leaves them out. Empty in records written before it was
    kept."""
    return dict(record.get("dropped_run_seconds") or {})


def with_dropped_runs(record, runs):
    """``record`` with the seconds of ``runs`` (some of its run records, about to be dropped) counted
    against the commands that trained them (`dropped_run_seconds`). A run's command is the last
    recorded one whose methods and seeds hold it: a later command that trained it again would have
    replaced the record."""
    entries = command_entries(record)
    dropped = dropped_run_seconds(record)
    for run in runs:
        owners = [c for c, _, _ in entries if run["method"] in command_methods(c) and run["seed"] in _command_seeds(c)]
        if owners:
            dropped[owners[-1]] = round(dropped.get(owners[-1], 0.0) + float(run.get("seconds") or 0.0), 1)
    return {**record, "dropped_run_seconds": dropped}


def with_redone_runs(record, methods, seeds):
    """``record`` with the runs that a command running ``methods`` with ``seeds`` trains again
    counted against the commands that trained them (`with_dropped_runs`). Commands whose every run is
    redone leave the list anyway (`drop_superseded`), and their seconds with them (`with_commands`)."""
    return with_dropped_runs(record, [r for r in record.get("runs", []) if r["method"] in methods and r["seed"] in seeds])


def drop_superseded(record, methods, seeds):
    """``record`` without the commands (and their wall times and machines) whose every run is redone
    by a command running ``methods`` with ``seeds``."""
    return with_commands(record, [(c, w, m) for c, w, m in command_entries(record)
                                  if not (command_methods(c) <= set(methods) and _command_seeds(c) <= set(seeds))])


def keep_same_budget(record, budget):
    """The records of ``record`` measured with the fields of ``budget`` their method depends on
    (`budget_fields`); commands (and their wall times and machines) that ran only dropped methods go too.
    None when nothing is kept."""
    old, new = record.get("budget") or {}, dataclasses.asdict(budget)
    kept = [r for r in record.get("runs", [])
            if all((field in old or field in ADDED_FIELDS) and budget_value(old, field, r["method"]) == budget_value(new, field, r["method"])
                   for field in budget_fields(r["method"]))]
    if not kept:
        return None
    methods = {r["method"] for r in kept}
    record = with_dropped_runs(record, [r for r in record.get("runs", []) if r not in kept])
    return {**with_commands(record, [(c, w, m) for c, w, m in command_entries(record) if command_methods(c) & methods]),
            "runs": kept, "budget": new}


def recorded_precision(record):
    """The baselines' precision in the budget of ``record`` (None without a record)."""
    if record is None:
        return None
    return budget_value(record.get("budget") or {}, "baseline_precision", "IRM")
