"""Quantisation-aware training (QAT) with PyTorch 2 export quantisation (PT2E, torchao).

A trained float network is exported (``torch.export``), prepared with XNNPACK's quantiser
(int8 activations per tensor, int8 symmetric weights per output channel, the scheme the
XNNPACK backend of ExecuTorch runs) and fine-tuned with fake quantisation, so that the
weights learn to live on the int8 grid (Jacob et al. 2018, section 3). Batch norm keeps
updating its statistics for the first epochs and is then frozen: it normalises with, and
keeps, its running statistics, which is what the int8 model folds into each convolution
(Krishnamoorthi 2018, section 3.2); the quantisation ranges are frozen too for the last
epochs, as PyTorch's QAT tutorial does.

What a QAT run folder holds besides what every run holds::

    RUN/model.safetensors  the fine-tuned float weights under the network's own names, so every
                           reader of weights takes them; provenance["quantization"] says how
    RUN/qat.safetensors    the fake-quantisation state of every observer of the prepared graph:
                           learned ranges, scales, zero-points and flags

:func:`load_qat_graph` rebuilds the prepared graph of a run with that state, and
:func:`int8_model` converts it (``convert_pt2e``) to the int8 model.
"""

from __future__ import annotations

import copy
import os
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import pt2e
from ..factory import create_model
from ..weights import WeightsError, fetch_weights, read_weights, save_weights
from ..weights.metadata import WeightsMeta
from ..weights.run_folder import RunFolder
from .config_checks import ConfigError

QAT_STATE_FILE = "qat.safetensors"
OBSERVER_PREFIX = "activation_post_process_"  # what prepare_pt2e names each observer / fake-quantiser
BATCH_NORM_OPS = ("aten.batch_norm.default", "aten._native_batch_norm_legit.default", "aten.cudnn_batch_norm.default")
DROPOUT_OP = "aten.dropout.default"  # (input, p, train)
BN_TRAINING_ARG = 5  # (input, weight, bias, running_mean, running_var, training, momentum, eps, ...)
PT2E_BN_EPS = 1e-5  # the epsilon PT2E's batch-norm patterns are written with
CARRIED = ("spec", "num_classes", "class_names", "preprocessing")  # what readers of a model expect on it


def _pt2e() -> Any:
    """torchao's ``quantize_pt2e`` module, or a one-line error that says to install torchao."""
    try:
        from torchao.quantization.pt2e import quantize_pt2e
    except ModuleNotFoundError as error:
        if not (error.name or "").startswith("torchao"):
            raise
        raise ConfigError("quantisation-aware training needs torchao: pip install torchao") from None
    return quantize_pt2e


def xnnpack_quantizer(*, per_channel: bool = True, qat: bool = True) -> tuple[Any, str]:
    """XNNPACK's quantiser for fake-quantised training (see :mod:`effnet.pt2e`)."""
    _pt2e()  # a one-line ConfigError where torchao is missing
    return pt2e.xnnpack_quantizer(per_channel=per_channel, qat=qat)


def prepare_qat(model: nn.Module, image_size: int, *, per_channel: bool = True) -> torch.fx.GraphModule:
    """``model`` exported in training mode for any batch size at ``image_size`` px and prepared
    for QAT; it trains like a module (``train()``/``eval()`` swap batch norm and dropout, and
    evaluation never moves a quantisation range)."""
    quantize_pt2e = _pt2e()
    model.train()
    norm = next(m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    parameter = next(model.parameters())
    example = torch.zeros(2, model.spec.in_chans, image_size, image_size, device=parameter.device)
    batch = torch.export.Dim("batch")
    graph = torch.export.export(model, (example,), dynamic_shapes=({0: batch},)).module()
    quantizer, source = xnnpack_quantizer(per_channel=per_channel)
    prepared = quantize_pt2e.prepare_qat_pt2e(graph, quantizer)
    prepared.bn_literals = (norm.momentum, norm.eps)
    restore_bn_literals(prepared)
    _allow_train_eval(prepared)
    for name in CARRIED:
        setattr(prepared, name, getattr(model, name, None))
    prepared.quantizer_source = source
    return prepared


def _allow_train_eval(graph: torch.fx.GraphModule) -> None:
    """``train()``/``eval()`` on the graph: the ``training`` argument of its dropout and batch
    norms set in place (frozen batch norm stays in eval), and observers off while evaluating
    (validation images must not move the ranges), restored as they were when training resumes.
    PT2E's own ``move_exported_model_to_train/eval`` rewrite those ops from patterns written
    with PyTorch's defaults, which resets dropout's p to 0.5 and BN's epsilon to 1e-5."""
    def train(self: torch.fx.GraphModule, mode: bool = True) -> torch.fx.GraphModule:
        if mode:
            for name, flag in getattr(self, "_observing_before_eval", {}).items():
                self.get_submodule(name).observer_enabled.copy_(flag)
            self._observing_before_eval = {}
        elif not getattr(self, "_observing_before_eval", None):
            self._observing_before_eval = {name: m.observer_enabled.clone() for name, m in observers(self)}
            for _, m in observers(self):
                m.observer_enabled.fill_(0)
        _set_training_args(self, mode)
        return self

    graph.train = train.__get__(graph)  # type: ignore[method-assign]
    graph.eval = (lambda self: self.train(False)).__get__(graph)  # type: ignore[method-assign]


def _set_training_args(graph: torch.fx.GraphModule, mode: bool) -> None:
    for node in graph.graph.nodes:
        if node.op == "call_function" and str(node.target) == DROPOUT_OP:
            node.args = (node.args[0], node.args[1], mode)
        elif node.op == "call_function" and str(node.target) in BATCH_NORM_OPS:
            node.args = (*node.args[:BN_TRAINING_ARG], mode and not getattr(graph, "bn_frozen", False),
                         *node.args[BN_TRAINING_ARG + 1:])
    graph.recompile()


def restore_bn_literals(graph: torch.fx.GraphModule) -> None:
    """The network's own batch-norm momentum and epsilon back into the graph. PT2E's QAT conv-BN
    fusion writes PyTorch's defaults (0.1, 1e-5) into every batch norm and into the running std
    of the simulated folding; EfficientNet
    uses TF's (momentum 0.01 here, epsilon 1e-3), and the int8 model folds with the epsilon the
    graph holds."""
    momentum, eps = graph.bn_literals
    for node in graph.graph.nodes:
        if node.op != "call_function":
            continue
        if str(node.target) in BATCH_NORM_OPS:
            node.args = (*node.args[:6], momentum, eps, *node.args[8:])
        elif (str(node.target) == "aten.add.Tensor" and node.args[1] == PT2E_BN_EPS
              and any(str(user.target) == "aten.sqrt.default" for user in node.users)):
            node.args = (node.args[0], eps)  # the running std of the fused conv-BN pattern
    graph.recompile()


def observers(graph: nn.Module) -> list[tuple[str, nn.Module]]:
    """The fake-quantisers prepare_qat_pt2e put into the graph, by name."""
    return [(name, m) for name, m in graph.named_children() if name.startswith(OBSERVER_PREFIX)]


def first_frozen_epoch(setting: int | None, epochs: int) -> int | None:
    """The first epoch (from 1) a freeze applies to: ``None`` means the last epoch, 0 never."""
    if setting is None:
        return epochs
    return setting or None


def apply_freezes(graph: torch.fx.GraphModule, epoch: int, *, freeze_bn_epoch: int | None,
                  freeze_observer_epoch: int | None, epochs: int) -> list[str]:
    """Before training epoch ``epoch`` (from 0): freeze what the schedule says; what it froze.
    A pure function of the epoch, so a resumed run freezes exactly what the cut run did."""
    frozen = []
    bn = first_frozen_epoch(freeze_bn_epoch, epochs)
    if bn is not None and epoch + 1 >= bn:
        freeze_bn_statistics(graph)
        frozen.append("batch-norm statistics")
    # The ranges must observe for an epoch before they can be fixed.
    ranges = first_frozen_epoch(freeze_observer_epoch, epochs) if freeze_observer_epoch or epochs > 1 else None
    if ranges is not None and epoch + 1 >= ranges:
        for _, m in observers(graph):
            m.observer_enabled.fill_(0)
        frozen.append("quantisation ranges")
    return frozen


def freeze_bn_statistics(graph: torch.fx.GraphModule) -> None:
    """Every batch norm of the graph normalises with its running statistics and stops updating
    them, in training too (its ``training`` argument False from now on)."""
    graph.bn_frozen = True
    _set_training_args(graph, False)


def split_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(the network's own tensors, the observers' tensors) of a prepared graph's state dict."""
    own = {k: v for k, v in state.items() if not k.startswith(OBSERVER_PREFIX)}
    quant = {k: v for k, v in state.items() if k.startswith(OBSERVER_PREFIX)}
    return own, quant


def quantization_provenance(graph: torch.fx.GraphModule, *, image_size: int, per_channel: bool,
                            freeze_bn_epoch: int | None, freeze_observer_epoch: int | None) -> dict[str, Any]:
    """What a QAT model's metadata says about its quantisation, enough to rebuild the graph."""
    return {"method": "qat", "flow": "pt2e", "quantizer": "XNNPACKQuantizer", "quantizer_source": graph.quantizer_source,
            "activations": "int8 per tensor, affine", "weights": f"int8 symmetric per {'channel' if per_channel else 'tensor'}",
            "per_channel": per_channel, "image_size": image_size, "freeze_bn_epoch": freeze_bn_epoch,
            "freeze_observer_epoch": freeze_observer_epoch, "state_file": QAT_STATE_FILE,
            "versions": {"torch": torch.__version__, "torchao": version("torchao")}}


def save_qat_model(folder: RunFolder, graph: torch.fx.GraphModule, meta: WeightsMeta) -> None:
    """The graph's state into ``RUN/qat.safetensors`` and ``RUN/model.safetensors`` (the latter
    last, so a reader that finds the model finds its quantisation state too)."""
    own, quant = split_state(graph.state_dict())
    # One observer can sit under several names (inputs that share a range): a copy each.
    save_weights(folder.path / QAT_STATE_FILE, {name: tensor.detach().clone() for name, tensor in quant.items()})
    save_weights(folder.model, own, meta)


def is_qat_run(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` (a run folder or a file in one) is a quantisation-aware run."""
    return (RunFolder.of(path).path / QAT_STATE_FILE).is_file()


def load_qat_graph(run: str | os.PathLike[str]) -> torch.fx.GraphModule:
    """The prepared (fake-quantised) graph of a QAT run, with its learned state, in eval mode."""
    folder = RunFolder.of(run)
    loaded = fetch_weights(folder.path)
    quantization = ((loaded.meta.provenance if loaded.meta is not None else None) or {}).get("quantization")
    state_path = folder.path / QAT_STATE_FILE
    if quantization is None or not state_path.is_file():
        raise WeightsError(f"{folder.path} is not a quantisation-aware run (no {QAT_STATE_FILE} and quantization "
                           "provenance); train one with quant.qat=true")
    model = create_model(None, weights=loaded, drop_path_rate=0.0)
    graph = prepare_qat(model, quantization["image_size"], per_channel=quantization["per_channel"])
    quant, _ = read_weights(state_path)
    expected = {k for k in graph.state_dict() if k.startswith(OBSERVER_PREFIX)}
    if expected != set(quant):
        raise WeightsError(f"{state_path} does not fit the graph prepared here ({len(set(quant) - expected)} unknown, "
                           f"{len(expected - set(quant))} missing observer tensors); it was made with "
                           f"{quantization.get('versions')} and quantizer {quantization.get('quantizer_source')}")
    graph.load_state_dict(quant, strict=False)  # gives each per-channel range its shape
    state = graph.state_dict()
    for key, tensor in quant.items():  # and every tensor as saved (observers skip some buffers on load)
        state[key].copy_(tensor)
    return graph.eval()


def int8_model(graph_or_run: torch.fx.GraphModule | str | os.PathLike[str]) -> torch.fx.GraphModule:
    """The int8 model (``convert_pt2e``: quantised weights, quantise/dequantise around each
    int8 op) of a prepared graph or a QAT run; the graph itself is left as it was."""
    graph = graph_or_run if isinstance(graph_or_run, torch.fx.GraphModule) else load_qat_graph(Path(graph_or_run))
    prepared = copy.deepcopy(graph).eval()
    converted = _pt2e().convert_pt2e(prepared)
    for name in CARRIED:
        setattr(converted, name, getattr(graph, name, None))
    _allow_train_eval(converted)
    return converted


__all__ = ["QAT_STATE_FILE", "apply_freezes", "first_frozen_epoch", "freeze_bn_statistics", "int8_model", "is_qat_run",
           "load_qat_graph", "observers", "prepare_qat", "quantization_provenance", "save_qat_model", "split_state",
           "xnnpack_quantizer"]
