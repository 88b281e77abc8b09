"""The conformance suite: judge any backend against :mod:`spec`.

``python -m conformance --backend NAME`` runs it from the command line;
:func:`run_suite` and :func:`judge` run it from Python;
:func:`verify_gradients` judges one computed loss and gradient.
"""

from conformance.checks import BackendError, Check, all_checks
from conformance.runner import (
    DEFAULT_EXAMPLES,
    DEFAULT_SEED,
    ResultReport,
    SuiteReport,
    judge,
    run_suite,
)
from conformance.strategies import Case, cases, networks, single_layer_cases
from conformance.verify import verify_gradients

__all__ = [
    "DEFAULT_EXAMPLES",
    "DEFAULT_SEED",
    "BackendError",
    "Case",
    "Check",
    "ResultReport",
    "SuiteReport",
    "all_checks",
    "cases",
    "judge",
    "networks",
    "run_suite",
    "single_layer_cases",
    "verify_gradients",
]
