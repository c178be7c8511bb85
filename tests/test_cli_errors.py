"""Bad input gets one line and exit status 2, never a traceback: each case below used to end
in a KeyError, AttributeError or OverflowError traceback, or to do the wrong thing silently."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

import effnet
from effnet.cli import main
from effnet.deploy import export_model
from effnet.train.config import ConfigError
from effnet.train.config_files import read_file
from effnet.weights import WeightsError


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], *expected: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith(f"effnet {argv[0]}: error:"), err
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture()
def text_weights(tmp_path: Path) -> Path:
    path = tmp_path / "weights.pth"
    path.write_text("these are my notes, not weights\n")
    return path


class Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo this must never run",))


@pytest.fixture()
def evil_pickle(tmp_path: Path) -> Path:
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": Evil()}, path)
    return path


def test_a_text_file_as_weights_in_predict(capsys, text_weights: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _one_line_error(capsys, ["predict", str(tmp_path), "--model", "efficientnet_lite0", "--weights", str(text_weights)],
                    "not a readable PyTorch weights file")


def test_a_text_file_as_weights_in_convert(capsys, text_weights: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _one_line_error(capsys, ["convert", str(text_weights), str(tmp_path / "out.safetensors"), "--from", "timm",
                             "--model", "efficientnet_b0"], "not a readable PyTorch weights file")


def test_a_text_file_as_weights_in_create_model(text_weights: Path) -> None:
    with pytest.raises(WeightsError, match="not a readable PyTorch weights file"):
        effnet.create_model("efficientnet_lite0", weights=text_weights)
    fake_safetensors = text_weights.with_suffix(".safetensors")
    fake_safetensors.write_text("also text\n")
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        effnet.create_model("efficientnet_lite0", weights=fake_safetensors)


def test_eval_of_a_torch_file_that_is_not_a_run(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    weights = tmp_path / "plain.pth"
    torch.save(effnet.create_model("efficientnet_lite0").state_dict(), weights)
    _one_line_error(capsys, ["eval", str(weights)], "is not an effnet run")


@pytest.mark.parametrize("text", ["- data\n- model\n", "just a string\n", "42\n"])
def test_a_config_that_is_not_a_mapping(capsys, tmp_path: Path, text: str) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "config.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError, match="must hold a mapping of sections"):
        read_file(config)
    _one_line_error(capsys, ["train", "--config", str(config)], "must hold a mapping of sections")


def test_scale_by_an_absurd_phi(capsys) -> None:  # type: ignore[no-untyped-def]
    _one_line_error(capsys, ["scale", "efficientnet_b0", "--phi", "1e9"], "phi=1e+09 is out of range")
    _one_line_error(capsys, ["scale", "efficientnet_b0", "--width", "1e9"], "width multiplier 1e+09 is out of range")


def test_export_at_resolution_zero_is_refused_not_exported_at_224(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "m.onnx"
    _one_line_error(capsys, ["export", "efficientnet_lite0", "--resolution", "0", "--output", str(out)],
                    "--resolution", "must be at least 1")
    assert not out.exists()
    with pytest.raises(ValueError, match="resolution must be a positive number of pixels"):
        export_model(effnet.create_model("efficientnet_lite0"), out, resolution=0)


def test_show_at_a_negative_resolution(capsys) -> None:  # type: ignore[no-untyped-def]
    _one_line_error(capsys, ["show", "efficientnet_b0", "--resolution", "-3"], "must be at least 1")
    with pytest.raises(effnet.SpecError, match="resolution must be a positive number of pixels"):
        effnet.count(effnet.get_spec("efficientnet_b0"), -3)


def test_a_malicious_pickle_is_refused_as_code_not_called_damaged(capsys, evil_pickle: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    line = _one_line_error(capsys, ["predict", str(tmp_path), "--model", "efficientnet_lite0", "--weights",
                                    str(evil_pickle)], "refused:", "would run code")
    assert "damaged" not in line and "posix.system" in line
    with pytest.raises(WeightsError, match=r"refused: .* would run code"):
        effnet.create_model("efficientnet_lite0", weights=evil_pickle)
    raw = tmp_path / "raw.pkl.pt"  # a plain pickle, not even torch.save's format
    raw.write_bytes(pickle.dumps(Evil(), protocol=4))
    with pytest.raises(WeightsError, match="not a readable torch.save file .* refuses to unpickle"):
        effnet.create_model("efficientnet_lite0", weights=raw)


def test_no_model_and_no_weights_says_what_to_give(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _one_line_error(capsys, ["predict", str(tmp_path)], "give --model NAME", "--weights")
    _one_line_error(capsys, ["export", "--output", str(tmp_path / "m.onnx")], "give --model NAME")


def test_weights_that_do_not_fit_are_one_line(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    weights = tmp_path / "b0.pth"
    torch.save(effnet.create_model("efficientnet_b0").state_dict(), weights)
    _one_line_error(capsys, ["predict", str(tmp_path), "--model", "efficientnet_lite0", "--weights", str(weights)],
                    "do not fit")
