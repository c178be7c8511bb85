"""Preparing a training run: its folder (new, or the one being resumed), the model and data
(``build.py``) placed on their device (``placement.py``), the optimiser, schedule and loss
around them, and the position to start from: the beginning, or where ``last.pt`` left off.

Exact resume rests on the seeding here: the model is built from the same seed on every rank,
augmentation draws from a per-rank seed, and a resumed run puts every RNG state back.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from datetime import datetime, UTC
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from rich.console import Console
from torch import nn

from ..spec import NetworkSpec
from ..weights import RunFolder
from ..zoo import get_spec
from .build import build_run_model
from .checkpoint import Position, check_resumable, checkpoint_payload, load_checkpoint, position_from, save_checkpoint, set_rng_state
from .config import Config, ConfigError
from .config_files import save_config
from .data import RunData
from .distributed import DistInfo
from .engine import Engine
from .optim import build_optimizer
from .placement import place_model, process_settings
from .progress_bar import console
from .qat import prepare_qat
from .schedule import build_scheduler, scaled_lr

NO_MINIVAL_WARNING = ("warning: data.minival=0: no minival split is held out, so each epoch is validated on the test "
                      "set and the best epoch is chosen by its test top-1 (an optimistic number; no separate final "
                      "test runs)")


@dataclass
class TrainingRun:
    """Everything a run's epochs work on, prepared."""

    config: Config
    info: DistInfo
    device: torch.device
    folder: RunFolder
    data: RunData
    model: nn.Module                 # the network (its parameters are the optimiser's)
    forward_model: nn.Module         # what runs the forward pass: the model, its DDP wrapper or compiled form
    ema: nn.Module | None
    engine: Engine
    position: Position
    out: Console | None              # the main process's console; None on the other ranks

    @property
    def main(self) -> bool:
        return self.info.is_main

    def say(self, message: str) -> None:
        if self.out is not None:
            self.out.print(message)

    def save_checkpoint(self) -> None:
        """Write ``last.pt`` at the current position."""
        e = self.engine
        save_checkpoint(self.folder.last, checkpoint_payload(
            model=self.model, optimizer=e.optimizer, scheduler=e.scheduler, scaler=e.scaler, ema=self.ema,
            position=self.position, config=self.config.to_dict(), classes=self.data.classes,
            preprocessing=self.data.preprocessing))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def prepare_run(config: Config, info: DistInfo, resume: str | os.PathLike[str] | None,
                given_spec: NetworkSpec | None) -> TrainingRun:
    """A run ready for its first (or next) epoch; the main process has written
    ``RUN/config.yaml`` and said what the run will do."""
    t = config.train
    device = process_settings(config, info)
    if config.quant.qat and info.enabled:
        raise ConfigError("quant.qat=true trains the exported graph in one process: run it without torchrun")
    resume_point = RunFolder.resume_point(resume) if resume is not None else None
    folder = resume_point[0] if resume_point is not None else _new_folder(config, info, _model_name(config, given_spec))
    out = console() if info.is_main else None

    # Same seed on every rank for the model (DDP also broadcasts rank 0's weights).
    seed_everything(t.seed)
    built = build_run_model(config, info, given_spec)
    model, forward_model, ema = place_model(built.model, config, info, device, out)
    if config.quant.qat:
        model = forward_model = prepare_qat(model, built.data.image_size, per_channel=config.quant.per_channel)
    # Augmentation differs per rank; everything else above was seeded identically.
    seed_everything(t.seed + info.rank)
    engine, lr = _build_engine(config, model, forward_model, ema, built.data, device, info)
    run = TrainingRun(config, info, device, folder, built.data, model, forward_model, ema, engine, Position(), out)
    if resume_point is not None:
        checkpoint = load_checkpoint(resume_point[1], map_location=device)
        check_resumable(checkpoint, resume_point[1])
        run.position = _restore(engine, checkpoint)
        p = run.position
        run.say(f"resuming {folder.path} at epoch {p.epoch + 1}, batch {p.batches_done} (step {p.global_step})")
    if run.main:
        folder.path.mkdir(parents=True, exist_ok=True)
        save_config(config, folder.config)
        _announce(run, lr)
    return run


def _model_name(config: Config, given_spec: NetworkSpec | None) -> str:
    m = config.model
    if given_spec is not None:
        return given_spec.name
    return get_spec(m.spec).name if m.spec else (m.name or Path(str(m.weights)).stem)


def _new_folder(config: Config, info: DistInfo, model_name: str) -> RunFolder:
    name = config.run.name or RunFolder.default_name(model_name, datetime.now(UTC))
    if info.enabled:  # every rank must agree on rank 0's timestamp
        box = [name]
        dist.broadcast_object_list(box, src=0)
        name = box[0]
    return RunFolder.under(config.run.out_dir, name)


def _build_engine(config: Config, model: nn.Module, forward_model: nn.Module, ema: nn.Module | None, data: RunData,
                  device: torch.device, info: DistInfo) -> tuple[Engine, float]:
    """The optimiser, schedule, loss and grad scaler around the model; and the learning rate."""
    m, o, s, t = config.model, config.optim, config.schedule, config.train
    lr = o.lr if o.lr is not None else scaled_lr(o.lr_per_256, t.batch_size)
    optimizer = build_optimizer(o.name, model, lr, weight_decay=o.weight_decay, momentum=o.momentum,
                                decay=o.decay, eps=o.eps, betas=tuple(o.betas))  # type: ignore[arg-type]
    scheduler = build_scheduler(optimizer, s.name, steps_per_epoch=len(data.train_loader), epochs=t.epochs,
                                warmup_epochs=s.warmup_epochs, decay_epochs=s.decay_epochs,
                                decay_rate=s.decay_rate, min_lr_ratio=s.min_lr_ratio)
    engine = Engine(model, forward_model, nn.CrossEntropyLoss(label_smoothing=t.label_smoothing), optimizer,
                    scheduler, torch.amp.GradScaler(device.type, enabled=t.amp == "fp16"), ema, device, info,
                    amp=t.amp, channels_last=m.channels_last, clip_grad_norm=o.clip_grad_norm,
                    batch_augment=data.batch_augment)
    return engine, lr


def _restore(engine: Engine, ckpt: dict[str, Any]) -> Position:
    """Put every piece of the engine back where ``last.pt`` left it."""
    engine.model.load_state_dict(ckpt["model"])
    engine.optimizer.load_state_dict(ckpt["optimizer"])
    fresh = [dict(f.__dict__) for f in engine.scheduler.lr_lambdas]
    engine.scheduler.load_state_dict(ckpt["scheduler"])
    for factor, settings in zip(engine.scheduler.lr_lambdas, fresh):
        # The step count comes from the checkpoint, the schedule's shape from the config
        # (resuming with more train.epochs stretches a cosine schedule).
        factor.__dict__.update(settings)
    engine.scaler.load_state_dict(ckpt["scaler"])
    if engine.ema is not None and ckpt.get("ema") is not None:
        engine.ema.load_state_dict(ckpt["ema"])
    set_rng_state(ckpt["rng"])
    return position_from(ckpt)


def _announce(run: TrainingRun, lr: float) -> None:
    """What the run will do, in one line; and a warning when it selects on the test set."""
    t, data, info = run.config.train, run.data, run.info
    selection = (f"best of {data.minival:,} minival images held out of train" if data.minival
                 else "best on the test set (data.minival=0)")
    run.say(f"run folder {run.folder.path}: {run.model.spec.name}, {len(data.classes)} classes, {data.image_size} px, "
            f"{len(data.train_loader)} steps/epoch x {t.epochs} epochs, batch {t.batch_size} "
            f"({info.world_size} process{'es' if info.enabled else ''}), lr {lr:g}, {run.config.optim.name}; "
            f"model selection: {selection}" + ("; quantisation-aware (int8, XNNPACK)" if run.config.quant.qat else ""))
    if not data.minival:
        run.say(f"[yellow]{NO_MINIVAL_WARNING}[/yellow]")


__all__ = ["NO_MINIVAL_WARNING", "TrainingRun", "prepare_run", "seed_everything"]
