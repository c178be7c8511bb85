"""effnet: EfficientNet (Tan & Le, ICML 2019) as data, with compound scaling of any ConvNet."""

from .blockstring import BlockStringError, format_stage, parse_stage
from .counting import count, count_madds, count_params
from .factory import create_model
from .model import ConvNet, FeatureNet, build_model
from .scaling import compound_coefficients, compound_scale, round_filters, round_repeats, scale
from .spec import HeadSpec, NetworkSpec, ScalingPolicy, SpecError, StageSpec, StemSpec
from .zoo import UnknownModelError, get_spec, list_models
from .data.transforms import transforms_for
from .weights import IncompatibleWeightsError, WeightsError, list_weights, load_weights

__version__ = "0.1.0"

__all__ = [
    "BlockStringError", "build_model", "compound_coefficients", "compound_scale", "ConvNet", "count",
    "count_madds", "count_params", "create_model", "FeatureNet", "format_stage", "get_spec", "HeadSpec",
    "IncompatibleWeightsError", "list_models", "list_weights", "load_weights", "NetworkSpec", "parse_stage",
    "round_filters", "round_repeats", "scale", "ScalingPolicy", "SpecError", "StageSpec", "StemSpec",
    "transforms_for", "UnknownModelError", "WeightsError",
]
