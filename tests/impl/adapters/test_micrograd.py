"""The micrograd adapter against the mpmath oracle, and its declared limits.

Networks use moderate weights and inputs, where a correct float64
backpropagation agrees with the oracle to a few rounding errors per layer.
"""

from __future__ import annotations

import sys

import numpy as np
import numpy.typing as npt
import pytest

pytest.importorskip("micrograd.engine")

import impl
from impl.adapters.micrograd import (
    MAX_OPERATION_CHAIN,
    MICROGRAD_CONSTRAINTS,
    MicrogradBackend,
    operation_chain,
)
from spec import Activation, Loss, Network, Parameters
from spec.errors import BackendLimitError, BackendLoadError

FloatArray = npt.NDArray[np.float64]
"""Arrays of the run's dtype (float32 ones too, as in spec.FloatArray)."""

NETWORKS = [
    Network((3, 4, 2), (Activation.RELU, Activation.IDENTITY), Loss.SQUARED_ERROR),
    Network((2, 3, 3, 1), (Activation.RELU, Activation.RELU, Activation.RELU),
            Loss.SQUARED_ERROR),
    Network((4, 3), (Activation.IDENTITY,), Loss.SQUARED_ERROR),
]


@pytest.fixture(scope="module")
def backend() -> MicrogradBackend:
    return MicrogradBackend()


def _as(array: npt.NDArray[np.float64], dtype: type[np.floating]) -> FloatArray:
    """``array`` rounded to ``dtype``, typed as the protocol's arrays."""
    return array.astype(dtype)


def _case(network: Network, seed: int, dtype: type[np.floating] = np.float64) -> \
        tuple[Parameters, FloatArray, FloatArray]:
    """Standard normal weights and inputs, biases 0.3 N(0, 1) + 0.5, batch 3.

    The shifted biases keep most ReLU units active, so gradients flow."""
    rng = np.random.default_rng(seed)
    weights = tuple(_as(rng.standard_normal(network.weight_shape(ell)), dtype)
                    for ell in range(1, network.depth + 1))
    biases = tuple(_as(0.3 * rng.standard_normal(network.widths[ell]) + 0.5, dtype)
                   for ell in range(1, network.depth + 1))
    inputs = _as(rng.standard_normal((3, network.widths[0])), dtype)
    targets = _as(rng.uniform(0.0, 1.0, (3, network.widths[-1])), dtype)
    return Parameters(weights, biases), inputs, targets


def _tolerance(network: Network, dtype: type[np.floating] = np.float64) -> float:
    """Normwise relative tolerance: 8 unit roundoffs per layer, plus the loss.

    Each layer adds a dot product of at most 4 terms, an activation and its
    derivative, each a few roundings (u = eps / 2) relative to the entries at
    these moderate magnitudes; 8 u per layer leaves room for their
    accumulation without hiding a wrong formula (which errs by O(1)).
    """
    return 8 * float(np.finfo(dtype).eps) / 2 * (network.depth + 1)


def _assert_close(actual: FloatArray, expected: FloatArray, relative: float) -> None:
    """max |actual - expected| <= relative * max |expected|, same shape."""
    assert actual.shape == expected.shape
    scale = float(np.max(np.abs(expected)))
    gap = float(np.max(np.abs(np.asarray(actual, dtype=np.float64) - expected)))
    assert gap <= relative * scale, (gap, scale)


@pytest.mark.parametrize("index", range(len(NETWORKS)))
def test_micrograd_loss_and_gradients_agree_with_the_oracle(
        backend: MicrogradBackend, index: int) -> None:
    # Arrange
    network = NETWORKS[index]
    parameters, inputs, targets = _case(network, index)
    expected = impl.MpmathBackend().loss_and_gradients(network, parameters, inputs,
                                                       targets)

    # Act
    answer = backend.loss_and_gradients(network, parameters, inputs, targets)

    # Assert
    tolerance = _tolerance(network)
    assert abs(answer.loss - expected.loss) <= tolerance * abs(expected.loss)
    for got, want in zip(answer.gradients.weights + answer.gradients.biases,
                         expected.gradients.weights + expected.gradients.biases):
        assert got.dtype == np.float64
        _assert_close(got, want, tolerance)


@pytest.mark.parametrize("index", range(len(NETWORKS)))
def test_micrograd_jacobians_and_vjp_agree_with_the_oracle(
        backend: MicrogradBackend, index: int) -> None:
    # Arrange
    network = NETWORKS[index]
    parameters, inputs, _ = _case(network, index)
    x = inputs[0]
    u = np.random.default_rng(index).standard_normal(network.widths[-1])
    oracle = impl.MpmathBackend()
    tolerance = _tolerance(network)

    # Act
    J = backend.input_jacobian(network, parameters, x)
    by_parameters = backend.parameter_jacobian(network, parameters, x)
    vjp = backend.vjp(network, parameters, x, u)

    # Assert
    _assert_close(J, oracle.input_jacobian(network, parameters, x), tolerance)
    _assert_close(by_parameters, oracle.parameter_jacobian(network, parameters, x),
                  tolerance)
    _assert_close(vjp, oracle.vjp(network, parameters, x, u), tolerance)


def test_micrograd_parameter_jacobian_puts_b1_before_vec_w2(
        backend: MicrogradBackend) -> None:
    # Arrange: a_1 = 2 * 11 + 3 = 25, a_2 = 5 a_1 + 7. Derivatives of a_2:
    # W_1: 5 * 11 = 55, b_1: 5, W_2: a_1 = 25, b_2: 1.
    network = Network((1, 1, 1), (Activation.IDENTITY, Activation.IDENTITY),
                      Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[2.0]]), np.array([[5.0]])),
                            (np.array([3.0]), np.array([7.0])))

    # Act
    J = backend.parameter_jacobian(network, parameters, np.array([11.0]))

    # Assert
    assert J.tolist() == [[55.0, 5.0, 25.0, 1.0]]


def test_micrograd_takes_the_left_derivative_at_a_relu_kink(
        backend: MicrogradBackend) -> None:
    # Arrange: z = 1 * 1 - 1 = 0; Value.relu() passes no gradient there.
    network = Network((1, 1), (Activation.RELU,), Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[1.0]]),), (np.array([-1.0]),))

    # Act
    answer = backend.loss_and_gradients(network, parameters, np.array([[1.0]]),
                                        np.array([[2.0]]))

    # Assert
    assert answer.loss == 2.0
    assert answer.gradients.biases[0].tolist() == [0.0]


def test_micrograd_rounds_its_float64_results_to_float32(
        backend: MicrogradBackend) -> None:
    # Arrange
    network = NETWORKS[0]
    parameters, inputs, targets = _case(network, 0, np.float32)
    expected = impl.MpmathBackend().loss_and_gradients(network, parameters, inputs,
                                                       targets)

    # Act
    answer = backend.loss_and_gradients(network, parameters, inputs, targets)

    # Assert: float64 arithmetic, one float32 rounding at the end.
    tolerance = _tolerance(network, np.float32)
    assert abs(answer.loss - expected.loss) <= tolerance * abs(expected.loss)
    for got, want in zip(answer.gradients.weights, expected.gradients.weights):
        assert got.dtype == np.float32
        _assert_close(got, want, float(np.finfo(np.float32).eps))


def test_micrograd_never_writes_into_its_arguments(
        backend: MicrogradBackend) -> None:
    # Arrange: read-only arrays make any write raise.
    network = NETWORKS[1]
    parameters, inputs, targets = _case(network, 1)
    for array in (*parameters.weights, *parameters.biases, inputs, targets):
        array.flags.writeable = False

    # Act
    answer = backend.loss_and_gradients(network, parameters, inputs, targets)

    # Assert
    assert np.isfinite(answer.loss)


def test_micrograd_constraints_allow_identity_and_relu_with_squared_error() -> None:
    # Arrange
    constraints = MicrogradBackend().constraints

    # Act
    losses = constraints.losses

    # Assert
    assert constraints is MICROGRAD_CONSTRAINTS
    assert constraints.activations == {Activation.IDENTITY, Activation.RELU}
    assert losses == (Loss.SQUARED_ERROR,)


@pytest.mark.parametrize("network", [
    Network((2, 2), (Activation.TANH,), Loss.SQUARED_ERROR),
    Network((2, 2), (Activation.IDENTITY,), Loss.SOFTMAX_CROSS_ENTROPY),
])
def test_micrograd_refuses_what_value_cannot_express(
        backend: MicrogradBackend, network: Network) -> None:
    # Arrange
    parameters, inputs, targets = _case(network, 0)

    # Act
    with pytest.raises(BackendLimitError) as raised:
        backend.loss_and_gradients(network, parameters, inputs, targets)

    # Assert
    assert "micrograd's Value has no exp or log" in str(raised.value)


def test_micrograd_refuses_a_graph_deeper_than_its_recursive_walk(
        backend: MicrogradBackend) -> None:
    # Arrange: one layer as wide as the recursion budget.
    width = MAX_OPERATION_CHAIN
    network = Network((width, 1), (Activation.IDENTITY,), Loss.SQUARED_ERROR)
    parameters = Parameters((np.ones((1, width)),), (np.zeros(1),))

    # Act
    with pytest.raises(BackendLimitError) as raised:
        backend.loss_and_gradients(network, parameters, np.ones((1, width)),
                                   np.zeros((1, 1)))

    # Assert
    assert operation_chain(network, 1) > MAX_OPERATION_CHAIN
    assert "chains" in str(raised.value)


def test_micrograd_reports_how_to_install_it_when_missing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange
    monkeypatch.setitem(sys.modules, "micrograd", None)
    monkeypatch.setitem(sys.modules, "micrograd.engine", None)

    # Act
    with pytest.raises(BackendLoadError) as raised:
        MicrogradBackend()

    # Assert
    assert str(raised.value) == (
        "the micrograd backend needs micrograd, which is not installed; install "
        "it with: pip install 'backprop-spec[micrograd]'")
