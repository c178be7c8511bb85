"""The training config: recipe defaults, YAML/TOML files, dotted overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from effnet.train.config import Config, ConfigError
from effnet.train.config_files import load_config, save_config


def test_defaults_are_the_papers_recipe() -> None:
    c = Config()
    assert (c.optim.name, c.optim.decay, c.optim.momentum, c.optim.eps) == ("rmsprop_tf", 0.9, 0.9, 1e-3)
    assert (c.optim.lr_per_256, c.optim.weight_decay) == (0.016, 1e-5)
    assert (c.schedule.name, c.schedule.warmup_epochs, c.schedule.decay_epochs, c.schedule.decay_rate) == \
        ("tf_exponential", 5.0, 2.4, 0.97)
    assert (c.train.label_smoothing, c.train.ema_decay, c.train.epochs) == (0.1, 0.9999, 350)
    assert (c.data.scale_min, c.data.crop, c.data.hflip) == (0.08, "random_resized", 0.5)


def test_yaml_and_toml_with_overrides(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("model:\n  name: fmnist_s0\ntrain:\n  epochs: 3\n  batch_size: 64\n")
    (tmp_path / "a.toml").write_text('[model]\nname = "fmnist_s0"\n[train]\nepochs = 3\nbatch_size = 64\n')
    for name in ("a.yaml", "a.toml"):
        c = load_config(tmp_path / name, ["train.epochs=5", "optim.lr=0.1", "data.mean=[0.5]", "data.std=[0.25]",
                                          "data.auto_augment=randaugment", "model.weights=null"])
        assert (c.model.name, c.train.epochs, c.train.batch_size, c.optim.lr) == ("fmnist_s0", 5, 64, 0.1)
        assert c.data.mean == [0.5] and c.data.auto_augment == "randaugment" and c.model.weights is None
    c = load_config(None, ["optim.weight_decay=1"])  # an int where a float is expected is fine
    assert load_config(None, ["optim.eps=1e-3"]).optim.eps == 1e-3  # YAML 1.1 reads 1e-3 as a string
    assert c.optim.weight_decay == 1.0 and isinstance(c.optim.weight_decay, float)


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    c = load_config(None, ["train.epochs=7", "data.minival=0.1"])
    save_config(c, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == c


@pytest.mark.parametrize("override,message", [
    ("train.epoch=3", "unknown key train.epoch. Did you mean epochs"),
    ("trian.epochs=3", "unknown config section 'trian'. Did you mean train"),
    ("train.epochs=three", "train.epochs must be an integer"),
    ("train.epochs=0", "train.epochs must be >= 1"),
    ("optim.name=adam", "optim.name must be one of rmsprop_tf, sgd, adamw"),
    ("train.amp=fp8", "train.amp must be one of"),
    ("data.hflip=2", "data.hflip must be >= 0.0 and <= 1.0"),
    ("data.channels=2", "data.channels must be one of 1, 3"),
    ("model.weights=lite0.official", "pretrained weights expect RGB input: set data.channels=3"),
    ("data.mean=[0.5]", "set data.mean and data.std together"),
    ("epochs=3", "must look like section.key=value"),
    ("train.ema_warmup=maybe", "must be true or false"),
])
def test_errors_name_the_key_and_the_fix(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_config(None, [override])


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"\.yaml, \.yml or \.toml"):
        load_config(tmp_path / "c.json")
    (tmp_path / "bad.yaml").write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(tmp_path / "bad.yaml")


def test_shipped_configs_are_valid() -> None:
    configs = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))
    assert configs, "configs/*.yaml should ship example configs"
    for path in configs:
        load_config(path)
