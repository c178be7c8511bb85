"""Weights: foreign checkpoints converted to ours, safe files that carry their metadata,
registered pretrained weights, and the Hugging Face Hub.

``effnet.create_model(name, weights=...)`` is the usual way in; the pieces are public for
people who convert or publish weights.
"""

from .classes import imagenet_classes
from .convert import classifier_width, convert_state_dict, detect_layout, export_state_dict, key_map
from .errors import IncompatibleWeightsError, WeightsError
from .files import load_pickle, read_weights, save_weights
from .hub import HubFile
from .layouts import FOREIGN_LAYOUTS, LAYOUTS, Layout
from .load import LoadedWeights, create_with_weights, fetch_weights, load_weights, weights_spec
from .metadata import WeightsMeta
from .peer_checkpoint import convert_checkpoint
from .peer_names import PeerWeights, peer_weights
from .registry import REGISTRY, PackageFile, WeightsEntry, get_weights_entry, list_weights
from .run_folder import RunFolder
from ..spec_json import spec_from_dict, spec_to_dict

__all__ = [
    "FOREIGN_LAYOUTS", "HubFile", "IncompatibleWeightsError", "LAYOUTS", "Layout", "LoadedWeights", "PackageFile",
    "PeerWeights", "REGISTRY", "RunFolder", "WeightsEntry", "WeightsError", "WeightsMeta", "classifier_width",
    "convert_checkpoint", "convert_state_dict", "create_with_weights", "detect_layout", "export_state_dict",
    "fetch_weights", "get_weights_entry", "imagenet_classes", "key_map", "list_weights", "load_pickle", "load_weights",
    "peer_weights", "read_weights", "save_weights", "spec_from_dict", "spec_to_dict", "weights_spec",
]
