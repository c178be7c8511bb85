import json
import subprocess
import sys

import pytest

from effnet.cli import main
from effnet.scaling import compound_coefficients

from .golden import PARAMS, STAGES


def run_json(capsys, *argv):
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_models_lists_every_model_with_paper_numbers(capsys):
    records = {r["name"]: r for r in run_json(capsys, "models")}
    for name, params in PARAMS.items():
        assert records[name]["params"] == params
    assert records["efficientnet_b0"]["paper_top1"] == 77.1
    assert records["efficientnet_b0"]["paper_flops_b"] == 0.39
    assert records["efficientnet_b7"]["resolution"] == 600


def test_models_table_and_pattern(capsys):
    assert main(["models", "efficientnet_lite*"]) == 0
    out = capsys.readouterr().out
    assert "efficientnet_lite4" in out and "13,006,568" in out and "efficientnet_b0" not in out


def test_show_is_table_1(capsys):
    data = run_json(capsys, "show", "efficientnet_b2")
    rows = data["stages"]
    assert [r["operator"] for r in rows][:3] == ["Conv3x3", "MBConv1, k3x3", "MBConv6, k3x3"]
    head, table = STAGES["efficientnet_b2"]
    assert " ".join(f"{r['channels']}x{r['layers']}" for r in rows[1:-1]) == table
    assert [r["resolution"][0] for r in rows] == [260, 130, 130, 65, 33, 17, 17, 9, 9]
    assert sum(r["params"] for r in rows) == PARAMS["efficientnet_b2"]


def test_scale_reports_growth_against_two_to_phi(capsys):
    data = run_json(capsys, "scale", "efficientnet_b0", "--phi", "2")
    m = compound_coefficients(2)
    assert data["multipliers"] == pytest.approx({"width": m.width, "depth": m.depth, "resolution": m.resolution})
    assert data["resolution"] == [224, 296]
    assert data["two_to_phi"] == 4
    assert data["madds_growth"] == pytest.approx(data["madds"][1] / data["madds"][0])
    assert 3 < data["madds_growth"] < 6


def test_scale_with_explicit_multipliers(capsys):
    data = run_json(capsys, "scale", "resnet50", "--width", "2")
    assert data["multipliers"]["width"] == 2 and data["resolution"] == [224, 224]
    assert data["params"][1] > 3 * data["params"][0]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["show", "efficientnet_b9"], "Did you mean efficientnet_b8"),
        (["scale", "efficientnet_b0"], "nothing to scale"),
        (["scale", "efficientnet_b0", "--phi", "1", "--width", "2"], "not both"),
        (["scale", "efficientnet_b0", "--phi", "1", "--alpha", "3"], "within 0.1 of 2"),
        (["models", "nothing*"], "no model matches"),
    ],
)
def test_user_errors_are_one_line(capsys, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and err.count("\n") == 1


def test_python_dash_m():
    result = subprocess.run([sys.executable, "-m", "effnet", "show", "mobilenet_v2"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "3,504,872" in result.stdout
