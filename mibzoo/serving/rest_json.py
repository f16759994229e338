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
import json

import numpy as np

from mibzoo.serving import jsonio
# One JSON value <-> one array lives in `json_tensors`; TensorSpecInfo is re-exported from here.
from mibzoo.serving.json_tensors import TensorSpecInfo, invalid, is_named_object, jsonable, shown, to_array

__all__ = ["COLUMNAR", "ROW", "TensorSpecInfo", "check_inputs", "decode_predict_request", "dumps",
           "encode_predict_response", "parse_json_object", "signature_name"]

ROW = "row"
COLUMNAR = "columnar"


def parse_json_object(body):
    """Parses a request body into a JSON object (a dict).

    Args:
        body: the raw request bytes.

    Raises:
        ServingStatusError: INVALID_ARGUMENT with TF Serving's "JSON Parse error" text.
    """
    if not body or not body.strip():
        raise invalid("JSON Parse error: The document is empty")
    try:
        # NaN/Infinity/-Infinity are accepted like TF Serving's parser does
        # (rapidjson with kParseNanAndInfFlag).
        doc = jsonio.loads(body)
    except UnicodeDecodeError as err:
        raise invalid(f"JSON Parse error: Invalid encoding in string ({err.reason})") from None
    except json.JSONDecodeError as err:
        raise invalid(f"JSON Parse error: {err.msg} at offset: {err.pos}") from None
    except RecursionError:
        raise invalid("JSON Parse error: document nested too deeply") from None
    if not isinstance(doc, dict):
        raise invalid(f"JSON Value: {shown(doc)} Is not object")
    return doc


def signature_name(doc):
    """The request's ``signature_name`` ('' when absent: the default signature)."""
    name = doc.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid(
            f"JSON Value: {shown(doc)} not formatted correctly. 'signature_name' key must be "
            "a string value."
        )
    return name


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
        raise invalid(
            f"JSON Value: {shown(doc)} Not formatted correctly expecting only one of "
            "'inputs' or 'instances' keys to exist "
        )
    if has_instances:
        return _decode_instances(doc["instances"], specs, doc), ROW
    if has_inputs:
        return _decode_inputs(doc["inputs"], specs), COLUMNAR
    raise invalid("Missing 'inputs' or 'instances' key")


def _decode_instances(instances, specs, doc):
    if not isinstance(instances, list):
        raise invalid(f"JSON Value: {shown(doc)} Excepting 'instances' to be an list/array")
    if not instances:
        raise invalid(f"JSON Value: {shown(doc)} No values in 'instances' array")
    names = sorted(specs)
    named = is_named_object(instances[0])
    if not named and len(specs) > 1:
        raise invalid(
            "instances is a plain list, but expecting list of objects as multiple input "
            f"tensors required as per tensorinfo_map ({','.join(names)})"
        )
    if not named:
        return {names[0]: to_array(instances, specs[names[0]], "'instances' list")}
    columns = {name: [] for name in names}
    for i, element in enumerate(instances):
        if not is_named_object(element):
            raise invalid(f"Expecting object but got list at item {i} of input list")
        for key in element:
            if key not in specs:
                raise invalid(
                    f"Failed to process element: {i} key: {key} of 'instances' list. Error: "
                    f"INVALID_ARGUMENT: JSON object: does not have named input: {key}"
                )
        if len(element) != len(specs):
            raise invalid(
                f"Failed to process element: {i} of 'instances' list. JSON object: "
                f"{shown(element)} keys must be equal to: {','.join(names)}"
            )
        for name in names:
            columns[name].append(element[name])
    return {
        name: to_array(column, specs[name], f"'instances' list, key: {name}")
        for name, column in columns.items()
    }


def _decode_inputs(inputs, specs):
    names = sorted(specs)
    if not is_named_object(inputs):
        if len(specs) > 1:
            raise invalid(
                "inputs is a plain value/list, but expecting an object as multiple input "
                f"tensors required as per tensorinfo_map ({','.join(names)})"
            )
        return {names[0]: to_array(inputs, specs[names[0]], "'inputs'")}
    missing = [name for name in names if name not in inputs]
    extra = sorted(set(inputs) - set(specs))
    if extra:
        raise invalid(
            f"input size does not match signature: {len(inputs)}!={len(specs)} "
            f"len({{{','.join(sorted(inputs))}}}) != len({{{','.join(names)}}}). "
            f"Sent extra: {{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}."
        )
    if missing:
        raise invalid(f"Missing named input: {missing[0]} in 'inputs' object.")
    return {name: to_array(inputs[name], specs[name], f"'inputs' key: {name}") for name in names}


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
        raise invalid(
            f"input size does not match signature: {len(sent)}!={len(wanted)} "
            f"len({{{','.join(sent)}}}) != len({{{','.join(wanted)}}}). Sent extra: "
            f"{{{','.join(sorted(set(sent) - set(wanted)))}}}. Missing but required: "
            f"{{{','.join(sorted(set(wanted) - set(sent)))}}}."
        )
    for key, array in sorted(arrays.items()):
        spec = specs[key]
        if array.dtype != spec.dtype and not (spec.dtype.kind == "O" and array.dtype.kind in "OS"):
            raise invalid(
                f"signature {signature!r}: input {key!r} has dtype {array.dtype}, expected "
                f"{spec.type_string}"
            )
        if spec.shape is not None and (
            array.ndim != len(spec.shape)
            or any(d is not None and d != n for d, n in zip(spec.shape, array.shape))
        ):
            raise invalid(
                f"signature {signature!r}: input {key!r} has shape "
                f"[{','.join(map(str, array.shape))}], expected {spec.shape_string()} "
                "(-1: any size)"
            )
        if array.ndim >= 1 and array.shape[0] > max_batch:
            raise invalid(
                f"signature {signature!r}: input {key!r} has batch size {array.shape[0]}, "
                f"larger than the maximum batch size {max_batch} of this server"
            )


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
        raise invalid("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if fmt == COLUMNAR:
        values = {name: jsonable(name, outputs[name]) for name in names}
        if len(names) == 1:
            return {"outputs": values[names[0]]}
        return {"outputs": values}
    batch = None
    for name in names:
        shape = np.shape(outputs[name])
        if not shape:
            raise invalid(f"Tensor name: {name} has no shape information ")
        if batch is not None and shape[0] != batch:
            raise invalid(
                f"Tensor name: {name} has inconsistent batch size: {shape[0]} expecting: {batch}"
            )
        batch = shape[0]
    if len(names) == 1:
        return {"predictions": jsonable(names[0], outputs[names[0]])}
    return {"predictions": [{name: jsonable(name, outputs[name][i]) for name in names} for i in range(batch)]}


def dumps(payload):
    """Serializes a response object (NaN/Infinity written as TF Serving writes them)."""
    return jsonio.dumps(payload)
