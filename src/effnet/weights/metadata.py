"""What travels with a set of weights: the network they belong to, the settings they were
trained with (padding, BN epsilon), how to prepare inputs, the classes, and provenance.

Inside a ``.safetensors`` file it is one JSON string under the metadata key ``effnet``
(safetensors metadata maps strings to strings).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from ..preprocessing import Preprocessing
from ..spec import NetworkSpec
from .errors import WeightsError
from ..spec_json import spec_from_dict, spec_to_dict

METADATA_KEY = "effnet"
FORMAT = "effnet.weights/1"


@dataclass(frozen=True)
class WeightsMeta:
    """Everything needed to use a state dict correctly, besides the tensors."""

    architecture: str                       # a registered model name, or the spec's name
    padding: str                            # "same" (TF-trained) or "symmetric"
    bn_eps: float
    preprocessing: Preprocessing
    num_classes: int
    class_names: tuple[str, ...] | None = None
    spec: NetworkSpec | None = None         # the full network; rebuilds it without the zoo
    source: str = ""
    licence: str = ""
    top1: float | None = None               # reported ImageNet top-1 (%)
    tag: str | None = None                  # the registry tag, if it came from there
    # How trained weights were made (effnet train): config, dataset, epochs, validation and
    # test top-1; plain JSON data.
    provenance: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise WeightsError(f"{len(self.class_names)} class names given for {self.num_classes} classes")

    def replace(self, **changes: Any) -> WeightsMeta:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "architecture": self.architecture, "padding": self.padding, "bn_eps": self.bn_eps,
            "preprocessing": self.preprocessing.to_dict(), "num_classes": self.num_classes,
            "class_names": list(self.class_names) if self.class_names is not None else None,
            "spec": spec_to_dict(self.spec) if self.spec is not None else None,
            "source": self.source, "licence": self.licence, "top1": self.top1, "tag": self.tag,
            "provenance": self.provenance,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WeightsMeta:
        if data.get("format") != FORMAT:
            raise WeightsError(f"weights metadata format {data.get('format')!r} is not {FORMAT!r}; "
                               "upgrade effnet, or re-create the file with `effnet convert`")
        try:
            return cls(
                architecture=str(data["architecture"]), padding=str(data["padding"]), bn_eps=float(data["bn_eps"]),
                preprocessing=Preprocessing.from_dict(data["preprocessing"]), num_classes=int(data["num_classes"]),
                class_names=tuple(data["class_names"]) if data.get("class_names") is not None else None,
                spec=spec_from_dict(data["spec"]) if data.get("spec") is not None else None,
                source=str(data.get("source", "")), licence=str(data.get("licence", "")),
                top1=data.get("top1"), tag=data.get("tag"), provenance=data.get("provenance"),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise WeightsError(f"the effnet metadata in this weights file is damaged ({error})") from None

    def to_safetensors(self) -> dict[str, str]:
        return {METADATA_KEY: json.dumps(self.to_json())}

    @classmethod
    def from_safetensors(cls, metadata: dict[str, str] | None) -> WeightsMeta | None:
        """The metadata of a safetensors file, or None for a file written by someone else."""
        if not metadata or METADATA_KEY not in metadata:
            return None
        try:
            data = json.loads(metadata[METADATA_KEY])
        except json.JSONDecodeError as error:
            raise WeightsError(f"the effnet metadata in this weights file is not JSON ({error})") from None
        return cls.from_json(data)
