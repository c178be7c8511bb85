import pytest
from hypothesis import given
from hypothesis import strategies as st

from effnet.blockstring import BlockStringError, format_stage, parse_stage
from effnet.spec import BLOCK_KINDS, StageSpec
from effnet.zoo.efficientnet import B0_BLOCKS

stages = st.builds(
    StageSpec,
    kind=st.sampled_from(BLOCK_KINDS),
    repeats=st.integers(1, 64),
    kernel=st.sampled_from([1, 3, 5, 7, 9]),
    stride=st.integers(1, 9),
    expand_ratio=st.one_of(st.integers(1, 12).map(float),
                           st.floats(1e-3, 16, allow_nan=False, allow_infinity=False)),
    in_channels=st.integers(1, 4096),
    out_channels=st.integers(1, 4096),
    se_ratio=st.one_of(st.just(0.0), st.floats(0, 1, allow_nan=False)),
    skip=st.booleans(),
)


@given(stages)
def test_round_trip_every_stage(stage):
    assert parse_stage(format_stage(stage)) == stage


@pytest.mark.parametrize("text", B0_BLOCKS)
def test_official_b0_strings_round_trip_verbatim(text):
    assert format_stage(parse_stage(text)) == text


def test_b0_first_stage_fields():
    stage = parse_stage("r1_k3_s11_e1_i32_o16_se0.25")
    assert stage == StageSpec("mbconv", 1, 3, 1, 1.0, 32, 16, 0.25, True)
    assert not parse_stage("r1_k3_s11_e1_i32_o16_noskip").skip
    assert parse_stage("r2_k3_s2_e6_i16_o24").stride == 2


@pytest.mark.parametrize(
    "text, field, position",
    [
        ("r1_k3_s1x_e1_i32_o16", "s1x", 2),
        ("r1_k3_s12_e1_i32_o16", "s12", 2),
        ("r1_k3_s11_eX_i32_o16", "eX", 3),
        ("r1_k3_s11_e1_i32_o16_q7", "q7", 6),
        ("r1_k3_s11_e1_i32_o16_r2", "r2", 6),
        ("rr_k3_s11_e1_i32_o16", "rr", 0),
        ("r1_k3_s11_e1_i32_o16_sefoo", "sefoo", 6),
        ("mbconv_r1_k3_s11_e1_i-3_o16", "i-3", 5),
    ],
)
def test_malformed_strings_name_field_and_position(text, field, position):
    with pytest.raises(BlockStringError) as error:
        parse_stage(text)
    message = str(error.value)
    assert f"field {position} ({field!r})" in message
    assert text in message


@pytest.mark.parametrize(
    "text, words",
    [
        ("r1_k3_s11_e1_i32", "o (out_channels)"),
        ("k3_s11_e1_i32_o16", "r (repeats)"),
        ("r1_k4_s11_e1_i32_o16", "kernel must be odd"),
        ("r0_k3_s11_e1_i32_o16", "repeats must be >= 1"),
        ("r1_k3_s11_e1_i32_o16_se1.5", "se_ratio"),
        ("", "non-empty"),
    ],
)
def test_invalid_values_are_explained(text, words):
    with pytest.raises(BlockStringError) as error:
        parse_stage(text)
    assert words in str(error.value)
