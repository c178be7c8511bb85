"""`effnet convert`: a timm, torchvision or lukemelas checkpoint -> effnet .safetensors
with its padding, BN epsilon, preprocessing and class names inside."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..preprocessing import INTERPOLATIONS
from ..weights import FOREIGN_LAYOUTS, peer_weights
from ..weights.peer_checkpoint import convert_checkpoint, read_class_names, with_preprocessing


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert", help="convert timm/torchvision/lukemelas weights to effnet .safetensors",
        description="Convert a peer's EfficientNet state dict (.pth/.safetensors) to effnet's format. The "
                    "padding, BN epsilon and preprocessing follow from --from and --model and go into the file.")
    p.add_argument("src", help="the peer's weights file (.pth, .pt, .bin or .safetensors)")
    p.add_argument("dst", help="where to write the effnet weights (.safetensors)")
    p.add_argument("--from", dest="source", required=True, choices=FOREIGN_LAYOUTS, help="who wrote SRC")
    p.add_argument("--model", required=True,
                   help="the peer's model name: tf_efficientnet_b0 or efficientnet_b0 (timm), efficientnet_b5 "
                        "(torchvision), efficientnet-lite0 (lukemelas)")
    p.add_argument("--classes", default="imagenet",
                   help="'imagenet' (default, for 1000 classes), 'none', or a text file with one name per line")
    p.add_argument("--input-size", type=int, help="eval input size (default: what the peer used)")
    p.add_argument("--crop-fraction", type=float, help="eval centre-crop fraction (default: the peer's)")
    p.add_argument("--interpolation", choices=INTERPOLATIONS, help="eval resize interpolation")
    p.add_argument("--top1", type=float, help="reported ImageNet top-1 (%%) to record")
    p.add_argument("--licence", default="", help="licence of the weights, to record")
    p.add_argument("--note", default="", help="where the weights come from (default: the peer and file name)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = peer_weights(args.source, args.model)
    preprocessing = with_preprocessing(settings.preprocessing, input_size=args.input_size,
                                       crop_fraction=args.crop_fraction, interpolation=args.interpolation)
    classes = None if args.classes == "none" else (
        args.classes if args.classes == "imagenet" else read_class_names(args.classes))
    meta = convert_checkpoint(args.src, args.dst, source=args.source, model=args.model, class_names=classes,
                              preprocessing=preprocessing, top1=args.top1, licence=args.licence, note=args.note)
    pre = meta.preprocessing
    print(f"wrote {Path(args.dst)}: {meta.architecture} from {args.source} {args.model}; padding {meta.padding}, "
          f"BN eps {meta.bn_eps:g}, {meta.num_classes} classes; eval {pre.input_size}px, crop "
          f"{pre.crop_fraction:.3f}, {pre.interpolation}, mean {pre.mean}, std {pre.std}")
    print(f"use it: effnet.create_model({meta.architecture!r}, weights={str(args.dst)!r})")
    return 0
