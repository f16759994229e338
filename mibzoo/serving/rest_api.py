"""TF Serving's REST API over a `ModelManager`, without the HTTP transport: the URL routes
(``GET /v1/models/NAME[/versions/N][/metadata]``, ``POST /v1/models/NAME[/versions/N]:predict``),
status and metadata documents, and predict calls with their limits (batch size, concurrent
slots, timeout). `mibzoo.serving.local_server` carries it over HTTP, `mibzoo.serving.local_grpc`
over gRPC.
"""
import logging
import re
import threading
import urllib.parse

from mibzoo.serving import rest_json
from mibzoo.serving.errors import MethodNotAllowed, ServingStatusError, invalid_argument

logger = logging.getLogger("mibzoo.serving")

# TF Serving's URL patterns (tensorflow_serving/model_servers/http_rest_api_util.cc).
_PREDICT_RE = re.compile(
    r"^/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)$",
    re.IGNORECASE,
)
_STATUS_RE = re.compile(
    r"^/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?$",
    re.IGNORECASE,
)

DEFAULT_MAX_BATCH = 1024
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_REQUEST_TIMEOUT = 30.0
DEFAULT_MAX_CONCURRENT = 16


class RestApi:
    """TF Serving's REST API over a `ModelManager`, without the HTTP transport.

    Args:
        manager: the `ModelManager` holding the loaded versions.
        max_batch: the largest batch (first input dimension) accepted per request.
        request_timeout: seconds a request may wait for a free slot and then run.
        max_concurrent: how many predict calls run at once; more wait for a slot and get
            503 (UNAVAILABLE) if none frees up within `request_timeout`.
    """

    def __init__(self, manager, max_batch=DEFAULT_MAX_BATCH,
                 request_timeout=DEFAULT_REQUEST_TIMEOUT, max_concurrent=DEFAULT_MAX_CONCURRENT):
        if max_batch < 1:
            raise ValueError(f"max_batch {max_batch!r}: expected a positive integer")
        self.manager = manager
        self.max_batch = int(max_batch)
        self.request_timeout = float(request_timeout)
        self._slots = threading.BoundedSemaphore(max_concurrent)

    def handle(self, method, path, body):
        """Answers one request.

        Args:
            method: the HTTP method.
            path: the URL path (a query string is ignored).
            body: the request body bytes.

        Returns:
            ``(http_status, json_object)``, or ``(http_status, json_object, headers)`` when the
            answer needs headers of its own (405's ``Allow``); errors are ``{"error": message}``.
        """
        try:
            return 200, self._route(method, urllib.parse.urlsplit(path).path, body)
        except MethodNotAllowed as err:
            return err.http_status, {"error": err.message}, {"Allow": err.allow}
        except ServingStatusError as err:
            return err.http_status, {"error": err.message}
        except Exception as err:  # a bug or an unexpected TF failure: answer, keep serving
            logger.exception("%s %s failed", method, path)
            return 500, {"error": f"Internal error: {type(err).__name__}: {err}"}

    def _route(self, method, path, body):
        if method == "POST":
            match = _PREDICT_RE.match(path)
            if match:
                name, version, label, verb = match.groups()
                name = urllib.parse.unquote(name)
                self._no_label(label)
                if verb.lower() != "predict":
                    raise ServingStatusError(
                        "UNIMPLEMENTED",
                        f":{verb} is not implemented by the mibzoo local server; use :predict",
                    )
                return self._predict(name, _version(version), body)
        elif method == "GET":
            match = _STATUS_RE.match(path)
            if match:
                name, version, label, metadata = match.groups()
                if not name:
                    raise invalid_argument("Missing model name in request.")
                name = urllib.parse.unquote(name)
                self._no_label(label)
                if metadata:
                    return self._metadata(name, _version(version))
                return self._status(name, _version(version))
        if _PREDICT_RE.match(path):
            raise MethodNotAllowed(method, path, "POST")
        if _STATUS_RE.match(path) and method != "GET":
            raise MethodNotAllowed(method, path, "GET")
        if not path.lower().startswith("/v1/"):
            raise ServingStatusError("NOT_FOUND", f"Not found: {path}")
        raise invalid_argument(f"Malformed request: {method} {path}")

    @staticmethod
    def _no_label(label):
        if label:
            raise invalid_argument(
                f"Unrecognized servable version label: {urllib.parse.unquote(label)} (the local "
                "server has no version labels; use /versions/N)"
            )

    def _status(self, name, version):
        statuses = self.manager.status(name, version)
        return {"model_version_status": [status.as_json() for status in statuses]}

    def _metadata(self, name, version):
        loaded = self.manager.get(name, version)
        try:
            return loaded.metadata()
        finally:
            loaded.release()

    def _predict(self, name, version, body):
        doc = rest_json.parse_json_object(body)
        signature = rest_json.signature_name(doc)
        loaded = self.manager.get(name, version)
        try:
            specs = loaded.input_specs(signature)
            arrays, fmt = rest_json.decode_predict_request(doc, specs)
            outputs = self.run_predict(loaded, signature, arrays)
            return rest_json.encode_predict_response(outputs, fmt)
        finally:
            loaded.release()

    def run_predict(self, loaded, signature, arrays):
        """Runs a signature within this server's limits (batch size, slots, deadline).

        Shared with the gRPC front end.

        Raises:
            ServingStatusError: UNAVAILABLE when no slot frees up within the timeout, or
                whatever `LoadedVersion.predict` raises.
        """
        if not self._slots.acquire(timeout=self.request_timeout):
            raise ServingStatusError(
                "UNAVAILABLE", "the server is overloaded: no free request slot; retry later"
            )
        try:
            return loaded.predict(
                signature, arrays, self.max_batch, timeout_ms=self.request_timeout * 1000
            )
        finally:
            self._slots.release()


def _version(text):
    return int(text) if text else None
