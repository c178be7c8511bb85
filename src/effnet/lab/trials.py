"""A trial: one network (spec) trained with a short proxy budget and one seed, on a real
dataset; its result records accuracy, params, MAdds, wall time and the spec itself."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..counting import count
from ..spec import NetworkSpec
from ..spec_json import spec_from_dict, spec_to_dict
from ..train import TrainResult, train
from ..train.checkpoint import check_resumable, load_checkpoint
from ..train.config import Config
from ..weights import RunFolder


@dataclass(frozen=True)
class Budget:
    """The proxy training budget (paper section 4: short training on a held-out split)."""

    epochs: int = 2
    train_subset: int = 0          # first N training images (0: all)
    minival: int = 5000            # held out from train; trials are ranked on it, never on test
    batch_size: int = 128
    lr_per_256: float = 0.016
    warmup_epochs: float = 0.5
    threads: int = 0               # torch threads per trial (0: the runner decides)

    def __post_init__(self) -> None:
        # Without a minival split the training code validates on the test set, so trials would
        # be ranked on test: a budget refuses that (only `effnet train` may choose it).
        if self.minival < 1:
            raise ValueError(f"a trial budget needs minival of at least 1 image (trials are ranked on it, never on "
                             f"test), got {self.minival}; to select on test, use `effnet train data.minival=0`")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"a trial budget needs at least 1 epoch and a batch of at least 1, got epochs "
                             f"{self.epochs}, batch size {self.batch_size}")
        if self.train_subset < 0 or self.threads < 0:
            raise ValueError(f"train_subset and threads are counts (0: all / the runner decides), got "
                             f"{self.train_subset}, {self.threads}")


@dataclass(frozen=True)
class Trial:
    experiment: str
    method: str                     # base | compound | width | depth | resolution | grid
    spec: NetworkSpec
    budget: Budget
    seed: int = 0
    dataset: str = "fashion_mnist"
    data_dir: str | None = None     # where the data is, and where run folders go: not part of the key
    run_dir: str | None = None
    labels: tuple[tuple[str, Any], ...] = ()   # e.g. (("phi", 1), ("alpha", 1.2))
    on_test: bool = False           # also evaluate on the test set (a final retraining, never a search)

    @property
    def key(self) -> str:
        """Content hash: the same network, budget, seed and dataset is the same trial."""
        payload = {"spec": spec_to_dict(self.spec), "budget": asdict(self.budget), "seed": self.seed,
                   "dataset": self.dataset, "experiment": self.experiment, "method": self.method,
                   "labels": [list(pair) for pair in self.labels]}
        if self.on_test:  # only when set, so every journal written before the field keeps its keys
            payload["on_test"] = True
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class TrialResult:
    key: str
    experiment: str
    method: str
    seed: int
    labels: dict[str, Any]
    params: int
    madds: int
    resolution: int
    top1: float | None
    wall_s: float
    spec: dict[str, Any] = field(repr=False)
    status: str = "ok"
    error: str | None = None
    test_top1: float | None = None   # only for trials run with on_test (minival chose the checkpoint)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialResult:
        return cls(**data)

    @property
    def network(self) -> NetworkSpec:
        return spec_from_dict(self.spec)


def describe(trial: Trial, top1: float | None, wall_s: float, error: str | None = None, *,
             test_top1: float | None = None) -> TrialResult:
    counts = count(trial.spec)
    return TrialResult(
        key=trial.key, experiment=trial.experiment, method=trial.method, seed=trial.seed,
        labels=dict(trial.labels), params=counts.params, madds=counts.madds,
        resolution=trial.spec.resolution, top1=top1, wall_s=wall_s,
        # JSON-normalised (tuples -> lists) so a result read back from the journal compares equal
        spec=json.loads(json.dumps(spec_to_dict(trial.spec))),
        status="ok" if error is None else "failed", error=error, test_top1=test_top1,
    )


def trial_config(trial: Trial, out_dir: str | None = None) -> Config:
    """The training config of a trial: the paper's recipe, shortened to the proxy budget."""
    config = Config()
    b = trial.budget
    config.data.dataset = trial.dataset
    config.data.root = trial.data_dir
    config.data.channels = trial.spec.in_chans
    config.data.image_size = trial.spec.resolution
    config.data.minival = b.minival
    config.data.train_subset = b.train_subset
    config.data.crop = "pad_crop"  # small images: pad-and-crop, not 8%-area crops
    config.data.batch_augment = True
    config.train.epochs = b.epochs
    config.train.batch_size = b.batch_size
    config.train.seed = trial.seed
    config.train.threads = b.threads
    config.train.ema_decay = 0.0  # a 0.9999 EMA needs ~10k steps to mean anything
    # Trials are ranked on minival; the test set stays unseen unless this is a final retraining.
    config.train.final_test = trial.on_test
    config.optim.lr_per_256 = b.lr_per_256
    config.schedule.warmup_epochs = b.warmup_epochs
    # Cosine to zero: a proxy of a few epochs would otherwise end at the top of the official
    # staircase (x0.97 every 2.4 epochs), and its last-epoch accuracy would be noisier.
    config.schedule.name = "cosine"
    config.model.channels_last = True  # the faster layout for these small nets on CPU (measured)
    config.run.progress = False
    config.run.tensorboard = False
    # One folder per trial, named by its key: an interrupted trial finds its own checkpoint again.
    config.run.name = f"{trial.spec.name}-seed{trial.seed}-{trial.key}"
    if out_dir is not None:
        config.run.out_dir = out_dir
    return config


def _train_or_resume(config: Config, spec: NetworkSpec) -> TrainResult:
    """Train, or continue from the last epoch's checkpoint when an earlier process was stopped
    mid-trial (the machine going away, a kill): resume is exact, so the result is the same either way."""
    folder = RunFolder.under(config.run.out_dir, config.run.name)
    if _resumable(folder.last):
        result = train(config, resume=folder.path, spec=spec)
        if result.history:
            return result
        # every epoch had run, but the result never reached the journal: its record is not here
    if folder.path.exists():
        shutil.rmtree(folder.path)  # a stale folder (no checkpoint yet, or finished): start clean
    return train(config, spec=spec)


def _resumable(path: Path) -> bool:
    """Whether ``path`` is a checkpoint a resume can continue (one another version of effnet
    wrote, or a damaged file, is not: the trial then starts again rather than failing)."""
    if not path.is_file():
        return False
    try:
        check_resumable(load_checkpoint(path), path)
    except (OSError, ValueError):  # load_checkpoint's WeightsError is a ValueError
        return False
    return True


def train_trial(trial: Trial, out_dir: str | None = None) -> TrialResult:
    """Train and evaluate one trial on the minival split (top-1 of the last epoch), and with
    ``on_test`` the chosen checkpoint on the test set too. A trial stopped mid-way continues
    from its last epoch (``wall_s`` then counts the continuing process only)."""
    start = time.perf_counter()
    try:
        result = _train_or_resume(trial_config(trial, out_dir or trial.run_dir), trial.spec)
        top1 = float(result.history[-1]["val_top1"])
        test_top1 = float(result.test["top1"]) if trial.on_test and result.test else None
    except Exception as error:  # noqa: BLE001 - a failed trial is recorded, not fatal to the experiment
        return describe(trial, None, time.perf_counter() - start, f"{type(error).__name__}: {error}")
    return describe(trial, top1, time.perf_counter() - start, test_top1=test_top1)
