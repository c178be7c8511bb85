"""int8 options (calibration, NNCF preset and bias correction, layer groups kept in fp32) and the
sensitivity analysis that picks the groups by measuring."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import effnet
from effnet.deploy.quant_options import ONNX_CALIBRATIONS, QuantOptions, group_nodes, groups_of, parse_groups
from effnet.deploy.sensitivity import find_fp32_groups

from .optional import require

SIZE = 16


def readable_net(seed: int = 0) -> torch.nn.Module:
    """fmnist_lab with random weights and BN statistics of random images: unit-scale activations
    and logits that differ between images (a fresh network's are all near zero)."""
    torch.manual_seed(seed)
    model = effnet.create_model("fmnist_lab")
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the batches below
            torch.nn.init.normal_(module.weight, 1.0, 0.2)
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(64, 1, SIZE, SIZE))
    return model.eval()


def plant_defect(block: torch.nn.Module, channel: int = 0) -> None:
    """A channel that is always zero (SiLU(-1000) = 0) and weights 100x the largest that read
    only that channel: fp32 is unchanged, but int8 loses the block (the per-channel weight scale
    and the activation range both become huge)."""
    with torch.no_grad():
        block.dw.bn.bias[channel] = -1000.0
        weight = block.project.conv.weight
        weight[:, channel] = 100 * weight.abs().max()


def images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, 1, SIZE, SIZE)).astype(np.float32)


def exported(model: torch.nn.Module, path) -> str:  # type: ignore[no-untyped-def]
    from effnet.deploy.export import export_model

    export_model(model, path, resolution=SIZE)
    return str(path)


def test_options_are_checked():
    assert parse_groups(" stem, se,stage3 ") == ("stem", "se", "stage3")
    assert QuantOptions(keep_fp32="stem,classifier").keep_fp32 == ("stem", "classifier")
    with pytest.raises(ValueError, match="unknown layer group 'stage'"):
        QuantOptions(keep_fp32=("stage",))
    with pytest.raises(ValueError, match="unknown calibration"):
        QuantOptions("kl")
    with pytest.raises(ValueError, match="unknown NNCF preset"):
        QuantOptions(preset="fast")
    with pytest.raises(ValueError, match="NNCF .* has no 'entropy'"):
        QuantOptions("entropy").calibration_for("openvino")
    with pytest.raises(ValueError, match="onnxruntime has no 'histogram'"):
        QuantOptions("histogram").calibration_for("onnx")
    names = ["/stem/conv/Conv", "/stages.0/stages.0.0/dw/conv/Conv", "/stages.1/stages.1.0/se/reduce/Conv",
             "/head/conv/Conv", "/classifier/Gemm"]
    assert groups_of(names) == ("stem", "se", "stage0", "stage1", "head", "classifier")
    assert group_nodes(names, "stage1") == ["/stages.1/stages.1.0/se/reduce/Conv"]
    with pytest.raises(ValueError, match="no 'se' layers to keep in fp32"):
        QuantOptions(keep_fp32=("se",)).excluded_nodes(names[:2])


def test_find_fp32_groups_adds_what_helps_and_drops_what_the_others_make_unnecessary():
    fp32 = np.eye(10)[np.arange(100) % 10] * 5.0
    damage = {"a": 0.6, "b": 0.5, "c": 0.0, "d": 0.1}  # d helps alone but a + b are enough

    def int8_logits(keep):  # type: ignore[no-untyped-def]
        broken = sum(v for k, v in damage.items() if k not in keep)
        flipped = np.arange(100) < int(100 * min(broken, 1.0) * 0.5)
        return np.where(flipped[:, None], np.roll(fp32, 1, axis=1), fp32) + 0.01 * broken

    result = find_fp32_groups(int8_logits, fp32, list(damage), budget=0.05)
    assert result.within_budget and set(result.keep_fp32) == {"a", "b"}
    assert [t.keep_fp32 for t in result.one_at_a_time][:2] == [("a",), ("b",)]
    assert find_fp32_groups(int8_logits, fp32, list(damage), budget=0.9).keep_fp32 == ()
    out_of_reach = find_fp32_groups(int8_logits, fp32, ["c", "a"], budget=0.0)
    assert not out_of_reach.within_budget and out_of_reach.keep_fp32 == ("a",)  # the closest, c does not help


def test_every_onnxruntime_calibration_gives_a_working_model(tmp_path):
    require("onnxruntime")
    import onnx
    from onnx import numpy_helper

    from effnet.deploy.quantize import quantize_onnx
    from effnet.deploy.runtime import OnnxRunner
    from effnet.deploy.sensitivity import score

    fp32_path = exported(readable_net(), tmp_path / "fp32.onnx")
    calibration, check = images(32, 1), images(64, 2)
    fp32 = OnnxRunner(fp32_path)(check)
    scales = {}
    for method in ONNX_CALIBRATIONS:
        path = tmp_path / f"{method}.onnx"
        assert quantize_onnx(fp32_path, path, calibration, options=QuantOptions(method)).method == method
        trial = score(fp32, OnnxRunner(path)(check))
        assert trial.top1_agreement >= 0.7 and trial.logit_error < 0.1, (method, trial)
        graph = onnx.load(str(path)).graph
        scales[method] = tuple(float(numpy_helper.to_array(t).max()) for t in sorted(graph.initializer, key=lambda t: t.name)
                               if t.name.endswith("_scale"))
    # the methods really differ: the activation ranges are set three ways
    assert len(set(scales.values())) == 3


def test_every_nncf_choice_gives_a_working_model(tmp_path):
    require("openvino")
    require("nncf")
    from effnet.deploy.openvino import OpenVinoRunner, quantize_openvino
    from effnet.deploy.sensitivity import score

    fp32_path = exported(readable_net(), tmp_path / "fp32.onnx")
    calibration, check = images(32, 1), images(64, 2)
    fp32 = OpenVinoRunner(fp32_path)(check)
    outputs = {}
    for i, options in enumerate([QuantOptions("minmax"), QuantOptions("percentile"), QuantOptions("histogram"),
                                 QuantOptions("mean_minmax", preset="mixed"), QuantOptions(bias_correction="full"),
                                 QuantOptions(bias_correction="none")]):
        path = quantize_openvino(fp32_path, tmp_path / f"q{i}.xml", calibration, options=options)
        outputs[i] = OpenVinoRunner(path)(check)
        trial = score(fp32, outputs[i])
        assert np.isfinite(outputs[i]).all() and trial.logit_error < 0.6, (options, trial)
    # the choices reach NNCF: each calibration gives another model
    assert not np.allclose(outputs[0], outputs[1]) and not np.allclose(outputs[0], outputs[2])
    nncf = require("nncf")
    from effnet.deploy.openvino import nncf_arguments

    model = require("openvino").Core().read_model(fp32_path)
    full, none = (nncf_arguments(nncf, model, QuantOptions(bias_correction=b)) for b in ("full", "none"))
    assert full["fast_bias_correction"] is False and not full["advanced_parameters"].disable_bias_correction
    assert none["advanced_parameters"].disable_bias_correction
    assert nncf_arguments(nncf, model, QuantOptions(preset="mixed"))["preset"] == nncf.QuantizationPreset.MIXED


def test_kept_groups_stay_fp32_in_the_onnx_graph(tmp_path):
    require("onnxruntime")
    import onnx

    from effnet.deploy.quantize import quantize_onnx

    fp32_path = exported(readable_net(), tmp_path / "fp32.onnx")
    counts = {}
    for keep in ((), ("stem", "se")):
        path = tmp_path / f"q{len(keep)}.onnx"
        result = quantize_onnx(fp32_path, path, images(16), options=QuantOptions(keep_fp32=keep))
        graph = onnx.load(str(path)).graph
        dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
        fed = {n.name for n in graph.node if n.op_type in ("Conv", "Gemm") and set(n.input) & dequantized}
        kept = {n.name for n in graph.node if n.op_type == "Conv" and n.name in result.fp32_nodes}
        convs = {n.name for n in graph.node if n.op_type in ("Conv", "Gemm")}
        assert len(kept) == (0 if not keep else 1 + 2 * sum("/se/reduce/" in c for c in convs))
        assert not kept & fed, kept & fed  # no int8 input reaches a kept conv
        assert fed == convs - kept  # and every other one is int8
        counts[keep] = sum(n.op_type == "QuantizeLinear" for n in graph.node)
    assert counts[("stem", "se")] < counts[()]


def test_kept_groups_stay_fp32_in_the_openvino_model(tmp_path):
    ov = require("openvino")
    require("nncf")
    from effnet.deploy.openvino import quantize_openvino

    fp32_path = exported(readable_net(), tmp_path / "fp32.onnx")
    counts = {}
    for keep in ((), ("se", "classifier")):
        path = quantize_openvino(fp32_path, tmp_path / f"q{len(keep)}.xml", images(16),
                                 options=QuantOptions(keep_fp32=keep))
        ops = ov.Core().read_model(str(path)).get_ordered_ops()
        fed = {op.get_friendly_name() for op in ops if op.get_type_name() in ("Convolution", "MatMul")
               and any(i.get_source_output().get_node().get_type_name() == "FakeQuantize" for i in op.inputs())}
        convs = {op.get_friendly_name() for op in ops if op.get_type_name() == "Convolution"}
        kept = {op.get_friendly_name() for op in ops if op.get_type_name() in ("Convolution", "MatMul")
                and ("/se/" in op.get_friendly_name() or op.get_friendly_name() == "logits")}
        kept = kept if keep else set()
        assert not kept & fed, kept & fed  # no int8 input reaches a kept conv or the kept classifier
        assert convs - kept <= fed  # and every other conv is int8
        counts[keep] = sum(op.get_type_name() == "FakeQuantize" for op in ops)
    assert counts[("se", "classifier")] < counts[()]


@pytest.mark.parametrize("stage", [1, 3])
def test_sensitivity_finds_the_planted_defect_with_onnxruntime(tmp_path, stage):
    require("onnxruntime")
    from effnet.deploy.sensitivity import quantize_within_budget

    model = readable_net()
    plant_defect(model.stages[stage][0])
    fp32_path = exported(model, tmp_path / "fp32.onnx")
    result = quantize_within_budget(fp32_path, tmp_path / "int8.onnx", images(32, 1), images(64, 2), budget=0.1)
    assert result.all_int8.top1_agreement < 0.75  # the defect breaks plain int8
    assert result.keep_fp32 == (f"stage{stage}",) and result.within_budget, result
    assert result.one_at_a_time[0].keep_fp32 == (f"stage{stage}",)
    assert (tmp_path / "int8.onnx").is_file()


def test_sensitivity_finds_the_planted_defect_with_nncf(tmp_path):
    require("openvino")
    require("nncf")
    from effnet.deploy.sensitivity import quantize_within_budget

    model = readable_net()
    plant_defect(model.stages[2][1])
    fp32_path = exported(model, tmp_path / "fp32.onnx")
    result = quantize_within_budget(fp32_path, tmp_path / "int8.xml", images(32, 1), images(64, 2),
                                    runtime="openvino", budget=0.2, groups=("stem", "stage1", "stage2", "head"))
    assert result.all_int8.top1_agreement < 0.7
    assert result.keep_fp32 == ("stage2",) and result.within_budget, result
