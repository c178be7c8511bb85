import io

import pytest
import torch
from torch import nn

from effnet import create_model, get_spec, list_models
from effnet.model import ConvNet, drop_path_rates
from effnet.nn import Conv2dSame, DropPath, same_padding
from effnet.spec import SpecError
from effnet.zoo import UnknownModelError

ALL = list_models()
# 32 px inputs for the largest V1 nets (time and memory). Not for V2-L/XL: with 1x1 final maps
# and a batch of 2, training-mode BN sees two values per channel and its backward amplifies
# the gradient through 79-100 blocks until it overflows (timm's V2-L does the same).
TINY_INPUT = {"efficientnet_l2", "efficientnet_b8", "efficientnet_b7"}
HUGE = TINY_INPUT | {"efficientnetv2_l", "efficientnetv2_xl"}


def small_size(name: str) -> int:
    return 32 if name in TINY_INPUT else 64


def channels(name: str) -> int:
    """Input channels: 3 for the ImageNet networks, 1 for the Fashion-MNIST ones."""
    return get_spec(name).in_chans


@pytest.fixture(scope="module", params=ALL)
def model_and_name(request):
    torch.manual_seed(0)
    return create_model(request.param, num_classes=10), request.param


def test_forward_backward_every_parameter_gets_a_gradient(model_and_name):
    model, name = model_and_name
    model.train()
    x = torch.randn(2, channels(name), small_size(name), small_size(name))
    out = model(x)
    assert out.shape == (2, 10)
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    model.zero_grad(set_to_none=True)
    assert not missing, f"no gradient for {missing[:5]}"


def test_export_round_trip(model_and_name, tmp_path):
    model, name = model_and_name
    model.eval()
    x = torch.randn(1, channels(name), 33, 47)
    with torch.no_grad():
        expected = model(x)
    program = torch.export.export(model, (x,))
    path = tmp_path / "model.pt2"
    torch.export.save(program, path)
    loaded = torch.export.load(path).module()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_features_only(name):
    features = create_model(name, features_only=True).train()
    size = small_size(name)
    maps = features(torch.randn(2, channels(name), size, size))
    assert [m.shape[1] for m in maps] == [i.num_chs for i in features.feature_info]
    # Every halving of the map is a level: B0's 2..32, the 28 px networks' 1, 2, 4.
    expected = [2, 4, 8, 16, 32] if get_spec(name).total_stride == 32 else [1, 2, 4]
    assert [size // m.shape[-1] for m in maps] == [i.reduction for i in features.feature_info] == expected
    sum(m.mean() for m in maps).backward()
    assert all(p.grad is not None for p in features.parameters())
    if name not in HUGE:  # building L2's trunk twice more adds a minute and nothing new
        picked = create_model(name, features_only=True, out_indices=(1, 2))
        assert [size // m.shape[-1] for m in picked(torch.randn(1, channels(name), size, size))] == expected[1:3]


def test_reset_classifier(model_and_name):
    model, name = model_and_name
    size = small_size(name)
    x = torch.randn(2, channels(name), size, size)
    model.eval()
    try:
        model.reset_classifier(5)
        assert model(x).shape == (2, 5) and model.spec.num_classes == 5
        model.reset_classifier(0)
        assert model(x).shape == (2, model.num_features)
    finally:
        model.reset_classifier(10)


def test_efficientnet_feature_channels_match_detection_backbones():
    info = create_model("efficientnet_b0", features_only=True).feature_info
    assert [(i.num_chs, i.reduction) for i in info] == [(16, 2), (24, 4), (40, 8), (112, 16), (320, 32)]
    info = create_model("resnet50", features_only=True).feature_info
    assert [i.num_chs for i in info] == [64, 256, 512, 1024, 2048]


def test_bad_out_indices_are_explained():
    with pytest.raises(SpecError, match="has 5 feature levels"):
        create_model("efficientnet_b0", features_only=True, out_indices=(7,))


@pytest.mark.parametrize("size", [32, 33, 57, 224, 255])
def test_any_input_size_and_batch(size):
    model = create_model("efficientnet_b0").eval()
    for batch in (1, 3):
        assert model(torch.randn(batch, 3, size, size + 3)).shape == (batch, 1000)


def test_forward_head_and_features():
    model = create_model("efficientnet_b0").eval()
    x = torch.randn(2, 3, 64, 64)
    features = model.forward_features(x)
    assert features.shape == (2, 1280, 2, 2)
    assert model.forward_head(features, pre_logits=True).shape == (2, 1280)
    torch.testing.assert_close(model.forward_head(features), model(x))


def test_unknown_name_suggests_close_ones():
    with pytest.raises(UnknownModelError, match="Did you mean efficientnet_b0"):
        create_model("efficientnet-b0")


def test_same_padding_rule_from_tf():
    # Stride 1, odd kernel: symmetric. Stride 2, even input: k//2 - 1 before, k//2 after.
    assert same_padding(112, 3, 1) == (1, 1)
    assert same_padding(112, 3, 2) == (0, 1)
    assert same_padding(112, 5, 2) == (1, 2)
    assert same_padding(113, 3, 2) == (1, 1)
    assert same_padding(113, 5, 2) == (2, 2)
    for size in range(1, 40):
        for k in (1, 3, 5, 7):
            for s in (1, 2, 3):
                before, after = same_padding(size, k, s)
                out = (size + before + after - k) // s + 1
                assert out == -(-size // s), (size, k, s)
                assert 0 <= after - before <= 1


def test_same_conv_matches_tf_output_size_and_values():
    torch.manual_seed(0)
    conv = Conv2dSame(2, 3, 3, 2, bias=False)
    x = torch.randn(1, 2, 8, 8)
    # TF SAME at stride 2 on an even input pads one pixel after, none before.
    expected = nn.functional.conv2d(nn.functional.pad(x, [0, 1, 0, 1]), conv.weight, stride=2)
    torch.testing.assert_close(conv(x), expected)


def test_padding_choice_is_an_argument():
    same = create_model("efficientnet_b0")
    symmetric = create_model("efficientnet_b0", padding="symmetric")
    assert any(isinstance(m, Conv2dSame) for m in same.modules())
    assert not any(isinstance(m, Conv2dSame) for m in symmetric.modules())
    assert same.state_dict().keys() == symmetric.state_dict().keys()


def test_drop_path_schedule_is_official():
    spec = get_spec("efficientnet_b0")
    rates = [r for stage in drop_path_rates(spec, 0.2) for r in stage]
    assert len(rates) == 16
    assert rates == pytest.approx([0.2 * i / 16 for i in range(16)])
    model = create_model("efficientnet_b0")
    built = [m.rate for m in model.modules() if isinstance(m, DropPath)]
    # Only residual blocks drop: 16 blocks minus the 7 stage-first blocks... except where in == out.
    residual = [b for s in model.stages for b in s if b.has_skip]
    assert len(built) == len(residual) == 9


def test_drop_path_is_per_sample_and_identity_at_eval():
    torch.manual_seed(0)
    layer = DropPath(0.5)
    x = torch.ones(4000, 1, 2, 2)
    y = layer.train()(x)
    kept = (y[:, 0, 0, 0] > 0).float()
    assert set(y.unique().tolist()) <= {0.0, 2.0}
    assert (y == y[:, :, :1, :1]).all()  # one draw per sample
    assert kept.mean().item() == pytest.approx(0.5, abs=0.03)
    assert torch.equal(layer.eval()(x), x)


def test_tf_init():
    torch.manual_seed(0)
    model = create_model("efficientnet_b0")
    conv = model.stages[5][0].expand.conv  # 1x1, 112 -> 672
    assert conv.weight.std().item() == pytest.approx((2 / 672) ** 0.5, rel=0.05)
    bound = 1 / 1000**0.5
    assert model.classifier.weight.abs().max().item() <= bound
    assert model.classifier.bias.abs().max().item() == 0


def test_model_built_twice_is_the_same_model():
    torch.manual_seed(0)
    a = create_model("efficientnet_b2")
    torch.manual_seed(0)
    b = create_model("efficientnet_b2")
    assert isinstance(a, ConvNet) and a.spec == b.spec
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)  # the same layers in the same order: no hidden state changed the build
    assert all(torch.equal(sa[key], sb[key]) for key in sa)  # and the same init from the same seed
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(a.eval()(x), b.eval()(x))


def test_grad_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    model = create_model("efficientnet_b0", drop_rate=0.0, drop_path_rate=0.0).train()
    x = torch.randn(2, 3, 64, 64)
    model(x).sum().backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(x).sum().backward()
    for a, b in zip(plain, (p.grad for p in model.parameters())):
        torch.testing.assert_close(a, b)


def test_state_dict_names_are_hierarchical():
    keys = create_model("efficientnet_b0").state_dict()
    assert "stages.1.0.expand.conv.weight" in keys and "stages.0.0.se.reduce.bias" in keys
    assert "head.conv.weight" in keys and "classifier.weight" in keys


def test_serialisable_with_torch_save(tmp_path):
    model = create_model("efficientnet_lite0")
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = create_model("efficientnet_lite0")
    result = fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert not result.missing_keys and not result.unexpected_keys
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))
