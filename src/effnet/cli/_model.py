"""The arguments that name a model and its weights, shared by predict, cam, export and bench."""

from __future__ import annotations

import argparse

from torch import nn

from ..factory import create_model


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


WEIGHTS_HELP = ("a run folder of `effnet train`, a registered tag (e.g. lite0.official), a .safetensors/.pth "
                "file or hf-hub:ORG/REPO (default: random weights, useful for testing only)")


def add_model_arguments(p: argparse.ArgumentParser, *, device: bool = True) -> None:
    """--model and --weights (and --device): weights that carry their network need no --model."""
    p.add_argument("--model", metavar="NAME", default=None,
                   help="a model name from `effnet models` (optional when --weights names its network)")
    p.add_argument("--weights", metavar="W", default=None, help=WEIGHTS_HELP)
    if device:
        p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                       help="where to run (default: cuda when available, else cpu)")


def load_model(model: str | None, weights: str | None) -> nn.Module:
    """The model the arguments name; failures become a ValueError, which the CLI reports as
    one line with exit status 2."""
    if model is None and weights is None:
        raise ValueError("give --model NAME (see `effnet models`) or --weights W (a run folder or weights file "
                         "that carries its network)")
    try:
        return create_model(model, weights=weights)
    except (ImportError, OSError, RuntimeError) as error:
        # e.g. an optional weights package that is not installed, an unreadable file.
        message = " ".join(str(error).split())
        raise ValueError(f"cannot create {model or 'the model'} with weights {weights}: {message}") from None


def model_label(model: nn.Module, weights: str | None) -> str:
    """How a table title names the model: its network and where its weights came from."""
    spec = getattr(model, "spec", None)
    return f"{spec.name if spec is not None else type(model).__name__} ({weights or 'random weights'})"
