"""The local server speaks TF Serving's REST API: formats, errors, concurrency, new versions."""
import http.client
import json
import shutil
import socket
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mibzoo import session_loader, warmup
from mibzoo.serving import Client, LocalServer

from .tiny_model import export_tiny

MAX_BATCH = 16
MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def server(tiny_export):
    base, _ = tiny_export
    with LocalServer(base, port=0, max_batch=MAX_BATCH, max_body_bytes=MAX_BODY) as running:
        yield running


def raw_exchange(server, data):
    """Sends raw bytes; returns (status line, headers text, JSON body) once the server closes."""
    parts = urllib.parse.urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).decode().partition("\r\n\r\n")
    status_line, _, headers = head.partition("\r\n")
    return status_line, headers, json.loads(body)


def call(server, method, path, body=None, headers=None):
    """One request on a fresh connection; returns (status, parsed JSON)."""
    parts = urllib.parse.urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def direct(version_dir, signature, **inputs):
    """The signature's outputs computed in-process through the session loader."""
    return session_loader.verify_with_session_loader(version_dir, {signature: inputs})[signature]


IMAGES = np.array([[0.5, -1.0, 2.0, 0.25], [1.0, 0.0, -0.5, 3.0]], np.float32)


def test_model_status_matches_tf_serving(server):
    assert call(server, "GET", "/v1/models/tiny") == (200, {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})
    assert call(server, "GET", "/v1/models/tiny/versions/1")[0] == 200


def test_metadata_lists_the_signatures(server):
    status, metadata = call(server, "GET", "/v1/models/tiny/metadata")
    assert status == 200
    assert metadata["model_spec"] == {"name": "tiny", "signature_name": "", "version": "1"}
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "reconstruct", "encode", "generate_image_to_label",
            "generate_image_to_label_seeded"} <= set(signatures)
    seed = signatures["generate_image_to_label_seeded"]["inputs"]["seed"]
    assert seed["dtype"] == "DT_INT32"
    assert [d["size"] for d in seed["tensor_shape"]["dim"]] == ["-1", "2"]
    assert signatures["encode"]["method_name"] == "tensorflow/serving/predict"
    assert call(server, "GET", "/v1/models/tiny/versions/1/metadata")[1] == metadata


def test_row_format_round_trip(server, tiny_export):
    _, version_dir = tiny_export
    expected = direct(version_dir, "reconstruct", image=IMAGES)
    # Several outputs: a list of objects, one per instance.
    status, answer = call(server, "POST", "/v1/models/tiny:predict",
                          {"instances": IMAGES.tolist()})
    assert status == 200 and len(answer["predictions"]) == 2
    np.testing.assert_allclose([row["z"] for row in answer["predictions"]], expected["z"], rtol=1e-6)
    np.testing.assert_allclose([row["image"] for row in answer["predictions"]], expected["image"], rtol=1e-6)
    # One output: the name is omitted, a plain list per instance.
    status, answer = call(server, "POST", "/v1/models/tiny/versions/1:predict",
                          {"signature_name": "encode", "instances": [{"image": row} for row in IMAGES.tolist()]})
    assert status == 200
    np.testing.assert_allclose(answer["predictions"], expected["z"], rtol=1e-6)


def test_columnar_format_round_trip(server, tiny_export):
    _, version_dir = tiny_export
    expected = direct(version_dir, "reconstruct", image=IMAGES)
    status, answer = call(server, "POST", "/v1/models/tiny:predict",
                          {"signature_name": "reconstruct", "inputs": {"image": IMAGES.tolist()}})
    assert status == 200 and set(answer["outputs"]) == {"image", "z"}
    np.testing.assert_allclose(answer["outputs"]["z"], expected["z"], rtol=1e-6)
    status, answer = call(server, "POST", "/v1/models/tiny:predict",
                          {"signature_name": "encode", "inputs": IMAGES.tolist()})
    assert status == 200
    np.testing.assert_allclose(answer["outputs"], expected["z"], rtol=1e-6)


def test_floats_are_written_in_their_shortest_form(server):
    status, answer = call(server, "POST", "/v1/models/tiny:predict",
                          {"signature_name": "encode", "inputs": [[0, 0, 0, 0]]})
    raw = json.dumps(answer)
    assert status == 200 and all(len(repr(v)) <= 12 for v in answer["outputs"][0]), raw


def test_seeded_generation_is_reproducible_over_rest(server):
    body = {"signature_name": "generate_image_to_label_seeded",
            "inputs": {"image": IMAGES.tolist(), "seed": [[1, 2], [3, 4]]}}
    first, second = call(server, "POST", "/v1/models/tiny:predict", body), call(
        server, "POST", "/v1/models/tiny:predict", body)
    assert first[0] == 200 and first == second
    np.testing.assert_allclose(np.sum(first[1]["outputs"], axis=1), 1.0, rtol=1e-5)


BAD_REQUESTS = {
    "malformed JSON": ("/v1/models/tiny:predict", '{"instances": [[1, 2', 400, "JSON Parse error"),
    "empty body": ("/v1/models/tiny:predict", "", 400, "The document is empty"),
    "not an object": ("/v1/models/tiny:predict", "[1, 2]", 400, "Is not object"),
    "unknown model": ("/v1/models/nope:predict", {"instances": [[1, 2, 3, 4]]}, 404,
                      "Servable not found for request: Latest(nope)"),
    "unknown version": ("/v1/models/tiny/versions/7:predict", {"instances": [[1, 2, 3, 4]]}, 404,
                        "Servable not found for request: Specific(tiny, 7)"),
    "unknown signature": ("/v1/models/tiny:predict", {"signature_name": "nope", "instances": [[1, 2, 3, 4]]},
                          400, 'Serving signature name: "nope" not found in signature def'),
    "internal signature": ("/v1/models/tiny:predict",
                           {"signature_name": "__saved_model_init_op", "instances": [1]}, 400,
                           "Failed to get input map"),
    "bad signature_name": ("/v1/models/tiny:predict", {"signature_name": 3, "instances": [1]}, 400,
                           "'signature_name' key must be a string"),
    "missing input (columnar)": ("/v1/models/tiny:predict",
                                 {"signature_name": "generate_image_to_label_seeded",
                                  "inputs": {"image": [[1, 2, 3, 4]]}}, 400,
                                 "Missing named input: seed in 'inputs' object."),
    "missing input (row)": ("/v1/models/tiny:predict",
                            {"signature_name": "generate_image_to_label_seeded",
                             "instances": [{"image": [1, 2, 3, 4]}]}, 400, "keys must be equal to: image,seed"),
    "plain rows for two inputs": ("/v1/models/tiny:predict",
                                  {"signature_name": "generate_image_to_label_seeded",
                                   "instances": [[1, 2, 3, 4]]}, 400, "expecting list of objects"),
    "extra input (columnar)": ("/v1/models/tiny:predict",
                               {"inputs": {"image": [[1, 2, 3, 4]], "bogus": [1]}}, 400,
                               "Sent extra: {bogus}. Missing but required: {}."),
    "extra input (row)": ("/v1/models/tiny:predict",
                          {"instances": [{"image": [1, 2, 3, 4], "bogus": 1}]}, 400,
                          "does not have named input: bogus"),
    "wrong shape": ("/v1/models/tiny:predict", {"inputs": {"image": [[1, 2, 3]]}}, 400,
                    "input 'image' has shape [1,3], expected [-1,4]"),
    "wrong rank": ("/v1/models/tiny:predict", {"inputs": {"image": [1, 2, 3, 4]}}, 400,
                   "input 'image' has shape [4], expected [-1,4]"),
    "ragged instances": ("/v1/models/tiny:predict", {"instances": [[1, 2, 3, 4], [1, 2]]}, 400,
                         "not a dense tensor"),
    "wrong dtype (string)": ("/v1/models/tiny:predict", {"instances": [[1, 2, 3, "x"]]}, 400,
                             'JSON Value: "x" Type: String is not of expected type: float'),
    "wrong dtype (null)": ("/v1/models/tiny:predict", {"inputs": {"image": [[1, None, 3, 4]]}}, 400,
                           "Type: Null is not of expected type: float"),
    "wrong dtype (float seed)": ("/v1/models/tiny:predict",
                                 {"signature_name": "generate_image_to_label_seeded",
                                  "inputs": {"image": [[1, 2, 3, 4]], "seed": [[1.5, 2]]}}, 400,
                                 "JSON Value: 1.5 Type: Number is not of expected type: int32"),
    "seed out of int32 range": ("/v1/models/tiny:predict",
                                {"signature_name": "generate_image_to_label_seeded",
                                 "inputs": {"image": [[1, 2, 3, 4]], "seed": [[2 ** 40, 2]]}}, 400,
                                "out of range for int32"),
    "oversized batch": ("/v1/models/tiny:predict", {"inputs": {"image": [[0, 0, 0, 0]] * (MAX_BATCH + 1)}},
                        400, f"larger than the maximum batch size {MAX_BATCH}"),
    "both formats": ("/v1/models/tiny:predict", {"inputs": [[1, 2, 3, 4]], "instances": [[1, 2, 3, 4]]},
                     400, "expecting only one of 'inputs' or 'instances'"),
    "no inputs": ("/v1/models/tiny:predict", {"signature_name": "encode"}, 400,
                  "Missing 'inputs' or 'instances' key"),
    "empty instances": ("/v1/models/tiny:predict", {"instances": []}, 400, "No values in 'instances'"),
    "classify": ("/v1/models/tiny:classify", {"examples": []}, 501, "not implemented"),
    "version label": ("/v1/models/tiny/labels/stable:predict", {"instances": [[1, 2, 3, 4]]}, 400,
                      "Unrecognized servable version label: stable"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_predict_requests_get_tf_serving_errors(server, case):
    path, body, expected_status, message = BAD_REQUESTS[case]
    status, answer = call(server, "POST", path, body)
    assert status == expected_status, answer
    assert list(answer) == ["error"] and message in answer["error"], answer["error"]


@pytest.mark.parametrize("method, path, expected_status, message", [
    ("GET", "/v1/models/nope", 404, "Could not find any versions of model nope"),
    ("GET", "/v1/models/tiny/versions/9", 404, "Could not find version 9 of model tiny"),
    ("GET", "/v1/models/tiny/versions/9/metadata", 404, "Specific(tiny, 9)"),
    ("GET", "/v1/models", 400, "Missing model name in request."),
    ("GET", "/v1/models/tiny:predict", 405, "Method GET is not allowed on /v1/models/tiny:predict; use POST"),
    ("DELETE", "/v1/models/tiny/versions/1:predict", 405, "use POST"),
    ("PUT", "/v1/models/tiny", 405, "Method PUT is not allowed on /v1/models/tiny; use GET"),
    ("POST", "/v1/models/tiny/metadata", 405, "use GET"),
    ("PUT", "/v1/elsewhere", 400, "Malformed request: PUT"),
    ("GET", "/index.html", 404, "Not found"),
])
def test_bad_status_and_metadata_requests(server, method, path, expected_status, message):
    status, answer = call(server, method, path, body="" if method in ("PUT", "POST") else None)
    assert status == expected_status and message in answer["error"], answer


def test_a_wrong_method_names_the_allowed_one_in_the_allow_header(server):
    parts = urllib.parse.urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", "/v1/models/tiny:predict")
        response = connection.getresponse()
        assert response.status == 405 and response.getheader("Allow") == "POST"
        assert list(json.loads(response.read())) == ["error"]
    finally:
        connection.close()


def test_oversized_body_is_refused_before_reading_it(server):
    body = json.dumps({"inputs": {"image": [[0.0, 0.0, 0.0, 0.0]] * 5000}})
    assert len(body) > MAX_BODY
    status, answer = call(server, "POST", "/v1/models/tiny:predict", body)
    assert status == 413 and "exceeds the limit" in answer["error"]


def test_missing_content_length_is_refused(server):
    status, _, answer = raw_exchange(server, b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status.startswith("HTTP/1.1 411") and "Content-Length required" in answer["error"]


def test_http_protocol_errors_are_json_too(server):
    status, _, answer = raw_exchange(server, b"BREW /v1/models/tiny HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status.startswith("HTTP/1.1 501") and "BREW" in answer["error"]


def test_server_survives_bad_requests(server):
    for case in sorted(BAD_REQUESTS):
        path, body, _, _ = BAD_REQUESTS[case]
        call(server, "POST", path, body)
    assert call(server, "GET", "/v1/models/tiny")[0] == 200


def test_burst_of_concurrent_requests(server, tiny_export):
    _, version_dir = tiny_export
    rng = np.random.default_rng(3)
    batches = [rng.standard_normal((1 + i % 4, 4)).astype(np.float32) for i in range(200)]
    parts = urllib.parse.urlsplit(server.url)

    def request(images):
        # A fresh connection per request: 200 connects on top of 200 predictions.
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        try:
            connection.request("POST", "/v1/models/tiny:predict",
                               body=json.dumps({"signature_name": "encode", "inputs": images.tolist()}))
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(request, batches))
    elapsed = time.monotonic() - started
    assert [status for status, _ in answers] == [200] * 200
    session, meta_graph = session_loader.load_session(version_dir)
    try:
        sig = meta_graph.signature_def["encode"]
        for images, (_, answer) in zip(batches, answers):
            expected = session.run(sig.outputs["z"].name, {sig.inputs["image"].name: images})
            np.testing.assert_allclose(answer["outputs"], expected, rtol=1e-5, atol=1e-6)
    finally:
        session.close()
    assert elapsed < 60


def test_keep_alive_connection_serves_many_requests(server):
    parts = urllib.parse.urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        for _ in range(20):
            connection.request("POST", "/v1/models/tiny:predict",
                               body=json.dumps({"signature_name": "encode", "inputs": [[1, 2, 3, 4]]}))
            response = connection.getresponse()
            assert response.status == 200
            response.read()
    finally:
        connection.close()


def test_slow_body_times_out(tiny_export):
    base, _ = tiny_export
    with LocalServer(base, port=0, request_timeout=0.5) as slow:
        status, _, answer = raw_exchange(slow, b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\n"
                                               b"Content-Length: 100\r\n\r\n{\"inputs\"")
        assert status.startswith("HTTP/1.1 408") and "timed out" in answer["error"]
        assert call(slow, "GET", "/v1/models/tiny")[0] == 200


def _wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_new_versions_are_picked_up_and_removed_ones_unloaded(tmp_path, tiny_export):
    _, version_dir = tiny_export
    shutil.copytree(version_dir, tmp_path / "tiny" / "1")
    with LocalServer(tmp_path, port=0, poll_seconds=0.2) as local:
        body = {"signature_name": "encode", "inputs": IMAGES.tolist()}
        v1 = call(local, "POST", "/v1/models/tiny:predict", body)[1]["outputs"]
        # Exported while the server runs: appears atomically, is loaded by the poller.
        export_tiny(tmp_path, seed=1)
        assert _wait_for(lambda: [s["state"] for s in call(local, "GET", "/v1/models/tiny")[1][
            "model_version_status"]] == ["AVAILABLE", "AVAILABLE"])
        assert call(local, "GET", "/v1/models/tiny/metadata")[1]["model_spec"]["version"] == "2"
        v2 = call(local, "POST", "/v1/models/tiny:predict", body)[1]["outputs"]
        assert not np.allclose(v1, v2)  # the latest version answers by default
        assert call(local, "POST", "/v1/models/tiny/versions/1:predict", body)[1]["outputs"] == v1
        # A second model appears the same way.
        export_tiny(tmp_path, name="other")
        assert _wait_for(lambda: call(local, "GET", "/v1/models/other")[0] == 200)
        # Removing the newest version falls back to the previous one.
        shutil.rmtree(tmp_path / "tiny" / "2")
        assert _wait_for(lambda: call(local, "GET", "/v1/models/tiny/versions/2")[0] == 404)
        assert call(local, "POST", "/v1/models/tiny:predict", body)[1]["outputs"] == v1


def test_a_version_that_fails_to_load_is_reported(tmp_path, tiny_export):
    _, version_dir = tiny_export
    shutil.copytree(version_dir, tmp_path / "tiny" / "1")
    shutil.copytree(version_dir, tmp_path / "tiny" / "2")
    shutil.rmtree(tmp_path / "tiny" / "2" / "variables")  # a broken copy
    with LocalServer(tmp_path, port=0) as local:
        status, answer = call(local, "GET", "/v1/models/tiny")
        states = {s["version"]: s for s in answer["model_version_status"]}
        assert states["1"]["state"] == "AVAILABLE"
        assert states["2"]["state"] == "END" and states["2"]["status"]["error_code"] != "OK"
        assert states["2"]["status"]["error_message"]
        # Requests keep going to the newest version that loaded.
        assert call(local, "GET", "/v1/models/tiny/metadata")[1]["model_spec"]["version"] == "1"


def test_client_on_the_local_server(server, tiny_export):
    _, version_dir = tiny_export
    client = Client(server.url)
    assert client.status("tiny")["model_version_status"][0]["state"] == "AVAILABLE"
    assert "encode" in client.metadata("tiny")["metadata"]["signature_def"]["signature_def"]
    expected = direct(version_dir, "reconstruct", image=IMAGES)
    for fmt in ("inputs", "instances"):
        outputs = client.predict("tiny", {"image": IMAGES}, format=fmt)
        assert set(outputs) == {"image", "z"} and outputs["z"].dtype == np.float32
        np.testing.assert_allclose(outputs["z"], expected["z"], rtol=1e-6)
        single = client.predict("tiny", {"image": IMAGES}, signature_name="encode", format=fmt, version=1)
        np.testing.assert_allclose(single["z"], expected["z"], rtol=1e-6)


def test_client_generate(server):
    client = Client(server.url)
    seeded = client.generate("tiny", {"image": IMAGES}, "label", seed=7)
    assert seeded.shape == (2, 3) and seeded.dtype == np.float32
    np.testing.assert_array_equal(seeded, client.generate("tiny", {"image": IMAGES}, "label", seed=7))
    assert not np.allclose(seeded, client.generate("tiny", {"image": IMAGES}, "label", seed=8))
    fresh = client.generate("tiny", {"image": IMAGES}, "label")
    np.testing.assert_allclose(fresh.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="exactly one source modality"):
        client.generate("tiny", {"image": IMAGES, "label": IMAGES}, "label")


def test_client_raises_the_server_error(server):
    from mibzoo.serving import ServingError

    client = Client(server.url)
    with pytest.raises(ServingError) as info:
        client.predict("nope", {"image": IMAGES})
    assert info.value.status == 404 and "Servable not found" in info.value.message
    with pytest.raises(ServingError) as info:
        client.generate("tiny", {"image": IMAGES}, "audio", seed=1)
    assert info.value.status == 400 and "generate_image_to_audio_seeded" in info.value.message
    with pytest.raises(ServingError, match="cannot reach the server"):
        Client("http://127.0.0.1:9", timeout=2).status("tiny")


def test_a_failing_warmup_request_fails_the_load(tmp_path, tiny_export):
    _, version_dir = tiny_export
    shutil.copytree(version_dir, tmp_path / "tiny" / "1")
    warmup.write_warmup_requests(
        tmp_path / "tiny" / "1" / "assets.extra" / "tf_serving_warmup_requests", "tiny",
        [("encode", {"image": np.zeros((1, 5), np.float32)})])
    with LocalServer(tmp_path, port=0) as local:
        (state,) = call(local, "GET", "/v1/models/tiny")[1]["model_version_status"]
        assert state["state"] == "END"
        assert "warm-up record 0 (encode) failed" in state["status"]["error_message"]
        assert call(local, "POST", "/v1/models/tiny:predict", {"instances": [[1, 2, 3, 4]]})[0] == 404


def test_a_broken_replacement_keeps_the_loaded_version_serving(tmp_path, tiny_export, monkeypatch):
    from mibzoo.serving import servables

    _, version_dir = tiny_export
    shutil.copytree(version_dir, tmp_path / "tiny" / "1")
    manager = servables.ModelManager(tmp_path, poll_seconds=3600)
    manager.scan()
    loads = []
    real = servables.LoadedVersion
    monkeypatch.setattr(servables, "LoadedVersion", lambda *a, **k: loads.append(a) or real(*a, **k))
    try:
        shutil.rmtree(tmp_path / "tiny" / "1" / "variables")  # rewritten in place, broken
        for _ in range(3):
            manager.scan()
        assert len(loads) == 1  # tried once; retried only when the directory changes again
        assert [s.state for s in manager.status("tiny")] == ["AVAILABLE"]
        loaded = manager.get("tiny")
        loaded.release()
    finally:
        manager.stop()
