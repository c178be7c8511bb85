"""The latency model of a runtime: pieces of a network, a table built on a tiny skeleton (in
onnxruntime, seconds), its resume after a cut, its refusal on a foreign CPU, its correction, and
the search's reward with latency predicted by the table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from effnet import get_spec
from effnet.cli import main
from effnet.lab.experiments import LabOptions
from effnet.lab.trials import Budget
from effnet.model import build_model
from effnet.search import latency_build, latency_runtime, space
from effnet.search.latency_build import build_table, sample_networks
from effnet.search.latency_parts import network_parts, part_module, skeleton_parts
from effnet.search.latency_runtime import Target
from effnet.search.latency_table import LatencyTable, LatencyTableError, fit_correction
from effnet.search.loop import SearchConfig, cost_function, default_target, run_search
from effnet.search.rewards import Reward
from effnet.search.space import Skeleton, decode

from .lab_trials import counted_trial
from .optional import require

TARGET = Target("onnx", "fp32", 1)


def tiny_skeleton() -> Skeleton:
    """One stage of the Fashion-MNIST base at 8 px: a space of a few hundred networks."""
    spec = get_spec("fmnist_lab")
    return Skeleton("tiny", spec.replace(stages=spec.stages[:1], resolution=8, bn_momentum=0.1))


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> Skeleton:
    monkeypatch.setitem(space.SKELETONS, "tiny", tiny_skeleton)
    # Short timings: the test checks the bookkeeping, not the milliseconds.
    real = latency_build.measure_group
    monkeypatch.setattr(latency_build, "measure_group", lambda runs, rounds: real(runs, rounds=1, min_time=0.001, warmup=1))
    return tiny_skeleton()


@pytest.mark.parametrize("name", ["efficientnet_b0", "fmnist_lab"])
def test_the_pieces_of_a_network_run_in_a_chain_give_the_model_s_output(name: str) -> None:
    spec = get_spec(name).replace(resolution=33)  # odd: every stride rounds up
    model = build_model(spec).eval()
    parts = network_parts(spec)
    assert len(parts) == sum(stage.repeats for stage in spec.stages) + 2 + bool(spec.head.channels)
    x = torch.randn(1, spec.in_chans, 33, 33)
    with torch.no_grad():
        y = x
        for part in parts:
            assert tuple(y.shape[1:]) == part.shape, part.key
            y = part_module(model, part)(y)
        torch.testing.assert_close(y, model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["tiny", "fmnist", "b0"])
def test_every_network_of_a_space_is_made_of_pieces_the_skeleton_lists(tiny: Skeleton, name: str) -> None:
    skeleton = space.get_skeleton(name)
    pieces = skeleton_parts(skeleton)
    assert {p.key for p in network_parts(skeleton.reference)} <= set(pieces)  # the hand base, in the space or not
    for tokens in sample_networks(skeleton, 200, seed=5):
        assert {p.key for p in network_parts(decode(skeleton, tokens))} <= set(pieces)


def test_the_correction_recovers_a_known_line() -> None:
    sums, pieces = [1.0, 2.0, 3.0, 5.0, 8.0, 4.0], [3, 5, 4, 6, 9, 7]
    measured = [0.8 * s + 0.01 * n + 0.05 for s, n in zip(sums, pieces)]
    fit = fit_correction(sums, pieces, measured)
    assert fit["a"] == pytest.approx(0.8) and fit["b"] == pytest.approx(0.01) and fit["c"] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="at least 4"):
        fit_correction(sums[:3], pieces[:3], measured[:3])


def test_a_table_on_a_tiny_skeleton_predicts_its_networks(tiny: Skeleton, tmp_path: Path) -> None:
    require("onnxruntime")
    table = build_table("tiny", TARGET, tmp_path / "tiny.json", fit_networks=5, workers=1, progress=False)
    assert len(table.entries) == len(skeleton_parts(tiny)) and all(ms > 0 for ms in table.entries.values())
    assert table.correction is not None and table.correction["networks"] == 5
    assert table.meta["runtime"].startswith("onnxruntime ") and table.meta["threads"] == 1
    loaded = LatencyTable.load(tmp_path / "tiny.json")
    for tokens in sample_networks(tiny, 20, seed=3):
        spec = decode(tiny, tokens)
        assert loaded.predict_ms(spec) == pytest.approx(table.predict_ms(spec))
        total, n = loaded.table_sum(spec)
        assert total == pytest.approx(sum(loaded.entries[p.key] for p in network_parts(spec))) and n >= 3
    with pytest.raises(LatencyTableError, match="never measured"):
        loaded.predict_ms(get_spec("fmnist_lab"))


def test_a_cut_build_resumes_and_times_only_what_is_left(tiny: Skeleton, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    require("onnxruntime")
    timed: list[str] = []
    measure = latency_build.measure_group

    def cut_after_one_chunk(runs, rounds):  # type: ignore[no-untyped-def]
        if timed:
            raise KeyboardInterrupt
        timed.extend(runs)
        return measure(runs, rounds)

    monkeypatch.setattr(latency_build, "measure_group", cut_after_one_chunk)
    with pytest.raises(KeyboardInterrupt):
        build_table("tiny", TARGET, tmp_path / "t.json", fit_networks=0, workers=1, progress=False)
    assert not (tmp_path / "t.json").exists() and len(timed) == latency_build.CHUNK
    exported = []
    retimed: list[str] = []
    monkeypatch.setattr(latency_build, "measure_group", lambda runs, rounds: retimed.extend(runs) or measure(runs, rounds))
    real_export = latency_build._export_one
    monkeypatch.setattr(latency_build, "_export_one", lambda job: exported.append(job) or real_export(job))
    table = build_table("tiny", TARGET, tmp_path / "t.json", fit_networks=0, workers=1, progress=False)
    journal = [json.loads(line) for line in (tmp_path / "t.json.parts" / "journal.jsonl").read_text().splitlines()]
    keys = [r["key"] for r in journal if "key" in r]
    assert len(keys) == len(set(keys)) == len(table.entries)  # each piece timed once over both runs
    assert not set(retimed) & set(timed) and len(retimed) == len(table.entries) - latency_build.CHUNK
    assert exported == []  # the cut run had exported every piece before timing began: none is redone


def test_a_table_from_another_cpu_or_a_journal_of_other_settings_is_refused(tiny: Skeleton, tmp_path: Path) -> None:
    require("onnxruntime")
    build_table("tiny", TARGET, tmp_path / "t.json", fit_networks=0, workers=1, progress=False)
    data = json.loads((tmp_path / "t.json").read_text())
    data["meta"]["cpu"] = {"model": "Some Other CPU", "flags": ["avx2"], "fingerprint": "0" * 16}
    (tmp_path / "t.json").write_text(json.dumps(data))
    with pytest.raises(LatencyTableError, match="another CPU .*Some Other CPU"):
        LatencyTable.load(tmp_path / "t.json")
    assert LatencyTable.load(tmp_path / "t.json", allow_foreign=True).entries
    assert main(["nas", "search", "tiny", "--cost", "latency", "--latency-table", str(tmp_path / "t.json"),
                 "--trials", "1", "--out", str(tmp_path / "s")]) == 2
    with pytest.raises(LatencyTableError, match="other settings"):
        build_table("tiny", Target("onnx", "fp32", 2), tmp_path / "t.json", fit_networks=0, workers=1, progress=False)


def test_the_search_rewards_latency_predicted_by_the_table(tiny: Skeleton, tmp_path: Path) -> None:
    require("onnxruntime")
    path = tmp_path / "t.json"
    table = build_table("tiny", TARGET, path, fit_networks=0, workers=1, progress=False)
    config = SearchConfig(skeleton="tiny", cost="latency", latency_table=str(path), evaluations=6)
    assert default_target(config) == pytest.approx(table.predict_ms(tiny.reference))
    some = decode(tiny, sample_networks(tiny, 1, seed=9)[0])
    assert cost_function(config)(some) == pytest.approx(table.predict_ms(some))
    summary = run_search(config, Budget(), LabOptions(tmp_path / "s", progress=False), round_size=3,
                         trial_fn=counted_trial)
    reward = Reward("soft", summary["target"])
    for line in (tmp_path / "s" / "candidates.jsonl").read_text().splitlines():
        record = json.loads(line)
        assert record["cost"] == pytest.approx(table.predict_ms(decode(tiny, record["tokens"])))
        assert record["reward"] == pytest.approx(reward(record["top1"] / 100, record["cost"]))
    measured = summary["measured_latency"]
    assert measured[0]["network"] == "base" and all(row["measured_ms"] > 0 for row in measured)
    hard = Reward("hard", 2.0)
    assert hard(0.9, 1.0) == pytest.approx(0.9) and hard(0.9, 4.0) == pytest.approx(0.45)
    with pytest.raises(ValueError, match="--cost latency"):
        SearchConfig(cost="madds", latency_table=str(path))


def test_the_latency_commands_build_and_check_a_table(tiny: Skeleton, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    require("onnxruntime")
    out = tmp_path / "t.json"
    assert main(["nas", "latency-table", "tiny", "--runtime", "onnx", "--fit-networks", "4", "--workers", "1",
                 "--out", str(out), "--no-progress"]) == 0
    assert "correction from 4 whole networks" in capsys.readouterr().out
    assert main(["nas", "latency-check", str(out), "--networks", "6", "--seed", "0", "--out", str(tmp_path / "c")]) == 2
    assert "seed 0 built" in capsys.readouterr().err
    assert main(["nas", "latency-check", str(out), "--networks", "6", "--workers", "1", "--out", str(tmp_path / "c"),
                 "--no-progress"]) == 0
    summary = json.loads((tmp_path / "c" / "latency_check.json").read_text())
    assert len(summary["rows"]) == 6 and -1 <= summary["tau"]["table"] <= 1 and summary["mape"]["table"] >= 0
    assert (tmp_path / "c" / "latency_check.png").stat().st_size > 0
    capsys.readouterr()
    assert main(["nas", "search", "tiny", "--cost", "latency", "--latency-table", str(out), "--trials", "2",
                 "--epochs", "1", "--train-subset", "256", "--minival", "64", "--workers", "1",
                 "--out", str(tmp_path / "s")]) == 0
    printed = capsys.readouterr().out
    assert "predicted by the latency table against measured" in printed and "base" in printed


def test_an_unsteady_time_is_taken_again_and_a_steady_one_is_kept(tiny: Skeleton, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    require("onnxruntime")
    calls: list[list[str]] = []

    def bursty(runs, rounds):  # type: ignore[no-untyped-def]
        calls.append(list(runs))  # every piece's first measurement has a slow round, the second is steady
        rounds = [1.0, 1.0, 1.5] if len(calls) % 2 else [1.0, 1.01, 0.99]
        return {key: rounds for key in runs}

    monkeypatch.setattr(latency_build, "measure_group", bursty)
    table = build_table("tiny", TARGET, tmp_path / "t.json", fit_networks=0, workers=1, progress=False)
    assert sum(map(len, calls)) == 2 * len(table.entries)
    records = [json.loads(line) for line in (tmp_path / "t.json.parts" / "journal.jsonl").read_text().splitlines()]
    assert all(r["tries"] == 2 for r in records if "key" in r)
    calls.clear()
    monkeypatch.setattr(latency_build, "measure_group", lambda runs, rounds: calls.append(list(runs)) or {})
    build_table("tiny", TARGET, tmp_path / "t.json", fit_networks=0, workers=1, progress=False)
    assert calls == []  # nothing left to time: every piece was steady
    assert latency_build.steady({"ms": 1.0, "rounds": [1.0, 1.5], "tries": 3})  # three tries: kept as it is
    assert not latency_build.steady({"ms": 1.0, "rounds": [1.0, 1.5]})


@pytest.mark.parametrize("runtime", ["executorch", "onnx", "openvino"])
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_piece_exports_loads_and_times_in_every_runtime_and_precision(runtime: str, precision: str,
                                                                         tmp_path: Path) -> None:
    require({"executorch": "executorch", "onnx": "onnxruntime", "openvino": "nncf"}[runtime])
    spec = get_spec("fmnist_lab").replace(resolution=16)
    model = build_model(spec).eval()
    part = network_parts(spec)[2]  # a block with SE
    target = Target(runtime, precision, 1)
    path = latency_runtime.export_piece(part_module(model, part), part.shape, target, tmp_path / "piece")
    assert path == target.file(tmp_path / "piece") and path.is_file()
    run = latency_runtime.load_piece(path, target)
    x = torch.randn(1, *part.shape)
    with torch.no_grad():
        expected = part_module(model, part)(x).numpy()
    got = run(x.numpy())
    assert got.shape == expected.shape
    if precision == "fp32":
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    else:  # int8 calibrated on random inputs: close, not equal
        assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.9
    rounds = latency_runtime.measure_group({"piece": (run, part.shape)}, rounds=2, min_time=0.01)["piece"]
    assert len(rounds) == 2 and all(ms > 0 for ms in rounds)
    assert target.version().split()[0] == {"executorch": "executorch", "onnx": "onnxruntime", "openvino": "openvino"}[runtime]
