"""The Open Inference (KServe V2) protocol's inference request and response, in JSON and in
its binary tensor extension (what Triton's clients send by default).

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
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

OUTPUTS = ("logits", "probabilities")
INPUTS = ("input", "image")


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
    ``Inference-Header-Content-Length`` header is given)."""
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            raise ProtocolError(f"Inference-Header-Content-Length must be a whole number, got {header_length!r}") from None
        if not 0 < length <= len(body):
            raise ProtocolError(f"Inference-Header-Content-Length {length} does not fit a body of {len(body)} bytes")
        head, binary = body[:length], body[length:]
    else:
        head, binary = body, b""
    try:
        request = json.loads(head)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProtocolError(f"the request is not JSON ({error}); see GET /v2/models/NAME for the inputs") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) or len(request["inputs"]) != 1:
        raise ProtocolError("the request needs \"inputs\": a list with one tensor, \"input\" (FP32 [N,C,H,W]) or "
                            "\"image\" (BYTES [N])")
    tensor = request["inputs"][0]
    if not isinstance(tensor, dict):
        raise ProtocolError("each input must be an object with name, shape, datatype and data")
    parameters = request.get("parameters") or {}
    outputs = _requested_outputs(request.get("outputs"), bool(parameters.get("binary_data_output", False)))
    parsed = InferRequest(id=_request_id(request.get("id")), input_name=str(tensor.get("name")), outputs=outputs)
    shape = _shape(tensor.get("shape"))
    datatype = tensor.get("datatype")
    size = (tensor.get("parameters") or {}).get("binary_data_size")
    raw = None
    if size is not None:
        if not isinstance(size, int) or size < 0 or size > len(binary):
            raise ProtocolError(f"binary_data_size {size!r} does not fit the {len(binary)} bytes after the JSON header")
        raw = binary[:size]
    elif "data" not in tensor:
        raise ProtocolError(f"input {parsed.input_name!r} has no \"data\" and no binary_data_size")
    if parsed.input_name == "input":
        if datatype != "FP32":
            raise ProtocolError(f"input \"input\" must be FP32, got {datatype!r}; or send encoded images as \"image\" (BYTES)")
        if len(shape) != 4:
            raise ProtocolError(f"input \"input\" must have shape [N, C, H, W], got {shape}")
        if shape[0] > max_images:
            raise PayloadTooLarge(f"{shape[0]} images in one request; at most {max_images} (--max-queue)")
        parsed.tensor = _fp32(tensor.get("data"), raw, shape)
    elif parsed.input_name == "image":
        if datatype != "BYTES":
            raise ProtocolError(f"input \"image\" must be BYTES (encoded image files), got {datatype!r}")
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise ProtocolError(f"input \"image\" must have shape [N] or [N, 1], got {shape}")
        if shape[0] > max_images:
            raise PayloadTooLarge(f"{shape[0]} images in one request; at most {max_images} (--max-queue)")
        parsed.images = _bytes_elements(tensor.get("data"), raw)
        if len(parsed.images) != shape[0]:
            raise ProtocolError(f"input \"image\" has shape {shape} but {len(parsed.images)} elements")
    else:
        raise ProtocolError(f"unknown input {parsed.input_name!r}; this model takes {' or '.join(map(repr, INPUTS))}")
    if parsed.count == 0:
        raise ProtocolError("the request holds no images (N = 0)")
    return parsed


def _request_id(value: Any) -> str | None:
    return None if value is None else str(value)


def _shape(value: Any) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value):
        raise ProtocolError(f"shape must be a list of non-negative whole numbers, got {value!r}")
    return value


def _requested_outputs(value: Any, binary_default: bool) -> list[RequestedOutput]:
    if value is None:
        return [RequestedOutput("logits", binary=binary_default)]
    if not isinstance(value, list) or not value:
        raise ProtocolError("\"outputs\" must be a non-empty list of {\"name\": ...} objects")
    found = []
    for output in value:
        name = output.get("name") if isinstance(output, dict) else None
        if name not in OUTPUTS:
            raise ProtocolError(f"unknown output {name!r}; this model gives {' and '.join(map(repr, OUTPUTS))}")
        parameters = output.get("parameters") or {}
        k = parameters.get("classification", 0)
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise ProtocolError(f"classification must be a whole number of classes, got {k!r}")
        found.append(RequestedOutput(name, k, bool(parameters.get("binary_data", binary_default))))
    return found


def _fp32(data: Any, raw: bytes | None, shape: list[int]) -> np.ndarray:
    expected = math.prod(shape)
    if raw is not None:
        if len(raw) != expected * 4:
            raise ProtocolError(f"FP32 {shape} needs {expected * 4} bytes, got {len(raw)}")
        return np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
    try:
        array = np.asarray(data, dtype=np.float32)
    except (TypeError, ValueError):
        raise ProtocolError("input data must be numbers (a flat or nested list)") from None
    if array.size != expected:
        raise ProtocolError(f"shape {shape} needs {expected} values, got {array.size}")
    if not np.isfinite(array).all():
        raise ProtocolError("input data holds NaN or infinity")
    return array.reshape(shape)


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
        raise ProtocolError("BYTES data must be a list of base64 strings (one encoded image each)")
    elements = []
    for i, value in enumerate(_flatten(data)):
        text = value.get("b64") if isinstance(value, dict) else value
        if not isinstance(text, str):
            raise ProtocolError(f"image {i}: BYTES data in JSON must be base64 strings")
        try:
            elements.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise ProtocolError(f"image {i}: not valid base64") from None
    return elements


def _flatten(data: list[Any]) -> list[Any]:
    return [leaf for item in data for leaf in (_flatten(item) if isinstance(item, list) else [item])]


def encode_infer(model_name: str, request: InferRequest, logits: np.ndarray,
                 class_names: list[str] | None) -> tuple[bytes, dict[str, str]]:
    """The response body and headers (binary outputs after a JSON header, as requested)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    values = {"logits": logits.astype(np.float32), "probabilities": probabilities.astype(np.float32)}
    outputs, blobs = [], []
    for wanted in request.outputs:
        array = values[wanted.name]
        if wanted.classification:
            k = min(wanted.classification, array.shape[1])
            order = np.argsort(-array, axis=1, kind="stable")[:, :k]
            labels = [[_class_entry(array[n, i], int(i), class_names) for i in row] for n, row in enumerate(order)]
            output: dict[str, Any] = {"name": wanted.name, "datatype": "BYTES", "shape": [len(labels), k]}
            if wanted.binary:
                blob = b"".join(struct.pack("<I", len(s.encode())) + s.encode() for row in labels for s in row)
                output["parameters"] = {"binary_data_size": len(blob)}
                blobs.append(blob)
            else:
                output["data"] = [s for row in labels for s in row]
        else:
            output = {"name": wanted.name, "datatype": "FP32", "shape": list(array.shape)}
            if wanted.binary:
                blob = np.ascontiguousarray(array, dtype="<f4").tobytes()
                output["parameters"] = {"binary_data_size": len(blob)}
                blobs.append(blob)
            else:
                output["data"] = array.reshape(-1).tolist()
        outputs.append(output)
    response: dict[str, Any] = {"model_name": model_name, "model_version": "1", "outputs": outputs}
    if request.id is not None:
        response["id"] = request.id
    head = json.dumps(response).encode()
    if not blobs:
        return head, {"content-type": "application/json"}
    return head + b"".join(blobs), {"content-type": "application/octet-stream",
                                    "inference-header-content-length": str(len(head))}


def _class_entry(value: float, index: int, class_names: list[str] | None) -> str:
    label = f":{class_names[index]}" if class_names else ""
    return f"{value:.6f}:{index}{label}"
