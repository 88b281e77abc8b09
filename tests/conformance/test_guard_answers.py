"""How the guard judges what a backend returns and what it does while called:
inf and NaN (an overflow, or a wrong answer?), exceptions of every kind,
answers that fail only sometimes, time limits a backend defeats, global
settings it leaves changed, and answers of the wrong type.

Each backend here is a few lines around the reference, run in this process
through :func:`conformance.run_suite` or :func:`conformance.judge`.
"""

from __future__ import annotations

import itertools
import re
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import pytest

from conformance import Case, judge, run_suite
from conformance._guard import OverflowRoom, describe_exception, kept_global_state
from conformance.checks import BackendError, RobustnessError
from conformance.runner import ResultReport, SuiteReport
from impl import FunctionBackend, MpmathBackend, ReferenceBackend
from spec import (
    Activation,
    Holds,
    Loss,
    LossAndGradients,
    Network,
    Parameters,
    Violated,
)

REFERENCE = ReferenceBackend()

Answer = tuple[Any, Any, Any]
"""``(loss, weight_gradients, bias_gradients)``, as a plain function returns."""


def reference(network: Network, parameters: Parameters, inputs: np.ndarray,
              targets: np.ndarray) -> Answer:
    """The reference's answer as a plain function's tuple (fresh arrays)."""
    answer = REFERENCE.loss_and_gradients(network, parameters, inputs, targets)
    return (answer.loss, [w.copy() for w in answer.gradients.weights],
            [b.copy() for b in answer.gradients.biases])


def backend_from(change: Callable[[Answer], Any], name: str) -> FunctionBackend:
    """A function backend returning ``change`` of the reference's answer."""
    def function(network: Network, parameters: Parameters, inputs: np.ndarray,
                 targets: np.ndarray) -> Any:
        return change(reference(network, parameters, inputs, targets))
    return FunctionBackend(function, name=name)


def backend_doing(action: Callable[[], object], name: str, *,
                  after: bool = False) -> FunctionBackend:
    """A function backend that runs ``action`` and answers correctly (runs it
    before computing the answer, or ``after``)."""
    def function(network: Network, parameters: Parameters, inputs: np.ndarray,
                 targets: np.ndarray) -> Answer:
        if not after:
            action()
        answer = reference(network, parameters, inputs, targets)
        if after:
            action()
        return answer
    return FunctionBackend(function, name=name)


def one_check(backend: FunctionBackend, check: str = "layer-jacobian.affine", *,
              examples: int = 5, **options: Any) -> tuple[SuiteReport, ResultReport]:
    """The suite's report on one check, and that check's row."""
    report = run_suite(backend, backend_spec=f"tests:{backend.name}",
                       examples=examples, only=(check,), **options)
    return report, report.results[0]


def message(row: ResultReport) -> str:
    """The diagnosis a row prints: its counterexample's, else its own."""
    if row.counterexample is None:
        return row.message
    outcome = row.counterexample.outcome
    return outcome.describe() if not isinstance(
        outcome, (BackendError, RobustnessError)) else outcome.message


def one_unit(x: float, activation: Activation = Activation.IDENTITY,
             y: float = 0.0) -> Case:
    """One unit, squared error, ``z = x``."""
    return Case(Network((1, 1), (activation,), Loss.SQUARED_ERROR),
                Parameters((np.array([[1.0]]),), (np.array([0.0]),)),
                np.array([[x]]), np.array([[y]]))


def as_lists(answer: Answer) -> Answer:
    """The answer with its gradients as nested Python lists."""
    loss, weights, biases = answer
    return loss, [w.tolist() for w in weights], [b.tolist() for b in biases]


def nan_weights(answer: Answer) -> Answer:
    loss, weights, biases = answer
    return loss, [np.full_like(w, np.nan) for w in weights], biases


# 1. inf and NaN: an overflow only where the exact values make one plausible.

def test_nan_where_nothing_can_overflow_is_a_backend_error_even_when_robustness_is_only_reported() -> None:
    backend = backend_from(nan_weights, "nan-out")

    report, row = one_check(backend, "robustness", robustness_fails=False)

    assert not report.conformant
    assert row.status == "error"
    assert row.counterexample is not None
    text = message(row)
    assert text.startswith("backprop.batch-mean: backend 'nan-out' returned 1 "
                           "non-finite entry in the gradient of W_1 (W_1[0, 0] = nan)")
    assert "where the exact values are finite (the exact W_1[0, 0] is" in text
    assert "nothing in the case can overflow" in text
    assert "this is a wrong answer, not an overflow" in text
    assert "exp without a shift" not in text


def test_a_nan_loss_on_an_identity_unit_at_zero_names_the_exact_loss() -> None:
    backend = backend_from(lambda answer: (float("nan"), *answer[1:]), "nan-loss")

    outcome = judge("layer-jacobian.affine", backend, one_unit(0.0, y=-0.5))

    assert isinstance(outcome, BackendError)
    assert outcome.message == (
        "layer-jacobian.affine: backend 'nan-loss' returned loss = nan on network "
        "1-1 identity squared_error, batch 1, where the exact values are finite "
        "(the exact loss is 0.125) and nothing in the case can overflow: it has "
        "no sigmoid, tanh, softplus or ELU unit and no softmax, so no exp to "
        "overflow, and its largest exact value is 0.5 (a square overflows only "
        "past 1.3e+154); this is a wrong answer, not an overflow")


def inf_loss(answer: Answer) -> Answer:
    return float("inf"), *answer[1:]


def test_inf_past_where_exp_overflows_stays_a_robustness_failure() -> None:
    outcome = judge("layer-jacobian.activation", backend_from(inf_loss, "inf-loss"),
                    one_unit(800.0, Activation.SIGMOID))

    assert isinstance(outcome, RobustnessError)
    assert outcome.message == (
        "layer-jacobian.activation: backend 'inf-loss' returned loss = inf on "
        "network 1-1 sigmoid squared_error, batch 1, where the exact loss and "
        "gradients are finite (largest exact |pre-activation| or |logit| under an "
        "exp there: 800, past the 354.9 where textbook formulas (exp(2z) in tanh, "
        "exp(z) squared) start to overflow in float64); a formula that overflows, "
        "such as exp without a shift, is the usual cause")


def test_a_large_pre_activation_of_an_identity_unit_cannot_overflow() -> None:
    outcome = judge("layer-jacobian.affine", backend_from(inf_loss, "inf-loss"),
                    one_unit(800.0, y=799.0))

    assert isinstance(outcome, BackendError)
    assert "nothing in the case can overflow: it has no sigmoid, tanh" in \
        outcome.message


def test_the_overflow_threshold_is_that_of_the_runs_dtype() -> None:
    backend = backend_from(inf_loss, "inf-loss")
    case = one_unit(60.0, Activation.TANH, y=1.0)

    in_float32 = judge("layer-jacobian.activation", backend, case.astype(np.float32))
    in_float64 = judge("layer-jacobian.activation", backend, case)

    assert OverflowRoom.of(np.dtype(np.float64)).pre_activation == \
        pytest.approx(354.891, abs=1e-3)
    assert OverflowRoom.of(np.dtype(np.float32)).pre_activation == \
        pytest.approx(44.361, abs=1e-3)
    # exp(2 * 60) overflows in float32, not in float64.
    assert isinstance(in_float32, RobustnessError)
    assert "past the 44.36 where textbook formulas" in in_float32.message
    assert isinstance(in_float64, BackendError)
    assert "only past 354.9" in in_float64.message


# 2. SystemExit and other BaseExceptions are the backend's errors.

@pytest.mark.parametrize(("raised", "words"), [
    (SystemExit(0), "called sys.exit(0)"),
    (SystemExit(None), "called sys.exit()"),
    (SystemExit("bye"), "called sys.exit('bye')"),
    (GeneratorExit("odd"), "raised GeneratorExit: odd"),
    (MemoryError(), "raised MemoryError"),
])
def test_sys_exit_and_base_exceptions_in_a_backend_are_backend_errors(
        raised: BaseException, words: str) -> None:
    def leave() -> None:
        raise raised

    outcome = judge("layer-jacobian.affine", backend_doing(leave, "leaving"),
                    one_unit(1.0))

    assert isinstance(outcome, BackendError)
    assert outcome.message == (f"layer-jacobian.affine: backend 'leaving' {words} "
                               "on network 1-1 identity squared_error, batch 1")


def test_ctrl_c_inside_a_backend_still_stops_the_run() -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        judge("layer-jacobian.affine", backend_doing(interrupt, "ctrl-c"),
              one_unit(1.0))


# 3. Failures that happen only sometimes, and exceptions that cannot be shown.

@pytest.mark.parametrize(("raised", "words"), [
    (RuntimeError("transient"), "raised RuntimeError: transient"),
    (SystemExit(0), "called sys.exit(0)"),
    (RecursionError("too deep"), "raised RecursionError: too deep"),
    (MemoryError(), "raised MemoryError"),
])
def test_a_backend_failing_once_is_reported_on_that_case_as_nondeterministic(
        raised: BaseException, words: str) -> None:
    calls = itertools.count()

    def once() -> None:
        if next(calls) == 0:
            raise raised

    report, row = one_check(backend_doing(once, "once"))

    assert row.status == "error"
    assert row.counterexample is not None
    assert row.counterexample.case.describe() == \
        "network 1-1 identity squared_error, batch 1"
    assert message(row) == (
        f"layer-jacobian.affine: backend 'once' {words} on network 1-1 identity "
        "squared_error, batch 1; nondeterministic: the backend failed this way on "
        "this case once, then answered the same case when asked again (state "
        "kept between calls, an unseeded random number, or something outside the "
        "case that fails at times?)")


def test_a_violation_seen_once_is_reported_with_the_same_note() -> None:
    calls = itertools.count()

    def doubled_once(answer: Answer) -> Answer:
        loss, weights, biases = answer
        if next(calls) < 3:  # the first judgement: its three calls agree
            return loss, [2 * w for w in weights], [2 * b for b in biases]
        return answer

    report, row = one_check(backend_from(doubled_once, "doubled-once"))

    assert row.status == "violated"
    assert message(row).endswith(
        "Nondeterministic: the backend failed this way on this case once, then "
        "answered the same case when asked again (state kept between calls, an "
        "unseeded random number, or something outside the case that fails at "
        "times?).")


def test_an_exception_whose_str_raises_is_named_by_its_class() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("str exploded")

    def fail() -> None:
        raise Unprintable()

    report, row = one_check(backend_doing(fail, "bad-str"))

    assert row.status == "error"
    assert message(row) == ("layer-jacobian.affine: backend 'bad-str' raised "
                            "Unprintable: <str() raised RuntimeError> on network "
                            "1-1 identity squared_error, batch 1")
    assert describe_exception(SystemExit(Unprintable())) == \
        "called sys.exit(Unprintable())"


# 4. Time limits: none when infinite, kept when the backend defeats the timer.

@pytest.mark.parametrize("limit", [float("inf"), 1e12])
def test_an_infinite_or_huge_time_limit_is_no_limit_and_blames_nobody(
        limit: float) -> None:
    report, row = one_check(backend_from(lambda answer: answer, "plain"),
                            time_limit=limit)

    assert report.conformant
    assert row.status == "holds" and row.judged == 5


def reported_seconds(text: str) -> float:
    """The seconds a too-slow diagnosis says the call took."""
    found = re.search(r" took (\d+\.\d) s to answer", text)
    assert found, text
    return float(found.group(1))


def test_a_backend_cancelling_the_timer_is_diagnosed_as_too_slow() -> None:
    calls: list[None] = []

    def cancel_and_sleep() -> None:
        calls.append(None)
        signal.setitimer(signal.ITIMER_REAL, 0)
        time.sleep(0.6)

    report, row = one_check(backend_doing(cancel_and_sleep, "cancels"),
                            time_limit=0.2)

    assert row.status == "error"
    text = message(row)
    assert reported_seconds(text) >= 0.6
    assert re.sub(r" took \d+\.\d s", " took T s", text).startswith(
        "layer-jacobian.affine: backend 'cancels' took T s to "
        "answer, past the per-call time limit of 0.2 s, on "
        "network 1-1 identity squared_error, batch 1, so it "
        "was not called again in this run; the timer that "
        "should have interrupted it at the limit was "
        "cancelled or its signal ignored")
    assert len(calls) == 1  # not called again after the first slow answer


def test_a_backend_ignoring_the_alarm_signal_is_diagnosed_as_too_slow() -> None:
    def ignore_and_sleep() -> None:
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        time.sleep(0.5)

    report, row = one_check(backend_doing(ignore_and_sleep, "ignores"),
                            time_limit=0.2)

    assert row.status == "error"
    assert reported_seconds(message(row)) >= 0.5
    assert "s to answer, past the per-call time limit of 0.2 s" in message(row)
    assert signal.getsignal(signal.SIGALRM) is not signal.SIG_IGN


# 5. Global settings a backend changes do not leak into the suite.

def test_global_numeric_settings_a_backend_changes_are_restored_after_each_call() -> None:
    flint = pytest.importorskip("flint")
    before = (np.geterr(), mpmath.mp.dps, flint.ctx.prec)

    def unsettle() -> None:
        np.seterr(all="raise")
        mpmath.mp.dps = 5
        flint.ctx.prec = 8

    report, row = one_check(backend_doing(unsettle, "unsettling", after=True),
                            "backprop.batch-mean")

    assert report.conformant, message(row)
    assert row.status == "holds" and row.judged > 0
    assert (np.geterr(), mpmath.mp.dps, flint.ctx.prec) == before


def test_the_working_folder_and_output_streams_are_restored(tmp_path: Any) -> None:
    import os

    folder, stdout = os.getcwd(), sys.stdout
    with kept_global_state():
        os.chdir(tmp_path)
        sys.stdout = sys.stderr
    assert (os.getcwd(), sys.stdout) == (folder, stdout)


# 6. Tensors that require grad are read like any other tensor.

def test_torch_tensors_that_require_grad_are_detached_and_judged() -> None:
    torch = pytest.importorskip("torch")

    def tensors(answer: Answer) -> Answer:
        loss, weights, biases = answer
        return (torch.tensor(loss, dtype=torch.float64, requires_grad=True),
                [torch.tensor(w, requires_grad=True) for w in weights],
                [torch.tensor(b, requires_grad=True) for b in biases])

    report, row = one_check(backend_from(tensors, "requires-grad"),
                            "backprop.batch-mean")

    assert report.conformant, message(row)
    assert row.judged > 0


# 7. Answers of the wrong type: said what was wrong, and what to return.

def test_a_loss_returned_as_a_string_is_refused() -> None:
    report, row = one_check(backend_from(
        lambda answer: (str(answer[0]), *answer[1:]), "loss-str"))

    assert not report.conformant
    assert row.status == "error"
    text = message(row)
    assert text.startswith("layer-jacobian.affine: backend 'loss-str' returned a "
                           "loss of type str ('")
    assert text.endswith("') on network 1-1 identity squared_error, batch 1; "
                         "expected one real number, the mean loss over the batch "
                         "(a float, a NumPy scalar or an array of one element)")


@pytest.mark.parametrize("wrap", [np.asarray, lambda x: np.asarray([x]),
                                  lambda x: np.asarray([[x]]), np.float64],
                         ids=["0-d", "1-element", "1x1", "numpy-scalar"])
def test_a_loss_as_an_array_of_one_element_is_accepted(
        wrap: Callable[[float], Any]) -> None:
    report, row = one_check(backend_from(
        lambda answer: (wrap(answer[0]), *answer[1:]), "loss-array"))

    assert report.conformant, message(row)
    assert row.status == "holds" and row.judged == 5


def test_a_loss_of_several_numbers_is_refused_with_its_shape() -> None:
    outcome = judge("layer-jacobian.affine", backend_from(
        lambda answer: (np.array([answer[0], 0.0]), *answer[1:]), "two-losses"),
        one_unit(1.0))

    assert isinstance(outcome, BackendError)
    assert outcome.message.startswith(
        "layer-jacobian.affine: backend 'two-losses' returned a loss of shape (2,), "
        "an array of 2 numbers on network 1-1 identity squared_error, batch 1; "
        "expected one real number")


def test_a_tuple_of_two_items_says_what_three_were_expected() -> None:
    outcome = judge("layer-jacobian.affine", backend_from(
        lambda answer: answer[1:], "two-tuple"), one_unit(1.0))

    assert isinstance(outcome, BackendError)
    assert outcome.message == (
        "layer-jacobian.affine: backend 'two-tuple' returned a tuple of 2 items on "
        "network 1-1 identity squared_error, batch 1; expected 3 items (loss, "
        "weight_gradients, bias_gradients)")


def test_a_class_backend_returning_a_tuple_is_told_to_return_loss_and_gradients() -> None:
    class TupleBackend:
        name = "tuple-class"
        capabilities: frozenset[Any] = frozenset()

        def loss_and_gradients(self, network: Network, parameters: Parameters,
                               inputs: np.ndarray, targets: np.ndarray) -> Any:
            return reference(network, parameters, inputs, targets)

    outcome = judge("layer-jacobian.affine", TupleBackend(), one_unit(1.0))

    assert isinstance(outcome, BackendError)
    assert outcome.message == (
        "layer-jacobian.affine: backend 'tuple-class' returned a tuple of 3 items "
        "on network 1-1 identity squared_error, batch 1; expected a "
        "spec.LossAndGradients")


def test_gradients_as_python_lists_under_float32_say_so_and_what_to_return() -> None:
    report, row = one_check(backend_from(as_lists, "list-out"), dtype=np.float32)

    assert row.status == "error"
    assert message(row) == (
        "layer-jacobian.affine: backend 'list-out' returned the weight gradient "
        "for layer 1 as a Python list, which NumPy reads as float64, expected an "
        "array of float32 (the dtype of the arrays it was given): compute in "
        "float32 and return NumPy arrays, e.g. np.asarray(gradient, "
        "dtype=np.float32)")


def test_lists_of_float64_numbers_are_accepted_in_a_float64_run() -> None:
    report, row = one_check(backend_from(as_lists, "list-out"))

    assert report.conformant, message(row)


def test_loss_and_gradients_with_gradients_of_the_wrong_kind_is_diagnosed() -> None:
    def unstructured(answer: Answer) -> LossAndGradients:
        return LossAndGradients(answer[0], (answer[1], answer[2]))  # type: ignore[arg-type]  # the mistake judged

    outcome = judge("layer-jacobian.affine", backend_from(unstructured, "unpacked"),
                    one_unit(1.0))

    assert isinstance(outcome, BackendError)
    assert outcome.message.startswith(
        "layer-jacobian.affine: backend 'unpacked' returned a LossAndGradients "
        "whose gradients are a tuple on network 1-1 identity squared_error, "
        "batch 1; expected spec.Parameters(weights=..., biases=...)")


def test_a_backend_catching_exceptions_cannot_swallow_the_time_limit() -> None:
    def sleep_catching_everything() -> None:
        try:
            time.sleep(3)
        except Exception:  # noqa: BLE001 - the mistake this test is about
            pass

    report, row = one_check(backend_doing(sleep_catching_everything, "catches"),
                            time_limit=0.2)

    assert row.status == "error"
    assert "backend 'catches' did not answer within 0.2 s" in message(row)


def test_an_interval_timer_already_running_is_left_running() -> None:
    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    signal.setitimer(signal.ITIMER_REAL, 100.0)
    try:
        report, row = one_check(backend_doing(lambda: None, "quick"), time_limit=5)
        remaining = signal.getitimer(signal.ITIMER_REAL)[0]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    assert row.status == "holds"
    assert 0 < remaining <= 100.0 and not fired


def test_judging_a_case_again_after_changing_its_arrays_uses_the_new_values() -> None:
    case = one_unit(1.0)
    # At x = 1: z = 1, loss 0.5, dW = 1, db = 1 (by hand). The backend keeps
    # answering that, whatever it is asked.
    fixed = LossAndGradients(0.5, Parameters((np.array([[1.0]]),),
                                             (np.array([1.0]),)))
    stuck = FunctionBackend(lambda *arguments: fixed, name="stuck")

    oracle = MpmathBackend()
    before = judge("backprop.batch-mean", stuck, case, oracle)
    case.inputs[0, 0] = 3.0  # now z = 3: loss 4.5, dW = 3, db = 3
    after = judge("backprop.batch-mean", stuck, case, oracle)

    assert isinstance(before, Holds)
    assert isinstance(after, Violated)


def test_a_hang_in_one_run_does_not_stop_the_backend_being_called_later() -> None:
    def sleep() -> None:
        time.sleep(2)

    hung, _ = one_check(backend_doing(sleep, "sleeps"), time_limit=0.2)
    later = judge("layer-jacobian.affine", ReferenceBackend(), one_unit(1.0))

    assert hung.hung.startswith("layer-jacobian.affine: backend 'sleeps' did not "
                                "answer within 0.2 s")
    assert isinstance(later, Holds)
