"""`effnet export --int8` takes the int8 options of both quantisers: calibration method, layer
groups kept in fp32 (named, or found by measuring with --keep-fp32 auto), NNCF's preset and
bias correction; options a format cannot use are one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .optional import require

ROOT = Path(__file__).resolve().parents[1]


def _export(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "effnet", "export", "efficientnet_lite0", "--resolution", "64",
                           "--output", str(tmp_path / "m.onnx"), "--int8", str(tmp_path / "m_int8.onnx"), "--json",
                           *options], capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_named_groups_stay_fp32_and_auto_reports_what_it_kept(tmp_path: Path) -> None:
    require("onnxruntime")
    import onnx

    done = _export(tmp_path, "--calibration-method", "percentile", "--keep-fp32", "stem,classifier")
    assert done.returncode == 0, done.stderr[-2000:]
    graph = onnx.load(str(tmp_path / "m_int8.onnx")).graph
    quantized_inputs = {i for n in graph.node if n.op_type == "DequantizeLinear" for i in n.output}
    stem = [n for n in graph.node if n.op_type == "Conv" and n.name.startswith("/stem/")]
    assert stem and not any(i in quantized_inputs for n in stem for i in n.input[:2])   # fp32 image and weights
    assert any(i in quantized_inputs for n in graph.node if n.op_type == "Conv" and "/stages." in n.name for i in n.input)
    done = _export(tmp_path, "--keep-fp32", "auto", "--accuracy-budget", "50")
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(done.stdout)["int8"]
    assert isinstance(record["kept_fp32"], list) and record["within_budget_on_choosing_images"] in (True, False)


def test_options_a_format_cannot_use_are_one_line_errors(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "effnet", "export", "efficientnet_lite0", "--format", "torchscript",
                           "--output", str(tmp_path / "m.pt"), "--calibration-method", "percentile"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode != 0 and "apply to --int8 with --format onnx or openvino" in done.stderr
    assert "Traceback" not in done.stderr
    done = _export(tmp_path, "--keep-fp32", "stem,wings")
    assert done.returncode != 0 and "unknown layer group 'wings'" in done.stderr and "Traceback" not in done.stderr


def test_executorch_int8_keeps_groups_found_by_measuring(tmp_path: Path) -> None:
    require("executorch")
    done = subprocess.run([sys.executable, "-m", "effnet", "export", "fmnist_lab", "--format", "executorch",
                           "--output", str(tmp_path / "m.pte"), "--int8", str(tmp_path / "m_int8.pte"), "--json",
                           "--keep-fp32", "auto", "--accuracy-budget", "0"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(done.stdout)["int8"]
    assert (tmp_path / "m_int8.pte").is_file() and record["calibration_images"] > 0
    assert set(record["kept_fp32"]) <= {"stem", "se", "stage0", "stage1", "stage2", "stage3", "head", "classifier"}
    assert record["within_budget_on_choosing_images"] in (True, False)
