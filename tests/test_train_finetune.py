"""Fine-tuning from pretrained weights: a new head for the data's classes, the weights' own
normalisation, and a backbone that stays frozen for the first epochs."""

from __future__ import annotations

from pathlib import Path

import torch

from effnet.train.checkpoint import load_checkpoint
from effnet.train.config_files import load_config
from effnet.train.loop import train

from .lite import lite0_pretrained
from .test_train_loop import tiny_overrides, write_fake_fashion_mnist


def pretrained_lite0():  # type: ignore[no-untyped-def]
    return lite0_pretrained()


def test_frozen_backbone_then_unfrozen(tmp_path: Path, restore_torch_globals) -> None:  # type: ignore[no-untyped-def]
    pretrained = pretrained_lite0().state_dict()
    data = write_fake_fashion_mnist(tmp_path / "data", n_train=32, n_test=16, size=16)
    overrides = [o for o in tiny_overrides(data, tmp_path, "ft", epochs=1) if not o.startswith(("model.", "data.image"))]
    overrides += ["model.name=efficientnet_lite0", "model.weights=lite0.official", "model.freeze_backbone_epochs=1",
                  "data.channels=3", "data.image_size=16", "optim.lr=0.01"]
    result = train(load_config(None, overrides))
    first = load_checkpoint(result.run_dir / "last.pt")
    assert first["model"]["classifier.weight"].shape == (10, 1280)  # a new head for 10 classes
    assert tuple(first["preprocessing"]["mean"]) == (0.5, 0.5, 0.5)  # the Lite weights' own normalisation
    backbone = [k for k in pretrained if not k.startswith("classifier.") and pretrained[k].is_floating_point()
                and "running" not in k]
    assert backbone and all(torch.equal(first["model"][k], pretrained[k]) for k in backbone)  # frozen
    # Epoch 2: the backbone trains too.
    train(load_config(None, overrides + ["train.epochs=2"]), resume=result.run_dir)
    second = load_checkpoint(result.run_dir / "last.pt")
    assert any(not torch.equal(second["model"][k], pretrained[k]) for k in backbone)
