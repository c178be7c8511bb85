"""The search on Ray Tune (a local Ray instance): the strategy behind a Tune ``Searcher``, an
interrupted experiment restored with ``Tuner.restore`` that runs only what was left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .optional import require

require("ray.tune")
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
from pathlib import Path
from effnet.lab.experiments import RunOptions
from effnet.lab.trials import Budget
from effnet.search.loop import SearchConfig
from effnet.search.tune import run_search_on_tune
from tests.lab_trials import counted_trial
run_search_on_tune(SearchConfig(strategy=sys.argv[2], evaluations=12, seed=2), Budget(),
                   RunOptions(Path(sys.argv[1]), workers=2, progress=False), trial_fn=counted_trial)
"""


def test_an_interrupted_tune_search_is_restored_and_finishes(tmp_path: Path) -> None:
    strategy = "ppo"   # batches through ConcurrencyLimiter(batch=True); evolution is the same path, asynchronous
    out, calls = tmp_path / "search", tmp_path / "calls"
    env = {**os.environ, "EFFNET_TEST_CALLS": str(calls), "EFFNET_TEST_SLEEP": "1.0", "PYTHONPATH": str(ROOT),
           "RAY_DEDUP_LOGS": "0"}
    process = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out), strategy], env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline and (not calls.exists() or len(calls.read_text().split()) < 4):
        time.sleep(0.1)
    assert calls.exists(), "no trial ran"
    process.send_signal(signal.SIGINT)           # Tune saves the experiment and stops
    assert process.wait(120) is not None
    first = len(calls.read_text().split())
    assert 4 <= first < 12
    env["EFFNET_TEST_SLEEP"] = "0"
    subprocess.run([sys.executable, "-c", SCRIPT, str(out), strategy], env=env, cwd=ROOT, check=True, timeout=300,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluations"] == 12
    records = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in records) == list(range(12))   # the strategy's own numbering went on
    ran = calls.read_text().split()
    assert len(ran) <= 12 + 2, f"{len(ran)} trainings for 12 candidates: the restore started over"
