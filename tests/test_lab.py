import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from effnet import count, get_spec
from effnet.lab import Budget, Journal, constraint_grid, match_madds, run_trials
from effnet.lab.bases import lab_base
from effnet.lab.coefficients import coefficient_trials
from effnet.lab.matching import scale_one
from effnet.lab.report import ci95, compare, draw_scaling, summarise
from effnet.lab.scaling_experiment import scaling_trials
from effnet.spec import SpecError

from .optional import require
from .lab_trials import counted_trial

ROOT = Path(__file__).resolve().parents[1]


def test_constraint_grid():
    grid = constraint_grid(step=0.05, tolerance=0.1)
    assert (1.2, 1.1, 1.15) in grid  # the paper's triple: 1.92
    assert all(min(p) >= 1 and abs(p[0] * p[1] ** 2 * p[2] ** 2 - 2) <= 0.1 + 1e-9 for p in grid)
    assert (1.0, 1.0, 1.0) not in grid and (2.0, 1.0, 1.0) in grid
    coarse = constraint_grid(step=0.1, tolerance=0.1)
    assert len(coarse) == 21 and set(coarse) <= set(constraint_grid(step=0.05, tolerance=0.1))
    with pytest.raises(SpecError):
        constraint_grid(step=0)


def test_coefficient_trials_scale_each_dimension():
    base = lab_base("fmnist_lab")
    trials = coefficient_trials(base, [(1.2, 1.1, 1.15), (2.0, 1.0, 1.0)], Budget(), seeds=(0, 1))
    assert len(trials) == 4 and len({t.key for t in trials}) == 4
    deep = trials[2].spec
    assert deep.resolution == base.resolution and [s.repeats for s in deep.stages] == [2, 4, 4, 4]
    assert trials[0].spec.resolution == round(16 * 1.15)


@pytest.mark.parametrize("dimension", ["width", "depth", "resolution"])
@pytest.mark.parametrize("name", ["fmnist_lab", "mobilenet_v2"])
def test_matching_solver_finds_the_closest_step(name, dimension):
    base = lab_base(name)
    target = int(count(base).madds * 3.7)
    match = match_madds(base, target, dimension)
    assert match.madds == count(match.spec).madds
    gap = abs(match.madds - target)
    # No multiplier on a fine grid around the answer gets closer (cost is a step function).
    for factor in [match.multiplier * (1 + d / 200) for d in range(-40, 41)]:
        if factor >= 1:
            assert abs(count(scale_one(base, dimension, factor)).madds - target) >= gap
    if name == "fmnist_lab":  # MobileNetV2 at 16 px halves 5 times: its resolution steps are coarse
        assert abs(match.relative_error) < 0.25


def test_scaling_trials_match_compound_madds():
    base = lab_base("fmnist_lab")
    trials = scaling_trials(base, [1, 2], Budget(), seeds=(0,))
    by = {(t.method, dict(t.labels)["phi"]): t for t in trials}
    assert by[("base", 0.0)].spec == base
    for phi in (1.0, 2.0):
        target = count(by[("compound", phi)].spec).madds
        for method in ("width", "depth", "resolution"):
            assert count(by[(method, phi)].spec).madds == pytest.approx(target, rel=0.25)
        assert by[("width", phi)].spec.resolution == 16 and by[("resolution", phi)].spec.resolution > 16


def test_runner_and_journal_skip_finished(tmp_path, monkeypatch):
    calls = tmp_path / "calls"
    monkeypatch.setenv("EFFNET_TEST_CALLS", str(calls))
    trials = scaling_trials(lab_base("fmnist_lab"), [1], Budget(), seeds=(0, 1))
    journal = Journal(tmp_path / "journal.jsonl")
    first = run_trials(trials[:4], journal, trial_fn=counted_trial, progress=False)
    assert len(calls.read_text().split()) == 4
    results = run_trials(trials, journal, trial_fn=counted_trial, progress=False)
    assert len(calls.read_text().split()) == len(trials)  # only the new ones ran
    assert [r.key for r in results] == [t.key for t in trials]
    assert results[:4] == first


def test_torn_journal_line_is_skipped(tmp_path):
    trials = scaling_trials(lab_base("fmnist_lab"), [1], Budget(), seeds=(0,))
    journal = Journal(tmp_path / "j.jsonl")
    run_trials(trials[:2], journal, trial_fn=counted_trial, progress=False)
    with journal.path.open("a") as file:
        file.write('{"key": "abc", "experi')
    with pytest.warns(UserWarning, match="unreadable journal line"):
        assert len(journal.load()) == 2


def test_parallel_local_processes(tmp_path):
    trials = scaling_trials(lab_base("fmnist_lab"), [1], Budget(), seeds=(0, 1))
    serial = run_trials(trials, None, trial_fn=counted_trial, progress=False)
    parallel = run_trials(trials, None, trial_fn=counted_trial, workers=2, progress=False)
    assert [r.top1 for r in parallel] == [r.top1 for r in serial]


SCRIPT = """
import sys
from effnet.lab import Budget, Journal, run_trials
from effnet.lab.bases import lab_base
from effnet.lab.scaling_experiment import scaling_trials
from tests.lab_trials import counted_trial
trials = scaling_trials(lab_base("fmnist_lab"), [1, 2], Budget(), seeds=(0, 1))
run_trials(trials, Journal(sys.argv[1]), trial_fn=counted_trial, progress=False)
"""


def test_killed_experiment_resumes_without_recomputing(tmp_path):
    journal = tmp_path / "journal.jsonl"
    calls = tmp_path / "calls"
    env = {**os.environ, "EFFNET_TEST_CALLS": str(calls), "EFFNET_TEST_SLEEP": "0.3", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", SCRIPT, str(journal)], env=env, cwd=ROOT)
    deadline = time.time() + 120
    while time.time() < deadline and (not journal.exists() or len(journal.read_text().splitlines()) < 3):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished_before = {json.loads(line)["key"] for line in journal.read_text().splitlines()}
    assert 3 <= len(finished_before) < 18
    env["EFFNET_TEST_SLEEP"] = "0"
    subprocess.run([sys.executable, "-c", SCRIPT, str(journal)], env=env, cwd=ROOT, check=True, timeout=300)
    keys = [json.loads(line)["key"] for line in journal.read_text().splitlines()]
    assert len(set(keys)) == len(keys) == 18  # base + 2 phis x 4 methods, 2 seeds each
    ran = calls.read_text().split()
    rerun = [k for k in ran[len(ran) - (18 - len(finished_before)):] if k in finished_before]
    assert not rerun, "finished trials were recomputed after the restart"


def test_confidence_intervals_and_comparison():
    mean, std, half = ci95([1.0, 2.0, 3.0])
    assert (mean, std) == (2.0, 1.0) and half == pytest.approx(4.303 / math.sqrt(3), rel=1e-3)
    trials = scaling_trials(lab_base("fmnist_lab"), [1], Budget(), seeds=(0, 1, 2))
    results = run_trials(trials, None, trial_fn=counted_trial, progress=False)
    points = summarise(results)
    assert {p.method for p in points} == {"base", "compound", "width", "depth", "resolution"}
    assert all(p.n == 3 for p in points)
    diff = compare(results, "compound", "width", 1.0)
    compound = next(p.mean for p in points if p.method == "compound")
    width = next(p.mean for p in points if p.method == "width")
    assert diff["diff"] == pytest.approx(compound - width)


def test_scaling_plot_with_seeds_draws_each_trial_and_no_error_bars():
    from matplotlib.collections import PathCollection
    from matplotlib.container import ErrorbarContainer
    from matplotlib.figure import Figure

    trials = scaling_trials(lab_base("fmnist_lab"), [1, 2], Budget(), seeds=(0, 1), methods=("width",))
    results = run_trials(trials, None, trial_fn=counted_trial, progress=False)
    points = summarise(results)
    with_bars, with_seeds = Figure().subplots(), Figure().subplots()
    draw_scaling(with_bars, points)
    draw_scaling(with_seeds, points, results)
    assert [c.get_label() for c in with_bars.containers if isinstance(c, ErrorbarContainer)] == ["width"]
    assert not with_seeds.containers
    dots = [c for c in with_seeds.collections if isinstance(c, PathCollection)]
    assert len(dots) == 1 and len(dots[0].get_offsets()) == 4  # width at phi 1 and 2, two seeds each
    assert sorted(line.get_label() for line in with_seeds.lines) == ["base", "width"]
    width_line = next(line for line in with_seeds.lines if line.get_label() == "width")
    assert list(width_line.get_ydata()) == [p.mean for p in sorted(points, key=lambda p: p.madds)]


def test_scaling_plot_shows_seeds_only_where_two_seeds_make_the_bars_meaningless(tmp_path, monkeypatch):
    from effnet.lab import report

    drawn = []
    monkeypatch.setattr(report, "draw_scaling", lambda ax, points, results=(): drawn.append(len(results)))
    for seeds in ((0, 1), (0, 1, 2)):
        trials = scaling_trials(lab_base("fmnist_lab"), [1], Budget(), seeds=seeds, methods=("width",))
        results = run_trials(trials, None, trial_fn=counted_trial, progress=False)
        report.plot_scaling(summarise(results), tmp_path / f"{len(seeds)}.png", "t", results)
    assert drawn == [4, 0]  # two seeds: base and width as dots; three: error bars


def test_lab_base_adapts_registered_networks():
    spec = lab_base("resnet50", resolution=20)
    assert (spec.in_chans, spec.num_classes, spec.resolution) == (1, 10, 20)
    assert spec.stages == get_spec("resnet50").stages


@pytest.mark.slow
def test_ray_backend_on_a_local_instance(tmp_path):
    require("ray")
    trials = scaling_trials(lab_base("fmnist_lab"), [1], Budget(), seeds=(0,))
    journal = Journal(tmp_path / "journal.jsonl")
    results = run_trials(trials, journal, trial_fn=counted_trial, backend="ray", workers=2, progress=False)
    local = run_trials(trials, None, trial_fn=counted_trial, progress=False)
    assert [r.top1 for r in results] == [r.top1 for r in local]
    assert len(journal.load()) == len(trials)


TINY = Budget(epochs=1, train_subset=256, minival=128, batch_size=64)


def test_a_budget_without_minival_is_refused_not_ranked_on_test(tmp_path, capsys):
    """minival=0 would make the training code validate on the test set, so every trial of an
    experiment or search would be ranked on test; a budget refuses it, in one line at the CLI."""
    from effnet.cli import main

    with pytest.raises(ValueError, match="minival of at least 1.*never on test"):
        Budget(minival=0)
    with pytest.raises(ValueError, match="at least 1 epoch"):
        Budget(epochs=0)
    for command in (["lab", "scaling"], ["nas", "search", "fmnist"]):
        assert main([*command, "--minival", "0", "--out", str(tmp_path / "out")]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "minival of at least 1" in error and "effnet train data.minival=0" in error
        assert not (tmp_path / "out").exists()   # refused before anything ran or was written


@pytest.mark.slow
def test_real_trial_trains_on_fashion_mnist(tmp_path, fashion_mnist):
    from effnet.lab.trials import Trial, train_trial

    trial = Trial("scaling", "base", lab_base("fmnist_lab", resolution=12), TINY, seed=0)
    result = train_trial(trial, out_dir=str(tmp_path))
    assert result.status == "ok", result.error
    assert 0 <= result.top1 <= 100 and result.params == count(trial.spec).params
    assert result.network == trial.spec  # the spec survives the journal's JSON
    # a damaged checkpoint in the trial's folder is not resumed and not fatal: the trial starts again
    from effnet.lab.trials import trial_config
    from effnet.weights.run_folder import LAST_CHECKPOINT as LAST

    folder = tmp_path / trial_config(trial).run.name
    (folder / LAST).write_bytes(b"not a checkpoint")
    again = train_trial(trial, out_dir=str(tmp_path))
    assert again.status == "ok" and again.top1 == result.top1


RESUMABLE = """
import sys
from effnet.lab.bases import lab_base
from effnet.lab.trials import Budget, Trial, train_trial
trial = Trial("scaling", "base", lab_base("fmnist_lab", resolution=12),
              Budget(epochs=3, train_subset=1024, minival=256, batch_size=64, threads=1), seed=0, run_dir=sys.argv[1])
print(train_trial(trial).top1)
"""


@pytest.mark.slow
def test_a_killed_trial_resumes_from_its_checkpoint(tmp_path, fashion_mnist, capfd):
    """SIGKILL mid-trial (the machine going away): the next run continues from the last epoch's
    checkpoint in the trial's own folder and ends exactly where an uninterrupted run does."""
    from effnet.lab.trials import Trial
    from effnet.weights.run_folder import LAST_CHECKPOINT as LAST

    script = tmp_path / "trial.py"
    script.write_text(RESUMABLE)
    whole = subprocess.run([sys.executable, str(script), str(tmp_path / "whole")], capture_output=True, text=True,
                           check=True)
    expected = float(whole.stdout.split()[-1])
    child = subprocess.Popen([sys.executable, str(script), str(tmp_path / "killed")], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "killed").glob(f"*/{LAST}")) and time.monotonic() < deadline:
        time.sleep(0.02)
    child.kill()
    child.wait()
    folders = list((tmp_path / "killed").iterdir())
    assert len(folders) == 1 and (folders[0] / LAST).is_file()
    trial = Trial("scaling", "base", lab_base("fmnist_lab", resolution=12),
                  Budget(epochs=3, train_subset=1024, minival=256, batch_size=64, threads=1), seed=0)
    assert folders[0].name == f"{trial.spec.name}-seed0-{trial.key}"  # the trial's own folder, found again
    resumed = subprocess.run([sys.executable, str(script), str(tmp_path / "killed")], capture_output=True, text=True,
                             check=True)
    assert "resuming" in resumed.stdout + resumed.stderr
    assert float(resumed.stdout.split()[-1]) == expected
    # and the run that got to the end keeps no second folder: one trial, one folder
    assert len(list((tmp_path / "killed").iterdir())) == 1


@pytest.mark.slow
def test_quick_experiment_end_to_end_on_ray(tmp_path, capsys, fashion_mnist):
    """The CLI, real training and the Ray backend together; a tiny budget keeps it short."""
    require("ray")
    from effnet.cli import main

    out = tmp_path / "exp"
    argv = ["experiment", "scaling", "--resolution", "10", "--phis", "1", "--seeds", "1", "--epochs", "1",
            "--train-subset", "256", "--minival", "128", "--batch-size", "64", "--out", str(out)]
    assert main([*argv, "--backend", "ray", "--workers", "2"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {p["method"] for p in summary["points"]} == {"base", "compound", "width", "depth", "resolution"}
    assert (out / "scaling.png").stat().st_size > 10_000 and (out / "scaling.csv").exists()
    lines = (out / "journal.jsonl").read_text().splitlines()
    assert len(lines) == 5 and not summary["failed"]
    capsys.readouterr()
    assert main(argv) == 0  # everything is in the journal: nothing is trained again
    assert (out / "journal.jsonl").read_text().splitlines() == lines


@pytest.mark.slow
def test_width_grid_cli_on_real_data(tmp_path, capsys, fashion_mnist):
    """`effnet experiment width-grid`: real trials, the table, the plot and the equal-MAdds reading."""
    from effnet.cli import main

    out = tmp_path / "grid"
    argv = ["experiment", "width-grid", "--resolution", "10", "--widths", "1", "2.2", "--curves", "1,1", "2,1",
            "--seeds", "1", "--epochs", "1", "--train-subset", "256", "--minival", "128", "--workers", "1",
            "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["points"]) == 4 and not summary["failed"]
    assert "equal MAdds" in printed and len(summary["equal_madds"]) >= 1
    assert all(0 <= row["d=2, r=1"] <= 100 for row in summary["equal_madds"])
    assert (out / "width_grid.png").stat().st_size > 10_000


def test_scaling_takes_coefficients_from_a_search(tmp_path):
    import argparse

    from effnet.cli.experiment import coefficients_from

    (tmp_path / "best.json").write_text(json.dumps({"alpha": 1.4, "beta": 1.1, "gamma": 1.1, "product": 2.03}))
    given = argparse.Namespace(coefficients=None, alpha=1.2, beta=1.1, gamma=1.15)
    assert coefficients_from(given) == (1.2, 1.1, 1.15)
    for where in (tmp_path, tmp_path / "best.json"):
        assert coefficients_from(argparse.Namespace(**{**vars(given), "coefficients": where})) == (1.4, 1.1, 1.1)
    (tmp_path / "empty.json").write_text("{}")  # a search where every trial failed writes {}
    with pytest.raises(ValueError, match="effnet lab coefficients"):
        coefficients_from(argparse.Namespace(**{**vars(given), "coefficients": tmp_path / "empty.json"}))


def test_width_grid_trials_follow_figure_4(tmp_path):
    from effnet.lab.experiments import LabOptions, width_grid_experiment
    from effnet.lab.width_grid import CONFIGS, width_grid_trials

    base = lab_base("fmnist_lab")
    trials = width_grid_trials(base, Budget(), seeds=(0,), widths=(1.0, 1.8))
    assert len(trials) == len(CONFIGS) * 2
    by_curve = {(t.method, t.labels[0][1]): t.spec for t in trials}
    wide = by_curve[("d=2, r=1.3", 1.8)]
    assert wide.resolution == round(16 * 1.3) and count(wide).madds > count(by_curve[("d=1, r=1", 1.8)]).madds
    assert by_curve[("d=1, r=1", 1.0)].stages == base.stages  # the curve starts at the base itself
    summary = width_grid_experiment(base, Budget(), LabOptions(tmp_path, progress=False), widths=(1.0, 1.8),
                                    configs=((1.0, 1.0), (2.0, 1.0)), seeds=(0, 1), trial_fn=counted_trial)
    assert len(summary["points"]) == 4 and all(p["n"] == 2 for p in summary["points"])
    assert {p["width"] for p in summary["points"]} == {1.0, 1.8}
    assert summary["equal_madds"] and all(set(row) == {"madds", "d=1, r=1", "d=2, r=1"} for row in summary["equal_madds"])
    assert (tmp_path / "width_grid.png").stat().st_size > 0 and (tmp_path / "width_grid.csv").exists()
    with pytest.raises(SpecError, match="positive"):
        width_grid_trials(base, Budget(), widths=(0.0,))


def test_width_grid_read_at_equal_madds():
    from effnet.lab.report import Point
    from effnet.lab.width_grid import accuracy_at, at_equal_madds

    def point(curve, madds, mean):
        return Point(curve, 1.0, madds, 0, 16, 2, mean, 0.0, 0.0)

    shallow = [point("d=1", 100, 80.0), point("d=1", 400, 82.0), point("d=1", 1600, 83.0)]
    deep = [point("d=2", 200, 81.0), point("d=2", 800, 85.0), point("d=2", 3200, 86.0)]
    # linear in log MAdds: 200 lies halfway (in log) between 100 and 400
    assert accuracy_at(shallow, 200) == pytest.approx(81.0)
    assert accuracy_at(shallow, 400) == 82.0 and accuracy_at(shallow, 50) is None and accuracy_at(shallow, 1601) is None
    rows = at_equal_madds(shallow + deep)
    # only costs both curves span (200 ... 1600), every measured one of them, cheapest first
    assert [r["madds"] for r in rows] == [200, 400, 800, 1600]
    assert rows[0] == {"madds": 200, "d=1": pytest.approx(81.0), "d=2": 81.0}
    assert rows[2]["d=1"] == pytest.approx(82.5) and rows[2]["d=2"] == 85.0
    assert rows[3]["d=2"] == pytest.approx(85.5)
    assert at_equal_madds([]) == [] and at_equal_madds(shallow + [point("far", 5000, 90.0)]) == []


def test_search_coefficients_on_chosen_points_and_methods_subset(tmp_path):
    from effnet.lab.experiments import LabOptions, scaling_experiment, search_coefficients

    base = lab_base("fmnist_lab")
    rows = search_coefficients(base, Budget(), LabOptions(tmp_path / "c", progress=False),
                               points=[(1.0, 1.2, 1.2), (2.0, 1.0, 1.0)], trial_fn=counted_trial)
    assert {(r.alpha, r.beta, r.gamma) for r in rows} == {(1.0, 1.2, 1.2), (2.0, 1.0, 1.0)}
    summary = scaling_experiment(base, Budget(), LabOptions(tmp_path / "s", progress=False), phis=[1],
                                 seeds=(0, 1), trial_fn=counted_trial, methods=("compound", "resolution"))
    assert {p["method"] for p in summary["points"]} == {"base", "compound", "resolution"}
    assert set(summary["compound_minus"]["phi=1"]) == {"resolution"}
    with pytest.raises(ValueError, match="unknown scaling methods"):
        scaling_trials(base, [1], Budget(), methods=("height",))
