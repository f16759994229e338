"""The REST JSON path (orjson) writes and reads exactly what the standard library did, NaN included."""
import json

import numpy as np
import pytest

from mibzoo.serving import jsonio, rest_json


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_floats_round_trip_with_their_own_shortest_text(dtype):
    values = np.random.default_rng(0).normal(size=(3, 4)).astype(dtype)
    text = jsonio.dumps({"outputs": jsonio.array_value(values)})
    # Each number is the shortest decimal that round-trips in the array's own precision ...
    expected = json.dumps({"outputs": values.astype(str).astype(np.float64).tolist()}, separators=(",", ":"))
    assert text.decode() == expected
    # ... and reads back to the same values.
    np.testing.assert_array_equal(np.array(jsonio.loads(text)["outputs"], dtype), values)


def test_non_finite_values_are_written_and_read_as_tf_serving_does():
    values = np.array([[np.nan, np.inf], [-np.inf, 0.5]], "float32")
    response = rest_json.dumps(rest_json.encode_predict_response({"y": values}, rest_json.COLUMNAR))
    assert response == b'{"outputs":[[NaN,Infinity],[-Infinity,0.5]]}'
    parsed = rest_json.parse_json_object(b'{"inputs": [NaN, Infinity, -Infinity, 1]}')
    assert np.isnan(parsed["inputs"][0]) and parsed["inputs"][1:] == [np.inf, -np.inf, 1]


def test_integers_booleans_rows_and_errors():
    outputs = {"ids": np.array([1, 2], "int32"), "ok": np.array([True, False]), "p": np.array([[0.25], [0.5]], "float32")}
    row = json.loads(rest_json.dumps(rest_json.encode_predict_response(outputs, rest_json.ROW)))
    assert row == {"predictions": [{"ids": 1, "ok": True, "p": [0.25]}, {"ids": 2, "ok": False, "p": [0.5]}]}
    with pytest.raises(Exception, match=r"JSON Parse error"):
        rest_json.parse_json_object(b'{"inputs": [1,')
    assert jsonio.dumps({"x": np.float32(0.1), "y": np.zeros((2, 3), "float32")[:, 1]}) == b'{"x":0.1,"y":[0.0,0.0]}'
