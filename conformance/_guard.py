"""Calling the backend under test defensively.

Every call gets copies of its arguments, a time limit, and a validated
answer: a backend that raises, hangs, writes into its inputs, answers
differently to the same question, or returns the wrong type, shape, dtype or
non-finite numbers is diagnosed here, and the run goes on.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from conformance.strategies import Case
from impl import Backend
from spec import FloatArray, LossAndGradients, Parameters

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIME_LIMIT = 60.0
"""Seconds one backend call may take before it is reported as hung. The
largest case (6 layers of width 8, batch 8) takes milliseconds in any
vectorised library and about a second in a scalar engine, so a minute only
trips on a real hang."""


class BackendMisbehaved(Exception):
    """The backend's answer cannot be judged; the message says why."""


class BackendHung(BackendMisbehaved):
    """The backend did not answer within the time limit."""


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


@contextlib.contextmanager
def time_limit(seconds: float | None, what: str, where: str = "") -> Iterator[None]:
    """Interrupt the block after ``seconds`` with :class:`BackendHung`.

    ``what`` names the call and ``where`` the case it was asked about, for
    the message (see :func:`hang_message`). Uses a real-time interval timer,
    so it works only in the main thread of a Unix process; elsewhere the
    block runs without a limit (a backend stuck inside one C call is
    interrupted only when that call returns).
    """
    usable = (seconds is not None and seconds > 0 and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable or seconds is None:
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise BackendHung(hang_message(what, seconds, where))

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def guarded(call: Callable[[], T], what: str, where: str = "") -> T:
    """Run ``call`` under the policy's time limit; raise on a hang.

    Once the backend has hung, it is not called again in the run: every
    later call raises :class:`BackendHung` with the first hang's diagnosis,
    as it is (it already says that the backend was not called again).
    """
    if POLICY.hung:
        raise BackendHung(POLICY.hung)
    try:
        with time_limit(POLICY.time_limit, what, where):
            return call()
    except BackendHung as error:
        POLICY.hung = str(error)
        raise


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
        It raised, hung, changed its inputs, answered differently twice, or
        returned the wrong type, shape or dtype.
    RobustnessFailure
        It returned inf or NaN (the exact loss and gradients are finite).
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
    try:
        answer = guarded(lambda: backend.loss_and_gradients(
            case.network, parameters, inputs, targets), what, case.describe())
    except BackendMisbehaved:
        raise
    except Exception as error:
        raise BackendMisbehaved(
            f"{what} raised {type(error).__name__}: {error} on "
            f"{case.describe()}") from error
    _check_unchanged(case, parameters, inputs, targets, backend.name, result_id)
    returned = []
    if isinstance(answer, LossAndGradients):
        returned = [np.asarray(g) for g in
                    list(answer.gradients.weights) + list(answer.gradients.biases)]
    return _validated(answer, case, backend.name, result_id), returned


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


def _validated(answer: object, case: Case, name: str, result_id: str) -> \
        LossAndGradients:
    if not isinstance(answer, LossAndGradients):
        raise BackendMisbehaved(
            f"{result_id}: backend {name!r} returned {type(answer).__name__}, "
            "expected spec.LossAndGradients")
    loss = _float_loss(answer.loss, name, result_id)
    weights = _arrays(answer.gradients.weights, case, "weight", name, result_id)
    biases = _arrays(answer.gradients.biases, case, "bias", name, result_id)
    _check_finite(loss, weights, biases, case, name, result_id)
    return LossAndGradients(loss, Parameters(weights, biases))


def _float_loss(loss: object, name: str, result_id: str) -> float:
    try:
        return float(loss)  # type: ignore[arg-type]  # any number-like is fine
    except (TypeError, ValueError) as error:
        raise BackendMisbehaved(
            f"{result_id}: backend {name!r} returned a loss of type "
            f"{type(loss).__name__}, expected a float") from error


def _check_finite(loss: float, weights: tuple[FloatArray, ...],
                  biases: tuple[FloatArray, ...], case: Case, name: str,
                  result_id: str) -> None:
    problems = [] if np.isfinite(loss) else [f"loss = {loss}"]
    for kind, arrays in (("W", weights), ("b", biases)):
        for ell, array in enumerate(arrays, start=1):
            bad = int(np.count_nonzero(~np.isfinite(array)))
            if bad:
                problems.append(f"{bad} non-finite entries in the gradient of "
                                f"{kind}_{ell}")
    if problems:
        raise RobustnessFailure(
            f"{result_id}: backend {name!r} returned {', '.join(problems)} on "
            f"{case.describe()}, where the exact loss and gradients are finite "
            f"(largest |pre-activation| there: {_largest_z(case):.3g}); a formula "
            "that overflows, such as exp without a shift, is the usual cause")


def _largest_z(case: Case) -> float:
    """Largest |pre-activation| of the case, by a float64 forward pass."""
    from impl import _numeric

    a = case.inputs.astype(np.float64)
    largest = 0.0
    for W, b, activation in zip(case.parameters.weights, case.parameters.biases,
                                case.network.activations):
        z = a @ W.astype(np.float64).T + b
        largest = max(largest, float(np.max(np.abs(z))))
        a = _numeric.sigma(activation, z)
    return largest


def _arrays(values: object, case: Case, kind: str, name: str, result_id: str) -> \
        tuple[FloatArray, ...]:
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
    result = []
    for ell, (item, shape) in enumerate(zip(items, shapes), start=1):
        array = np.asarray(item)
        if array.shape != shape:
            raise BackendMisbehaved(
                f"{result_id}: backend {name!r} returned a {kind} gradient of shape "
                f"{array.shape} for layer {ell}, expected {shape} (the shape of the "
                f"parameter) on {case.describe()}")
        if array.dtype != case.dtype:
            raise BackendMisbehaved(
                f"{result_id}: backend {name!r} returned a {kind} gradient of dtype "
                f"{array.dtype} for layer {ell}, expected {case.dtype} (the dtype "
                "of the arrays it was given)")
        result.append(array.copy())
    return tuple(result)


def call_capability(backend: Backend, method: str, case: Case, result_id: str,
                    shape: tuple[int, ...], *extra: FloatArray) -> FloatArray:
    """Call a declared capability on the first example; validate the answer."""
    what = f"{result_id}: backend {backend.name!r}'s {method}"
    try:
        answer: Any = guarded(lambda: getattr(backend, method)(
            case.network, case.parameters.copy(), case.inputs[0].copy(), *extra),
            what, f"the first example of {case.describe()}")
    except BackendMisbehaved:
        raise
    except Exception as error:
        raise BackendMisbehaved(
            f"{result_id}: backend {backend.name!r} declares {method} but it "
            f"raised {type(error).__name__}: {error} on {case.describe()}") from error
    return float_array(answer, shape, method, backend.name, result_id, case.dtype)


def float_array(value: object, shape: tuple[int, ...], what: str, name: str,
                result_id: str, dtype: np.dtype[np.floating]) -> FloatArray:
    """``value`` as an array of ``shape`` and ``dtype``, all finite, or a diagnosis."""
    array = np.asarray(value)
    if array.shape != shape or array.dtype != dtype:
        raise BackendMisbehaved(
            f"{result_id}: backend {name!r} returned {what} of shape {array.shape} "
            f"and dtype {array.dtype}, expected shape {shape} and {dtype}")
    if not np.all(np.isfinite(array)):
        raise RobustnessFailure(
            f"{result_id}: backend {name!r} returned {what} with non-finite "
            "entries; the exact values are finite")
    return array
