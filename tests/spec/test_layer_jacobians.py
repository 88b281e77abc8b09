"""Jacobians of one layer's pieces: affine map, activation, softmax."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from spec import Activation, Holds, NotApplicable, Violated
from spec._verdict import to_exact
from spec.layer_jacobians import (
    ACTIVATION_ID,
    AFFINE_ID,
    SOFTMAX_ID,
    affine_jacobians,
    check_activation_layer,
    check_affine_layer,
    check_softmax_layer,
    softmax_jacobian,
)


def test_affine_jacobians_are_w_the_identity_and_the_kronecker_factor() -> None:
    # Arrange
    W = to_exact([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    a = to_exact([7.0, 8.0])

    # Act
    J_a, J_b, J_W = affine_jacobians(W, a)

    # Assert: dz_i/dW[i, j] = a_j sits in column i + 3 j.
    assert [[float(v) for v in row] for row in J_a] == [[1, 2], [3, 4], [5, 6]]
    assert [[float(v) for v in row] for row in J_b] == [[1, 0, 0], [0, 1, 0],
                                                        [0, 0, 1]]
    assert [[float(v) for v in row] for row in J_W] == [
        [7, 0, 0, 8, 0, 0],
        [0, 7, 0, 0, 8, 0],
        [0, 0, 7, 0, 0, 8],
    ]


W_2x3 = np.array([[1.0, -1.0, 2.0], [0.5, 3.0, -2.0]])
A_3 = np.array([1.0, 2.0, 3.0])
G_2 = to_exact([0.5, -2.0])
# dW = g a^T, db = g.
DW = np.array([[0.5, 1.0, 1.5], [-2.0, -4.0, -6.0]])
DB = np.array([0.5, -2.0])


def test_affine_layer_holds_for_the_outer_product_gradient() -> None:
    # Arrange
    claimed_W, claimed_b = DW.copy(), DB.copy()

    # Act
    verdict = check_affine_layer(W_2x3, A_3, G_2, claimed_W, claimed_b,
                                 weight_bound=1e-15, bias_bound=1e-15)

    # Assert
    assert isinstance(verdict, Holds)
    assert verdict.result_id == AFFINE_ID
    assert verdict.compared == 8
    assert verdict.worst_error_in_bounds == 0.0


def test_affine_layer_names_a_wrong_weight_gradient_entry() -> None:
    # Arrange
    claimed_W = DW.copy()
    claimed_W[1, 2] = -5.0

    # Act
    verdict = check_affine_layer(W_2x3, A_3, G_2, claimed_W, DB,
                                 weight_bound=1e-12, bias_bound=1e-12, layer_index=3)

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location.quantity == "weight_gradient"
    assert verdict.location.layer_index == 3
    assert verdict.location.index == (1, 2)
    assert (verdict.expected, verdict.actual) == (-6.0, -5.0)
    assert verdict.location.describe() == "weight_gradient W_3[1, 2]"


def test_affine_layer_rejects_a_weight_gradient_unstacked_by_rows() -> None:
    # Arrange: vec(dW) reshaped row by row instead of column by column.
    claimed_W = DW.reshape(-1, order="F").reshape(2, 3)

    # Act
    verdict = check_affine_layer(W_2x3, A_3, G_2, claimed_W, DB,
                                 weight_bound=1e-12, bias_bound=1e-12)

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location.quantity == "weight_gradient"
    assert verdict.violating == 4


def test_affine_layer_names_a_wrong_bias_gradient_entry() -> None:
    # Arrange
    claimed_b = np.array([0.25, -2.0])

    # Act
    verdict = check_affine_layer(W_2x3, A_3, G_2, DW, claimed_b,
                                 weight_bound=1e-12, bias_bound=1e-12, layer_index=2)

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location.quantity == "bias_gradient"
    assert verdict.location.layer_index == 2
    assert verdict.location.index == (0,)
    assert (verdict.expected, verdict.actual) == (0.5, 0.25)


def test_activation_layer_holds_for_tanh_prime_times_upstream() -> None:
    # Arrange: tanh'(z) = 1 - tanh(z)^2.
    z = [0.5, -1.0]
    upstream = to_exact([2.0, 3.0])
    claimed = [2.0 * (1 - math.tanh(0.5) ** 2), 3.0 * (1 - math.tanh(-1.0) ** 2)]

    # Act
    with mpmath.workdps(30):
        verdict = check_activation_layer(Activation.TANH, z, upstream, claimed,
                                         bound=1e-15)

    # Assert
    assert isinstance(verdict, Holds)
    assert verdict.result_id == ACTIVATION_ID
    assert verdict.compared == 2


def test_activation_layer_names_the_unit_with_the_wrong_derivative() -> None:
    # Arrange: sigmoid at z = (0, 2): sigma'(0) = 1/4 is right; unit 1 uses
    # sigma(2) instead of sigma'(2).
    upstream = to_exact([4.0, 1.0])
    claimed = [1.0, 1 / (1 + math.exp(-2.0))]

    # Act
    with mpmath.workdps(30):
        verdict = check_activation_layer(Activation.SIGMOID, [0.0, 2.0], upstream,
                                         claimed, bound=1e-15, layer_index=2)

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location.layer_index == 2
    assert verdict.location.index == (1,)
    assert verdict.location.quantity == "bias_gradient"
    s = 1 / (1 + math.exp(-2.0))
    assert verdict.expected == pytest.approx(s * (1 - s), rel=1e-15)


def test_activation_layer_is_not_applicable_at_a_relu_kink_and_names_the_left_slope(
        ) -> None:
    # Arrange: z_0 = 0; the claimed value 0 * 2 is relu'(0) = 0 (left).
    upstream = to_exact([2.0, 3.0])

    # Act
    with mpmath.workdps(30):
        verdict = check_activation_layer(Activation.RELU, [0.0, 1.5], upstream,
                                         [0.0, 3.0], bound=1e-15, layer_index=4)

    # Assert
    assert isinstance(verdict, NotApplicable)
    assert verdict.result_id == ACTIVATION_ID
    assert verdict.reason == ("relu is not differentiable at z = 0, and layer 4 "
                              "has z[0] = 0")
    assert verdict.convention.startswith("relu'(0) = ")
    assert float(verdict.convention.removeprefix("relu'(0) = ")) == 0.0


def test_relu_kink_convention_reads_exactly_relu_prime_of_zero_equals_zero(
        ) -> None:
    # Arrange
    upstream = to_exact([2.0, 3.0])

    # Act
    with mpmath.workdps(30):
        verdict = check_activation_layer(Activation.RELU, [0.0, 1.5], upstream,
                                         [0.0, 3.0], bound=1e-15)

    # Assert
    assert isinstance(verdict, NotApplicable)
    assert verdict.convention == "relu'(0) = 0"


def test_activation_layer_names_the_right_slope_when_the_claim_uses_it() -> None:
    # Arrange: the claim 1 * 2 at the kink is the right derivative.
    upstream = to_exact([2.0, 3.0])

    # Act
    with mpmath.workdps(30):
        verdict = check_activation_layer(Activation.RELU, [0.0, 1.5], upstream,
                                         [2.0, 3.0], bound=1e-15)

    # Assert
    assert isinstance(verdict, NotApplicable)
    assert verdict.convention == "relu'(0) = 1"


def test_activation_layer_names_the_leaky_relu_left_slope() -> None:
    # Arrange: z_1 = 0 and the claim there is 0.01 * 2.
    upstream = to_exact([3.0, 2.0])

    # Act
    with mpmath.workdps(30):
        verdict = check_activation_layer(Activation.LEAKY_RELU, [1.5, 0.0],
                                         upstream, [3.0, 0.02], bound=1e-15)

    # Assert
    assert isinstance(verdict, NotApplicable)
    assert "z[1] = 0" in verdict.reason
    assert verdict.convention == "leaky_relu'(0) = 0.01"


def test_activation_layer_names_no_convention_when_neither_side_matches() -> None:
    # Arrange
    upstream = to_exact([2.0, 3.0])

    # Act
    with mpmath.workdps(30):
        verdict = check_activation_layer(Activation.RELU, [0.0, 1.5], upstream,
                                         [0.7, 3.0], bound=1e-15)

    # Assert
    assert isinstance(verdict, NotApplicable)
    assert verdict.convention == ""


def test_elu_at_zero_is_differentiable_and_judged() -> None:
    # Arrange: elu'(0) = 1 from both sides with alpha = 1.
    upstream = to_exact([2.0])

    # Act
    with mpmath.workdps(30):
        held = check_activation_layer(Activation.ELU, [0.0], upstream, [2.0],
                                      bound=1e-15)
        wrong = check_activation_layer(Activation.ELU, [0.0], upstream, [0.0],
                                       bound=1e-15)

    # Assert
    assert isinstance(held, Holds)
    assert isinstance(wrong, Violated)


def test_softmax_jacobian_is_diag_p_minus_p_p_transposed() -> None:
    # Arrange: logits (0, log 3) give p = (1/4, 3/4); p_i - p_i^2 = 3/16 and
    # -p_0 p_1 = -3/16.
    with mpmath.workdps(30):
        logits = [mpmath.mpf(0), mpmath.log(3)]

        # Act
        J = softmax_jacobian(logits)

        # Assert
        expected = [[3 / 16, -3 / 16], [-3 / 16, 3 / 16]]
        for i in range(2):
            for j in range(2):
                assert abs(J[i, j] - expected[i][j]) < mpmath.mpf("1e-29")


def test_softmax_layer_holds_for_the_transposed_jacobian_times_upstream() -> None:
    # Arrange: logits (0, 0, log 2) give p = (1/4, 1/4, 1/2). With upstream
    # e_2: J^T e_2 = row 2 of J = (-p_2 p_0, -p_2 p_1, p_2 - p_2^2)
    # = (-1/8, -1/8, 1/4).
    logits = [0.0, 0.0, math.log(2.0)]

    # Act
    with mpmath.workdps(30):
        verdict = check_softmax_layer(logits, to_exact([0.0, 0.0, 1.0]),
                                      [-0.125, -0.125, 0.25], bound=1e-15)

    # Assert
    assert isinstance(verdict, Holds)
    assert verdict.result_id == SOFTMAX_ID


def test_softmax_layer_names_the_wrong_entry() -> None:
    # Arrange: forgetting the -p p^T term gives (0, 0, 1/2).
    logits = [0.0, 0.0, math.log(2.0)]

    # Act
    with mpmath.workdps(30):
        verdict = check_softmax_layer(logits, to_exact([0.0, 0.0, 1.0]),
                                      [-0.125, -0.125, 0.5], bound=1e-15,
                                      layer_index=3)

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location.index == (2,)
    assert verdict.location.layer_index == 3
    assert verdict.expected == pytest.approx(0.25, rel=1e-15)
