"""The explicit Jacobian-product backend: agreement, hand counts and its limit."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

import impl
from spec import Activation, Loss, Network, Parameters
from spec.errors import BackendLimitError

FloatArray = npt.NDArray[np.float64]

ACTIVATIONS = list(Activation)


def _random_case(seed: int) -> tuple[Network, Parameters, FloatArray, FloatArray]:
    rng = np.random.default_rng(1000 + seed)
    depth = 1 + seed % 4
    widths = tuple(int(w) for w in rng.integers(1, 5, depth + 1))
    loss = Loss.SQUARED_ERROR if seed % 2 == 0 else Loss.SOFTMAX_CROSS_ENTROPY
    if loss is Loss.SOFTMAX_CROSS_ENTROPY:
        widths = widths[:-1] + (3,)
    activations = tuple(ACTIVATIONS[(seed + ell) % len(ACTIVATIONS)]
                        for ell in range(depth))
    network = Network(widths, activations, loss)
    parameters = Parameters(
        tuple(rng.standard_normal(network.weight_shape(ell))
              for ell in range(1, depth + 1)),
        tuple(0.5 * rng.standard_normal(widths[ell]) for ell in range(1, depth + 1)))
    batch = 2 + seed % 3
    inputs = rng.standard_normal((batch, widths[0]))
    targets = (rng.uniform(0.0, 1.0, (batch, widths[-1]))
               if loss is Loss.SOFTMAX_CROSS_ENTROPY
               else rng.standard_normal((batch, widths[-1])))
    return network, parameters, inputs, targets


def _assert_relatively_close(actual: FloatArray, expected: FloatArray,
                             relative: float) -> None:
    scale = float(np.max(np.abs(expected)))
    gap = float(np.max(np.abs(actual - expected)))
    assert gap <= relative * scale, (gap, scale)


@pytest.mark.parametrize("seed", range(14))
def test_jacobian_product_agrees_with_the_oracle_on_random_networks(
        seed: int) -> None:
    # Arrange
    network, parameters, inputs, targets = _random_case(seed)
    expected = impl.MpmathBackend().loss_and_gradients(network, parameters, inputs,
                                                       targets)

    # Act
    answer = impl.JacobianProductBackend().loss_and_gradients(
        network, parameters, inputs, targets)

    # Assert
    assert abs(answer.loss - expected.loss) <= 1e-12 * abs(expected.loss)
    for ell in range(network.depth):
        assert answer.gradients.weights[ell].shape == network.weight_shape(ell + 1)
        _assert_relatively_close(answer.gradients.weights[ell],
                                 expected.gradients.weights[ell], 1e-12)
        _assert_relatively_close(answer.gradients.biases[ell],
                                 expected.gradients.biases[ell], 1e-12)


def test_random_cases_use_every_activation_both_losses_and_depth_four() -> None:
    # Arrange
    cases = [_random_case(seed) for seed in range(14)]

    # Act
    networks = [network for network, *_ in cases]

    # Assert
    assert {a for n in networks for a in n.activations} == set(Activation)
    assert {n.loss for n in networks} == set(Loss)
    assert max(n.depth for n in networks) == 4


def test_jacobian_product_gradient_of_a_two_layer_chain_matches_hand_values() -> None:
    # Arrange: x = 1, z_1 = 2, a_1 = 2, z_2 = a_2 = 3 * 2 - 1 = 5, y = 1,
    # loss = (5 - 1)^2 / 2 = 8. dloss/da_2 = 4, so dW_2 = 4 * a_1 = 8,
    # db_2 = 4, dloss/da_1 = 3 * 4 = 12, dW_1 = 12 * x = 12, db_1 = 12.
    network = Network((1, 1, 1), (Activation.RELU, Activation.IDENTITY),
                      Loss.SQUARED_ERROR)
    parameters = Parameters((np.array([[2.0]]), np.array([[3.0]])),
                            (np.array([0.0]), np.array([-1.0])))

    # Act
    answer = impl.JacobianProductBackend().loss_and_gradients(
        network, parameters, np.array([[1.0]]), np.array([[1.0]]))

    # Assert
    assert answer.loss == 8.0
    assert [w.tolist() for w in answer.gradients.weights] == [[[12.0]], [[8.0]]]
    assert [b.tolist() for b in answer.gradients.biases] == [[12.0], [4.0]]


def test_jacobian_product_counts_every_explicit_matrix_product() -> None:
    # Arrange: widths 1-2-1, one example, one operation per multiply-add.
    # Forward: layer 1: W x 2, z 2, a 2; layer 2: 2, 1, 1: total 10 (the loss
    # is not counted by this backend).
    # Backward, layer 1: D_1 (2x2) times the 2x2 Kronecker factor 8, the chain
    # D_2 W_2 (1x1 by 1x2) 2, times M_W (1x2 by 2x2) 4, times M_b 4, then
    # J_loss M_W (1x1 by 1x2) 2 and J_loss M_b 2: 22. Layer 2: D_2 kron
    # (1x1 by 1x2) 2, J_loss M_W 2, J_loss M_b 1: 5. Total 27.
    network = Network((1, 2, 1), (Activation.TANH, Activation.IDENTITY),
                      Loss.SQUARED_ERROR)
    parameters = Parameters((np.ones((2, 1)), np.ones((1, 2))),
                            (np.zeros(2), np.zeros(1)))
    counter = impl.OperationCounter()

    # Act
    impl.JacobianProductBackend(counter=counter).loss_and_gradients(
        network, parameters, np.array([[0.5]]), np.array([[0.0]]))

    # Assert
    assert (counter.forward, counter.backward) == (10, 27)


def test_jacobian_product_refuses_a_300_wide_layer_before_computing() -> None:
    # Arrange: the Kronecker factor of layer 1 would have 300^2 * 300 = 2.7e7
    # entries, over the limit of 2^24.
    network = Network((300, 300, 1), (Activation.TANH, Activation.IDENTITY),
                      Loss.SQUARED_ERROR)
    parameters = Parameters((np.zeros((300, 300)), np.zeros((1, 300))),
                            (np.zeros(300), np.zeros(1)))

    # Act
    with pytest.raises(BackendLimitError) as raised:
        impl.JacobianProductBackend().loss_and_gradients(
            network, parameters, np.zeros((1, 300)), np.zeros((1, 1)))

    # Assert
    message = str(raised.value)
    assert "layer 1 (300 x 300)" in message
    assert "27000000 entries" in message
    assert "reference backend" in message
    assert isinstance(raised.value, ValueError)


def test_jacobian_product_accepts_a_layer_whose_kronecker_factor_is_small() -> None:
    # Arrange: 300 inputs into 2 units: 2^2 * 300 = 1200 entries.
    network = Network((300, 2), (Activation.IDENTITY,), Loss.SQUARED_ERROR)
    parameters = Parameters((np.ones((2, 300)),), (np.zeros(2),))
    x = np.full((1, 300), 0.01)

    # Act: z = 300 * 0.01 = 3 in each unit; loss = 2 * 9 / 2 = 9;
    # dW = (a - y) x^T = 3 * 0.01 everywhere.
    answer = impl.JacobianProductBackend().loss_and_gradients(
        network, parameters, x, np.zeros((1, 2)))

    # Assert
    assert answer.loss == pytest.approx(9.0, rel=1e-14)
    assert np.allclose(answer.gradients.weights[0], 0.03, rtol=1e-14, atol=0)


def test_jacobian_product_agrees_with_the_reference_backend() -> None:
    # Arrange
    network, parameters, inputs, targets = _random_case(11)
    reference = impl.ReferenceBackend().loss_and_gradients(network, parameters,
                                                           inputs, targets)

    # Act
    answer = impl.JacobianProductBackend().loss_and_gradients(
        network, parameters, inputs, targets)

    # Assert
    assert answer.loss == pytest.approx(reference.loss, rel=1e-13)
    for ell in range(network.depth):
        _assert_relatively_close(answer.gradients.weights[ell],
                                 reference.gradients.weights[ell], 1e-13)
        _assert_relatively_close(answer.gradients.biases[ell],
                                 reference.gradients.biases[ell], 1e-13)


def test_jacobian_product_declares_no_capabilities() -> None:
    # Arrange
    backend = impl.JacobianProductBackend()

    # Act
    is_backend = isinstance(backend, impl.Backend)

    # Assert
    assert is_backend
    assert backend.name == "jacobian-product"
    assert backend.capabilities == frozenset()
