"""The model field ``expert_output``: what an encoder's first D_z outputs are (the expert's natural
parameter η = μ / σ², the default, or its mean μ), against the encoder's raw outputs in NumPy."""
import numpy as np
import pytest

import mibzoo
from mibzoo.errors import ConfigError
from mibzoo.inference import LOGVAR_MAX, LOGVAR_MIN
from tests.model_test_case import TINY_LABEL, TINY_SHARED, TINY_VECTOR, synthetic_batches

PAIR = {"x": dict(TINY_VECTOR), "y": dict(TINY_LABEL)}


@pytest.mark.parametrize("expert_output", [None, "natural", "mean"])
def test_encoder_outputs_are_read_as_the_declared_parameter(expert_output):
    extra = {} if expert_output is None else {"expert_output": expert_output}
    model = mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED, **extra)
    x = synthetic_batches(PAIR, n=16)["x"].astype("float32")
    raw = np.asarray(model.encoders["x"](x), "float64")
    dz = model.shared_size
    first, logvar = raw[:, :dz], np.clip(raw[:, dz:2 * dz], LOGVAR_MIN, LOGVAR_MAX)
    want = first if expert_output == "mean" else first * np.exp(logvar)  # η σ² = μ
    loc, got_logvar, _, _ = model.encode_modality("x", x)
    np.testing.assert_allclose(np.asarray(loc), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(got_logvar), logvar, rtol=1e-6)


def test_expert_output_is_in_the_config_only_when_not_the_default():
    assert "expert_output" not in mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED).get_config()
    assert "expert_output" not in mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED,
                                              expert_output="natural").get_config()  # digests unchanged
    model = mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED, expert_output="mean")
    assert model.get_config()["expert_output"] == "mean"
    assert type(model).from_config(model.get_config()).expert_output == "mean"


def test_an_unknown_expert_output_is_a_config_error_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"expert_output.*'maen'.*one of \['natural', 'mean'\].*Did you mean 'mean'"):
        mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED, expert_output="maen")
