"""The search that found B0: MnasNet's factorised space as specs (``space``), multi-objective
rewards (``rewards``), strategies behind one ask/tell interface (``strategies``,
``controller``), the search loop on real data (``loop``), a check on a published table
(``nas_bench_graph``, ``table_benchmark``) and a Ray Tune searcher (``tune``). docs/search.md.
"""

from .controller import STRATEGIES, ControllerSearch, make_strategy
from .rewards import Reward
from .space import SKELETONS, Skeleton, decode, encode, get_skeleton
from .strategies import Candidate, RandomSearch, RegularizedEvolution, Strategy

__all__ = ["SKELETONS", "STRATEGIES", "Candidate", "ControllerSearch", "RandomSearch", "RegularizedEvolution", "Reward",
           "Skeleton", "Strategy", "decode", "encode", "get_skeleton", "make_strategy"]
