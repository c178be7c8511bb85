"""The search that found B0: the space decodes to real specs (B0's own tokens give B0 exactly),
rewards follow MnasNet and TuNAS, strategies resume exactly from their state, the controller
learns (PPO within its clip), a killed search continues without retraining a finished
candidate, and every NAS-Bench-Graph table is read without unpickling code."""

from __future__ import annotations

import itertools
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import effnet
from effnet import count, create_model, get_spec
from effnet.lab.experiments import LabOptions
from effnet.lab.trials import Budget
from effnet.search import RandomSearch, RegularizedEvolution, Reward, decode, encode, get_skeleton, make_strategy
from effnet.search.loop import SearchConfig, run_search
from effnet.spec import SpecError

from .optional import require
from .lab_trials import counted_trial

ROOT = Path(__file__).resolve().parents[1]


def test_b0_reference_tokens_decode_to_b0_exactly() -> None:
    skeleton = get_skeleton("b0")
    b0 = get_spec("efficientnet_b0")
    tokens = encode(skeleton, b0)
    spec = decode(skeleton, tokens)
    assert spec.stages == b0.stages and spec.stem == b0.stem and spec.head == b0.head
    assert count(spec).params == count(b0).params == 5_288_548
    assert count(spec).madds == count(b0).madds
    assert sum(p.numel() for p in effnet.create_model(spec).parameters()) == 5_288_548
    assert skeleton.size() == 288 ** 7   # 4 ops x 2 kernels x 2 SE x 2 skips x 3 widths x 3 depths, 7 stages


def test_space_size_is_the_product_of_its_choices() -> None:
    skeleton = get_skeleton("fmnist")
    assert skeleton.sizes == (4, 2, 2, 2, 3, 3) * 4
    assert skeleton.size() == (4 * 2 * 2 * 2 * 3 * 3) ** 4


@pytest.mark.parametrize("name", ["fmnist", "b0"])
def test_sampled_points_build_count_and_train_a_step(name: str) -> None:
    skeleton = get_skeleton(name)
    strategy = RandomSearch(skeleton.sizes, seed=3)
    for candidate in strategy.ask(6 if name == "fmnist" else 2):
        spec = decode(skeleton, candidate.tokens)
        model = effnet.create_model(spec)
        assert sum(p.numel() for p in model.parameters()) == count(spec).params
        size = spec.resolution if name == "fmnist" else 64
        x = torch.randn(2, spec.in_chans, size, size)
        model(x).sum().backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_every_token_tuple_decodes_to_a_valid_countable_spec(data) -> None:  # type: ignore[no-untyped-def]
    skeleton = get_skeleton(data.draw(st.sampled_from(["fmnist", "b0"])))
    tokens = tuple(data.draw(st.integers(0, n - 1)) for n in skeleton.sizes)
    spec = decode(skeleton, tokens)
    counts = count(spec)
    assert counts.params > 0 and counts.madds > 0
    assert [s.stride for s in spec.stages] == [s.stride for s in skeleton.reference.stages]
    assert decode(skeleton, encode(skeleton, spec)) == spec   # in the space, and round-trips


def test_bad_tokens_say_which_and_why() -> None:
    skeleton = get_skeleton("fmnist")
    with pytest.raises(SpecError, match="takes 24 tokens"):
        decode(skeleton, [0] * 5)
    with pytest.raises(SpecError, match="token 4 .stage 1, filters. must be in 0..2"):
        decode(skeleton, [0, 0, 0, 0, 3] + [0] * 19)
    with pytest.raises(SpecError, match="outside the space"):
        encode(skeleton, skeleton.reference)   # the lab base uses expand 4, not in {1, 3, 6}
    with pytest.raises(SpecError, match="unknown skeleton"):
        get_skeleton("b9")


def test_rewards_follow_mnasnet_and_tunas() -> None:
    soft, hard, absolute = Reward("soft", 100.0), Reward("hard", 100.0), Reward("abs", 100.0)
    assert soft(0.8, 100.0) == pytest.approx(0.8)
    assert soft(0.8, 200.0) == pytest.approx(0.8 * 2 ** -0.07)   # doubling the cost ~ -5% relative
    assert soft(0.8, 50.0) == pytest.approx(0.8 * 0.5 ** -0.07)
    assert hard(0.8, 50.0) == pytest.approx(0.8) and hard(0.8, 200.0) == pytest.approx(0.4)
    assert absolute(0.8, 150.0) == pytest.approx(0.8 - 0.07 * 0.5) == absolute(0.8, 50.0)
    assert soft(None, 100.0) == 0.0
    with pytest.raises(ValueError, match="unknown reward"):
        Reward("latency")


@pytest.mark.parametrize("name", ["random", "evolution", "ppo", "reinforce"])
def test_a_strategy_restored_from_its_state_continues_exactly(name: str, tmp_path: Path) -> None:
    sizes = (3, 2, 4, 2, 5)
    target = (2, 1, 3, 0, 4)

    def run(strategy, rounds: int) -> list[tuple[int, ...]]:  # type: ignore[no-untyped-def]
        seen = []
        for _ in range(rounds):
            for c in strategy.ask(strategy.batch_size if strategy.batch_size > 1 else 2):
                seen.append(c.tokens)
                strategy.tell(c.id, sum(a == b for a, b in zip(c.tokens, target)) / 5)
        return seen

    straight = make_strategy(name, sizes, seed=5)
    whole = run(straight, 8)
    first = make_strategy(name, sizes, seed=5)
    part = run(first, 4)
    torch.save(first.state_dict(), tmp_path / "state.pt")
    resumed = make_strategy(name, sizes, seed=123)   # another seed: everything must come from the state
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert part + run(resumed, 4) == whole
    with pytest.raises(ValueError, match="use the same --strategy"):
        make_strategy("random" if name != "random" else "evolution", sizes).load_state_dict(first.state_dict())
    if name in ("ppo", "reinforce"):   # a resumed search keeps the settings it began with, not today's defaults
        began, later = make_strategy(name, sizes, lr=0.02, batch_size=7, entropy_weight=0.5), make_strategy(name, sizes)
        later.load_state_dict(began.state_dict())
        assert later.settings == began.settings and later.batch_size == 7
        older = {k: v for k, v in began.state_dict().items() if k != "settings"}   # saved before settings were
        later.load_state_dict(older)
        assert (later.batch_size, later.entropy_weight) == (10, 1e-5)   # NASNet's, which it began with


TOY_SIZES, TOY_BEST = (3, 3, 3, 3), (2, 0, 1, 2)


def _toy_reward(tokens: tuple[int, ...]) -> float:
    return sum(a == b for a, b in zip(tokens, TOY_BEST)) / len(TOY_BEST)   # separable over tokens


def _best_token_probability(strategy) -> float:  # type: ignore[no-untyped-def]
    """The controller's probability of the best token, averaged over positions: exactly the
    expected toy reward, summed over all 81 sequences (1/3 for a uniform controller)."""
    every = list(itertools.product(*(range(n) for n in TOY_SIZES)))
    with torch.no_grad():
        p = strategy.policy(torch.tensor(every))[1].exp()
    return float(sum(pi * _toy_reward(t) for pi, t in zip(p.tolist(), every)))


def _toy_update(strategy) -> float:  # type: ignore[no-untyped-def]
    """One batch asked, rewarded and learnt from; returns the largest factor by which the
    update raised the probability of a sequence of that batch."""
    batch = strategy.ask(strategy.batch_size)
    tokens = torch.tensor([c.tokens for c in batch])
    with torch.no_grad():
        before = strategy.policy(tokens)[1]
    for c in batch:
        strategy.tell(c.id, _toy_reward(c.tokens))
    with torch.no_grad():
        return float((strategy.policy(tokens)[1] - before).exp().max())


@pytest.mark.parametrize("method", ["ppo", "reinforce"])
def test_the_controller_learns_the_best_tokens_of_a_toy_reward(method: str) -> None:
    """With its default settings the controller's probability of the best tokens rises from
    1/3 past 0.6 within 20 updates; a flipped loss sign drives it towards 0 instead."""
    strategy = make_strategy(method, TOY_SIZES, seed=0)
    assert _best_token_probability(strategy) == pytest.approx(1 / 3, abs=0.03)
    for _ in range(20):
        _toy_update(strategy)
    assert strategy.updates == 20 and _best_token_probability(strategy) > 0.6


def test_ppo_moves_the_policy_no_further_than_its_clip_allows() -> None:
    """PPO's ten epochs on one batch: the clipped objective stops pushing a sequence whose
    probability has grown by 1 + clip, so the first update grows none by much more (Adam's
    momentum carries it a little past); without the clip it grows them about ten times as far."""
    clipped = _toy_update(make_strategy("ppo", TOY_SIZES, seed=0, lr=5e-3, batch_size=10))        # 2.8 measured
    unclipped = _toy_update(make_strategy("ppo", TOY_SIZES, seed=0, lr=5e-3, batch_size=10, clip=1e9))  # 32
    assert 1.2 < clipped < 8 < unclipped


def test_evolution_mutates_one_token_and_the_oldest_dies() -> None:
    evolution = RegularizedEvolution((3, 3, 3, 3), seed=0, population=4, sample=2)
    for c in evolution.ask(4):
        evolution.tell(c.id, float(sum(c.tokens)))
    first = list(evolution.population)
    child = evolution.ask(1)[0]
    assert min(sum(a != b for a, b in zip(child.tokens, m[0])) for m in first) <= 1
    evolution.tell(child.id, -1.0)
    assert list(evolution.population) == first[1:] + [(child.tokens, -1.0)]   # aging, not the worst
    with pytest.raises(ValueError, match="sample <= population"):
        RegularizedEvolution((2,), population=2, sample=3)


SCRIPT = """
import sys
from pathlib import Path
from effnet.lab.experiments import LabOptions
from effnet.lab.trials import Budget
from effnet.search.loop import SearchConfig, run_search
from tests.lab_trials import counted_trial
run_search(SearchConfig(strategy=sys.argv[2], evaluations=30, seed=4), Budget(), LabOptions(Path(sys.argv[1]),
           progress=False), round_size=5, trial_fn=counted_trial)
"""


@pytest.mark.parametrize("strategy", ["evolution", "ppo"])
def test_a_killed_search_resumes_without_retraining_and_ends_as_an_uninterrupted_one(tmp_path: Path,
                                                                                    strategy: str) -> None:
    out, calls = tmp_path / "search", tmp_path / "calls"
    env = {**os.environ, "EFFNET_TEST_CALLS": str(calls), "EFFNET_TEST_SLEEP": "0.1", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out), strategy], env=env, cwd=ROOT)
    journal = out / "journal.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not journal.exists() or len(journal.read_text().splitlines()) < 12):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = {json.loads(line)["key"] for line in journal.read_text().splitlines()}
    assert 12 <= len(before) < 30
    started = len(calls.read_text().split())   # the trials begun before the kill (one may not have finished)
    env["EFFNET_TEST_SLEEP"] = "0"
    subprocess.run([sys.executable, "-c", SCRIPT, str(out), strategy], env=env, cwd=ROOT, check=True, timeout=300)
    resumed = json.loads((out / "summary.json").read_text())
    again = calls.read_text().split()[started:]
    assert not set(again) & before, "a finished candidate was trained again"
    assert len(set(again)) == len(again)
    straight = run_search(SearchConfig(strategy=strategy, evaluations=30, seed=4), Budget(),
                          LabOptions(tmp_path / "straight", progress=False), round_size=5, trial_fn=counted_trial)
    assert resumed["best_so_far"] == straight["best_so_far"] and resumed["best"]["tokens"] == straight["best"]["tokens"]
    lines = (out / "candidates.jsonl").read_text().splitlines()
    assert len(lines) == 30 and json.loads(lines[0])["network"][0].startswith(("Conv", "SepConv", "MBConv"))


def test_resuming_with_other_settings_is_refused(tmp_path: Path) -> None:
    options = LabOptions(tmp_path, progress=False)
    run_search(SearchConfig(evaluations=3), Budget(), options, trial_fn=counted_trial)
    with pytest.raises(ValueError, match="other settings"):
        run_search(SearchConfig(evaluations=3, reward="hard"), Budget(), options, trial_fn=counted_trial)


# -- NAS-Bench-Graph ------------------------------------------------------------------------

def test_a_table_with_code_in_it_is_refused(tmp_path: Path) -> None:
    from effnet.search.nas_bench_graph import read_table

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    (tmp_path / "evil.bench").write_bytes(pickle.dumps({0: Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="refusing global"):
        read_table(tmp_path / "evil.bench")
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "ok.bench").write_bytes(pickle.dumps({7: {"valid_perf": np.float64(0.5), "perf": 0.4, "latency": 0.1,
                                                          "para": np.float64(1.0)}}))
    assert read_table(tmp_path / "ok.bench") == {7: {"valid_perf": 0.5, "perf": 0.4, "latency": 0.1, "para": 1.0}}


def test_strategies_on_nas_bench_graph_write_a_summary_and_plot(tmp_path: Path) -> None:
    require("nas_bench_graph")
    from effnet.search.nas_bench_graph import Table
    from effnet.search.table_benchmark import run_table_benchmark

    table = Table.load("cora")
    assert len(table.entries) == 26_206 and table.sizes == (9, 9, 9, 9, 9)
    entry = table.lookup((8, 0, 1, 2, 3))   # links [0,1,2,3] (a chain), gat -> gcn -> gin -> cheb
    assert entry is not None and 0 < entry["valid_perf"] < 1
    assert table.lookup((0, 8, 8, 8, 8)) is None   # four skips: not an architecture
    summary = run_table_benchmark("cora", ["random", "evolution", "ppo"], 30, 3, tmp_path)
    assert set(summary["strategies"]) == {"random", "evolution", "ppo"}
    for entry in summary["strategies"].values():
        after = entry["best_reward_after_25"]
        assert after["q1"] <= after["median"] <= after["q3"] <= summary["table_optimum_reward"] + 1e-12
        assert after["mean"] <= summary["table_optimum_reward"] + 1e-12 and after["ci95"] >= 0
    versus = summary["strategies"]["ppo"]["against_random_after_25"]
    assert versus["verdict"] in ("ahead", "behind", "tie") and "against_random_after_25" not in summary["strategies"]["random"]
    assert summary["settings"]["ppo"]["batch_size"] == 5 and summary["settings"]["evolution"] == {"population": 20, "sample": 5}
    assert (tmp_path / "best_so_far.png").stat().st_size > 0
    assert json.loads((tmp_path / "summary.json").read_text())["evaluations"] == 30


def test_every_table_the_package_ships_is_read_proteins_over_its_five_operations() -> None:
    """Proteins is keyed by the package's own hash over gcn, sage, arma, fc and skip: every
    point but the all-skip ones has an entry, and every entry is some point's."""
    architecture = require("nas_bench_graph.architecture")
    from effnet.search.nas_bench_graph import DATASETS, Table

    assert {p.stem for p in (Path(architecture.__file__).parent / "light").glob("*.bench")} == set(DATASETS)
    table = Table.load("proteins")
    assert table.sizes == (9, 5, 5, 5, 5) and table.ops == ["gcn", "sage", "arma", "fc", "skip"]
    points = list(itertools.product(*(range(n) for n in table.sizes)))
    keys = {point: table.find(point)[0] for point in points}
    assert {p for p, key in keys.items() if key is None} == {(link, 4, 4, 4, 4) for link in range(9)}
    assert set(keys.values()) - {None} == set(table.entries) and len(table.entries) == 2_021
    with pytest.raises(ValueError, match="unknown NAS-Bench-Graph data set 'mnist'"):
        Table.load("mnist")


@pytest.mark.slow
def test_effnet_search_trains_real_candidates_on_fashion_mnist(tmp_path: Path, capsys, fashion_mnist) -> None:  # type: ignore[no-untyped-def]
    from effnet.cli import main

    out = tmp_path / "search"
    argv = ["search-baseline", "fmnist", "--strategy", "ppo", "--trials", "3", "--round", "3", "--epochs", "1",
            "--train-subset", "256", "--minival", "128", "--workers", "1", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "ppo search on the fmnist skeleton" in printed and "target T" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluations"] == 3 and summary["failed"] == 0
    assert 0 < summary["best"]["top1"] <= 100 and summary["target"] == count(get_skeleton("fmnist").reference).madds
    assert main(argv) == 0   # all in the state and journal: nothing trains again
    assert len((out / "journal.jsonl").read_text().splitlines()) == 3
    # The found network, as a file every other command reads.
    best = out / "best.json"
    found = get_spec(str(best))
    assert count(found).madds == summary["best"]["madds"] and found.name == "searched_fmnist_ppo_s0"
    assert json.loads(best.read_text())["search"]["tokens"] == summary["best"]["tokens"]
    assert main(["show", str(best)]) == 0 and "searched_fmnist_ppo_s0" in capsys.readouterr().out
    model = create_model(str(best)).eval()
    assert model(torch.zeros(1, found.in_chans, found.resolution, found.resolution)).shape == (1, found.num_classes)


def test_a_network_file_that_is_not_one_says_what_is_wrong(tmp_path: Path) -> None:
    from effnet.train.config import Config, ConfigError, validate

    with pytest.raises(SpecError, match="no network description"):
        get_spec(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SpecError, match="not a JSON network description"):
        get_spec(str(tmp_path / "bad.json"))
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(SpecError, match="holds list"):
        get_spec(str(tmp_path / "list.json"))
    (tmp_path / "partial.json").write_text('{"name": "x"}')
    with pytest.raises(SpecError, match="partial.json.*incomplete"):
        get_spec(str(tmp_path / "partial.json"))
    config = Config()
    config.model.spec, config.model.weights = str(tmp_path / "best.json"), "lite0.official"
    with pytest.raises(ConfigError, match="model.spec"):
        validate(config)
    config.model.spec, config.model.weights = "fmnist_lab", None
    with pytest.raises(ConfigError, match=".json"):
        validate(config)
    # `effnet train model.spec=FILE` trains the network the file describes.
    from effnet.spec_json import write_spec
    from effnet.train.build import _network

    written = write_spec(get_spec("fmnist_s0"), tmp_path / "net.json", note="ignored by readers")
    config.model.spec = str(written)
    validate(config)
    assert _network(config, None, None) == get_spec("fmnist_s0")
