"""`effnet cam IMAGE --out cam.png`: where the model looked for its top class (paper Figure 7).

Exit status: 0 when the PNG was written, 1 when the image cannot be read, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import sys

from matplotlib import colormaps

from ..cam import class_activation_map, save_cam
from ..data.images import ImageError, load_image
from ..device import resolve_device
from ._model import add_model_arguments, load_model, model_label


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("cam", help="class activation map of an image (paper Figure 7)")
    p.add_argument("image", metavar="IMAGE", help="an image file")
    add_model_arguments(p)
    p.add_argument("--class-index", type=int, default=None, metavar="K",
                   help="the class to explain (default: the model's top class)")
    p.add_argument("--out", required=True, metavar="PNG", help="where to write the picture, e.g. cam.png")
    p.add_argument("--colormap", default="jet", help="a matplotlib colormap name (default jet)")
    p.add_argument("--alpha", type=float, default=0.5, help="heatmap opacity, 0..1 (default 0.5)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.colormap not in colormaps:
        raise ValueError(f"unknown colormap {args.colormap!r}; try jet, turbo, viridis or inferno")
    if not 0 <= args.alpha <= 1:
        raise ValueError(f"--alpha must be between 0 and 1, got {args.alpha}")
    device = resolve_device(args.device)
    model = load_model(args.model, args.weights)
    try:
        image = load_image(args.image)
    except ImageError as error:
        print(f"effnet cam: {error}", file=sys.stderr)
        return 1
    cam = class_activation_map(image, model, args.class_index, device)
    try:
        save_cam(cam, args.out, args.colormap, args.alpha,
                 title=f"{model_label(model, args.weights)}: {args.image}")
    except OSError as error:
        raise ValueError(f"cannot write {args.out}: {' '.join(str(error).split())}") from None
    print(f"{args.out}: CAM of class {cam.class_index} ({cam.class_name}), p = {cam.probability:.1%}")
    return 0
