"""DDP: 2 CPU processes (gloo) give the same weights as 1 process with the same global batch.

What makes the two runs comparable: DistributedSampler splits each global batch of the
1-process run between the ranks (rank r takes every other example of the same shuffled
order), and DDP averages the gradients of the per-rank mean losses, which is the mean over
the global batch. What would not be: batch-norm statistics computed over each rank's half
batch (PyTorch's SyncBatchNorm runs on CUDA only), per-rank random augmentation, dropout and
stochastic depth. So this run uses BN in eval mode (model.freeze_bn: running statistics),
no augmentation, no dropout and no drop path. The remaining difference is the order of
floating-point sums: tolerance 1e-5 (absolute) on weights of size ~0.1-1 after 12 steps.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from effnet.train.checkpoint import load_checkpoint

from .test_train_loop import REPO, tiny_overrides, write_fake_fashion_mnist

DETERMINISTIC = ["model.freeze_bn=true", "model.drop_rate=0", "model.drop_path_rate=0", "data.padding=0",
                 "data.hflip=0", "train.epochs=2", "train.ema_decay=0"]


def run(args: list[str], *, nproc: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
                if nproc > 1 else [sys.executable])
    return subprocess.run([*launcher, "-m", "effnet", "train", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=600)


def max_difference(a: dict, b: dict) -> float:
    """Largest absolute difference over the floating-point model tensors of two checkpoints."""
    diffs = [(a["model"][k] - b["model"][k]).abs().max().item() for k in a["model"] if a["model"][k].is_floating_point()]
    print(f"max |difference| of weights: {max(diffs):.3g}")
    return max(diffs)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")
def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    data = write_fake_fashion_mnist(tmp_path / "data")
    single = run(tiny_overrides(data, tmp_path, "one") + DETERMINISTIC, nproc=1)
    assert single.returncode == 0, single.stderr
    double = run(tiny_overrides(data, tmp_path, "two") + DETERMINISTIC, nproc=2)
    assert double.returncode == 0, double.stderr[-3000:]
    assert "batch 16 (2 processes)" in double.stderr.replace("\n", " ")
    one, two = load_checkpoint(tmp_path / "one" / "last.pt"), load_checkpoint(tmp_path / "two" / "last.pt")
    assert one["global_step"] == two["global_step"] == 12  # 96 images / 16 per step x 2 epochs
    assert max_difference(one, two) < 1e-5
    # The check can fail: with BN in training mode each rank normalises its half batch with
    # its own statistics, and the weights drift apart by far more than the tolerance.
    live_bn = run(tiny_overrides(data, tmp_path, "two-live-bn") + DETERMINISTIC + ["model.freeze_bn=false"], nproc=2)
    assert live_bn.returncode == 0, live_bn.stderr[-3000:]
    single_live = run(tiny_overrides(data, tmp_path, "one-live-bn") + DETERMINISTIC + ["model.freeze_bn=false"], nproc=1)
    assert single_live.returncode == 0, single_live.stderr[-3000:]
    assert max_difference(load_checkpoint(tmp_path / "one-live-bn" / "last.pt"),
                          load_checkpoint(tmp_path / "two-live-bn" / "last.pt")) > 1e-4
    # Only rank 0 writes the run folder.
    assert sorted(p.name for p in (tmp_path / "two").iterdir() if p.suffix == ".pt") == ["last.pt"]
    assert (tmp_path / "two" / "model.safetensors").is_file()
