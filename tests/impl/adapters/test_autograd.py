"""The autograd adapter against the mpmath oracle, capability by capability.

Networks use moderate weights and inputs (no saturated activation), where a
correct float64 backpropagation agrees with the oracle to a few rounding
errors per layer.
"""

from __future__ import annotations

import sys

import numpy as np
import numpy.typing as npt
import pytest

pytest.importorskip("autograd")

import impl
from impl.adapters.autograd import AutogradBackend
from spec import Activation, Loss, Network, Parameters
from spec.errors import BackendLoadError

FloatArray = npt.NDArray[np.float64]
"""Arrays of the run's dtype (float32 ones too, as in spec.FloatArray)."""

NETWORKS = [
    Network((3, 4, 2), (Activation.TANH, Activation.SIGMOID), Loss.SQUARED_ERROR),
    Network((2, 3, 3, 3), (Activation.RELU, Activation.ELU, Activation.IDENTITY),
            Loss.SOFTMAX_CROSS_ENTROPY),
    Network((2, 3, 2), (Activation.SOFTPLUS, Activation.LEAKY_RELU),
            Loss.SQUARED_ERROR),
    Network((4, 3), (Activation.TANH,), Loss.SOFTMAX_CROSS_ENTROPY),
]


@pytest.fixture(scope="module")
def backend() -> AutogradBackend:
    return AutogradBackend()


def _as(array: npt.NDArray[np.float64], dtype: type[np.floating]) -> FloatArray:
    """``array`` rounded to ``dtype``, typed as the protocol's arrays."""
    return array.astype(dtype)


def _case(network: Network, seed: int, dtype: type[np.floating] = np.float64) -> \
        tuple[Parameters, FloatArray, FloatArray]:
    """Standard normal weights and inputs, biases 0.3 N(0, 1), batch 3."""
    rng = np.random.default_rng(seed)
    weights = tuple(_as(rng.standard_normal(network.weight_shape(ell)), dtype)
                    for ell in range(1, network.depth + 1))
    biases = tuple(_as(0.3 * rng.standard_normal(network.widths[ell]), dtype)
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
def test_autograd_loss_and_gradients_agree_with_the_oracle(backend: AutogradBackend,
                                                      index: int) -> None:
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
def test_autograd_jacobians_vjp_and_jvp_agree_with_the_oracle(backend: AutogradBackend,
                                                         index: int) -> None:
    # Arrange
    network = NETWORKS[index]
    parameters, inputs, _ = _case(network, index)
    x = inputs[0]
    rng = np.random.default_rng(index)
    u = rng.standard_normal(network.widths[-1])
    v = rng.standard_normal(network.widths[0])
    oracle = impl.MpmathBackend()
    tolerance = _tolerance(network)

    # Act
    reverse = backend.input_jacobian(network, parameters, x)
    by_parameters = backend.parameter_jacobian(network, parameters, x)
    vjp, jvp = backend.vjp(network, parameters, x, u), backend.jvp(network, parameters,
                                                                   x, v)

    # Assert
    J = oracle.input_jacobian(network, parameters, x)
    _assert_close(reverse, J, tolerance)
    _assert_close(by_parameters, oracle.parameter_jacobian(network, parameters, x),
                  tolerance)
    _assert_close(vjp, oracle.vjp(network, parameters, x, u), tolerance)
    _assert_close(jvp, oracle.jvp(network, parameters, x, v), tolerance)


@pytest.mark.parametrize("index", range(len(NETWORKS)))
def test_autograd_layer_jacobians_agree_with_one_layer_oracle_jacobians(
        backend: AutogradBackend, index: int) -> None:
    # Arrange: layer l's Jacobian is the input Jacobian of the one-layer
    # network (W_l, b_l, sigma_l) at a_{l-1}, which the oracle gives.
    network = NETWORKS[index]
    parameters, inputs, _ = _case(network, index)
    oracle = impl.MpmathBackend()
    a = inputs[0]
    expected = []
    for ell in range(1, network.depth + 1):
        layer = Network(network.widths[ell - 1:ell + 1],
                        (network.activations[ell - 1],), network.loss)
        alone = Parameters((parameters.weights[ell - 1],),
                           (parameters.biases[ell - 1],))
        expected.append(oracle.input_jacobian(layer, alone, a))
        forward = impl.ReferenceBackend().forward(layer, alone, a[None, :])
        a = np.asarray(forward.A[-1][0])

    # Act
    jacobians = backend.layer_jacobians(network, parameters, inputs[0])

    # Assert
    assert len(jacobians) == network.depth
    for got, want in zip(jacobians, expected):
        _assert_close(got, want, _tolerance(network))


def test_autograd_parameter_jacobian_stacks_the_columns_of_w() -> None:
    # Arrange: a = W x + b, W = [[1, 2], [3, 4]], x = (5, 7); columns W[0,0],
    # W[1,0], W[0,1], W[1,1], b[0], b[1].
    network = Network((2, 2), (Activation.IDENTITY,), Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[1.0, 2.0], [3.0, 4.0]]),),
                            (np.array([0.0, 0.0]),))

    # Act
    J = AutogradBackend().parameter_jacobian(network, parameters, np.array([5.0, 7.0]))

    # Assert
    assert J.tolist() == [[5.0, 0.0, 7.0, 0.0, 1.0, 0.0],
                          [0.0, 5.0, 0.0, 7.0, 0.0, 1.0]]


def test_autograd_computes_in_float32_when_given_float32(
        backend: AutogradBackend) -> None:
    # Arrange
    network = NETWORKS[0]
    parameters, inputs, targets = _case(network, 0, np.float32)
    expected = impl.MpmathBackend().loss_and_gradients(network, parameters, inputs,
                                                       targets)

    # Act
    answer = backend.loss_and_gradients(network, parameters, inputs, targets)
    J = backend.input_jacobian(network, parameters, inputs[0])

    # Assert
    tolerance = _tolerance(network, np.float32)
    assert J.dtype == np.float32
    assert abs(answer.loss - expected.loss) <= tolerance * abs(expected.loss)
    for got, want in zip(answer.gradients.weights, expected.gradients.weights):
        assert got.dtype == np.float32
        _assert_close(got, want, tolerance)


def test_autograd_never_writes_into_its_arguments(backend: AutogradBackend) -> None:
    # Arrange: read-only arrays make any write raise.
    network = NETWORKS[1]
    parameters, inputs, targets = _case(network, 1)
    for array in (*parameters.weights, *parameters.biases, inputs, targets):
        array.flags.writeable = False

    # Act
    answer = backend.loss_and_gradients(network, parameters, inputs, targets)

    # Assert
    assert np.isfinite(answer.loss)


def test_autograd_reports_how_to_install_it_when_missing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange
    monkeypatch.setitem(sys.modules, "autograd", None)

    # Act
    with pytest.raises(BackendLoadError) as raised:
        AutogradBackend()

    # Assert
    assert str(raised.value) == (
        "the autograd backend needs autograd (HIPS), which is not installed (or "
        "its scipy is missing); install it with: "
        "pip install 'backprop-spec[autograd]'")


def test_autograd_declares_no_forward_mode_jacobian() -> None:
    # Arrange: autograd's forward mode has no JVP rule for scipy.special.expit.
    backend = AutogradBackend()

    # Act
    declared = {c.value for c in backend.capabilities}

    # Assert
    assert "forward_jacobian" not in declared
    assert declared == {"input_jacobian", "parameter_jacobian", "vjp", "jvp",
                        "layer_jacobians"}


def test_autograd_relu_splits_the_gradient_at_its_kink() -> None:
    # Arrange: z = 1 * 1 - 1 = 0; np.maximum(z, 0) ties, and autograd gives
    # each argument half the gradient: d loss / d b = (0 - 2) * 1/2 = -1.
    network = Network((1, 1), (Activation.RELU,), Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[1.0]]),), (np.array([-1.0]),))

    # Act
    answer = AutogradBackend().loss_and_gradients(
        network, parameters, np.array([[1.0]]), np.array([[2.0]]))

    # Assert
    assert answer.loss == 2.0
    assert answer.gradients.biases[0].tolist() == [-1.0]
