"""`effnet optimize`: every installed runtime x precision scored on the run's own minival split
(never its test set, never the images that calibrate) and timed here; the fastest within the
accuracy budget wins; without a budget only fp32 forms compete; the choice is cached."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from effnet.optimize.choose import REFERENCE, Row, pick

from .optional import require

ROOT = Path(__file__).resolve().parents[1]


def _row(name: str, score: float, speed: float) -> Row:
    runtime, precision = name.split()
    return Row(name, runtime, precision, score, speed, 1.0)


def test_the_fastest_form_within_the_budget_is_chosen_and_none_outside_it() -> None:
    rows = [_row(REFERENCE.name, 90.0, 100.0), _row("onnx fp32", 90.0, 150.0), _row("onnx int8", 89.8, 300.0),
            _row("openvino int8", 88.0, 500.0)]
    assert pick(rows, 0.3).name == "onnx int8"              # openvino int8 is faster but 2 points down
    assert [r.within_budget for r in rows] == [True, True, True, False]
    assert pick(rows, 2.0).name == "openvino int8"
    assert pick(rows, 0.0).name == "onnx fp32"              # 0.2 points down is outside a zero budget
    assert pick(rows, None).name == "openvino int8"          # no budget: choose() keeps only fp32 forms
    assert sum(r.chosen for r in rows) == 1


def _effnet(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "effnet", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from effnet.data.fashion_mnist import find_root

    try:
        find_root(None)
    except (FileNotFoundError, OSError) as error:
        pytest.skip(f"Fashion-MNIST is not installed: {error}")
    out = tmp_path_factory.mktemp("runs")
    done = _effnet("train", "--config", "configs/fashion_mnist_small.yaml", "model.name=fmnist_s0", "train.epochs=1",
                   "data.train_subset=1024", "data.minival=400", "train.ema_decay=0", "train.batch_size=128",
                   f"run.out_dir={out}", "run.name=tiny", "run.progress=false")
    assert done.returncode == 0, done.stderr[-2000:]
    return out / "tiny"


@pytest.mark.xdist_group("optimize")
def test_optimize_scores_forms_on_the_runs_minival_and_writes_the_chosen_file(tiny_run: Path, tmp_path: Path) -> None:
    require("onnxruntime")
    out = tmp_path / "chosen"
    done = _effnet("optimize", "--weights", str(tiny_run), "--accuracy-budget", "100", "--candidates", "onnx int8",
                   "--batch", "8", "--out", str(out), "--no-cache")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    rows = {r["name"]: r for r in report["rows"]}
    assert set(rows) == {"torch fp32", "onnx int8"}
    assert report["images_scored"] == 400 - 256 and "minival" in report["evaluation"]
    assert report["chosen"] == max(rows.values(), key=lambda r: r["images_per_s"])["name"]   # a budget of 100 takes all
    if report["chosen"] == "onnx int8":
        assert (out / "model.int8.onnx").is_file()
    # The scores are the run's minival top-1: eager fp32's must be what `effnet eval --split minival` says of the
    # same images; here, checked against the run's own labels through the int8 file it wrote.
    from effnet.optimize.evaluation import run_minival
    from effnet import create_model

    model = create_model(None, weights=str(tiny_run)).eval()
    evaluation = run_minival(tiny_run, model)
    import torch

    with torch.no_grad():
        eager = model(torch.from_numpy(evaluation.images)).argmax(1).numpy()
    assert rows["torch fp32"]["score"] == pytest.approx(100 * float((eager == evaluation.labels).mean()), abs=1e-6)
    assert (out / "report.md").read_text().count("|") > 20


@pytest.mark.xdist_group("optimize")
def test_without_a_budget_only_fp32_competes_and_a_second_call_uses_the_cached_choice(tiny_run: Path,
                                                                                       tmp_path: Path) -> None:
    require("onnxruntime")
    first = _effnet("optimize", "--weights", str(tiny_run), "--batch", "4", "--out", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr[-2000:]
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert {r["precision"] for r in report["rows"]} == {"fp32"} and not report["cached"]
    again = _effnet("optimize", "--weights", str(tiny_run), "--batch", "4", "--out", str(tmp_path / "b"))
    cached = json.loads((tmp_path / "b" / "report.json").read_text())
    assert again.returncode == 0 and cached["cached"] and cached["chosen"] == report["chosen"]
    assert [r["images_per_s"] for r in cached["rows"]] == [r["images_per_s"] for r in report["rows"]]


def test_weights_that_are_not_a_run_are_scored_by_agreement_with_fp32(tmp_path: Path) -> None:
    require("onnxruntime")
    from effnet import create_model
    from effnet.optimize import choose, unlabelled
    from effnet.optimize.candidates import Candidate

    model = create_model("fmnist_s0").eval()
    evaluation = unlabelled(model, 28, count=16)
    assert evaluation.labels is None and len(evaluation.images) == 8 and len(evaluation.calibration) == 8
    assert not np.shares_memory(evaluation.images, evaluation.calibration)
    choice = choose(model, evaluation, resolution=28, batch=2, budget=100.0, candidates=[Candidate("onnx", "fp32")],
                    rounds=1, min_time=0.01, use_cache=False)
    scores = {r.name: r.score for r in choice.rows}
    assert scores["torch fp32"] == 100.0 and scores["onnx fp32"] == 100.0   # fp32 agrees with itself


def test_a_negative_budget_and_an_unknown_candidate_are_one_line_errors(tmp_path: Path) -> None:
    done = _effnet("optimize", "fmnist_s0", "--accuracy-budget", "-1", "--out", str(tmp_path))
    assert done.returncode != 0 and ">= 0" in done.stderr and "Traceback" not in done.stderr
    done = _effnet("optimize", "fmnist_s0", "--candidates", "tensorrt int4", "--out", str(tmp_path))
    assert done.returncode != 0 and "unknown or unavailable candidate" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.xdist_group("optimize")
def test_predict_and_serve_take_an_accuracy_budget(tiny_run: Path, tmp_path: Path) -> None:
    require("onnxruntime")
    from effnet import create_model
    from effnet.optimize import deployed_model
    from effnet.serve.service import Service
    from effnet.serve.settings import ServeSettings

    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.full((28, 28), 40 * i, dtype=np.uint8)).save(images / f"{i}.png")
    done = _effnet("predict", str(images), "--weights", str(tiny_run), "--accuracy-budget", "100", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "accuracy budget of 100.0 points chose" in done.stderr and len(json.loads(done.stdout)) == 3
    refused = _effnet("predict", str(images), "--weights", str(tiny_run), "--accuracy-budget", "1", "--runtime", "onnx")
    assert refused.returncode != 0 and "--runtime auto" in refused.stderr and "Traceback" not in refused.stderr
    model = create_model(None, weights=str(tiny_run)).eval()
    deployed = deployed_model(model, tiny_run, budget=100.0, batch=3)   # predict measured this: cached
    service = Service(deployed, ServeSettings(max_batch=3), weights=str(tiny_run))
    assert deployed.optimize_choice.cached
    assert service.runtime == deployed.optimize_choice.chosen.name
    assert service.explain.model is model        # class activation maps still run in PyTorch
