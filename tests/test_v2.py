"""EfficientNetV2 as data: Fused-MBConv, the official block strings (automl dialect), V2's
rounding, the eight variants to the parameter, and their multiply-adds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from effnet import count, create_model, get_spec, list_models
from effnet.blockstring import BlockStringError, format_stage, parse_stage
from effnet.nn import ConvBnAct, FusedMBConv, MBConv
from effnet.scaling import round_filters
from effnet.zoo import paper_entry

from .optional import require
from .golden import V2_MADDS_B, V2_PARAMS


def test_all_eight_variants_are_registered() -> None:
    assert list_models("efficientnetv2_*") == list(V2_PARAMS)


@pytest.mark.parametrize("name", list(V2_PARAMS))
def test_trainable_parameters_equal_the_golden_counts(name: str) -> None:
    assert count(get_spec(name)).params == V2_PARAMS[name]


@pytest.mark.parametrize("name", list(V2_PARAMS))
def test_multiply_adds_agree_with_the_reference_table(name: str) -> None:
    assert count(get_spec(name)).madds / 1e9 == pytest.approx(V2_MADDS_B[name], rel=0.01)


@pytest.mark.parametrize("name", ["efficientnetv2_b0", "efficientnetv2_b3", "efficientnetv2_s"])
def test_built_module_has_the_counted_parameters(name: str) -> None:
    assert sum(p.numel() for p in create_model(name).parameters()) == V2_PARAMS[name]


def test_v2_rounding_has_no_point_nine_step() -> None:
    # V2-B3 stage 1: 16 * 1.2 = 19.2 -> 16 with V2's rule; V1's 0.9 step would make it 24.
    assert round_filters(16, 1.2, round_limit=0.0) == 16 and round_filters(16, 1.2) == 24
    b3 = get_spec("efficientnetv2_b3")
    assert b3.stages[0].out_channels == 16 and b3.stem.channels == 40 and b3.head.channels == 1536
    assert [s.repeats for s in b3.stages] == [2, 3, 3, 5, 7, 12]  # ceil depth scaling
    assert get_spec("efficientnetv2_b2").head.channels == 1408


def test_variant_settings_are_the_official_ones() -> None:
    for name, dropout, size in [("efficientnetv2_b0", 0.2, 224), ("efficientnetv2_s", 0.2, 384),
                                ("efficientnetv2_m", 0.3, 480), ("efficientnetv2_xl", 0.4, 512)]:
        spec = get_spec(name)
        assert (spec.dropout, spec.resolution, spec.drop_path_rate) == (dropout, size, 0.2)
        assert spec.padding == "same" and spec.bn_eps == 1e-3 and spec.bn_momentum == 0.1
    s = get_spec("efficientnetv2_s")
    assert [st.kind for st in s.stages] == ["fused"] * 3 + ["mbconv"] * 3
    assert all(st.se_ratio == 0 for st in s.stages[:3]) and all(st.se_ratio == 0.25 for st in s.stages[3:])
    assert paper_entry("efficientnetv2_s").top1 == 83.9


def test_fused_mbconv_with_and_without_expansion() -> None:
    model = create_model("efficientnetv2_s")
    first, fused, mbconv = model.stages[0][1], model.stages[1][0], model.stages[3][0]
    assert isinstance(first, FusedMBConv) and not first.expands and first.has_skip
    assert first.conv.conv.kernel_size == (3, 3) and isinstance(first.conv.act, nn.SiLU)  # act after its BN
    assert isinstance(fused, FusedMBConv) and fused.expands and not fused.has_skip
    assert fused.expand.conv.kernel_size == (3, 3) and fused.expand.conv.stride == (2, 2)
    assert fused.expand.conv.out_channels == 96 and fused.project.conv.kernel_size == (1, 1)
    assert isinstance(fused.project.act, nn.Identity) and isinstance(fused.se, nn.Identity)
    assert isinstance(mbconv, MBConv) and mbconv.se.reduce.out_channels == 16  # SE width from the block input
    assert sum(isinstance(m, ConvBnAct) for m in first.modules()) == 1


def test_automl_block_strings_parse_and_errors_still_name_the_field() -> None:
    stage = parse_stage("r4_k3_s2_e4_i24_o48_c1")
    assert (stage.kind, stage.stride, stage.expand_ratio, stage.repeats) == ("fused", 2, 4.0, 4)
    assert format_stage(stage) == "fused_r4_k3_s22_e4_i24_o48"
    assert parse_stage(format_stage(stage)) == stage
    assert parse_stage("r3_k3_s2_e4_i48_o96_se0.25_c0").kind == "mbconv"
    with pytest.raises(BlockStringError, match=r"field 5 \('c2'\)"):
        parse_stage("r1_k3_s1_e1_i32_c2_o16")
    with pytest.raises(BlockStringError, match="a ds block cannot have the automl conv type c1"):
        parse_stage("ds_r1_k3_s11_e1_i8_o8_c1")


@pytest.mark.parametrize("size", [(64, 64), (65, 97)])
def test_forward_backward_at_even_and_odd_sizes(size: tuple[int, int]) -> None:
    model = create_model("efficientnetv2_b0", num_classes=7).train()
    out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_convert_cli_carries_padding_eps_and_preprocessing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    timm = require("timm")
    from effnet.cli import main

    from effnet.bench.parity import randomise

    peer = randomise(timm.create_model("efficientnetv2_s", pretrained=False)).eval()  # native: symmetric, eps 1e-5
    torch.save(peer.state_dict(), tmp_path / "peer.pth")
    assert main(["convert", str(tmp_path / "peer.pth"), str(tmp_path / "s.safetensors"), "--from", "timm",
                 "--model", "efficientnetv2_s"]) == 0
    ours = create_model(None, weights=str(tmp_path / "s.safetensors")).eval()
    assert ours.spec.name == "efficientnetv2_s" and ours.spec.padding == "symmetric" and ours.spec.bn_eps == 1e-5
    assert ours.preprocessing.input_size == 384 and ours.preprocessing.mean == (0.5, 0.5, 0.5)
    x = torch.randn(1, 3, 64, 66)
    with torch.no_grad():
        assert (ours(x) - peer(x)).abs().max() <= 1e-4


def test_bench_runs_for_v2(tmp_path) -> None:  # type: ignore[no-untyped-def]
    require("timm")
    import json

    from effnet.cli import main

    out = tmp_path / "bench.json"
    assert main(["bench", "efficientnetv2_b0", "--resolution", "64", "--latency-batch", "0", "--throughput-batch", "1",
                 "--train-batch", "0", "--inference", "eager", "--training", "", "--rounds", "1", "--min-time", "0",
                 "--no-memory", "--peers", "timm:tf_efficientnetv2_b0", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert {r["contestant"] for r in rows} == {"ours:eager", "timm:tf_efficientnetv2_b0",
                                              "timm:tf_efficientnetv2_b0:channels_last"}


def test_class_activation_map_of_v2() -> None:
    from PIL import Image

    from effnet.cam import class_activation_map

    torch.manual_seed(0)
    model = create_model("efficientnetv2_b0").eval()
    cam = class_activation_map(Image.new("RGB", (80, 64), (120, 30, 200)), model)
    assert cam.heatmap.shape == (224, 224) and cam.raw.shape == (7, 7) and 0 <= cam.class_index < 1000
