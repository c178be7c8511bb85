"""The search on Ray Tune (a local Ray instance): the strategy behind a Tune ``Searcher``, an
interrupted experiment restored with ``Tuner.restore`` that runs only what was left, and the
same journal and search state as the local backend: `effnet nas retrain` and `effnet nas proxy-check` read
a Tune search's folder, and either backend goes on with the other's search."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from effnet.cli import main
from effnet.lab.experiments import LabOptions
from effnet.lab.trials import Budget
from effnet.search.controller import make_strategy
from effnet.search.loop import STATE, SearchConfig, SearchState, run_search
from effnet.search.tune import run_search_on_tune

from .lab_trials import counted_trial
from .optional import require

require("ray.tune")
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
# Ray's workers and the scripts below import tests.lab_trials; an effnet already on PYTHONPATH still wins.
PYTHONPATH = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)

SCRIPT = """
import sys
from pathlib import Path
from effnet.cli import main
from effnet.lab.experiments import LabOptions
from effnet.lab.trials import Budget
from effnet.search.loop import SearchConfig
from effnet.search.tune import run_search_on_tune
from tests.lab_trials import counted_trial
run_search_on_tune(SearchConfig(strategy=sys.argv[2], evaluations=12, seed=2), Budget(),
                   LabOptions(Path(sys.argv[1]), workers=2, progress=False), trial_fn=counted_trial)
"""


def test_an_interrupted_tune_search_is_restored_and_finishes(tmp_path: Path) -> None:
    strategy = "ppo"   # batches through ConcurrencyLimiter(batch=True); evolution is the same path, asynchronous
    out, calls = tmp_path / "search", tmp_path / "calls"
    env = {**os.environ, "EFFNET_TEST_CALLS": str(calls), "EFFNET_TEST_SLEEP": "1.0", "PYTHONPATH": PYTHONPATH,
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
    assert [r["evaluation"] for r in _state(out)["records"]] == list(range(1, 13))
    assert {line["key"] for line in _journal(out)} == {r["key"] for r in records}


def _state(out: Path) -> dict:
    return torch.load(out / STATE, weights_only=True)


def _journal(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]


def _stop_after_three(trial):  # type: ignore[no-untyped-def]
    """counted_trial, until a fourth training: then the search is interrupted."""
    if len(Path(os.environ["EFFNET_TEST_CALLS"]).read_text().split()) >= 3:
        raise KeyboardInterrupt
    return counted_trial(trial)


def test_a_search_begun_locally_goes_on_on_tune_from_its_state_and_journal(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    config, calls = SearchConfig(strategy="random", evaluations=6, seed=4), tmp_path / "calls"
    monkeypatch.setenv("EFFNET_TEST_CALLS", str(calls))
    monkeypatch.setenv("PYTHONPATH", PYTHONPATH)
    calls.touch()
    with pytest.raises(KeyboardInterrupt):
        run_search(config, Budget(), LabOptions(tmp_path / "search", progress=False), round_size=3,
                   trial_fn=_stop_after_three)
    assert len(_state(tmp_path / "search")["records"]) == 3
    run_search_on_tune(config, Budget(), LabOptions(tmp_path / "search", workers=1, progress=False),
                       trial_fn=counted_trial)
    assert len(calls.read_text().split()) == 6, "the Tune search trained again what the journal held"
    run_search(config, Budget(), LabOptions(tmp_path / "whole", progress=False), round_size=3, trial_fn=counted_trial)
    # The same records as a search that was never interrupted, in the same order.
    assert _state(tmp_path / "search")["records"] == _state(tmp_path / "whole")["records"]
    assert sorted(map(json.dumps, _journal(tmp_path / "search"))) == sorted(map(json.dumps, _journal(tmp_path / "whole")))
    with pytest.raises(ValueError, match="other settings"):
        run_search_on_tune(SearchConfig(strategy="random", evaluations=7, seed=4), Budget(),
                           LabOptions(tmp_path / "search", workers=1, progress=False), trial_fn=counted_trial)


def test_a_local_search_first_trains_what_a_tune_search_had_asked_and_not_told(tmp_path: Path) -> None:
    config = SearchConfig(strategy="random", evaluations=3, seed=5)
    search = SearchState(tmp_path / "search", config, Budget())
    strategy = make_strategy("random", search.skeleton.sizes, config.seed)
    first, asked = strategy.ask(2)
    trial = search.trial(first.tokens)
    result = counted_trial(trial)
    search.journal.append(result)
    cost, value = search.score(trial, result)
    strategy.tell(first.id, value)
    search.add(first, result, cost, value)
    search.save(strategy)          # what a Tune search interrupted with one candidate in flight leaves
    run_search(config, Budget(), LabOptions(tmp_path / "search", progress=False), trial_fn=counted_trial)
    records = _state(tmp_path / "search")["records"]
    assert [r["id"] for r in records] == [0, 1, 2] and records[1]["tokens"] == list(asked.tokens)
    run_search(config, Budget(), LabOptions(tmp_path / "whole", progress=False), trial_fn=counted_trial)
    assert records == _state(tmp_path / "whole")["records"]


def test_search_retrain_and_proxy_check_take_a_tune_search_like_a_local_one(tmp_path: Path, capsys,  # type: ignore[no-untyped-def]
                                                                           fashion_mnist) -> None:
    tiny = ["--epochs", "1", "--train-subset", "256", "--minival", "128", "--workers", "1"]
    search = ["nas", "search", "fmnist", "--strategy", "random", "--trials", "3", "--seed", "1", *tiny]
    tune, local = tmp_path / "tune", tmp_path / "local"
    assert main([*search, "--backend", "tune", "--out", str(tune)]) == 0
    assert main([*search, "--out", str(local)]) == 0
    made = {"journal.jsonl", STATE, "candidates.jsonl", "summary.json", "best.json", "search.png"}
    assert made <= {p.name for p in tune.iterdir()} and made <= {p.name for p in local.iterdir()}
    # The same candidates (random search, same seed), trial keys and fields; the accuracies may
    # differ in the last digits (one thread per Tune trial).
    ours, theirs = _state(tune), _state(local)
    assert (ours["config"], ours["budget"]) == (theirs["config"], theirs["budget"])
    assert [(r["id"], r["tokens"], r["key"]) for r in ours["records"]] == \
        [(r["id"], r["tokens"], r["key"]) for r in theirs["records"]]
    assert [sorted(r) for r in ours["records"]] == [sorted(r) for r in theirs["records"]]
    assert {r["key"]: sorted(r) for r in _journal(tune)} == {r["key"]: sorted(r) for r in _journal(local)}
    assert sorted(json.loads((tune / "summary.json").read_text())) == sorted(json.loads((local / "summary.json").read_text()))
    out = tmp_path / "retrain"
    assert main(["nas", "retrain", str(tune), "--top", "1", "--near", "0", "--random", "1", "--seeds", "1", *tiny,
                 "--no-latency", "--out", str(out)]) == 0
    assert [r["role"] for r in json.loads((out / "retrain.json").read_text())["rows"]] == ["found", "base", "random"]
    assert main(["nas", "proxy-check", str(tune), "--archs", "3", "--factor", "2", "--workers", "1",
                 "--out", str(tmp_path / "check")]) == 0
    assert json.loads((tmp_path / "check" / "proxy_check.json").read_text())["archs"] == 3
    assert "holds no search" not in capsys.readouterr().err
