"""The PyTorch adapter against the oracle, the reference and hand values."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

pytest.importorskip("torch")

import impl  # noqa: E402
from impl.adapters.torch import TorchBackend  # noqa: E402
from spec import Activation, Loss, Network, Parameters  # noqa: E402

FloatArray = npt.NDArray[np.float64]

pytestmark = pytest.mark.torch

NETWORKS = [
    Network((3, 4, 2), (Activation.SIGMOID, Activation.IDENTITY), Loss.SQUARED_ERROR),
    Network((2, 3, 3, 3), (Activation.TANH, Activation.RELU, Activation.SOFTPLUS),
            Loss.SOFTMAX_CROSS_ENTROPY),
    Network((3, 3, 2, 3, 2), (Activation.ELU, Activation.LEAKY_RELU,
                              Activation.SIGMOID, Activation.TANH),
            Loss.SQUARED_ERROR),
    Network((2, 4, 3, 3), (Activation.LEAKY_RELU, Activation.ELU, Activation.IDENTITY),
            Loss.SOFTMAX_CROSS_ENTROPY),
]


def _case(index: int) -> tuple[Network, Parameters, FloatArray, FloatArray]:
    network = NETWORKS[index]
    rng = np.random.default_rng(500 + index)
    parameters = Parameters(
        tuple(rng.standard_normal(network.weight_shape(ell))
              for ell in range(1, network.depth + 1)),
        tuple(0.5 * rng.standard_normal(network.widths[ell])
              for ell in range(1, network.depth + 1)))
    inputs = rng.standard_normal((3, network.widths[0]))
    if network.loss is Loss.SOFTMAX_CROSS_ENTROPY:
        targets = rng.uniform(0.1, 1.0, (3, network.widths[-1]))  # sums != 1
    else:
        targets = rng.standard_normal((3, network.widths[-1]))
    return network, parameters, inputs, targets


def _assert_relatively_close(actual: FloatArray, expected: FloatArray,
                             relative: float) -> None:
    scale = float(np.max(np.abs(expected)))
    gap = float(np.max(np.abs(actual - expected)))
    assert gap <= relative * scale, (gap, scale)


@pytest.mark.parametrize("index", range(len(NETWORKS)))
def test_torch_agrees_with_the_oracle(index: int) -> None:
    # Arrange
    network, parameters, inputs, targets = _case(index)
    expected = impl.MpmathBackend().loss_and_gradients(network, parameters, inputs,
                                                       targets)

    # Act
    answer = TorchBackend().loss_and_gradients(network, parameters, inputs, targets)

    # Assert
    assert abs(answer.loss - expected.loss) <= 1e-12 * abs(expected.loss)
    for ell in range(network.depth):
        assert answer.gradients.weights[ell].dtype == np.float64
        assert answer.gradients.weights[ell].shape == network.weight_shape(ell + 1)
        _assert_relatively_close(answer.gradients.weights[ell],
                                 expected.gradients.weights[ell], 1e-12)
        _assert_relatively_close(answer.gradients.biases[ell],
                                 expected.gradients.biases[ell], 1e-12)


@pytest.mark.parametrize("index", range(len(NETWORKS)))
def test_torch_parameter_jacobian_matches_the_reference(index: int) -> None:
    # Arrange
    network, parameters, inputs, _ = _case(index)
    expected = impl.ReferenceBackend().parameter_jacobian(network, parameters,
                                                          inputs[0])

    # Act
    J = TorchBackend().parameter_jacobian(network, parameters, inputs[0])

    # Assert
    assert J.shape == expected.shape
    _assert_relatively_close(J, expected, 1e-13)


@pytest.mark.parametrize("index", range(len(NETWORKS)))
def test_torch_input_jacobian_vjp_and_jvp_match_the_reference(index: int) -> None:
    # Arrange
    network, parameters, inputs, _ = _case(index)
    reference = impl.ReferenceBackend()
    x = inputs[1]
    u = np.linspace(-1.0, 1.0, network.widths[-1])
    v = np.linspace(0.5, -0.5, network.widths[0])
    backend = TorchBackend()

    # Act
    J = backend.input_jacobian(network, parameters, x)
    vjp = backend.vjp(network, parameters, x, u)
    jvp = backend.jvp(network, parameters, x, v)

    # Assert
    _assert_relatively_close(J, reference.input_jacobian(network, parameters, x),
                             1e-13)
    _assert_relatively_close(vjp, reference.vjp(network, parameters, x, u), 1e-13)
    _assert_relatively_close(jvp, reference.jvp(network, parameters, x, v), 1e-13)


@pytest.mark.parametrize("index", range(len(NETWORKS)))
def test_torch_forward_mode_and_layer_jacobians_match_the_reference(
        index: int) -> None:
    # Arrange
    network, parameters, inputs, _ = _case(index)
    reference = impl.ReferenceBackend()
    x = inputs[2]
    backend = TorchBackend()

    # Act
    forward_mode = backend.input_jacobian_forward(network, parameters, x)
    layers = backend.layer_jacobians(network, parameters, x)

    # Assert
    _assert_relatively_close(forward_mode,
                             reference.input_jacobian(network, parameters, x), 1e-13)
    expected = reference.layer_jacobians(network, parameters, x)
    assert len(layers) == len(expected)
    for J, want in zip(layers, expected):
        assert J.shape == want.shape
        _assert_relatively_close(J, want, 1e-13)


CAPABILITY_METHODS = {
    "input_jacobian": "input_jacobian",
    "parameter_jacobian": "parameter_jacobian",
    "vjp": "vjp",
    "jvp": "jvp",
    "forward_jacobian": "input_jacobian_forward",
    "layer_jacobians": "layer_jacobians",
}


def test_torch_implements_every_capability_it_declares() -> None:
    # Arrange
    backend = TorchBackend()

    # Act
    missing = [c.value for c in backend.capabilities
               if not callable(getattr(backend, CAPABILITY_METHODS[c.value], None))]

    # Assert
    assert missing == []
    assert {c.value for c in backend.capabilities} >= {
        "input_jacobian", "parameter_jacobian", "vjp", "jvp"}


def test_torch_parameter_jacobian_stacks_the_columns_of_w() -> None:
    # Arrange: a = W x with x = (5, 7): columns W[0,0], W[1,0], W[0,1], W[1,1],
    # b[0], b[1]; da_0/dW[0,1] = 7 is column 2.
    network = Network((2, 2), (Activation.IDENTITY,), Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[1.0, 2.0], [3.0, 4.0]]),),
                            (np.array([0.0, 0.0]),))

    # Act
    J = TorchBackend().parameter_jacobian(network, parameters, np.array([5.0, 7.0]))

    # Assert
    assert J.tolist() == [[5.0, 0.0, 7.0, 0.0, 1.0, 0.0],
                          [0.0, 5.0, 0.0, 7.0, 0.0, 1.0]]


def test_torch_squared_error_is_half_the_sum_averaged_over_the_batch() -> None:
    # Arrange: a = (x, 2x). Example 1, x = 1: ((1)^2 + (2)^2) / 2 = 2.5;
    # example 2, x = 2, y = (2, 0): (0 + 16) / 2 = 8; mean 5.25.
    # dW: example 1 (a - y) x = (1, 2), example 2 (0, 4) * 2 = (0, 8); mean
    # (0.5, 5).
    network = Network((1, 2), (Activation.IDENTITY,), Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[1.0], [2.0]]),), (np.zeros(2),))

    # Act
    answer = TorchBackend().loss_and_gradients(
        network, parameters, np.array([[1.0], [2.0]]),
        np.array([[0.0, 0.0], [2.0, 0.0]]))

    # Assert
    assert answer.loss == 5.25
    assert answer.gradients.weights[0].tolist() == [[0.5], [5.0]]


def test_torch_cross_entropy_does_not_renormalise_the_targets() -> None:
    # Arrange: equal logits, softmax (1/2, 1/2); y = (1, 2) gives
    # -(1 + 2) log(1/2) = 3 log 2, and the gradient in a is
    # softmax * 3 - y = (0.5, -0.5), which is db for an identity layer.
    network = Network((1, 2), (Activation.IDENTITY,), Loss.SOFTMAX_CROSS_ENTROPY)
    parameters = Parameters((np.zeros((2, 1)),), (np.zeros(2),))

    # Act
    answer = TorchBackend().loss_and_gradients(network, parameters,
                                               np.array([[1.0]]),
                                               np.array([[1.0, 2.0]]))

    # Assert
    assert answer.loss == pytest.approx(3 * np.log(2.0), rel=1e-15)
    assert answer.gradients.biases[0].tolist() == [0.5, -0.5]


def test_torch_softplus_is_exact_past_the_threshold_of_torch_functional() -> None:
    # Arrange: z = 25 and 40, where torch.nn.functional.softplus would return z
    # and a derivative of exactly 1; the oracle keeps e^-25 ~ 1.4e-11.
    network = Network((1, 2), (Activation.SOFTPLUS,), Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[25.0], [40.0]]),), (np.zeros(2),))
    inputs, targets = np.array([[1.0]]), np.array([[0.0, 0.0]])
    expected = impl.MpmathBackend().loss_and_gradients(network, parameters, inputs,
                                                       targets)

    # Act
    answer = TorchBackend().loss_and_gradients(network, parameters, inputs, targets)

    # Assert
    assert answer.gradients.biases[0][0] != 25.0
    _assert_relatively_close(answer.gradients.biases[0],
                             expected.gradients.biases[0], 1e-14)


def test_torch_adapter_is_a_backend_named_torch() -> None:
    # Arrange
    backend = TorchBackend()

    # Act
    is_backend = isinstance(backend, impl.Backend)

    # Assert
    assert is_backend
    assert backend.name == "torch"
