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
