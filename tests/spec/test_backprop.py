"""The delta recursion and the batch mean, on hand-computed networks.

Network 2-2-1, leaky relu then identity, squared error:
W_1 = [[1, 1], [2, -1]], b_1 = (-1, 0), W_2 = [[3, 4]], b_2 = (-1),
x = (1, 3), y = (0).

Forward: z_1 = (1 + 3 - 1, 2 - 3) = (3, -1), a_1 = (3, -0.01),
z_2 = 9 - 0.04 - 1 = 7.96, loss = 7.96^2 / 2. (x = (1, 2) would put unit 1 of
layer 1 exactly on the kink: z_1[1] = 2 - 2 = 0.)
Backward: delta_2 = 7.96; W_2^T delta_2 = (23.88, 31.84);
delta_1 = (1, 0.01) * (23.88, 31.84) = (23.88, 0.3184).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from spec import Activation, ExactArray, Holds, Loss, Network, NotApplicable, Violated
from spec._verdict import to_exact
from spec.backprop import (
    BATCH_ID,
    DELTA_ID,
    check_batch_mean,
    check_delta_recursion,
    deltas,
    gradients_by_backprop,
)
from spec.conventions import ExactForward, forward_exact
from spec.gradient_product import gradients_by_jacobian_product

NETWORK = Network((2, 2, 1), (Activation.LEAKY_RELU, Activation.IDENTITY),
                  Loss.SQUARED_ERROR)
WEIGHTS = [np.array([[1.0, 1.0], [2.0, -1.0]]), np.array([[3.0, 4.0]])]
BIASES = [np.array([-1.0, 0.0]), np.array([-1.0])]
X, Y = np.array([1.0, 3.0]), np.array([0.0])
DELTA_1 = [23.88, 0.3184]
DELTA_2 = [7.96]
# dW_l = delta_l a_{l-1}^T.
DW = [np.array([[23.88, 3 * 23.88], [0.3184, 3 * 0.3184]]),
      np.array([[7.96 * 3, 7.96 * -0.01]])]
DB = [np.array(DELTA_1), np.array(DELTA_2)]
BOUNDS = [1e-12, 1e-12]


def _forward() -> tuple[list[ExactArray], ExactForward]:
    W = [to_exact(w) for w in WEIGHTS]
    return W, forward_exact(NETWORK, W, [to_exact(b) for b in BIASES], to_exact(X),
                            to_exact(Y))


def test_deltas_follow_the_recursion_by_hand() -> None:
    # Arrange
    with mpmath.workdps(30):
        W, forward = _forward()

        # Act
        result = deltas(NETWORK, W, forward, to_exact(Y))

    # Assert
    assert [float(v) for v in result[1]] == pytest.approx(DELTA_2, rel=1e-15)
    assert [float(v) for v in result[0]] == pytest.approx(DELTA_1, rel=1e-15)


def test_backprop_gradients_are_delta_times_the_previous_activation() -> None:
    # Arrange
    with mpmath.workdps(30):
        W, forward = _forward()

        # Act
        weight_gradients, bias_gradients = gradients_by_backprop(
            NETWORK, W, forward, to_exact(Y))

    # Assert
    for ell in range(2):
        assert np.allclose(np.array(weight_gradients[ell], dtype=float), DW[ell],
                           rtol=1e-15, atol=0)
        assert np.allclose(np.array(bias_gradients[ell], dtype=float), DB[ell],
                           rtol=1e-15, atol=0)


def test_backprop_and_the_explicit_product_agree_on_a_deeper_network() -> None:
    # Arrange: two formulas of the same gradient (theorems 4 and 5).
    network = Network((3, 4, 3, 2, 2), (Activation.ELU, Activation.TANH,
                                        Activation.SOFTPLUS, Activation.SIGMOID),
                      Loss.SOFTMAX_CROSS_ENTROPY)
    rng = np.random.default_rng(11)
    with mpmath.workdps(40):
        W = [to_exact(rng.standard_normal(network.weight_shape(ell)))
             for ell in range(1, 5)]
        b = [to_exact(rng.standard_normal(network.widths[ell])) for ell in range(1, 5)]
        y = to_exact([0.7, 0.6])
        forward = forward_exact(network, W, b, to_exact(rng.standard_normal(3)), y)

        # Act
        by_backprop = gradients_by_backprop(network, W, forward, y)
        by_product = gradients_by_jacobian_product(network, W, forward, y)

        # Assert
        for ell in range(4):
            for got, want in ((by_backprop[0][ell], by_product[0][ell]),
                              (by_backprop[1][ell], by_product[1][ell])):
                for index in np.ndindex(np.shape(want)):
                    assert abs(got[index] - want[index]) <= \
                        mpmath.mpf("1e-35") * (1 + abs(want[index]))


def test_delta_recursion_holds_for_the_hand_computed_gradients() -> None:
    # Arrange
    claimed_W, claimed_b = DW, DB

    # Act
    with mpmath.workdps(30):
        verdict = check_delta_recursion(NETWORK, WEIGHTS, BIASES, X, Y, claimed_W,
                                        claimed_b, weight_bounds=BOUNDS,
                                        bias_bounds=BOUNDS)

    # Assert
    assert isinstance(verdict, Holds)
    assert verdict.result_id == DELTA_ID
    assert verdict.compared == 9


def test_delta_recursion_names_a_gradient_that_forgot_the_leaky_slope() -> None:
    # Arrange: delta_1[1] taken with slope 1 instead of 0.01 gives 31.84.
    claimed_b = [np.array([23.88, 31.84]), DB[1]]

    # Act
    with mpmath.workdps(30):
        verdict = check_delta_recursion(NETWORK, WEIGHTS, BIASES, X, Y, DW, claimed_b,
                                        weight_bounds=BOUNDS, bias_bounds=BOUNDS)

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.result_id == DELTA_ID
    assert verdict.location.quantity == "bias_gradient"
    assert verdict.location.layer_index == 1
    assert verdict.location.index == (1,)
    assert verdict.expected == pytest.approx(0.3184, rel=1e-15)


def test_delta_recursion_names_a_transposed_weight_gradient() -> None:
    # Arrange: layer 1's gradient transposed (a_0 delta_1^T instead of
    # delta_1 a_0^T): its off-diagonal entries 3 * 23.88 and 0.3184 swap.
    claimed_W = [DW[0].T.copy(), DW[1]]

    # Act
    with mpmath.workdps(30):
        verdict = check_delta_recursion(NETWORK, WEIGHTS, BIASES, X, Y, claimed_W,
                                        DB, weight_bounds=BOUNDS, bias_bounds=BOUNDS)

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location.quantity == "weight_gradient"
    assert verdict.location.layer_index == 1
    assert verdict.location.index in {(0, 1), (1, 0)}
    assert verdict.violating == 2


def test_delta_recursion_is_not_applicable_at_a_leaky_relu_kink() -> None:
    # Arrange: x = (1, 2) gives z_1[1] = 2 - 2 + 0 = 0.
    x = np.array([1.0, 2.0])

    # Act
    with mpmath.workdps(30):
        verdict = check_delta_recursion(NETWORK, WEIGHTS, BIASES, x, Y, DW, DB,
                                        weight_bounds=BOUNDS, bias_bounds=BOUNDS)

    # Assert
    assert isinstance(verdict, NotApplicable)
    assert verdict.result_id == DELTA_ID
    assert "layer 1 unit 1 has z = 0" in verdict.reason


# Batch mean: a = w x with w = 1, b = 0 on two examples, squared error.
# Example 1: x = 2, y = 0: loss 2, dW = (2 - 0) 2 = 4, db = 2.
# Example 2: x = 1, y = 3: loss 2, dW = (1 - 3) 1 = -2, db = -2.
# Means: loss 2, dW 1, db 0.
EXAMPLE_LOSSES = [mpmath.mpf(2), mpmath.mpf(2)]
EXAMPLE_W = [[to_exact([[4.0]])], [to_exact([[-2.0]])]]
EXAMPLE_B = [[to_exact([2.0])], [to_exact([-2.0])]]


def test_batch_mean_holds_for_the_means_of_the_examples() -> None:
    # Arrange
    claimed_W, claimed_b = [np.array([[1.0]])], [np.array([0.0])]

    # Act
    verdict = check_batch_mean(EXAMPLE_LOSSES, EXAMPLE_W, EXAMPLE_B, 2.0, claimed_W,
                               claimed_b, loss_bound=1e-15, weight_bounds=[1e-15],
                               bias_bounds=[1e-15])

    # Assert
    assert isinstance(verdict, Holds)
    assert verdict.result_id == BATCH_ID
    assert verdict.compared == 3


def test_batch_mean_names_the_loss_when_it_is_summed_instead_of_averaged() -> None:
    # Arrange
    claimed_W, claimed_b = [np.array([[1.0]])], [np.array([0.0])]

    # Act
    verdict = check_batch_mean(EXAMPLE_LOSSES, EXAMPLE_W, EXAMPLE_B, 4.0, claimed_W,
                               claimed_b, loss_bound=1e-15, weight_bounds=[1e-15],
                               bias_bounds=[1e-15])

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location.quantity == "loss"
    assert verdict.location.layer_index is None
    assert (verdict.expected, verdict.actual) == (2.0, 4.0)


def test_batch_mean_names_a_summed_weight_gradient() -> None:
    # Arrange: the sum 4 - 2 = 2 instead of the mean 1.
    claimed_W, claimed_b = [np.array([[2.0]])], [np.array([0.0])]

    # Act
    verdict = check_batch_mean(EXAMPLE_LOSSES, EXAMPLE_W, EXAMPLE_B, 2.0, claimed_W,
                               claimed_b, loss_bound=1e-15, weight_bounds=[1e-15],
                               bias_bounds=[1e-15])

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location.quantity == "weight_gradient"
    assert verdict.location.layer_index == 1
    assert verdict.location.index == (0, 0)
    assert (verdict.expected, verdict.actual) == (1.0, 2.0)
