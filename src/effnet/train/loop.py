"""The training loop: the official recipe (paper section 5.2) around any effnet model.

One call, :func:`train`, runs a whole training job from a :class:`~effnet.train.config.Config`
and writes a run folder::

    RUN/config.yaml      the resolved config
    RUN/metrics.jsonl    one record per epoch (and metrics.csv, tensorboard/ if installed)
    RUN/last.pt          everything needed to continue exactly (atomic writes)
    RUN/best.pt          the same, at the best validation top-1

Exact resume: the shuffle order depends only on (seed, epoch), loaders draw from their own
generators, and checkpoints carry every RNG state, so with ``num_workers=0`` and
deterministic kernels a run stopped at any step and resumed ends with bit-identical
weights. SIGTERM saves ``last.pt`` at the current step and returns; a non-finite loss
raises :class:`NonFiniteLossError` before anything is written.
"""

from __future__ import annotations

import math
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..factory import create_model
from ..nn import fused
from ..scaling import scale
from ..spec import NetworkSpec
from .allocator import keep_freed_cpu_memory
from .build import resolve_network, set_backbone_frozen, spec_to_dict
from .checkpoint import BEST, LAST, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import Config, ConfigError, from_dict, save_config, validate
from .data import build_data
from .distributed import DistInfo, all_reduce_sum, any_rank, any_ranks, barrier, cleanup, resolve_device, setup
from .ema import create_ema
from .evaluate import autocast_context, evaluate
from .metrics import MetricsWriter
from .optim import build_optimizer
from .progress import EpochProgress, console
from .schedule import build_scheduler, scaled_lr


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf; the message says where and what to try."""


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
    name = config.run.name or f"{model_name}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
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


def _build_model(config: Config, info: DistInfo, given_spec: NetworkSpec | None = None):  # type: ignore[no-untyped-def]
    """Model and data together: fine-tuning takes the data's normalisation from the weights,
    training from scratch takes the number of classes from the data."""
    m, d = config.model, config.data
    if m.weights is not None:
        model = create_model(m.name, weights=m.weights, drop_rate=m.drop_rate, drop_path_rate=m.drop_path_rate)
        data = build_data(config, info, resolution=model.spec.resolution,
                          weights_pre=getattr(model, "preprocessing", None))
        num_classes = m.num_classes or len(data.classes)
        if model.num_classes != num_classes:
            model.reset_classifier(num_classes)  # a new head for the user's classes
    else:
        spec = given_spec or resolve_network(m.name)
        if m.width is not None or m.depth is not None:
            spec = scale(spec, m.width or 1.0, m.depth or 1.0)
        data = build_data(config, info, resolution=spec.resolution)
        model = create_model(spec, num_classes=m.num_classes or len(data.classes), in_chans=d.channels,
                             drop_rate=m.drop_rate, drop_path_rate=m.drop_path_rate)
    if m.bn_momentum is not None:
        # TF's BN decay 0.99 (PyTorch 0.01) suits 350 epochs; a short fine-tune on new data
        # needs the running statistics to catch up faster, or eval-mode outputs are off.
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = m.bn_momentum
    model.class_names = data.classes
    model.preprocessing = data.preprocessing
    return model, data


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
    m, o, s, t = config.model, config.optim, config.schedule, config.train
    device = resolve_device(t.device, info)
    if t.threads:
        torch.set_num_threads(t.threads)
    if t.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    if t.amp == "fp16" and device.type != "cuda":
        raise ConfigError("train.amp=fp16 needs CUDA; on CPU use train.amp=bf16")
    resume_dir, resume_file = resolve_resume(resume) if resume is not None else (None, None)
    run_dir = _run_dir(config, info, resume_dir, given_spec.name if given_spec is not None else m.name)
    main = info.is_main
    out = console()

    # Same seed on every rank for the model (DDP also broadcasts rank 0's weights).
    seed_everything(t.seed)
    model, data = _build_model(config, info, given_spec)
    model.to(device)
    if m.channels_last:
        model.to(memory_format=torch.channels_last)
    if m.grad_checkpointing:
        model.set_grad_checkpointing(True)
    if device.type == "cpu":
        _use_cpu_speedups(model, config, out if main else None)
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
    # Augmentation differs per rank; everything else above was seeded identically.
    seed_everything(t.seed + info.rank)

    lr = o.lr if o.lr is not None else scaled_lr(o.lr_per_256, t.batch_size)
    optimizer = build_optimizer(o.name, model, lr, weight_decay=o.weight_decay, momentum=o.momentum,
                                decay=o.decay, eps=o.eps, betas=tuple(o.betas))  # type: ignore[arg-type]
    steps_per_epoch = len(data.train_loader)
    scheduler = build_scheduler(optimizer, s.name, steps_per_epoch=steps_per_epoch, epochs=t.epochs,
                                warmup_epochs=s.warmup_epochs, decay_epochs=s.decay_epochs,
                                decay_rate=s.decay_rate, min_lr_ratio=s.min_lr_ratio)
    scaler = torch.amp.GradScaler(device.type, enabled=t.amp == "fp16")
    criterion = nn.CrossEntropyLoss(label_smoothing=t.label_smoothing)

    start_epoch, batches_done, global_step, best_top1 = 0, 0, 0, -1.0
    epoch_stats = {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
    if resume_file is not None:
        ckpt = load_checkpoint(resume_file, map_location=device)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        fresh = [dict(f.__dict__) for f in scheduler.lr_lambdas]
        scheduler.load_state_dict(ckpt["scheduler"])
        for factor, settings in zip(scheduler.lr_lambdas, fresh):
            # The step count comes from the checkpoint, the schedule's shape from the config
            # (resuming with more train.epochs stretches a cosine schedule).
            factor.__dict__.update(settings)
        scaler.load_state_dict(ckpt["scaler"])
        if ema is not None and ckpt.get("ema") is not None:
            ema.load_state_dict(ckpt["ema"])
        start_epoch, batches_done = ckpt["epoch"], ckpt["batches_done"]
        global_step, best_top1 = ckpt["global_step"], ckpt["best_top1"]
        epoch_stats = dict(ckpt["epoch_stats"])
        if main:
            out.print(f"resuming {run_dir} at epoch {start_epoch + 1}, batch {batches_done} (step {global_step})")
        set_rng_state(ckpt["rng"])

    metrics: MetricsWriter | None = None
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
        metrics = MetricsWriter(run_dir, tensorboard=config.run.tensorboard)
        out.print(f"run folder {run_dir}: {model.spec.name}, {len(data.classes)} classes, {data.image_size} px, "
                  f"{steps_per_epoch} steps/epoch x {t.epochs} epochs, batch {t.batch_size} "
                  f"({info.world_size} process{'es' if info.enabled else ''}), lr {lr:g}, {o.name}")

    def checkpoint_payload(epoch: int, done: int) -> dict[str, Any]:
        return {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "ema": ema.state_dict() if ema is not None else None, "rng": rng_state(),
            "epoch": epoch, "batches_done": done, "global_step": global_step, "best_top1": best_top1,
            "epoch_stats": dict(epoch_stats), "config": config.to_dict(), "spec": spec_to_dict(model.spec),
            "classes": list(data.classes), "preprocessing": data.preprocessing.to_dict(),
        }

    history: list[dict[str, Any]] = []
    status = "finished"
    epochs_done = start_epoch
    started = time.monotonic()
    time_limit = t.time_limit_min * 60 if t.time_limit_min else math.inf
    batch_augment = data.batch_augment
    try:
        with _StopOnSigterm() as stop:
            for epoch in range(start_epoch, t.epochs):
                data.sampler.set_epoch(epoch)
                data.sampler.skip = batches_done * data.per_rank_batch
                set_backbone_frozen(model, epoch < m.freeze_backbone_epochs)
                forward_model.train()
                if m.freeze_bn:
                    _freeze_bn(model)
                bar = EpochProgress(main and config.run.progress, epoch, t.epochs, steps_per_epoch, batches_done)
                tic = time.monotonic() - epoch_stats["seconds"]
                step_in_epoch = batches_done
                for images, labels in data.train_loader:
                    images = images.to(device, non_blocking=True)
                    labels = labels.to(device, non_blocking=True)
                    if batch_augment is not None:
                        images = batch_augment(images, train=True)
                    if m.channels_last:
                        images = images.contiguous(memory_format=torch.channels_last)
                    with autocast_context(device, t.amp):
                        logits = forward_model(images)
                    loss = criterion(logits.float(), labels)
                    loss_value = float(loss.detach())
                    if any_rank(not math.isfinite(loss_value), info, device):
                        bar.close()
                        raise NonFiniteLossError(
                            f"the loss became {loss_value} at epoch {epoch + 1}, step {global_step + 1} "
                            f"(lr {scheduler.get_last_lr()[0]:.3g}); stopped without saving, so "
                            f"{run_dir / LAST} still holds the last good state. Try a lower optim.lr_per_256, "
                            "a longer schedule.warmup_epochs, optim.clip_grad_norm, or train.amp=none.")
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    if o.clip_grad_norm:
                        scaler.unscale_(optimizer)
                        nn.utils.clip_grad_norm_(model.parameters(), o.clip_grad_norm)
                    scaler.step(optimizer)
                    scaler.update()
                    scheduler.step()
                    if ema is not None:
                        ema.update_parameters(model)
                    global_step += 1
                    step_in_epoch += 1
                    n = labels.shape[0]
                    epoch_stats["loss_sum"] += loss_value * n
                    epoch_stats["correct"] += int((logits.detach().argmax(1) == labels).sum())
                    epoch_stats["seen"] += n
                    epoch_stats["seconds"] = time.monotonic() - tic
                    seen = max(1, epoch_stats["seen"])
                    bar.update(epoch_stats["loss_sum"] / seen, 100.0 * epoch_stats["correct"] / seen,
                               seen * info.world_size / max(epoch_stats["seconds"], 1e-9))
                    # Decided together, so that no rank waits forever in the next collective.
                    sigterm, out_of_time = any_ranks([stop.requested, time.monotonic() - started > time_limit],
                                                     info, device)
                    if sigterm or out_of_time:
                        status = "sigterm" if sigterm else "time_limit"
                        break
                bar.close()
                if status == "sigterm":
                    if main:
                        save_checkpoint(run_dir / LAST, checkpoint_payload(epoch, step_in_epoch))
                        out.print(f"SIGTERM: saved {run_dir / LAST} at epoch {epoch + 1}, batch {step_in_epoch}; "
                                  f"continue with `effnet train --resume {run_dir}`")
                    break
                record = _epoch_record(epoch, global_step, scheduler.get_last_lr()[0], epoch_stats, info, device)
                record["partial_epoch"] = status == "time_limit"
                score = -1.0
                if ema is None or t.eval_raw:
                    val = evaluate(model, data.val_loader, model.num_classes, device=device, amp=t.amp,
                                   prepare=_eval_prepare(batch_augment), channels_last=m.channels_last, dist_info=info)
                    record.update({f"val_{k}": v for k, v in val.summary().items()})
                    score = val.top1
                if ema is not None:
                    ema_val = evaluate(ema.module, data.val_loader, model.num_classes, device=device, amp=t.amp,
                                       prepare=_eval_prepare(batch_augment), channels_last=m.channels_last,
                                       dist_info=info)
                    record.update({f"ema_val_{k}": v for k, v in ema_val.summary().items()})
                    score = ema_val.top1
                record["elapsed_s"] = time.monotonic() - started
                history.append(record)
                epochs_done = epoch + 1 if status != "time_limit" else epoch
                improved = score > best_top1
                best_top1 = max(best_top1, score)
                done_epoch = status != "time_limit"
                epoch_stats = {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0} if done_epoch else epoch_stats
                batches_done = 0
                if main:
                    assert metrics is not None
                    metrics.write(record)
                    payload = checkpoint_payload(epoch + 1 if done_epoch else epoch,
                                                 0 if done_epoch else step_in_epoch)
                    save_checkpoint(run_dir / LAST, payload)
                    if improved:
                        save_checkpoint(run_dir / BEST, payload)
                    out.print(_summary_line(record, t.epochs))
                barrier(info)
                if status == "time_limit":
                    if main:
                        out.print(f"time limit of {t.time_limit_min:g} min reached after {global_step} steps")
                    break
    finally:
        if metrics is not None:
            metrics.close()

    result = TrainResult(run_dir, status, epochs_done, global_step, best_top1, history)
    if status != "sigterm" and data.test_loader is not None and t.final_test:
        final = ema.module if ema is not None else model
        test = evaluate(final, data.test_loader, model.num_classes, device=device, amp=t.amp,
                        prepare=_eval_prepare(batch_augment), channels_last=m.channels_last, dist_info=info)
        result.test = test.summary()
        if main:
            out.print(f"test top-1 {test.top1:.2f}%  top-5 {test.top5:.2f}% ({'EMA' if ema else 'model'}, last epoch)")
    return result


def _use_cpu_speedups(model: nn.Module, config: Config, out) -> None:  # type: ignore[no-untyped-def]
    """CPU training: effnet's fused kernels (``model.kernels``; auto = when the layers can use
    them: float32 channels_last, and the kernels build here) and malloc that keeps freed
    memory."""
    m, t = config.model, config.train
    if t.cache_cpu_memory:
        keep_freed_cpu_memory()
    if m.kernels == "native" or not hasattr(model, "set_fused_kernels"):
        return
    if m.kernels == "fused" or (m.channels_last and t.amp == "none"):
        if m.kernels == "auto" and not fused.available():
            if out is not None:
                out.print(f"[dim]fused CPU kernels unavailable ({fused.unavailable_reason()}); "
                          "using native ops[/dim]")
            return
        try:
            model.set_fused_kernels(True)
        except RuntimeError as error:
            raise ConfigError(f"model.kernels=fused: {error}. Set model.kernels=native (or auto).") from error


def _freeze_bn(model: nn.Module) -> None:
    """Batch norm in eval mode: normalise with the running statistics, do not update them."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def _eval_prepare(batch_augment):  # type: ignore[no-untyped-def]
    if batch_augment is None:
        return None
    return lambda images: batch_augment(images, train=False)


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


def config_from_run(run_dir: str | os.PathLike[str]) -> Config:
    """The resolved config a run folder was started with."""
    from .config import read_file

    return from_dict(read_file(Path(run_dir) / "config.yaml"))


__all__ = ["NonFiniteLossError", "TrainResult", "config_from_run", "resolve_resume", "seed_everything", "train"]
