"""Errors of the serving layer: what the servers answer, and what the clients raise."""

# TensorFlow canonical error codes -> HTTP status, exactly as TF Serving's REST server maps
# them (tensorflow_serving/model_servers/http_server.cc, ToHTTPStatusCode).
HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}


class ServingStatusError(Exception):
    """A request the server refuses or fails, as a TensorFlow status code and message.

    The REST server answers it with ``{"error": message}`` and the HTTP status TF Serving
    uses for `code`; the gRPC server aborts the call with the same code.

    Args:
        code: a TensorFlow error code name, e.g. ``"INVALID_ARGUMENT"``.
        message: the error text shown to the client.
    """

    def __init__(self, code, message):
        if code not in HTTP_STATUS or code == "OK":
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self):
        return HTTP_STATUS[self.code]


class MethodNotAllowed(ServingStatusError):
    """An HTTP method that a REST resource does not take (``GET`` on ``:predict``): 405, with the
    methods it does take in ``allow`` (sent as the ``Allow`` header)."""

    def __init__(self, method, path, allow):
        super().__init__("INVALID_ARGUMENT", f"Method {method} is not allowed on {path}; use {allow}")
        self.allow = allow

    @property
    def http_status(self):
        return 405


def invalid_argument(message):
    return ServingStatusError("INVALID_ARGUMENT", message)


def not_found(message):
    return ServingStatusError("NOT_FOUND", message)


class ServingError(RuntimeError):
    """A serving call failed: the server's error text, the HTTP status or gRPC code, the URL.

    Attributes:
        message: the server's ``error`` text (or why the server could not be reached).
        status: the HTTP status (REST), the gRPC status code name (gRPC), or None when no
            answer came back.
        url: the URL or gRPC target called.
    """

    def __init__(self, message, status=None, url=None):
        self.message = message
        self.status = status
        self.url = url
        where = f" ({url})" if url else ""
        prefix = f"{status}: " if status is not None else ""
        super().__init__(f"{prefix}{message}{where}")
