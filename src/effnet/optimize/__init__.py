"""The fastest deployable form of a model that keeps its accuracy (``effnet optimize``):
every installed runtime x precision, scored on the model's own held-out data and timed here."""

from .candidates import Candidate, available_candidates, parse_candidates
from .choose import Choice, Row, choose, keep_files
from .deployed import deployed_model
from .evaluation import Evaluation, is_run, run_minival, unlabelled
from .report import write_report

__all__ = ["Candidate", "Choice", "Evaluation", "Row", "available_candidates", "choose", "deployed_model", "is_run", "keep_files",
           "parse_candidates", "run_minival", "unlabelled", "write_report"]
