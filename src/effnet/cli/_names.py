"""The experiment commands' names: the laboratory's under `effnet lab`, the architecture search's
under `effnet nas`. The names they had before (`effnet experiment scaling`, `effnet
search-coefficients`, `effnet search-baseline`, `effnet search-retrain`, ...) keep working,
hidden from `effnet --help`, and say their new name on stderr when used."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from ._recipe import add_recipe_option

Configure = Callable[[argparse.ArgumentParser], None]


def add_group(subparsers: argparse._SubParsersAction, name: str, help: str,
              commands: Sequence[tuple[str, str, Configure]]) -> None:
    """`effnet NAME SUBCOMMAND`: each subcommand configured by its module, with --recipe."""
    group = subparsers.add_parser(name, help=help, description=help)
    kinds = group.add_subparsers(dest=name, metavar="SUBCOMMAND", required=True, parser_class=type(group))
    for sub, sub_help, configure in commands:
        p = kinds.add_parser(sub, help=sub_help, description=sub_help)
        configure(p)
        add_recipe_option(p, f"{name} {sub}")


def add_old_name(subparsers: argparse._SubParsersAction, old: str, new: str, configure: Configure,
                 aliases: Sequence[str] = (), group: str = "") -> argparse.ArgumentParser:
    """``old`` (under the old ``group`` command, if any) as a hidden command that does what
    `effnet NEW` does and says so."""
    p = subparsers.add_parser(old, aliases=list(aliases), description=f"The old name of `effnet {new}`; it keeps working.")
    hide(subparsers, [old, *aliases])
    configure(p)
    add_recipe_option(p, new)
    p.set_defaults(old_name=f"{group} {old}".strip(), new_name=new)
    return p


def hide(subparsers: argparse._SubParsersAction, names: Sequence[str]) -> None:
    # argparse lists every sub-parser made with help=; one made without it is left out of the
    # listing, but its pseudo-action may still be there on some Python versions: drop it.
    subparsers._choices_actions = [a for a in subparsers._choices_actions if a.dest not in names]


def old_name_note(args: argparse.Namespace) -> str | None:
    if getattr(args, "old_name", None) is None:
        return None
    return f"effnet: `effnet {args.old_name}` is the old name of `effnet {args.new_name}`; both work"
