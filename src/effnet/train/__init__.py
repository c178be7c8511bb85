"""Training: the paper's recipe (TF RMSProp, staircase schedule, EMA, label smoothing), the
loop with exact resume, checkpoints, metrics, DDP, and the config that drives it all."""

from .config import Config, ConfigError
from .config_files import load_config
from .ema import create_ema
from .loop import NonFiniteLossError, TrainResult, train
from .optim import RMSpropTF, build_optimizer, param_groups
from .schedule import build_scheduler, scaled_lr

__all__ = ["Config", "ConfigError", "NonFiniteLossError", "RMSpropTF", "TrainResult", "build_optimizer",
           "build_scheduler", "create_ema", "load_config", "param_groups", "scaled_lr", "train"]
