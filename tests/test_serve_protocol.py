"""The KServe V2 parser and encoder in JSON and binary; on malformed bodies every field read
from a request has its type checked, and a wrong one is a 400 that names the field, never
an AttributeError or a RecursionError (a 500); the FP32 tensor is checked for NaN and
infinity on both paths."""

from __future__ import annotations

import base64
import json
import struct

import numpy as np
import pytest
import torch

from effnet.serve.postprocess import encode_infer
from effnet.serve.protocol import PayloadTooLarge, ProtocolError, parse_infer


def test_json_fp32_and_bytes_inputs_parse() -> None:
    x = np.arange(2 * 1 * 2 * 2, dtype=np.float32).reshape(2, 1, 2, 2)
    body = json.dumps({"id": "a", "inputs": [{"name": "input", "shape": [2, 1, 2, 2], "datatype": "FP32",
                                              "data": x.tolist()}]}).encode()
    parsed = parse_infer(body, None, max_images=8)
    assert parsed.id == "a" and parsed.count == 2 and np.array_equal(parsed.tensor, x)
    assert parsed.outputs[0].name == "logits" and not parsed.outputs[0].binary
    images = [b"\x89PNG one", b"two"]
    body = json.dumps({"inputs": [{"name": "image", "shape": [2], "datatype": "BYTES",
                                   "data": [base64.b64encode(i).decode() for i in images]}],
                       "outputs": [{"name": "probabilities", "parameters": {"classification": 3}}]}).encode()
    parsed = parse_infer(body, None, max_images=8)
    assert parsed.images == images and parsed.outputs[0].classification == 3


def test_binary_extension_inputs_parse_as_triton_sends_them() -> None:
    x = np.random.default_rng(0).standard_normal((1, 3, 2, 2)).astype(np.float32)
    raw = x.tobytes()
    head = json.dumps({"inputs": [{"name": "input", "shape": [1, 3, 2, 2], "datatype": "FP32",
                                   "parameters": {"binary_data_size": len(raw)}}],
                       "parameters": {"binary_data_output": True}}).encode()
    parsed = parse_infer(head + raw, str(len(head)), max_images=4)
    assert np.array_equal(parsed.tensor, x) and parsed.outputs[0].binary
    blob = b"".join(struct.pack("<I", len(b)) + b for b in (b"abc", b"de"))
    head = json.dumps({"inputs": [{"name": "image", "shape": [2, 1], "datatype": "BYTES",
                                   "parameters": {"binary_data_size": len(blob)}}]}).encode()
    assert parse_infer(head + blob, str(len(head)), max_images=4).images == [b"abc", b"de"]


@pytest.mark.parametrize(("body", "message"), [
    (b"not json", "not JSON"),
    (b'{"inputs": []}', "one tensor"),
    (b'{"inputs": [{"name": "input", "shape": [1, 1, 2], "datatype": "FP32", "data": [1, 2]}]}', "N, C, H, W"),
    (b'{"inputs": [{"name": "input", "shape": [1, 1, 1, 2], "datatype": "FP32", "data": [1]}]}', "needs 2 values"),
    (b'{"inputs": [{"name": "input", "shape": [1, 1, 1, 1], "datatype": "INT8", "data": [1]}]}', "must be FP32"),
    (b'{"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["%%%"]}]}', "not valid base64"),
    (b'{"inputs": [{"name": "tensor", "shape": [1], "datatype": "BYTES", "data": ["aa=="]}]}', "unknown input"),
    (b'{"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["aa=="]}], '
     b'"outputs": [{"name": "features"}]}', "unknown output"),
    (b'{"inputs": [{"name": "input", "shape": [0, 1, 1, 1], "datatype": "FP32", "data": []}]}', "no images"),
])
def test_malformed_requests_say_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message) as caught:
        parse_infer(body, None, max_images=4)
    assert caught.value.status == 400


def test_too_many_images_is_413_and_a_bad_header_length_is_400() -> None:
    body = b'{"inputs": [{"name": "image", "shape": [9], "datatype": "BYTES", "data": []}]}'
    with pytest.raises(PayloadTooLarge):
        parse_infer(body, None, max_images=8)
    with pytest.raises(ProtocolError, match="does not fit"):
        parse_infer(b"{}", "99", max_images=8)


def test_outputs_encode_as_json_binary_and_classification() -> None:
    logits = np.array([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]], dtype=np.float32)
    request = parse_infer(json.dumps({"id": "r", "inputs": [{"name": "input", "shape": [2, 1, 1, 1], "datatype": "FP32",
                                                             "data": [0, 0]}],
                                      "outputs": [{"name": "logits", "parameters": {"classification": 2}},
                                                  {"name": "probabilities", "parameters": {"binary_data": True}}]}).encode(),
                          None, max_images=4)
    body, headers = encode_infer("m", request, logits, ["a", "b", "c"])
    length = int(headers["inference-header-content-length"])
    head = json.loads(body[:length])
    assert head["id"] == "r" and head["model_name"] == "m"
    assert head["outputs"][0]["data"] == ["2.000000:1:b", "1.000000:2:c", "3.000000:0:a", "0.000000:1:b"]
    probabilities = np.frombuffer(body[length:], dtype="<f4").reshape(2, 3)
    assert np.allclose(probabilities, torch.from_numpy(logits).softmax(1).numpy(), atol=1e-6)
    assert head["outputs"][1]["parameters"]["binary_data_size"] == 24


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
