"""The tinygrad adapter against the mpmath oracle, on its CPU and PYTHON devices.

Networks use moderate weights and inputs (no saturated activation), where a
correct float64 backpropagation agrees with the oracle to a few rounding
errors per layer.
"""

from __future__ import annotations

import shutil
import sys

import numpy as np
import numpy.typing as npt
import pytest

pytest.importorskip("tinygrad")

import impl
from impl.adapters.tinygrad import TinygradBackend
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


DEVICES = [
    pytest.param("CPU", marks=pytest.mark.skipif(
        shutil.which("clang") is None,
        reason="tinygrad's CPU device compiles with clang, not installed here")),
    "PYTHON",
]
"""tinygrad's compiled CPU device (the default) and its Python emulator."""


@pytest.fixture(scope="module", params=DEVICES)
def backend(request: pytest.FixtureRequest) -> TinygradBackend:
    return TinygradBackend(device=request.param)


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
def test_tinygrad_loss_and_gradients_agree_with_the_oracle(backend: TinygradBackend,
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
def test_tinygrad_jacobians_and_vjp_agree_with_the_oracle(backend: TinygradBackend,
                                                         index: int) -> None:
    # Arrange
    network = NETWORKS[index]
    parameters, inputs, _ = _case(network, index)
    x = inputs[0]
    rng = np.random.default_rng(index)
    u = rng.standard_normal(network.widths[-1])
    oracle = impl.MpmathBackend()
    tolerance = _tolerance(network)

    # Act
    reverse = backend.input_jacobian(network, parameters, x)
    by_parameters = backend.parameter_jacobian(network, parameters, x)
    vjp = backend.vjp(network, parameters, x, u)

    # Assert
    J = oracle.input_jacobian(network, parameters, x)
    _assert_close(reverse, J, tolerance)
    _assert_close(by_parameters, oracle.parameter_jacobian(network, parameters, x),
                  tolerance)
    _assert_close(vjp, oracle.vjp(network, parameters, x, u), tolerance)


def test_tinygrad_parameter_jacobian_stacks_the_columns_of_w() -> None:
    # Arrange: a = W x + b, W = [[1, 2], [3, 4]], x = (5, 7); columns W[0,0],
    # W[1,0], W[0,1], W[1,1], b[0], b[1].
    network = Network((2, 2), (Activation.IDENTITY,), Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[1.0, 2.0], [3.0, 4.0]]),),
                            (np.array([0.0, 0.0]),))

    # Act
    J = TinygradBackend(device="PYTHON").parameter_jacobian(network, parameters,
                                                            np.array([5.0, 7.0]))

    # Assert
    assert J.tolist() == [[5.0, 0.0, 7.0, 0.0, 1.0, 0.0],
                          [0.0, 5.0, 0.0, 7.0, 0.0, 1.0]]


def test_tinygrad_computes_in_float32_when_given_float32(
        backend: TinygradBackend) -> None:
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


def test_tinygrad_never_writes_into_its_arguments(backend: TinygradBackend) -> None:
    # Arrange: read-only arrays make any write raise.
    network = NETWORKS[1]
    parameters, inputs, targets = _case(network, 1)
    for array in (*parameters.weights, *parameters.biases, inputs, targets):
        array.flags.writeable = False

    # Act
    answer = backend.loss_and_gradients(network, parameters, inputs, targets)

    # Assert
    assert np.isfinite(answer.loss)


def test_tinygrad_reports_how_to_install_it_when_missing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange
    monkeypatch.setitem(sys.modules, "tinygrad", None)

    # Act
    with pytest.raises(BackendLoadError) as raised:
        TinygradBackend()

    # Assert
    assert str(raised.value) == (
        "the tinygrad backend needs tinygrad, which is not installed; install it "
        "with: pip install 'backprop-spec[tinygrad]'")


def test_tinygrad_declares_reverse_mode_capabilities_only() -> None:
    # Arrange
    backend = TinygradBackend(device="PYTHON")

    # Act
    declared = {c.value for c in backend.capabilities}

    # Assert
    assert declared == {"input_jacobian", "parameter_jacobian", "vjp"}


def test_tinygrad_names_a_device_it_cannot_compute_on() -> None:
    # Arrange
    device = "NOSUCHDEVICE"

    # Act
    with pytest.raises(BackendLoadError) as raised:
        TinygradBackend(device=device)

    # Assert
    assert str(raised.value).startswith(
        "tinygrad could not compute on its NOSUCHDEVICE device: ")


def _one_elu_unit(z: float) -> tuple[Network, Parameters, FloatArray, FloatArray]:
    """One ELU unit at pre-activation ``z`` (W = 1, b = 0, x = z, y = 0)."""
    network = Network((1, 1), (Activation.ELU,), Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[1.0]]),), (np.array([0.0]),))
    return network, parameters, np.array([[z]]), np.array([[0.0]])


@pytest.mark.xfail(strict=True, reason=(
    "tinygrad writes elu(z) as relu(z) - relu(1 - exp(z)); both relus pass no "
    "gradient at 0, so elu'(0) comes out 0 although ELU with alpha 1 is "
    "differentiable there with slope 1"))
def test_tinygrad_elu_has_slope_one_at_zero(backend: TinygradBackend) -> None:
    # Arrange: z = 0, loss (elu(z) - y)^2 / 2 with y = -1: dL/dz = 1 * elu'(0).
    network, parameters, inputs, _ = _one_elu_unit(0.0)

    # Act
    answer = backend.loss_and_gradients(network, parameters, inputs,
                                        np.array([[-1.0]]))

    # Assert
    assert answer.gradients.biases[0].tolist() == [1.0]


@pytest.mark.xfail(strict=True, reason=(
    "tinygrad's elu differentiates exp(z) also where relu masks it out; past "
    "z = 709.8 exp(z) overflows and 0 * inf makes the gradient NaN"))
def test_tinygrad_elu_gradient_is_finite_for_large_inputs(
        backend: TinygradBackend) -> None:
    # Arrange: z = 800, loss (800 - 0)^2 / 2, dL/db = 800.
    network, parameters, inputs, targets = _one_elu_unit(800.0)

    # Act
    answer = backend.loss_and_gradients(network, parameters, inputs, targets)

    # Assert
    assert answer.gradients.biases[0].tolist() == [800.0]
