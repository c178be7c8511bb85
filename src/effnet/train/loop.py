"""The training loop: the official recipe (paper section 5.2) around any effnet model.

One call, :func:`train`, runs a whole training job from a :class:`~effnet.train.config.Config`
and writes a run folder::

    RUN/config.yaml      the resolved config
    RUN/metrics.jsonl    one record per epoch (and metrics.csv, tensorboard/ if installed)
    RUN/last.pt          everything needed to continue exactly (atomic writes)
    RUN/model.safetensors  the trained model: best minival top-1 (EMA weights when EMA is on),
                         with its network, preprocessing, classes and provenance; what
                         predict, export, eval and serve read when given the run folder

Model selection never sees the test set unless asked to (``data.minival=0``): the best
checkpoint is chosen on a minival split held out of the training data, and the test set is
evaluated once at the end, on that checkpoint.

Exact resume: the shuffle order depends only on (seed, epoch), loaders draw from their own
generators, and checkpoints carry every RNG state, so with ``num_workers=0`` and
deterministic kernels a run stopped at any step and resumed ends with bit-identical
weights. SIGTERM saves ``last.pt`` at the current step and returns; a non-finite loss
raises :class:`NonFiniteLossError` before anything is written.
"""

from __future__ import annotations

import copy
import math
import os
import random
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .. import kernels
from ..device import resolve_device
from ..spec import NetworkSpec
from ..weights import read_weights, save_weights
from ..zoo import get_spec
from ..allocator import keep_freed_cpu_memory
from .build import build_run_model, set_backbone_frozen
from .checkpoint import (EMPTY_EPOCH, LAST, MODEL, Position, check_resumable, checkpoint_payload, load_checkpoint, position_from,
                         save_checkpoint, save_run_model, set_rng_state)
from .config import Config, ConfigError, save_config, validate
from .data import RunData, stage_transform
from .distributed import DistInfo, all_reduce_sum, barrier, cleanup, setup
from .ema import create_ema
from .engine import Engine, NonFiniteLossError
from .metrics import MetricsWriter
from .optim import build_optimizer
from .progress_bar import EpochProgress, console
from .progressive import BatchMix, Stage, plan, set_dropout, stage_of
from .schedule import build_scheduler, scaled_lr


@dataclass
class TrainResult:
    run_dir: Path
    status: str                      # finished | sigterm | time_limit
    epoch: int                       # epochs completed
    global_step: int
    best_top1: float
    history: list[dict[str, Any]] = field(default_factory=list)
    test: dict[str, float] | None = None


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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _run_dir(config: Config, info: DistInfo, resume: Path | None, model_name: str) -> Path:
    if resume is not None:
        return resume
    name = config.run.name or f"{model_name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    if info.enabled:  # every rank must agree on rank 0's timestamp
        box = [name]
        dist.broadcast_object_list(box, src=0)
        name = box[0]
    return Path(config.run.out_dir) / name


def resolve_resume(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(run folder, checkpoint file) from either of them."""
    path = Path(path)
    checkpoint = path / LAST if path.is_dir() else path
    if not checkpoint.is_file():
        raise FileNotFoundError(f"nothing to resume: {checkpoint} does not exist")
    return checkpoint.parent, checkpoint


def train(config: Config, *, resume: str | os.PathLike[str] | None = None,
          spec: NetworkSpec | None = None) -> TrainResult:
    """Run (or, with ``resume`` = a run folder or checkpoint, continue) a training job.

    ``spec`` trains that network instead of ``config.model.name`` (experiments that generate
    specs); its ``num_classes`` and ``in_chans`` still come from the data.
    """
    validate(config)  # also catches values set on the dataclasses directly
    if spec is not None and config.model.weights is not None:
        raise ConfigError("pass either a spec or model.weights, not both")
    info = setup(config.train.device)
    try:
        return _train(config, info, resume, spec)
    finally:
        cleanup(info)


def _train(config: Config, info: DistInfo, resume: str | os.PathLike[str] | None,
           given_spec: NetworkSpec | None) -> TrainResult:
    m, t = config.model, config.train
    device = _process_settings(config, info)
    resume_dir, resume_file = resolve_resume(resume) if resume is not None else (None, None)
    run_name = (given_spec.name if given_spec is not None else get_spec(m.spec).name if m.spec
                else (m.name or Path(str(m.weights)).stem))
    run_dir = _run_dir(config, info, resume_dir, run_name)
    main = info.is_main
    out = console()

    # Same seed on every rank for the model (DDP also broadcasts rank 0's weights).
    seed_everything(t.seed)
    built = build_run_model(config, info, given_spec)
    data = built.data
    model, forward_model, ema = _place_model(built.model, config, info, device, out if main else None)
    # Augmentation differs per rank; everything else above was seeded identically.
    seed_everything(t.seed + info.rank)
    engine, lr = _build_engine(config, model, forward_model, ema, data, device, info)
    optimizer, scheduler, steps_per_epoch = engine.optimizer, engine.scheduler, len(data.train_loader)
    position = Position()
    if resume_file is not None:
        checkpoint = load_checkpoint(resume_file, map_location=device)
        check_resumable(checkpoint, resume_file)
        position = _restore(engine, checkpoint)
        if main:
            out.print(f"resuming {run_dir} at epoch {position.epoch + 1}, batch {position.batches_done} "
                      f"(step {position.global_step})")

    def save(path: Path) -> None:
        save_checkpoint(path, checkpoint_payload(model=model, optimizer=optimizer, scheduler=scheduler,
                                                 scaler=engine.scaler, ema=ema, position=position,
                                                 config=config.to_dict(), classes=data.classes,
                                                 preprocessing=data.preprocessing))

    metrics: MetricsWriter | None = None
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
        metrics = MetricsWriter(run_dir, tensorboard=config.run.tensorboard)
        selection = (f"best of {data.minival:,} minival images held out of train" if data.minival
                     else "best on the test set (data.minival=0)")
        out.print(f"run folder {run_dir}: {model.spec.name}, {len(data.classes)} classes, {data.image_size} px, "
                  f"{steps_per_epoch} steps/epoch x {t.epochs} epochs, batch {t.batch_size} "
                  f"({info.world_size} process{'es' if info.enabled else ''}), lr {lr:g}, {config.optim.name}; "
                  f"model selection: {selection}")

    stages = _progressive_stages(config, data, model)
    current: Stage | None = None
    history: list[dict[str, Any]] = []
    status = "finished"
    started = time.monotonic()
    deadline = started + (t.time_limit_min * 60 if t.time_limit_min else math.inf)
    try:
        with _StopOnSigterm() as stop:
            should_stop = engine.stop_check(lambda: stop.requested, deadline)
            for epoch in range(position.epoch, t.epochs):
                stage = stages[stage_of(epoch, t.epochs, len(stages))] if stages else None
                if stage is not None and stage is not current:
                    current = stage
                    _enter_stage(current, config, data, engine, model)
                    if main:
                        out.print(f"progressive learning, {current.describe(len(stages))}")
                data.sampler.set_epoch(epoch)
                data.sampler.skip = position.batches_done * data.per_rank_batch
                set_backbone_frozen(model, epoch < m.freeze_backbone_epochs)
                forward_model.train()
                if m.freeze_bn:
                    _freeze_bn(model)
                bar = EpochProgress(main and config.run.progress, epoch, t.epochs, steps_per_epoch,
                                    position.batches_done)
                try:
                    ended = engine.train_one_epoch(data.train_loader, position, bar, should_stop)
                finally:
                    bar.close()
                if ended == "sigterm":
                    status = "sigterm"
                    if main:
                        save(run_dir / LAST)
                        out.print(f"SIGTERM: saved {run_dir / LAST} at epoch {epoch + 1}, batch "
                                  f"{position.batches_done}; continue with `effnet train --resume {run_dir}`")
                    break
                partial_epoch = ended == "time_limit"
                record = _epoch_record(epoch, position.global_step, scheduler.get_last_lr()[0], position.epoch_stats,
                                       info, device)
                if current is not None:
                    record.update(stage=current.index + 1, stage_image_size=current.image_size)
                record["partial_epoch"] = partial_epoch
                score, chosen = _validate(engine, data, ema, record, eval_raw=t.eval_raw)
                record["elapsed_s"] = time.monotonic() - started
                history.append(record)
                improved = score > position.best_top1
                position.best_top1 = max(position.best_top1, score)
                if not partial_epoch:
                    position.epoch, position.batches_done, position.epoch_stats = epoch + 1, 0, dict(EMPTY_EPOCH)
                if main:
                    assert metrics is not None
                    metrics.write(record)
                    save(run_dir / LAST)
                    if improved:
                        save_run_model(run_dir, chosen, classes=data.classes, preprocessing=data.preprocessing,
                                       provenance=_provenance(config, record, ema is not None, data))
                    out.print(_summary_line(record, t.epochs))
                barrier(info)
                if partial_epoch:
                    status = "time_limit"
                    if main:
                        out.print(f"time limit of {t.time_limit_min:g} min reached after {position.global_step} steps")
                    break
    finally:
        if metrics is not None:
            metrics.close()

    result = TrainResult(run_dir, status, position.epoch, position.global_step, position.best_top1, history)
    if status != "sigterm" and data.test_loader is not None and t.final_test and history:
        result.test = _final_test(engine, run_dir, data, out if main else None)
    return result


def _process_settings(config: Config, info: DistInfo) -> torch.device:
    """The device, threads and determinism the run asks for."""
    t = config.train
    device = resolve_device(t.device, local_rank=info.local_rank if info.enabled else None)
    if t.threads:
        torch.set_num_threads(t.threads)
    if t.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    if t.amp == "fp16" and device.type != "cuda":
        raise ConfigError("train.amp=fp16 needs CUDA; on CPU use train.amp=bf16")
    return device


def _place_model(model: nn.Module, config: Config, info: DistInfo, device: torch.device,
                 out: Any) -> tuple[nn.Module, nn.Module, nn.Module | None]:
    """(model, what runs its forward pass, EMA): on the device, in its layout, with the CPU
    kernels, SyncBN, DDP and torch.compile the config asks for."""
    m, t = config.model, config.train
    model.to(device)
    if m.channels_last:
        model.to(memory_format=torch.channels_last)
    if m.grad_checkpointing:
        model.set_grad_checkpointing(True)
    if device.type == "cpu":
        _use_cpu_speedups(model, config, out)
    if m.sync_bn and info.enabled:
        if device.type != "cuda":
            raise ConfigError("model.sync_bn needs CUDA (PyTorch's SyncBatchNorm does not run on CPU); "
                              "set model.sync_bn=false")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    forward_model: nn.Module = model
    if info.enabled:
        forward_model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=m.freeze_backbone_epochs > 0)
    # After DDP has broadcast rank 0's weights, so every rank averages the same start.
    ema = create_ema(model, t.ema_decay, warmup=t.ema_warmup) if t.ema_decay > 0 else None
    if m.compile:
        forward_model = torch.compile(forward_model)  # type: ignore[assignment]
    return model, forward_model, ema


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


def _progressive_stages(config: Config, data: RunData, model: nn.Module) -> list[Stage] | None:
    """The stages of progressive learning (``progressive.stages`` >= 2), else None."""
    g, d = config.progressive, config.data
    if not g.stages:
        return None
    size = data.image_size
    return plan(stages=g.stages, schedule=g.schedule, size=size, min_size=g.min_image_size or max(8, size // 2),
                randaugment=(g.randaugment_min, g.randaugment_max if g.randaugment_max is not None else d.randaugment_m),
                mixup=(0.0, g.mixup_max), cutmix=(0.0, g.cutmix_max), dropout=(g.dropout_min, model.spec.dropout))


def _enter_stage(stage: Stage, config: Config, data: RunData, engine: Engine, model: nn.Module) -> None:
    """Train the coming epochs at the stage's image size and regularisation."""
    assert data.loader_with is not None
    data.train_loader = data.loader_with(stage_transform(config, data.preprocessing, stage.image_size,
                                                         stage.randaugment_m, data.native_size))
    engine.mix = BatchMix(len(data.classes), stage.mixup_alpha, stage.cutmix_alpha)
    set_dropout(model, stage.dropout)


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


def _validate(engine: Engine, data: RunData, ema: nn.Module | None, record: dict[str, Any], *,
              eval_raw: bool) -> tuple[float, nn.Module]:
    """Validation top-1 of the raw and the EMA weights (into ``record``); the score that
    selects the best checkpoint, and the weights it belongs to (EMA when on)."""
    score, chosen = -1.0, engine.model
    if ema is None or eval_raw:
        val = engine.evaluate(engine.model, data.val_loader)
        record.update({f"val_{k}": v for k, v in val.summary().items()})
        score = val.top1
    if ema is not None:
        ema_val = engine.evaluate(ema.module, data.val_loader)
        record.update({f"ema_val_{k}": v for k, v in ema_val.summary().items()})
        score, chosen = ema_val.top1, ema.module
    return score, chosen


def _provenance(config: Config, record: dict[str, Any], ema: bool, data: RunData) -> dict[str, Any]:
    val_key = "ema_val_top1" if ema else "val_top1"
    return {"config": config.to_dict(), "dataset": config.data.dataset, "epochs": record["epoch"],
            "steps": record["step"], "weights": "EMA" if ema else "raw",
            "selected_on": "minival" if data.minival else "test", "minival_images": data.minival,
            "val_top1": record.get(val_key), "test_top1": None}


def _final_test(engine: Engine, run_dir: Path, data: RunData, out: Any) -> dict[str, float]:
    """The test set, once, on the model that minival selected (RUN/model.safetensors); its
    top-1 is written into that file's provenance."""
    barrier(engine.info)
    selected = read_weights(run_dir / MODEL)
    model = copy.deepcopy(engine.ema.module if engine.ema is not None else engine.model)
    model.load_state_dict(selected[0])
    test = engine.evaluate(model, data.test_loader).summary()
    meta = selected[1]
    if out is not None and meta is not None:
        provenance = {**(meta.provenance or {}), "test_top1": test["top1"], "test_top5": test["top5"]}
        save_weights(run_dir / MODEL, selected[0], meta.replace(provenance=provenance))
        out.print(f"test top-1 {test['top1']:.2f}%  top-5 {test['top5']:.2f}% (the model selected on minival, "
                  f"epoch {provenance.get('epochs')}; evaluated once)")
    return test


def _use_cpu_speedups(model: nn.Module, config: Config, out) -> None:  # type: ignore[no-untyped-def]
    """CPU training: effnet's fused kernels (``model.kernels``) and malloc that keeps freed
    memory. ``auto`` uses the kernels where they apply (float32 channels_last) and they build
    here; ``fused`` insists, and says why when they cannot apply."""
    m, t = config.model, config.train
    if t.cache_cpu_memory:
        keep_freed_cpu_memory()
    if m.kernels == "native":
        return
    if m.kernels == "fused" and not kernels.available():
        raise ConfigError(f"model.kernels=fused: fused CPU kernels are unavailable: {kernels.unavailable_reason()}. "
                          "Set model.kernels=native (or auto).")
    unfit = kernel_mismatch(config)
    if unfit:
        # The swapped layers would run native ops on every step: say so instead of pretending.
        if m.kernels == "fused":
            message = f"model.kernels=fused: falling back to native ops because {unfit}"
            warnings.warn(message, stacklevel=2)
            if out is not None:
                out.print(f"[yellow]{message}[/yellow]")
        return
    if m.kernels == "auto" and not kernels.available():
        if out is not None:
            out.print(f"[dim]fused CPU kernels unavailable ({kernels.unavailable_reason()}); using native ops[/dim]")
        return
    kernels.use_fused_kernels(model)


def kernel_mismatch(config: Config) -> str | None:
    """Why the fused kernels cannot apply to this run's activations (None: they can)."""
    if not config.model.channels_last:
        return ("model.channels_last=false: the kernels run on channels_last float32 activations; "
                "set model.channels_last=true")
    if config.train.amp != "none":
        return f"train.amp={config.train.amp}: the kernels run in float32; set train.amp=none"
    return None


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


__all__ = ["NonFiniteLossError", "TrainResult", "resolve_resume", "seed_everything", "train"]
