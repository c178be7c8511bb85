"""ExecuTorch as an export format and a runtime: an XNNPACK .pte exact against eager at any
batch (larger batches than its plan run as several calls), PT2E int8 that still recognises the
photos, `effnet export --format executorch [--int8]`, `--runtime executorch` in predict and
serve, `auto` measuring it, clear errors for images it cannot take, and the benchmark's
ExecuTorch path for a peer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import effnet
from effnet.cli import main
from effnet.deploy.calibration import sample_photos
from effnet.deploy.export import export_model, max_abs_diff
from effnet.deploy.quantize import agreement

from .lite import lite0_pretrained
from .optional import require
from .serving import png_bytes, small_weights
from .test_export import TOL, _model

require("executorch")
require("torchao")
from effnet.deploy.executorch import ExecuTorchRunner  # noqa: E402
from effnet.deploy.runtime_choice import runtime_model  # noqa: E402

RESOLUTION = 16  # fmnist_lab's own size
# What the XNNPACK fp32 program meets against eager on the BN-perturbed lab net (measured ~1e-9
# on its small logits; TOL is what `effnet export` accepts).
EXACT = 1e-6


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    model = _model("fmnist_lab")
    path = tmp_path_factory.mktemp("executorch") / "lab.pte"
    export_model(model, path, format="executorch", resolution=RESOLUTION)
    return model, path


def test_fp32_program_matches_eager_at_every_batch(lab) -> None:
    model, path = lab
    runner = ExecuTorchRunner(path)
    assert runner.input_shape == (None, 1, RESOLUTION, RESOLUTION) and runner.num_classes == 10
    generator = torch.Generator().manual_seed(0)
    # One image, two, and more than the program's memory plan holds (run as several calls).
    for batch in (1, 2, runner.capacity + 3):
        x = torch.randn(batch, 1, RESOLUTION, RESOLUTION, generator=generator)
        with torch.no_grad():
            want = model(x).numpy()
        got = runner(x)
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= EXACT * max(1.0, float(np.abs(want).max()))
    assert max_abs_diff(model, path, "executorch", [RESOLUTION]) <= TOL


def test_images_it_cannot_take_are_clear_errors(lab, tmp_path: Path) -> None:
    _, path = lab
    runner = ExecuTorchRunner(path)
    with pytest.raises(ValueError, match=r"expects images of shape \(N, 1, 16, 16\).*--resolution 20"):
        runner(np.zeros((2, 1, 20, 20), np.float32))
    with pytest.raises(ValueError, match="expects images of shape"):
        runner(np.zeros((2, 3, 16, 16), np.float32))
    with pytest.raises(ValueError, match="empty batch"):
        runner(np.zeros((0, 1, 16, 16), np.float32))
    with pytest.raises(FileNotFoundError, match="--format executorch"):
        ExecuTorchRunner(tmp_path / "missing.pte")
    (tmp_path / "junk.pte").write_bytes(b"not a program")
    with pytest.raises(ValueError, match="not an ExecuTorch program"):
        ExecuTorchRunner(tmp_path / "junk.pte")
    base = ["export", "fmnist_lab", "--format", "executorch"]
    assert main([*base, "-o", str(tmp_path / "m.onnx")]) == 2  # a program ends in .pte
    assert main([*base, "-o", str(tmp_path / "m.pte"), "--dynamic"]) == 2  # one image size


@pytest.mark.slow
def test_export_cli_writes_fp32_and_int8_programs_checked_against_eager(tmp_path: Path, capsys) -> None:
    fp32, int8 = tmp_path / "lab.pte", tmp_path / "lab_int8.pte"
    assert main(["export", "fmnist_lab", "--format", "executorch", "-o", str(fp32), "--int8", str(int8), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["format"] == "executorch" and record["max_abs_diff"] <= TOL
    assert record["int8"]["calibration_images"] == 32 and record["int8"]["images_checked"] == 32
    assert 0.0 <= record["int8"]["top1_agreement_with_fp32"] <= 1.0
    # int8 weights: the program is well under the fp32 one.
    assert int8.stat().st_size < 0.7 * fp32.stat().st_size


@pytest.mark.slow
def test_int8_program_still_recognises_the_photos(tmp_path: Path) -> None:
    model = lite0_pretrained()
    # The calibration images of every int8 path (scikit-image's photos, then crops of them);
    # half calibrate, the other half are checked (at 128 px only 5 of 10 sure crops kept their class).
    images = sample_photos(model, 32)
    path = tmp_path / "lite0_int8.pte"
    export_model(model, path, format="executorch", resolution=224, calibration=images[:16])
    assert path.stat().st_size < 8e6  # int8 weights (fp32 Lite0 is ~18 MB)
    runner = ExecuTorchRunner(path)
    with torch.no_grad():
        eager = model(torch.from_numpy(images)).numpy()
    int8 = runner(images)
    held_out = agreement(eager[16:], int8[16:])
    assert held_out.confident_images >= 3 and held_out.top1_agreement_confident >= 0.75
    coffee = 2  # sample_photos shows each photo whole first: astronaut, chelsea, coffee, ...
    assert model.class_names[int(int8[coffee].argmax())] == "espresso"


@pytest.mark.slow
def test_predict_and_serve_with_runtime_executorch(tmp_path: Path, capsys) -> None:
    weights = small_weights(tmp_path / "fashion.safetensors")
    for i in range(3):
        (tmp_path / f"img{i}.png").write_bytes(png_bytes(seed=i))
    images = [str(tmp_path / f"img{i}.png") for i in range(3)]
    results = {}
    for runtime in ("torch", "executorch"):
        assert main(["predict", *images, "--weights", str(weights), "--runtime", runtime, "--json", "--top-k", "3"]) == 0
        results[runtime] = json.loads(capsys.readouterr().out)
    for a, b in zip(results["executorch"], results["torch"]):
        assert [s["index"] for s in a["top_k"]] == [s["index"] for s in b["top_k"]]
        assert np.allclose([s["probability"] for s in a["top_k"]], [s["probability"] for s in b["top_k"]], atol=1e-5)

    require("fastapi")
    from fastapi.testclient import TestClient

    from effnet.serve import ServeSettings, Service
    from effnet.serve.app import create_app
    model = effnet.create_model("fmnist_s0", weights=str(weights))
    service = Service(model, ServeSettings(runtime="executorch", max_batch=2), weights=str(weights))
    assert service.runtime == "executorch"
    with TestClient(create_app(service)) as client:
        answer = client.post("/v2/models/fmnist_s0/classify", content=Path(images[0]).read_bytes(),
                             headers={"content-type": "image/png"}).json()
    assert [p["index"] for p in answer["predictions"]][:3] == [s["index"] for s in results["torch"][0]["top_k"]]


@pytest.mark.slow
def test_auto_measures_executorch_when_its_program_can_be_kept(tmp_path: Path) -> None:
    weights = small_weights(tmp_path / "fashion.safetensors", seed=1)
    model = effnet.create_model("fmnist_s0", weights=str(weights))
    built = runtime_model(model, "auto", cache=True, batch=2)
    assert "executorch" in built.runtime_choice.seconds
    assert built.runtime_choice.runtime == min(built.runtime_choice.seconds, key=built.runtime_choice.seconds.get)
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(runtime_model(model, "executorch", cache=True)(x), model.eval()(x), atol=1e-5)
    # Random weights are never saved, so their program could not be kept: auto leaves it out.
    unsaved = runtime_model(effnet.create_model("fmnist_s0"), "auto", cache=False, batch=2)
    assert "executorch" not in unsaved.runtime_choice.seconds


@pytest.mark.slow
def test_bench_runs_a_peer_through_executorch_int8(tmp_path: Path) -> None:
    require("timm")
    from effnet.bench.contestants import Setting, inference_runner
    setting = Setting("efficientnet_b0", resolution=32, threads=1)
    run = inference_runner("timm:test_efficientnet:executorch-int8", setting, 3, tmp_path)
    assert run.precision == "int8"
    assert run().shape == (3, 1000)  # type: ignore[attr-defined]
    assert list(tmp_path.glob("*executorch-int8.pte"))

