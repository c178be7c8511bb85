import math

import pytest

from effnet import get_spec
from effnet.scaling import (
    ALPHA, BETA, GAMMA, Multipliers, check_constraint, compound_coefficients, compound_scale,
    round_filters, round_repeats, scale,
)
from effnet.spec import SpecError

from .golden import STAGES


def official_round_filters(filters, width, divisor=8):
    # tensorflow/tpu efficientnet_model.round_filters, written out independently.
    if not width:
        return filters
    filters *= width
    new_filters = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if new_filters < 0.9 * filters:
        new_filters += divisor
    return int(new_filters)


@pytest.mark.parametrize("width", [None, 0.25, 0.5, 0.75, 1.0, 1.1, 1.2, 1.4, 1.6, 1.8, 2.0, 2.2, 4.3])
def test_round_filters_matches_official(width):
    for filters in (1, 3, 8, 16, 24, 32, 40, 80, 112, 192, 320, 1280):
        assert round_filters(filters, width) == official_round_filters(filters, width)


def test_round_filters_known_values():
    assert round_filters(32, 1.1) == 32  # 35.2 -> 32 (>= 0.9 * 35.2)
    assert round_filters(40, 1.1) == 48  # 44 -> 48
    assert round_filters(1280, 4.3) == 5504
    assert round_filters(16, 0.25) == 8  # never below the divisor


def test_round_repeats_is_ceil():
    assert [round_repeats(r, 1.1) for r in (1, 2, 3, 4)] == [2, 3, 4, 5]
    assert round_repeats(3, None) == 3
    assert round_repeats(4, 3.1) == math.ceil(12.4)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_table_matches_reference(name):
    head, table = STAGES[name]
    spec = get_spec(name)
    assert spec.head.channels == head
    assert " ".join(f"{s.out_channels}x{s.repeats}" for s in spec.stages) == table


def test_lite_rules():
    lite4 = get_spec("efficientnet_lite4")
    assert lite4.stem.channels == 32 and lite4.head.channels == 1280  # fixed, not scaled
    assert lite4.stages[0].repeats == 1 and lite4.stages[-1].repeats == 1  # first/last fixed
    assert all(s.se_ratio == 0 for s in lite4.stages)
    assert lite4.activation == "relu6"
    b4 = get_spec("efficientnet_b4")
    assert b4.stem.channels == 48 and b4.stages[0].repeats == 2


def test_compound_formula_and_constraint():
    m = compound_coefficients(2)
    assert (m.depth, m.width, m.resolution) == pytest.approx((ALPHA**2, BETA**2, GAMMA**2))
    assert check_constraint(ALPHA, BETA, GAMMA) == pytest.approx(1.2 * 1.1**2 * 1.15**2)
    assert Multipliers(1.1, 1.2, 1.15).flops_ratio == pytest.approx(1.2 * 1.1**2 * 1.15**2)
    with pytest.raises(SpecError, match="within 0.1 of 2"):
        compound_coefficients(1, 1.5, 1.5, 1.5)
    with pytest.raises(SpecError, match="beta must be >= 1"):
        check_constraint(2.0, 0.9, 1.0)
    assert compound_coefficients(1, 1.5, 1.5, 1.5, tolerance=None).width == 1.5


def test_compound_scale_any_convnet():
    for base in ("efficientnet_b0", "mobilenet_v1", "mobilenet_v2", "resnet50"):
        spec = get_spec(base)
        scaled = compound_scale(spec, 1)
        assert scaled.resolution == round(spec.resolution * GAMMA)
        assert [s.repeats for s in scaled.stages] == [math.ceil(ALPHA * s.repeats) for s in spec.stages]
        assert [s.out_channels for s in scaled.stages] == [round_filters(s.out_channels, BETA) for s in spec.stages]
        for previous, stage in zip(scaled.stages, scaled.stages[1:]):
            assert stage.in_channels == previous.out_channels


def test_scale_identity_and_validation():
    b0 = get_spec("efficientnet_b0")
    assert scale(b0, 1.0, 1.0, name=b0.name) == b0
    with pytest.raises(SpecError):
        scale(b0, width=0.0)
