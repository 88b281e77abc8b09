"""Calling the backend under test defensively.

Every call gets copies of its arguments, a time limit, and a validated
answer: a backend that raises (or calls ``sys.exit``), hangs, writes into its
inputs, answers differently to the same question, or returns the wrong type,
shape, dtype or non-finite numbers is diagnosed here, and the run goes on.
Global settings the suite's own arithmetic depends on (NumPy's floating-point
error handling, the precision of mpmath, python-flint and gmpy2, the working
folder) are restored after every call, so a backend that changes them
affects only itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import numbers
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import mpmath
import numpy as np

from conformance.strategies import Case
from impl import Backend, FunctionBackend, MpmathBackend
from spec import Activation, FloatArray, Loss, LossAndGradients, Parameters

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIME_LIMIT = 60.0
"""Seconds one backend call may take before it is reported as hung. The
largest case (6 layers of width 8, batch 8) takes milliseconds in any
vectorised library and about a second in a scalar engine, so a minute only
trips on a real hang."""

LONGEST_TIMER = 1e8
"""Seconds (about three years): a limit past this, or an infinite one, arms
no timer and so means no limit; the interval timer refuses intervals not
much longer on some platforms."""


class BackendMisbehaved(Exception):
    """The backend's answer cannot be judged; the message says why."""


class BackendHung(BackendMisbehaved):
    """The backend did not answer within the time limit."""


class _Expired(BaseException):
    """Raised by the timer inside the backend's call: a ``BaseException``, so
    that a backend's own ``except Exception`` (a retry, a fallback) cannot
    catch it and carry on past the limit."""


class RobustnessFailure(Exception):
    """The backend returned inf or NaN where the exact value is finite."""


@dataclass
class CallPolicy:
    """How the backend is called.

    Attributes
    ----------
    time_limit
        Seconds per call; ``None`` for no limit.
    check_determinism
        Call twice and require bit-identical answers.
    """

    time_limit: float | None = DEFAULT_TIME_LIMIT
    check_determinism: bool = True
    hung: str = ""
    """The first hang's diagnosis, once the backend has hung in this run."""


POLICY = CallPolicy()
"""The policy in force; the runner replaces its fields for a run."""


def hang_message(what: str, seconds: float, where: str = "") -> str:
    """The diagnosis of a call that did not return: what, how long, what to try.

    >>> import textwrap
    >>> print(textwrap.fill(hang_message(
    ...     "cost: backend 'slow'", 0.5, "network 2-1 tanh squared_error, batch 1")))
    cost: backend 'slow' did not answer within 0.5 s (the per-call time
    limit) on network 2-1 tanh squared_error, batch 1, so it was not
    called again in this run; if it is only slow, raise the limit with
    --time-limit SECONDS (--conformance-time-limit under pytest),
    otherwise look for a loop or a wait that never ends
    """
    place = f" on {where}" if where else ""
    return (f"{what} did not answer within {seconds:g} s (the per-call time "
            f"limit){place}, so it was not called again in this run; if it is "
            "only slow, raise the limit with --time-limit SECONDS "
            "(--conformance-time-limit under pytest), otherwise look for a loop "
            "or a wait that never ends")


def slow_message(what: str, seconds: float, limit: float, where: str = "",
                 *, interrupted: bool) -> str:
    """The diagnosis of a call that answered, but only after the time limit.

    ``interrupted`` says whether a timer was armed to interrupt the call at
    the limit (it was then cancelled or its signal ignored by the backend).

    >>> import textwrap
    >>> print(textwrap.fill(slow_message(
    ...     "cost: backend 'slow'", 4.2, 1.0, "network 2-1 tanh squared_error, "
    ...     "batch 1", interrupted=True)))
    cost: backend 'slow' took 4.2 s to answer, past the per-call time
    limit of 1 s, on network 2-1 tanh squared_error, batch 1, so it was
    not called again in this run; the timer that should have interrupted
    it at the limit was cancelled or its signal ignored (does the backend
    use signal.setitimer, signal.alarm or a SIGALRM handler?); if it is
    only slow, raise the limit with --time-limit SECONDS (--conformance-
    time-limit under pytest)
    """
    place = f", on {where}" if where else ""
    why = ("the timer that should have interrupted it at the limit was cancelled "
           "or its signal ignored (does the backend use signal.setitimer, "
           "signal.alarm or a SIGALRM handler?)" if interrupted else
           "no timer could interrupt it (none outside the main thread or without "
           "signal.setitimer, and none while another interval timer is running), "
           "so the limit was checked when it returned")
    return (f"{what} took {seconds:.1f} s to answer, past the per-call time limit "
            f"of {limit:g} s{place}, so it was not called again in this run; "
            f"{why}; if it is only slow, raise the limit with --time-limit SECONDS "
            "(--conformance-time-limit under pytest)")


def _timer_seconds(seconds: float | None) -> float | None:
    """The interval to arm for a limit of ``seconds``; ``None`` for none.

    >>> _timer_seconds(2.5), _timer_seconds(float("inf")), _timer_seconds(1e12)
    (2.5, None, None)
    """
    if seconds is None or not math.isfinite(seconds) or not 0 < seconds <= \
            LONGEST_TIMER:
        return None
    return float(seconds)


@contextlib.contextmanager
def time_limit(seconds: float | None, what: str, where: str = "") -> Iterator[bool]:
    """Interrupt the block after ``seconds`` with :class:`_Expired`.

    ``what`` names the call and ``where`` the case it was asked about, for
    the message (see :func:`hang_message`). Uses a real-time interval timer,
    so it works only in the main thread of a Unix process; elsewhere the
    block runs without a limit (a backend stuck inside one C call is
    interrupted only when that call returns). A limit that is infinite or
    longer than :data:`LONGEST_TIMER` is no limit, and so is one asked for
    while another interval timer runs (pytest-timeout's, or the caller's
    own), which is left as it is. Yields whether the timer was armed; the
    timer's own failures never reach the block.
    """
    interval = _timer_seconds(seconds)
    if (interval is None or not hasattr(signal, "setitimer")
            or threading.current_thread() is not threading.main_thread()
            or signal.getitimer(signal.ITIMER_REAL)[0] > 0):
        yield False
        return

    def expire(signum: int, frame: object) -> None:
        raise _Expired(hang_message(what, interval, where))

    previous = signal.signal(signal.SIGALRM, expire)
    try:
        signal.setitimer(signal.ITIMER_REAL, interval)
    except (OverflowError, ValueError, OSError) as error:
        logger.debug("no time limit: the interval timer refused %g s (%s)",
                     interval, error)
        _restore_alarm_handler(previous)
        yield False
        return
    try:
        yield True
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            # Even if the signal lands while the timer is being disarmed.
            _restore_alarm_handler(previous)


def _restore_alarm_handler(previous: Any) -> None:
    """Put back the SIGALRM handler in force before (one set outside Python
    reads as ``None`` and cannot be put back, so the default is)."""
    signal.signal(signal.SIGALRM, previous if previous is not None else
                  signal.SIG_DFL)


def guarded(call: Callable[[], T], what: str, where: str = "") -> T:
    """Run ``call`` under the policy's time limit; diagnose what goes wrong.

    Anything ``call`` raises, ``SystemExit`` and other ``BaseException``
    included, becomes :class:`BackendMisbehaved` naming ``what`` and
    ``where``; only ``KeyboardInterrupt`` passes through, as the user's
    Ctrl-C. A call that outlasts the time limit is a hang, whether the timer
    interrupted it or it returned late (a backend can cancel the timer or
    ignore its signal). Global settings the suite depends on are restored
    afterwards (see :func:`kept_global_state`).

    Once the backend has hung, it is not called again in the run: every
    later call raises :class:`BackendHung` with the first hang's diagnosis,
    as it is (it already says that the backend was not called again).
    """
    if POLICY.hung:
        raise BackendHung(POLICY.hung)
    limit = POLICY.time_limit
    with kept_global_state():
        started = time.monotonic()
        armed = False
        try:
            with time_limit(limit, what, where) as armed:
                answer = call()
        except _Expired as error:
            POLICY.hung = str(error)
            raise BackendHung(POLICY.hung) from None
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # noqa: BLE001 - the backend's, diagnosed
            _check_elapsed(time.monotonic() - started, limit, what, where, armed)
            place = f" on {where}" if where else ""
            raise BackendMisbehaved(f"{what} {describe_exception(error)}{place}") \
                from error
        _check_elapsed(time.monotonic() - started, limit, what, where, armed)
        return answer


LATE = 0.01
"""Seconds a call may end past its limit before it counts as late: the time
measured includes arming and disarming the timer."""


def _check_elapsed(seconds: float, limit: float | None, what: str, where: str,
                   armed: bool) -> None:
    """Raise :class:`BackendHung` if a call that returned took past ``limit``."""
    if limit is None or not math.isfinite(limit) or seconds <= limit * 1.01 + LATE:
        return
    POLICY.hung = slow_message(what, seconds, limit, where, interrupted=armed)
    raise BackendHung(POLICY.hung)


def describe_exception(error: BaseException) -> str:
    """What the backend did, as words after its name: ``raised Class: text``.

    Safe for any exception: ``SystemExit`` reads as the ``sys.exit`` call
    it came from, and an exception whose ``str()`` itself fails is named by
    its class with a note.

    >>> describe_exception(ValueError("bad shape"))
    'raised ValueError: bad shape'
    >>> describe_exception(SystemExit(0))
    'called sys.exit(0)'
    >>> class Odd(Exception):
    ...     def __str__(self) -> str:
    ...         raise RuntimeError("no")
    >>> describe_exception(Odd())
    'raised Odd: <str() raised RuntimeError>'
    """
    if isinstance(error, SystemExit):
        code = "" if error.code is None else _safe_text(error.code, repr)
        return f"called sys.exit({code})"
    text = _safe_text(error, str)
    name = type(error).__name__
    return f"raised {name}: {text}" if text else f"raised {name}"


def _safe_text(value: object, how: Callable[[object], str]) -> str:
    """``how(value)``, or a note naming what ``how`` raised."""
    try:
        return how(value)
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # noqa: BLE001 - the backend's object
        return f"<{how.__name__}() raised {type(error).__name__}>"


# Global state a backend may change and the suite depends on.

@contextlib.contextmanager
def kept_global_state() -> Iterator[None]:
    """Restore, after the block, global settings the suite's arithmetic uses.

    NumPy's floating-point error handling (``np.seterr``, ``np.seterrcall``),
    the working precision of mpmath, python-flint and gmpy2 (each only if
    already imported), the recursion limit, the working folder,
    ``sys.stdout`` and ``sys.stderr`` (if replaced, or opened again if the
    process's own were closed), and the SIGINT handler (in the main thread).
    Saving them all costs microseconds; they are put back after every call.

    >>> with kept_global_state():
    ...     _ = np.seterr(all="raise")
    >>> np.geterr()["divide"]
    'warn'
    """
    errors, error_call = np.geterr(), np.geterrcall()
    precision = mpmath.mp.prec
    flint = sys.modules.get("flint")
    flint_precision = flint.ctx.prec if flint is not None else None
    gmpy2 = sys.modules.get("gmpy2")
    gmpy2_context = gmpy2.get_context().copy() if gmpy2 is not None else None
    recursion = sys.getrecursionlimit()
    folder = _current_folder()
    streams = sys.stdout, sys.stderr
    main = threading.current_thread() is threading.main_thread()
    interrupt = signal.getsignal(signal.SIGINT) if main else None
    try:
        yield
    finally:
        if np.geterr() != errors:
            np.seterr(**errors)
        if np.geterrcall() is not error_call:
            np.seterrcall(error_call)
        if mpmath.mp.prec != precision:
            mpmath.mp.prec = precision
        if flint is not None and flint.ctx.prec != flint_precision:
            flint.ctx.prec = flint_precision
        if gmpy2 is not None:
            gmpy2.set_context(gmpy2_context)
        if sys.getrecursionlimit() != recursion:
            sys.setrecursionlimit(recursion)
        if folder is not None and _current_folder() != folder:
            with contextlib.suppress(OSError):
                os.chdir(folder)
        sys.stdout, sys.stderr = (_open_again(stream) for stream in streams)
        if main and interrupt is not None and \
                signal.getsignal(signal.SIGINT) is not interrupt:
            signal.signal(signal.SIGINT, interrupt)


def _open_again(stream: Any) -> Any:
    """``stream``, or, if it is the process's standard output or error and
    has been closed, a new stream on the same file descriptor (Python opens
    them without closing the descriptor with the stream)."""
    if not getattr(stream, "closed", False):
        return stream
    descriptors = {id(sys.__stdout__): 1, id(sys.__stderr__): 2, **_OPENED_AGAIN}
    if id(stream) not in descriptors:
        return stream
    try:
        fresh = open(descriptors[id(stream)], "w",
                     buffering=1 if getattr(stream, "line_buffering", False) else -1,
                     encoding=getattr(stream, "encoding", None),
                     errors=getattr(stream, "errors", None), closefd=False)
    except (OSError, ValueError, TypeError):
        return stream
    _OPENED_AGAIN[id(fresh)] = descriptors[id(stream)]
    return fresh


_OPENED_AGAIN: dict[int, int] = {}
"""Standard streams opened again here, by ``id``, with their descriptors."""


def _current_folder() -> str | None:
    """The working folder, or ``None`` if it no longer exists."""
    try:
        return os.getcwd()
    except OSError:
        return None


# Calling the backend and validating its answer.

def call_backend(backend: Backend, case: Case, result_id: str) -> LossAndGradients:
    """Ask ``backend`` for the loss and gradients of ``case``; validate the answer.

    The backend receives copies, compared with the originals afterwards, so
    a backend that writes into its inputs is caught; it is asked twice, and
    the two answers must agree to the bit; then it is asked about other
    targets, and the arrays of its first answer must not change (a backend
    handing out buffers it reuses is caught).

    Raises
    ------
    BackendMisbehaved
        It raised, hung, changed its inputs, answered differently twice,
        returned the wrong type, shape or dtype, or returned inf or NaN where
        nothing in the case can overflow.
    RobustnessFailure
        It returned inf or NaN where the case's exact values are large enough
        for a textbook formula to overflow (the exact loss and gradients are
        finite).
    """
    first, returned = _one_call(backend, case, result_id)
    if POLICY.check_determinism:
        second, _ = _one_call(backend, case, result_id)
        _check_same(first, second, backend.name, result_id, case)
        # Another question of the same shapes must leave the first answer alone.
        other = Case(case.network, case.parameters, case.inputs,
                     (case.targets + 1).astype(case.dtype), case.probe_seed)
        _one_call(backend, other, result_id)
        _check_not_overwritten(first, returned, backend.name, result_id)
    return first


def _check_not_overwritten(first: LossAndGradients, returned: list[FloatArray],
                           name: str, result_id: str) -> None:
    """The arrays a call returned must not change when the backend runs again."""
    kept = list(first.gradients.weights) + list(first.gradients.biases)
    for array, copy in zip(returned, kept):
        if array.shape == copy.shape and not np.array_equal(array, copy):
            raise BackendMisbehaved(
                f"{result_id}: backend {name!r} changed the gradient arrays it had "
                "returned when it was called again: it hands out views into "
                "buffers it reuses, so a caller's gradients are overwritten by "
                "the next call (return copies)")


def _one_call(backend: Backend, case: Case, result_id: str) -> \
        tuple[LossAndGradients, list[FloatArray]]:
    """One validated call, and the very arrays it returned (not copies)."""
    parameters = case.parameters.copy()
    inputs, targets = case.inputs.copy(), case.targets.copy()
    what = f"{result_id}: backend {backend.name!r}"
    plain_function = isinstance(backend, FunctionBackend) and \
        type(backend).loss_and_gradients is FunctionBackend.loss_and_gradients

    def ask() -> object:
        if plain_function:
            # Its answer is unpacked here, where a malformed one is diagnosed.
            assert isinstance(backend, FunctionBackend)
            return backend.function(case.network, parameters, inputs, targets)
        return backend.loss_and_gradients(case.network, parameters, inputs, targets)

    answer = guarded(ask, what, case.describe())
    _check_unchanged(case, parameters, inputs, targets, backend.name, result_id)
    loss, weights, biases = _unpacked(answer, plain_function, backend.name,
                                      result_id, case)
    checked, returned = _validated(loss, weights, biases, case, backend.name,
                                   result_id)
    return checked, returned


def _check_same(first: LossAndGradients, second: LossAndGradients, name: str,
                result_id: str, case: Case) -> None:
    pairs = [("loss", np.asarray(first.loss), np.asarray(second.loss))]
    for kind, a, b in (("weight", first.gradients.weights, second.gradients.weights),
                       ("bias", first.gradients.biases, second.gradients.biases)):
        pairs += [(f"{kind} gradient of layer {ell}", x, y)
                  for ell, (x, y) in enumerate(zip(a, b), start=1)]
    for label, x, y in pairs:
        if x.tobytes() != y.tobytes():
            raise BackendMisbehaved(
                f"{result_id}: backend {name!r} returned a different {label} when "
                f"asked the same question twice on {case.describe()}; a backend "
                "must be deterministic (state kept between calls, an unseeded "
                "random number, or a buffer reused across calls?)")


def _check_unchanged(case: Case, parameters: Parameters, inputs: FloatArray,
                     targets: FloatArray, name: str, result_id: str) -> None:
    pairs = ([("inputs", case.inputs, inputs), ("targets", case.targets, targets)]
             + [(f"W_{i}", a, b) for i, (a, b) in
                enumerate(zip(case.parameters.weights, parameters.weights), 1)]
             + [(f"b_{i}", a, b) for i, (a, b) in
                enumerate(zip(case.parameters.biases, parameters.biases), 1)])
    for label, original, passed in pairs:
        if not np.array_equal(original, passed):
            raise BackendMisbehaved(
                f"{result_id}: backend {name!r} modified its argument {label} in "
                "place; a backend must treat its inputs as read-only (copy first)")


EXPECTED_ANSWER = "(loss, weight_gradients, bias_gradients)"
"""What a plain function backend returns, as messages spell it."""


def _unpacked(answer: object, plain_function: bool, name: str, result_id: str,
              case: Case) -> tuple[object, object, object]:
    """The loss, weight gradients and bias gradients of an answer, unchecked.

    A :class:`spec.LossAndGradients` from any backend; a tuple of three from
    a plain function (:class:`impl.FunctionBackend`).
    """
    if isinstance(answer, LossAndGradients):
        gradients = answer.gradients
        if not (hasattr(gradients, "weights") and hasattr(gradients, "biases")):
            raise BackendMisbehaved(
                f"{result_id}: backend {name!r} returned a LossAndGradients whose "
                f"gradients are {_kind_of(gradients)} on {case.describe()}; "
                "expected spec.Parameters(weights=..., biases=...), one array "
                "per layer in each")
        return answer.loss, gradients.weights, gradients.biases
    if plain_function and isinstance(answer, tuple) and len(answer) == 3:
        loss, weights, biases = answer
        return loss, weights, biases
    expected = (f"a tuple {EXPECTED_ANSWER} or a spec.LossAndGradients"
                if plain_function else "a spec.LossAndGradients")
    if isinstance(answer, (tuple, list)):
        got = (f"a {type(answer).__name__} of {len(answer)} "
               f"item{'' if len(answer) == 1 else 's'}")
        if plain_function and isinstance(answer, tuple):
            expected = f"3 items {EXPECTED_ANSWER}"
    else:
        got = _kind_of(answer)
    raise BackendMisbehaved(f"{result_id}: backend {name!r} returned {got} on "
                            f"{case.describe()}; expected {expected}")


def _kind_of(value: object) -> str:
    """``None``, or the type's name with an article: ``a dict``, ``an int``."""
    if value is None:
        return "None"
    kind = type(value).__name__
    return f"{'an' if kind[:1].lower() in 'aeiou' else 'a'} {kind}"


def _validated(loss: object, weights: object, biases: object, case: Case,
               name: str, result_id: str) -> \
        tuple[LossAndGradients, list[FloatArray]]:
    """The answer as float and arrays of the case's dtype, all finite, with
    the very arrays returned (views, not copies); or a diagnosis."""
    real_loss = _real_loss(loss, name, result_id, case)
    checked_weights, weight_views = _arrays(weights, case, "weight", name, result_id)
    checked_biases, bias_views = _arrays(biases, case, "bias", name, result_id)
    _check_finite(real_loss, checked_weights, checked_biases, case, name, result_id)
    return (LossAndGradients(real_loss, Parameters(checked_weights, checked_biases)),
            weight_views + bias_views)


LOSS_EXPECTED = ("expected one real number, the mean loss over the batch (a "
                 "float, a NumPy scalar or an array of one element)")


def _real_loss(loss: object, name: str, result_id: str, case: Case) -> float:
    """The loss as a float: any real number, or an array of one real number.

    Strings, booleans, complex numbers and arrays of more than one element
    are refused, whatever ``float()`` would make of them.
    """
    def refuse(got: str) -> BackendMisbehaved:
        return BackendMisbehaved(f"{result_id}: backend {name!r} returned a loss "
                                 f"{got} on {case.describe()}; {LOSS_EXPECTED}")

    if isinstance(loss, (str, bytes)):
        raise refuse(f"of type {type(loss).__name__} "
                     f"({_safe_text(loss, repr)[:40]})")
    if isinstance(loss, (bool, np.bool_)):
        raise refuse(f"of type {type(loss).__name__}")
    if isinstance(loss, numbers.Real):
        return float(loss)
    try:
        array = as_array(loss)
    except Exception:  # noqa: BLE001 - not array-like: try it as a number
        array = None
    if array is not None and array.size != 1:
        raise refuse(f"of shape {array.shape}, an array of {array.size} numbers")
    if array is not None and array.dtype.kind in "fiu":
        return float(array.reshape(()))
    if array is not None and array.dtype.kind != "O":
        raise refuse(f"of type {type(loss).__name__} with dtype {array.dtype}")
    item = array.reshape(()).item() if array is not None else loss
    if isinstance(item, (str, bytes, bool, np.bool_, complex)):
        raise refuse(f"of type {type(item).__name__}")
    try:
        return float(item)  # type: ignore[arg-type]  # anything with __float__
    except Exception as error:  # noqa: BLE001 - diagnosed
        raise refuse(f"of type {type(loss).__name__}") from error


def as_array(value: object) -> np.ndarray[Any, Any]:
    """``value`` as a NumPy array, without copying where NumPy does not.

    A PyTorch tensor is detached from its graph and moved to the CPU first:
    a tensor that requires grad, or lives on a GPU, holds numbers as good as
    any other, which NumPy alone refuses to read.
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.detach().cpu()
    return np.asarray(value)


def _check_finite(loss: float, weights: tuple[FloatArray, ...],
                  biases: tuple[FloatArray, ...], case: Case, name: str,
                  result_id: str) -> None:
    problems = [] if np.isfinite(loss) else [f"loss = {loss}"]
    first: tuple[str, int, tuple[int, ...]] | None = None
    for kind, arrays in (("W", weights), ("b", biases)):
        for ell, array in enumerate(arrays, start=1):
            bad = ~np.isfinite(array)
            count = int(np.count_nonzero(bad))
            if count:
                index = tuple(int(i) for i in np.argwhere(bad)[0])
                if not problems:
                    first = (kind, ell, index)
                problems.append(f"{_entries(count)} in the gradient of "
                                f"{kind}_{ell} ({kind}_{ell}{list(index)} = "
                                f"{array[index]})")
    if not problems:
        return
    what = f"{result_id}: backend {name!r} returned {', '.join(problems)}"
    raise _non_finite(what, case, lambda exact: _exact_at(exact, first))


def _entries(count: int) -> str:
    return f"{count} non-finite entr{'y' if count == 1 else 'ies'}"


def _exact_at(exact: Any, first: tuple[str, int, tuple[int, ...]] | None) -> str:
    """The exact value where the first non-finite number was returned."""
    split = exact.split
    if first is None:
        return f"the exact loss is {float(split.loss.hi[0]):.4g}"
    kind, ell, index = first
    parts = split.weight_gradients if kind == "W" else split.bias_gradients
    return (f"the exact {kind}_{ell}{list(index)} is "
            f"{float(parts[ell - 1].hi[index]):.4g}")


# inf and NaN: an overflow, or a wrong answer?

@dataclass(frozen=True)
class OverflowRoom:
    """How large exact values may get before a textbook formula overflows.

    Attributes
    ----------
    pre_activation
        Half of :math:`\\ln` of the dtype's largest number (354.9 in
        float64, 44.4 in float32): past it ``exp(2 z)`` (in a textbook
        ``tanh``) and ``exp(z)**2`` overflow, and shortly after ``exp(z)``
        itself (softmax, sigmoid, softplus without a shift).
    magnitude
        The square root of the largest number: past it a square (the
        squared error) overflows.
    """

    pre_activation: float
    magnitude: float

    @staticmethod
    def of(dtype: np.dtype[Any]) -> OverflowRoom:
        largest = float(np.finfo(dtype).max)
        return OverflowRoom(math.log(largest) / 2, math.sqrt(largest))


_ORACLE: list[MpmathBackend] = []
"""The oracle that sizes the exact values of a case answered with inf or NaN,
created on first need."""


def _exact_of(case: Case) -> Any:
    if not _ORACLE:
        _ORACLE.append(MpmathBackend())
    return _ORACLE[0].exact(case.network, case.parameters, case.inputs, case.targets)


def _largest(arrays: Sequence[Any]) -> float:
    with np.errstate(all="ignore"):
        return max((float(np.max(np.abs(np.asarray(a, dtype=np.float64))))
                    for a in arrays if np.size(a)), default=0.0)


EXPONENTIATED = frozenset({Activation.SIGMOID, Activation.TANH, Activation.SOFTPLUS,
                           Activation.ELU})
"""Activations whose textbook formulas take ``exp`` of the pre-activation."""


def _non_finite(what: str, case: Case,
                exact_value: Callable[[Any], str] | None = None) -> Exception:
    """The diagnosis of inf or NaN returned on ``case``, ``what`` saying which.

    A robustness failure when the case's exact values are large enough for
    a textbook formula to overflow in the case's dtype (see
    :class:`OverflowRoom`): a pre-activation of a unit whose activation
    takes ``exp`` (:data:`EXPONENTIATED`) or a softmax logit past
    ``OverflowRoom.pre_activation``, or any value past
    ``OverflowRoom.magnitude``. Otherwise it is a wrong answer, and the
    backend misbehaved: nothing in the case can overflow.
    """
    room = OverflowRoom.of(case.dtype)
    exact = _exact_of(case)
    rounded, network = exact.rounded, case.network
    exponentiated = [z for z, activation in zip(rounded.z, network.activations)
                     if activation in EXPONENTIATED]
    if network.loss is Loss.SOFTMAX_CROSS_ENTROPY:
        exponentiated.append(rounded.a[-1])
    z = _largest(exponentiated)
    split = exact.split
    magnitude = _largest([case.inputs, case.targets, rounded.losses, *rounded.z,
                          *rounded.a, *rounded.upstream, split.loss.hi,
                          *(g.hi for g in split.weight_gradients),
                          *(g.hi for g in split.bias_gradients)])
    where, dtype = case.describe(), case.dtype
    if z > room.pre_activation or magnitude > room.magnitude:
        why = (f"largest exact |pre-activation| or |logit| under an exp there: "
               f"{z:.3g}, past the {room.pre_activation:.4g} where textbook "
               f"formulas (exp(2z) in tanh, exp(z) squared) start to overflow in "
               f"{dtype}" if z > room.pre_activation else
               f"largest exact value there: {magnitude:.3g}, past the "
               f"{room.magnitude:.2g} where its square overflows in {dtype}")
        return RobustnessFailure(
            f"{what} on {where}, where the exact loss and gradients are finite "
            f"({why}); a formula that overflows, such as exp without a shift, is "
            "the usual cause")
    if exponentiated:
        exponents = (f"its largest exact |pre-activation| of a sigmoid, tanh, "
                     f"softplus or ELU unit, or |logit| of the softmax, is "
                     f"{z:.3g} (textbook formulas with exp overflow in {dtype} "
                     f"only past {room.pre_activation:.4g})")
    else:
        exponents = ("it has no sigmoid, tanh, softplus or ELU unit and no "
                     "softmax, so no exp to overflow")
    value = f" ({exact_value(exact)})" if exact_value is not None else ""
    return BackendMisbehaved(
        f"{what} on {where}, where the exact values are finite{value} and nothing "
        f"in the case can overflow: {exponents}, and its largest exact value is "
        f"{magnitude:.3g} (a square overflows only past {room.magnitude:.2g}); "
        "this is a wrong answer, not an overflow")


def _arrays(values: object, case: Case, kind: str, name: str, result_id: str) -> \
        tuple[tuple[FloatArray, ...], list[FloatArray]]:
    """Validated copies of the gradients, and the very arrays returned."""
    network = case.network
    shapes = [network.weight_shape(ell) if kind == "weight" else (network.widths[ell],)
              for ell in range(1, network.depth + 1)]
    items = list(values) if isinstance(values, (list, tuple)) else None
    if items is None or len(items) != len(shapes):
        raise BackendMisbehaved(
            f"{result_id}: backend {name!r} returned {kind} gradients as "
            f"{type(values).__name__} of length "
            f"{len(items) if items is not None else '?'}; expected a sequence of "
            f"{len(shapes)} arrays, one per layer")
    result, views = [], []
    for ell, (item, shape) in enumerate(zip(items, shapes), start=1):
        array = _readable(
            item, f"{result_id}: backend {name!r} returned a {kind} gradient for "
            f"layer {ell} that NumPy cannot read as an array of numbers",
            f"expected a NumPy array of {case.dtype} in the shape {shape} of the "
            "parameter")
        if array.shape != shape:
            raise BackendMisbehaved(
                f"{result_id}: backend {name!r} returned a {kind} gradient of shape "
                f"{array.shape} for layer {ell}, expected {shape} (the shape of the "
                f"parameter) on {case.describe()}")
        if array.dtype != case.dtype:
            raise BackendMisbehaved(_dtype_message(item, array, case, kind, ell,
                                                   name, result_id))
        result.append(array.copy())
        views.append(array)
    return tuple(result), views


def _dtype_message(item: object, array: np.ndarray[Any, Any], case: Case, kind: str,
                   ell: int, name: str, result_id: str) -> str:
    """Why a gradient's dtype is not the case's, and what to return instead."""
    wanted = case.dtype
    if isinstance(item, (list, tuple)):
        return (f"{result_id}: backend {name!r} returned the {kind} gradient for "
                f"layer {ell} as a Python {type(item).__name__}, which NumPy reads "
                f"as {array.dtype}, expected an array of {wanted} (the dtype of the "
                f"arrays it was given): compute in {wanted} and return NumPy "
                f"arrays, e.g. np.asarray(gradient, dtype=np.{wanted})")
    return (f"{result_id}: backend {name!r} returned a {kind} gradient of dtype "
            f"{array.dtype} for layer {ell}, expected {wanted} (the dtype "
            "of the arrays it was given)")


def _readable(value: object, problem: str, expected: str) -> np.ndarray[Any, Any]:
    """``value`` read by :func:`as_array`, or a diagnosis: ``problem`` (what
    the backend returned), the reason NumPy gave, and what was ``expected``."""
    try:
        return as_array(value)
    except Exception as error:  # noqa: BLE001 - diagnosed
        raise BackendMisbehaved(
            f"{problem} ({type(value).__name__}, which "
            f"{describe_exception(error)}); {expected}") from error


def call_declared(backend: Backend, method: str, case: Case, result_id: str,
                  *extra: FloatArray) -> Any:
    """Call a declared capability on the first example, guarded; the raw answer."""
    return guarded(lambda: getattr(backend, method)(
        case.network, case.parameters.copy(), case.inputs[0].copy(), *extra),
        f"{result_id}: backend {backend.name!r}'s {method} (a declared capability)",
        f"the first example of {case.describe()}")


def call_capability(backend: Backend, method: str, case: Case, result_id: str,
                    shape: tuple[int, ...], *extra: FloatArray) -> FloatArray:
    """Call a declared capability on the first example; validate the answer."""
    answer = call_declared(backend, method, case, result_id, *extra)
    return float_array(answer, shape, method, backend.name, result_id, case.dtype,
                       case=first_example(case))


def first_example(case: Case) -> Case:
    """``case`` with its first example alone: what a capability is asked about."""
    return dataclasses.replace(case, inputs=case.inputs[:1], targets=case.targets[:1])


def float_array(value: object, shape: tuple[int, ...], what: str, name: str,
                result_id: str, dtype: np.dtype[np.floating], *,
                case: Case) -> FloatArray:
    """``value`` as an array of ``shape`` and ``dtype``, all finite, or a diagnosis.

    Non-finite entries are a robustness failure only where ``case`` (the
    case asked about) has exact values large enough to overflow.
    """
    array = _readable(
        value, f"{result_id}: backend {name!r} returned {what} that NumPy cannot "
        "read as an array", f"expected an array of shape {shape} and {dtype}")
    if array.shape != shape or array.dtype != dtype:
        raise BackendMisbehaved(
            f"{result_id}: backend {name!r} returned {what} of shape {array.shape} "
            f"and dtype {array.dtype}, expected shape {shape} and {dtype}")
    bad = ~np.isfinite(array)
    if np.any(bad):
        index = [int(i) for i in np.argwhere(bad)[0]]
        problem = (f"{result_id}: backend {name!r} returned {what} with "
                   f"{_entries(int(np.count_nonzero(bad)))} (first at {index})")
        raise _non_finite(problem, case)
    return array
