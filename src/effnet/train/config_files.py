"""A training config from files and ``section.key=value`` overrides (defaults <- file <-
overrides), each value checked against its key's type before the whole is validated; and the
config a run folder was trained with.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from ..weights.run_folder import CONFIG_FILE, LAST_CHECKPOINT, MODEL_FILE, RunFolder
from .config import Config, ConfigError, did_you_mean, validate


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against a field's type hint; ints are accepted for floats."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(key, value, arg)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if errors else f"{key} cannot be {value!r}")
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return [_coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-5 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    return value


def from_dict(data: dict[str, Any]) -> Config:
    """Build and validate a Config from nested plain data (as read from YAML/TOML)."""
    config = _typed(data)
    validate(config)
    return config


def _typed(data: dict[str, Any]) -> Config:
    """A Config from nested plain data, each value checked against its key's type (the checks
    across keys are :func:`validate`'s)."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {type(data).__name__}")
    sections = {f.name: f for f in dataclasses.fields(Config)}
    built = {}
    for section_name, values in data.items():
        if section_name not in sections:
            raise ConfigError(f"unknown config section {section_name!r}.{did_you_mean(section_name, sections)} "
                              f"Sections: {', '.join(sections)}")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"config section {section_name!r} must be a mapping of keys, got {values!r}")
        cls = sections[section_name].default_factory()  # type: ignore[misc]
        hints = typing.get_type_hints(type(cls))
        kwargs = {}
        for key, value in values.items():
            if key not in hints:
                raise ConfigError(f"unknown key {section_name}.{key}.{did_you_mean(key, hints)} "
                                  f"Keys of {section_name}: {', '.join(hints)}")
            kwargs[key] = _coerce(f"{section_name}.{key}", value, hints[key])
        built[section_name] = dataclasses.replace(cls, **kwargs)
    return Config(**built)


def read_file(path: str | Path) -> dict[str, Any]:
    """Nested plain data from a ``.yaml``/``.yml`` or ``.toml`` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        elif path.suffix == ".toml":
            data = tomllib.loads(text)
        else:
            raise ConfigError(f"config file {path} must end in .yaml, .yml or .toml")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot parse {path}: {' '.join(str(error).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections (data:, model:, train: ...), not a "
                          f"{type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: typing.Sequence[str]) -> dict[str, Any]:
    """``section.key=value`` strings applied to nested data; values are read as YAML
    scalars (``true``, ``null``, ``0.5``, ``[0.5, 0.5]``)."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {type(data).__name__}")
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"override {item!r} must look like section.key=value, e.g. train.epochs=10")
        section, _, name = key.strip().partition(".")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        data.setdefault(section, {})
        if not isinstance(data[section], dict):
            raise ConfigError(f"override {item!r}: {section} is not a section")
        data[section][name] = value
    return data


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Defaults <- file (if given) <- overrides, validated."""
    data = read_file(path) if path is not None else {}
    return from_dict(apply_overrides(data, overrides))


def config_yaml(config: Config) -> str:
    """The config as YAML, sections and keys in the schema's order."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def save_config(config: Config, path: str | Path) -> None:
    Path(path).write_text(config_yaml(config))


def config_of_run(run: str | os.PathLike[str], provenance: dict[str, Any] | None = None) -> Config:
    """The training config of a run given as its folder or one of its files: RUN/config.yaml,
    else the config recorded in the weights' provenance."""
    folder = RunFolder.of(run)
    if folder.config.is_file():
        return from_dict(read_file(folder.config))
    if provenance and isinstance(provenance.get("config"), dict):
        return from_dict(provenance["config"])
    raise ConfigError(f"{run} is not an effnet run: it records no training config (no {CONFIG_FILE} beside it, none "
                      f"in its metadata). Give a run folder of `effnet train`, its {MODEL_FILE} or its {LAST_CHECKPOINT}")


def load_for_resume(resume: str | os.PathLike[str] | None, path: str | Path | None = None,
                    overrides: typing.Sequence[str] = ()) -> tuple[Config, RunFolder]:
    """The config to continue a run with, and the run's folder. ``resume`` is a run folder or a
    checkpoint in one; None: the folder that ``run.out_dir``/``run.name`` of ``path`` and
    ``overrides`` name. The run continues with the config it started with (RUN/config.yaml)
    unless ``path`` gives one; overrides apply either way (e.g. more ``train.epochs``)."""
    if resume is not None:
        folder, _ = RunFolder.resume_point(resume)
    else:
        # Only the run section is read here; the config the run continues with is validated below.
        named = _typed(apply_overrides(read_file(path) if path is not None else {}, overrides)).run
        if not named.name:
            raise ValueError("--resume without a RUN needs run.name to find the run folder")
        folder = RunFolder.under(named.out_dir, named.name)
    data = read_file(folder.config if path is None else path)
    return from_dict(apply_overrides(data, overrides)), folder




__all__ = ["apply_overrides", "config_of_run", "config_yaml", "from_dict", "load_config", "load_for_resume",
           "read_file", "save_config"]
