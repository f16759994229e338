"""Atomic file writes, checksums and the cleanup of what killed writers leave behind.

A reader (a user, a polling TF Serving, another process) never sees a half-written file: writes go
to a temporary name in the same directory and are renamed into place. Temporary names carry the
writer's process id (``.NAME.pid<pid>.<random><suffix>``, ``.PREFIX-pid<pid>-<random>``), so a later
run can tell the leftovers of a killed writer (its process is gone) from the work of a live one and
remove only the former (`remove_stale_temporaries`). Standard library only, so every module may use it.
"""
import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

# Names of temporaries written by `atomic_path` and `temporary_directory`, with the writer's pid.
_TEMPORARY = re.compile(r"^\..*?[.-]pid(?P<pid>\d+)[.-]")


def current_umask():
    """The process umask, read without changing it (os.umask would race other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


@contextlib.contextmanager
def atomic_path(path, suffix=".part"):
    """Yields a temporary path next to ``path``; renames it to ``path`` if the block succeeds.

    On an exception the temporary file is removed and ``path`` is left as it was. The file gets
    the permissions of an ordinary new file (mkstemp's are owner-only; a server may run as
    another user). A writer killed inside the block leaves ``.NAME.pid<pid>.<random><suffix>``, which
    `remove_stale_temporaries` removes once that process is gone.

    Args:
        path: the final file path; its directory is created if missing.
        suffix: suffix of the temporary name (writers that check extensions, such as Keras'
            ``.keras`` or matplotlib's format inference, need the real one).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{temporary_tag()}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path, text):
    """Writes UTF-8 ``text`` to ``path`` atomically (`atomic_path`): readers never see half a file."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def temporary_tag():
    """``pid<pid>``: the part of a temporary name that says which process writes it."""
    return f"pid{os.getpid()}"


def temporary_directory(parent, prefix):
    """Creates ``PARENT/.PREFIX-pid<pid>-<random>`` with ordinary permissions and returns its Path.

    The caller renames it into place or removes it; a killed caller's directory is removed by
    `remove_stale_temporaries` once its process is gone.
    """
    path = Path(tempfile.mkdtemp(prefix=f".{prefix}-{temporary_tag()}-", dir=parent))
    # mkdtemp makes the directory private (0700); a server may run as another user.
    os.chmod(path, 0o777 & ~current_umask())
    return path


def _process_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder):
    """Removes the temporaries in ``folder`` whose writing process no longer runs; returns them.

    Only names written by `atomic_path` and `temporary_directory` are considered; a temporary of a
    live process (this one included) is left alone, so concurrent writers are safe.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for child in folder.iterdir():
        match = _TEMPORARY.match(child.name)
        if not match or _process_alive(int(match.group("pid"))):
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
        removed.append(child)
    return removed


def sha256_file(path, chunk=1 << 20):
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
