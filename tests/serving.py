"""Helpers for the tests that start a real server (`effnet serve` in a subprocess)."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image

import effnet
from effnet.data.fashion_mnist import CLASSES
from effnet.data.transforms import default_preprocessing
from effnet.weights.files import save_weights
from effnet.weights.metadata import WeightsMeta


def small_weights(path: Path, seed: int = 0) -> Path:
    """fmnist_s0 with a random, non-zero classifier and Fashion-MNIST's class names."""
    torch.manual_seed(seed)
    model = effnet.create_model("fmnist_s0")
    with torch.no_grad():
        model.classifier.weight.normal_(0, 0.5)
    spec = model.spec
    meta = WeightsMeta(architecture=spec.name, padding=spec.padding, bn_eps=spec.bn_eps,
                       preprocessing=default_preprocessing(spec.resolution, spec.in_chans), num_classes=spec.num_classes,
                       class_names=CLASSES, spec=spec, source="test")
    return save_weights(path, model.state_dict(), meta)


def png_bytes(width: int = 40, height: int = 30, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def flat_png(width: int, height: int) -> bytes:
    """Many pixels in few bytes (one colour compresses to almost nothing)."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def small_model() -> torch.nn.Module:
    """fmnist_s0 with a classifier that is not all zeros, so scores differ by image."""
    torch.manual_seed(0)
    model = effnet.create_model("fmnist_s0")
    with torch.no_grad():
        model.classifier.weight.normal_(0, 0.5)
    return model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(*args: str, port: int, timeout: float = 180.0) -> subprocess.Popen:
    """`effnet serve ARGS --port PORT`, returned once /v2/health/ready says ready."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "effnet", "serve", *args, "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"effnet serve exited with {proc.returncode}:\n{proc.stdout.read()}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"effnet serve was not ready after {timeout:g} s:\n{proc.stdout.read()}")  # type: ignore[union-attr]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(30)


@dataclass(frozen=True)
class Process:
    """A process by pid and start time (clock ticks after boot), so that a later process that
    reuses the pid is not taken for it (Linux /proc)."""

    pid: int
    started: int

    def alive(self) -> bool:
        stat = _stat(self.pid)
        return stat is not None and stat[1] == self.started and stat[2] != "Z"

    def command(self) -> str:
        try:
            return Path(f"/proc/{self.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return ""


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, start time, state) from /proc/PID/stat; None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()   # after "pid (name)", which may hold spaces
    return int(fields[1]), int(fields[19]), fields[0]


def process_tree(pid: int) -> set[Process]:
    """The process ``pid`` and every process below it, as they are now."""
    children: dict[int, list[Process]] = {}
    for entry in Path("/proc").iterdir():
        stat = _stat(int(entry.name)) if entry.name.isdigit() else None
        if stat is not None:
            children.setdefault(stat[0], []).append(Process(int(entry.name), stat[1]))
    root = _stat(pid)
    found, todo = set(), [Process(pid, root[1])] if root is not None else []
    while todo:
        process = todo.pop()
        found.add(process)
        todo.extend(children.get(process.pid, []))
    return found


def stop_tree(proc: subprocess.Popen, known: Iterable[Process] = ()) -> None:
    """Stop a server and what it started: its process tree as it is now, and ``known``
    (processes seen below it earlier, which may have outlived it). Nothing else is touched."""
    left = process_tree(proc.pid) | set(known)
    stop(proc)
    for process in left:
        if process.pid != proc.pid and process.alive():
            try:
                os.kill(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
