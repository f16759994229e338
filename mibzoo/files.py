"""Atomic file writes: a reader (a user, a polling TF Serving, another process) never sees a
half-written file. Standard library only, so every module may use it."""
import contextlib
import os
import tempfile
from pathlib import Path


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
    another user).

    Args:
        path: the final file path; its directory is created if missing.
        suffix: suffix of the temporary name (writers that check extensions, such as Keras'
            ``.keras`` or matplotlib's format inference, need the real one).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
