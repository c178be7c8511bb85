"""Fast-inference transforms, the onnxruntime runner, int8 quantisation and the bench
command (tiny settings: these tests check behaviour, never speed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from effnet.cli import main
from effnet.bench import cpu_peak, time_alternately
from effnet.bench.results import machine_name, write_result
from effnet.bench.train_step import training_step
from effnet.deploy.timing import call_times, seconds_per_call
from effnet.deploy.fuse import fuse_bn, optimize_for_inference

from .optional import require
from .lite import lite0_pretrained
from .test_export import _model


def _close(out: torch.Tensor, ref: torch.Tensor, tol: float = 1e-5) -> bool:
    """Equal to ``tol`` relative to the largest logit (float32 sums of ~1000 products)."""
    return (out - ref).abs().max().item() <= tol * max(1.0, ref.abs().max().item())


@pytest.mark.parametrize("name", ["efficientnet_b0", "efficientnet_lite0", "resnet50", "mobilenet_v2"])
def test_fuse_bn_is_equal_and_removes_every_bn(name):
    model = _model(name)
    fused = fuse_bn(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    x = torch.randn(2, 3, 67, 64)
    with torch.no_grad():
        assert _close(fused(x), model(x))


def test_fuse_bn_uses_running_statistics_not_batch_statistics():
    model = _model("efficientnet_lite0").train()  # even if handed a training-mode model
    fused = fuse_bn(model)
    assert not fused.training
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        assert _close(fused(x), model.eval()(x))


def test_optimize_for_inference_channels_last_is_equal():
    model = _model("efficientnet_b0")
    fast = optimize_for_inference(model)
    x = torch.randn(2, 3, 65, 66)
    with torch.no_grad():
        assert _close(fast(x.contiguous(memory_format=torch.channels_last)), model(x))
    assert fast.stem.conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_onnx_runner_threads_and_clear_shape_error(tmp_path):
    from effnet.deploy.export import export_model
    from effnet.deploy.runtime import OnnxRunner

    model = _model("efficientnet_lite0")
    export_model(model, tmp_path / "m.onnx", resolution=64)
    runner = OnnxRunner(tmp_path / "m.onnx", threads=1)
    assert runner.session.get_session_options().intra_op_num_threads == 1
    x = torch.randn(3, 3, 64, 64)
    assert np.abs(runner(x) - model(x).detach().numpy()).max() <= 1e-4
    with pytest.raises(ValueError, match="--dynamic"):
        runner(np.zeros((1, 3, 65, 65), np.float32))
    with pytest.raises(FileNotFoundError, match="effnet export"):
        OnnxRunner(tmp_path / "missing.onnx")


def test_int8_quantisation_agrees_with_fp32_on_photos(tmp_path):
    require("skimage")
    import onnx

    from effnet.deploy.calibration import sample_photos
    from effnet.deploy.export import export_model
    from effnet.deploy.quantize import agreement, cpu_has_vnni, depthwise_weights, quantize_onnx
    from effnet.deploy.runtime import OnnxRunner

    model = lite0_pretrained()
    size = 160  # smaller than the native 224 to keep the test quick; lite0 still recognises photos
    export_model(model, tmp_path / "fp32.onnx", resolution=size)
    calibration = sample_photos(model, 24, resolution=size, seed=1)
    held_out = sample_photos(model, 24, resolution=size, seed=2)
    result = quantize_onnx(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", calibration)
    graph = onnx.load(str(tmp_path / "int8.onnx")).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.node}
    # uint8 weights where int8 ones would saturate (no VNNI), int8 where they do not; depthwise
    # convs always int8 (onnxruntime's fast depthwise kernels want them, and do not saturate).
    assert result.weight_type == ("int8" if cpu_has_vnni() else "uint8")
    wanted = onnx.TensorProto.INT8 if result.weight_type == "int8" else onnx.TensorProto.UINT8
    depthwise = {name + "_quantized" for name in depthwise_weights(onnx.load(str(tmp_path / "fp32.onnx")))}
    conv_weights = [t for t in graph.initializer if t.name.endswith("conv.weight_quantized")]
    assert depthwise and conv_weights
    for tensor in conv_weights:
        assert tensor.data_type == (onnx.TensorProto.INT8 if tensor.name in depthwise else wanted), tensor.name
    with pytest.raises(ValueError, match="unknown weight type"):
        quantize_onnx(tmp_path / "fp32.onnx", tmp_path / "x.onnx", calibration, weight_type="int4")
    fp32, int8 = OnnxRunner(tmp_path / "fp32.onnx")(held_out), OnnxRunner(tmp_path / "int8.onnx")(held_out)
    result = agreement(fp32, int8)
    assert result.top1_agreement >= 0.75, result
    # and the photos are recognised at all (the fp32 model is not guessing)
    assert "espresso" in [model.class_names[i] for i in fp32.argmax(1)]


def test_quantize_refuses_dynamic_size(tmp_path):
    from effnet.deploy.export import export_model
    from effnet.deploy.quantize import quantize_onnx

    export_model(_model("efficientnet_lite0"), tmp_path / "d.onnx", resolution=64, dynamic=True)
    with pytest.raises(ValueError, match="without --dynamic"):
        quantize_onnx(tmp_path / "d.onnx", tmp_path / "q.onnx", np.zeros((2, 3, 64, 64), np.float32))


def test_time_alternately_alternates_order():
    calls: list[str] = []
    runners = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    samples = time_alternately(runners, rounds=2, min_time=0.0, warmup=0)
    assert calls == list("abc") + list("cba")
    assert all(len(v) == 2 for v in samples.values())


def test_call_times_warms_up_untimed_then_times_each_call():
    calls: list[int] = []
    times = call_times(lambda: calls.append(1), calls=3, warmup=2)
    assert len(calls) == 5 and len(times) == 3 and all(t >= 0 for t in times)
    assert seconds_per_call(lambda: None, calls=3, warmup=0) >= 0


def test_training_step_updates_the_weights_and_returns_the_loss():
    model = nn.Linear(4, 3)
    before = model.weight.detach().clone()
    step = training_step(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.randn(8, 4), torch.randint(0, 3, (8,)))
    loss = step()
    assert isinstance(loss, torch.Tensor) and loss.ndim == 0 and not torch.equal(model.weight, before)


def test_machine_name_says_family_and_vector_unit():
    from effnet.device import CpuInfo

    assert machine_name(CpuInfo("Intel(R) Xeon(R) Platinum 8481C", frozenset({"avx2", "avx512f", "amx_tile"}), 0, "")) \
        == "xeon-amx"
    assert machine_name(CpuInfo("AMD EPYC 7B13 64-Core Processor", frozenset({"avx2", "fma"}), 0, "")) == "epyc-avx2"
    assert machine_name(CpuInfo("", frozenset({"avx512f"}), 0, "")) == "unknown-avx512"


def test_write_result_keeps_every_run_and_latest_is_the_newest(tmp_path):
    first = write_result("demo", {"value": 1}, "| a |", root=tmp_path, threads=2, command="python demo.py")
    second = write_result("demo", {"value": 2}, "| b |", root=tmp_path, threads=2, command="python demo.py")
    assert first != second and first.stem + "_2" == second.stem and first.parent.name == "history"
    assert json.loads(first.read_text())["value"] == 1  # never overwritten
    latest = json.loads((tmp_path / "demo" / "latest.json").read_text())
    assert latest["value"] == 2 and latest["provenance"]["command"] == "python demo.py"
    assert {"commit", "cpu", "threads", "versions", "machine", "date"} <= set(latest["provenance"])
    md = (tmp_path / "demo" / "latest.md").read_text()
    assert md.startswith("| b |") and "Command: `python demo.py`" in md and second.with_suffix(".md").read_text() == md
    write_result("demo", {"value": 3}, root=tmp_path, threads=1)  # no table this time: no stale latest.md
    assert not (tmp_path / "demo" / "latest.md").exists()
    assert not list((tmp_path / "demo").glob(".*partial"))


def test_cpu_peak_states_its_assumptions():
    peak = cpu_peak(2)
    assert peak["threads"] == 2 and peak["fp32_lanes"] in (4, 8, 16)
    if peak["mhz"]:
        assert peak["peak_madds_per_s"] == pytest.approx(2 * peak["mhz"] * 1e6 * peak["fp32_lanes"] * peak["fma_units_assumed"])


def test_bench_command_runs_tiny(tmp_path, capsys):
    require("timm")
    out = tmp_path / "bench.json"
    md = tmp_path / "bench.md"
    status = main(["bench", "efficientnet_b0", "--resolution", "64", "--latency-batch", "0", "--throughput-batch", "2",
                   "--train-batch", "2", "--inference", "eager,fused,onnx-fp32", "--training", "train",
                   "--peers", "timm:efficientnet_b0", "--rounds", "1", "--min-time", "0", "--no-memory",
                   "--json", str(out), "--markdown", str(md)])
    assert status == 0
    report = json.loads(out.read_text())
    names = {(row["section"], row["contestant"]) for row in report["rows"]}
    assert ("throughput", "ours:onnx-fp32") in names and ("train", "timm:efficientnet_b0:channels_last") in names
    assert all(row["seconds"] > 0 and "timm" in row["speedup"] for row in report["rows"])
    assert "speed-up vs timm" in md.read_text() and "speed-up vs timm" in capsys.readouterr().out


def test_bench_command_rejects_unknown_paths(capsys):
    assert main(["bench", "--inference", "warp-drive"]) == 2
    assert "warp-drive" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where there is no GPU")
def test_bench_on_cuda_without_a_gpu_says_so(capsys):
    assert main(["bench", "--device", "cuda", "--no-memory", "--rounds", "1"]) == 2
    err = capsys.readouterr().err
    assert "no CUDA device" in err and "--device cpu" in err and "Traceback" not in err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bench_command_runs_on_cuda(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "efficientnet_b0", "--device", "cuda", "--resolution", "64", "--latency-batch", "1",
                 "--throughput-batch", "4", "--train-batch", "4", "--peers", "", "--rounds", "1", "--min-time", "0",
                 "--no-memory", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert not any("onnx" in row["contestant"] for row in report["rows"])
    assert any("CUDA" in note for note in report["notes"])


def test_memory_is_measured_in_a_fresh_process():
    from effnet.bench import Setting
    from effnet.bench.memory import measure

    result = measure("ours:train", "train", Setting("efficientnet_lite0", resolution=64, threads=1), batch=2, steps=1)
    # A training step with SGD + momentum allocates at least the gradients and the momentum
    # buffers (4.65M float32 parameters each, 17.7 MiB); a measurement that missed the step's
    # allocations (or read the wrong process) would be far below.
    param_bytes = 4 * 4_652_008
    assert result["step_bytes"] >= 2 * param_bytes, result


def test_onnx_model_works_with_predict(tmp_path):
    require("skimage")
    from PIL import Image
    from skimage import data

    from effnet.deploy.export import export_model
    from effnet.deploy.runtime import OnnxModel
    from effnet.predict import predict

    model = lite0_pretrained()
    export_model(model, tmp_path / "lite0.onnx", resolution=224)
    Image.fromarray(data.coffee()).save(tmp_path / "coffee.png")
    onnx_model = OnnxModel(tmp_path / "lite0.onnx", model, threads=1)
    ours, theirs = predict([tmp_path / "coffee.png"], onnx_model, top_k=3), predict([tmp_path / "coffee.png"], model, top_k=3)
    assert ours[0].top_k[0].name == theirs[0].top_k[0].name == "espresso"
    assert ours[0].top_k[0].probability == pytest.approx(theirs[0].top_k[0].probability, abs=1e-4)


def test_library_import_pulls_in_no_peer_or_runtime():
    import subprocess
    import sys

    code = ("import sys, effnet, effnet.deploy, effnet.cli.export, effnet.cli.bench; "
            "print([m for m in ('timm', 'onnxruntime', 'onnx', 'openvino', 'nncf') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_compiled_model_is_equal():
    require("torch._inductor")
    model = _model("efficientnet_lite0")
    compiled = optimize_for_inference(model, compile=True)
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        assert _close(compiled(x), model(x), tol=1e-4)
