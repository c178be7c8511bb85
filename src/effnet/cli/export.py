"""`effnet export`: a model (and its weights) to ONNX, OpenVINO IR, TorchScript, an
ExportedProgram or an ExecuTorch program, checked against eager PyTorch; optionally
int8-quantised (onnxruntime's quantiser for ONNX, NNCF for OpenVINO IR, PT2E with XNNPACK's
quantiser for ExecuTorch), on the same calibration images."""

from __future__ import annotations

import argparse
from pathlib import Path

from torch import nn

from ..data.transforms import input_size
from ..deploy.calibration import folder_images, sample_photos
from ..deploy.quant_options import (BIAS_CORRECTIONS, ONNX_CALIBRATIONS, OPENVINO_CALIBRATIONS, PRESETS, QuantOptions,
                                    parse_groups)
from ..deploy.sensitivity import pt2e_within_budget, quantize_within_budget
from ..deploy.executorch import ExecuTorchRunner
from ..deploy.export import FORMATS, SUFFIXES, example_input, export_model, max_abs_diff, prepare
from ..deploy.openvino import OpenVinoRunner, quantize_openvino
from ..deploy.quantize import agreement, quantize_onnx
from ..deploy.runtime import OnnxRunner
from ._format import print_json
from ._model import WEIGHTS_HELP, load_model, positive_int

# The largest |exported - eager| we accept: float32 rounding through ~80 layers stays far below.
TOLERANCE = 1e-4
INT8_FORMATS = ("onnx", "openvino", "executorch")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a model to ONNX / OpenVINO / TorchScript / ExportedProgram / "
                                             "ExecuTorch (int8 optional)")
    p.add_argument("model", nargs="?", default=None,
                   help="a registered model name (see `effnet models`); optional when --weights names its network")
    p.add_argument("--weights", help=WEIGHTS_HELP)
    p.add_argument("--format", choices=FORMATS, default="onnx")
    p.add_argument("--output", "-o", required=True, help=f"file to write ({', '.join(f'{k}: {v}' for k, v in SUFFIXES.items())})")
    p.add_argument("--resolution", type=positive_int, help="image size (default: the weights' or the model's own)")
    p.add_argument("--dynamic", action="store_true",
                   help="any image size (SAME pads computed in the graph); default: fixed size, any batch")
    p.add_argument("--no-fold", action="store_true", help="keep BatchNorm layers instead of folding them into convs")
    p.add_argument("--no-check", action="store_true", help="skip the comparison with eager PyTorch")
    p.add_argument("--int8", metavar="PATH", help="also write an int8 model here (fixed size): ONNX QDQ for --format onnx, "
                        "OpenVINO IR (.xml) quantised by NNCF for --format openvino, an XNNPACK .pte quantised by "
                        "PT2E for --format executorch")
    p.add_argument("--calibration", metavar="FOLDER",
                   help="images for int8 calibration (default: crops of scikit-image's sample photos)")
    p.add_argument("--calibration-method", choices=sorted(set(ONNX_CALIBRATIONS) | set(OPENVINO_CALIBRATIONS)),
                   default=None, help="how activation ranges are set: onnx minmax (default) | percentile | entropy; "
                                      "openvino (NNCF) minmax | mean_minmax | percentile | histogram")
    p.add_argument("--keep-fp32", default=None, metavar="auto|GROUPS",
                   help="layer groups left in fp32 (stem, se, stageN, head, classifier, comma-separated), or auto: "
                        "the fewest groups that keep int8 within --accuracy-budget of fp32, found by measuring "
                        "(every int8 format)")
    p.add_argument("--accuracy-budget", type=float, default=1.0, metavar="POINTS",
                   help="with --keep-fp32 auto: points of top-1 agreement with fp32 the int8 model may lose on "
                        "check images (default 1.0)")
    p.add_argument("--nncf-preset", choices=PRESETS, default="performance", help="NNCF (openvino): activations "
                   "symmetric (performance) or asymmetric (mixed)")
    p.add_argument("--bias-correction", choices=BIAS_CORRECTIONS, default="fast", help="NNCF (openvino) bias correction")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def _check_sizes(resolution: int, dynamic: bool) -> list[int | tuple[int, int]]:
    # A dynamic export must be exact at odd and even sides it was not traced at.
    return [resolution, (resolution + 1, resolution + 2), (resolution // 2 + 1, resolution // 2)] if dynamic else [resolution]


def run(args: argparse.Namespace) -> int:
    if args.int8 and (args.format not in INT8_FORMATS or args.dynamic):
        raise ValueError("--int8 needs --format onnx, openvino or executorch, without --dynamic "
                         "(static quantisation needs fixed pads)")
    if args.calibration and not args.int8:
        raise ValueError("--calibration only applies with --int8 PATH")
    tuned = args.calibration_method or args.nncf_preset != "performance" or args.bias_correction != "fast"
    if tuned and args.format not in ("onnx", "openvino"):
        raise ValueError("--calibration-method, --nncf-preset and --bias-correction apply to --int8 with "
                         "--format onnx or openvino")
    if args.keep_fp32 and not args.int8:
        raise ValueError("--keep-fp32 applies to --int8 PATH")
    output = Path(args.output)
    if args.format == "exported-program" and output.suffix != ".pt2":
        raise ValueError(f"an ExportedProgram file must end in .pt2 (torch.export.load insists); got {output.name}")
    for name in (output, Path(args.int8) if args.int8 else None):
        if args.format == "executorch" and name is not None and name.suffix != ".pte":
            raise ValueError(f"an ExecuTorch program ends in .pte; got {name.name}")
        if args.format == "executorch" and args.dynamic:
            raise ValueError("an ExecuTorch program has one image size; leave out --dynamic")
    model = load_model(args.model, args.weights).eval()
    resolution = args.resolution or input_size(model)
    result = export_model(model, output, format=args.format, resolution=resolution, dynamic=args.dynamic,
                          fold=not args.no_fold)
    record: dict[str, object] = {"model": model.spec.name, "weights": args.weights, "format": args.format, "output": str(output),
                                 "resolution": resolution, "dynamic": args.dynamic,
                                 "size_mb": _size_mb(output)}
    if not args.no_check:
        sizes = _check_sizes(resolution, args.dynamic)
        diff = max_abs_diff(model, result.path, args.format, sizes)
        record.update(checked_sizes=[list(s) if isinstance(s, tuple) else s for s in sizes], max_abs_diff=diff)
        if diff > TOLERANCE:
            raise ValueError(f"the exported model differs from eager PyTorch by {diff:.2e} (> {TOLERANCE:.0e}); "
                             "please report this with the command you ran")
    if args.int8:
        record["int8"] = _quantize(model, result.path, Path(args.int8), resolution, args)
    if args.json:
        print_json(record)
    else:
        for key, value in record.items():
            print(f"{key:>14}: {value}")
    return 0


def _size_mb(path: Path) -> float:
    """The file's size, with its weights beside it for OpenVINO IR (.xml + .bin)."""
    weights = path.with_suffix(".bin") if path.suffix == ".xml" else None
    return round((path.stat().st_size + (weights.stat().st_size if weights and weights.exists() else 0)) / 2**20, 2)


def _quantize(model: nn.Module, fp32: Path, int8: Path, resolution: int, args: argparse.Namespace) -> dict[str, object]:
    format = args.format
    images = (folder_images(model, args.calibration, resolution=resolution) if args.calibration
              else sample_photos(model, 96 if args.keep_fp32 == "auto" else 64, resolution=resolution))
    # Calibrate on half, check agreement with fp32 on the other half (images it did not see);
    # with --keep-fp32 auto a third calibrates, a third chooses the groups, a third checks.
    half = max(1, len(images) // 2)
    calibrated = half
    record: dict[str, object] = {}
    if args.keep_fp32 == "auto":
        third = max(1, len(images) // 3)
        calibration, check = images[:third], images[third:2 * third]
        if format == "executorch":  # PT2E quantises the model, not a file
            module = prepare(model, resolution, dynamic=False)
            found = pt2e_within_budget(module, int8, example_input(module, resolution), calibration, check,
                                       budget=args.accuracy_budget / 100)
        else:
            options = QuantOptions(args.calibration_method, (), args.nncf_preset, args.bias_correction)
            found = quantize_within_budget(fp32, int8, calibration, check, runtime=format, options=options,
                                           budget=args.accuracy_budget / 100)
        record.update(kept_fp32=list(found.keep_fp32), within_budget_on_choosing_images=found.within_budget)
        calibrated, half = third, 2 * third
    elif format == "executorch":
        export_model(model, int8, format=format, resolution=resolution, calibration=images[:half],
                     keep_fp32=parse_groups(args.keep_fp32 or ""))
    else:
        options = QuantOptions(args.calibration_method, parse_groups(args.keep_fp32 or ""), args.nncf_preset,
                               args.bias_correction)
        (quantize_onnx if format == "onnx" else quantize_openvino)(fp32, int8, images[:half], options=options)
    held_out = images[half:] if len(images) > 1 else images
    runner = {"onnx": OnnxRunner, "openvino": OpenVinoRunner, "executorch": ExecuTorchRunner}[format]
    a = agreement(runner(fp32)(held_out), runner(int8)(held_out))
    return {"output": str(int8), "size_mb": _size_mb(int8), "calibration_images": calibrated, **record,
            "top1_agreement_with_fp32": a.top1_agreement, "images_checked": a.images,
            "top1_agreement_confident": a.top1_agreement_confident, "confident_images": a.confident_images}
