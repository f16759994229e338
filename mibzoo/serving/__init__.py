"""Serving mibzoo models: TF Serving clients and a local TF-Serving-compatible server.

- `Client` / `GRPCClient`: call TF Serving (or the local server) over REST or gRPC;
  ``generate`` runs the cross-modal generation signatures.
- `LocalServer`: TF Serving's REST (and gRPC) API over a model base directory, for
  development and tests where the ``tensorflow/serving`` image cannot run.

Exporting the versions these serve is `mibzoo.export_archive`. The REST client itself
uses only urllib and numpy; `LocalServer` (TensorFlow sessions) is imported on first use.
"""
from mibzoo.serving.client import Client
from mibzoo.serving.grpc_client import GRPCClient
from mibzoo.serving.signature_names import generate_signature_name, seeds_for_batch
from mibzoo.serving.errors import ServingError

__all__ = [
    "Client",
    "GRPCClient",
    "LocalServer",
    "ServingError",
    "generate_signature_name",
    "seeds_for_batch",
]


def __getattr__(name):
    # LocalServer brings the HTTP server and session machinery; load it when asked for.
    if name == "LocalServer":
        from mibzoo.serving.local_server import LocalServer

        return LocalServer
    raise AttributeError(f"module 'mibzoo.serving' has no attribute {name!r}")
