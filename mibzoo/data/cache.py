"""The on-disk data cache: where it lives, atomic writes and checksummed manifests.

Layout under the data directory (see :func:`data_root`)::

    ROOT/<group>/raw/          original files (placed by hand, or extracted from a package)
    ROOT/<group>/raw/MANIFEST.json       sha256 of every raw file mibzoo wrote itself
    ROOT/<group>/prepared/     parsed arrays as .npy files
    ROOT/<group>/prepared/MANIFEST.json  sha256, shape and dtype of every prepared file

Every file is written under a temporary name in the same directory and renamed into place
(``os.replace`` is atomic on POSIX and Windows), and a manifest is written only after the files it
lists: a reader that finds a manifest finds complete files, and a crash leaves at worst an
unlisted file that is prepared again.
"""
import contextlib
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from mibzoo.files import atomic_path  # noqa: F401 (part of this module's API)

ENV_DATA_DIR = "MIBZOO_DATA_DIR"
DEFAULT_DATA_DIR = Path("~") / ".cache" / "mibzoo" / "data"
MANIFEST = "MANIFEST.json"

# sha256 results keyed by (path, size, mtime_ns): a file is hashed once per process unless it
# changes, so repeated loads of a 50 MB array do not pay for hashing again.
_HASH_MEMO = {}


def data_root(data_dir=None):
    """Returns the data directory: ``data_dir`` > ``$MIBZOO_DATA_DIR`` > ``~/.cache/mibzoo/data``.

    Args:
        data_dir: an explicit directory (str or Path), or None.
    """
    chosen = data_dir or os.environ.get(ENV_DATA_DIR) or DEFAULT_DATA_DIR
    return Path(chosen).expanduser().resolve()


def sha256_file(path, chunk=1 << 20):
    """Returns the hex sha256 of a file (memoized on path, size and modification time)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASH_MEMO:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(chunk), b""):
                digest.update(block)
        _HASH_MEMO[key] = digest.hexdigest()
    return _HASH_MEMO[key]


@contextlib.contextmanager
def locked(directory):
    """Holds an exclusive lock on ``directory`` (a ``.lock`` file) while the block runs.

    Two processes preparing the same data then take turns instead of deleting each other's
    files; the second finds the first one's result. Without ``fcntl`` (Windows) it does not lock.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(directory / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_bytes_atomic(path, data):
    """Writes ``data`` (bytes) to ``path`` atomically; returns its sha256."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def save_array_atomic(path, array):
    """Saves one numpy array as ``.npy`` atomically; returns the file's sha256.

    ``.npy`` bytes depend only on dtype, shape and data (unlike ``.npz`` zip timestamps), so
    the same array always gets the same checksum.
    """
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)
    return sha256_file(path)


def read_manifest(directory):
    """Returns the manifest dict of ``directory``, or None if it has none or it is unreadable."""
    path = Path(directory) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def write_manifest(directory, manifest):
    """Writes ``manifest`` (a JSON-serializable dict) as the manifest of ``directory``."""
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    write_bytes_atomic(Path(directory) / MANIFEST, text.encode("utf-8"))


def remove_manifest(directory):
    """Removes the manifest of ``directory`` if present (its files then count as absent)."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(Path(directory) / MANIFEST)


def check_file(path, expected_sha256, expected_bytes=None):
    """Checks one file against its recorded size and sha256.

    Returns:
        None when the file matches, else a sentence saying what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        return f"{path} is missing"
    size = path.stat().st_size
    if expected_bytes is not None and size != expected_bytes:
        return (f"{path} has {size} bytes, expected {expected_bytes} "
                f"(truncated or altered; sha256 check skipped)")
    actual = sha256_file(path)
    if actual != expected_sha256:
        return f"{path} has sha256 {actual}, expected {expected_sha256} (corrupted or altered)"
    return None


def human_bytes(n):
    """Formats a byte count as e.g. '47.0 MB' (powers of 1000, as file managers show)."""
    if n < 1000:
        return f"{n} B"
    for unit in ("kB", "MB", "GB"):
        n /= 1000.0
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}"
