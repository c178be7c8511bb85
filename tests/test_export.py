"""Export round trips: ONNX (onnxruntime), TorchScript and ExportedProgram against eager
PyTorch, at odd and even sizes, with TF SAME padding that must stay exact."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from .optional import require

import effnet
from effnet.cli import main
from effnet.deploy.export import export_model, max_abs_diff
from effnet.deploy.padding import FixedPadConv2d, TraceableSameConv2d, freeze_same_padding, traceable_same_padding
from effnet.nn.layers import Conv2dSame

require("onnxruntime")

TOL = 1e-4


def _model(name: str, num_classes: int = 10) -> nn.Module:
    """A small-headed model with non-trivial BN statistics, so that a wrong pad or a wrong
    BN fold changes the output well beyond the tolerance."""
    torch.manual_seed(0)
    model = effnet.create_model(name, num_classes=num_classes)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


class Features(nn.Module):
    """The unpooled map: a one-pixel shift from wrong padding cannot hide in the average pool."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


@pytest.mark.parametrize("name", ["efficientnet_b0", "efficientnet_lite0", "efficientnetv2_b0"])
def test_dynamic_onnx_matches_eager_at_odd_and_even_sizes(tmp_path, name):
    model = _model(name)
    result = export_model(model, tmp_path / "m.onnx", format="onnx", resolution=65, dynamic=True)
    # traced at 65x65; checked at other odd/even heights and widths and batch sizes
    assert max_abs_diff(model, result.path, "onnx", [64, (97, 96), (80, 71)]) <= TOL


def test_dynamic_onnx_features_keep_same_padding(tmp_path):
    model = _model("efficientnet_b0")
    path = tmp_path / "f.onnx"
    export_model(Features(model), path, resolution=65, dynamic=True)
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for h, w in [(64, 65), (97, 96), (96, 96)]:
        x = torch.randn(1, 3, h, w)
        out = session.run(None, {"input": x.numpy()})[0]
        ref = Features(model)(x).detach().numpy()
        assert out.shape == ref.shape  # ceil(size / 32), as TF SAME gives
        assert np.abs(out - ref).max() <= TOL


def test_static_onnx_puts_same_pads_into_the_convs(tmp_path):
    import onnx
    from onnx import helper

    model = _model("efficientnet_b0")
    path = tmp_path / "s.onnx"
    export_model(model, path, resolution=64)
    assert max_abs_diff(model, path, "onnx", [64]) <= TOL
    graph = onnx.load(str(path)).graph
    ops = {n.op_type for n in graph.node}
    # no shape arithmetic, no separate Pad, no BN: what int8 static quantisation wants
    assert not ops & {"Shape", "Pad", "BatchNormalization"}
    pads = [helper.get_attribute_value(a) for n in graph.node if n.op_type == "Conv" for a in n.attribute
            if a.name == "pads"]
    # TF SAME at an even size: stride-2 3x3 convs pad 0 before and 1 after (top, left, bottom, right)
    assert [0, 0, 1, 1] in pads and [1, 1, 2, 2] in pads


@pytest.mark.parametrize("fmt,suffix", [("torchscript", ".pt"), ("exported-program", ".pt2")])
def test_torch_formats_round_trip_dynamic(tmp_path, fmt, suffix):
    model = _model("efficientnet_b0")
    result = export_model(model, tmp_path / f"m{suffix}", format=fmt, resolution=65, dynamic=True)
    assert max_abs_diff(model, result.path, fmt, [64, (97, 96)]) <= TOL


def test_frozen_pads_equal_eager_at_their_size_only():
    model = _model("efficientnet_b0")
    frozen = freeze_same_padding(model, 65)
    assert not any(isinstance(m, Conv2dSame) for m in frozen.modules())
    assert any(isinstance(m, FixedPadConv2d) for m in frozen.modules())
    assert frozen.state_dict().keys() == model.state_dict().keys()
    x = torch.randn(2, 3, 65, 65)
    with torch.no_grad():
        assert torch.allclose(frozen(x), model(x), atol=1e-5)
        # at another parity the frozen pads are wrong (a one-pixel shift), and it shows
        y = torch.randn(1, 3, 64, 64)
        assert not torch.allclose(frozen.forward_features(y), model.forward_features(y), atol=1e-2)


def test_traceable_padding_equals_conv2d_same_everywhere():
    model = _model("efficientnet_b0")
    traceable = traceable_same_padding(model)
    assert any(isinstance(m, TraceableSameConv2d) for m in traceable.modules())
    with torch.no_grad():
        for size in range(33, 50):
            x = torch.randn(1, 3, size, size + 3)
            assert torch.equal(traceable.forward_features(x), model.forward_features(x))


def test_cli_export_onnx_checks_and_reports(tmp_path, capsys):
    out = tmp_path / "lite0.onnx"
    assert main(["export", "efficientnet_lite0", "--output", str(out), "--resolution", "64", "--dynamic", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert out.is_file() and record["dynamic"] is True
    assert record["max_abs_diff"] <= TOL and len(record["checked_sizes"]) == 3


def test_cli_export_speaks_to_the_user(tmp_path, capsys):
    assert main(["export", "efficientnet_b0", "--format", "exported-program", "--output", str(tmp_path / "x.pt")]) == 2
    assert ".pt2" in capsys.readouterr().err
    assert main(["export", "efficientnet_b0", "--output", str(tmp_path / "x.onnx"), "--dynamic",
                 "--int8", str(tmp_path / "q.onnx")]) == 2
    assert "--int8" in capsys.readouterr().err
    assert main(["export", "efficientnet_bb0", "--output", str(tmp_path / "x.onnx")]) == 2
    assert "efficientnet_b0" in capsys.readouterr().err  # suggests the close name
    assert main(["export", "efficientnet_b0", "--output", str(tmp_path / "no" / "x.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
