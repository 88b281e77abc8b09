"""The paper's results as typed, executable predicates.

Each result is a :class:`Result` with a stable id, its statement in LaTeX, its
hypotheses and a predicate returning a :data:`Verdict`. :data:`RESULTS` lists
them in order. Conventions (layer equations, vec, Jacobian shape) live in
:mod:`spec.conventions`.
"""

from spec._verdict import (
    ExactArray,
    FloatArray,
    Holds,
    Location,
    NotApplicable,
    Result,
    SplitExact,
    Verdict,
    Violated,
    compare,
    split_exact,
    to_exact,
    to_float,
)
from spec.conventions import (
    Activation,
    Loss,
    LossAndGradients,
    Network,
    Parameters,
    unvec,
    vec,
)
from spec.registry import RESULTS, get

__all__ = [
    "RESULTS",
    "Activation",
    "ExactArray",
    "FloatArray",
    "Holds",
    "Location",
    "Loss",
    "LossAndGradients",
    "Network",
    "NotApplicable",
    "Parameters",
    "Result",
    "SplitExact",
    "Verdict",
    "Violated",
    "compare",
    "get",
    "split_exact",
    "to_exact",
    "to_float",
    "unvec",
    "vec",
]
