"""The compound-scaling laboratory: trials, a journal that makes experiments resumable, local
and Ray runners, the coefficient search (paper step 1) and the scaling experiment (step 2 and
the single-dimension baselines)."""

from .coefficients import constraint_grid, coefficient_trials
from .journal import Journal
from .matching import match_madds
from .dispatch import run_trials
from .trials import Budget, Trial, TrialResult

__all__ = ["Budget", "Journal", "Trial", "TrialResult", "coefficient_trials", "constraint_grid", "match_madds",
           "run_trials"]
