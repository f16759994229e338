"""A training run's checkpoints and history, written so that a resumed run counts every epoch once.

``RUN_DIR/checkpoints/manifest.json`` is the single source of truth: the history row of every
finished epoch and, for each kept checkpoint file, its epoch and SHA-256. After an epoch the run

1. writes ``epoch_NNNN.keras`` under a temporary name and renames it into place,
2. rewrites the manifest (atomically) with that epoch's history row and the file's checksum,
3. rewrites ``RUN_DIR/history.csv`` from the manifest (atomically),
4. deletes checkpoint files the manifest no longer keeps.

A process killed anywhere in between leaves a run that resumes exactly once per epoch: a file
that is not in the manifest (killed between 1 and 2) is not trusted, so its epoch is trained
again and gets its history row then; a manifest ahead of ``history.csv`` (killed between 2 and
3) rewrites the CSV on resume. A checkpoint whose bytes no longer match its checksum (truncated,
overwritten) is skipped with a warning naming the file, and the run resumes from the newest
intact one, its later history rows dropped.
"""
import csv
import io
import json
import math
import pathlib
import re
import warnings

from mibzoo.files import atomic_path, remove_stale_temporaries, sha256_file

MANIFEST = "manifest.json"
HISTORY_CSV = "history.csv"
_CHECKPOINT_NAME = re.compile(r"^epoch_(\d{4,})\.keras$")


class CorruptFileError(ValueError):
    """A file's bytes do not match the checksum recorded when it was written."""


def save_model_atomic(model, path):
    """Saves a ``.keras`` file under a temporary name, renames it into place; returns its SHA-256."""
    with atomic_path(path, suffix=".keras") as tmp:  # Keras insists on the extension
        model.save(tmp)
        digest = sha256_file(tmp)
    return digest


def verify(path, expected_sha256, what="file"):
    """Raises `CorruptFileError` unless ``path`` exists and its SHA-256 is ``expected_sha256``."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} is missing")
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise CorruptFileError(f"{what} {path} is corrupt: its SHA-256 {actual[:12]}… differs from "
                               f"{expected_sha256[:12]}… recorded when it was written (truncated or overwritten)")


def _finite(value):
    value = float(value)
    return value if math.isfinite(value) else str(value)  # JSON has no NaN; keep it readable


class RunCheckpoints:
    """The checkpoints and history of one run directory.

    With ``select``, the checkpoint of the epoch whose history row has the smallest value of that
    logs key is kept as well, however old (the earliest on a tie, as Keras' ``EarlyStopping``), and
    the manifest names it under ``"selected"``: a run that keeps its most invariant epoch
    (`mibzoo.callbacks.InvarianceReading`) restores it at the end, also after a resume. The
    selection is derived from the history rows, so it rewinds with them.

    Args:
        run_dir: the run directory; checkpoints live in ``run_dir/checkpoints``.
        keep: how many checkpoint files to keep (the newest ones).
        select: optional logs key whose smallest value selects an epoch to keep.
    """

    def __init__(self, run_dir, keep=2, select=None):
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep: got {keep!r}, expected a positive integer")
        if select is not None and (not isinstance(select, str) or not select):
            raise ValueError(f"select: got {select!r}, expected a logs key (a non-empty string) or None")
        self.run_dir = pathlib.Path(run_dir)
        self.folder = self.run_dir / "checkpoints"
        self.keep = keep
        self.select = select

    # ----- the manifest ----------------------------------------------------------------------
    def manifest(self):
        """``{"history": [{"epoch": e, **logs}], "checkpoints": [{"epoch", "file", "sha256"}]}``."""
        path = self.folder / MANIFEST
        if not path.is_file():
            return {"history": [], "checkpoints": []}
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)

    def _write(self, manifest):
        if self.select is not None:
            manifest = {**manifest, "selected": self._selection(manifest["history"], manifest["checkpoints"])}
        self._write_manifest(manifest)
        self._write_history(manifest["history"])

    def _selection(self, history, checkpoints):
        """``{"epoch" (1-based), "file", "sha256", "monitor", "value"}`` of the history row with the
        smallest ``select`` value among those whose checkpoint is listed, or None."""
        files = {c["epoch"]: c for c in checkpoints}
        best = None
        for row in history:
            value = row.get(self.select)
            if isinstance(value, (int, float)) and math.isfinite(value) and row["epoch"] + 1 in files \
                    and (best is None or value < best["value"]):
                best = {**files[row["epoch"] + 1], "monitor": self.select, "value": value}
        return best

    def selected(self):
        """The selected checkpoint ``{"epoch", "file", "sha256", "monitor", "value", "path"}``, or None
        (no ``select``, or no epoch read yet)."""
        if self.select is None:
            return None
        manifest = self.manifest()
        chosen = self._selection(manifest["history"], manifest["checkpoints"])
        return None if chosen is None else {**chosen, "path": self.folder / chosen["file"]}

    def _write_manifest(self, manifest):
        with atomic_path(self.folder / MANIFEST) as tmp:
            tmp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")

    def _write_history(self, rows):
        with atomic_path(self.run_dir / HISTORY_CSV) as tmp:
            tmp.write_text(history_csv(rows), encoding="utf-8")

    def history(self):
        """The history rows of the finished epochs, oldest first (``epoch`` counts from 0)."""
        return list(self.manifest()["history"])

    # ----- writing ---------------------------------------------------------------------------
    def save(self, model, epochs_done, logs):
        """Checkpoints ``model`` after epoch ``epochs_done`` (1-based) with that epoch's ``logs``."""
        name = f"epoch_{epochs_done:04d}.keras"
        digest = save_model_atomic(model, self.folder / name)
        manifest = self.manifest()
        history = [row for row in manifest["history"] if row["epoch"] < epochs_done - 1]
        history.append({"epoch": epochs_done - 1, **{k: _finite(v) for k, v in sorted((logs or {}).items())}})
        listed = [c for c in manifest["checkpoints"] if c["epoch"] < epochs_done]
        listed.append({"epoch": epochs_done, "file": name, "sha256": digest})
        kept = listed[-self.keep:]
        chosen = self._selection(history, listed) if self.select is not None else None
        if chosen is not None and chosen["epoch"] < kept[0]["epoch"]:
            kept = [c for c in listed if c["epoch"] == chosen["epoch"]] + kept
        self._write({"history": history, "checkpoints": kept})
        self._remove_unlisted(kept)

    def _remove_unlisted(self, kept):
        listed = {c["file"] for c in kept}
        for path in self.folder.iterdir():
            if _CHECKPOINT_NAME.match(path.name) and path.name not in listed:
                path.unlink(missing_ok=True)

    # ----- resuming --------------------------------------------------------------------------
    def resume_point(self):
        """``(epochs_done, path)`` of the newest intact checkpoint, or ``(0, None)``.

        Rewinds the manifest to it: checkpoints that fail their checksum are skipped with a warning
        naming the file, later history rows are dropped, files the manifest does not list (a kill
        before the manifest was written) are deleted, and ``history.csv`` is rewritten. Temporaries
        of killed writers are removed.
        """
        remove_stale_temporaries(self.folder)
        remove_stale_temporaries(self.run_dir)
        manifest = self.manifest()
        point, kept = (0, None), []
        for entry in sorted(manifest["checkpoints"], key=lambda c: c["epoch"], reverse=True):
            path = self.folder / entry["file"]
            try:
                verify(path, entry["sha256"], "checkpoint")
            except (CorruptFileError, FileNotFoundError) as err:
                warnings.warn(f"{err}; resuming from an older checkpoint", RuntimeWarning, stacklevel=2)
                continue
            point = (entry["epoch"], path)
            kept = [c for c in manifest["checkpoints"] if c["epoch"] <= entry["epoch"] and c is not entry] + [entry]
            break
        history = [row for row in manifest["history"] if row["epoch"] < point[0]]
        if self.select is not None:
            kept = self._intact_selection(history, kept)
        if self.folder.is_dir():
            self._write({"history": history, "checkpoints": kept})
            self._remove_unlisted(kept)
        return point

    def _intact_selection(self, history, kept):
        """``kept`` without the selected checkpoints that fail their checksum, until the selected one
        passes (warning for each; the next smallest reading whose checkpoint is kept is selected)."""
        while True:
            chosen = self._selection(history, kept)
            if chosen is None:
                return kept
            try:
                verify(self.folder / chosen["file"], chosen["sha256"], "checkpoint")
                return kept
            except (CorruptFileError, FileNotFoundError) as err:
                warnings.warn(f"{err}; the run selects among the other kept epochs", RuntimeWarning, stacklevel=3)
                kept = [c for c in kept if c["epoch"] != chosen["epoch"]]


def history_csv(rows):
    """CSV text of history rows: ``epoch`` first, then every logged value by name."""
    keys = sorted({k for row in rows for k in row if k != "epoch"})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["epoch"] + keys, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue()
