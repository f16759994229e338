"""Every dataset builder on small generated raw files (no network): declared modalities,
shapes and dtypes, and the defining property of each construction."""
import numpy as np
import pytest

import mibzoo.data as data
from mibzoo.data.fixtures import write_raw_fixtures
from mibzoo.modalities import event_shape, normalize_modalities

LOCAL = ["local"]


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory):
    return write_raw_fixtures(tmp_path_factory.mktemp("data"))


def test_list_datasets_covers_every_experiment():
    assert data.list_datasets() == ["mnist", "mnist_label", "mnist_plus1", "mnist_label_unrelated", "mnist_svhn",
                                    "colored_mnist", "adult", "german"]


@pytest.mark.parametrize("name", data.list_datasets())
def test_declared_modalities_are_valid_specs(name):
    info = data.info(name)
    assert normalize_modalities(info.modalities, source=name) == info.modalities
    assert not set(info.modalities) & set(info.extras)
    assert set(info.splits) == {"train", "test"}
    assert info.description and info.citation and info.notes


def _expected_shape(spec):
    if spec["kind"] == "categorical":
        return ()
    return event_shape(spec)


@pytest.mark.parametrize("name", data.list_datasets())
@pytest.mark.parametrize("split", ["train", "test"])
def test_builder_produces_declared_keys_shapes_and_dtypes(fixture_dir, name, split):
    info = data.info(name)
    arrays = data.load_arrays(name, split, data_dir=fixture_dir, sources=LOCAL)
    assert list(arrays) == info.keys
    n = len(arrays[info.keys[0]])
    assert n > 0
    for key, spec in info.modalities.items():
        value = arrays[key]
        assert value.shape == (n,) + tuple(_expected_shape(spec)), key
        if spec["kind"] == "categorical":
            assert value.dtype == np.int32
            assert value.min() >= 0 and value.max() < spec["classes"]
        else:
            assert value.dtype == np.float32
        if spec["kind"] == "image":
            assert 0.0 <= value.min() and value.max() <= 1.0
        if spec["kind"] == "tabular":
            numeric, groups = spec["numeric"], spec["categorical"]
            onehot = value[:, numeric:]
            offsets = np.cumsum([0] + groups)
            for lo, hi in zip(offsets[:-1], offsets[1:]):
                np.testing.assert_array_equal(onehot[:, lo:hi].sum(axis=1), 1.0)
            assert len(spec["columns"]) == numeric + sum(groups)
    for key in info.extras:
        assert arrays[key].shape == (n,) and arrays[key].dtype == np.int32


def test_mnist_plus1_pairs_are_next_digits(fixture_dir):
    for split in ("train", "test"):
        arrays = data.load_arrays("mnist_plus1", split, data_dir=fixture_dir, sources=LOCAL)
        np.testing.assert_array_equal(arrays["digit_b"], (arrays["digit_a"] + 1) % 10)
        # image_a runs through the split once, in order: it is the plain MNIST split
        mnist = data.load_arrays("mnist", split, data_dir=fixture_dir, sources=LOCAL)
        np.testing.assert_array_equal(arrays["image_a"], mnist["image"])
        np.testing.assert_array_equal(arrays["digit_a"], mnist["digit"])


def test_mnist_label_unrelated_pairs_image_and_label_with_an_independent_image(fixture_dir):
    arrays = data.load_arrays("mnist_label_unrelated", "train", data_dir=fixture_dir, sources=LOCAL)
    mnist = data.load_arrays("mnist", "train", data_dir=fixture_dir, sources=LOCAL)
    np.testing.assert_array_equal(arrays["label"], arrays["digit"])
    np.testing.assert_array_equal(arrays["image"], mnist["image"])
    # The unrelated image is a permutation of the split's images, chosen without the digits.
    partner = np.random.default_rng(4).permutation(len(mnist["digit"]))
    np.testing.assert_array_equal(arrays["unrelated"], mnist["image"][partner])
    np.testing.assert_array_equal(arrays["digit_unrelated"], mnist["digit"][partner])
    assert np.mean(arrays["digit_unrelated"] == arrays["digit"]) < 0.5


def test_mnist_plus1_images_match_their_digits(fixture_dir):
    # every image_b is an image of the split whose digit is digit_b
    arrays = data.load_arrays("mnist_plus1", "test", data_dir=fixture_dir, sources=LOCAL)
    mnist = data.load_arrays("mnist", "test", data_dir=fixture_dir, sources=LOCAL)
    flat = mnist["image"].reshape(len(mnist["image"]), -1)
    lookup = {row.tobytes(): d for row, d in zip(flat, mnist["digit"])}
    for image, digit in zip(arrays["image_b"].reshape(len(flat), -1), arrays["digit_b"]):
        assert lookup[image.tobytes()] == digit


def test_colored_mnist_environments_have_irm_colour_label_agreement(fixture_dir):
    train = data.load_arrays("colored_mnist", "train", data_dir=fixture_dir, sources=LOCAL)
    test = data.load_arrays("colored_mnist", "test", data_dir=fixture_dir, sources=LOCAL)
    assert set(np.unique(train["env"])) == {0, 1} and set(np.unique(test["env"])) == {2}
    for env, expected, arrays in ((0, 0.9, train), (1, 0.8, train), (2, 0.1, test)):
        mask = arrays["env"] == env
        agreement = np.mean(arrays["colour"][mask] == arrays["label"][mask])
        # fixture environments hold 200-500 images: 0.06 is over 2.5 standard errors
        assert abs(agreement - expected) < 0.06, (env, agreement)
    # 25% label noise on top of digit < 5
    noise = np.mean(train["label"] != (train["digit"] < 5))
    assert abs(noise - 0.25) < 0.05
    # the digit sits in the colour's channel only
    image = train["image"]
    rows = np.arange(len(image))
    assert np.all(image[rows, :, :, 1 - train["colour"]] == 0)
    assert np.all(image[rows, :, :, train["colour"]].reshape(len(image), -1).max(axis=1) > 0)
    # the train prefix mixes environments (limit= keeps both)
    assert set(train["env"][:10]) == {0, 1}


def test_mnist_svhn_pairs_share_the_digit(fixture_dir):
    examples = data.build_examples("mnist_svhn", "train", data_dir=fixture_dir, sources=LOCAL)
    mnist = data.load_arrays("mnist", "train", data_dir=fixture_dir, sources=LOCAL)["digit"]
    svhn = data.ensure_group("svhn", fixture_dir, LOCAL).arrays["train_labels"]
    index_m, index_s = examples.columns["index_mnist"], examples.columns["index_svhn"]
    np.testing.assert_array_equal(mnist[index_m], svhn[index_s])
    np.testing.assert_array_equal(examples.columns["digit"], mnist[index_m])
    # MMVAE: each MNIST image is paired with several (20) SVHN images of its digit
    counts = np.bincount(index_m)
    assert counts[counts > 0].min() == 20
    assert set(np.unique(examples.columns["digit"][:50])) != {examples.columns["digit"][0]}  # mixed prefix


def test_constructions_are_deterministic(fixture_dir, tmp_path):
    # the same raw files in another directory give the same pairs and environments
    other = write_raw_fixtures(tmp_path)
    for name in ("mnist_plus1", "mnist_svhn", "colored_mnist", "german"):
        a = data.load_arrays(name, "train", data_dir=fixture_dir, sources=LOCAL)
        b = data.load_arrays(name, "train", data_dir=other, sources=LOCAL)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}.{key}")


def test_tabular_preprocessing(fixture_dir):
    for name in ("adult", "german"):
        train = data.load_arrays(name, "train", data_dir=fixture_dir, sources=LOCAL)
        test = data.load_arrays(name, "test", data_dir=fixture_dir, sources=LOCAL)
        numeric = data.info(name).modalities["x"]["numeric"]
        # standardized with train statistics: train numericals have mean 0 and std 1
        np.testing.assert_allclose(train["x"][:, :numeric].mean(axis=0), 0.0, atol=1e-5)
        np.testing.assert_allclose(train["x"][:, :numeric].std(axis=0), 1.0, atol=1e-4)
        assert set(np.unique(train["a"])) <= {0, 1} and set(np.unique(test["target"])) <= {0, 1}
    # adult: rows with '?' are dropped; sex is not among x's columns
    columns = data.info("adult").modalities["x"]["columns"]
    assert not any(c.startswith("sex") for c in columns)
    assert not any(c == "age" for c in data.info("german").modalities["x"]["columns"])
    adult_rows = (fixture_dir / "adult" / "raw" / "adult.data").read_text().strip().splitlines()
    kept = len(data.load_arrays("adult", "train", data_dir=fixture_dir, sources=LOCAL)["a"])
    assert kept == sum("?" not in row for row in adult_rows) < len(adult_rows)


def test_german_split_is_fixed_and_disjoint(fixture_dir):
    from mibzoo.data.tabular import german_split
    mask = german_split(1000)
    assert mask.sum() == 200
    np.testing.assert_array_equal(mask, german_split(1000))
    # The loaded splits: every raw row lands in exactly one of them.
    train = data.load_arrays("german", "train", data_dir=fixture_dir, sources=LOCAL)
    test = data.load_arrays("german", "test", data_dir=fixture_dir, sources=LOCAL)
    raw_rows = (fixture_dir / "german" / "raw" / "german.data").read_text().strip().splitlines()
    assert len(train["a"]) + len(test["a"]) == len(raw_rows) and len(test["a"]) == german_split(len(raw_rows)).sum()
    # Rows are compared on what identifies them before standardization: the one-hot groups, a, target.
    numeric = data.info("german").modalities["x"]["numeric"]

    def keys(arrays):
        return {tuple(np.round(x[numeric:], 3)) + (int(a), int(t), tuple(np.round(x[:numeric], 2)))
                for x, a, t in zip(arrays["x"], arrays["a"], arrays["target"])}
    assert not keys(train) & keys(test)


def test_other_raw_formats_idx_and_npz(tmp_path):
    from mibzoo.data import fixtures
    rng = np.random.default_rng(0)
    (tmp_path / "mnist" / "raw").mkdir(parents=True)
    (tmp_path / "svhn" / "raw").mkdir(parents=True)
    fixtures.write_mnist(tmp_path / "mnist" / "raw", 100, 40, rng, idx=True)
    fixtures.write_svhn(tmp_path / "svhn" / "raw", 50, 30, rng, npz=True)
    arrays = data.load_arrays("mnist_svhn", "test", data_dir=tmp_path, sources=LOCAL)
    assert arrays["mnist"].shape[1:] == (28, 28, 1) and arrays["svhn"].shape[1:] == (32, 32, 3)
    assert len(data.load_arrays("mnist", "train", data_dir=tmp_path, sources=LOCAL)["digit"]) == 100
