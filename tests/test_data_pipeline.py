"""The tf.data pipelines, the public API's argument handling and the `mibzoo data` command."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mibzoo.data as data
from mibzoo.data.fixtures import write_raw_fixtures

LOCAL = ["local"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory):
    return write_raw_fixtures(tmp_path_factory.mktemp("data"), groups=["mnist", "adult", "german"])


def _batches(ds):
    return [{k: v.numpy() for k, v in batch.items()} for batch in ds]


@pytest.mark.parametrize("name", ["mnist_label", "mnist_plus1", "colored_mnist", "adult", "german"])
def test_batches_are_dicts_with_declared_shapes(fixture_dir, name):
    info = data.info(name)
    ds = data.load(name, "train", batch_size=32, data_dir=fixture_dir, sources=LOCAL)
    batch = next(iter(ds))
    assert list(batch) == info.keys
    arrays = data.load_arrays(name, "train", data_dir=fixture_dir, sources=LOCAL, limit=1)
    for key, value in batch.items():
        assert value.shape[0] == 32
        assert tuple(value.shape[1:]) == arrays[key].shape[1:]
        assert value.dtype.name == arrays[key].dtype.name
    # static shapes (minus the batch dimension) are known to Keras
    for key, spec in ds.element_spec.items():
        assert spec.shape[1:].is_fully_defined(), key


def test_load_matches_load_arrays_without_shuffle(fixture_dir):
    batches = _batches(data.load("mnist_plus1", "test", batch_size=64, data_dir=fixture_dir, sources=LOCAL))
    arrays = data.load_arrays("mnist_plus1", "test", data_dir=fixture_dir, sources=LOCAL)
    for key in arrays:
        np.testing.assert_array_equal(np.concatenate([b[key] for b in batches]), arrays[key])


def test_shuffle_is_deterministic_given_seed_and_reshuffles_each_epoch(fixture_dir):
    def first_epochs(seed):
        ds = data.load("mnist", "train", batch_size=100, seed=seed, data_dir=fixture_dir, sources=LOCAL)
        return [np.concatenate([b["digit"] for b in _batches(ds)]) for _ in range(2)]

    a, b, c = first_epochs(7), first_epochs(7), first_epochs(8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])  # a new order every epoch
    assert not np.array_equal(a[0], c[0])  # another seed, another order
    assert sorted(a[0].tolist()) == sorted(a[1].tolist())  # the same examples


def test_fixed_prefetch_turns_autotuning_off_and_keeps_the_batches_in_their_order(fixture_dir):
    import tensorflow as tf

    from mibzoo.data.pipeline import fixed_prefetch

    def shuffled():  # a new dataset each time: reshuffling state is per dataset
        return tf.data.Dataset.range(300).shuffle(300, seed=5, reshuffle_each_iteration=True).batch(64)

    def three_epochs(ds):
        return [np.concatenate([batch.numpy() for batch in ds]) for _ in range(3)]

    fixed = fixed_prefetch(shuffled())
    assert fixed.options().autotune.enabled is False
    autotuned = three_epochs(shuffled().prefetch(tf.data.AUTOTUNE))
    for ours, theirs in zip(three_epochs(fixed), autotuned):
        np.testing.assert_array_equal(ours, theirs)
    assert not np.array_equal(autotuned[0], autotuned[1])  # the epochs do reshuffle
    # mibzoo.data.load's pipeline ends in it
    assert data.load("mnist", "train", batch_size=100, data_dir=fixture_dir, sources=LOCAL).options().autotune.enabled is False
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="positive number of batches"):
            fixed_prefetch(shuffled(), bad)


def test_shuffled_batches_reshuffle_all_rows_with_the_seed_and_keep_nested_columns_aligned():
    import tensorflow as tf

    from mibzoo.data.pipeline import shuffled_batches

    arrays = {"x": np.arange(250), "present": {"y": np.arange(250) * 10}}
    ds = shuffled_batches(arrays, 64, seed=3)
    assert ds.options().autotune.enabled is False
    epochs = [[(b["x"].numpy(), b["present"]["y"].numpy()) for b in ds] for _ in range(2)]
    assert [len(x) for x, _ in epochs[0]] == [64, 64, 64, 58]
    orders = [np.concatenate([x for x, _ in epoch]) for epoch in epochs]
    for epoch in epochs:  # rows stay whole across nested columns
        for x, y in epoch:
            np.testing.assert_array_equal(y, x * 10)
    assert sorted(orders[0].tolist()) == list(range(250))  # every row once
    assert not np.array_equal(orders[0], orders[1])  # a new order every epoch
    # the order of a whole-set shuffle buffer with that seed
    reference = tf.data.Dataset.range(250).shuffle(250, seed=3, reshuffle_each_iteration=True)
    np.testing.assert_array_equal(orders[0], np.array(list(reference.as_numpy_iterator())))


def test_cache_modes_give_identical_batches(fixture_dir, tmp_path):
    kwargs = dict(batch_size=50, seed=3, limit=300, data_dir=fixture_dir, sources=LOCAL)
    reference = _batches(data.load("colored_mnist", **kwargs, cache=True))
    for cache in (False, str(tmp_path / "cache")):
        other = _batches(data.load("colored_mnist", **kwargs, cache=cache))
        for x, y in zip(reference, other):
            for key in x:
                np.testing.assert_array_equal(x[key], y[key])


def test_limit_and_drop_remainder(fixture_dir):
    ds = data.load("german", "train", batch_size=30, limit=70, drop_remainder=True, data_dir=fixture_dir,
                   sources=LOCAL)
    sizes = [len(b["x"]) for b in _batches(ds)]
    assert sizes == [30, 30]
    assert ds.element_spec["x"].shape[0] == 30
    assert len(data.load_arrays("german", "test", limit=5, data_dir=fixture_dir, sources=LOCAL)["x"]) == 5


def test_bad_arguments_are_explained(fixture_dir):
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist_plus_1'.*Did you mean 'mnist_plus1'"):
        data.load("mnist_plus_1")
    with pytest.raises(ValueError, match="available: mnist, mnist_label"):
        data.info("cifar")
    with pytest.raises(ValueError, match=r"unknown split 'validation'.*\['train', 'test'\]"):
        data.load_arrays("mnist", "validation", data_dir=fixture_dir)
    with pytest.raises(ValueError, match="batch_size"):
        data.load("mnist", batch_size=0, data_dir=fixture_dir)
    with pytest.raises(ValueError, match="data sources"):
        data.load_arrays("mnist", data_dir=fixture_dir, sources=["internet"])


def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv(data.ENV_DATA_DIR, raising=False)
    assert data.data_root() == (Path.home() / ".cache" / "mibzoo" / "data").resolve()
    monkeypatch.setenv(data.ENV_DATA_DIR, str(tmp_path / "env"))
    assert data.data_root() == (tmp_path / "env").resolve()
    assert data.data_root(tmp_path / "arg") == (tmp_path / "arg").resolve()


def test_importing_mibzoo_data_imports_neither_tensorflow_nor_other_mibzoo_modules():
    # mibzoo/__init__.py is bypassed so that only mibzoo.data's own imports are seen. Besides the
    # spec and error modules, only the standard-library-only mibzoo.files (atomic writes) is allowed.
    code = (
        "import sys, types\n"
        f"pkg = types.ModuleType('mibzoo'); pkg.__path__ = [{str(REPO / 'mibzoo')!r}]\n"
        "sys.modules['mibzoo'] = pkg\n"
        "import mibzoo.data, mibzoo.data.cli\n"
        "mods = sorted(m for m in sys.modules if m.startswith('mibzoo.') and not m.startswith('mibzoo.data'))\n"
        "assert mods == ['mibzoo.errors', 'mibzoo.files', 'mibzoo.modalities'], mods\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def _cli(argv):
    """Runs `mibzoo ARGV` with only the data sub-command registered (as mibzoo.cli.main does)."""
    import argparse
    from mibzoo import cli
    from mibzoo.data.cli import register
    assert "mibzoo.data.cli" in cli._SUBCOMMAND_MODULES
    parser = argparse.ArgumentParser(prog="mibzoo")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:  # as mibzoo.cli.main
        print(f"mibzoo {args.command}: error: {err}", file=sys.stderr)
        return 2


def test_cli_list_and_fetch(fixture_dir, capsys):
    main = _cli
    assert main(["data", "list", "--data-dir", str(fixture_dir)]) == 0
    out = capsys.readouterr().out
    assert "mnist_plus1" in out and "colored_mnist" in out and str(fixture_dir) in out
    assert main(["data", "fetch", "german", "--data-dir", str(fixture_dir), "--sources", "local"]) == 0
    out = capsys.readouterr().out
    assert "german: 6 files" in out and "local files" in out
    # a dataset that cannot be had exits 2 with the full explanation, no traceback
    assert main(["data", "fetch", "svhn", "--data-dir", str(fixture_dir), "--sources", "local"]) == 2
    err = capsys.readouterr().err
    assert "no source could provide the 'svhn' data" in err and "train_32x32.mat" in err


def test_fetch_returns_prepared_paths(fixture_dir):
    paths = data.fetch("mnist_plus1", data_dir=fixture_dir, sources=LOCAL)
    assert list(paths) == ["mnist"]
    assert sorted(p.name for p in paths["mnist"]) == ["test_images.npy", "test_labels.npy",
                                                       "train_images.npy", "train_labels.npy"]
    assert all(p.is_file() for p in paths["mnist"])


def test_model_fit_accepts_the_batches(fixture_dir):
    # a plain Keras model consumes the dict batches (extra keys are simply not used)
    import keras
    ds = data.load("mnist_label", "train", batch_size=64, limit=256, data_dir=fixture_dir, sources=LOCAL)
    ds = ds.map(lambda b: (b["image"], b["label"]))
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_tfds_source_is_used_when_no_local_files(tmp_path, monkeypatch):
    # a stand-in for tensorflow_datasets: the real one needs the internet to download
    import types
    rng = np.random.default_rng(0)
    calls = []

    def fake_load(name, split, batch_size, as_supervised, download):
        calls.append((name, split))
        n = 30 if split == "train" else 10
        return rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8), np.arange(n) % 10

    fake = types.SimpleNamespace(load=fake_load, as_numpy=lambda x: x)
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
    arrays = data.load_arrays("mnist", "train", data_dir=tmp_path, sources=["local", "tfds"])
    assert calls == [("mnist", "train"), ("mnist", "test")]
    assert arrays["image"].shape == (30, 28, 28, 1)
    manifest = data.cache.read_manifest(tmp_path / "mnist" / "prepared")
    assert manifest["source"] == "tfds:mnist"
