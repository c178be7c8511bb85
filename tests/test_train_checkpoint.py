"""Checkpoints: atomic writes, weights_only loading, RNG states as tensors."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from effnet.train import checkpoint as ck


def test_rng_states_survive_a_weights_only_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    ck.save_checkpoint(tmp_path / "c.pt", {"rng": ck.rng_state(), "epoch": 4, "config": {"a": None, "b": [1.5]}})
    expected = (torch.rand(4), np.random.rand(3), [random.random() for _ in range(3)])
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    loaded = ck.load_checkpoint(tmp_path / "c.pt")  # weights_only=True inside
    ck.set_rng_state(loaded["rng"])
    assert torch.equal(torch.rand(4), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert [random.random() for _ in range(3)] == expected[2]
    assert loaded["epoch"] == 4 and loaded["config"] == {"a": None, "b": [1.5]}


def test_a_failed_write_leaves_the_old_checkpoint_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.pt"
    ck.save_checkpoint(path, {"epoch": 1})
    before = path.read_bytes()

    def broken_save(obj, f):  # type: ignore[no-untyped-def]
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ck.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ck.save_checkpoint(path, {"epoch": 2})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_loading_refuses_pickled_code_and_speaks_to_the_user(tmp_path: Path) -> None:
    torch.save({"f": Path("x")}, tmp_path / "evil.pt")  # a non-tensor object: rejected by weights_only
    with pytest.raises(ValueError, match=r"refused: loading .*evil.pt would run code \(pathlib"):
        ck.load_checkpoint(tmp_path / "evil.pt")
    ck.save_checkpoint(tmp_path / "partial.pt", {"epoch": 1})
    with pytest.raises(ValueError, match="cannot be resumed: it is not a last.pt of `effnet train`"):
        ck.check_resumable(ck.load_checkpoint(tmp_path / "partial.pt"), tmp_path / "partial.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        ck.load_checkpoint(tmp_path / "missing.pt")
