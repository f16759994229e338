"""Bad input gets a clear error from the model, not a stack trace from deep inside TensorFlow."""
import numpy as np
import pytest

import mibzoo
from mibzoo.errors import InputError
from tests.model_test_case import dataset, synthetic_batches, tiny_overrides


@pytest.fixture(scope="module")
def model():
    m = mibzoo.load("wyner_vae", **tiny_overrides("wyner_vae"))
    m.compile(optimizer="adam")
    return m


@pytest.fixture(scope="module")
def arrays(model):
    return synthetic_batches(model.modality_specs, n=32)


def test_unknown_modality_in_encode_suggests_the_right_one(model, arrays):
    with pytest.raises(InputError, match=r"unknown modality 'xx'.*\['x', 'y'\]\. Did you mean 'x'\?"):
        model.encode({"xx": arrays["x"]})


def test_unknown_target_in_generate(model, arrays):
    with pytest.raises(InputError, match=r"unknown target modality 'label'.*\['x', 'y'\]"):
        model.generate({"x": arrays["x"]}, target="label")


def test_wrong_shape(model, arrays):
    with pytest.raises(InputError, match=r"modality 'x' \(vector\) expects shape \[batch, 12\]; got \[32, 13\]"):
        model.encode({"x": np.zeros((32, 13), "float32")})


def test_wrong_dtype(model):
    with pytest.raises(InputError, match=r"modality 'x' \(vector\) expects floating-point values; got int32"):
        model.encode({"x": np.zeros((2, 12), "int32")})
    with pytest.raises(InputError, match=r"modality 'y' \(categorical, 4 classes\) expects integer class ids"):
        model.encode({"y": np.zeros((2, 3), "float32")})


def test_class_id_out_of_range(model):
    with pytest.raises(InputError, match=r"class ids must lie in \[0, 4\)"):
        model.encode({"y": np.array([0, 7], "int32")})


def test_nan_in_encode(model, arrays):
    x = arrays["x"].copy()
    x[3, 2] = np.nan
    with pytest.raises(InputError, match=r"modality 'x' contains NaN or Inf"):
        model.encode({"x": x})


def test_nan_in_a_training_batch_names_the_modality(model, arrays):
    bad = dict(arrays)
    bad["x"] = arrays["x"].copy()
    bad["x"][5, 0] = np.nan
    with pytest.raises(InputError, match=r"^wyner_vae: modality 'x' contains NaN or Inf values$"):
        model.fit(dataset(bad, 16), epochs=1, verbose=0)


def test_training_batch_without_any_modality(model):
    ds = dataset({"image": np.zeros((4, 12), "float32")}, 2)
    with pytest.raises(InputError, match=r"none of this model's modalities \['x', 'y'\]; got keys \['image'\]"):
        model.fit(ds, epochs=1, verbose=0)


def test_one_hot_and_integer_labels_agree(model, arrays):
    ids = arrays["y"][:6]
    a = model.encode({"y": ids})["loc"]
    b = model.encode({"y": np.eye(4, dtype="float32")[ids]})["loc"]
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


@pytest.mark.parametrize("values, message", [
    (np.full((2, 12), 3.0, "float32"), r"modality 'x' has a Bernoulli likelihood, so its values must lie in \[0, 1\]"),
    (np.full((2, 12), -0.5, "float32"), r"must lie in \[0, 1\]"),
])
def test_bernoulli_values_outside_the_unit_interval(model, values, message):
    with pytest.raises(InputError, match=message):
        model.encode({"x": values})


def test_fractional_class_ids_are_refused_not_rounded(model):
    with pytest.raises(InputError, match=r"modality 'y': class ids must be whole numbers"):
        model.encode({"y": np.array([1.0, 3.7], "float32")})


@pytest.mark.parametrize("rows", [[[0.5, 0.0, 0.0, 0.0]], [[1.0, 1.0, 0.0, 0.0]], [[2.0, -1.0, 0.0, 0.0]]])
def test_one_hot_rows_must_be_probability_rows(model, rows):
    with pytest.raises(InputError, match=r"one-hot rows over 4 classes must be non-negative and sum to 1"):
        model.encode({"y": np.array(rows, "float32")})


@pytest.mark.parametrize("mask", [[1.0, np.nan], [1.0, 2.0], [-3.0, 1.0], [0.5, 1.0]])
def test_presence_values_other_than_0_and_1(model, arrays, mask):
    with pytest.raises(InputError, match=r"'present' for 'y' must hold 0 or 1 per example"):
        model.encode({"x": arrays["x"][:2], "y": arrays["y"][:2]}, present={"y": np.array(mask, "float32")})


def test_presence_for_an_unknown_modality_or_of_the_wrong_length(model, arrays):
    with pytest.raises(InputError, match=r"'present' names unknown modality 'yy'.*Did you mean 'y'\?"):
        model.encode({"x": arrays["x"][:2]}, present={"yy": np.ones(2)})
    with pytest.raises(InputError, match=r"'present' for 'x' has 3 entries for a batch of 2"):
        model.encode({"x": arrays["x"][:2]}, present={"x": np.ones(3)})


def test_a_misspelled_modality_in_a_training_batch_is_named(model, arrays):
    typo = {"x": arrays["x"], "lable": arrays["y"]}
    model_y = mibzoo.load("wyner_vae", **{**tiny_overrides("wyner_vae"),
                                          "modalities": {"x": tiny_overrides("wyner_vae")["modalities"]["x"],
                                                         "label": tiny_overrides("wyner_vae")["modalities"]["y"]}})
    model_y.compile(optimizer="adam")
    with pytest.raises(InputError, match=r"no modality 'label'.*Is 'lable' a misspelling of 'label'\?.*'present'"):
        model_y.fit(dataset(typo, 16), epochs=1, verbose=0)


def test_empty_and_ragged_batches(model, arrays):
    with pytest.raises(InputError, match=r"the batch is empty \(0 examples\)"):
        model.encode({"x": np.zeros((0, 12), "float32")})
    with pytest.raises(InputError, match=r"different batch sizes x: 3, y: 2"):
        model.encode({"x": arrays["x"][:3], "y": arrays["y"][:2]})


@pytest.mark.parametrize("call, message", [
    (lambda m, a: m.generate({"x": a["x"][:2]}, target="y", num_samples=-1), r"num_samples must be a positive integer; got -1"),
    (lambda m, a: m.generate({"x": a["x"][:2]}, target="y", num_samples=2.5), r"num_samples must be a positive integer"),
    (lambda m, a: m.sample(-3), r"num_samples must be a positive integer; got -3"),
    (lambda m, a: m.sample(0), r"num_samples must be a positive integer; got 0"),
    (lambda m, a: m.sample(2, seed="abc"), r"seed must be None, a non-negative integer or an int32 \[2\] array; got 'abc'"),
    (lambda m, a: m.sample(2, seed=-1), r"seed must be non-negative"),
    (lambda m, a: m.sample(2, seed=np.zeros(3, "int32")), r"got int32 of shape \[3\]"),
    (lambda m, a: m.sample(2, mode="median"), r"mode must be 'mean' .* or 'sample'"),
    (lambda m, a: m.encode({"x": "pixels"}), r"modality 'x' \(vector\) expects floating-point values; got string"),
    (lambda m, a: m.encode({"x": [[0.1], [0.2, 0.3]]}), r"modality 'x' is not a numeric array"),
])
def test_user_api_arguments(model, arrays, call, message):
    with pytest.raises(InputError, match=message):
        call(model, arrays)
