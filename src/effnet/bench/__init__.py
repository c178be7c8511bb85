"""Benchmarks: our inference and training paths against timm and torchvision, timed in one
process (``effnet.deploy.timing``), built by name so a subprocess can rebuild them (``contestants``), with
training memory measured in fresh processes (``memory``) and reported as tables (``report``)."""

from ..deploy.timing import time_alternately
from .contestants import INFERENCE_PATHS, ONNX_PATHS, PEER_PATHS, PEER_TRAIN_PATHS, PEERS, TRAIN_PATHS, Setting
from .report import MemoryRow, Report, Row, cpu_peak, to_markdown
from .run import run_bench, training_memory

__all__ = ["INFERENCE_PATHS", "MemoryRow", "ONNX_PATHS", "PEERS", "PEER_PATHS", "PEER_TRAIN_PATHS", "Report", "Row",
           "Setting", "TRAIN_PATHS", "cpu_peak", "run_bench", "time_alternately", "to_markdown", "training_memory"]
