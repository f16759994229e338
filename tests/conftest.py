"""Test-session setup shared by every test module.

Two logical CPU devices are configured before TensorFlow initializes its devices, so that
`tf.distribute.MirroredStrategy` can be tested on a machine without GPUs.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
except RuntimeError:  # devices already initialized by an earlier import; MirroredStrategy tests skip
    pass
# pytest-xdist runs several test processes: on a GPU each would otherwise reserve all its memory.
for _gpu in tf.config.list_physical_devices("GPU"):
    try:
        tf.config.experimental.set_memory_growth(_gpu, True)
    except RuntimeError:
        pass


@pytest.fixture(params=["eager", "function"])
def run_mode(request):
    """Runs a function eagerly or under `tf.function` (TFP-style dual-mode tests)."""
    if request.param == "eager":
        return lambda fn, *args: fn(*args)
    return lambda fn, *args: tf.function(fn)(*args)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def fairness_data_dir(tmp_path_factory):
    """A data directory with small generated raw Adult and German files (load with ``sources=["local"]``)."""
    from mibzoo.data.fixtures import write_raw_fixtures
    folder = tmp_path_factory.mktemp("fairness_data")
    write_raw_fixtures(folder, groups=["adult", "german"])
    return folder


def pytest_collection_modifyitems(config, items):
    """``@pytest.mark.slow`` tests are opt-in (pytest.ini): skipped unless ``-m`` names ``slow``."""
    if "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: opt in with `-m slow`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
