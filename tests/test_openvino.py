"""OpenVINO as a runtime beside onnxruntime: IR export exact at odd and even sizes, bf16 that
says what actually ran, NNCF int8 that still recognises photos, `--runtime openvino` and
`--runtime auto` (measured, remembered, said), onnxruntime's micro-batch plan, and the
benchmark's peer paths and profile."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest
import torch

from effnet.cli import main
from effnet.deploy.export import export_model, max_abs_diff
from effnet.device import cpu_info

from .optional import require
from .lite import lite0_pretrained
from .test_export import TOL, _model

require("openvino")
require("onnxruntime")


def _cpu_has_bf16() -> bool:
    flags = cpu_info().flags
    return "avx512_bf16" in flags or "amx_bf16" in flags


@pytest.mark.parametrize("dynamic", [False, True])
def test_openvino_ir_matches_eager(tmp_path, dynamic):
    model = _model("efficientnet_b0")
    result = export_model(model, tmp_path / "m.xml", format="openvino", resolution=65, dynamic=dynamic)
    assert (tmp_path / "m.bin").stat().st_size > 1e6  # the weights, beside the graph
    sizes = [65, (97, 96), (80, 71)] if dynamic else [65]
    assert max_abs_diff(model, result.path, "openvino", sizes) <= TOL
    with pytest.raises(ValueError, match=".xml"):
        export_model(model, tmp_path / "m.ir", format="openvino", resolution=64)


def test_openvino_runner_says_which_precision_ran_and_checks_shapes(tmp_path):
    from effnet.deploy.openvino import OpenVinoRunner

    model = _model("efficientnet_lite0")
    export_model(model, tmp_path / "m.onnx", resolution=64)
    x = torch.randn(3, 3, 64, 64)
    reference = model(x).detach().numpy()
    f32 = OpenVinoRunner(tmp_path / "m.onnx", threads=1)
    assert f32.precision == "f32" and f32.num_classes == 10
    assert np.abs(f32(x) - reference).max() <= TOL
    bf16 = OpenVinoRunner(tmp_path / "m.onnx", threads=1, precision="bf16")
    assert bf16.precision == ("bf16" if _cpu_has_bf16() else "f32")  # never claims bf16 it did not run
    got = bf16(x)
    if _cpu_has_bf16():
        # bf16 keeps an 8-bit mantissa (~0.4% per operation) and the rounding accumulates over the
        # network's 16 blocks, so an absolute bound on logits of about +-20 measures the logit scale,
        # not the runtime: bound the error relative to the logits instead (measured: ~0.7%).
        assert np.linalg.norm(got - reference) / np.linalg.norm(reference) <= 0.02
        assert (got.argmax(1) == reference.argmax(1)).all()
    else:
        assert np.abs(got - reference).max() <= TOL
    with pytest.raises(ValueError, match="--resolution 65"):
        f32(np.zeros((1, 3, 65, 65), np.float32))
    with pytest.raises(ValueError, match="unknown OpenVINO precision"):
        OpenVinoRunner(tmp_path / "m.onnx", precision="fp8")
    with pytest.raises(FileNotFoundError, match="--format openvino"):
        OpenVinoRunner(tmp_path / "missing.xml")


def test_nncf_int8_still_recognises_the_photos(tmp_path, capsys):
    require("nncf")
    require("skimage")
    from effnet.deploy.calibration import sample_photos
    from effnet.deploy.openvino import OpenVinoRunner

    model = lite0_pretrained()
    fp32, int8 = tmp_path / "lite0.xml", tmp_path / "lite0_int8.xml"
    assert main(["export", "--weights", "lite0.official", "--format", "openvino", "--resolution", "160",
                 "-o", str(fp32), "--int8", str(int8), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["max_abs_diff"] <= TOL and record["int8"]["size_mb"] < record["size_mb"] / 2
    held_out = sample_photos(model, 24, resolution=160, seed=2)
    a, b = OpenVinoRunner(fp32)(held_out), OpenVinoRunner(int8)(held_out)
    confident = torch.from_numpy(a).softmax(1).max(1).values > 0.5
    assert confident.sum() >= 3
    assert (a.argmax(1) == b.argmax(1))[confident.numpy()].mean() >= 0.75
    assert "espresso" in [model.class_names[i] for i in b.argmax(1)]


def test_predict_with_openvino_and_auto_says_what_it_chose(tmp_path, monkeypatch, capsys):
    skimage = require("skimage")
    lite0_pretrained()
    monkeypatch.setenv("EFFNET_CACHE", str(tmp_path / "cache"))
    photo = os.path.join(os.path.dirname(skimage.__file__), "data", "coffee.png")
    base = ["predict", photo, "--weights", "lite0.official", "--top-k", "3", "--json"]
    results = {}
    for runtime in ("torch", "openvino", "auto"):
        assert main([*base, "--runtime", runtime]) == 0
        captured = capsys.readouterr()
        results[runtime] = json.loads(captured.out)[0]["top_k"]
        if runtime == "auto":
            assert "runtime auto chose" in captured.err and "measured now" in captured.err
    for runtime in ("openvino", "auto"):
        assert [s["index"] for s in results[runtime]] == [s["index"] for s in results["torch"]]
        for a, b in zip(results[runtime], results["torch"]):
            assert abs(a["probability"] - b["probability"]) < 1e-4
    choices = json.loads((tmp_path / "cache" / "runtime_choice.json").read_text())
    (record,) = choices.values()
    # Every installed fp32 runtime was timed (ExecuTorch too where it is installed: lite0.official is saved).
    expected = {"torch", "onnx", "openvino"} | ({"executorch"} if importlib.util.find_spec("executorch") else set())
    assert set(record["seconds"]) == expected and record["runtime"] in record["seconds"]
    assert record["runtime"] == min(record["seconds"], key=record["seconds"].get)
    assert main([*base, "--runtime", "auto"]) == 0
    assert "measured earlier" in capsys.readouterr().err  # remembered: no second measurement


def test_onnx_micro_batch_plan_gives_the_same_logits_in_order(tmp_path):
    from effnet.deploy.runtime import OnnxRunner

    model = _model("efficientnet_lite0")
    export_model(model, tmp_path / "m.onnx", resolution=64)
    x = torch.randn(7, 3, 64, 64)
    plain, planned = OnnxRunner(tmp_path / "m.onnx", threads=2, streams=1), OnnxRunner(tmp_path / "m.onnx", threads=2)
    assert planned.streams == 2 and plain.streams == 1
    assert [planned.plan(n) for n in (2, 3, 4, 5, 32)] == [1, 1, 2, 2, 2]  # every stream busy, at most 2
    for n in (1, 2, 5, 7):  # below, at and above the streams, odd counts: chunks come back in order
        assert np.abs(planned(x[:n]) - plain(x[:n])).max() <= 1e-5
    with pytest.raises(ValueError, match="at least 1"):
        OnnxRunner(tmp_path / "m.onnx", micro_batch=0)


def test_bench_compares_peer_paths_at_equal_precision(tmp_path):
    require("timm")
    out = tmp_path / "bench.json"
    assert main(["bench", "efficientnet_b0", "--resolution", "64", "--latency-batch", "0", "--throughput-batch", "2",
                 "--inference", "onnx-fp32,onnx-int8,openvino-fp32,openvino-bf16", "--training", "",
                 "--peers", "timm:tf_efficientnet_b0", "--peer-paths", "channels_last,onnx-fp32,onnx-int8,openvino-fp32",
                 "--rounds", "1", "--min-time", "0", "--no-memory", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {row["contestant"]: row for row in report["rows"]}
    assert rows["timm:tf_efficientnet_b0:onnx-int8"]["precision"] == "int8"
    assert rows["ours:openvino-bf16"]["precision"] == ("bf16" if _cpu_has_bf16() else "fp32")
    # int8 is compared with the peer's int8 only; fp32 with the peer's fastest fp32 path.
    peer_int8 = rows["timm:tf_efficientnet_b0:onnx-int8"]["seconds"]
    assert rows["ours:onnx-int8"]["speedup"]["timm"] == pytest.approx(peer_int8 / rows["ours:onnx-int8"]["seconds"])
    fp32_peers = [r["seconds"] for n, r in rows.items() if n.startswith("timm") and r["precision"] == "fp32"]
    assert rows["ours:onnx-fp32"]["speedup"]["timm"] == pytest.approx(min(fp32_peers) / rows["ours:onnx-fp32"]["seconds"])
    headline = {(h["precision"], h["peer"]): h for h in report["headline"]}
    assert {("fp32", "timm"), ("int8", "timm"), ("any", "timm")} <= set(headline)
    assert headline[("int8", "timm")]["best_peer"] == "timm:tf_efficientnet_b0:onnx-int8"
    assert report["machine"]["flags"] and "int8_peak_madds_per_s" in report["machine"]
    assert main(["bench", "--peer-paths", "warp-drive"]) == 2


def test_onnx_profile_names_where_the_time_goes(tmp_path):
    from effnet.bench.onnx_profile import profile_markdown, profile_onnx

    export_model(_model("efficientnet_b0"), tmp_path / "m.onnx", resolution=64)
    rows = profile_onnx(tmp_path / "m.onnx", np.zeros((2, 3, 64, 64), np.float32), threads=1, runs=1)
    kinds = {row["kind"]: row for row in rows}
    assert {"pointwise 1x1 conv", "depthwise conv"} <= set(kinds)
    assert sum(row["share"] for row in rows) == pytest.approx(1.0)
    # B0's 1x1 convs hold most of its multiply-adds (paper: MBConv's expand and project).
    assert kinds["pointwise 1x1 conv"]["g_madds"] > 5 * kinds["depthwise conv"]["g_madds"] > 0
    assert "| pointwise 1x1 conv |" in profile_markdown(rows, 1e11)
