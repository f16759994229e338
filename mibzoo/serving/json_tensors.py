"""One JSON value <-> one typed numpy array, as TF Serving's REST API converts them (its
tensorflow_serving/util/json_tensor.cc): the signature's tensor specs, JSON values to dense arrays
of the input's dtype (numbers, bools, UTF-8 or ``{"b64": ...}`` strings) with its error texts, and
output arrays back to JSON values. `mibzoo.serving.rest_json` builds the request and response
documents from them.

Pure numpy (and orjson, `mibzoo.serving.jsonio`): no TensorFlow import.
"""
import base64
import binascii
import json
from dataclasses import dataclass

import numpy as np

from mibzoo.serving import jsonio

_MAX_SHOWN = 200


@dataclass(frozen=True)
class TensorSpecInfo:
    """One named input or output of a signature, as the REST layer needs it.

    Attributes:
        key: the signature's name for the tensor (the JSON key).
        tensor_name: the graph tensor name (``serving_default_x:0``) fed or fetched.
        dtype: the numpy dtype (``object`` for ``DT_STRING``).
        dtype_name: the TensorFlow enum name, e.g. ``"DT_FLOAT"``.
        shape: a tuple with None for unknown dimensions, or None for unknown rank.
    """

    key: str
    tensor_name: str
    dtype: np.dtype
    dtype_name: str
    shape: tuple

    @property
    def type_string(self):
        """TensorFlow's short type name (``float``, ``int32``), as in its error texts."""
        return self.dtype_name[3:].lower() if self.dtype_name.startswith("DT_") else self.dtype_name

    def shape_string(self):
        if self.shape is None:
            return "[?]"
        return "[" + ",".join("-1" if d is None else str(d) for d in self.shape) + "]"


def shown(value):
    """A JSON value as error messages show it (truncated)."""
    text = json.dumps(value, allow_nan=True) if not isinstance(value, str) else json.dumps(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "...(truncated)"


def json_type(value):
    """The JSON type of a value, as TF Serving names it in errors."""
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def invalid(message):
    """An INVALID_ARGUMENT `ServingStatusError` with ``message``."""
    from mibzoo.serving.errors import invalid_argument

    return invalid_argument(message)


def is_b64(value):
    """Whether a JSON value is a ``{"b64": ...}`` bytes object."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def is_named_object(value):
    return isinstance(value, dict) and not is_b64(value)


def _first_bad_leaf(value, ok):
    if isinstance(value, list):
        for item in value:
            bad = _first_bad_leaf(item, ok)
            if bad is not _NOTHING:
                return bad
        return _NOTHING
    return _NOTHING if ok(value) else value


_NOTHING = object()


def _type_error(value, spec, where, ok):
    bad = _first_bad_leaf(value, ok)
    if bad is _NOTHING:  # the leaves are fine: the nesting is not
        return invalid(f"{where}: JSON value is not a dense tensor of {spec.type_string}")
    return invalid(
        f"{where}: JSON Value: {shown(bad)} Type: {json_type(bad)} is not of expected "
        f"type: {spec.type_string}"
    )


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _dense(value, where):
    try:
        return np.array(value)
    except (ValueError, OverflowError) as err:
        raise invalid(
            f"{where}: JSON value is not a dense tensor (lists at the same depth must have "
            f"the same length): {str(err).splitlines()[0]}"
        ) from None


def to_array(value, spec, where):
    """Converts one JSON value to an array of `spec.dtype`, with TF Serving's type rules."""
    kind = spec.dtype.kind
    if kind == "O":
        return _string_array(value, spec, where)
    array = _dense(value, where)
    if array.size == 0 and array.dtype.kind == "f":
        return array.astype(spec.dtype)  # `[]` or `[[], []]`: nothing to type-check
    got = array.dtype.kind
    if kind == "f":
        if got not in "iuf":
            raise _type_error(value, spec, where, _is_number)
        if got in "iu":
            # Like TF Serving: integers above 2**mantissa_bits cannot become this float exactly.
            limit = 2 ** (np.finfo(spec.dtype).nmant + 1) - 1
            if array.size and np.abs(array).max() > limit:
                raise invalid(
                    f"{where}: Cannot convert JSON value: {int(np.abs(array).max())} to "
                    f"{spec.type_string} without loss of precision."
                )
        else:
            finite = array[np.isfinite(array)]
            if finite.size and np.abs(finite).max() > np.finfo(spec.dtype).max:
                raise invalid(
                    f"{where}: Cannot convert JSON value: {float(np.abs(finite).max())} to "
                    f"{spec.type_string} without loss of precision."
                )
    elif kind in "iu":
        if got not in "iu":
            raise _type_error(value, spec, where, _is_int)
        info = np.iinfo(spec.dtype)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise invalid(
                f"{where}: JSON value out of range for {spec.type_string} "
                f"[{info.min}, {info.max}]"
            )
    elif kind == "b":
        if got != "b":
            raise _type_error(value, spec, where, lambda v: isinstance(v, bool))
    else:
        raise invalid(f"{where}: tensors of type {spec.type_string} cannot be sent as JSON")
    return array.astype(spec.dtype, copy=False)


def _nested_shape(value, where):
    shape = []
    level = value
    while isinstance(level, list):
        shape.append(len(level))
        if not level:
            break
        level = level[0]

    def check(node, depth):
        if depth == len(shape):
            if isinstance(node, list):
                raise invalid(f"{where}: JSON value is not a dense tensor (ragged nesting)")
            return
        if not isinstance(node, list) or len(node) != shape[depth]:
            raise invalid(f"{where}: JSON value is not a dense tensor (ragged nesting)")
        for child in node:
            check(child, depth + 1)

    check(value, 0)
    return shape


def _string_array(value, spec, where):
    shape = _nested_shape(value, where)

    def leaf(item):
        if isinstance(item, str):
            return item.encode("utf-8")
        if is_b64(item):
            try:
                return base64.b64decode(item["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise invalid(f"{where}: Unable to base64 decode") from None
        raise invalid(
            f"{where}: JSON Value: {shown(item)} Type: {json_type(item)} is not of "
            f"expected type: {spec.type_string}"
        )

    flat = []

    def walk(node):
        if isinstance(node, list):
            for child in node:
                walk(child)
        else:
            flat.append(leaf(node))

    walk(value)
    array = np.empty(len(flat), dtype=object)
    array[:] = flat
    return array.reshape(shape)


def jsonable(name, array):
    """One output array as a JSON value: numbers in the shortest round-tripping text, strings as
    UTF-8 text or, for outputs named ``*_bytes``, ``{"b64": ...}``."""
    array = np.asarray(array)
    kind = array.dtype.kind
    if kind in "fiub":
        # Floats as the shortest decimal that round-trips their own precision, as TF Serving writes
        # them; NaN and infinities as NaN / Infinity.
        return jsonio.array_value(array)
    if kind in "OS":
        as_b64 = name.endswith("_bytes")

        def convert(item):
            raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
            if as_b64:
                return {"b64": base64.b64encode(raw).decode("ascii")}
            return raw.decode("utf-8", errors="replace")

        flat = [convert(item) for item in array.reshape(-1)]
        if array.ndim == 0:
            return flat[0]
        return np.array(flat, dtype=object).reshape(array.shape).tolist()
    raise invalid(f"Failed to write JSON value for tensor type: {array.dtype}")
