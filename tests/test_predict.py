"""`predict` and `effnet predict`: batched top-k on files and folders, bad files never stop
the run, one line per failure, exit status 0/1/2, valid JSON; real photos with real weights."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import effnet
from effnet.cli import main
from effnet.predict import ClassScore, expand_inputs, iter_predictions, predict
from .optional import require
from .lite import lite0_pretrained, needs_lite0
from .test_images import build_corpus

MODEL = "efficientnet_lite0"  # the smallest model: no SE, fast on two CPU cores


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return effnet.create_model(MODEL).eval()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bool]]:
    folder = tmp_path_factory.mktemp("corpus")
    return folder, build_corpus(folder)


def _photos(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(1)
    paths = []
    for i in range(n):
        path = folder / f"photo_{i}.png"
        Image.fromarray(rng.integers(0, 256, (60 + 10 * i, 80, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_records_for_the_whole_corpus(model: torch.nn.Module, corpus: tuple[Path, dict[str, bool]]) -> None:
    folder, expected = corpus
    records = predict(folder, model, top_k=3, batch_size=4)
    assert [Path(r.path).name for r in records] == sorted(expected)  # folder order: sorted
    for record in records:
        name = Path(record.path).name
        assert record.ok == expected[name], (name, record.error)
        if record.ok:
            assert len(record.top_k) == 3
            probs = [s.probability for s in record.top_k]
            assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
            assert all(s.name == f"class {s.index}" for s in record.top_k)  # no class names: indices
        else:
            assert record.top_k == () and "\n" not in record.error and name in record.error


def test_batches_do_not_mix_up_images(model: torch.nn.Module, tmp_path: Path) -> None:
    paths = _photos(tmp_path, 5)
    one_by_one = predict(paths, model, top_k=1000, batch_size=1)
    batched = predict(paths, model, top_k=1000, batch_size=3)
    transform = effnet.transforms_for(model)
    with torch.no_grad():
        manual = model(torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])).softmax(1)
    for a, b, m in zip(one_by_one, batched, manual):
        assert [s.index for s in a.top_k[:5]] == [s.index for s in b.top_k[:5]]
        by_index = sorted(b.top_k, key=lambda s: s.index)
        assert np.allclose([s.probability for s in by_index], m.numpy(), atol=1e-5)


def test_predict_runs_in_eval_mode_and_restores_the_mode(tmp_path: Path) -> None:
    net = effnet.create_model(MODEL)
    assert net.training
    paths = _photos(tmp_path, 2)
    first, second = predict(paths, net, top_k=3), predict(paths, net, top_k=3)
    assert net.training  # the caller's mode is back
    assert first == second  # eval mode: BatchNorm running stats, no dropout, so deterministic


def test_pil_images_and_class_names(tmp_path: Path) -> None:
    net = effnet.create_model(MODEL, num_classes=3)
    net.class_names = ("ant", "bee", "cicada")
    records = predict([Image.new("RGBA", (50, 40), (9, 9, 9, 0)), Image.new("I;16", (30, 30))], net, top_k=5)
    assert [r.path for r in records] == ["<image 0>", "<image 1>"]
    assert all(len(r.top_k) == 3 for r in records)  # top_k is capped at the number of classes
    assert {s.name for s in records[0].top_k} == {"ant", "bee", "cicada"}
    assert isinstance(records[0].top_k[0], ClassScore)


def test_folders_expand_recursively_sorted_by_extension(tmp_path: Path) -> None:
    (tmp_path / "b" / "deeper").mkdir(parents=True)
    for name in ("b/deeper/z.PNG", "b/a.jpeg", "a.jpg", "notes.txt", "b/x.webp"):
        (tmp_path / name).write_bytes(b"x")
    labels = [Path(label).relative_to(tmp_path).as_posix() for label, _ in expand_inputs(tmp_path)]
    assert labels == ["a.jpg", "b/a.jpeg", "b/deeper/z.PNG", "b/x.webp"]


def test_missing_path_and_empty_folder_are_records(model: torch.nn.Module, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    records = predict([tmp_path / "nope.jpg", tmp_path / "empty"], model)
    assert [r.ok for r in records] == [False, False]
    assert "no such file" in records[0].error and "no image files" in records[1].error


def test_api_rejects_bad_arguments(model: torch.nn.Module, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="top_k"):
        predict(tmp_path, model, top_k=0)
    with pytest.raises(ValueError, match="batch_size"):
        iter_predictions(tmp_path, model, batch_size=0)  # checked at the call, before any next()
    with pytest.raises(ValueError, match="no classifier"):
        predict(tmp_path, effnet.create_model(MODEL, num_classes=0))


def _check_cli_json(out: str, err: str, expected: dict[str, bool]) -> None:
    records = json.loads(out)
    assert sorted(Path(r["path"]).name for r in records) == sorted(expected)
    for record in records:
        ok = expected[Path(record["path"]).name]
        assert (record["error"] is None) == ok, record
        assert (record["top_k"] is not None) == ok
    error_lines = [line for line in err.splitlines() if line.startswith("effnet predict: ")]
    failed = sum(not ok for ok in expected.values())
    assert len(error_lines) == failed + 1  # one line per bad file, then the summary
    assert f"{failed} of {len(expected)} files failed" in err
    assert "Traceback" not in err


def test_cli_corpus_json_and_exit_status(corpus: tuple[Path, dict[str, bool]],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    folder, expected = corpus
    assert main(["predict", str(folder), "--model", MODEL, "--json", "--batch-size", "4", "--top-k", "2"]) == 1
    out, err = capsys.readouterr()
    _check_cli_json(out, err, expected)


def test_cli_table_and_success(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = _photos(tmp_path, 2)
    assert main(["predict", *map(str, paths), "--model", MODEL, "--top-k", "2", "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    assert "photo_0.png" in out and "photo_1.png" in out and "probability" in out
    # Nothing on stderr but the one line that says which runtime auto measured fastest.
    assert [line for line in err.splitlines() if not line.startswith("effnet: runtime auto chose ")] == []


@pytest.mark.parametrize("argv", [
    ["--model", "efficientnet_b99"],  # unknown model
    ["--model", MODEL, "--top-k", "0"],
    ["--model", MODEL, "--batch-size", "-1"],
    [],  # --model is required
])
def test_cli_usage_errors_exit_2(tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        status = main(["predict", str(tmp_path), *argv])
    except SystemExit as exit_:  # argparse reports its own usage errors by exiting
        status = exit_.code
    assert status == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip()


def test_cli_unknown_model_suggests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(tmp_path), "--model", "efficientnet_b99"]) == 2
    assert "efficientnet" in capsys.readouterr().err


def test_subprocess_corpus(corpus: tuple[Path, dict[str, bool]]) -> None:
    folder, expected = corpus
    env = {**os.environ, "PYTHONPATH": str(Path(effnet.__file__).parents[1])}
    result = subprocess.run([sys.executable, "-m", "effnet", "predict", str(folder), "--model", MODEL, "--json",
                             "--batch-size", "8"], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 1, result.stderr
    _check_cli_json(result.stdout, result.stderr, expected)


requires_weights = needs_lite0


@pytest.fixture(scope="module")
def lite0() -> torch.nn.Module:
    return lite0_pretrained()


@requires_weights
@pytest.mark.parametrize(("photo", "classes"), [
    ("coffee", {"espresso"}),
    ("chelsea", {"tiger cat", "tabby", "tabby cat", "Egyptian cat"}),
])
def test_real_weights_on_real_photos(lite0: torch.nn.Module, photo: str, classes: set[str]) -> None:
    skimage_data = require("skimage.data")
    image = Image.fromarray(getattr(skimage_data, photo)())
    (record,) = predict(image, lite0, top_k=5)
    assert record.top_k[0].name in classes, record.top_k
    assert record.top_k[0].probability > 0.2


@requires_weights
def test_real_weights_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    skimage_data = require("skimage.data")
    Image.fromarray(skimage_data.coffee()).save(tmp_path / "coffee.jpg", quality=95)
    assert main(["predict", str(tmp_path / "coffee.jpg"), "--model", "efficientnet_lite0",
                 "--weights", "lite0.official", "--json", "--top-k", "1"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["top_k"][0]["name"] == "espresso"


def _run_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict]:
    status = main(argv)
    out, err = capsys.readouterr()
    assert status == 0, err
    return json.loads(out)


@requires_weights
def test_cli_onnx_runtime_agrees_with_torch_and_caches(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    require("onnxruntime")
    skimage_data = require("skimage.data")
    cache = tmp_path / "cache"
    monkeypatch.setenv("EFFNET_CACHE", str(cache))
    for name in ("coffee", "chelsea", "astronaut"):
        Image.fromarray(getattr(skimage_data, name)()).save(tmp_path / f"{name}.png")
    argv = ["predict", *(str(tmp_path / f"{n}.png") for n in ("coffee", "chelsea", "astronaut")),
            "--model", "efficientnet_lite0", "--weights", "lite0.official", "--json", "--top-k", "3"]
    by_torch = _run_json([*argv, "--runtime", "torch"], capsys)
    by_onnx = _run_json([*argv, "--runtime", "onnx"], capsys)
    (exported,) = (cache / "onnx").glob("*.onnx")
    inode = exported.stat().st_ino
    from effnet.deploy import onnx_cache

    def no_export(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the cached export should have been reused")

    monkeypatch.setattr(onnx_cache, "export_model", no_export)
    by_auto = _run_json(argv, capsys)  # auto measures onnxruntime and OpenVINO on the cached export: no new export
    assert [p.name for p in (cache / "onnx").iterdir()] == [exported.name]
    assert exported.stat().st_ino == inode  # the same file, not a rewritten one
    for a, b, c in zip(by_torch, by_onnx, by_auto):
        assert [s["index"] for s in a["top_k"]] == [s["index"] for s in b["top_k"]] == [s["index"] for s in c["top_k"]]
        for sa, sb in zip(a["top_k"], b["top_k"]):
            assert abs(sa["probability"] - sb["probability"]) < 1e-4
    assert by_onnx[0]["top_k"][0]["name"] == "espresso"


def test_runtime_choice() -> None:
    from effnet.deploy.runtime_choice import choose_runtime

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert choose_runtime("torch", cpu) == "torch"
    assert choose_runtime("auto", cuda) == "torch"
    with pytest.raises(ValueError, match="--device cpu"):
        choose_runtime("onnx", cuda)
    # auto measures (runtime_model) where a runtime beside PyTorch is installed.
    others = any(importlib.util.find_spec(p) is not None for p in ("onnxruntime", "openvino"))
    assert choose_runtime("auto", cpu) == ("auto" if others else "torch")
    with pytest.raises(ValueError, match="unknown runtime"):
        choose_runtime("tensorrt", cpu)


def test_interrupted_export_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require("onnxruntime")
    from effnet.deploy import onnx_cache
    from effnet.deploy.onnx_cache import onnx_model_for

    def broken(model, path, **kwargs):  # type: ignore[no-untyped-def]
        Path(path).write_bytes(b"half an ONNX file")
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_cache, "export_model", broken)
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        onnx_model_for(effnet.create_model("efficientnet_lite0", num_classes=3), resolution=64, folder=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_onnx_model_matches_eager_and_keeps_preprocessing(tmp_path: Path) -> None:
    require("onnxruntime")
    from effnet.deploy.onnx_cache import onnx_model_for

    torch.manual_seed(0)
    model = effnet.create_model("efficientnet_b0", num_classes=5).eval()
    onnx_model = onnx_model_for(model, resolution=64, folder=tmp_path)
    assert onnx_model.preprocessing == model.preprocessing and onnx_model.num_classes == 5
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert (onnx_model(x) - model(x)).abs().max().item() < 1e-4
    # Another model (other weights) gets its own file, not the cached one.
    torch.manual_seed(1)
    onnx_model_for(effnet.create_model("efficientnet_b0", num_classes=5), resolution=64, folder=tmp_path)
    assert len(list(tmp_path.glob("*.onnx"))) == 2


def test_onnx_cache_is_bounded_least_recently_used_first(tmp_path: Path) -> None:
    from effnet.deploy.onnx_cache import prune_cache

    for i, size in enumerate([10, 20, 30, 40]):
        path = tmp_path / f"m{i}.onnx"
        path.write_bytes(b"x" * size)
        os.utime(path, (1000 + i, 1000 + i))  # m3 the most recently used
    assert {p.name for p in prune_cache(tmp_path, max_files=2, max_bytes=10**6)} == {"m0.onnx", "m1.onnx"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m2.onnx", "m3.onnx"]
    # By size: 40 + 30 > 60, so only the newest stays; a file asked to be kept stays whatever its age.
    assert [p.name for p in prune_cache(tmp_path, max_files=9, max_bytes=60, keep=tmp_path / "m2.onnx")] == []
    assert [p.name for p in prune_cache(tmp_path, max_files=9, max_bytes=45)] == ["m2.onnx"]


def test_predict_with_random_weights_adds_nothing_to_the_onnx_cache(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    require("onnxruntime")
    monkeypatch.setenv("EFFNET_CACHE", str(tmp_path / "cache"))
    photo = _photos(tmp_path, 1)[0]
    for _ in range(2):
        assert main(["predict", str(photo), "--model", MODEL, "--runtime", "onnx", "--json"]) == 0
    cached = list((tmp_path / "cache").rglob("*.onnx"))
    assert cached == [], "random weights can never be reused; their exports must not pile up in the cache"
