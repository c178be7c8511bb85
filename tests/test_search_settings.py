"""A search keeps the controller settings it began with: they can be set (`--controller-lr`,
`--entropy-weight`, `--controller-batch`), default to the tuned ones, are restored on resume,
and a resume that asks for others is refused. A state written before the settings were part of
the config resumes with NASNet's settings, the ones it ran with."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from effnet.lab.experiments import LabOptions
from effnet.lab.trials import Budget
from effnet.search.controller import DEFAULTS
from effnet.search.loop import SearchConfig, run_search
from effnet.search.space import get_skeleton

from .lab_trials import counted_trial

NASNET = {"controller_lr": 3.5e-4, "entropy_weight": 1e-5, "controller_batch": 10}


def test_the_controller_defaults_to_the_tuned_settings_and_takes_others() -> None:
    sizes = get_skeleton("fmnist").sizes
    for method in ("ppo", "reinforce"):
        settings = SearchConfig(strategy=method).new_strategy(sizes).settings
        assert {k: settings[k] for k in DEFAULTS[method]} == DEFAULTS[method]
    chosen = SearchConfig(strategy="ppo", **NASNET).new_strategy(sizes).settings
    assert (chosen["lr"], chosen["entropy_weight"], chosen["batch_size"]) == (3.5e-4, 1e-5, 10)
    with pytest.raises(ValueError, match="ppo and reinforce strategies, not evolution"):
        SearchConfig(strategy="evolution", controller_lr=1e-3)


def test_a_resume_keeps_the_controller_settings_and_refuses_others(tmp_path: Path) -> None:
    options = LabOptions(tmp_path, progress=False)
    config = SearchConfig(strategy="ppo", evaluations=10, seed=1, **NASNET)
    first = run_search(config, Budget(), options, trial_fn=counted_trial)
    # A state from before the settings were recorded: neither the config nor the strategy has them.
    path = tmp_path / "search_state.pt"
    state = torch.load(path, weights_only=True)
    for key in NASNET:
        state["config"].pop(key)
    state["strategy"].pop("settings")
    torch.save(state, path)
    again = run_search(config, Budget(), options, trial_fn=counted_trial)
    assert again["best"]["tokens"] == first["best"]["tokens"]
    with pytest.raises(ValueError, match="entropy_weight 1e-05 there, 0.001 asked"):
        run_search(SearchConfig(strategy="ppo", evaluations=10, seed=1, **{**NASNET, "entropy_weight": 1e-3}),
                   Budget(), options, trial_fn=counted_trial)
    with pytest.raises(ValueError, match="lr 0.00035 there"):   # the tuned default is another lr
        run_search(SearchConfig(strategy="ppo", evaluations=10, seed=1, controller_lr=3.5e-3), Budget(), options,
                   trial_fn=counted_trial)
