"""Exported zoo models run in TensorFlow's C++ session loader (what TF Serving uses) and match
the Python model; seeded signatures reproduce across loads and processes."""
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import keras
import mibzoo
from mibzoo import export, servable_checks, session_loader
from tests.model_test_case import dataset, synthetic_batches, tiny_overrides

MULTIMODAL = ["jmvae", "mvae", "wyner_vae", "mib_mm"]


def trained(entry, steps=4):
    keras.utils.set_random_seed(0)
    model = mibzoo.load(entry, **tiny_overrides(entry))
    model.compile(optimizer="adam")
    arrays = synthetic_batches(model.modality_specs, n=16 * steps)
    model.fit(dataset(arrays, 16), epochs=1, verbose=0)
    return model, arrays


def run_signature(version_dir, signature, feeds):
    """Feeds and fetches by the SignatureDef's tensor names in a fresh session-loader session."""
    session, meta_graph = session_loader.load_session(version_dir)
    try:
        sig = meta_graph.signature_def[signature]
        return session.run({k: v.name for k, v in sig.outputs.items()},
                           {sig.inputs[k].name: v for k, v in feeds.items()})
    finally:
        session.close()


# Exports made in this test process, by entry: under pytest-xdist the tests of one entry arrive in
# any order among the others, and a parametrized module fixture is set up again whenever its
# parameter comes back; an export costs a training run, so it is made once per process.
_EXPORTS = {}


@pytest.fixture(scope="module", params=MULTIMODAL)
def exported(request, tmp_path_factory):
    if request.param not in _EXPORTS:
        model, arrays = trained(request.param)
        base = tmp_path_factory.mktemp("exports")
        _EXPORTS[request.param] = model, arrays, export.export_model(model, base, request.param, version=1)
    return _EXPORTS[request.param]


def test_every_signature_runs_in_the_session_loader(exported):
    model, _, path = exported
    outputs = session_loader.verify_with_session_loader(path, export.signature_examples(model))
    expected = {"serving_default", "generate_seeded", "encode", "reconstruct", "sample", "sample_seeded",
                "generate_x_to_y", "generate_y_to_x", "generate_x_to_y_seeded", "generate_y_to_x_seeded",
                "predict_x_to_y"}  # y is categorical: p(y | x) averaged over draws of z
    assert set(outputs) == expected
    np.testing.assert_allclose(outputs["predict_x_to_y"]["y"].sum(-1), 1.0, rtol=1e-5)
    servable_checks.check_servable(path)
    assert outputs["generate_x_to_y"]["y"].shape == (2, 4)
    np.testing.assert_allclose(outputs["generate_x_to_y"]["y"].sum(-1), 1.0, rtol=1e-5)


@pytest.mark.slow  # four training runs, exports and session-loader runs: about 2 minutes
@pytest.mark.parametrize("entry", ["mmvae", "mopoe", "mvtcae", "dmvae"])
def test_literature_entries_export_every_signature_and_serve_reconstructions_as_python(entry, tmp_path):
    """The entries added as config files (issue 14) go through the same export path: every signature
    runs in the session loader, the base is a valid servable, and the served reconstructions (posterior
    means, no noise) equal the Python model's."""
    model, arrays = trained(entry)
    path = export.export_model(model, tmp_path, entry, version=1)
    outputs = session_loader.verify_with_session_loader(path, export.signature_examples(model))
    a, b = model.modality_names  # dmvae keeps MNIST-Label's names (its private latent is the image's)
    assert {"encode", "reconstruct", "sample_seeded", f"generate_{a}_to_{b}_seeded", f"predict_{a}_to_{b}"} <= set(outputs)
    servable_checks.check_servable(path)
    present = np.array([[1, 1], [1, 0], [0, 1]], "float32")
    served = run_signature(path, "reconstruct", {a: arrays[a][:3], b: arrays[b][:3], "present": present})
    local = model.reconstruct({a: arrays[a][:3], b: arrays[b][:3]}, present={a: present[:, 0], b: present[:, 1]})
    for name in model.modality_names:
        np.testing.assert_allclose(served[name], np.asarray(local[name]), rtol=1e-5, atol=1e-5)


def test_served_encode_and_reconstruct_equal_the_python_model(exported):
    model, arrays, path = exported
    feeds = {"x": arrays["x"][:5], "y": arrays["y"][:5], "present": np.array([[1, 1], [1, 0], [0, 1], [1, 1], [1, 0]],
                                                                             "float32")}
    served = run_signature(path, "encode", feeds)
    present = {"x": feeds["present"][:, 0], "y": feeds["present"][:, 1]}
    local = model.encode({"x": feeds["x"], "y": feeds["y"]}, present=present)
    np.testing.assert_allclose(served["loc"], np.asarray(local["loc"]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(served["logvar"], np.asarray(local["logvar"]), rtol=1e-5, atol=1e-6)
    # q(u_i | x_i) of the modalities with private latents (wyner_vae, mib_mm): the fair
    # representation U_x of the fairness entries is served this way.
    assert {k for k in served if k.startswith("private_")} == {f"private_{n}_{p}" for n in local["private"]
                                                               for p in ("loc", "logvar")}
    for name, private in local["private"].items():
        np.testing.assert_allclose(served[f"private_{name}_loc"], np.asarray(private["loc"]), rtol=1e-5, atol=1e-6)
    served = run_signature(path, "reconstruct", feeds)
    local = model.reconstruct({"x": feeds["x"], "y": feeds["y"]}, present=present)
    np.testing.assert_allclose(served["x"], np.asarray(local["x"]), rtol=1e-5, atol=1e-6)


def test_seeded_signature_matches_python_and_is_per_example(exported):
    model, arrays, path = exported
    seeds = np.array([[1, 2], [3, 4], [5, 6]], "int32")
    x = arrays["x"][:3]
    served = run_signature(path, "generate_x_to_y_seeded", {"x": x, "seed": seeds})["y"]
    local = model.generate({"x": x}, "y", seed=export.per_example_noise(tf.constant(seeds)))[0]
    np.testing.assert_allclose(served, np.asarray(local), rtol=1e-5, atol=1e-6)
    # A row's output depends on its own input and seed only, not on the rest of the batch.
    alone = run_signature(path, "generate_x_to_y_seeded", {"x": x[1:2], "seed": seeds[1:2]})["y"]
    np.testing.assert_allclose(alone[0], served[1], rtol=1e-6)
    other = run_signature(path, "generate_x_to_y_seeded", {"x": x, "seed": seeds + 100})["y"]
    assert not np.allclose(other, served)


def test_seeded_sampling_is_identical_in_another_process(exported):
    model, _, path = exported
    if model.entry != "wyner_vae":
        pytest.skip("checked once, on wyner_vae: every entry's seeded signatures share per_example_noise")
    seeds = np.array([[7, 1], [7, 2]], "int32")
    here = run_signature(path, "sample_seeded", {"seed": seeds})
    script = (
        "import sys, json, numpy as np\n"
        "from mibzoo.session_loader import load_session\n"
        "s, mg = load_session(sys.argv[1]); sig = mg.signature_def['sample_seeded']\n"
        "out = s.run({k: v.name for k, v in sig.outputs.items()}, {sig.inputs['seed'].name: np.array([[7, 1], [7, 2]], 'int32')})\n"
        "print(json.dumps({k: v.tolist() for k, v in out.items()}))\n")
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    there = json.loads(result.stdout.strip().splitlines()[-1])
    for key, value in here.items():
        np.testing.assert_array_equal(np.asarray(there[key], value.dtype), value)


def test_models_config_and_warmup_parse_with_the_official_protos(exported):
    from google.protobuf import text_format
    from tensorflow_serving.apis import prediction_log_pb2
    from tensorflow_serving.config import model_server_config_pb2

    model, _, path = exported
    config = text_format.Parse((path.parent.parent / "models.config").read_text(),
                               model_server_config_pb2.ModelServerConfig())
    assert [c.name for c in config.model_config_list.config] == [model.entry]
    assert config.model_config_list.config[0].base_path == f"/models/{model.entry}"
    records = list(tf.data.TFRecordDataset(str(path / "assets.extra" / "tf_serving_warmup_requests")))
    signatures = set()
    for record in records:
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        signatures.add(log.predict_log.request.model_spec.signature_name)
    assert "serving_default" in signatures and "generate_x_to_y_seeded" in signatures
    card = (path / "assets.extra" / "model_card.md").read_text()
    assert f"zoo entry: `{model.entry}`" in card and "generate_y_to_x_seeded" in card
    zoo = json.loads((path / "assets.extra" / "zoo_config.json").read_text())
    assert zoo["model"] == json.loads(json.dumps(model.get_config()))


def test_gan_exports_sampling_only(tmp_path):
    model = mibzoo.load("gan", **tiny_overrides("gan"))
    path = export.export_model(model, tmp_path, "gan")
    outputs = session_loader.verify_with_session_loader(path, export.signature_examples(model))
    assert set(outputs) == {"serving_default", "sample", "sample_seeded"}
    assert outputs["sample_seeded"]["x"].shape == (2, 12)


def test_rest_round_trip_of_a_zoo_model_through_the_local_server(tmp_path):
    """The REST API (TF Serving's) serves the export: seeded generation over REST equals the
    session loader's answer; metadata lists the zoo signatures."""
    from mibzoo.serving import Client, LocalServer

    model, arrays = trained("wyner_vae")
    path = export.export_model(model, tmp_path, "wyner_vae")
    seeds = np.array([[4, 0], [4, 1]], "int32")
    direct = run_signature(path, "generate_x_to_y_seeded", {"x": arrays["x"][:2], "seed": seeds})["y"]
    with LocalServer(tmp_path, port=0) as server:
        client = Client(server.url)
        over_rest = client.generate("wyner_vae", {"x": arrays["x"][:2]}, target="y", seed=4)
        rows = client.predict("wyner_vae", {"x": arrays["x"][:2], "seed": seeds},
                              signature_name="generate_x_to_y_seeded", format="instances")
        metadata = client.metadata("wyner_vae")
    np.testing.assert_allclose(over_rest, direct, rtol=1e-5)
    np.testing.assert_allclose(rows["y"], direct, rtol=1e-5)
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "encode", "generate_y_to_x_seeded", "sample_seeded"} <= set(signatures)
