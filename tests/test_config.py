"""Malformed zoo configs and overrides get errors naming the source, field, value and what is allowed."""
import json

import numpy as np
import pytest

import mibzoo
from mibzoo.config import read_zoo_file
from mibzoo.errors import ConfigError
from tests.model_test_case import TINY_SHARED, TINY_VECTOR


def write(tmp_path, model, **meta):
    path = tmp_path / "entry.json"
    path.write_text(json.dumps({"entry": "entry", **meta, "model": model}))
    return path


GOOD = {"modalities": {"x": {"kind": "vector", "size": 4}}, "shared": [{"name": "z", "size": 2}]}


@pytest.mark.parametrize("change, field, allowed", [
    ({"shared": [{"name": "z", "size": -3}]}, "shared[0].size", "positive integer"),
    ({"modalities": {"x": {"kind": "audio"}}}, "modalities.x.kind", "one of"),
    ({"modalities": {"x": {"kind": "vector", "size": 4, "likelihood": "poisson"}}}, "modalities.x.likelihood", "bernoulli"),
    ({"dist": [[1.0, "C9"]]}, "dist[0][1]", "registered cost terms"),
    ({"str_reg": [[1.0, "C1"]]}, "str_reg[0][1]", "registered regularizer terms"),
    ({"dist": [["gamma - 1", "C1"]]}, "dist[0][0]", "hyperparameters"),
    ({"inference_structure": [[1, 1]]}, "inference_structure", "1x1 matrix"),
    ({"inference_structure": [[1.5]]}, "inference_structure[0][0]", "number in [0, 1]"),
    ({"phases": [{"name": "structure", "steps": 1}]}, "phases", "'dist' phase"),
    ({"phases": [{"name": "dist", "steps": 0}]}, "phases[0].steps", "positive integer"),
    ({"phases": [{"name": "dist", "steps": 1, "start": 5}]}, "phases[0].start", "0 for the 'dist' phase"),
    ({"phases": [{"name": "dist", "steps": 1}, {"name": "structure", "steps": 1, "start": -1}]}, "phases[1].start",
     "non-negative integer"),
    ({"phases": [{"name": "dist", "steps": 1, "begin": 5}]}, "phases[0]", "optionally \"start\""),
    ({"phases": [{"name": "dist", "steps": 1}, {"name": "structure", "steps": 1, "batch": "previos"}]},
     "phases[1].batch", "Did you mean 'previous'?"),
    ({"phases": [{"name": "dist", "steps": 1, "batch": "previous"}]}, "phases[0].batch", "'own' for the first phase"),
    ({"private": -1}, "private", "non-negative integer"),
    ({"latent": 3}, "model.latent", "only the fields"),
])
def test_bad_config_field_is_named_with_value_and_allowed(tmp_path, change, field, allowed):
    path = write(tmp_path, {**GOOD, **change})
    with pytest.raises(ConfigError) as info:
        read_zoo_file(path)
    message = str(info.value)
    assert str(path) in message and f"'{field}'" in message and allowed in message, message


def test_invalid_json_names_the_position(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"model": {"modalities": }')
    with pytest.raises(ConfigError, match=r"broken.json: field 'line 1 column \d+'.*valid JSON"):
        read_zoo_file(path)


def test_every_shipped_entry_is_valid_and_states_its_table2_row():
    for name in mibzoo.list_models():
        info = mibzoo.describe(name)
        assert info["entry"] == name
        assert {"L_dist", "L_str_reg", "G_q", "G_p"} <= set(info["table2"]), name


def test_bad_override_names_the_override():
    with pytest.raises(ConfigError, match=r"mibzoo.load\('wyner_vae'\) override: field 'privat'.*an override among"):
        mibzoo.load("wyner_vae", privat=3)
    with pytest.raises(ConfigError, match=r"override: field 'shared\[0\].size'"):
        mibzoo.load("wyner_vae", shared=[{"name": "z", "size": 0}])


def test_a_built_models_config_is_an_override():
    # model_config holds Keras' tracked containers, which point back at the model: copying one
    # deeply used to copy the model itself and fail (Could not locate class 'StructureMasks').
    model = mibzoo.load("ood_cmnist")
    options = model.model_config["term_options"]
    assert type(options) is not dict  # a tracked container, the case this is about
    again = mibzoo.load("ood_cmnist", term_options=options, str_reg=model.model_config["str_reg"])
    assert again.model_config["term_options"] == options and again.model_config["str_reg"] == model.model_config["str_reg"]
    json.dumps(again.get_config())  # plain containers again


def test_hyperparameter_override_changes_weights():
    model = mibzoo.load("beta_vae", beta=6.0)
    weights = {t.name: w for _, t, w in model.loss_terms}
    assert weights == {"C1": 1.0, "C3": 5.0, "independence": 5.0}


@pytest.mark.parametrize("change, field, allowed", [
    ({"hyperparameters": {"beta": float("nan")}, "dist": [["beta", "C1"]]}, "hyperparameters.beta", "finite number"),
    ({"hyperparameters": {"beta": float("inf")}, "dist": [["beta", "C1"]]}, "hyperparameters.beta", "finite number"),
    ({"hyperparameters": {"beta": 1e308}, "dist": [["beta * 10", "C1"]]}, "dist[0][0]", "finite value"),
    ({"hyperparameters": {"beta": 1e300}, "dist": [["beta ** 2", "C1"]]}, "dist[0][0]", "arithmetic expression"),
    ({"dist": [[float("nan"), "C1"]]}, "dist[0][0]", "finite number"),
    ({"structure_learning": {"temperature": float("nan")}}, "structure_learning.temperature", "finite non-negative"),
    ({"structure_learning": {"sparsity": float("inf")}}, "structure_learning.sparsity", "finite non-negative"),
])
def test_non_finite_numbers_are_refused(tmp_path, change, field, allowed):
    path = write(tmp_path, {**GOOD, **change})
    with pytest.raises(ConfigError) as info:
        read_zoo_file(path)
    message = str(info.value)
    assert f"'{field}'" in message and allowed in message, message


def test_non_finite_overrides_are_refused():
    with pytest.raises(ConfigError, match=r"override: field 'hyperparameters.beta': got nan, expected a finite number"):
        mibzoo.load("beta_vae", beta=float("nan"))


def test_weight_expressions_may_use_n_the_number_of_modalities():
    three = {name: dict(TINY_VECTOR) for name in ("a", "b", "c")}
    model = mibzoo.load("mvtcae", modalities=three, shared=TINY_SHARED, alpha=0.6, beta=2.0, likelihood_weights={})
    weights = {term.name: weight for _, term, weight in model.loss_terms}
    np.testing.assert_allclose(weights["informative"], 2.0 * (3 - 0.6) / 3)
    np.testing.assert_allclose(weights["cross"], [2.0 * 0.6 / 3] * 3)
    with pytest.raises(ConfigError, match=r"hyperparameters\.N.*number of modalities"):
        mibzoo.load("mvtcae", hyperparameters={"N": 3.0, "alpha": 0.9, "beta": 1.0})


def test_private_sizes_keyed_by_modality_name_or_kind():
    from mibzoo.config import private_sizes

    specs = {"image_a": {"kind": "image"}, "image_b": {"kind": "image"}, "label": {"kind": "categorical"}}
    assert private_sizes({"image": 4}, specs) == {"image_a": 4, "image_b": 4, "label": 0}
    assert private_sizes({"image": 4, "image_b": 2}, specs) == {"image_a": 4, "image_b": 2, "label": 0}
    assert private_sizes(3, specs) == {"image_a": 3, "image_b": 3, "label": 3}
    with pytest.raises(ConfigError, match=r"private\.imgae.*the kinds"):
        private_sizes({"imgae": 4}, specs)
    assert private_sizes({"categorical": 1, "*": 4}, specs) == {"image_a": 4, "image_b": 4, "label": 1}
    # a data set with other modality names keeps the entry's kind-keyed private latents
    plus1 = mibzoo.load("dmvae", modalities={"image_a": {"kind": "image", "shape": [4, 4, 1]},
                                             "label": {"kind": "categorical", "classes": 3}})
    assert plus1.private_sizes == {"image_a": 1, "label": 0}


def test_per_modality_weights_keyed_by_modality_name_or_kind():
    """A per-modality weight keyed by a kind applies to every modality of that kind that its own name
    does not key; a modality keyed by neither gets 0, as before (``{"image": "beta1"}`` of ood_cmnist)."""
    from mibzoo.objectives import TERMS
    from mibzoo.weights import resolve_weight

    names, kinds = ["image_a", "image_b", "label"], ["image", "image", "categorical"]
    term = TERMS["cross_generation"]
    assert resolve_weight({"image": 1.0, "categorical": 3.0}, term, names, {}, "t", "w", kinds) == [1.0, 1.0, 3.0]
    assert resolve_weight({"image": 1.0, "image_b": "2 * b"}, term, names, {"b": 2.5}, "t", "w", kinds) == [1.0, 5.0, 0.0]
    assert resolve_weight({"label": 2.0}, term, names, {}, "t", "w", kinds) == [0.0, 0.0, 2.0]
    with pytest.raises(ConfigError, match=r"w\.imgae.*the kinds \['image', 'vector', 'categorical', 'tabular'\] "
                                          r"or '\*'.*Did you mean 'image'"):
        resolve_weight({"imgae": 1.0}, term, names, {}, "t", "w", kinds)
    # "*" keys every modality that neither its name nor its kind keys; a kind the data set lacks is a
    # rule for no modality here, not an error (jmvae's default on MNIST-Plus-1, which has no label)
    assert resolve_weight({"categorical": 4.0, "*": 1.0}, term, names, {}, "t", "w", kinds) == [1.0, 1.0, 4.0]
    assert resolve_weight({"categorical": "4 * b", "*": "b"}, term, names[:2], {"b": 0.5}, "t", "w",
                          kinds[:2]) == [0.5, 0.5]
    assert resolve_weight({"image_b": 2.0, "image": 3.0, "*": 1.0}, term, names, {}, "t", "w", kinds) == [3.0, 2.0, 1.0]
    assert resolve_weight({"vector": 9.0}, term, names, {}, "t", "w", kinds) == [0.0, 0.0, 0.0]
    with pytest.raises(ConfigError, match=r"w\.categorical.*keyed by the modalities"):  # names only without kinds
        resolve_weight({"categorical": 1.0}, term, names, {}, "t", "w")
    # through a zoo load with renamed modalities: the kind keys follow the data set's names
    three = {"image_a": {"kind": "image", "shape": [4, 4, 1]}, "image_b": {"kind": "image", "shape": [4, 4, 1]},
             "digit": {"kind": "categorical", "classes": 3}}
    model = mibzoo.load("jmvae", modalities=three, str_reg=[[{"image": 1.0, "categorical": 4.0}, "cross_generation"]])
    assert [(term.name, weight) for _, term, weight in model.loss_terms][-1] == ("cross_generation", [1.0, 1.0, 4.0])


def test_a_zoo_entry_is_parsed_once_into_the_spec_its_model_is_built_from(monkeypatch):
    """`mibzoo.load` parses the file once (`mibzoo.spec.parse_model`) and `MIBModel` builds from that
    `ModelSpec`; the spec holds the meaning worked out: masks, sizes, resolved weights (Table 2's
    β − 1 with β = 3 here), network specs with the per-kind defaults."""
    import mibzoo.config
    import mibzoo.model
    from mibzoo import spec as spec_module
    from mibzoo.registry import entry_spec
    calls = []

    def counting(model, source):
        calls.append(source)
        return spec_module.parse_model(model, source)

    monkeypatch.setattr(mibzoo.config, "parse_model", counting)
    monkeypatch.setattr(mibzoo.model, "parse_model", counting)
    model = mibzoo.load("wyner_vae")
    assert len(calls) == 1 and calls[0].endswith("wyner_vae.json")
    spec = entry_spec("beta_vae", beta=3.0)
    assert [(group, term.name, weight) for group, term, weight in spec.loss_terms] == [
        ("dist", "C1", 1.0), ("dist", "C3", 2.0), ("str_reg", "independence", 2.0)]
    assert spec.inference_mask == (False, [[1.0]]) and spec.private_sizes == {"image": 0}
    assert spec.block_sizes == (16,) and spec.has_inference
    assert model.private_sizes == {"image": 4, "label": 4} and model.likelihood_weights == [1.0, 50.0]
    assert model.network_specs["image"]["hidden"] == 512 and model.network_specs["image"]["network"] == "conv"
    assert model.network_specs["image"]["decoder_network"] == "mlp"
    # The constructor's own parse (from_config) gives the same model config.
    calls.clear()
    rebuilt = type(model).from_config(model.get_config())
    assert len(calls) == 1 and rebuilt.get_config() == model.get_config()


@pytest.mark.parametrize("entry, key, value, allowed", [
    ("infogan", "q_input_noise", -0.1, "a number >= 0 (the standard deviation of the Gaussian noise"),
    ("infogan", "q_fixed_std", 0.0, "a number > 0 (the fixed standard deviation of Q's Gaussian codes"),
    ("infogan", "lambda_continuous", -1.0, "a number >= 0 (the weight of the continuous codes' bounds)"),
    ("infogan", "q_categorical_stroke_jitter", 1.5, "a number >= 0 and <= 1 (the largest stroke-width jitter"),
    ("infogan", "q_categorical_rotation", 4.0, "a number >= 0 and <= 3.14159 (the largest rotation in radians"),
    ("ood_cmnist_irm", "irm_anneal_steps", 2.5, "an integer >= 0"),
    ("ood_cmnist_irm", "irm_anneal_scale", -1e-6, "a number >= 0"),
    ("beta_tcvae", "dataset_size", 0, "an integer >= 1"),
])
def test_hyperparameters_a_term_reads_are_checked_when_the_config_is_parsed(entry, key, value, allowed):
    """A term's own hyperparameters (`mibzoo.objectives.HyperParameter`) are refused at load time,
    naming the field, the value, what is allowed and the term that reads it; in range they load."""
    own = mibzoo.describe(entry)["model"]["hyperparameters"]
    with pytest.raises(ConfigError) as caught:
        mibzoo.load(entry, hyperparameters={**own, key: value})
    message = str(caught.value)
    assert f"hyperparameters.{key}" in message and repr(value) in message and allowed in message
    assert "read by term" in message
    in_range = {"q_input_noise": 0.5, "q_fixed_std": 0.3, "lambda_continuous": 0.0, "irm_anneal_steps": 7,
                "q_categorical_stroke_jitter": 1.0, "q_categorical_rotation": 0.25,
                "irm_anneal_scale": 0.0, "dataset_size": 60000}[key]
    loaded = mibzoo.load(entry, hyperparameters={**own, key: in_range})
    assert loaded.model_config["hyperparameters"][key] == in_range


def test_a_term_reads_its_hyperparameters_default_when_the_config_has_none():
    from mibzoo.objectives import TERMS
    assert TERMS["infogan"].hyperparameter({"hyperparameters": {}}, "q_input_noise") == 0.0
    assert TERMS["infogan"].hyperparameter({"hyperparameters": {"q_input_noise": 0.5}}, "q_input_noise") == 0.5
    assert TERMS["tc"].hyperparameter({"hyperparameters": {}}, "dataset_size") is None


@pytest.mark.parametrize("entry", ["jmvae", "wyner_vae", "mib_mm"])
def test_label_cross_generation_weight_follows_the_data_sets_modalities(entry):
    """The multimodal defaults weigh the label's cross-generation ×4 (docs/results.md, Issue 10
    follow-up, sections 4-5) by kind, with "*" for the rest: a label gets 4, an image 1 (β = 1; 1.5 for
    mib_mm, sections 12 and 16), under MNIST-Label's, MNIST-Plus-1's (no label) and MNIST-Label-Unrelated's
    names."""
    image = {"kind": "image", "shape": [28, 28, 1]}
    label = {"kind": "categorical", "classes": 10}
    w = 1.5 if entry == "mib_mm" else 1.0
    cases = [({"image": image, "label": label}, [w, 4.0]),
             ({"image_a": image, "image_b": image}, [w, w]),
             ({"image": image, "label": label, "unrelated": image}, [w, 4.0, w])]
    for modalities, want in cases:
        model = mibzoo.load(entry, modalities=modalities)
        assert [w for _, term, w in model.loss_terms if term.name == "cross_generation"] == [want]
