"""Recipes: an experiment's options kept in a YAML file that says what it reproduces
(big_vision's config-as-file), read by every `effnet lab` and `effnet nas` command:

    effnet lab scaling --recipe configs/lab/table3_mobilenet_v2.yaml [--seeds 3 ...]

A recipe names its command and holds its options under their long names (`phis: [1, 2]` is
`--phis 1 2`, `quick: true` is `--quick`, `base: mobilenet_v2` the positional); options on the
command line win over the recipe's. The file's opening comment says what it reproduces and
where the result lives."""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import yaml


class RecipeError(ValueError):
    """A recipe that cannot be read, is for another command, or holds unknown options."""


def add_recipe_option(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("--recipe", type=Path, default=None, metavar="YAML",
                   help="take the options from a recipe file (configs/lab, configs/nas); options given here win")
    p.set_defaults(recipe_command=command)


def read_recipe(path: str | Path, command: str) -> dict[str, object]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise RecipeError(f"recipe {path}: {' '.join(str(error).split())}") from None
    if not isinstance(data, dict) or not isinstance(data.get("command"), str):
        raise RecipeError(f"recipe {path}: not a mapping with a `command:` (e.g. `command: {command}`)")
    if data["command"] != command:
        raise RecipeError(f"recipe {path} is for `effnet {data['command']}`, not `effnet {command}`")
    return data


def recipe_words(data: dict[str, object], parser: argparse.ArgumentParser, path: str | Path) -> tuple[list[str], list[str]]:
    """The recipe as (positional words, option words) for ``parser``; unknown keys are refused."""
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "recipe")}  # argparse has no public map
    positional: list[str] = []
    options: list[str] = []
    for key, value in data.items():
        if key == "command":
            continue
        action = actions.get(str(key).replace("-", "_"))
        if action is None:
            raise RecipeError(f"recipe {path}: `{key}` is not an option of `effnet {data['command']}` "
                              f"(its options: {', '.join(sorted(actions))})")
        values = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        if not action.option_strings:
            positional += values
        elif isinstance(action, argparse._StoreTrueAction):  # a flag: present or not
            options += [action.option_strings[-1]] if value else []
        else:
            options += [action.option_strings[-1], *values]
    return positional, options


def expand_recipe(parser: argparse.ArgumentParser, words: Sequence[str]) -> list[str]:
    """``words`` with `--recipe FILE` replaced by the recipe's options, placed before the user's
    own so that those win (argparse keeps an option's last value)."""
    words = list(words)
    if "--recipe" not in words:
        return words
    leaf, depth = command_parser(parser, words)
    command = leaf.get_default("recipe_command")
    if not isinstance(command, str):
        return words  # not a command that takes recipes: argparse will say so
    at = words.index("--recipe")
    if at + 1 >= len(words):
        raise RecipeError("--recipe needs a YAML file")
    path = words[at + 1]
    user = words[depth:at] + words[at + 2:]
    positional, options = recipe_words(read_recipe(path, command), leaf, path)
    if positional and _has_positional(leaf, user):  # a network named on the command line replaces the recipe's
        positional = []
    return words[:depth] + positional + options + user


def command_parser(parser: argparse.ArgumentParser, words: Sequence[str]) -> tuple[argparse.ArgumentParser, int]:
    """The sub-parser the words name (`lab scaling`, `experiment scaling`, ...) and how many
    words its name takes."""
    at = 0
    while at < len(words):
        choices = next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if not choices or words[at] not in choices:
            break
        parser = choices[words[at]]
        at += 1
    return parser, at


def _has_positional(parser: argparse.ArgumentParser, words: list[str]) -> bool:
    with _lenient(parser) as positionals:
        found, _ = parser.parse_known_args(words)
    return any(hasattr(found, dest) for dest in positionals)


@contextmanager
def _lenient(parser: argparse.ArgumentParser) -> Iterator[list[str]]:
    """The parser with nothing required and positionals left unset when absent, for a look at
    what the user typed; restored afterwards."""
    saved = [(a, a.required, a.default, a.choices) for a in parser._actions]
    positionals = [a.dest for a in parser._actions if not a.option_strings]
    try:
        for action in parser._actions:
            action.required = False
            if not action.option_strings:
                action.default, action.choices = argparse.SUPPRESS, None
        yield positionals
    finally:
        for action, required, default, choices in saved:
            action.required, action.default, action.choices = required, default, choices
