"""The PyTorch adapter against the oracle and hand values.

Every comparison with the oracle is entry by entry, under the error bounds
of :mod:`conformance._bounds`, with the helpers of
``adapters/adapter_contract.py``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pytest

pytest.importorskip("torch")

import impl  # noqa: E402
from impl.adapters.torch import TorchBackend  # noqa: E402
from spec import Activation, Loss, Network, Parameters, chain_rule  # noqa: E402

if TYPE_CHECKING:
    import adapter_contract as contract
else:
    _spec = importlib.util.spec_from_file_location(
        f"{__name__}.contract",
        Path(__file__).with_name("adapters") / "adapter_contract.py")
    contract = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(contract)

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


@pytest.mark.parametrize("index", range(len(NETWORKS)))
def test_torch_agrees_with_the_oracle(index: int) -> None:
    # Arrange
    network, parameters, inputs, targets = _case(index)

    # Act
    answer = TorchBackend().loss_and_gradients(network, parameters, inputs, targets)

    # Assert
    assert all(g.dtype == np.float64
               for g in answer.gradients.weights + answer.gradients.biases)
    contract.assert_gradients_hold(network, parameters, inputs, targets, answer)


@pytest.mark.parametrize("index", range(len(NETWORKS)))
def test_torch_parameter_jacobian_agrees_with_the_oracle(index: int) -> None:
    # Arrange
    network, parameters, inputs, _ = _case(index)
    point = contract.ExactPoint(network, parameters, inputs[0])

    # Act
    J = TorchBackend().parameter_jacobian(network, parameters, inputs[0])

    # Assert
    contract.assert_within_bounds(J, point.parameter_jacobian, point.parameter_bound,
                                  "parameter_jacobian")


@pytest.mark.parametrize("index", range(len(NETWORKS)))
def test_torch_input_jacobian_vjp_and_jvp_agree_with_the_oracle(index: int) -> None:
    # Arrange: the VJP at e_i is row i of the Jacobian, the JVP at e_j its
    # column j; at random vectors they are judged by jacobian.products.
    network, parameters, inputs, _ = _case(index)
    x = inputs[1]
    point = contract.ExactPoint(network, parameters, x)
    backend = TorchBackend()

    # Act
    J = backend.input_jacobian(network, parameters, x)
    rows = [backend.vjp(network, parameters, x, e) for e in np.eye(network.widths[-1])]
    columns = [backend.jvp(network, parameters, x, e)
               for e in np.eye(network.widths[0])]

    # Assert
    contract.assert_within_bounds(J, point.input_jacobian, point.input_bound,
                                  "input_jacobian")
    contract.assert_within_bounds(np.array(rows), point.input_jacobian,
                                  point.input_bound, "vjp at unit cotangents (rows)")
    contract.assert_within_bounds(np.array(columns).T, point.input_jacobian,
                                  point.input_bound, "jvp at unit tangents (columns)")
    contract.assert_products_hold(backend, network, parameters, x, index)


@pytest.mark.parametrize("index", range(len(NETWORKS)))
def test_torch_forward_mode_and_layer_jacobians_agree_with_the_oracle(
        index: int) -> None:
    # Arrange
    network, parameters, inputs, _ = _case(index)
    x = inputs[2]
    point = contract.ExactPoint(network, parameters, x)
    backend = TorchBackend()

    # Act
    forward_mode = backend.input_jacobian_forward(network, parameters, x)
    layers = backend.layer_jacobians(network, parameters, x)

    # Assert
    contract.assert_within_bounds(forward_mode, point.input_jacobian,
                                  point.input_bound, "input_jacobian_forward")
    assert len(layers) == network.depth
    for ell, (got, want, bound) in enumerate(
            zip(layers, point.layer_jacobians, point.layer_bounds), start=1):
        contract.assert_within_bounds(got, want, bound, "layer_jacobian",
                                      result_id=chain_rule.RESULT_ID, layer_index=ell)


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
    inputs, targets = np.array([[1.0]]), np.array([[1.0, 2.0]])

    # Act
    answer = TorchBackend().loss_and_gradients(network, parameters, inputs, targets)

    # Assert
    contract.assert_gradients_hold(network, parameters, inputs, targets, answer)
    assert answer.gradients.biases[0].tolist() == [0.5, -0.5]


def test_torch_softplus_is_exact_past_the_threshold_of_torch_functional() -> None:
    # Arrange: z = 25 and 40, where torch.nn.functional.softplus would return z
    # and a derivative of exactly 1; the oracle keeps e^-25 ~ 1.4e-11.
    network = Network((1, 2), (Activation.SOFTPLUS,), Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[25.0], [40.0]]),), (np.zeros(2),))
    inputs, targets = np.array([[1.0]]), np.array([[0.0, 0.0]])

    # Act
    answer = TorchBackend().loss_and_gradients(network, parameters, inputs, targets)

    # Assert
    assert answer.gradients.biases[0][0] != 25.0
    contract.assert_gradients_hold(network, parameters, inputs, targets, answer)


def test_torch_adapter_is_a_backend_named_torch() -> None:
    # Arrange
    backend = TorchBackend()

    # Act
    is_backend = isinstance(backend, impl.Backend)

    # Assert
    assert is_backend
    assert backend.name == "torch"
