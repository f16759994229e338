"""The gRPC client against the local gRPC API, and the `mibzoo serve` command line."""
import argparse

import numpy as np
import pytest

from mibzoo.serving import GRPCClient, LocalServer, ServingError, seeds_for_batch
from mibzoo.serving import cli as serving_cli

IMAGES = np.array([[0.5, -1.0, 2.0, 0.25], [1.0, 0.0, -0.5, 3.0]], np.float32)


@pytest.fixture(scope="module")
def grpc_server(tiny_export):
    base, _ = tiny_export
    with LocalServer(base, port=0, grpc_port=0, max_batch=8) as running:
        yield running


def test_grpc_client_matches_rest(grpc_server):
    from mibzoo.serving import Client

    rest = Client(grpc_server.url)
    with GRPCClient(grpc_server.grpc_target) as client:
        assert client.status("tiny") == rest.status("tiny")
        assert client.metadata("tiny") == rest.metadata("tiny")
        outputs = client.predict("tiny", {"image": IMAGES}, signature_name="reconstruct")
        expected = rest.predict("tiny", {"image": IMAGES}, signature_name="reconstruct")
        assert set(outputs) == {"image", "z"} and outputs["z"].dtype == np.float32
        np.testing.assert_allclose(outputs["z"], expected["z"], rtol=1e-6)
        seeded = client.generate("tiny", {"image": IMAGES}, "label", seed=3, version=1)
        np.testing.assert_allclose(seeded, rest.generate("tiny", {"image": IMAGES}, "label", seed=3),
                                   rtol=1e-6)


@pytest.mark.parametrize("inputs, kwargs, code, message", [
    ({"image": IMAGES}, {"signature_name": "nope"}, "INVALID_ARGUMENT", "not found in signature def"),
    ({"image": IMAGES[:, :3]}, {}, "INVALID_ARGUMENT", "has shape [2,3]"),
    ({"image": IMAGES, "bogus": IMAGES}, {}, "INVALID_ARGUMENT", "Sent extra: {bogus}"),
    ({"image": IMAGES.astype(np.float64)}, {}, "INVALID_ARGUMENT", "dtype float64, expected float"),
    ({"image": np.zeros((9, 4), np.float32)}, {}, "INVALID_ARGUMENT", "maximum batch size 8"),
    ({"image": IMAGES}, {"version": 5}, "NOT_FOUND", "Specific(tiny, 5)"),
])
def test_grpc_errors_carry_tf_serving_codes(grpc_server, inputs, kwargs, code, message):
    with GRPCClient(grpc_server.grpc_target) as client:
        with pytest.raises(ServingError) as info:
            client.predict("tiny", inputs, **kwargs)
    assert info.value.status == code and message in info.value.message


def test_grpc_client_names_the_package_when_protos_are_missing(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorflow_serving.apis", None)
    with pytest.raises(ImportError, match=r"pip install tensorflow-serving-api"):
        GRPCClient("localhost:8500")


def test_seeds_for_batch():
    np.testing.assert_array_equal(seeds_for_batch(5, 3), [[5, 0], [5, 1], [5, 2]])
    np.testing.assert_array_equal(seeds_for_batch([1, 2], 2), [[1, 2], [1, 2]])
    assert seeds_for_batch(np.ones((2, 2)), 2).dtype == np.int32
    with pytest.raises(ValueError, match="expected an int, a pair"):
        seeds_for_batch([1, 2, 3], 2)
    with pytest.raises(ValueError, match="int32"):
        seeds_for_batch(2 ** 40, 2)


def test_serve_command_line(tmp_path):
    parser = argparse.ArgumentParser(prog="mibzoo")
    serving_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", str(tmp_path), "--port", "0", "--max-batch", "64"])
    assert (args.base, args.port, args.host, args.max_batch) == (str(tmp_path), 0, "127.0.0.1", 64)
    assert args.func is serving_cli._serve_command
    missing = parser.parse_args(["serve", str(tmp_path / "nowhere")])
    with pytest.raises(FileNotFoundError, match="no such directory"):
        missing.func(missing)


def test_serve_is_a_mibzoo_subcommand():
    from mibzoo.cli import _SUBCOMMAND_MODULES

    assert "mibzoo.serving.cli" in _SUBCOMMAND_MODULES


def test_example_scripts_run_end_to_end(tmp_path, capsys):
    """serving/examples: export the demo, then both clients against the local server."""
    import importlib.util
    import pathlib

    examples = pathlib.Path(__file__).resolve().parents[2] / "serving" / "examples"

    def load(name):
        spec = importlib.util.spec_from_file_location(f"serving_example_{name}", examples / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    assert load("export_demo").main([str(tmp_path)]) == 0
    with LocalServer(tmp_path, port=0, grpc_port=0) as local:
        assert load("rest_client").main(["--url", local.url, "--model", "demo"]) == 0
        assert load("grpc_client").main(["--target", local.grpc_target, "--model", "demo"]) == 0
    out = capsys.readouterr().out
    assert "same seed, same samples: True" in out and "raw stub, same seeds, same samples: True" in out


def test_a_port_in_use_and_a_bad_host_are_one_clear_error(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"port {port} on 127.0.0.1 is already in use"):
            LocalServer(tmp_path, port=port).start()
    with pytest.raises(ValueError, match=r"host 'no-such-host.invalid': not an address or host name"):
        LocalServer(tmp_path, host="no-such-host.invalid", port=0).start()


def test_export_refuses_a_base_that_is_a_file(tmp_path):
    from mibzoo import export_archive
    from tests.serving.tiny_model import build_tiny_model, tiny_signatures

    base = tmp_path / "base"
    base.write_text("not a directory")
    model = build_tiny_model()
    with pytest.raises(ValueError, match=r"base .*base: exists and is not a directory"):
        export_archive.export_signatures(base, "tiny", 1, model, tiny_signatures(model))
