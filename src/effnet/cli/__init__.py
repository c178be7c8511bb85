"""The ``effnet`` command: a thin face over the Python API.

Each subcommand lives in its own module of this package with ``add_parser(subparsers)``, which registers
the parser and sets ``func`` (args -> exit status). Errors that speak to the user
(``EffnetUserError`` and friends) print one line, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from typing import NoReturn

from ..spec import SpecError
from ..zoo import UnknownModelError
from ._names import old_name_note
from ._recipe import RecipeError, expand_recipe

# `effnet --help` lists these first, then any other subcommand module of this package.
ORDER = ("models", "show", "scale", "predict", "cam", "convert", "train", "eval", "export", "bench", "serve", "lab", "nas")


def command_names() -> list[str]:
    found = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    return sorted(found, key=lambda name: (ORDER.index(name) if name in ORDER else len(ORDER), name))


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: what was wrong and where the help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="effnet", description="EfficientNet as data: models, scaling, weights, training, experiments.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    for name in command_names():
        importlib.import_module(f"{__name__}.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(expand_recipe(parser, words))
    except SystemExit as exit_:  # a usage error (one line, status 2) or --help (status 0)
        return int(exit_.code or 0)
    except RecipeError as error:
        print(f"effnet {' '.join(words[:2])}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    note = old_name_note(args)
    if note:
        print(note, file=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except (SpecError, UnknownModelError, FileNotFoundError, ValueError, ImportError) as error:
        # One line: a multi-line message (weights that do not fit list their keys) is joined.
        print(f"effnet {args.command}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"effnet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
