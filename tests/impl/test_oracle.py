"""The mpmath oracle against derivatives computed independently in this file.

Every expected value here comes from a forward pass written below in plain
mpmath (its own activations and losses, not :mod:`spec.conventions`), evaluated
at 60 digits and differentiated by central differences with a step of 1e-20,
or from hand calculation. At that precision the difference quotient's
truncation error is about 1e-40 and its rounding error about 1e-40 as well,
so agreement to 20 significant digits tests the oracle, not the quotient.
Two references are not written here: the explicit Jacobian product of
:mod:`spec.gradient_product` evaluated at 40 digits, the second one the
oracle is held to, and the oracle's mpmath engine at 60 digits, which its
arb balls are held to quantity by quantity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np
import pytest

import impl
from impl._exact_engine import to_mpf
from spec import Activation, Loss, Network, Parameters
from spec.errors import UsageError
from spec.conventions import forward_exact
from spec.gradient_product import gradients_by_jacobian_product
from spec._verdict import to_exact

HIGH_DIGITS = 60
STEP = "1e-20"
AGREEMENT = "1e-20"

# An independent forward pass in mpmath.


def _mp_sigma(name: str, z: Any) -> Any:
    if name == "identity":
        return z
    if name == "sigmoid":
        return 1 / (1 + mpmath.exp(-z))
    if name == "tanh":
        return (mpmath.exp(2 * z) - 1) / (mpmath.exp(2 * z) + 1)
    if name == "relu":
        return z if z > 0 else mpmath.mpf(0)
    if name == "leaky_relu":
        return z if z > 0 else z / 100
    if name == "softplus":
        return mpmath.log(1 + mpmath.exp(z))
    if name == "elu":
        return z if z > 0 else mpmath.exp(z) - 1
    raise AssertionError(name)


def _mp_example_loss(loss: str, a: Sequence[Any], y: Sequence[Any]) -> Any:
    if loss == "squared_error":
        return sum(((ai - yi) ** 2 for ai, yi in zip(a, y)), mpmath.mpf(0)) / 2
    log_total = mpmath.log(sum((mpmath.exp(ai) for ai in a), mpmath.mpf(0)))
    return -sum((yi * (ai - log_total) for ai, yi in zip(a, y)), mpmath.mpf(0))


MpMatrix = list[list[Any]]


def _mp_pre_activations(activations: Sequence[str], W: Sequence[MpMatrix],
                        b: Sequence[list[Any]], x: Sequence[Any]) -> \
        tuple[list[list[Any]], list[Any]]:
    """Every layer's z, and the output, for one example."""
    a = list(x)
    zs: list[list[Any]] = []
    for Wl, bl, name in zip(W, b, activations):
        z = [sum((w * v for w, v in zip(row, a)), mpmath.mpf(0)) + bi
             for row, bi in zip(Wl, bl)]
        zs.append(z)
        a = [_mp_sigma(name, v) for v in z]
    return zs, a


def _mp_batch_loss(case: Case, W: Sequence[MpMatrix], b: Sequence[list[Any]]) -> Any:
    total = mpmath.mpf(0)
    for x, y in zip(case.inputs, case.targets):
        _, a = _mp_pre_activations(case.activations, W, b,
                                   [mpmath.mpf(float(v)) for v in x])
        total += _mp_example_loss(case.loss, a, [mpmath.mpf(float(v)) for v in y])
    return total / len(case.inputs)


def _central_difference(function: Callable[[Any], Any]) -> Any:
    h = mpmath.mpf(STEP)
    return (function(h) - function(-h)) / (2 * h)


@dataclass(frozen=True)
class Case:
    widths: tuple[int, ...]
    activations: tuple[str, ...]
    loss: str
    parameters: Parameters
    inputs: np.ndarray[Any, np.dtype[np.float64]]
    targets: np.ndarray[Any, np.dtype[np.float64]]

    @property
    def network(self) -> Network:
        return Network(self.widths, tuple(Activation(a) for a in self.activations),
                       Loss(self.loss))

    def exact_parameters(self) -> tuple[list[MpMatrix], list[list[Any]]]:
        W = [[[mpmath.mpf(float(v)) for v in row] for row in Wl]
             for Wl in self.parameters.weights]
        b = [[mpmath.mpf(float(v)) for v in bl] for bl in self.parameters.biases]
        return W, b


def _make_case(widths: tuple[int, ...], activations: tuple[str, ...], loss: str,
               batch: int, seed: int) -> Case:
    rng = np.random.default_rng(seed)
    weights = tuple(rng.standard_normal((widths[i + 1], widths[i]))
                    for i in range(len(widths) - 1))
    biases = tuple(0.5 * rng.standard_normal(widths[i + 1])
                   for i in range(len(widths) - 1))
    inputs = rng.standard_normal((batch, widths[0]))
    if loss == "squared_error":
        targets = rng.standard_normal((batch, widths[-1]))
    else:
        # Probability-like but deliberately not summing to one.
        targets = rng.uniform(0.1, 1.0, (batch, widths[-1]))
    return Case(widths, activations, loss, Parameters(weights, biases), inputs,
                targets)


CASES = [
    _make_case((3, 4, 2), ("sigmoid", "identity"), "squared_error", 3, 1),
    _make_case((2, 3, 3, 3), ("tanh", "relu", "softplus"),
               "softmax_cross_entropy", 2, 2),
    _make_case((3, 3, 2, 3, 2), ("elu", "leaky_relu", "sigmoid", "tanh"),
               "squared_error", 3, 3),
    _make_case((2, 4, 3, 2, 3), ("leaky_relu", "elu", "identity", "softplus"),
               "softmax_cross_entropy", 2, 4),
    _make_case((4, 3, 3), ("relu", "tanh"), "squared_error", 4, 5),
    _make_case((3, 2), ("identity",), "softmax_cross_entropy", 3, 6),
]
CASE_IDS = [f"{'-'.join(map(str, c.widths))}-{','.join(c.activations)}-{c.loss}"
            for c in CASES]


def _relative_gap(actual: Any, expected: Any) -> Any:
    """|actual - expected| / |expected|, or |actual| when expected is exactly 0."""
    if expected == 0:
        return abs(actual)
    return abs(actual - expected) / abs(expected)


def _finite_difference_gradients(case: Case) -> tuple[list[MpMatrix], list[list[Any]]]:
    """Central differences of the batch loss in every weight and bias."""
    W, b = case.exact_parameters()
    weight_gradients: list[MpMatrix] = []
    bias_gradients: list[list[Any]] = []
    for ell in range(len(W)):
        rows: MpMatrix = []
        for i in range(len(W[ell])):
            row = []
            for j in range(len(W[ell][i])):
                def shifted_weight(h: Any, ell: int = ell, i: int = i,
                                   j: int = j) -> Any:
                    moved = [[list(r) for r in Wl] for Wl in W]
                    moved[ell][i][j] += h
                    return _mp_batch_loss(case, moved, b)
                row.append(_central_difference(shifted_weight))
            rows.append(row)
        weight_gradients.append(rows)
        column = []
        for i in range(len(b[ell])):
            def shifted_bias(h: Any, ell: int = ell, i: int = i) -> Any:
                moved = [list(bl) for bl in b]
                moved[ell][i] += h
                return _mp_batch_loss(case, W, moved)
            column.append(_central_difference(shifted_bias))
        bias_gradients.append(column)
    return weight_gradients, bias_gradients


def test_every_activation_and_both_losses_are_covered_by_the_cases() -> None:
    # Arrange
    used_activations = {a for c in CASES for a in c.activations}
    used_losses = {c.loss for c in CASES}

    # Act
    depths = {len(c.widths) - 1 for c in CASES}

    # Assert
    assert used_activations == {a.value for a in Activation}
    assert used_losses == {loss.value for loss in Loss}
    assert max(depths) == 4
    assert all(len(c.inputs) > 1 for c in CASES)
    assert all(abs(float(row.sum()) - 1.0) > 0.1 for c in CASES
               if c.loss == "softmax_cross_entropy" for row in c.targets)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_kinked_and_elu_units_see_both_signs_and_stay_away_from_zero(
        case: Case) -> None:
    # Arrange
    W, b = case.exact_parameters()

    # Act
    with mpmath.workdps(HIGH_DIGITS):
        per_layer: list[list[Any]] = [[] for _ in W]
        for x in case.inputs:
            zs, _ = _mp_pre_activations(case.activations, W, b,
                                        [mpmath.mpf(float(v)) for v in x])
            for ell, z in enumerate(zs):
                per_layer[ell].extend(z)

    # Assert: the piecewise activations exercise both branches, far from the
    # kink compared with the 1e-20 step.
    for name, values in zip(case.activations, per_layer):
        assert min(abs(v) for v in values) > 1e-6
        if name in ("relu", "leaky_relu", "elu"):
            assert any(v > 0 for v in values) and any(v < 0 for v in values)


ARITHMETICS = ["arb", "gmpy2", "mpmath"]
"""The oracle's three kinds of numbers; each is held to the same references."""


def _oracle(arithmetic: str, digits: int = impl.oracle.DEFAULT_DIGITS) -> \
        impl.MpmathBackend:
    """The oracle in ``arithmetic``; skips the test if arb's library is missing."""
    if arithmetic == "arb":
        pytest.importorskip("flint")
    return impl.MpmathBackend(digits=digits, arithmetic=arithmetic)


@pytest.mark.parametrize("arithmetic", ARITHMETICS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_oracle_gradients_agree_with_high_precision_central_differences(
        case: Case, arithmetic: str) -> None:
    # Arrange
    oracle = _oracle(arithmetic, digits=40)
    with mpmath.workdps(HIGH_DIGITS):
        expected_W, expected_b = _finite_difference_gradients(case)

    # Act
    batch = oracle.exact(case.network, case.parameters, case.inputs, case.targets)

    # Assert
    with mpmath.workdps(HIGH_DIGITS):
        tolerance = mpmath.mpf(AGREEMENT)
        for ell in range(len(expected_W)):
            for i, row in enumerate(expected_W[ell]):
                for j, expected in enumerate(row):
                    gap = _relative_gap(batch.weight_gradients[ell][i, j], expected)
                    assert gap < tolerance, (ell + 1, i, j, gap)
            for i, expected in enumerate(expected_b[ell]):
                gap = _relative_gap(batch.bias_gradients[ell][i], expected)
                assert gap < tolerance, (ell + 1, i, gap)


@pytest.mark.parametrize("arithmetic", ARITHMETICS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_oracle_loss_equals_an_independent_high_precision_forward_pass(
        case: Case, arithmetic: str) -> None:
    # Arrange
    oracle = _oracle(arithmetic, digits=40)
    W, b = case.exact_parameters()
    with mpmath.workdps(HIGH_DIGITS):
        expected = _mp_batch_loss(case, W, b)

    # Act
    batch = oracle.exact(case.network, case.parameters, case.inputs, case.targets)

    # Assert
    with mpmath.workdps(HIGH_DIGITS):
        assert _relative_gap(batch.loss, expected) < mpmath.mpf("1e-35")


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_oracle_gradients_agree_with_the_explicit_jacobian_product(
        case: Case) -> None:
    # Arrange: the product of explicit Jacobians, example by example, averaged.
    network = case.network
    oracle = impl.MpmathBackend(digits=40)
    with mpmath.workdps(40):
        W = [to_exact(w) for w in case.parameters.weights]
        b = [to_exact(v) for v in case.parameters.biases]
        sums_W = [np.zeros(w.shape, dtype=object) for w in W]
        sums_b = [np.zeros(v.shape, dtype=object) for v in b]
        for x, y in zip(case.inputs, case.targets):
            forward = forward_exact(network, W, b, to_exact(x), to_exact(y))
            gW, gb = gradients_by_jacobian_product(network, W, forward, to_exact(y))
            sums_W = [s + g for s, g in zip(sums_W, gW)]
            sums_b = [s + g for s, g in zip(sums_b, gb)]
        B = len(case.inputs)
        expected_W = [s / B for s in sums_W]
        expected_b = [s / B for s in sums_b]

    # Act
    batch = oracle.exact(network, case.parameters, case.inputs, case.targets)

    # Assert
    with mpmath.workdps(HIGH_DIGITS):
        tolerance = mpmath.mpf(AGREEMENT)
        for ell in range(network.depth):
            for index in np.ndindex(expected_W[ell].shape):
                assert _relative_gap(batch.weight_gradients[ell][index],
                                     expected_W[ell][index]) < tolerance
            for index in np.ndindex(expected_b[ell].shape):
                assert _relative_gap(batch.bias_gradients[ell][index],
                                     expected_b[ell][index]) < tolerance


def test_oracle_float_answer_is_the_central_difference_rounded_once() -> None:
    # Arrange
    case = CASES[2]
    with mpmath.workdps(HIGH_DIGITS):
        expected_W, expected_b = _finite_difference_gradients(case)
        W, b = case.exact_parameters()
        expected_loss = _mp_batch_loss(case, W, b)

    # Act
    answer = impl.MpmathBackend().loss_and_gradients(
        case.network, case.parameters, case.inputs, case.targets)

    # Assert: the difference quotient is good to ~35 digits, so rounding it to
    # float64 gives the correctly rounded value.
    assert answer.loss == float(expected_loss)
    for ell in range(len(expected_W)):
        assert answer.gradients.weights[ell].dtype == np.float64
        assert answer.gradients.weights[ell].tolist() == \
            [[float(v) for v in row] for row in expected_W[ell]]
        assert answer.gradients.biases[ell].tolist() == \
            [float(v) for v in expected_b[ell]]


def test_oracle_gradient_of_a_one_unit_network_matches_hand_calculation() -> None:
    # Arrange: a = 2 * 3 + 1 = 7, loss = (7 - 4)^2 / 2 = 4.5,
    # dL/dW = (a - y) x = 9, dL/db = a - y = 3.
    network = Network((1, 1), (Activation.IDENTITY,), Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[2.0]]),), (np.array([1.0]),))

    # Act
    batch = impl.MpmathBackend().exact(network, parameters, np.array([[3.0]]),
                                       np.array([[4.0]]))

    # Assert
    assert batch.loss == mpmath.mpf("4.5")
    assert batch.weight_gradients[0][0, 0] == 9
    assert batch.bias_gradients[0][0] == 3


def test_oracle_upstream_gradients_are_those_of_each_layer_output() -> None:
    # Arrange: x = 1, a_1 = 2 x = 2, a_2 = 3 a_1 = 6, loss = a_2^2 / 2, so
    # dloss/da_2 = 6 and dloss/da_1 = 3 * 6 = 18.
    network = Network((1, 1, 1), (Activation.IDENTITY, Activation.IDENTITY),
                      Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[2.0]]), np.array([[3.0]])),
                            (np.array([0.0]), np.array([0.0])))

    # Act
    batch = impl.MpmathBackend().exact(network, parameters, np.array([[1.0]]),
                                       np.array([[0.0]]))

    # Assert
    upstream = batch.examples[0].upstream
    assert [float(u[0]) for u in upstream] == [18.0, 6.0]
    assert [float(d[0]) for d in batch.examples[0].deltas] == [18.0, 6.0]


def test_oracle_batch_gradient_is_the_mean_of_two_hand_computed_examples() -> None:
    # Arrange: a = w x with w = 1; example losses (x - y)^2 / 2; gradients
    # (x - y) x: (2 - 0) 2 = 4 and (1 - 3) 1 = -2, mean 1. Losses 2 and 2.
    network = Network((1, 1), (Activation.IDENTITY,), Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[1.0]]),), (np.array([0.0]),))

    # Act
    batch = impl.MpmathBackend().exact(network, parameters, np.array([[2.0], [1.0]]),
                                       np.array([[0.0], [3.0]]))

    # Assert
    assert batch.loss == 2
    assert batch.weight_gradients[0][0, 0] == 1
    assert batch.bias_gradients[0][0] == 0


def _mp_outputs(case: Case, x: Sequence[Any], W: Sequence[MpMatrix],
                b: Sequence[list[Any]]) -> list[Any]:
    return _mp_pre_activations(case.activations, W, b, x)[1]


@pytest.mark.parametrize("case", [CASES[1], CASES[3]], ids=[CASE_IDS[1], CASE_IDS[3]])
def test_oracle_input_jacobian_agrees_with_central_differences_in_the_input(
        case: Case) -> None:
    # Arrange
    x = case.inputs[0]
    W, b = case.exact_parameters()
    with mpmath.workdps(HIGH_DIGITS):
        x_exact = [mpmath.mpf(float(v)) for v in x]
        columns = []
        for j in range(len(x)):
            def moved_input(h: Any, j: int = j) -> list[Any]:
                moved = [v + h if k == j else v for k, v in enumerate(x_exact)]
                return _mp_outputs(case, moved, W, b)
            columns.append(_column(moved_input, case.widths[-1]))
        expected = [[columns[j][i] for j in range(len(x))]
                    for i in range(case.widths[-1])]

    # Act
    J = impl.MpmathBackend(digits=40).exact_input_jacobian(case.network,
                                                           case.parameters, x)

    # Assert
    assert J.shape == (case.widths[-1], case.widths[0])
    with mpmath.workdps(HIGH_DIGITS):
        for i, row in enumerate(expected):
            for j, value in enumerate(row):
                assert _relative_gap(J[i, j], value) < mpmath.mpf(AGREEMENT)


def test_oracle_parameter_jacobian_columns_follow_vec_w1_b1_vec_w2_b2() -> None:
    # Arrange: central differences taken parameter by parameter in the order
    # of the convention, written out here: for each layer, the columns of W
    # top to bottom, left to right, then b.
    case = CASES[2]
    x = case.inputs[1]
    W, b = case.exact_parameters()
    with mpmath.workdps(HIGH_DIGITS):
        x_exact = [mpmath.mpf(float(v)) for v in x]
        columns: list[list[Any]] = []
        for ell in range(len(W)):
            for j in range(len(W[ell][0])):
                for i in range(len(W[ell])):
                    def moved_weight(h: Any, ell: int = ell, i: int = i,
                                     j: int = j) -> list[Any]:
                        moved = [[list(r) for r in Wl] for Wl in W]
                        moved[ell][i][j] += h
                        return _mp_outputs(case, x_exact, moved, b)
                    columns.append(_column(moved_weight, case.widths[-1]))
            for i in range(len(b[ell])):
                def moved_bias(h: Any, ell: int = ell, i: int = i) -> list[Any]:
                    moved = [list(bl) for bl in b]
                    moved[ell][i] += h
                    return _mp_outputs(case, x_exact, W, moved)
                columns.append(_column(moved_bias, case.widths[-1]))

    # Act
    J = impl.MpmathBackend(digits=40).exact_parameter_jacobian(case.network,
                                                               case.parameters, x)

    # Assert
    assert J.shape == (case.widths[-1], len(columns))
    with mpmath.workdps(HIGH_DIGITS):
        for p, column in enumerate(columns):
            for i, value in enumerate(column):
                assert _relative_gap(J[i, p], value) < mpmath.mpf(AGREEMENT), (i, p)


def _column(function: Callable[[Any], list[Any]], outputs: int) -> list[Any]:
    h = mpmath.mpf(STEP)
    up, down = function(h), function(-h)
    return [(up[i] - down[i]) / (2 * h) for i in range(outputs)]


def test_oracle_vjp_and_jvp_are_the_rounded_products_with_its_jacobian() -> None:
    # Arrange: a 2-2 identity layer has Jacobian W = [[1, 2], [3, 4]] exactly,
    # so u^T W = [1 + 3, 2 + 4] and W v = [1 - 2, 3 - 4] for u = v = (1, ±1).
    network = Network((2, 2), (Activation.IDENTITY,), Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[1.0, 2.0], [3.0, 4.0]]),),
                            (np.array([5.0, 6.0]),))
    oracle = impl.MpmathBackend()
    x = np.array([0.25, -0.5])

    # Act
    vjp = oracle.vjp(network, parameters, x, np.array([1.0, 1.0]))
    jvp = oracle.jvp(network, parameters, x, np.array([1.0, -1.0]))
    J = oracle.input_jacobian(network, parameters, x)

    # Assert
    assert vjp.tolist() == [4.0, 6.0]
    assert jvp.tolist() == [-1.0, -1.0]
    assert J.tolist() == [[1.0, 2.0], [3.0, 4.0]]


CAPABILITY_METHODS = {
    "input_jacobian": "input_jacobian",
    "parameter_jacobian": "parameter_jacobian",
    "vjp": "vjp",
    "jvp": "jvp",
    "forward_jacobian": "input_jacobian_forward",
    "layer_jacobians": "layer_jacobians",
}
"""Each capability's method, as impl._protocol.Capability documents it."""


def test_oracle_declares_the_jacobian_capabilities_and_implements_each() -> None:
    # Arrange
    oracle = impl.MpmathBackend()

    # Act
    declared = {c.value for c in oracle.capabilities}

    # Assert
    assert declared >= {"input_jacobian", "parameter_jacobian", "vjp", "jvp"}
    assert all(callable(getattr(oracle, CAPABILITY_METHODS[c], None))
               for c in declared)
    assert oracle.name == "mpmath"
    assert oracle.digits == 30


def test_oracle_layer_jacobians_are_diag_sigma_prime_times_w_by_hand() -> None:
    # Arrange: W_1 = [[1, 1], [1, -1]], b_1 = (-1, 0), x = (1, 2): z_1 = (2, -1),
    # relu' = (1, 0), so J_1 = [[1, 1], [0, 0]]; J_2 = W_2 for an identity layer.
    network = Network((2, 2, 1), (Activation.RELU, Activation.IDENTITY),
                      Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[1.0, 1.0], [1.0, -1.0]]),
                             np.array([[3.0, 4.0]])),
                            (np.array([-1.0, 0.0]), np.array([0.5])))

    # Act
    layers = impl.MpmathBackend().layer_jacobians(network, parameters,
                                                  np.array([1.0, 2.0]))

    # Assert
    assert [J.tolist() for J in layers] == [[[1.0, 1.0], [0.0, 0.0]], [[3.0, 4.0]]]


def test_oracle_refuses_fewer_than_twenty_digits_and_says_why() -> None:
    # Arrange
    digits = 19

    # Act
    with pytest.raises(UsageError) as raised:
        impl.MpmathBackend(digits=digits)

    # Assert
    assert "digits=19" in str(raised.value)
    assert "at least 20" in str(raised.value)
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize("arithmetic", ARITHMETICS)
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "softplus", "elu"])
@pytest.mark.parametrize("z", [-30.0, -1e-12, 1e-12, 30.0])
def test_oracle_derivative_keeps_full_relative_accuracy_in_saturation_and_near_zero(
        activation: str, z: float, arithmetic: str) -> None:
    # Arrange: one unit, z = w * 1, squared error against target 0, so the
    # bias gradient is sigma(z) * sigma'(z); both factors come from the
    # independent formulas of this file at 150 digits, differentiated by
    # central differences with step 1e-40 (truncation near 1e-80, rounding
    # near 1e-110, both far below the 1e-25 asked for).
    network = Network((1, 1), (Activation(activation),), Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[z]]),), (np.array([0.0]),))
    with mpmath.workdps(150):
        exact_z = mpmath.mpf(z)
        value = _mp_sigma(activation, exact_z)
        step = mpmath.mpf("1e-40")
        slope = (_mp_sigma(activation, exact_z + step)
                 - _mp_sigma(activation, exact_z - step)) / (2 * step)
        expected = value * slope

    # Act
    batch = _oracle(arithmetic, digits=30).exact(
        network, parameters, np.array([[1.0]]), np.array([[0.0]]))

    # Assert: 25 significant digits, even where sigma' is 1e-26 (tanh at 30).
    with mpmath.workdps(150):
        assert _relative_gap(batch.bias_gradients[0][0], expected) < mpmath.mpf("1e-25")


def test_oracle_number_kinds_give_the_same_float_answers() -> None:
    # Arrange
    case = CASES[2]
    pytest.importorskip("flint")

    # Act
    answers = [impl.MpmathBackend(arithmetic=name).loss_and_gradients(
        case.network, case.parameters, case.inputs, case.targets)
        for name in ARITHMETICS]

    # Assert: each is the exact value rounded once, so they agree bit for bit.
    first = answers[0]
    for other in answers[1:]:
        assert first.loss == other.loss
        for a, b in zip(first.gradients.weights + first.gradients.biases,
                        other.gradients.weights + other.gradients.biases):
            np.testing.assert_array_equal(a, b)


def test_oracle_refuses_an_unknown_kind_of_number_and_names_the_choices() -> None:
    with pytest.raises(UsageError, match="arithmetic='float'") as raised:
        impl.MpmathBackend(arithmetic="float")

    assert all(f"'{name}'" in str(raised.value) for name in ARITHMETICS)
    assert isinstance(raised.value, ValueError)


# The arb engine: python-flint's balls.


def _quantities(batch: impl.oracle.ExactBatch) -> dict[str, list[Any]]:
    """Every exact quantity of a batch, as lists of object arrays."""
    arrays = batch.arrays
    return {"z": arrays.z, "a": arrays.a, "upstream": arrays.upstream,
            "deltas": arrays.deltas, "losses": [arrays.losses],
            "loss": [np.array([arrays.loss], dtype=object)],
            "weight_gradients": arrays.weight_gradients,
            "bias_gradients": arrays.bias_gradients}


def _worst_gaps(actual: impl.oracle.ExactBatch,
                expected: impl.oracle.ExactBatch) -> dict[str, Any]:
    """Per quantity, the largest relative gap between two batches' entries."""
    worst: dict[str, Any] = {}
    with mpmath.workdps(HIGH_DIGITS):
        for name, parts in _quantities(actual).items():
            gaps = [_relative_gap(to_mpf(a), to_mpf(e))
                    for part, other in zip(parts, _quantities(expected)[name])
                    for a, e in zip(part.ravel(), other.ravel())]
            worst[name] = max(gaps)
    return worst


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_arb_oracle_agrees_with_the_mpmath_engine_on_every_exact_quantity(
        case: Case) -> None:
    # Arrange: the mpmath engine at 60 digits, far more than the 30 of arb's
    # first run; the worst gap seen here is about 7e-29, in a weight
    # gradient whose terms cancel.
    reference = impl.MpmathBackend(digits=HIGH_DIGITS, arithmetic="mpmath")
    expected = reference.exact(case.network, case.parameters, case.inputs,
                               case.targets)

    # Act
    actual = _oracle("arb").exact(case.network, case.parameters, case.inputs,
                                  case.targets)

    # Assert
    worst = _worst_gaps(actual, expected)
    assert all(gap < mpmath.mpf("1e-28") for gap in worst.values()), worst


def _cancelling_case() -> tuple[Network, Parameters, np.ndarray[Any, Any],
                                np.ndarray[Any, Any]]:
    """Two tanh units 2^-40 apart, subtracted and scaled back by 2^40.

    ``z_2 = 2^40 (tanh(x) - tanh(x + 2^-40))``: the difference keeps only
    the last 63 of 103 bits, so 30 digits leave ``z_2`` good to about 19.
    """
    network = Network((1, 2, 1), (Activation.TANH, Activation.IDENTITY),
                      Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[1.0], [1.0]]),
                             np.array([[2.0 ** 40, -2.0 ** 40]])),
                            (np.array([0.0, 2.0 ** -40]), np.array([0.0])))
    return network, parameters, np.array([[0.5]]), np.array([[0.25]])


def test_arb_oracle_raises_its_precision_when_cancellation_widens_the_balls(
        caplog: pytest.LogCaptureFixture) -> None:
    # Arrange
    network, parameters, inputs, targets = _cancelling_case()
    oracle = _oracle("arb")
    reference = impl.MpmathBackend(digits=HIGH_DIGITS, arithmetic="mpmath")
    expected = reference.exact(network, parameters, inputs, targets)

    # Act
    with caplog.at_level("DEBUG", logger="impl._arb_engine"):
        actual = oracle.exact(network, parameters, inputs, targets)

    # Assert: a second run at twice the bits, and 28 digits where one run at
    # 103 bits gives about 19.
    assert [r.getMessage() for r in caplog.records] == \
        ["arb balls wider than 80 bits allow at 103 bits"]
    worst = _worst_gaps(actual, expected)
    assert all(gap < mpmath.mpf("1e-28") for gap in worst.values()), worst


def test_arb_oracle_sets_flints_precision_while_it_runs_and_restores_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange: 30 digits are (30 + 1) log2(10) = 102.98, so 103 bits.
    flint = pytest.importorskip("flint")
    from impl import _arb_engine

    case = CASES[1]
    seen: list[int] = []
    compute = _arb_engine._Run.compute

    def recording(self: Any, *args: Any) -> Any:
        seen.append(flint.ctx.prec)
        return compute(self, *args)

    def failing(self: Any, *args: Any) -> Any:
        raise RuntimeError("stop")

    previous = flint.ctx.prec
    flint.ctx.prec = 77
    try:
        # Act
        monkeypatch.setattr(_arb_engine._Run, "compute", recording)
        batch = _oracle("arb").exact(case.network, case.parameters, case.inputs,
                                     case.targets)
        batch.split  # the split runs under flint's precision as well
        after_run = flint.ctx.prec
        monkeypatch.setattr(_arb_engine._Run, "compute", failing)
        with pytest.raises(RuntimeError):
            _oracle("arb").exact(case.network, case.parameters, case.inputs,
                                 case.targets)
        after_error = flint.ctx.prec
    finally:
        flint.ctx.prec = previous

    # Assert
    assert seen == [103]
    assert (after_run, after_error) == (77, 77)


def test_arb_oracle_runs_first_at_96_bits_when_fewer_digits_are_asked_for(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange: 20 digits are (20 + 1) log2(10) = 69.8, so 70 bits, too few
    # for the 80 correct bits the check asks for; 80 + 16 guard bits are used.
    flint = pytest.importorskip("flint")
    from impl import _arb_engine

    case = CASES[0]
    seen: list[int] = []
    compute = _arb_engine._Run.compute

    def recording(self: Any, *args: Any) -> Any:
        seen.append(flint.ctx.prec)
        return compute(self, *args)

    monkeypatch.setattr(_arb_engine._Run, "compute", recording)

    # Act
    _oracle("arb", digits=20).exact(case.network, case.parameters, case.inputs,
                                    case.targets)

    # Assert
    assert seen == [96]


def test_arb_numbers_convert_exactly_and_round_to_nearest() -> None:
    # Arrange: 1 + 3 * 2^-54 lies 3/4 of the way from 1 to 1 + 2^-52, so it
    # rounds up to 1 + 2^-52 and leaves -2^-54; 1 + 2^-54 rounds down to 1.
    flint = pytest.importorskip("flint")
    from spec import split_exact

    up = flint.arb(((1 << 54) + 3, -54))
    down = flint.arb(((1 << 54) + 1, -54))
    zero = flint.arb(0)
    values = np.array([up, down, zero], dtype=object)

    # Act
    with mpmath.workprec(60):
        exact = [to_mpf(v) for v in values]
    with flint.ctx.workprec(103):
        split = split_exact(values)
    is_zero = np.asarray(values == 0, dtype=bool)

    # Assert
    with mpmath.workprec(60):
        two = mpmath.mpf(2)
        assert exact == [1 + 3 * two ** -54, 1 + two ** -54, 0]
    assert split.hi.tolist() == [1 + 2.0 ** -52, 1.0, 0.0]
    assert split.lo.tolist() == [-(2.0 ** -54), 2.0 ** -54, 0.0]
    assert is_zero.tolist() == [False, False, True]


def test_default_oracle_computes_in_arb_balls_when_python_flint_is_there() -> None:
    pytest.importorskip("flint")

    assert impl.MpmathBackend().number_type == "arb"
