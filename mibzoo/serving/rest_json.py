"""TF Serving's REST JSON conventions for the predict API: request JSON -> arrays -> JSON.

Follows tensorflow_serving/util/json_tensor.cc, including its error texts where they help:

- request: ``{"signature_name": s?, "instances": [...]}`` (row format: one entry per
  example; a plain list when the signature has one input, else one object per example
  keyed by input name) or ``{"inputs": ...}`` (columnar: a value for a single input, else
  an object of input name -> whole batch). Not both.
- response: row requests get ``{"predictions": ...}`` -- a list of values when the
  signature has one output, else a list of objects; columnar requests get
  ``{"outputs": ...}`` -- the value itself for one output, else an object.
- numbers: ints are accepted for float inputs, not floats for int inputs; ``NaN``,
  ``Infinity``, ``-Infinity`` are accepted and written; floats are written with the
  shortest text that round-trips their dtype (``0.1``, not ``0.10000000149011612``).
- strings: UTF-8 text, or ``{"b64": ...}`` for bytes; outputs whose name ends in
  ``_bytes`` are written as ``{"b64": ...}``.

One deliberate difference: TF Serving silently ignores extra named inputs in the columnar
format; this module rejects them, as it does in the row format.

Pure numpy (and orjson, `mibzoo.serving.jsonio`): no TensorFlow import.
"""
import base64
import binascii
import json
from dataclasses import dataclass

import numpy as np

from mibzoo.serving import jsonio

ROW = "row"
COLUMNAR = "columnar"
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


def _shown(value):
    text = json.dumps(value, allow_nan=True) if not isinstance(value, str) else json.dumps(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "...(truncated)"


def _json_type(value):
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


def _invalid(message):
    from mibzoo.serving.errors import invalid_argument

    return invalid_argument(message)


def parse_json_object(body):
    """Parses a request body into a JSON object (a dict).

    Args:
        body: the raw request bytes.

    Raises:
        ServingStatusError: INVALID_ARGUMENT with TF Serving's "JSON Parse error" text.
    """
    if not body or not body.strip():
        raise _invalid("JSON Parse error: The document is empty")
    try:
        # NaN/Infinity/-Infinity are accepted like TF Serving's parser does
        # (rapidjson with kParseNanAndInfFlag).
        doc = jsonio.loads(body)
    except UnicodeDecodeError as err:
        raise _invalid(f"JSON Parse error: Invalid encoding in string ({err.reason})") from None
    except json.JSONDecodeError as err:
        raise _invalid(f"JSON Parse error: {err.msg} at offset: {err.pos}") from None
    except RecursionError:
        raise _invalid("JSON Parse error: document nested too deeply") from None
    if not isinstance(doc, dict):
        raise _invalid(f"JSON Value: {_shown(doc)} Is not object")
    return doc


def signature_name(doc):
    """The request's ``signature_name`` ('' when absent: the default signature)."""
    name = doc.get("signature_name", "")
    if not isinstance(name, str):
        raise _invalid(
            f"JSON Value: {_shown(doc)} not formatted correctly. 'signature_name' key must be "
            "a string value."
        )
    return name


def _is_b64(value):
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _is_named_object(value):
    return isinstance(value, dict) and not _is_b64(value)


def decode_predict_request(doc, specs):
    """Turns a predict request into input arrays, one per signature input.

    Args:
        doc: the parsed request object.
        specs: ``{input_key: TensorSpecInfo}`` of the signature.

    Returns:
        ``(arrays, format)``: ``{input_key: np.ndarray}`` in the specs' dtypes, and
        `ROW` or `COLUMNAR` (which decides the response format).

    Raises:
        ServingStatusError: INVALID_ARGUMENT for any malformed, missing, extra or
            mistyped input.
    """
    has_instances, has_inputs = "instances" in doc, "inputs" in doc
    if has_instances and has_inputs:
        raise _invalid(
            f"JSON Value: {_shown(doc)} Not formatted correctly expecting only one of "
            "'inputs' or 'instances' keys to exist "
        )
    if has_instances:
        return _decode_instances(doc["instances"], specs, doc), ROW
    if has_inputs:
        return _decode_inputs(doc["inputs"], specs), COLUMNAR
    raise _invalid("Missing 'inputs' or 'instances' key")


def _decode_instances(instances, specs, doc):
    if not isinstance(instances, list):
        raise _invalid(f"JSON Value: {_shown(doc)} Excepting 'instances' to be an list/array")
    if not instances:
        raise _invalid(f"JSON Value: {_shown(doc)} No values in 'instances' array")
    names = sorted(specs)
    named = _is_named_object(instances[0])
    if not named and len(specs) > 1:
        raise _invalid(
            "instances is a plain list, but expecting list of objects as multiple input "
            f"tensors required as per tensorinfo_map ({','.join(names)})"
        )
    if not named:
        return {names[0]: _to_array(instances, specs[names[0]], "'instances' list")}
    columns = {name: [] for name in names}
    for i, element in enumerate(instances):
        if not _is_named_object(element):
            raise _invalid(f"Expecting object but got list at item {i} of input list")
        for key in element:
            if key not in specs:
                raise _invalid(
                    f"Failed to process element: {i} key: {key} of 'instances' list. Error: "
                    f"INVALID_ARGUMENT: JSON object: does not have named input: {key}"
                )
        if len(element) != len(specs):
            raise _invalid(
                f"Failed to process element: {i} of 'instances' list. JSON object: "
                f"{_shown(element)} keys must be equal to: {','.join(names)}"
            )
        for name in names:
            columns[name].append(element[name])
    return {
        name: _to_array(column, specs[name], f"'instances' list, key: {name}")
        for name, column in columns.items()
    }


def _decode_inputs(inputs, specs):
    names = sorted(specs)
    if not _is_named_object(inputs):
        if len(specs) > 1:
            raise _invalid(
                "inputs is a plain value/list, but expecting an object as multiple input "
                f"tensors required as per tensorinfo_map ({','.join(names)})"
            )
        return {names[0]: _to_array(inputs, specs[names[0]], "'inputs'")}
    missing = [name for name in names if name not in inputs]
    extra = sorted(set(inputs) - set(specs))
    if extra:
        raise _invalid(
            f"input size does not match signature: {len(inputs)}!={len(specs)} "
            f"len({{{','.join(sorted(inputs))}}}) != len({{{','.join(names)}}}). "
            f"Sent extra: {{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}."
        )
    if missing:
        raise _invalid(f"Missing named input: {missing[0]} in 'inputs' object.")
    return {name: _to_array(inputs[name], specs[name], f"'inputs' key: {name}") for name in names}


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
        return _invalid(f"{where}: JSON value is not a dense tensor of {spec.type_string}")
    return _invalid(
        f"{where}: JSON Value: {_shown(bad)} Type: {_json_type(bad)} is not of expected "
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
        raise _invalid(
            f"{where}: JSON value is not a dense tensor (lists at the same depth must have "
            f"the same length): {str(err).splitlines()[0]}"
        ) from None


def _to_array(value, spec, where):
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
                raise _invalid(
                    f"{where}: Cannot convert JSON value: {int(np.abs(array).max())} to "
                    f"{spec.type_string} without loss of precision."
                )
        else:
            finite = array[np.isfinite(array)]
            if finite.size and np.abs(finite).max() > np.finfo(spec.dtype).max:
                raise _invalid(
                    f"{where}: Cannot convert JSON value: {float(np.abs(finite).max())} to "
                    f"{spec.type_string} without loss of precision."
                )
    elif kind in "iu":
        if got not in "iu":
            raise _type_error(value, spec, where, _is_int)
        info = np.iinfo(spec.dtype)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise _invalid(
                f"{where}: JSON value out of range for {spec.type_string} "
                f"[{info.min}, {info.max}]"
            )
    elif kind == "b":
        if got != "b":
            raise _type_error(value, spec, where, lambda v: isinstance(v, bool))
    else:
        raise _invalid(f"{where}: tensors of type {spec.type_string} cannot be sent as JSON")
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
                raise _invalid(f"{where}: JSON value is not a dense tensor (ragged nesting)")
            return
        if not isinstance(node, list) or len(node) != shape[depth]:
            raise _invalid(f"{where}: JSON value is not a dense tensor (ragged nesting)")
        for child in node:
            check(child, depth + 1)

    check(value, 0)
    return shape


def _string_array(value, spec, where):
    shape = _nested_shape(value, where)

    def leaf(item):
        if isinstance(item, str):
            return item.encode("utf-8")
        if _is_b64(item):
            try:
                return base64.b64decode(item["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise _invalid(f"{where}: Unable to base64 decode") from None
        raise _invalid(
            f"{where}: JSON Value: {_shown(item)} Type: {_json_type(item)} is not of "
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


def check_inputs(arrays, specs, signature, max_batch):
    """Checks decoded inputs against the signature: names, ranks, known sizes, batch size.

    Shared by the REST and gRPC front ends (gRPC inputs arrive as typed tensors).

    Args:
        arrays: ``{input_key: np.ndarray}``.
        specs: ``{input_key: TensorSpecInfo}``.
        signature: the signature name, for messages.
        max_batch: the largest batch (first dimension) accepted.

    Raises:
        ServingStatusError: INVALID_ARGUMENT naming the offending input.
    """
    if set(arrays) != set(specs):
        sent, wanted = sorted(arrays), sorted(specs)
        raise _invalid(
            f"input size does not match signature: {len(sent)}!={len(wanted)} "
            f"len({{{','.join(sent)}}}) != len({{{','.join(wanted)}}}). Sent extra: "
            f"{{{','.join(sorted(set(sent) - set(wanted)))}}}. Missing but required: "
            f"{{{','.join(sorted(set(wanted) - set(sent)))}}}."
        )
    for key, array in sorted(arrays.items()):
        spec = specs[key]
        if array.dtype != spec.dtype and not (spec.dtype.kind == "O" and array.dtype.kind in "OS"):
            raise _invalid(
                f"signature {signature!r}: input {key!r} has dtype {array.dtype}, expected "
                f"{spec.type_string}"
            )
        if spec.shape is not None and (
            array.ndim != len(spec.shape)
            or any(d is not None and d != n for d, n in zip(spec.shape, array.shape))
        ):
            raise _invalid(
                f"signature {signature!r}: input {key!r} has shape "
                f"[{','.join(map(str, array.shape))}], expected {spec.shape_string()} "
                "(-1: any size)"
            )
        if array.ndim >= 1 and array.shape[0] > max_batch:
            raise _invalid(
                f"signature {signature!r}: input {key!r} has batch size {array.shape[0]}, "
                f"larger than the maximum batch size {max_batch} of this server"
            )


def _jsonable(name, array):
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
    raise _invalid(f"Failed to write JSON value for tensor type: {array.dtype}")


def encode_predict_response(outputs, fmt):
    """Builds the predict response object for `outputs` in the request's format.

    Args:
        outputs: ``{output_key: np.ndarray}``.
        fmt: `ROW` or `COLUMNAR`.

    Returns:
        ``{"predictions": ...}`` or ``{"outputs": ...}``.

    Raises:
        ServingStatusError: INVALID_ARGUMENT if row format meets outputs without a batch
            dimension or with different batch sizes (as TF Serving).
    """
    if not outputs:
        raise _invalid("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if fmt == COLUMNAR:
        values = {name: _jsonable(name, outputs[name]) for name in names}
        if len(names) == 1:
            return {"outputs": values[names[0]]}
        return {"outputs": values}
    batch = None
    for name in names:
        shape = np.shape(outputs[name])
        if not shape:
            raise _invalid(f"Tensor name: {name} has no shape information ")
        if batch is not None and shape[0] != batch:
            raise _invalid(
                f"Tensor name: {name} has inconsistent batch size: {shape[0]} expecting: {batch}"
            )
        batch = shape[0]
    if len(names) == 1:
        return {"predictions": _jsonable(names[0], outputs[names[0]])}
    return {"predictions": [{name: _jsonable(name, outputs[name][i]) for name in names} for i in range(batch)]}


def dumps(payload):
    """Serializes a response object (NaN/Infinity written as TF Serving writes them)."""
    return jsonio.dumps(payload)
