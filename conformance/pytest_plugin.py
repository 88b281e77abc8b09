"""The conformance suite as pytest tests: ``pytest --pyargs conformance --backend X``.

With ``--backend`` the plugin collects one test per check, named by the
check's id (``total-derivative``, ``self-consistency``, ``gradient-product``,
...) under ``conformance/checks.py``, so pytest's selection works as usual::

    pytest --pyargs conformance --backend reference
    pytest --pyargs conformance --backend mymodule:backend -k gradient-product -x
    pytest --pyargs 'conformance.checks::gradient-product' --backend torch

A test passes when its check holds, is skipped with the reason when the
check is not applicable to the backend (a capability it does not declare, a
network it cannot represent), and fails with the report's diagnosis: the
violated result, layer and parameter, expected and returned values, the
error in units of its bound, the shrunk minimal case and Python that
reproduces it. Each check runs exactly as ``python -m conformance --only
CHECK_ID`` runs it, through :func:`conformance.runner.run_suite`.

Without ``--backend`` the plugin collects nothing and imports nothing beyond
pytest, so installing backprop-spec leaves other projects' test runs as they
were.
"""

from __future__ import annotations

import inspect
import logging
import os
import types
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from conformance import _options

if TYPE_CHECKING:
    import numpy as np

    from conformance.runner import SuiteReport
    from impl import Backend, MpmathBackend

logger = logging.getLogger(__name__)

CHECKS_MODULE = Path(__file__).with_name("checks.py")
"""The module the check items are collected under (where the checks live)."""

DTYPE_CHOICES = ("float64", "float32")
"""Precisions ``--conformance-dtype`` accepts, as ``python -m conformance --dtype``."""

ROBUSTNESS_CHOICES = ("fail", "report")
"""What inf or NaN where the exact values are finite does to a test."""


class ConformanceWarning(UserWarning):
    """Something the run reports without failing a test."""


# 1. Options.

def pytest_addoption(parser: pytest.Parser) -> None:
    """The ``--backend`` and ``--conformance-*`` options.

    Defaults are those of ``python -m conformance``; they are filled in when
    a backend is given, so a run without one imports nothing.
    """
    group = parser.getgroup("backprop-spec", "backprop-spec conformance checks "
                            "(collected with --pyargs conformance)")
    group.addoption("--backend", dest="conformance_backend", metavar="NAME",
                    default=None, help="judge this backend: reference, "
                    "jacobian-product, mpmath, torch, ... or package.module:attribute; "
                    "without it no conformance check is collected")
    group.addoption("--conformance-examples", type=_options.examples, metavar="N",
                    help="examples per check (default: as python -m conformance)")
    group.addoption("--conformance-seed", type=_options.seed, metavar="SEED",
                    help="Hypothesis seed (default: as python -m conformance)")
    group.addoption("--conformance-dtype", choices=DTYPE_CHOICES, default="float64",
                    help="precision the backend computes in (default: float64)")
    group.addoption("--conformance-oracle-digits", type=_options.oracle_digits,
                    metavar="N", help="significant digits of the mpmath oracle, at "
                    f"least {_options.MIN_ORACLE_DIGITS} (default: as python -m "
                    "conformance)")
    group.addoption("--conformance-robustness", choices=ROBUSTNESS_CHOICES,
                    default="fail", help="whether inf or NaN where the exact "
                    "values are finite fails the test or is only reported as a "
                    "warning (default: fail)")
    group.addoption("--conformance-time-limit", type=_options.seconds,
                    metavar="SECONDS", help="seconds one backend call may take "
                    "before it is reported as hung (default: as python -m "
                    "conformance)")


# 2. The run's settings, fixed once per session.

@dataclass
class ConformanceRun:
    """The backend under test and the settings every check runs with.

    Attributes
    ----------
    hung
        The first hang's diagnosis, once the backend has hung: later checks
        are not run, as in :func:`conformance.runner.run_suite`.
    collected
        Check items collected in this session.
    """

    backend: Backend
    backend_spec: str
    examples: int
    seed: int
    dtype: type[np.floating]
    oracle: MpmathBackend
    robustness_fails: bool
    time_limit: float
    hung: str = ""
    collected: int = 0


RUN_KEY = pytest.StashKey[ConformanceRun]()
"""Where the session's :class:`ConformanceRun` is kept on ``config.stash``."""


def pytest_configure(config: pytest.Config) -> None:
    """Load the backend named by ``--backend``; a usage error if it cannot be."""
    backend_spec: str | None = config.getoption("conformance_backend")
    if backend_spec is None:
        return
    config.stash[RUN_KEY] = _configured_run(config, backend_spec)
    logger.info("backprop-spec: judging backend %s", backend_spec)


def _configured_run(config: pytest.Config, backend_spec: str) -> ConformanceRun:
    import numpy as np

    from conformance._guard import DEFAULT_TIME_LIMIT
    from conformance.profiles import PROFILE_EXAMPLES, chosen_profile
    from conformance.runner import DEFAULT_SEED
    from impl import MpmathBackend, load_backend
    from impl.oracle import DEFAULT_DIGITS
    from spec.errors import BackpropSpecError

    try:
        profile = chosen_profile(None)
    except BackpropSpecError as error:
        raise pytest.UsageError(str(error)) from error
    try:
        backend = load_backend(backend_spec)
    except BackpropSpecError as error:
        raise pytest.UsageError(f"--backend={backend_spec}: {error}") from error

    def option(name: str, default: float) -> float:
        value = config.getoption(name)
        return default if value is None else float(value)

    return ConformanceRun(
        backend, backend_spec,
        examples=int(option("conformance_examples", PROFILE_EXAMPLES[profile])),
        seed=int(option("conformance_seed", DEFAULT_SEED)),
        dtype=np.dtype(config.getoption("conformance_dtype")).type,
        oracle=MpmathBackend(int(option("conformance_oracle_digits",
                                        DEFAULT_DIGITS))),
        robustness_fails=config.getoption("conformance_robustness") == "fail",
        time_limit=option("conformance_time_limit", DEFAULT_TIME_LIMIT))


def pytest_report_header(config: pytest.Config) -> list[str]:
    """One header line naming the backend and the run's settings."""
    run = config.stash.get(RUN_KEY, None)
    if run is None:
        return []
    header = (f"backprop-spec: backend {run.backend.name!r} ({run.backend_spec}), "
              f"{run.examples} examples per check, seed {run.seed}, "
              f"{run.dtype.__name__}, oracle {run.oracle.digits} digits")
    return [header]


# 3. Collection: one item per check under conformance/checks.py.

def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> \
        ConformanceChecks | None:
    """The checks, when ``--backend`` is given and the package is collected."""
    if file_path.name != CHECKS_MODULE.name or RUN_KEY not in parent.config.stash:
        return None
    if not os.path.samefile(file_path, CHECKS_MODULE):
        return None
    return ConformanceChecks.from_parent(parent, path=file_path)


class ConformanceChecks(pytest.File):
    """The conformance checks, in run order, as pytest items."""

    def collect(self) -> Iterator[ConformanceCheck]:
        """One :class:`ConformanceCheck` per check, located at its judge."""
        from conformance.checks import all_checks

        checks = all_checks()
        self.config.stash[RUN_KEY].collected += len(checks)
        for check in checks:
            yield ConformanceCheck.from_parent(self, name=check.id,
                                               line=self._line_of(check.judge))

    def _line_of(self, judge: Callable[..., object]) -> int | None:
        """The line, counted from 0, where ``judge`` starts, if in this file."""
        code = getattr(inspect.unwrap(judge), "__code__", None)
        if not isinstance(code, types.CodeType) or \
                Path(code.co_filename).resolve() != self.path.resolve():
            return None
        return code.co_firstlineno - 1


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config) -> None:
    """Warn when ``--backend`` is given but no check was collected."""
    run = config.stash.get(RUN_KEY, None)
    if run is not None and run.collected == 0:
        warnings.warn(ConformanceWarning(
            f"--backend={run.backend_spec} was given but no conformance check was "
            "collected; add --pyargs conformance to the command line"), stacklevel=1)


# 4. Running one check.

class ConformanceCheck(pytest.Item):
    """One check of the suite, run on the session's backend.

    Parameters
    ----------
    line
        Where the check's judge starts in ``checks.py`` (counted from 0), if
        it is defined there; shown as the test's location.
    """

    def __init__(self, *, line: int | None, **node: Any) -> None:
        super().__init__(**node)
        self.line = line

    def runtest(self) -> None:
        """Run the check as ``python -m conformance --only`` would; judge it."""
        __tracebackhide__ = True
        from conformance.runner import run_suite

        run = self.config.stash[RUN_KEY]
        if run.hung:
            pytest.fail(f"{self.name}: not run, because {run.hung}", pytrace=False)

        report = run_suite(run.backend, backend_spec=run.backend_spec,
                           examples=run.examples, seed=run.seed, only=(self.name,),
                           dtype=run.dtype, oracle=run.oracle,
                           robustness_fails=run.robustness_fails,
                           time_limit=run.time_limit)
        run.hung = report.hung
        self._judge(run, report)

    def _judge(self, run: ConformanceRun, report: SuiteReport) -> None:
        __tracebackhide__ = True
        result = report.results[0]
        self.user_properties.extend([
            ("status", result.status), ("examples", result.examples),
            ("judged", result.judged), ("at_kinks", result.not_applicable),
            ("worst_error_in_bounds", result.worst_error_in_bounds)])

        if result.status == "not-applicable":
            reason = result.not_applicable_reason or "no example could be judged"
            pytest.skip(f"{self.name} not applicable: {reason}")
        if result.failed or (result.status == "robustness" and run.robustness_fails):
            pytest.fail(_failure_message(report), pytrace=False)
        if result.status == "robustness":
            warnings.warn(ConformanceWarning(
                "reported only (--conformance-robustness report):\n"
                + _failure_message(report)), stacklevel=1)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        """The checks module, and the check with its backend as the test's name.

        The name is not the bare check id: pytest shows a name that ends a
        node id with its dots as ``::`` (``jacobian::products``).
        """
        backend_spec = self.config.stash[RUN_KEY].backend_spec
        return self.path, self.line, f"{self.name} on {backend_spec}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> \
        Generator[None, pytest.TestReport, pytest.TestReport]:
    """Locate a not-applicable check's skip at the check, not inside pytest."""
    report = yield
    if (isinstance(item, ConformanceCheck) and item.line is not None
            and report.skipped and isinstance(report.longrepr, tuple)):
        report.longrepr = (str(item.path), item.line + 1, report.longrepr[2])
    return report


def _failure_message(report: SuiteReport) -> str:
    """The verdict with the backend and settings, then the report's diagnosis."""
    from conformance.report import VERDICT_WORDS, render_failures

    result = report.results[0]
    heading = (f"{VERDICT_WORDS[result.status]}: {result.result_id} on backend "
               f"{report.backend!r} (seed {report.seed}, {report.examples} examples, "
               f"{report.dtype})")
    return f"{heading}\n\n{render_failures(report)}"
