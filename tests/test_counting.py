import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from effnet import compound_scale, count, create_model, get_spec, list_models

from .golden import MADDS_B, PARAMS

SMALL = ("efficientnet_b0", "efficientnet_b3", "efficientnet_lite2", "mobilenet_v1", "mobilenet_v2", "resnet50",
         "efficientnetv2_b0", "efficientnetv2_b3", "efficientnetv2_s")


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_params_equal_golden_numbers_exactly(name):
    assert count(get_spec(name)).params == PARAMS[name]


@pytest.mark.parametrize("name", sorted(MADDS_B))
def test_madds_at_native_resolution_within_half_percent(name):
    madds = count(get_spec(name)).madds / 1e9
    assert madds == pytest.approx(MADDS_B[name], rel=0.005)


@pytest.mark.parametrize("name", [n for n in list_models() if n not in ("efficientnet_l2", "efficientnet_b8", "efficientnetv2_xl")])
def test_params_equal_built_module(name):
    model = create_model(name)
    assert count(get_spec(name)).params == sum(p.numel() for p in model.parameters())


def test_params_equal_built_module_for_scaled_and_custom_specs():
    for spec in (compound_scale(get_spec("resnet50"), 1.5), compound_scale(get_spec("mobilenet_v1"), 2),
                 get_spec("efficientnet_b0").replace(num_classes=7, in_chans=1)):
        assert count(spec).params == sum(p.numel() for p in create_model(spec).parameters())


@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("size", [(224, 224), (97, 130)])
def test_madds_agree_with_torch_flop_counter(name, size):
    model = create_model(name).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, *size))
    # flop_counter counts a multiply-add as 2 FLOPs.
    assert count(get_spec(name), size).madds == pytest.approx(counter.get_total_flops() / 2, rel=0.01)


def test_table_rows_add_up():
    counts = count(get_spec("efficientnet_b0"))
    assert sum(r.params for r in counts.rows) == counts.params
    assert sum(r.madds for r in counts.rows) == counts.madds
    assert [r.resolution[0] for r in counts.rows] == [224, 112, 112, 56, 28, 14, 14, 7, 7]
