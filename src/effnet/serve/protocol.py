"""The Open Inference (KServe V2) protocol's inference request, in JSON and in its binary
tensor extension (what Triton's clients send by default); the response is
:mod:`~effnet.serve.postprocess`'s.

https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/ and
Triton's binary_tensor_data and classification extensions. Two inputs, one per request:
``input`` (FP32 ``[N, C, H, W]``, already preprocessed as the metadata says) or ``image``
(BYTES ``[N]``, encoded image files: base64 strings in JSON, raw bytes in binary). Two outputs:
``logits`` and ``probabilities`` (FP32 ``[N, classes]``); an output's ``classification: k``
parameter returns its top k as BYTES ``"value:index:label"`` instead, as Triton does.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import reprlib
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

OUTPUTS = ("logits", "probabilities")
INPUTS = ("input", "image")
_END = object()

# Values quoted in error messages are cut short: a body may hold megabytes, nested thousands deep.
_QUOTE = reprlib.Repr()
_QUOTE.maxlevel, _QUOTE.maxlist, _QUOTE.maxdict, _QUOTE.maxstring, _QUOTE.maxother, _QUOTE.maxlong = 3, 4, 4, 40, 40, 40


class ProtocolError(ValueError):
    """A request that does not follow the protocol; ``status`` is its HTTP code."""

    status = 400


class PayloadTooLarge(ProtocolError):
    status = 413


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    classification: int = 0
    binary: bool = False


@dataclass
class InferRequest:
    id: str | None
    input_name: str
    tensor: np.ndarray | None = None          # FP32 N x C x H x W
    images: list[bytes] = field(default_factory=list)
    outputs: list[RequestedOutput] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.images) if self.tensor is None else int(self.tensor.shape[0])


def parse_infer(body: bytes, header_length: str | None, *, max_images: int) -> InferRequest:
    """An inference request from its body (JSON, or JSON then binary tensors when the
    ``Inference-Header-Content-Length`` header is given). Every field read is type-checked:
    a wrong one is a :class:`ProtocolError` that names it."""
    head, binary = _split(body, header_length)
    try:
        return _parse(_load(head), binary, max_images)
    except RecursionError:   # a nesting json.loads accepted, deeper than a walk over it can go
        raise ProtocolError("the request is nested too deeply") from None


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        raise ProtocolError(f"Inference-Header-Content-Length must be a whole number, got {_short(header_length)}") from None
    if not 0 < length <= len(body):
        raise ProtocolError(f"Inference-Header-Content-Length {length} does not fit a body of {len(body)} bytes")
    return body[:length], body[length:]


def _load(head: bytes) -> Any:
    try:
        return json.loads(head)
    except RecursionError:
        raise ProtocolError("the request is nested too deeply to read") from None
    except ValueError as error:   # JSONDecodeError, UnicodeDecodeError, an integer of over 4,300 digits
        raise ProtocolError(f"the request is not JSON ({_short(str(error))}); see GET /v2/models/NAME for the "
                            "inputs") from None


def _parse(request: Any, binary: bytes, max_images: int) -> InferRequest:
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) or len(request["inputs"]) != 1:
        raise ProtocolError("the request needs \"inputs\": a list with one tensor, \"input\" (FP32 [N,C,H,W]) or "
                            "\"image\" (BYTES [N])")
    tensor = request["inputs"][0]
    if not isinstance(tensor, dict):
        raise ProtocolError("each input must be an object with name, shape, datatype and data")
    parameters = _object(request.get("parameters"), '"parameters"')
    binary_default = _flag(parameters.get("binary_data_output", False), "parameters.binary_data_output")
    outputs = _requested_outputs(request.get("outputs"), binary_default)
    parsed = InferRequest(id=_request_id(request.get("id")), input_name=_name(tensor.get("name")), outputs=outputs)
    shape = _shape(tensor.get("shape"))
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str):
        raise ProtocolError(f"inputs[0].datatype must be a string such as \"FP32\", got {_short(datatype)}")
    size = _object(tensor.get("parameters"), "inputs[0].parameters").get("binary_data_size")
    raw = None
    if size is not None:
        if not _whole(size) or size < 0 or size > len(binary):
            raise ProtocolError(f"inputs[0].parameters.binary_data_size {_short(size)} does not fit the "
                                f"{len(binary)} bytes after the JSON header")
        raw = binary[:size]
    elif "data" not in tensor:
        raise ProtocolError(f"input {parsed.input_name!r} has no \"data\" and no binary_data_size")
    if parsed.input_name == "input":
        _check_input(datatype, shape, max_images)
        parsed.tensor = _fp32(tensor.get("data"), raw, shape)
    elif parsed.input_name == "image":
        _check_image(datatype, shape, max_images)
        parsed.images = _bytes_elements(tensor.get("data"), raw)
        if len(parsed.images) != shape[0]:
            raise ProtocolError(f"input \"image\" has shape {shape} but {len(parsed.images)} elements")
    else:
        raise ProtocolError(f"unknown input {parsed.input_name!r}; this model takes {' or '.join(map(repr, INPUTS))}")
    if parsed.count == 0:
        raise ProtocolError("the request holds no images (N = 0)")
    return parsed


def _check_input(datatype: str, shape: list[int], max_images: int) -> None:
    if datatype != "FP32":
        raise ProtocolError(f"input \"input\" must be FP32, got {_short(datatype)}; or send encoded images as "
                            "\"image\" (BYTES)")
    if len(shape) != 4:
        raise ProtocolError(f"input \"input\" must have shape [N, C, H, W], got {_short(shape)}")
    if shape[0] > max_images:
        raise PayloadTooLarge(f"{shape[0]} images in one request; at most {max_images} (--max-queue)")


def _check_image(datatype: str, shape: list[int], max_images: int) -> None:
    if datatype != "BYTES":
        raise ProtocolError(f"input \"image\" must be BYTES (encoded image files), got {_short(datatype)}")
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise ProtocolError(f"input \"image\" must have shape [N] or [N, 1], got {_short(shape)}")
    if shape[0] > max_images:
        raise PayloadTooLarge(f"{shape[0]} images in one request; at most {max_images} (--max-queue)")


def _short(value: Any) -> str:
    """A value quoted in an error message: its start, whatever its size or depth."""
    return _QUOTE.repr(value)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _object(value: Any, field: str) -> dict[str, Any]:
    """An optional object field (absent or null: empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError(f"{field} must be an object, got {_short(value)}")
    return value


def _flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ProtocolError(f"{field} must be true or false, got {_short(value)}")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str):
        raise ProtocolError(f"inputs[0].name must be a string, {' or '.join(map(repr, INPUTS))}, got {_short(value)}")
    return value


def _request_id(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ProtocolError(f"\"id\" must be a string, got {_short(value)}")
    return value


def _shape(value: Any) -> list[int]:
    if not isinstance(value, list) or not all(_whole(d) and d >= 0 for d in value):
        raise ProtocolError(f"inputs[0].shape must be a list of non-negative whole numbers, got {_short(value)}")
    return value


def _requested_outputs(value: Any, binary_default: bool) -> list[RequestedOutput]:
    if value is None:
        return [RequestedOutput("logits", binary=binary_default)]
    if not isinstance(value, list) or not value:
        raise ProtocolError("\"outputs\" must be a non-empty list of {\"name\": ...} objects")
    found = []
    for i, output in enumerate(value):
        name = output.get("name") if isinstance(output, dict) else None
        if not isinstance(name, str) or name not in OUTPUTS:
            raise ProtocolError(f"unknown output {_short(name)} (outputs[{i}].name); this model gives "
                                f"{' and '.join(map(repr, OUTPUTS))}")
        parameters = _object(output.get("parameters"), f"outputs[{i}].parameters")
        k = parameters.get("classification", 0)
        if not _whole(k) or k < 0:
            raise ProtocolError(f"outputs[{i}].parameters.classification must be a whole number of classes, "
                                f"got {_short(k)}")
        binary = _flag(parameters.get("binary_data", binary_default), f"outputs[{i}].parameters.binary_data")
        found.append(RequestedOutput(name, k, binary))
    return found


def _fp32(data: Any, raw: bytes | None, shape: list[int]) -> np.ndarray:
    expected = math.prod(shape)
    if raw is not None:
        if len(raw) != expected * 4:
            raise ProtocolError(f"FP32 {shape} needs {expected * 4} bytes, got {len(raw)}")
        array = np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
    else:
        array = _numbers(data).reshape(-1)
        if array.size != expected:
            raise ProtocolError(f"shape {shape} needs {expected} values, got {array.size}")
        array = array.reshape(shape)
    if not np.isfinite(array).all():   # one check for JSON and binary tensors alike
        raise ProtocolError("input data holds NaN or infinity")
    return array


def _numbers(data: Any) -> np.ndarray:
    if not isinstance(data, list):
        raise ProtocolError(f"inputs[0].data must be a list of numbers (flat or nested), got {_short(data)}")
    try:
        return np.asarray(data, dtype=np.float32)
    except (TypeError, ValueError, OverflowError):
        raise ProtocolError("inputs[0].data must be numbers (a flat list, or nested lists of equal lengths) "
                            "within FP32's range") from None


def _bytes_elements(data: Any, raw: bytes | None) -> list[bytes]:
    if raw is not None:
        # Triton's binary BYTES: each element is a 4-byte little-endian length, then the bytes.
        elements, offset = [], 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise ProtocolError("binary BYTES data ends inside an element's length")
            (length,) = struct.unpack_from("<I", raw, offset)
            offset += 4
            if offset + length > len(raw):
                raise ProtocolError("binary BYTES data ends inside an element")
            elements.append(raw[offset:offset + length])
            offset += length
        return elements
    if not isinstance(data, list):
        raise ProtocolError(f"inputs[0].data must be a list of base64 strings (one encoded image each), "
                            f"got {_short(data)}")
    elements = []
    for i, value in enumerate(_flatten(data)):
        text = value.get("b64") if isinstance(value, dict) else value
        if not isinstance(text, str):
            raise ProtocolError(f"image {i}: BYTES data in JSON must be base64 strings (inputs[0].data)")
        try:
            elements.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise ProtocolError(f"image {i}: not valid base64") from None
    return elements


def _flatten(data: list[Any]) -> list[Any]:
    """The leaves of nested lists, in order (a loop, not recursion: JSON may nest deeper
    than the interpreter's stack)."""
    leaves, stack = [], [iter(data)]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list):
            stack.append(iter(item))
        else:
            leaves.append(item)
    return leaves
