"""Running the checks with Hypothesis and collecting a per-result report."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace

import hypothesis
from hypothesis import Phase, Verbosity, given, settings
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.errors import Flaky, HypothesisException

from conformance._guard import (
    POLICY,
    BackendMisbehaved,
    RobustnessFailure,
    describe_exception,
)
from conformance.checks import (
    BackendError,
    Check,
    Outcome,
    RobustnessError,
    all_checks,
)
from conformance.strategies import Case
import numpy as np

from impl import Backend, MpmathBackend, NetworkConstraints
from spec import Holds, NotApplicable, Violated, get
from spec.errors import UsageError

logger = logging.getLogger(__name__)

DEFAULT_EXAMPLES = 40
"""Examples per result in a default run: enough for every strategy branch
(square layers, width 1, batch 1 and more, each activation and loss, forced
kinks, saturation) to appear many times, within a minute for the whole run."""

DEFAULT_SEED = 0
"""A fixed seed: a default run is reproducible, never flaky."""


@dataclass(frozen=True)
class Counterexample:
    """The minimal failing case Hypothesis shrank to, and what failed on it."""

    case: Case
    outcome: Violated | BackendError | RobustnessError
    reproducer: str


@dataclass
class ResultReport:
    """What one check found on one backend."""

    result_id: str
    title: str
    status: str = "holds"
    result: str = ""
    """The id of the :class:`spec.Result` judged (``result_id`` is the row's,
    which differs for a second check of the same result)."""
    examples: int = 0
    judged: int = 0
    not_applicable: int = 0
    worst_error_in_bounds: float = 0.0
    conventions: set[str] = field(default_factory=set)
    not_applicable_reason: str = ""
    counterexample: Counterexample | None = None
    message: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        """Violated, or the backend misbehaved."""
        return self.status in ("violated", "error")


@dataclass
class SuiteReport:
    """Every result's report for one backend."""

    backend: str
    seed: int
    examples: int
    dtype: str = "float64"
    results: list[ResultReport] = field(default_factory=list)
    complete: bool = False
    robustness_fails: bool = True
    hung: str = ""
    """The diagnosis of the backend's first hang in this run, if it hung (it
    was then not called again)."""

    @property
    def conformant(self) -> bool:
        """No result violated, the backend never misbehaved, and (when
        robustness failures count) it never overflowed."""
        return not any(r.failed or (r.status == "robustness" and
                                    self.robustness_fails) for r in self.results)


class _Failure(Exception):
    def __init__(self, outcome: Violated | BackendError | RobustnessError,
                 case: Case) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.case = case


def judge(result_id: str, backend: Backend, case: Case,
          oracle: MpmathBackend | None = None) -> Outcome:
    """Judge ``backend`` on one case for one result; used by reproducers.

    >>> from conformance.strategies import Case
    >>> import numpy as np
    >>> from spec import Network, Parameters, Activation, Loss
    >>> from impl import ReferenceBackend
    >>> case = Case(Network((1, 1), (Activation.IDENTITY,), Loss.SQUARED_ERROR),
    ...             Parameters((np.array([[2.0]]),), (np.array([0.5]),)),
    ...             np.array([[1.0]]), np.array([[0.0]]))
    >>> judge("loss-gradient.squared-error", ReferenceBackend(), case).compared
    1
    """
    checks = {c.id: c for c in all_checks(_constraints(backend), case.dtype.type)}
    if result_id not in checks:
        raise UsageError(f"result_id={result_id!r} is not a known result; "
                         f"known: {', '.join(checks)}")
    return _judge_once(checks[result_id], backend, oracle or MpmathBackend(), case)


def _judge_once(check: Check, backend: Backend, oracle: MpmathBackend,
                case: Case) -> Outcome:
    unmet = check.unmet_needs(backend.capabilities)
    if unmet:
        return NotApplicable(check.result_id, unmet)
    if check.strategy is None:
        return NotApplicable(check.result_id, "the backend cannot represent the "
                             "networks this result is probed on")
    try:
        return check.judge(backend, oracle, case)
    except BackendMisbehaved as error:
        return BackendError(check.result_id, str(error))
    except RobustnessFailure as error:
        return RobustnessError(check.result_id, str(error))


def run_check(check: Check, backend: Backend, oracle: MpmathBackend, *,
              examples: int, seed: int, backend_spec: str,
              database: str | None = None,
              on_example: Callable[[str, int], None] | None = None) -> ResultReport:
    """Run one check for ``examples`` drawn examples, then its fixed ones.

    A failure among the drawn examples is shrunk to a minimal case; the
    check's fixed cases (:attr:`Check.explicit`) run only after the drawn
    ones all passed, and a failure there is reported as it is.
    """
    report = ResultReport(check.id, _title(check), result=check.result_id)
    started = time.perf_counter()
    failed_once = False
    unmet = check.unmet_needs(backend.capabilities)
    if check.strategy is None or unmet:
        report.status = "not-applicable"
        report.not_applicable_reason = (
            "the backend cannot represent the networks this result is probed on"
            if check.strategy is None else unmet)
        return report
    strategy = check.strategy
    first: list[_Failure] = []
    hung_on: list[_Failure] = []

    @settings(max_examples=examples, deadline=None,
              database=DirectoryBasedExampleDatabase(database) if database else None,
              verbosity=Verbosity.quiet, print_blob=False, report_multiple_bugs=False,
              phases=(Phase.explicit, Phase.generate, Phase.shrink),
              suppress_health_check=())
    @hypothesis.seed(seed)
    @given(strategy)
    def property_test(case: Case) -> None:
        nonlocal failed_once
        outcome = _judge_once(check, backend, oracle, case)
        if not failed_once:
            _record(report, outcome)
            if on_example is not None:
                on_example(check.id, report.examples)
        if isinstance(outcome, (Violated, BackendError, RobustnessError)):
            failed_once = True
            failure = _Failure(outcome, case)
            first.append(failure)
            if POLICY.hung and not hung_on:
                hung_on.append(failure)
            raise failure

    def fixed_cases() -> None:
        # After the drawn ones, so that a mistake the draws reach is reported
        # on the shrunk, minimal case; these catch what the draws missed.
        for case in check.explicit:
            outcome = _judge_once(check, backend, oracle, case)
            _record(report, outcome)
            if on_example is not None:
                on_example(check.id, report.examples)
            if isinstance(outcome, (Violated, BackendError, RobustnessError)):
                raise _Failure(outcome, case)

    try:
        property_test()
        fixed_cases()
    except _Failure as failure:
        if hung_on:
            # Once the backend has hung it is not called again, so every case
            # shrinking tried after that failed without the backend seeing it;
            # the case it hung on is the one to show.
            failure = hung_on[0]
        _record_failure(report, failure, check.id, backend_spec)
    except Flaky as error:
        # A case failed once and passed when Hypothesis replayed it: the
        # backend answers the same question differently from call to call.
        if _INTERRUPTED.is_set():
            raise KeyboardInterrupt from error
        if first:
            _record_failure(report, _replayed(first[0], check, backend, oracle),
                            check.id, backend_spec)
        else:
            report.status = "error"
            report.message = _stopped(check.result_id, error)
    except (HypothesisException, Exception) as error:  # noqa: BLE001 - reported
        if _INTERRUPTED.is_set():
            raise KeyboardInterrupt from error
        report.status = "error"
        report.message = _stopped(check.result_id, error)
    else:
        if report.judged == 0:
            report.status = "not-applicable"
    report.seconds = time.perf_counter() - started
    return report


def _record_failure(report: ResultReport, failure: _Failure, check_id: str,
                    backend_spec: str) -> None:
    """Set the report's status and counterexample from ``failure``."""
    report.status = ("violated" if isinstance(failure.outcome, Violated) else
                     "robustness" if isinstance(failure.outcome, RobustnessError)
                     else "error")
    report.counterexample = Counterexample(
        failure.case, failure.outcome, reproducer(check_id, backend_spec, failure.case))


NONDETERMINISTIC = ("nondeterministic: the backend failed this way on this case "
                    "once, then answered the same case when asked again (state "
                    "kept between calls, an unseeded random number, or something "
                    "outside the case that fails at times?)")
"""What a failure that did not happen again on the same case is noted with."""


def _replayed(failure: _Failure, check: Check, backend: Backend,
              oracle: MpmathBackend) -> _Failure:
    """The first failure of a run Hypothesis found flaky, judged once more.

    If the case fails again, that failure stands as it is; if it passes, the
    first failure is reported with :data:`NONDETERMINISTIC`.
    """
    if POLICY.hung:
        return failure
    try:
        again = _judge_once(check, backend, oracle, failure.case)
    except Exception:  # noqa: BLE001 - the first failure is reported instead
        logger.debug("judging the flaky case again failed", exc_info=True)
        again = None
    if isinstance(again, (Violated, BackendError, RobustnessError)):
        return _Failure(again, failure.case)
    outcome = failure.outcome
    if isinstance(outcome, Violated):
        noted: Violated | BackendError | RobustnessError = replace(
            outcome, detail=f"{outcome.detail} "
            f"{NONDETERMINISTIC[0].upper()}{NONDETERMINISTIC[1:]}.".strip())
    else:
        noted = replace(outcome, message=f"{outcome.message}; {NONDETERMINISTIC}")
    return _Failure(noted, failure.case)


def _stopped(result_id: str, error: BaseException) -> str:
    """The message of a check that stopped with an error of its own: its
    first line, which names the error without a page of context."""
    text = describe_exception(error).removeprefix("raised ")
    lines = text.splitlines() or [text]
    more = " ..." if len(lines) > 1 else ""
    return f"{result_id}: the run stopped with {lines[0]}{more}"


def _record(report: ResultReport, outcome: Outcome) -> None:
    report.examples += 1
    if isinstance(outcome, Holds):
        report.judged += 1
        report.worst_error_in_bounds = max(report.worst_error_in_bounds,
                                           outcome.worst_error_in_bounds)
    elif isinstance(outcome, NotApplicable):
        report.not_applicable += 1
        report.not_applicable_reason = report.not_applicable_reason or outcome.reason
        if outcome.convention:
            report.conventions.add(outcome.convention)
    elif isinstance(outcome, Violated):
        report.worst_error_in_bounds = max(report.worst_error_in_bounds,
                                           outcome.worst_error_in_bounds)


def run_suite(
    backend: Backend,
    *,
    backend_spec: str,
    examples: int = DEFAULT_EXAMPLES,
    seed: int = DEFAULT_SEED,
    only: Sequence[str] | None = None,
    dtype: type[np.floating] = np.float64,
    oracle: MpmathBackend | None = None,
    on_result: Callable[[SuiteReport], None] | None = None,
    on_example: Callable[[str, int], None] | None = None,
    robustness_fails: bool = True,
    time_limit: float | None = None,
    check_determinism: bool = True,
    jobs: int = 1,
    database: str | None = None,
) -> SuiteReport:
    """Run every check (or only those whose ids ``only`` lists; an empty
    ``only`` runs none) on ``backend``.

    ``on_result`` is called with the report so far after each result, so a
    caller can write it incrementally; ``on_example(check_id, n)`` after each
    example (in this process only). With ``jobs > 1`` the checks run in that
    many worker processes, each loading the backend again from
    ``backend_spec``; the report keeps the registry's order.
    """
    checks = all_checks(_constraints(backend), dtype)
    chosen = [c for c in checks if only is None or c.id in only]
    report = SuiteReport(backend.name, seed, examples, np.dtype(dtype).name,
                         robustness_fails=robustness_fails)
    oracle = oracle or MpmathBackend()
    settings_for = _Settings(examples, seed, backend_spec, database, on_example)
    if on_result is not None:
        on_result(report)
    with _watching_interrupts(), _policy(time_limit, check_determinism):
        if jobs > 1:
            _run_parallel(chosen, report, oracle, settings_for, jobs, dtype, on_result)
        else:
            for check in chosen:
                report.results.append(_run_or_skip(check, backend, oracle,
                                                   settings_for))
                if on_result is not None:
                    on_result(report)
        report.hung = POLICY.hung
    report.complete = True
    return report


@contextlib.contextmanager
def _policy(time_limit: float | None, check_determinism: bool) -> Iterator[None]:
    """The guard's settings for one run, restored when it ends (so a limit
    given to one run does not carry into the next in the same process)."""
    saved = POLICY.time_limit, POLICY.check_determinism, POLICY.hung
    POLICY.hung = ""
    POLICY.check_determinism = check_determinism
    if time_limit is not None:
        POLICY.time_limit = time_limit
    try:
        yield
    finally:
        POLICY.time_limit, POLICY.check_determinism, POLICY.hung = saved


_INTERRUPTED = threading.Event()
"""Set when Ctrl-C reaches a run, so an error it causes is not taken for a
check's own failure."""


@contextlib.contextmanager
def _watching_interrupts() -> Iterator[None]:
    """Note every SIGINT while a run lasts, then raise KeyboardInterrupt as usual.

    A KeyboardInterrupt can land inside Hypothesis's own bookkeeping and come
    out as another exception; the note lets the runner tell that apart from
    a check that failed by itself. Only the main thread can install signal
    handlers; elsewhere the run goes on without the note.
    """
    _INTERRUPTED.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def note(signum: int, frame: object) -> None:
        _INTERRUPTED.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass(frozen=True)
class _Settings:
    examples: int
    seed: int
    backend_spec: str
    database: str | None
    on_example: Callable[[str, int], None] | None = None


def _run_or_skip(check: Check, backend: Backend, oracle: MpmathBackend,
                 options: _Settings) -> ResultReport:
    logger.info("checking %s on %s", check.id, backend.name)
    if POLICY.hung:
        return ResultReport(check.id, _title(check), status="error",
                            result=check.result_id,
                            message=f"{check.id}: not run, because {POLICY.hung}")
    return run_check(check, backend, oracle, examples=options.examples,
                     seed=options.seed, backend_spec=options.backend_spec,
                     database=options.database, on_example=options.on_example)


def _run_parallel(chosen: list[Check], report: SuiteReport, oracle: MpmathBackend,
                  options: _Settings, jobs: int, dtype: type[np.floating],
                  on_result: Callable[[SuiteReport], None] | None) -> None:
    """Run checks in worker processes; the standard library's pool schedules."""
    order = {check.id: index for index, check in enumerate(chosen)}
    work = [(check.id, options.backend_spec, options.examples, options.seed,
             np.dtype(dtype).name, oracle.digits, POLICY.time_limit,
             POLICY.check_determinism, options.database) for check in chosen]
    context = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context)
    try:
        futures = {pool.submit(_worker, item): check
                   for item, check in zip(work, chosen)}
        for future in concurrent.futures.as_completed(futures):
            try:
                result = future.result()
            except BrokenProcessPool:
                result = _lost(futures[future], options.backend_spec, jobs)
            except Exception as error:  # noqa: BLE001 - reported on its row
                result = _failed_in_worker(futures[future], error)
            report.results.append(result)
            report.results.sort(key=lambda r: order[r.result_id])
            if on_result is not None:
                on_result(report)
    except BaseException:
        # Ctrl-C, or a report that cannot be written: the checks not started
        # are dropped rather than run before the run stops.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _lost(check: Check, backend_spec: str, jobs: int) -> ResultReport:
    """The row of a check whose worker process ended before reporting it."""
    return ResultReport(
        check.id, _title(check), status="error", result=check.result_id,
        message=(f"{check.id}: not finished: a worker process (-j {jobs}) ended "
                 "abruptly, which stops every check not finished by then; the "
                 "backend most likely ended its own process (os._exit, "
                 "os.abort or a signal), crashed in native code, or ran out of "
                 "memory; run `python -m conformance --backend "
                 f"{backend_spec} --only {check.id}` (one process) to see on "
                 "which case, and look for such calls in the backend"))


def _failed_in_worker(check: Check, error: BaseException) -> ResultReport:
    """The row of a check whose worker process failed outside the check."""
    return ResultReport(
        check.id, _title(check), status="error", result=check.result_id,
        message=(f"{check.id}: the worker process running it "
                 f"{describe_exception(error)}"))


def _worker(item: tuple[str, str, int, int, str, int, float | None, bool,
                        str | None]) -> ResultReport:
    """Run one check in a worker process, loading the backend by name."""
    check_id, spec, examples, seed, dtype, digits, limit, determinism, database = item
    from impl import load_backend

    backend = load_backend(spec)
    # A worker runs one check after another; each starts afresh, so a hang in
    # an earlier check that this worker happened to run does not skip it.
    POLICY.time_limit, POLICY.check_determinism, POLICY.hung = limit, determinism, ""
    checks = {c.id: c for c in all_checks(_constraints(backend),
                                          np.dtype(dtype).type)}
    report = _run_or_skip(checks[check_id], backend, MpmathBackend(digits),
                          _Settings(examples, seed, spec, database))
    _exit_without_waiting_when_done(backend.name)
    return report


def backend_threads() -> list[threading.Thread]:
    """Threads that would keep this process alive at exit: every live
    non-daemon thread but the main one (the suite starts none)."""
    main = threading.main_thread()
    return [t for t in threading.enumerate()
            if t is not main and not t.daemon and t.is_alive()]


_LEAVING = threading.Event()
"""Set once a worker process has arranged to exit without waiting."""


def _exit_without_waiting_when_done(name: str) -> None:
    """In a worker process: if the backend left non-daemon threads running,
    end the process once its main thread is done, without waiting for them.

    A worker's main thread runs check after check and ends when the pool
    shuts the process down; Python would then wait for every non-daemon
    thread before the process ends, and the pool for the process, forever.
    A daemon thread that joins the main thread ends the process instead,
    right after.
    """
    stray = backend_threads()
    if not stray or _LEAVING.is_set():
        return
    _LEAVING.set()
    logger.warning("backend %r left %s running; its worker process will exit "
                   "without waiting for %s", name, _thread_names(stray),
                   "it" if len(stray) == 1 else "them")

    def leave() -> None:
        threading.main_thread().join()
        _flush_output()
        os._exit(0)

    threading.Thread(target=leave, name="conformance-leave", daemon=True).start()


def _thread_names(threads: list[threading.Thread]) -> str:
    """``1 thread ('worker')``, ``2 threads ('a', 'b')``."""
    names = ", ".join(repr(t.name) for t in threads)
    return f"{len(threads)} non-daemon thread{'' if len(threads) == 1 else 's'} " \
        f"({names})"


def _flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def exit_without_waiting_for_backend_threads(status: int) -> int:
    """Return ``status``; or, if a backend left threads running, exit with it now.

    Call it last, with the exit status, once every report is written and
    printed: Python waits for every non-daemon thread before a process ends,
    so a thread the backend started and never stopped would keep the command
    running after its verdict. Such threads are named in one line on
    standard error, output is flushed and the process ends at once
    (``os._exit``) with ``status``. Without such threads, ``status`` is
    returned and the program ends as usual.
    """
    stray = backend_threads()
    if not stray:
        return status
    _flush_output()
    print(f"python -m conformance: not waiting for {_thread_names(stray)} the "
          f"backend left running; exiting with status {status}", file=sys.stderr)
    logging.shutdown()
    _flush_output()
    os._exit(status)


def _title(check: Check) -> str:
    title = get(check.result_id).title
    return f"{title} ({check.aspect})" if check.aspect else title


def check_ids() -> list[str]:
    """Every check's row id, in run order (the values ``--only`` accepts)."""
    return [c.id for c in all_checks()]


def _constraints(backend: Backend) -> NetworkConstraints | None:
    """The backend's declared constraints, if it declares any."""
    constraints = getattr(backend, "constraints", None)
    return constraints if isinstance(constraints, NetworkConstraints) else None


def reproducer(result_id: str, backend_spec: str, case: Case) -> str:
    """Python that rebuilds ``case`` and judges it again, runnable as is."""
    network = case.network
    activations = ", ".join(f"Activation.{a.name}" for a in network.activations)
    weights = ", ".join(_array(W) for W in case.parameters.weights)
    biases = ", ".join(_array(b) for b in case.parameters.biases)
    return "\n".join([
        "import numpy as np",
        "from conformance import Case, judge",
        "from impl import load_backend",
        "from spec import Activation, Loss, Network, Parameters",
        "",
        "case = Case(",
        f"    network=Network({network.widths!r}, ({activations},), "
        f"Loss.{network.loss.name}),",
        f"    parameters=Parameters(weights=({weights},),",
        f"                          biases=({biases},)),",
        f"    inputs={_array(case.inputs)},",
        f"    targets={_array(case.targets)},",
        f"    probe_seed={case.probe_seed},",
        f"){'' if case.dtype == np.float64 else '.astype(np.' + case.dtype.name + ')'}",
        f"print(judge({result_id!r}, load_backend({backend_spec!r}), case))",
    ])


def _array(array: object) -> str:
    return f"np.array({np.asarray(array).tolist()!r})"
