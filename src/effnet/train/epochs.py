"""Running the epochs of a prepared run: progressive learning's stages, one epoch of steps
(``engine.py``), its record and validation (``selection.py``), ``last.pt`` after every epoch
and the metrics files, until the last epoch, SIGTERM or the time limit.

SIGTERM saves ``last.pt`` at the current step and stops; the time limit ends the epoch in
progress early, validates and saves it as a partial epoch, and stops.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .build import set_backbone_frozen
from .checkpoint import EMPTY_EPOCH
from .data import stage_transform
from .distributed import DistInfo, all_reduce_sum, barrier
from .metrics import MetricsWriter
from .prepare import TrainingRun
from .progress_bar import EpochProgress
from .progressive import BatchMix, Stage, plan, set_dropout, stage_of
from .qat import apply_freezes
from .selection import save_selected, score_epoch


class _StopOnSigterm:
    """Turns SIGTERM into a flag the loop checks after every step (main thread only)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _StopOnSigterm:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def run_epochs(run: TrainingRun) -> tuple[str, list[dict[str, Any]]]:
    """Train from ``run.position`` to the last epoch; (how it ended: finished | sigterm |
    time_limit, the record of every epoch that ran)."""
    t = run.config.train
    stages = progressive_stages(run)
    current: Stage | None = None
    history: list[dict[str, Any]] = []
    started = time.monotonic()
    deadline = started + (t.time_limit_min * 60 if t.time_limit_min else math.inf)
    metrics = MetricsWriter(run.folder, tensorboard=run.config.run.tensorboard) if run.main else None
    try:
        with _StopOnSigterm() as stop:
            should_stop = run.engine.stop_check(lambda: stop.requested, deadline)
            for epoch in range(run.position.epoch, t.epochs):
                stage = stages[stage_of(epoch, t.epochs, len(stages))] if stages else None
                if stage is not None and stage is not current:
                    current = stage
                    _enter_stage(run, current)
                    run.say(f"progressive learning, {current.describe(len(stages))}")
                ended = _train_epoch(run, epoch, should_stop)
                if ended == "sigterm":
                    if run.main:
                        run.save_checkpoint()
                        run.say(f"SIGTERM: saved {run.folder.last} at epoch {epoch + 1}, batch "
                                f"{run.position.batches_done}; continue with `effnet train --resume {run.folder.path}`")
                    return "sigterm", history
                history.append(_end_epoch(run, epoch, current, metrics, partial=ended == "time_limit", started=started))
                barrier(run.info)
                if ended == "time_limit":
                    run.say(f"time limit of {t.time_limit_min:g} min reached after {run.position.global_step} steps")
                    return "time_limit", history
    finally:
        if metrics is not None:
            metrics.close()
    return "finished", history


def _train_epoch(run: TrainingRun, epoch: int, should_stop: Callable[[], tuple[bool, bool]]) -> str:
    """One epoch's steps from where the position stands: done | sigterm | time_limit."""
    m, t, data, position = run.config.model, run.config.train, run.data, run.position
    data.sampler.set_epoch(epoch)
    data.sampler.skip = position.batches_done * data.per_rank_batch
    set_backbone_frozen(run.model, epoch < m.freeze_backbone_epochs)
    run.forward_model.train()
    if m.freeze_bn:
        _freeze_bn(run.model)
    if run.config.quant.qat:
        q = run.config.quant
        frozen = apply_freezes(run.model, epoch, freeze_bn_epoch=q.freeze_bn_epoch,  # type: ignore[arg-type]
                               freeze_observer_epoch=q.freeze_observer_epoch, epochs=t.epochs)
        if frozen and position.batches_done == 0:
            run.say(f"epoch {epoch + 1}: {' and '.join(frozen)} frozen")
    bar = EpochProgress(run.main and run.config.run.progress, epoch, t.epochs, len(data.train_loader),
                        position.batches_done)
    try:
        return run.engine.train_one_epoch(data.train_loader, position, bar, should_stop)
    finally:
        bar.close()


def _end_epoch(run: TrainingRun, epoch: int, stage: Stage | None, metrics: MetricsWriter | None, *, partial: bool,
               started: float) -> dict[str, Any]:
    """The epoch's record (training over all ranks, validation), the position moved past it
    (unless the time limit cut it short); then, on the main process, the metrics files,
    ``last.pt`` and, when the epoch is the best so far, the trained model."""
    position = run.position
    record = _epoch_record(epoch, position.global_step, run.engine.scheduler.get_last_lr()[0], position.epoch_stats,
                           run.info, run.device)
    if stage is not None:
        record.update(stage=stage.index + 1, stage_image_size=stage.image_size)
    record["partial_epoch"] = partial
    score, chosen = score_epoch(run, record)
    record["elapsed_s"] = time.monotonic() - started
    improved = score > position.best_top1
    position.best_top1 = max(position.best_top1, score)
    if not partial:
        position.epoch, position.batches_done, position.epoch_stats = epoch + 1, 0, dict(EMPTY_EPOCH)
    if metrics is not None:
        metrics.write(record)
    if run.main:
        run.save_checkpoint()
        if improved:
            save_selected(run, chosen, record)
        run.say(_summary_line(record, run.config.train.epochs))
    return record


def progressive_stages(run: TrainingRun) -> list[Stage] | None:
    """The stages of progressive learning (``progressive.stages`` >= 2), else None."""
    g, d = run.config.progressive, run.config.data
    if not g.stages:
        return None
    size = run.data.image_size
    return plan(stages=g.stages, schedule=g.schedule, size=size, min_size=g.min_image_size or max(8, size // 2),
                randaugment=(g.randaugment_min, g.randaugment_max if g.randaugment_max is not None else d.randaugment_m),
                mixup=(0.0, g.mixup_max), cutmix=(0.0, g.cutmix_max), dropout=(g.dropout_min, run.model.spec.dropout))


def _enter_stage(run: TrainingRun, stage: Stage) -> None:
    """Train the coming epochs at the stage's image size and regularisation."""
    data = run.data
    assert data.loader_with is not None
    data.train_loader = data.loader_with(stage_transform(run.config, data.preprocessing, stage.image_size,
                                                         stage.randaugment_m, data.native_size))
    run.engine.mix = BatchMix(len(data.classes), stage.mixup_alpha, stage.cutmix_alpha)
    set_dropout(run.model, stage.dropout)


def _freeze_bn(model: nn.Module) -> None:
    """Batch norm in eval mode: normalise with the running statistics, do not update them."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def _epoch_record(epoch: int, step: int, lr: float, stats: dict[str, float], info: DistInfo,
                  device: torch.device) -> dict[str, Any]:
    """Training loss and accuracy over all ranks."""
    totals = torch.tensor([stats["loss_sum"], stats["correct"], stats["seen"]], dtype=torch.float64, device=device)
    loss_sum, correct, seen = all_reduce_sum(totals, info).tolist()
    seen = max(1.0, seen)
    return {
        "epoch": epoch + 1, "step": step, "lr": lr,
        "train_loss": loss_sum / seen, "train_acc": 100.0 * correct / seen,
        "images_per_s": seen / max(stats["seconds"], 1e-9),
        "epoch_time_s": stats["seconds"],
    }


def _summary_line(record: dict[str, Any], epochs: int) -> str:
    line = f"epoch {record['epoch']}/{epochs}  train loss {record['train_loss']:.4f} acc {record['train_acc']:.2f}%"
    if "val_top1" in record:
        line += f"  val top-1 {record['val_top1']:.2f}%"
    if "ema_val_top1" in record:
        line += f"  EMA val top-1 {record['ema_val_top1']:.2f}%"
    return line + f"  lr {record['lr']:.4g}  {record['images_per_s']:,.0f} img/s  {record['epoch_time_s']:.0f} s"


__all__ = ["progressive_stages", "run_epochs"]
