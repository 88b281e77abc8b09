"""The suite judges wrong backends non-conformant, at the right place, and correct
but differently computed backends conformant.

The backends live in ``wrong_backends.py`` next to this file; see its
docstring. Every wrong backend answers in the right shapes and dtype, so each
failure must be a violated result, never a backend error.

Which result fails first: the checks run in registry order, and the first two
(``total-derivative`` and ``jacobian``) judge the whole gradient of whole
networks, so any wrong gradient is named first by ``total-derivative``. Where
the mistake is localised is told by the isolating lemmas further down the
registry (one layer, one example), which the tests below inspect as well,
together with the results a mistake cannot touch, which must still hold.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import cast

import numpy as np
import pytest

from conformance import ResultReport, SuiteReport, run_suite
from conformance.report import most_specific
from impl import Backend
from spec import Activation, Location, Loss, Network, Parameters, Violated
from spec.backprop import BATCH_ID, DELTA_ID
from spec.gradient_product import RESULT_ID as GRADIENT_PRODUCT_ID
from spec.jacobian import RESULT_ID as JACOBIAN_ID
from spec.layer_jacobians import ACTIVATION_ID, AFFINE_ID, SOFTMAX_ID
from spec.loss_gradient import CROSS_ENTROPY_ID, SQUARED_ERROR_ID
from spec.total_derivative import RESULT_ID as TOTAL_DERIVATIVE_ID

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]

EXAMPLES = 25
"""Examples per result: every strategy branch appears, each suite runs in a
few seconds."""

SINGLE_EXAMPLE_RESULTS = (AFFINE_ID, ACTIVATION_ID, SOFTMAX_ID, SQUARED_ERROR_ID,
                          CROSS_ENTROPY_ID, GRADIENT_PRODUCT_ID, DELTA_ID)
"""Results judged on batches of one example."""

SINGLE_LAYER_RESULTS = (AFFINE_ID, ACTIVATION_ID, SOFTMAX_ID, SQUARED_ERROR_ID,
                        CROSS_ENTROPY_ID)
"""Results judged on networks of one layer."""

SQUARED_ERROR_RESULTS = (AFFINE_ID, ACTIVATION_ID, SQUARED_ERROR_ID)
CROSS_ENTROPY_RESULTS = (SOFTMAX_ID, CROSS_ENTROPY_ID)


def _load_wrong_backends() -> ModuleType:
    """``wrong_backends.py`` from this folder, whatever pytest's import mode."""
    spec = importlib.util.spec_from_file_location("wrong_backends",
                                                  HERE / "wrong_backends.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("wrong_backends", module)
    spec.loader.exec_module(module)
    return module


WRONG_BACKENDS = _load_wrong_backends()


def make_backend(class_name: str) -> Backend:
    """A fresh instance of the backend class ``class_name`` of wrong_backends.py."""
    return cast(Backend, getattr(WRONG_BACKENDS, class_name)())


@functools.cache
def suite_report(class_name: str) -> SuiteReport:
    """The whole suite on one backend, run once per test session."""
    return run_suite(make_backend(class_name),
                     backend_spec=f"wrong_backends:{class_name}",
                     examples=EXAMPLES, seed=0)


def result(report: SuiteReport, result_id: str) -> ResultReport:
    """The report of one result."""
    return next(r for r in report.results if r.result_id == result_id)


def named_failure(report: SuiteReport) -> ResultReport:
    """The failed result the summary names: the most specific one."""
    return most_specific([r for r in report.results if r.failed])


def violation(report: SuiteReport, result_id: str) -> Violated:
    """The verdict on the minimal counterexample of ``result_id``: violated."""
    found = result(report, result_id)
    assert found.status == "violated", f"{result_id} is {found.status}"
    assert found.counterexample is not None
    outcome = found.counterexample.outcome
    assert isinstance(outcome, Violated)
    return outcome


def violated_location(report: SuiteReport, result_id: str) -> Location:
    """Where the minimal counterexample of ``result_id`` is violated."""
    return violation(report, result_id).location


def assert_judged_wrong(class_name: str, *, named: str) -> SuiteReport:
    """Non-conformant, ``named`` as the most specific failure, every failure a
    violation, and ``total-derivative`` (the definition) violated too.

    A backend error would mean the wrong backend was caught by a shape or
    dtype check rather than by the mathematics.
    """
    report = suite_report(class_name)
    assert not report.conformant
    assert named_failure(report).result_id == named
    assert result(report, TOTAL_DERIVATIVE_ID).status == "violated"
    errors = [(r.result_id, r.message) for r in report.results if r.status == "error"]
    assert errors == []
    return report


def assert_unaffected(report: SuiteReport, result_ids: tuple[str, ...]) -> None:
    """Results the mistake cannot show in must hold, judged on real examples."""
    for result_id in result_ids:
        found = result(report, result_id)
        assert found.status == "holds", f"{result_id} is {found.status}"
        assert found.judged > 0, f"{result_id} judged nothing"


# Wrong backends: named by the narrowest result they violate.

def test_transposed_weight_gradient_is_named_by_the_affine_layer_lemma_at_W_1() -> None:
    report = assert_judged_wrong("TransposedWeightGradientBackend", named=AFFINE_ID)
    location = violated_location(report, AFFINE_ID)
    assert (location.quantity, location.layer_index) == ("weight_gradient", 1)
    i, j = location.index
    assert i != j, "a diagonal entry equals its transpose"
    affine_case = result(report, AFFINE_ID).counterexample
    assert affine_case is not None
    W = affine_case.case.parameters.weights[0]
    assert W.shape[0] == W.shape[1] > 1
    # The lemmas that look only at bias gradients cannot see it.
    assert_unaffected(report, (ACTIVATION_ID, SOFTMAX_ID, SQUARED_ERROR_ID,
                               CROSS_ENTROPY_ID))


def test_derivative_at_the_activation_instead_of_the_pre_activation_is_named_by_the_activation_layer_lemma() -> None:
    report = assert_judged_wrong("DerivativeAtActivationBackend", named=ACTIVATION_ID)
    location = violated_location(report, ACTIVATION_ID)
    assert (location.quantity, location.layer_index) == ("bias_gradient", 1)
    activation_case = result(report, ACTIVATION_ID).counterexample
    assert activation_case is not None
    activation = activation_case.case.network.activations[0]
    assert activation not in (Activation.IDENTITY, Activation.RELU,
                              Activation.LEAKY_RELU)
    # Identity layers have sigma' = 1 wherever it is evaluated.
    assert_unaffected(report, (AFFINE_ID, SOFTMAX_ID, SQUARED_ERROR_ID,
                               CROSS_ENTROPY_ID))


def test_summed_instead_of_averaged_batch_gradients_fail_the_total_derivative_first_and_the_batch_mean_theorem() -> None:
    report = assert_judged_wrong("SummedBatchBackend", named=BATCH_ID)
    batch_mean = result(report, BATCH_ID).counterexample
    assert batch_mean is not None
    assert batch_mean.case.batch_size > 1
    assert violated_location(report, BATCH_ID).quantity in ("weight_gradient",
                                                             "bias_gradient")
    # On one example the sum is the mean.
    assert_unaffected(report, SINGLE_EXAMPLE_RESULTS)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_summed_batch_gradients_are_diagnosed_as_off_by_the_batch_size_in_either_precision(
        dtype: type[np.floating]) -> None:
    backend = WRONG_BACKENDS.SummedBatchBackend(dtype=dtype)

    report = run_suite(backend, backend_spec="wrong_backends:SummedBatchBackend",
                       examples=EXAMPLES, seed=0, only=(BATCH_ID,), dtype=dtype)

    outcome = violation(report, BATCH_ID)
    found = result(report, BATCH_ID).counterexample
    assert found is not None
    B = found.case.batch_size
    assert B > 1
    assert outcome.describe().endswith(
        f"Pattern: the returned values are the expected ones times {B} (off by the "
        f"batch size {B}: a sum over the examples where the mean belongs?)")


def test_dropped_bias_gradient_is_named_by_every_lemma_at_a_bias_gradient() -> None:
    report = assert_judged_wrong("DroppedBiasGradientBackend", named=AFFINE_ID)
    location = violated_location(report, AFFINE_ID)
    assert (location.quantity, location.layer_index) == ("bias_gradient", 1)
    for failed in report.results:
        if failed.failed and failed.result_id not in (TOTAL_DERIVATIVE_ID,
                                                      "self-consistency"):
            assert violated_location(report, failed.result_id).quantity == \
                "bias_gradient", failed.result_id
            assert violation(report, failed.result_id).actual == 0.0


def test_float32_arithmetic_is_named_by_even_the_one_layer_lemmas() -> None:
    report = assert_judged_wrong("Float32Backend", named=SQUARED_ERROR_ID)
    for result_id in SQUARED_ERROR_RESULTS + CROSS_ENTROPY_RESULTS:
        outcome = violation(report, result_id)
        # Wrong by rounding, not by formula: close, but far beyond float64's bound.
        assert outcome.actual == pytest.approx(outcome.expected, rel=1e-5, abs=1e-5)


def test_sign_error_is_named_by_the_squared_error_lemma_with_the_negated_gradient() -> None:
    report = assert_judged_wrong("SignFlippedBackend", named=SQUARED_ERROR_ID)
    outcome = violation(report, SQUARED_ERROR_ID)
    assert outcome.location.quantity == "bias_gradient"
    assert outcome.actual == pytest.approx(-outcome.expected)
    assert violation(report, CROSS_ENTROPY_ID).location.quantity == "bias_gradient"


def test_squared_error_gradient_with_a_factor_2_is_named_by_the_squared_error_lemma_doubled() -> None:
    report = assert_judged_wrong("DoubledSquaredErrorBackend", named=SQUARED_ERROR_ID)
    outcome = violation(report, SQUARED_ERROR_ID)
    assert outcome.location.quantity == "bias_gradient"
    assert outcome.actual == pytest.approx(2 * outcome.expected)
    assert_unaffected(report, CROSS_ENTROPY_RESULTS)


def test_cross_entropy_gradient_without_the_target_sum_is_named_by_the_cross_entropy_lemma_on_targets_not_summing_to_1() -> None:
    report = assert_judged_wrong("CrossEntropyWithoutTargetSumBackend", named=CROSS_ENTROPY_ID)
    assert violated_location(report, CROSS_ENTROPY_ID).quantity == "bias_gradient"
    for result_id in CROSS_ENTROPY_RESULTS:
        failure = result(report, result_id).counterexample
        assert failure is not None
        assert abs(float(failure.case.targets.sum()) - 1.0) > 1e-9, result_id
    assert_unaffected(report, SQUARED_ERROR_RESULTS)


def test_previous_layer_activation_derivative_is_named_by_the_gradient_product_at_a_deeper_layer() -> None:
    report = assert_judged_wrong("PreviousLayerDerivativeBackend", named=DELTA_ID)
    location = violated_location(report, GRADIENT_PRODUCT_ID)
    assert location.layer_index is not None and location.layer_index >= 2
    failure = result(report, GRADIENT_PRODUCT_ID).counterexample
    assert failure is not None
    activations = failure.case.network.activations
    layer = location.layer_index
    assert activations[layer - 1] != activations[layer - 2]
    assert result(report, DELTA_ID).status == "violated"
    # One layer has no previous one to be confused with.
    assert_unaffected(report, SINGLE_LAYER_RESULTS)


# Correct backends computed differently: conformant, and not vacuously.

JUDGED_ON_EVERY_BACKEND = (TOTAL_DERIVATIVE_ID, JACOBIAN_ID) + SINGLE_LAYER_RESULTS \
    + (GRADIENT_PRODUCT_ID, DELTA_ID, BATCH_ID)
"""Results that need no declared capability, so judge any backend."""


def assert_judged_conformant(class_name: str) -> None:
    """Conformant, with every result a plain backend can be judged on judged."""
    report = suite_report(class_name)
    assert report.conformant, [r.result_id for r in report.results if r.failed]
    assert_unaffected(report, JUDGED_ON_EVERY_BACKEND)


def test_the_textbook_template_of_the_wrong_backends_is_judged_conformant() -> None:
    assert_judged_conformant("TextbookBackend")


def test_a_per_example_loop_averaging_example_gradients_is_judged_conformant() -> None:
    assert_judged_conformant("PerExampleLoopBackend")


def test_long_double_arithmetic_rounded_to_float64_is_judged_conformant() -> None:
    assert_judged_conformant("LongDoubleBackend")


def test_weight_gradients_summed_from_per_example_outer_products_are_judged_conformant() -> None:
    assert_judged_conformant("OuterProductSumBackend")


# Each wrong backend makes exactly its one mistake: elsewhere it is right.

def _one_layer(widths: tuple[int, int], activation: Activation, loss: Loss,
               batch: int, targets: Callable[[np.random.Generator, int, int],
                                             np.ndarray]) -> tuple[
        Network, Parameters, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    n0, n1 = widths
    network = Network(widths, (activation,), loss)
    parameters = Parameters((rng.standard_normal((n1, n0)),),
                            (rng.standard_normal(n1),))
    inputs = rng.standard_normal((batch, n0))
    return network, parameters, inputs, targets(rng, batch, n1)


def _normal(rng: np.random.Generator, batch: int, n: int) -> np.ndarray:
    return rng.standard_normal((batch, n))


def _one_hot(rng: np.random.Generator, batch: int, n: int) -> np.ndarray:
    return np.eye(n)[rng.integers(0, n, size=batch)]


INVISIBLE = {
    "TransposedWeightGradientBackend":
        _one_layer((3, 2), Activation.TANH, Loss.SQUARED_ERROR, 4, _normal),
    "DerivativeAtActivationBackend":
        _one_layer((3, 3), Activation.RELU, Loss.SQUARED_ERROR, 4, _normal),
    "SummedBatchBackend":
        _one_layer((3, 3), Activation.TANH, Loss.SQUARED_ERROR, 1, _normal),
    "DoubledSquaredErrorBackend":
        _one_layer((3, 3), Activation.TANH, Loss.SOFTMAX_CROSS_ENTROPY, 4, _one_hot),
    "CrossEntropyWithoutTargetSumBackend":
        _one_layer((3, 3), Activation.TANH, Loss.SOFTMAX_CROSS_ENTROPY, 4, _one_hot),
    "PreviousLayerDerivativeBackend":
        _one_layer((3, 3), Activation.SIGMOID, Loss.SQUARED_ERROR, 4, _normal),
}
"""For each wrong backend whose mistake can be invisible, a point where it is."""


@pytest.mark.parametrize("class_name", sorted(INVISIBLE))
def test_each_wrong_backend_agrees_with_the_textbook_where_its_mistake_cannot_show(
        class_name: str) -> None:
    network, parameters, inputs, targets = INVISIBLE[class_name]
    wrong = make_backend(class_name).loss_and_gradients(network, parameters,
                                                        inputs, targets)
    right = make_backend("TextbookBackend").loss_and_gradients(network, parameters,
                                                               inputs, targets)
    assert wrong.loss == right.loss
    for mine, theirs in zip(wrong.gradients.weights + wrong.gradients.biases,
                            right.gradients.weights + right.gradients.biases):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("class_name", [c.__name__ for c in
                                        WRONG_BACKENDS.WRONG_BACKENDS])
def test_each_wrong_backend_answers_float64_arrays_in_the_shapes_of_the_parameters(
        class_name: str) -> None:
    network = Network((3, 3, 2), (Activation.TANH, Activation.SIGMOID),
                      Loss.SOFTMAX_CROSS_ENTROPY)
    rng = np.random.default_rng(2)
    parameters = Parameters(
        tuple(rng.standard_normal(network.weight_shape(ell)) for ell in (1, 2)),
        tuple(rng.standard_normal(n) for n in network.widths[1:]))
    answer = make_backend(class_name).loss_and_gradients(
        network, parameters, rng.standard_normal((4, 3)), rng.random((4, 2)) * 3)
    assert isinstance(answer.loss, float)
    for gradient, parameter in zip(answer.gradients.weights + answer.gradients.biases,
                                   parameters.weights + parameters.biases):
        assert gradient.dtype == np.float64
        assert gradient.shape == parameter.shape


# The command line on a backend given as module:attribute.

def run_cli(class_name: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``python -m conformance`` on ``wrong_backends:class_name``, from elsewhere."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO_ROOT)])
    return subprocess.run(
        [sys.executable, "-m", "conformance", "--backend",
         f"wrong_backends:{class_name}", "--examples", "10", "--seed", "0"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        check=False)


def test_the_command_line_exits_1_and_names_the_violated_results_for_a_dropped_bias_gradient(
        tmp_path: Path) -> None:
    completed = run_cli("DroppedBiasGradientBackend", tmp_path)
    assert completed.returncode == 1, completed.stderr
    out = completed.stdout
    assert f"the most specific is {AFFINE_ID}" in out
    assert f"== {AFFINE_ID}:" in out
    assert f"{AFFINE_ID}: bias_gradient b_1[0]" in out
    assert "load_backend('wrong_backends:DroppedBiasGradientBackend')" in out


def test_the_command_line_exits_0_for_weight_gradients_from_outer_products(
        tmp_path: Path) -> None:
    completed = run_cli("OuterProductSumBackend", tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "NOT conformant" not in completed.stdout
    assert "none violated" in completed.stdout
