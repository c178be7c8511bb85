"""The training config: its schema (dataclasses with the official recipe as defaults) and
the checks that make a config one that can run, with messages that name the key. Reading it
from files and ``section.key=value`` overrides: ``config_files.py``.

Sections: ``data``, ``model``, ``optim``, ``schedule``, ``train``, ``progressive``, ``quant``, ``run``.
Defaults follow the paper (section 5.2) and the official ``main.py``: RMSProp (TF)
0.9/0.9/1e-3, lr 0.016 per 256 images, 5 warm-up epochs, x0.97 every 2.4 epochs, weight decay
1e-5, label smoothing 0.1, EMA 0.9999, 350 epochs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..data.datasets import DATASETS
from ..data.transforms import AUTO_AUGMENTS, TRAIN_CROPS
from .config_checks import ConfigError, check_choice, check_range, did_you_mean
from .optim import OPTIMIZERS
from .progressive import SCHEDULES as PROGRESSIVE_SCHEDULES
from .schedule import SCHEDULES

AMP_MODES = ("none", "bf16", "fp16")
KERNEL_MODES = ("auto", "fused", "native")


@dataclass
class DataConfig:
    dataset: str = "fashion_mnist"
    root: str | None = None              # --data-dir; None: the dataset's default places
    download: bool = False
    channels: int = 1                    # 1 = grey, 3 = RGB (grey images repeated)
    image_size: int | None = None        # None: the model's resolution
    minival: float | None = None         # held out from train to select the best checkpoint (count, or
                                         # fraction if < 1); None: 5,000 for Fashion-MNIST, 10% of a
                                         # folder; 0: select on the test set (reported as such)
    minival_seed: int = 0
    train_subset: int = 0                # use only the first N training images (quick runs)
    eval_subset: int = 0
    crop: str = "random_resized"
    scale_min: float = 0.08              # random-resized-crop area 8%..100% (official)
    padding: int = 4                     # for crop: pad_crop
    hflip: float = 0.5
    auto_augment: str | None = None      # autoaugment | randaugment
    randaugment_n: int = 2
    randaugment_m: int = 10
    mean: list[float] | None = None      # None: from the weights, else the dataset's
    std: list[float] | None = None
    eval_crop_fraction: float | None = None
    batch_augment: bool = False          # pad-crop + flip on whole batches (fast for small images)
    num_workers: int = 0


@dataclass
class ModelConfig:
    name: str | None = "efficientnet_b0"  # a registered model (`effnet models`); None: the weights' own
    spec: str | None = None              # a network description file (.json, e.g. a search's best.json) instead of name
    weights: str | None = None           # fine-tune from these (tag, file, run folder or hf-hub:...)
    width: float | None = None           # scale the network (paper eq. 3): width multiplier
    depth: float | None = None           # ... and depth multiplier (from scratch only)
    num_classes: int | None = None       # None: the dataset's
    drop_rate: float | None = None       # None: the spec's (0.2 for B0)
    drop_path_rate: float | None = None
    freeze_backbone_epochs: int = 0      # train only the new head for the first N epochs
    channels_last: bool = False
    grad_checkpointing: bool = False
    compile: bool = False
    kernels: str = "auto"                # auto | fused | native: effnet's CPU training kernels (effnet.kernels)
    sync_bn: bool = False                # SyncBatchNorm under DDP (CUDA only in PyTorch)
    freeze_bn: bool = False              # BN uses its running statistics (tiny batches, fine-tuning)
    bn_momentum: float | None = None     # PyTorch convention; None: the spec's (0.01 = TF's 0.99)


@dataclass
class OptimConfig:
    name: str = "rmsprop_tf"
    lr: float | None = None              # absolute; None: lr_per_256 * global_batch / 256
    lr_per_256: float = 0.016
    weight_decay: float = 1e-5
    momentum: float = 0.9
    decay: float = 0.9                   # RMSProp's mean-square decay (rho)
    eps: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    clip_grad_norm: float | None = None


@dataclass
class ScheduleConfig:
    name: str = "tf_exponential"
    warmup_epochs: float = 5.0
    decay_epochs: float = 2.4
    decay_rate: float = 0.97
    min_lr_ratio: float = 0.0


@dataclass
class TrainConfig:
    epochs: int = 350
    batch_size: int = 256                # global: split over DDP processes
    eval_batch_size: int = 512
    label_smoothing: float = 0.1
    ema_decay: float = 0.9999            # 0 turns the EMA off
    ema_warmup: bool = True              # TF's num_updates ramp
    eval_raw: bool = True                # with EMA on, also evaluate the raw weights each epoch
    final_test: bool = True              # evaluate on the test set at the end (searches turn it off)
    amp: str = "none"                    # none | bf16 | fp16 (CUDA)
    device: str = "auto"
    seed: int = 0
    deterministic: bool = False
    threads: int = 0                     # torch.set_num_threads; 0 leaves it alone
    time_limit_min: float = 0            # stop training after this many minutes (0: none)
    cache_cpu_memory: bool = True        # CPU: reuse freed memory instead of unmapping it (effnet/allocator.py)


@dataclass
class ProgressiveConfig:
    """Progressive learning (EfficientNetV2 section 4.2; effnet.train.progressive)."""

    stages: int = 0                      # M equal stages; 0: off (fixed size). The V2 paper uses 4
    schedule: str = "paper"              # paper (Algorithm 1) | official (google/automl main.py)
    min_image_size: int | None = None    # the first stage's size (paper S0); None: half the final size
    randaugment_min: float = 5.0         # the first stage's magnitude (used with data.auto_augment=randaugment)
    randaugment_max: float | None = None # the last stage's; None: data.randaugment_m
    mixup_max: float = 0.0               # the last stage's mixup alpha (the first: 0)
    cutmix_max: float = 0.0              # the last stage's cutmix alpha (official schedule only)
    dropout_min: float = 0.1             # the first stage's dropout (paper schedule; the last: the model's)


@dataclass
class QuantConfig:
    """Quantisation-aware training: fine-tune through PT2E fake quantisation (effnet.train.qat)."""

    qat: bool = False
    per_channel: bool = True             # weights: symmetric int8 per output channel (else per tensor)
    freeze_bn_epoch: int | None = None   # first epoch (from 1) whose BN keeps its running statistics; None: last; 0: never
    freeze_observer_epoch: int | None = None  # first epoch whose quantisation ranges stay fixed; None: last; 0: never


@dataclass
class OutputConfig:
    """The ``run`` section: where the run folder goes, its name, and what the run reports."""

    out_dir: str = "runs"
    name: str | None = None              # None: MODEL-YYYYmmdd-HHMMSS
    progress: bool = True
    tensorboard: bool = True


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    progressive: ProgressiveConfig = field(default_factory=ProgressiveConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)
    run: OutputConfig = field(default_factory=OutputConfig)

    # What to_dict() gave when validate() last passed this config. A Config is mutable
    # (experiments and tests set values on its sections directly), so train() validates it
    # again only when it changed since loading did.
    _validated_as: ClassVar[dict[str, Any] | None] = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _validate_model(m: ModelConfig, channels: int, qat: bool) -> None:
    """The model section's checks that involve pretrained weights and the network's shape."""
    if m.weights is not None and channels != 3 and not qat:  # a QAT start: the build checks its channels
        raise ConfigError("pretrained weights expect RGB input: set data.channels=3 (grey images are repeated)")
    if m.weights is not None and (m.width is not None or m.depth is not None):
        raise ConfigError("model.width/model.depth change the network, so pretrained model.weights would not fit; "
                          "drop one or the other")
    for key in ("width", "depth"):
        if getattr(m, key) is not None and not getattr(m, key) > 0:
            raise ConfigError(f"model.{key} must be > 0; got {getattr(m, key)}")
    if m.bn_momentum is not None:
        check_range("model.bn_momentum", m.bn_momentum, 0.0, 1.0)
    check_range("model.freeze_backbone_epochs", m.freeze_backbone_epochs, 0)
    if m.freeze_backbone_epochs and m.weights is None:
        raise ConfigError("model.freeze_backbone_epochs only makes sense with model.weights (a pretrained backbone)")
    if m.drop_rate is not None:
        check_range("model.drop_rate", m.drop_rate, 0.0, 1.0, open_high=True)
    if m.drop_path_rate is not None:
        check_range("model.drop_path_rate", m.drop_path_rate, 0.0, 1.0, open_high=True)


def validate(config: Config) -> None:
    """Checks that span keys or need the allowed values; raises ConfigError. A config that
    passes is remembered as valid until it changes (:func:`validate_once`)."""
    d, m, o, s, t = config.data, config.model, config.optim, config.schedule, config.train
    check_choice("data.dataset", d.dataset, DATASETS)
    check_choice("data.channels", d.channels, (1, 3))
    check_choice("data.crop", d.crop, TRAIN_CROPS)
    check_choice("data.auto_augment", d.auto_augment, (None, *AUTO_AUGMENTS))
    check_choice("optim.name", o.name, OPTIMIZERS)
    check_choice("schedule.name", s.name, SCHEDULES)
    check_choice("train.amp", t.amp, AMP_MODES)
    check_choice("model.kernels", m.kernels, KERNEL_MODES)
    if d.image_size is not None:
        check_range("data.image_size", d.image_size, 8)
    check_range("data.scale_min", d.scale_min, 0.01, 1.0)
    check_range("data.hflip", d.hflip, 0.0, 1.0)
    if d.minival is not None:
        check_range("data.minival", d.minival, 0.0)
    if m.spec is not None and m.weights is not None:
        raise ConfigError("model.spec names a network to train from scratch; fine-tuning (model.weights) uses the "
                          "weights' own network: give one of them")
    if m.spec is not None and not m.spec.endswith(".json"):
        raise ConfigError(f"model.spec must be a .json network description (a search's best.json), got {m.spec!r}; "
                          "for a registered network use model.name")
    if m.name is None and m.weights is None:
        raise ConfigError("model.name is null: name a model (`effnet models` lists them) or give model.weights")
    for key in ("train_subset", "eval_subset", "num_workers", "padding"):
        check_range(f"data.{key}", getattr(d, key), 0)
    if (d.mean is None) != (d.std is None):
        raise ConfigError("set data.mean and data.std together (or neither)")
    if d.mean is not None and (len(d.mean) != len(d.std or []) or len(d.mean) not in (1, d.channels)):
        raise ConfigError(f"data.mean and data.std need 1 or {d.channels} values each (data.channels={d.channels})")
    _validate_model(m, d.channels, config.quant.qat)
    if o.lr is not None:
        check_range("optim.lr", o.lr, 0.0)
    check_range("optim.lr_per_256", o.lr_per_256, 0.0)
    check_range("optim.weight_decay", o.weight_decay, 0.0)
    check_range("optim.momentum", o.momentum, 0.0, 1.0, open_high=True)
    check_range("optim.decay", o.decay, 0.0, 1.0, open_high=True)
    check_range("optim.eps", o.eps, 0.0)
    if len(o.betas) != 2:
        raise ConfigError(f"optim.betas needs two values, got {o.betas}")
    check_range("schedule.warmup_epochs", s.warmup_epochs, 0.0)
    if s.decay_epochs <= 0:
        raise ConfigError(f"schedule.decay_epochs must be > 0; got {s.decay_epochs}")
    check_range("schedule.decay_rate", s.decay_rate, 0.0, 1.0)
    check_range("train.epochs", t.epochs, 1)
    check_range("train.batch_size", t.batch_size, 1)
    check_range("train.eval_batch_size", t.eval_batch_size, 1)
    check_range("train.label_smoothing", t.label_smoothing, 0.0, 1.0, open_high=True)
    check_range("train.ema_decay", t.ema_decay, 0.0, 1.0, open_high=True)
    check_range("train.threads", t.threads, 0)
    check_range("train.time_limit_min", t.time_limit_min, 0.0)
    g = config.progressive
    check_choice("progressive.schedule", g.schedule, PROGRESSIVE_SCHEDULES)
    check_range("progressive.stages", g.stages, 0)
    if g.stages == 1:
        raise ConfigError("progressive.stages=1 is one stage, i.e. fixed-size training; use 0 (off) or >= 2")
    if g.stages:
        if d.batch_augment:
            raise ConfigError("progressive learning resizes and augments each image for its stage: set "
                              "data.batch_augment=false")
        if g.stages > t.epochs:
            raise ConfigError(f"progressive.stages={g.stages} is more than train.epochs={t.epochs}; every stage "
                              "needs at least one epoch")
        if g.min_image_size is not None:
            check_range("progressive.min_image_size", g.min_image_size, 4)
        for key in ("randaugment_min", "mixup_max", "cutmix_max"):
            check_range(f"progressive.{key}", getattr(g, key), 0.0)
        check_range("progressive.dropout_min", g.dropout_min, 0.0, 1.0, open_high=True)
    _validate_quant(config)
    config._validated_as = config.to_dict()


def _validate_quant(config: Config) -> None:
    """QAT trains an exported graph: what only an eager module offers is refused by name."""
    q, m, t = config.quant, config.model, config.train
    for key in [k for k in ("freeze_bn_epoch", "freeze_observer_epoch") if getattr(q, k) is not None]:
        if not q.qat:
            raise ConfigError(f"quant.{key} applies to quantisation-aware training: set quant.qat=true (or drop it)")
        check_range(f"quant.{key}", getattr(q, key), 0, t.epochs)
    if q.freeze_observer_epoch == 1:
        raise ConfigError("quant.freeze_observer_epoch=1 fixes the ranges before they saw any data: use >= 2, or 0 (never)")
    if not q.qat:
        return
    refused = [
        (m.weights is None, "fine-tunes a trained model: set model.weights=RUN (a run folder of effnet train) or a tag"),
        (m.channels_last, "trains the exported graph in its contiguous layout: set model.channels_last=false"),
        (t.amp != "none", f"fake-quantises float32 values: set train.amp=none (got {t.amp})"),
        (m.compile, "trains the exported graph eagerly: set model.compile=false"),
        (m.grad_checkpointing, "cannot checkpoint the exported graph's stages: set model.grad_checkpointing=false"),
        (m.kernels == "fused", "runs native ops (the fused kernels are module swaps): set model.kernels=native or auto"),
        (m.freeze_bn, "freezes batch norm with quant.freeze_bn_epoch: set model.freeze_bn=false"),
        (m.freeze_backbone_epochs > 0, "trains every layer: set model.freeze_backbone_epochs=0"),
        (m.drop_path_rate not in (None, 0), "exports the network without stochastic depth: set model.drop_path_rate=0"),
        (config.progressive.stages > 0, "keeps one image size: set progressive.stages=0"),
        (t.ema_decay > 0, "selects the fake-quantised weights themselves (an average has no ranges): set train.ema_decay=0"),
    ]
    for message in [message for wrong, message in refused if wrong][:1]:
        raise ConfigError(f"quant.qat=true {message}")


def validate_once(config: Config) -> None:
    """:func:`validate`, unless ``config`` passed it and has not changed since."""
    if config._validated_as is None or config._validated_as != config.to_dict():
        validate(config)


__all__ = ["AMP_MODES", "Config", "ConfigError", "DataConfig", "KERNEL_MODES", "ModelConfig", "OptimConfig", "OutputConfig",
           "ProgressiveConfig", "QuantConfig", "ScheduleConfig", "TrainConfig", "did_you_mean", "validate", "validate_once"]
