"""After a search: its top networks retrained beside the hand design and random networks of the
same MAdds (test set read only there), and the proxy's ranking checked against a longer
training (Kendall tau). Journaled like every laboratory run: a second call trains nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from effnet import count, get_spec
from effnet.lab.experiments import LabOptions
from effnet.lab.trials import Budget, Trial
from effnet.search import decode, get_skeleton
from effnet.search.space import describe, describe_spec
from effnet.search.loop import SearchConfig, run_search
from effnet.search.proxy_check import proxy_check, spread
from effnet.search.retrain import contenders, random_same_madds, read_search, retrain

from .lab_trials import counted_trial, trial_with_test_set


@pytest.fixture
def search(tmp_path: Path) -> Path:
    out = tmp_path / "search"
    run_search(SearchConfig(strategy="random", evaluations=14, seed=3), Budget(epochs=2, train_subset=100, minival=50),
               LabOptions(out, progress=False), round_size=7, trial_fn=counted_trial)
    return out


def test_contenders_are_the_best_found_the_base_and_random_networks_of_its_madds(search: Path) -> None:
    found = read_search(search)
    target = count(get_skeleton("fmnist").reference).madds
    # The best by proxy top-1 among the candidates within 40% of T, past the top 3 by reward.
    by_reward = sorted(found.records, key=lambda r: -r["reward"])
    near_t = sorted((r for r in by_reward[3:] if abs(r["madds"] / target - 1) <= 0.4), key=lambda r: -r["top1"])
    assert near_t, "the fixture's search has no candidate near T: widen the tolerance below"
    skeleton, chosen = contenders([found], top=3, near=1, randoms=3, seed=5, tolerance=0.4)
    assert [c.role for c in chosen] == ["found"] * 3 + ["near", "base"] + ["random"] * 3
    assert [c.proxy_reward for c in chosen[:3]] == [r["reward"] for r in by_reward[:3]]
    assert chosen[3].tokens == tuple(near_t[0]["tokens"]) and chosen[3].name == "near-1"
    assert chosen[4].tokens is None   # the hand design (fmnist_lab: expand 4, outside MnasNet's space)
    for c in chosen[5:]:
        assert abs(count(decode(skeleton, c.tokens)).madds / target - 1) <= 0.4
    assert len({c.tokens for c in chosen}) == 8
    assert describe(skeleton, chosen[0].tokens) == describe_spec(decode(skeleton, chosen[0].tokens))
    assert contenders([found], top=3, randoms=3, seed=5, tolerance=0.4)[1] == chosen       # the draw is seeded
    assert contenders([found], top=3, randoms=3, seed=6, tolerance=0.4)[1][5:] != chosen[5:]
    assert [c.role for c in contenders([found], top=3, near=0, randoms=3, seed=5)[1]] == ["found"] * 3 + ["base"] + \
        ["random"] * 3
    with pytest.raises(ValueError, match="distinct networks; --top 40"):
        contenders([found], top=40)
    with pytest.raises(ValueError, match="allow a larger tolerance"):
        random_same_madds(skeleton, 3, tolerance=0.0, draws=50)


def test_retraining_reads_the_test_set_and_resumes_from_its_journal(search: Path, tmp_path: Path) -> None:
    out, calls = tmp_path / "retrain", tmp_path / "calls"
    os.environ["EFFNET_TEST_CALLS"] = str(calls)
    try:
        summary = retrain([search], Budget(epochs=4), LabOptions(out, progress=False), near=0, seeds=(0, 1, 2),
                          trial_fn=trial_with_test_set, latency=False)
        assert len(calls.read_text().split()) == 21
        again = retrain([search], Budget(epochs=4), LabOptions(out, progress=False), near=0, seeds=(0, 1, 2),
                        trial_fn=trial_with_test_set, latency=False)
        assert len(calls.read_text().split()) == 21, "a finished training ran again"
    finally:
        del os.environ["EFFNET_TEST_CALLS"]
    assert again["rows"] == summary["rows"]
    rows = summary["rows"]
    assert len(rows) == 7 and all(r["seeds"] == 3 for r in rows)
    target = count(get_skeleton("fmnist").reference).madds
    for r in rows:  # trial_with_test_set: test = minival - 1 on every seed
        assert r["test_mean"] == pytest.approx(r["minival_mean"] - 1) and r["test_ci95"] > 0
        # The search's own objective (soft: ACC x (MAdds / T)^-0.07) on the test accuracy.
        assert r["test_reward"] == pytest.approx(r["test_mean"] / 100 * (r["madds"] / target) ** -0.07)
    table = (out / "retrain.md").read_text()
    assert "hand-designed base" in table and "random, same MAdds" in table and "found-1" in table
    assert "test reward" in table
    assert (out / "retrain.png").stat().st_size > 0
    # Every contender as a network file the other commands read.
    found_1 = get_spec(str(out / "networks" / "found-1.json"))
    assert count(found_1).madds == rows[0]["madds"]
    assert get_spec(str(out / "networks" / "base.json")).stages == get_skeleton("fmnist").reference.stages
    assert json.loads((out / "retrain.json").read_text())["budget"]["epochs"] == 4


def test_a_test_set_trial_has_a_key_of_its_own_and_old_keys_do_not_move() -> None:
    spec = get_skeleton("fmnist").reference
    plain = Trial("search", "random", spec, Budget(), 0)
    assert Trial("search", "random", spec, Budget(), 0, on_test=True).key != plain.key
    # The key of a trial without on_test is what journals written before the field hold.
    assert plain.key == Trial("search", "random", spec, Budget(), 0, data_dir="/elsewhere").key


def test_the_proxy_check_spreads_over_the_ranking_and_reports_kendall_tau(search: Path, tmp_path: Path) -> None:
    records = [{"top1": float(v), "tokens": [v]} for v in range(20)]
    picked = spread(records, 5)
    assert [r["top1"] for r in picked] == [19, 14, 9, 5, 0]   # ranks 0, 5, 10, 14, 19 of 20
    with pytest.raises(ValueError, match="needs 30"):
        spread(records, 30)
    summary = proxy_check(search, LabOptions(tmp_path / "check", progress=False), archs=6, factor=3,
                          trial_fn=counted_trial)
    assert summary["archs"] == 6 and summary["longer_budget"]["epochs"] == 6 and summary["proxy_budget"]["epochs"] == 2
    # counted_trial's accuracy depends on the network only: the longer training ranks as the proxy did.
    assert summary["kendall_tau"] == pytest.approx(1.0)
    assert "Kendall tau = 1.000" in (tmp_path / "check" / "proxy_check.md").read_text()
    with pytest.raises(ValueError, match="at least 2x"):
        proxy_check(search, LabOptions(tmp_path / "check2", progress=False), factor=1, trial_fn=counted_trial)


def test_a_folder_without_a_search_says_how_to_make_one(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from effnet.cli import main

    with pytest.raises(FileNotFoundError, match="effnet nas search"):
        read_search(tmp_path)
    assert main(["search-retrain", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert main(["search-proxy-check", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if ": error:" in line]   # not the old-name notes
    assert len(errors) == 2 and all("holds no search" in line and "effnet nas search" in line for line in errors)


@pytest.mark.slow
def test_retrain_and_proxy_check_train_real_networks_on_fashion_mnist(tmp_path: Path, capsys, fashion_mnist) -> None:  # type: ignore[no-untyped-def]
    from effnet.cli import main

    tiny = ["--epochs", "1", "--train-subset", "256", "--minival", "128", "--workers", "1"]
    search = tmp_path / "search"
    assert main(["search-baseline", "fmnist", "--strategy", "random", "--trials", "3", "--round", "3", *tiny,
                 "--out", str(search)]) == 0
    out = tmp_path / "retrain"
    assert main(["search-retrain", str(search), "--top", "1", "--near", "0", "--random", "1", "--seeds", "1", *tiny,
                 "--out", str(out)]) == 0
    assert "retrained from scratch" in capsys.readouterr().out
    rows = json.loads((out / "retrain.json").read_text())["rows"]
    assert [r["role"] for r in rows] == ["found", "base", "random"]
    for r in rows:  # the test set's 10,000 images, read once per training
        assert r["seeds"] == 1 and 0 < r["test_mean"] <= 100 and r["latency_ms"] > 0 and 0 < r["test_reward"] < 1.5
    assert main(["search-proxy-check", str(search), "--archs", "3", "--factor", "2", "--workers", "1",
                 "--out", str(tmp_path / "check")]) == 0
    check = json.loads((tmp_path / "check" / "proxy_check.json").read_text())
    assert check["archs"] == 3 and check["longer_budget"]["epochs"] == 2 and -1 <= check["kendall_tau"] <= 1
