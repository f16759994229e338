"""Exports that TF Serving loads: layout, session-loader runs, op audit, config, warm-up."""
import os

import numpy as np
import pytest
import tensorflow as tf

import keras
from google.protobuf import text_format
from mibzoo import export_archive, files, servable_checks, serving_contract, session_loader
from mibzoo.serving_contract import ServingContractError
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from .tiny_model import IMAGE, build_tiny_model, export_tiny


def _leftovers(model_dir):
    return [p for p in os.listdir(model_dir) if p.startswith(".")]


def test_export_writes_a_complete_version(tiny_export):
    base, version_dir = tiny_export
    assert version_dir == base / "tiny" / "1"
    assert (version_dir / "saved_model.pb").exists()
    assert (version_dir / "variables" / "variables.index").exists()
    extra = version_dir / "assets.extra"
    assert (extra / "model_card.md").read_text() == "# tiny\n"
    assert (extra / "config.json").read_text() == '{"seed": 0}'
    assert (extra / "tf_serving_warmup_requests").exists()
    assert _leftovers(base / "tiny") == []
    # Readable by a server running as another user (temporary files start private).
    umask = files.current_umask()
    assert version_dir.stat().st_mode & 0o777 == 0o777 & ~umask
    assert (base / "models.config").stat().st_mode & 0o777 == 0o666 & ~umask


def test_every_signature_runs_in_the_session_loader(tiny_export):
    _, version_dir = tiny_export
    results = session_loader.verify_with_session_loader(version_dir)
    assert set(results) == {"serving_default", "reconstruct", "encode",
                            "generate_image_to_label", "generate_image_to_label_seeded"}
    assert results["reconstruct"]["image"].shape == (2, 4)
    assert results["reconstruct"]["z"].shape == (2, 3)
    assert results["generate_image_to_label_seeded"]["label"].shape == (2, 3)
    # serving_default is the first signature, as Keras' ExportArchive aliases it.
    np.testing.assert_array_equal(results["serving_default"]["z"], results["reconstruct"]["z"])


def test_seeded_signature_is_reproducible_across_independent_loads(tiny_export):
    _, version_dir = tiny_export
    image = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    seeds = np.array([[7, 0], [7, 1], [7, 0]], np.int32)
    feeds = {"generate_image_to_label_seeded": {"image": image, "seed": seeds}}
    first = session_loader.verify_with_session_loader(version_dir, feeds)
    second = session_loader.verify_with_session_loader(version_dir, feeds)
    label = first["generate_image_to_label_seeded"]["label"]
    np.testing.assert_array_equal(label, second["generate_image_to_label_seeded"]["label"])
    assert not np.allclose(label[0], label[1])  # different seeds, different samples
    # A row's sample depends on its own seed only, not on the rest of its batch.
    alone = session_loader.verify_with_session_loader(
        version_dir, {"generate_image_to_label_seeded": {"image": image[2:], "seed": seeds[2:]}})
    np.testing.assert_array_equal(alone["generate_image_to_label_seeded"]["label"][0], label[2])


def test_unseeded_signature_draws_fresh_samples(tiny_export):
    _, version_dir = tiny_export
    session, meta_graph = session_loader.load_session(version_dir)
    try:
        sig = meta_graph.signature_def["generate_image_to_label"]
        feed = {sig.inputs["image"].name: np.ones((2, 4), np.float32)}
        first = session.run(sig.outputs["label"].name, feed)
        second = session.run(sig.outputs["label"].name, feed)
    finally:
        session.close()
    assert not np.allclose(first, second)


def test_check_servable_passes_and_lists_core_ops(tiny_export):
    _, version_dir = tiny_export
    ops = servable_checks.check_servable(version_dir)
    assert "StatelessRandomNormalV2" in ops and "RandomStandardNormal" in ops
    assert ops == sorted(servable_checks.audit_ops(version_dir))
    assert not set(ops) & servable_checks.PY_FUNC_OPS


def _raw_archive(path, fn, spec):
    """Writes a SavedModel with ExportArchive directly, bypassing export_signatures' checks."""
    model = build_tiny_model()
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", lambda inputs: fn(model, inputs), input_signature=[{"image": spec}])
    archive.write_out(str(path), verbose=False)
    return path


def test_check_servable_rejects_py_function(tmp_path):
    def with_py_function(model, inputs):
        doubled = tf.py_function(lambda x: x * 2.0, [inputs["image"]], tf.float32)
        return {"z": model.encoder(tf.ensure_shape(doubled, [None, 4]))}

    path = _raw_archive(tmp_path / "1", with_py_function, tf.TensorSpec([None, 4], tf.float32, name="image"))
    assert "EagerPyFunc" in servable_checks.audit_ops(path)
    with pytest.raises(ServingContractError, match="EagerPyFunc.*no Python interpreter"):
        servable_checks.check_servable(path)

    # export_signatures verifies before publishing: nothing is left behind.
    model = build_tiny_model()
    base = tmp_path / "base"
    with pytest.raises(ServingContractError, match="EagerPyFunc"):
        export_archive.export_signatures(
            base, "bad", 1, model,
            {"serve": (lambda inputs: with_py_function(model, inputs), {"image": IMAGE})})
    assert os.listdir(base / "bad") == []


def test_check_servable_rejects_file_system_ops_that_a_signature_reaches(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the server")

    def reads_a_file(model, inputs):
        text = tf.io.read_file(str(secret))
        scale = tf.cast(tf.strings.length(text), tf.float32)
        return {"z": model.encoder(inputs["image"] * scale)}

    path = _raw_archive(tmp_path / "1", reads_a_file, tf.TensorSpec([None, 4], tf.float32, name="image"))
    meta_graph = servable_checks.read_meta_graph(path)
    assert "ReadFile" in servable_checks.signature_ops(meta_graph)
    with pytest.raises(ServingContractError, match="op ReadFile reads or writes files"):
        servable_checks.check_servable(path)

    def writes_a_file(model, inputs):
        with tf.control_dependencies([tf.io.write_file(str(tmp_path / "planted"), "x")]):
            return {"z": model.encoder(inputs["image"])}

    model = build_tiny_model()
    with pytest.raises(ServingContractError, match="op WriteFile reads or writes files"):
        export_archive.export_signatures(tmp_path / "base", "bad", 1, model,
                                         {"serve": (lambda inputs: writes_a_file(model, inputs), {"image": IMAGE})})
    # Verification never ran the signature: the audit refused it first.
    assert not (tmp_path / "planted").exists()


def test_the_savers_own_file_ops_are_not_signature_ops(tiny_export):
    _, version_dir = tiny_export
    meta_graph = servable_checks.read_meta_graph(version_dir)
    # Every SavedModel's saver writes and restores checkpoints; the signatures cannot reach it.
    assert {"SaveV2", "RestoreV2"} <= servable_checks.audit_ops(version_dir)
    assert not servable_checks.signature_ops(meta_graph) & servable_checks.FILE_SYSTEM_OPS
    assert "MatMul" in servable_checks.signature_ops(meta_graph)


def test_a_killed_exports_temporary_directory_is_removed_by_the_next_export(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / "tiny" / f".tmp-1-pid{dead_pid}-abc123"
    stale.mkdir(parents=True)
    (stale / "saved_model.pb").write_bytes(b"half")
    mine = tmp_path / "tiny" / f".tmp-7-pid{os.getpid()}-live01"  # a live writer's: kept
    mine.mkdir()
    export_tiny(tmp_path, warmup_requests=None)
    assert not stale.exists() and mine.exists()


def test_check_servable_rejects_inputs_without_batch_dimension(tmp_path):
    path = _raw_archive(tmp_path / "1", lambda model, inputs: {"z": model.encoder(inputs["image"][None])},
                        tf.TensorSpec([4], tf.float32, name="image"))
    with pytest.raises(ServingContractError, match="input 'image' has shape \\[4\\]"):
        servable_checks.check_servable(path)
    model = build_tiny_model()
    with pytest.raises(ValueError, match="leading None batch dimension"):
        export_archive.export_signatures(
            tmp_path / "base", "bad", 1, model,
            {"serve": (lambda inputs: {"z": inputs["image"]}, {"image": tf.TensorSpec([1, 4])})})


def test_session_loader_catches_what_tf_saved_model_load_hides(tmp_path):
    """`tf.saved_model.save` of a Keras 3 model: loads in Python, fails in TF Serving."""
    model = build_tiny_model()

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="image")])
    def serve(image):
        return {"z": model.encoder(image)}

    path = tmp_path / "1"
    tf.saved_model.save(model, str(path), signatures={"serving_default": serve})
    reloaded = tf.saved_model.load(str(path))
    assert reloaded.signatures["serving_default"](image=tf.ones((2, 4)))["z"].shape == (2, 3)
    with pytest.raises(ServingContractError, match="Could not find variable.*ExportArchive"):
        session_loader.verify_with_session_loader(path)


def test_signatures_must_return_named_outputs(tmp_path):
    model = build_tiny_model()
    with pytest.raises(TypeError, match="dict of named tensors"):
        export_archive.export_signatures(
            tmp_path, "tiny", 1, model, {"encode": (lambda inputs: model.encoder(inputs["image"]),
                                                    {"image": IMAGE})})
    assert _leftovers(tmp_path / "tiny") == [] and serving_contract.list_versions(tmp_path / "tiny") == []


def test_versions_are_refused_replaced_or_numbered(tmp_path):
    first = export_tiny(tmp_path, warmup_requests=None)
    assert first.name == "1"
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_tiny(tmp_path, version=1)
    assert export_tiny(tmp_path).name == "2"  # version=None: the next one
    replaced = export_tiny(tmp_path, version=1, seed=5, overwrite=True)
    assert replaced == first and (first / "assets.extra" / "config.json").read_text() == '{"seed": 5}'
    assert serving_contract.list_versions(tmp_path / "tiny") == [1, 2]
    assert _leftovers(tmp_path / "tiny") == []


def test_warmup_requests_must_match_the_signature(tmp_path):
    with pytest.raises(ValueError, match="inputs \\['image'\\] must be exactly \\['image', 'seed'\\]"):
        export_tiny(tmp_path, warmup_requests=[
            ("generate_image_to_label_seeded", {"image": np.ones((1, 4), np.float32)})])
    with pytest.raises(ValueError, match="unknown signature 'nope'"):
        export_tiny(tmp_path, warmup_requests=[("nope", {"image": np.ones((1, 4))})])


def test_warmup_file_parses_as_prediction_logs(tiny_export):
    _, version_dir = tiny_export
    path = version_dir / "assets.extra" / "tf_serving_warmup_requests"
    logs = []
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record)
        logs.append(log)
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log", "predict_log"]
    requests = [log.predict_log.request for log in logs]
    assert {r.model_spec.name for r in requests} == {"tiny"}
    assert [r.model_spec.signature_name for r in requests] == [
        "reconstruct", "generate_image_to_label_seeded"]
    np.testing.assert_array_equal(tf.make_ndarray(requests[1].inputs["seed"]), [[1, 2]])
    assert tf.make_ndarray(requests[1].inputs["seed"]).dtype == np.int32
    assert tf.make_ndarray(requests[0].inputs["image"]).shape == (2, 4)


def _parse_config(path):
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(path.read_text(), config)
    return config


def test_models_config_lists_every_model_for_tf_serving(tmp_path):
    export_tiny(tmp_path, name="alpha", warmup_requests=None)
    export_tiny(tmp_path, name="beta", warmup_requests=None)
    (tmp_path / "empty").mkdir()  # no version: not a servable model yet
    config = _parse_config(tmp_path / "models.config")
    entries = [(c.name, c.base_path, c.model_platform) for c in config.model_config_list.config]
    assert entries == [("alpha", "/models/alpha", "tensorflow"), ("beta", "/models/beta", "tensorflow")]

    # Hand-made settings survive an update; a vanished model is dropped.
    config.model_config_list.config[0].model_version_policy.all.SetInParent()
    (tmp_path / "models.config").write_text(text_format.MessageToString(config))
    import shutil

    shutil.rmtree(tmp_path / "beta")
    serving_contract.update_models_config(tmp_path, base_path_prefix="/srv/models/")
    config = _parse_config(tmp_path / "models.config")
    assert [c.name for c in config.model_config_list.config] == ["alpha"]
    assert config.model_config_list.config[0].base_path == "/srv/models/alpha"
    assert config.model_config_list.config[0].model_version_policy.HasField("all")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def test_models_config_without_serving_protos(tmp_path, monkeypatch):
    export_tiny(tmp_path, name="alpha", warmup_requests=None, update_config=False)

    def missing():
        raise ImportError("no tensorflow-serving-api")

    monkeypatch.setattr(serving_contract, "serving_protos", missing)
    serving_contract.update_models_config(tmp_path)
    config = _parse_config(tmp_path / "models.config")
    assert [(c.name, c.base_path) for c in config.model_config_list.config] == [("alpha", "/models/alpha")]


def test_per_example_stateless_normal_matches_a_single_seed_draw():
    seeds = tf.constant([[3, 4], [5, 6]], tf.int32)
    draws = export_archive.per_example_stateless_normal(seeds, [2, 3])
    assert draws.shape == (2, 2, 3)
    np.testing.assert_array_equal(draws[1], tf.random.stateless_normal([2, 3], seed=[5, 6]))
