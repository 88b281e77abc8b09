"""The micrograd adapter against the mpmath oracle, and its declared limits.

The checks every adapter shares are in ``adapter_contract.py``; here are the
networks micrograd's Value can express, its column order, its ReLU kink and
its limits.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

pytest.importorskip("micrograd.engine")

from impl.adapters.micrograd import (
    MAX_OPERATION_CHAIN,
    MICROGRAD_CONSTRAINTS,
    MicrogradBackend,
    operation_chain,
)
from spec import Activation, Loss, Network, Parameters
from spec.errors import BackendLimitError

if TYPE_CHECKING:
    import adapter_contract as contract
else:
    _spec = importlib.util.spec_from_file_location(
        f"{__name__}.contract", Path(__file__).with_name("adapter_contract.py"))
    contract = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(contract)


@pytest.fixture(scope="module")
def backend() -> MicrogradBackend:
    return MicrogradBackend()


class TestMicrogradAdapter(contract.JacobianContract):
    networks = [
        Network((3, 4, 2), (Activation.RELU, Activation.IDENTITY), Loss.SQUARED_ERROR),
        Network((2, 3, 3, 2), (Activation.RELU, Activation.RELU, Activation.RELU),
                Loss.SQUARED_ERROR),
        Network((4, 3), (Activation.IDENTITY,), Loss.SQUARED_ERROR),
    ]
    """Identity and ReLU layers, squared error: what Value can express. The
    all-ReLU network has two outputs: with one, its case (seed 1) has the
    output unit off for every example, and every derivative would be 0."""
    bias_shift = 0.5
    """Biases 0.3 N(0, 1) + 0.5 keep most ReLU units active, so gradients flow."""
    backend_class = MicrogradBackend
    capabilities = frozenset({"input_jacobian", "parameter_jacobian", "vjp"})
    library_modules = ("micrograd", "micrograd.engine")
    install_message = (
        "the micrograd backend needs micrograd, which is not installed; install "
        "it with: pip install 'backprop-spec[micrograd]'")


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
    parameters, inputs, targets = TestMicrogradAdapter().case(network, 0)

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
