import pytest

from effnet import get_spec
from effnet.spec import HeadSpec, NetworkSpec, SpecError, StageSpec, StemSpec
from effnet.zoo.efficientnet import efficientnet_b0_base


def test_b0_baseline_is_table_1():
    spec = efficientnet_b0_base()
    rows = [(s.expand_ratio, s.kernel, s.stride, s.out_channels, s.repeats, s.se_ratio) for s in spec.stages]
    assert rows == [
        (1, 3, 1, 16, 1, 0.25), (6, 3, 2, 24, 2, 0.25), (6, 5, 2, 40, 2, 0.25), (6, 3, 2, 80, 3, 0.25),
        (6, 5, 1, 112, 3, 0.25), (6, 5, 2, 192, 4, 0.25), (6, 3, 1, 320, 1, 0.25),
    ]
    assert (spec.stem.channels, spec.stem.stride, spec.head.channels) == (32, 2, 1280)
    assert (spec.activation, spec.bn_eps, spec.bn_momentum, spec.padding) == ("silu", 1e-3, 0.01, "same")
    assert (spec.resolution, spec.dropout, spec.drop_path_rate) == (224, 0.2, 0.2)


def test_specs_are_frozen_values():
    a, b = get_spec("efficientnet_b3"), get_spec("efficientnet_b3")
    assert a == b and hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.resolution = 10  # type: ignore[misc]


def test_channel_mismatch_between_stages_is_refused():
    with pytest.raises(SpecError, match="stage 1 takes 20 channels but the layer before it gives 16"):
        NetworkSpec("bad", StemSpec(32), (StageSpec(in_channels=32, out_channels=16),
                                          StageSpec(in_channels=20, out_channels=24)))


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"activation": "gelu"}, "activation 'gelu' is unknown"),
        ({"padding": "valid"}, "padding 'valid' is unknown"),
        ({"dropout": 1.0}, "dropout must be in [0, 1)"),
        ({"resolution": 0}, "resolution must be >= 1"),
        ({"bn_eps": 0.0}, "bn_eps must be > 0"),
    ],
)
def test_bad_network_settings_are_explained(changes, words):
    with pytest.raises(SpecError) as error:
        get_spec("efficientnet_b0").replace(**changes)
    assert words in str(error.value)


def test_bad_stage_settings_are_explained():
    with pytest.raises(SpecError, match="stage kind 'xconv' is unknown"):
        StageSpec(kind="xconv")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="repeats must be an integer"):
        StageSpec(repeats=1.5)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="head.channels must be >= 0"):
        HeadSpec(channels=-1)
