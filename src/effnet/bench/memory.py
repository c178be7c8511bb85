"""Peak memory of one contestant, measured in a fresh process.

Python's ``tracemalloc`` does not see torch's allocations, so this reads the kernel's
resident-set numbers. Each measurement runs in its own subprocess: build the model and
input, reset the peak and read the current RSS (``before``), run ``steps`` steps, read the
peak RSS. ``peak - before`` is what the steps themselves needed (activations kept for
backward, gradients, optimiser state, workspace); ``peak`` is the whole process.

The peak is ``VmHWM`` from ``/proc/self/status``, reset through ``/proc/self/clear_refs``.
``ru_maxrss`` is no use here: Linux carries it over from the parent through fork and exec,
so every child of a big benchmark process reports the parent's size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from dataclasses import asdict

import torch

from .contestants import Setting, inference_runner, set_threads, train_runner


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Reset the kernel's RSS high-water mark (Linux >= 4.0); False where that is impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    hwm = _status_kib("VmHWM")
    if hwm is not None:
        return hwm * 1024
    # Elsewhere: ru_maxrss, in KiB on Linux and bytes on macOS (includes the build peak).
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def measure_here(contestant: str, kind: str, setting: Setting, batch: int, steps: int = 2) -> dict[str, int]:
    set_threads(setting.threads)
    run = train_runner(contestant, setting, batch) if kind == "train" else inference_runner(contestant, setting, batch)
    if setting.device == "cuda":
        # GPU memory: what the caching allocator handed out, the usual measure on CUDA.
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        for _ in range(steps):
            run()
        peak = torch.cuda.max_memory_allocated()
        return {"before_bytes": before, "peak_bytes": peak, "step_bytes": max(peak - before, 0)}
    reset_peak()
    before = current_rss_bytes()
    for _ in range(steps):
        run()
    peak = peak_rss_bytes()
    return {"before_bytes": before, "peak_bytes": peak, "step_bytes": max(peak - before, 0)}


def measure(contestant: str, kind: str, setting: Setting, batch: int, *, steps: int = 2,
            timeout: float = 900) -> dict[str, int]:
    """Run :func:`measure_here` in a fresh Python and return its numbers."""
    command = [sys.executable, "-m", "effnet.bench.memory", "--contestant", contestant, "--kind", kind,
               "--batch", str(batch), "--steps", str(steps), "--setting", json.dumps(asdict(setting))]
    env = {**os.environ, "OMP_NUM_THREADS": str(setting.threads)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"memory measurement of {contestant} ({kind}) failed: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contestant", required=True)
    parser.add_argument("--kind", choices=("train", "infer"), required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--setting", required=True, help="Setting as JSON")
    args = parser.parse_args()
    result = measure_here(args.contestant, args.kind, Setting(**json.loads(args.setting)), args.batch, args.steps)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
