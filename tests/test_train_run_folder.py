"""The run folder as one value (names, paths a user gives, what its model says about itself),
a run without a minival split saying so, and a config validated once per run."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from effnet.cli import main as cli_main
from effnet.train import config as config_module
from effnet.train import config_files
from effnet.train.prepare import NO_MINIVAL_WARNING
from effnet.weights import RunFolder, WeightsError, read_weights

from .test_train_loop import tiny_overrides, write_fake_fashion_mnist



def test_a_users_path_resolves_to_its_run_folder(tmp_path: Path) -> None:
    run = RunFolder.under(tmp_path, "b0-run")
    assert run == RunFolder(tmp_path / "b0-run") and run.name == "b0-run"
    assert (run.config.name, run.last.name, run.model.name, run.metrics.name) == \
        ("config.yaml", "last.pt", "model.safetensors", "metrics.jsonl")
    assert RunFolder.default_name("efficientnet_b0", datetime(2024, 5, 6, 7, 8, 9)) == "efficientnet_b0-20240506-070809"
    run.path.mkdir()
    for given in (run.path, run.model, run.last):
        assert RunFolder.of(given) == run
    with pytest.raises(FileNotFoundError, match="nothing to resume: .*last.pt does not exist"):
        RunFolder.resume_point(run.path)
    with pytest.raises(WeightsError, match="not a run folder of `effnet train`"):
        run.trained_model()
    run.last.write_bytes(b"")
    assert RunFolder.resume_point(run.path) == (run, run.last) == RunFolder.resume_point(run.last)
    with pytest.raises(WeightsError, match="has no model.safetensors yet: .*effnet train --resume"):
        run.trained_model()


def test_no_minival_split_is_announced_and_recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch, restore_torch_globals) -> None:  # type: ignore[no-untyped-def]
    data = write_fake_fashion_mnist(tmp_path / "data")
    calls: list[int] = []
    real_validate = config_module.validate

    def counted(config):  # type: ignore[no-untyped-def]
        calls.append(1)
        real_validate(config)

    monkeypatch.setattr(config_module, "validate", counted)
    monkeypatch.setattr(config_files, "validate", counted)
    overrides = [o for o in tiny_overrides(data, tmp_path, "on-test", epochs=1) if not o.startswith("data.minival")]
    assert cli_main(["train", *overrides, "data.minival=0"]) == 0
    assert len(calls) == 1  # loading validated the config; training did not check it again
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning: data.minival=0" in line]
    assert warnings == [NO_MINIVAL_WARNING]
    _, meta = read_weights(tmp_path / "on-test")
    assert meta is not None and meta.provenance["selected_on"] == "test" and meta.provenance["minival_images"] == 0
    assert meta.provenance["test_top1"] is None  # no separate final test: the test set did the selecting

    assert cli_main(["train", *tiny_overrides(data, tmp_path, "on-minival", epochs=1)]) == 0
    assert "warning: data.minival=0" not in capsys.readouterr().err
