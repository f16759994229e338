"""A development server that speaks TF Serving's REST API over a model base directory.

For laptops and CI, where the ``tensorflow/serving`` image cannot run. It serves the
same URLs and JSON as TF Serving (``GET /v1/models/NAME[/versions/N][/metadata]``,
``POST /v1/models/NAME[/versions/N]:predict``) and runs each version through the same
session loader, so a client written against it works against TF Serving unchanged.
Standard library only (``http.server``), plus TensorFlow for the sessions.

It is not a production server: one thread per connection, no request batching, and
``:classify``/``:regress`` are not implemented. See ``serving/README.md`` for TF Serving.

Example::

    from mibzoo.serving import LocalServer, Client

    with LocalServer("exports", port=0) as server:
        print(Client(server.url).predict("mnist_mvae", {"image": images}))
"""
import errno
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mibzoo.serving import rest_json
# The REST API without its transport lives in `rest_api`; its names are re-exported here.
from mibzoo.serving.rest_api import (DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONCURRENT,
                                     DEFAULT_REQUEST_TIMEOUT, RestApi)
from mibzoo.serving.servables import ModelManager

__all__ = ["DEFAULT_MAX_BATCH", "DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_CONCURRENT", "DEFAULT_REQUEST_TIMEOUT",
           "LocalServer", "RestApi"]
logger = logging.getLogger("mibzoo.serving")

class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 transport for `RestApi`: bodies, limits, timeouts, JSON responses."""

    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections
    # Buffer the response so headers and body leave in one segment (http.server flushes
    # after each request), and send it at once: with Nagle's algorithm and the client's
    # delayed ACK, a response split in two writes waits ~40 ms.
    wbufsize = -1
    disable_nagle_algorithm = True
    server_version = "mibzoo-local-serving"
    # Set per server (see LocalServer): the socket timeout for reading a request, which
    # also closes idle keep-alive connections.
    timeout = DEFAULT_REQUEST_TIMEOUT

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def _dispatch(self, method):
        try:
            body = self._read_body(method)
            if body is None:
                return
            status, payload, *headers = self.server.api.handle(method, self.path, body)
            self._send(status, payload, headers=headers[0] if headers else None)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client left; nothing to answer

    def _read_body(self, method):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._send(411, {"error": "chunked request bodies are not supported; send "
                                      "Content-Length"}, close=True)
            return None
        length = self.headers.get("Content-Length")
        if length is None:
            if method in ("POST", "PUT", "PATCH"):
                self._send(411, {"error": "Content-Length required"}, close=True)
                return None
            return b""
        try:
            length = int(length)
            if length < 0:
                raise ValueError(length)
        except ValueError:
            self._send(400, {"error": f"bad Content-Length: {length!r}"}, close=True)
            return None
        if length > self.server.max_body_bytes:
            # Answer without reading the body, then drop the connection (its unread
            # bytes would otherwise be parsed as the next request).
            self._send(413, {"error": f"request body of {length} bytes exceeds the limit of "
                                      f"{self.server.max_body_bytes} bytes"}, close=True)
            return None
        try:
            body = self.rfile.read(length)
        except socket.timeout:
            self._send(408, {"error": "timed out reading the request body"}, close=True)
            return None
        if len(body) < length:
            self.close_connection = True  # the client hung up mid-body
            return None
        return body

    def _send(self, status, payload, close=False, headers=None):
        data = rest_json.dumps(payload)
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def send_error(self, code, message=None, explain=None):
        # http.server's own errors (bad request line, oversized headers, unknown method)
        # come as HTML; answer them in the API's JSON form instead.
        if self.request_version == "HTTP/0.9" or self.command == "HEAD":
            return super().send_error(code, message, explain)
        short = self.responses.get(code, ("error",))[0]
        self.log_error("code %d, message %s", code, message)
        self._send(code, {"error": message or short}, close=True)

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        logger.debug("%s - %s", self.address_string(), format % args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections never block shutdown
    allow_reuse_address = True
    request_queue_size = 128  # bursts of concurrent clients queue instead of being refused

    def handle_error(self, request, client_address):
        # The default prints a traceback to stderr; log it instead and keep serving.
        logger.exception("error while handling a request from %s", client_address)


class LocalServer:
    """TF Serving's REST API (and optionally its gRPC API) over a model base directory.

    Args:
        base: the model base directory (``BASE/NAME/VERSION/``), as mounted at
            ``/models`` for TF Serving.
        host: the interface to bind; 127.0.0.1 keeps the server private to this machine.
        port: the REST port (8501 like TF Serving; 0 picks a free port).
        max_batch: the largest batch accepted per request.
        grpc_port: also serve TF Serving's gRPC API on this port (8500 like TF Serving, 0
            picks a free one); None (default) for REST only. Needs grpcio and
            tensorflow-serving-api.
        poll_seconds: how often `base` is rescanned for new or removed versions.
        request_timeout: seconds allowed for reading a request body, waiting for a free
            slot and running a request (Session.run deadline).
        max_body_bytes: larger request bodies are refused with 413.
        max_concurrent: predict calls running at once.
        replay_warmup: replay each version's warm-up records when loading it.
    """

    def __init__(self, base, host="127.0.0.1", port=8501, max_batch=DEFAULT_MAX_BATCH, *,
                 grpc_port=None, poll_seconds=1.0, request_timeout=DEFAULT_REQUEST_TIMEOUT,
                 max_body_bytes=DEFAULT_MAX_BODY_BYTES, max_concurrent=DEFAULT_MAX_CONCURRENT,
                 replay_warmup=True):
        self.base = base
        self.host = host
        self.port = port
        self.grpc_port = grpc_port
        self.request_timeout = request_timeout
        self.max_body_bytes = max_body_bytes
        self.manager = ModelManager(base, poll_seconds=poll_seconds, replay_warmup=replay_warmup)
        self.api = RestApi(self.manager, max_batch, request_timeout, max_concurrent)
        self._httpd = None
        self._thread = None
        self._grpc = None

    @property
    def url(self):
        """``http://HOST:PORT`` of the running server (the bound port when `port` was 0)."""
        if self._httpd is None:
            raise RuntimeError("the server is not started; call start() first")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def grpc_target(self):
        """``HOST:PORT`` of the gRPC API, or None when it is not served."""
        return None if self._grpc is None else f"{self.host}:{self._grpc.port}"

    def _bind(self):
        handler = type("Handler", (_Handler,), {"timeout": self.request_timeout})
        try:
            httpd = _HTTPServer((self.host, self.port), handler)
        except socket.gaierror as err:
            raise ValueError(f"host {self.host!r}: not an address or host name of this machine ({err.strerror}); "
                             "use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)") from None
        except OverflowError:
            raise ValueError(f"port {self.port}: expected 0..65535 (0 picks a free port)") from None
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise RuntimeError(f"port {self.port} on {self.host} is already in use (another server?); "
                                   "choose another port") from None
            if err.errno == errno.EADDRNOTAVAIL:
                raise ValueError(f"host {self.host!r}: this machine has no such address") from None
            raise RuntimeError(f"cannot listen on {self.host}:{self.port}: {err.strerror}") from None
        httpd.api = self.api
        httpd.max_body_bytes = self.max_body_bytes
        return httpd

    def start(self):
        """Loads the models, then serves in background threads; returns self."""
        if self._httpd is not None:
            return self
        self.manager.start()  # the first scan is synchronous: models are ready on return
        try:
            self._httpd = self._bind()
            if self.grpc_port is not None:
                from mibzoo.serving.local_grpc import start_grpc_server

                self._grpc = start_grpc_server(self.manager, self.api, self.host, self.grpc_port)
        except BaseException:
            self.stop()
            raise
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
            name="mibzoo-rest", daemon=True,
        )
        self._thread.start()
        logger.info("serving %s at %s", self.base, self.url)
        return self

    def stop(self):
        """Stops serving and unloads the models."""
        if self._httpd is not None:
            if self._thread is not None:
                self._httpd.shutdown()
                self._thread.join(timeout=30)
            self._httpd.server_close()
        if self._grpc is not None:
            self._grpc.stop(grace=1.0).wait()
        self.manager.stop()
        self._httpd = self._thread = self._grpc = None

    def serve_forever(self):
        """Serves in the calling thread until interrupted (Ctrl-C), then stops."""
        self.start()
        try:
            while self._thread.is_alive():
                self._thread.join(timeout=0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
