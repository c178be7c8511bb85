"""`effnet lab` and `effnet nas`: recipes as files, and the old command names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from effnet.cli import build_parser, main
from effnet.cli._recipe import expand_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "configs").glob("lab/*.yaml")) + sorted((ROOT / "configs").glob("nas/*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_committed_recipe_is_read_by_its_command(recipe):
    """Each recipe names its command, holds only options that command takes, says in its
    opening comment what it reproduces (a path that exists) and how to run it."""
    data = yaml.safe_load(recipe.read_text())
    parser = build_parser()
    words = [*data["command"].split(), "--recipe", str(recipe)]
    args = parser.parse_args(expand_recipe(parser, words))
    assert str(args.out) == data["out"]
    text = recipe.read_text()
    reproduces = re.search(r"Reproduces: (\S+?)[,\s]", text)
    assert reproduces and (ROOT / reproduces.group(1)).exists(), "the comment must name the result it reproduces"
    assert f"effnet {data['command']} --recipe configs/{recipe.parent.name}/{recipe.name}" in text


def _recipe(tmp_path: Path, **options: object) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(options))
    return path


def test_options_on_the_command_line_win_over_the_recipe(tmp_path):
    recipe = _recipe(tmp_path, command="lab scaling", base="mobilenet_v2", seeds=2, phis=[1, 2], quick=True,
                     out=str(tmp_path / "a"))
    parser = build_parser()
    args = parser.parse_args(expand_recipe(parser, ["lab", "scaling", "resnet50", "--recipe", str(recipe),
                                                    "--seeds", "5"]))
    assert (args.base, args.seeds, args.phis, args.quick) == ("resnet50", 5, [1.0, 2.0], True)


@pytest.mark.parametrize(("options", "message"), [
    ({"command": "nas search", "out": "x"}, "is for `effnet nas search`, not `effnet lab scaling`"),
    ({"command": "lab scaling", "out": "x", "epochz": 3}, "`epochz` is not an option of `effnet lab scaling`"),
    ({"out": "x"}, "not a mapping with a `command:`"),
])
def test_a_bad_recipe_is_one_line_of_error(tmp_path, capsys, options, message):
    assert main(["lab", "scaling", "--recipe", str(_recipe(tmp_path, **options))]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("old", "new"), [
    (["experiment", "scaling"], ["lab", "scaling"]), (["experiment", "width-grid"], ["lab", "width-grid"]),
    (["search-coefficients"], ["lab", "coefficients"]), (["search-baseline"], ["nas", "search"]),
    (["search"], ["nas", "search"]), (["search-retrain", "x"], ["nas", "retrain", "x"]),
    (["search-proxy-check", "x"], ["nas", "proxy-check", "x"]),
    (["search-benchmark", "nas-bench-graph"], ["nas", "benchmark", "nas-bench-graph"]),
])
def test_old_names_do_what_the_new_ones_do(old, new):
    parser = build_parser()
    was = parser.parse_args([*old, "--out", "o"])
    now = parser.parse_args([*new, "--out", "o"])
    assert was.func is now.func and was.new_name == " ".join(n for n in new if n != "x" and n != "nas-bench-graph")
    assert not hasattr(now, "old_name") or now.old_name is None
    listed = re.findall(r"^    (\S+)", parser.format_help(), re.M)  # the commands `effnet --help` lists
    assert old[0] not in listed and new[0] in listed


@pytest.mark.slow
def test_a_recipe_runs_a_real_experiment_and_an_old_name_says_its_new_one(tmp_path, capsys, fashion_mnist):
    out = tmp_path / "exp"
    recipe = _recipe(tmp_path, command="lab scaling", resolution=10, phis=[1], seeds=1, epochs=1, train_subset=256,
                     minival=128, methods=["compound"], workers=1, out=str(out))
    assert main(["lab", "scaling", "--recipe", str(recipe)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {p["method"] for p in summary["points"]} == {"base", "compound"} and not summary["failed"]
    capsys.readouterr()
    assert main(["experiment", "scaling", "--recipe", str(recipe)]) == 0  # journaled: nothing trains again
    assert "`effnet experiment scaling` is the old name of `effnet lab scaling`" in capsys.readouterr().err
