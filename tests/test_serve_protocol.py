"""The KServe V2 parser on malformed bodies: every field read from a request has its type
checked, and a wrong one is a 400 that names the field, never an AttributeError or a
RecursionError (a 500); the FP32 tensor is checked for NaN and infinity on both paths."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from effnet.serve.protocol import ProtocolError, parse_infer

TENSOR = {"name": "input", "shape": [1, 1, 1, 2], "datatype": "FP32", "data": [0.5, 1.5]}


def body(**fields: object) -> bytes:
    return json.dumps({"inputs": [TENSOR], **fields}).encode()


def tensor_body(**fields: object) -> bytes:
    return json.dumps({"inputs": [{**TENSOR, **fields}]}).encode()


def refused(data: bytes, header_length: str | None = None) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        parse_infer(data, header_length, max_images=4)
    assert caught.value.status == 400
    return caught.value


@pytest.mark.parametrize(("data", "field"), [
    (body(parameters=[1, 2]), '"parameters"'),
    (body(parameters="binary"), '"parameters"'),
    (body(parameters=7), '"parameters"'),
    (body(parameters={"binary_data_output": "yes"}), "binary_data_output"),
    (tensor_body(parameters=[1]), "inputs[0].parameters"),
    (tensor_body(parameters="x"), "inputs[0].parameters"),
    (tensor_body(parameters=3.5), "inputs[0].parameters"),
    (tensor_body(parameters={"binary_data_size": True}), "binary_data_size"),
    (tensor_body(name=["input"]), "inputs[0].name"),
    (tensor_body(name=None), "inputs[0].name"),
    (tensor_body(datatype=["FP32"]), "inputs[0].datatype"),
    (tensor_body(data="0.5 1.5"), "inputs[0].data"),
    (tensor_body(data=[[0.5, 1.5], [2.5]]), "inputs[0].data"),
    (tensor_body(data=[10 ** 400, 1]), "inputs[0].data"),
    (body(id=["a"]), '"id"'),
    (body(outputs=[{"name": "logits", "parameters": [1]}]), "outputs[0].parameters"),
    (body(outputs=[{"name": "logits", "parameters": "x"}]), "outputs[0].parameters"),
    (body(outputs=[{"name": "logits", "parameters": {"binary_data": 1}}]), "binary_data"),
    (body(outputs=[{"name": "logits", "parameters": {"classification": "3"}}]), "classification"),
    (body(outputs={"name": "logits"}), '"outputs"'),
])
def test_a_field_of_the_wrong_type_is_400_naming_it(data: bytes, field: str) -> None:
    assert field in str(refused(data))


@pytest.mark.parametrize("data", [
    b"[" * 5000 + b"]" * 5000,
    b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    b'{"inputs": [{"name": "input", "shape": [1, 1, 1, 1], "datatype": "FP32", "data": ' + b"[" * 900 + b"1"
    + b"]" * 900 + b"}]}",
    b'{"inputs": [{"name": "input", "shape": [1, 1, 1, 1], "datatype": "FP32", "data": [1]}], "id": '
    + b"[" * 900 + b"]" * 900 + b"}",
])
def test_json_nested_thousands_of_levels_deep_is_400(data: bytes) -> None:
    message = str(refused(data))
    assert len(message) < 500, message         # the message quotes a short excerpt, not the body


def test_base64_strings_nested_deeper_than_the_stack_still_parse() -> None:
    data = b'{"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ' + b"[" * 900 + b'"aa=="' \
        + b"]" * 900 + b"}]}"
    assert parse_infer(data, None, max_images=4).images == [b"i"]


def test_a_huge_number_is_400() -> None:
    assert "not JSON" in str(refused(b'{"inputs": [], "id": ' + b"7" * 5000 + b"}"))


def fp32_binary(values: list[float]) -> tuple[bytes, str]:
    raw = struct.pack(f"<{len(values)}f", *values)
    head = json.dumps({"inputs": [{"name": "input", "shape": [1, 1, 1, len(values)], "datatype": "FP32",
                                   "parameters": {"binary_data_size": len(raw)}}]}).encode()
    return head + raw, str(len(head))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_infinity_are_refused_in_json_and_in_binary_alike(bad: float) -> None:
    assert "NaN or infinity" in str(refused(*fp32_binary([0.5, bad])))
    json_body = json.dumps({"inputs": [{**TENSOR, "data": [0.5, bad]}]}).encode()   # NaN/Infinity literals
    assert "NaN or infinity" in str(refused(json_body))
    good = parse_infer(*fp32_binary([0.5, 1.5]), max_images=4)
    assert np.array_equal(good.tensor, np.array([0.5, 1.5], dtype=np.float32).reshape(1, 1, 1, 2))
