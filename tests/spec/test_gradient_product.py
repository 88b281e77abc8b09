"""The gradient as a product of explicit Jacobians, on a hand-computed network.

Network 2-2-1, relu then identity, squared error:
W_1 = [[1, 1], [1, -1]], b_1 = (-1, 0), W_2 = [[3, 4]], b_2 = (0.5),
x = (1, 2), y = (0.5).

Forward: z_1 = (1 + 2 - 1, 1 - 2) = (2, -1), a_1 = (2, 0), z_2 = a_2 = 6.5,
loss = (6.5 - 0.5)^2 / 2 = 18.
Backward: dloss/da_2 = 6, so dW_2 = 6 a_1^T = [[12, 0]], db_2 = (6);
dloss/da_1 = W_2^T 6 = (18, 24), times relu'(z_1) = (1, 0) gives (18, 0),
so dW_1 = (18, 0) x^T = [[18, 36], [0, 0]], db_1 = (18, 0).
"""

from __future__ import annotations

from typing import Any

import mpmath
import numpy as np

from spec import Activation, Holds, Loss, Network, NotApplicable, Violated
from spec._verdict import to_exact
from spec.conventions import forward_exact
from spec.gradient_product import (
    RESULT_ID,
    check_gradient_product,
    first_kink,
    gradients_by_jacobian_product,
)

NETWORK = Network((2, 2, 1), (Activation.RELU, Activation.IDENTITY),
                  Loss.SQUARED_ERROR)
WEIGHTS = [np.array([[1.0, 1.0], [1.0, -1.0]]), np.array([[3.0, 4.0]])]
BIASES = [np.array([-1.0, 0.0]), np.array([0.5])]
X, Y = np.array([1.0, 2.0]), np.array([0.5])
DW = [np.array([[18.0, 36.0], [0.0, 0.0]]), np.array([[12.0, 0.0]])]
DB = [np.array([18.0, 0.0]), np.array([6.0])]
BOUNDS = [1e-12, 1e-12]


def test_jacobian_product_gives_the_hand_computed_gradients() -> None:
    # Arrange
    W = [to_exact(w) for w in WEIGHTS]
    forward = forward_exact(NETWORK, W, [to_exact(b) for b in BIASES], to_exact(X),
                            to_exact(Y))

    # Act
    weight_gradients, bias_gradients = gradients_by_jacobian_product(
        NETWORK, W, forward, to_exact(Y))

    # Assert
    assert forward.loss == 18
    assert [[[float(v) for v in row] for row in g] for g in weight_gradients] == \
        [w.tolist() for w in DW]
    assert [[float(v) for v in g] for g in bias_gradients] == [b.tolist() for b in DB]


def test_gradient_product_holds_for_the_hand_computed_gradients() -> None:
    # Arrange
    claimed_W, claimed_b = [w.copy() for w in DW], [b.copy() for b in DB]

    # Act
    verdict = check_gradient_product(NETWORK, WEIGHTS, BIASES, X, Y, claimed_W,
                                     claimed_b, weight_bounds=BOUNDS,
                                     bias_bounds=BOUNDS)

    # Assert
    assert isinstance(verdict, Holds)
    assert verdict.result_id == RESULT_ID
    assert verdict.compared == 4 + 2 + 2 + 1
    assert verdict.worst_error_in_bounds == 0.0


def test_gradient_product_names_layer_parameter_and_entry_of_a_wrong_weight(
        ) -> None:
    # Arrange: dW_2[0, 1] should be 6 * a_1[1] = 0.
    claimed_W = [DW[0], np.array([[12.0, 1.0]])]

    # Act
    verdict = check_gradient_product(NETWORK, WEIGHTS, BIASES, X, Y, claimed_W, DB,
                                     weight_bounds=BOUNDS, bias_bounds=BOUNDS)

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location.quantity == "weight_gradient"
    assert verdict.location.layer_index == 2
    assert verdict.location.index == (0, 1)
    assert (verdict.expected, verdict.actual) == (0.0, 1.0)
    assert verdict.violating == 1


def test_gradient_product_names_a_wrong_bias_in_the_first_layer() -> None:
    # Arrange: passing the gradient through the dead unit (relu' taken as 1)
    # claims db_1[1] = 24.
    claimed_b = [np.array([18.0, 24.0]), DB[1]]

    # Act
    verdict = check_gradient_product(NETWORK, WEIGHTS, BIASES, X, Y, DW, claimed_b,
                                     weight_bounds=BOUNDS, bias_bounds=BOUNDS)

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location.quantity == "bias_gradient"
    assert verdict.location.layer_index == 1
    assert verdict.location.index == (1,)
    assert verdict.expected == 0.0


def test_gradient_product_reports_the_largest_violation_across_layers() -> None:
    # Arrange: an error of 1 in layer 2 and of 100 in layer 1.
    claimed_W = [np.array([[118.0, 36.0], [0.0, 0.0]]), np.array([[13.0, 0.0]])]

    # Act
    verdict = check_gradient_product(NETWORK, WEIGHTS, BIASES, X, Y, claimed_W, DB,
                                     weight_bounds=BOUNDS, bias_bounds=BOUNDS)

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location.layer_index == 1
    assert verdict.location.index == (0, 0)
    assert verdict.absolute_error == 100.0


def test_gradient_product_is_not_applicable_when_a_relu_sits_on_its_kink() -> None:
    # Arrange: b_1 = (-3, 0) makes z_1 = (0, -1).
    biases = [np.array([-3.0, 0.0]), BIASES[1]]

    # Act
    verdict = check_gradient_product(NETWORK, WEIGHTS, biases, X, Y, DW, DB,
                                     weight_bounds=BOUNDS, bias_bounds=BOUNDS)

    # Assert
    assert isinstance(verdict, NotApplicable)
    assert verdict.result_id == RESULT_ID
    assert "layer 1 unit 0 has z = 0" in verdict.reason


def test_first_kink_finds_the_first_relu_unit_at_zero_only() -> None:
    # Arrange
    W = [to_exact(w) for w in WEIGHTS]
    at_kink = forward_exact(NETWORK, W, [to_exact([-1.0, 1.0]), to_exact([0.5])],
                            to_exact(X), to_exact(Y))
    smooth = forward_exact(NETWORK, W, [to_exact(b) for b in BIASES], to_exact(X),
                           to_exact(Y))

    # Act
    found = first_kink(NETWORK, at_kink)
    none = first_kink(NETWORK, smooth)

    # Assert: z_1 = (2, 1 - 2 + 1) = (2, 0).
    assert found == (1, 1)
    assert none is None


def test_an_identity_unit_at_zero_is_not_a_kink() -> None:
    # Arrange: z_2 = 3*2 + 4*0 - 6 = 0 in an identity layer.
    W = [to_exact(w) for w in WEIGHTS]
    forward = forward_exact(NETWORK, W, [to_exact(BIASES[0]), to_exact([-6.0])],
                            to_exact(X), to_exact(Y))

    # Act
    found = first_kink(NETWORK, forward)

    # Assert
    assert forward.z[1][0] == 0
    assert found is None


def test_jacobian_product_matches_a_central_difference_on_a_deeper_network() -> None:
    # Arrange: 2-3-2-2, tanh, softplus, sigmoid, cross-entropy; central
    # difference of the example loss in one weight of each layer.
    network = Network((2, 3, 2, 2), (Activation.TANH, Activation.SOFTPLUS,
                                     Activation.SIGMOID), Loss.SOFTMAX_CROSS_ENTROPY)
    rng = np.random.default_rng(3)
    weights = [rng.standard_normal(network.weight_shape(ell)) for ell in (1, 2, 3)]
    biases = [rng.standard_normal(network.widths[ell]) for ell in (1, 2, 3)]
    x, y = rng.standard_normal(2), np.array([0.3, 0.4])

    def loss_at(ell: int, i: int, j: int, h: Any) -> Any:
        W = [to_exact(w) for w in weights]
        W[ell][i, j] = W[ell][i, j] + h
        return forward_exact(network, W, [to_exact(b) for b in biases],
                             to_exact(x), to_exact(y)).loss

    with mpmath.workdps(50):
        h = mpmath.mpf("1e-15")
        expected = [(loss_at(ell, 1, 0, h) - loss_at(ell, 1, 0, -h)) / (2 * h)
                    for ell in range(3)]
        W = [to_exact(w) for w in weights]
        forward = forward_exact(network, W, [to_exact(b) for b in biases],
                                to_exact(x), to_exact(y))

        # Act
        weight_gradients, _ = gradients_by_jacobian_product(network, W, forward,
                                                            to_exact(y))

        # Assert
        for ell in range(3):
            gap = abs(weight_gradients[ell][1, 0] - expected[ell])
            assert gap < mpmath.mpf("1e-25") * abs(expected[ell])
