"""Postprocess: logits -> what a client reads. The top k classes with their labels and
softmax scores (``/classify``, as ``effnet predict`` reports them), or the Open Inference
(KServe V2) response, in JSON and in the binary tensor extension, with Triton's
classification extension (an output's top k as BYTES ``"value:index:label"``)."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import torch
from torch import nn

from ..predict import top_classes
from .protocol import InferRequest


class Postprocess:
    def __init__(self, model: nn.Module, name: str) -> None:
        self.name = name
        self.num_classes = int(getattr(model, "num_classes", 0))
        self.class_names = list(getattr(model, "class_names", None) or []) or None

    def top_k(self, logits: np.ndarray, k: int) -> list[dict[str, object]]:
        """The k best classes of one logits row: index, label and softmax score, as
        ``effnet predict`` reports them."""
        best = top_classes(torch.from_numpy(logits)[None], k, self.class_names)[0]
        return [{"index": s.index, "label": s.name, "score": s.probability} for s in best]

    def label(self, index: int) -> str:
        return self.class_names[index] if self.class_names else f"class {index}"

    def infer_response(self, request: InferRequest, logits: np.ndarray) -> tuple[bytes, dict[str, str]]:
        """The KServe V2 response body and headers for ``request``'s outputs."""
        return encode_infer(self.name, request, logits, self.class_names)


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
