"""Gradients of the squared error and of softmax cross-entropy."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import mpmath
import numpy as np
import pytest

from spec import Holds, Loss, Violated
from spec._verdict import to_exact
from spec.loss_gradient import (
    CROSS_ENTROPY_ID,
    SQUARED_ERROR_ID,
    check_loss_gradient,
    check_loss_gradient_through_weights,
    loss_gradient,
)


def test_squared_error_gradient_is_a_minus_y() -> None:
    # Arrange
    a, y = to_exact([3.0, -1.0]), to_exact([1.0, 0.5])

    # Act
    gradient = loss_gradient(Loss.SQUARED_ERROR, list(a), list(y))

    # Assert
    assert [float(g) for g in gradient] == [2.0, -1.5]


def test_cross_entropy_gradient_scales_softmax_by_the_target_sum() -> None:
    # Arrange: softmax(0, 0) = (1/2, 1/2), sum y = 3: (3/2 - 1, 3/2 - 2).
    a, y = to_exact([0.0, 0.0]), to_exact([1.0, 2.0])

    # Act
    gradient = loss_gradient(Loss.SOFTMAX_CROSS_ENTROPY, list(a), list(y))

    # Assert
    assert [float(g) for g in gradient] == [0.5, -0.5]


def _cross_entropy(a: Sequence[Any], y: Sequence[Any]) -> Any:
    """-sum y_i log(e^{a_i} / sum_j e^{a_j}), written out here."""
    total = sum((mpmath.exp(v) for v in a), mpmath.mpf(0))
    return -sum((yi * mpmath.log(mpmath.exp(ai) / total) for ai, yi in zip(a, y)),
                mpmath.mpf(0))


def test_cross_entropy_gradient_equals_central_differences_of_the_loss() -> None:
    # Arrange: targets summing to 1.5.
    a_values, y_values = [0.3, -1.2, 2.0], [0.2, 0.9, 0.4]
    with mpmath.workdps(50):
        a = [mpmath.mpf(v) for v in a_values]
        y = [mpmath.mpf(v) for v in y_values]
        h = mpmath.mpf("1e-15")
        expected = []
        for i in range(3):
            up = [v + h if k == i else v for k, v in enumerate(a)]
            down = [v - h if k == i else v for k, v in enumerate(a)]
            expected.append((_cross_entropy(up, y) - _cross_entropy(down, y)) / (2 * h))

        # Act
        gradient = loss_gradient(Loss.SOFTMAX_CROSS_ENTROPY, a, y)

        # Assert
        for got, want in zip(gradient, expected):
            assert abs(got - want) < mpmath.mpf("1e-25")


def test_check_squared_error_holds_for_a_minus_y() -> None:
    # Arrange
    a, y = [3.0, -1.0], [1.0, 0.5]

    # Act
    verdict = check_loss_gradient(Loss.SQUARED_ERROR, a, y, [2.0, -1.5], bound=0.0)

    # Assert
    assert isinstance(verdict, Holds)
    assert verdict.result_id == SQUARED_ERROR_ID
    assert verdict.compared == 2


def test_check_squared_error_names_the_entry_of_a_sign_flipped_gradient() -> None:
    # Arrange: y - a instead of a - y, right only where a = y.
    a, y = [1.0, 3.0], [1.0, 0.5]

    # Act
    verdict = check_loss_gradient(Loss.SQUARED_ERROR, a, y, [0.0, -2.5],
                                  bound=1e-15, layer_index=3)

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.result_id == SQUARED_ERROR_ID
    assert verdict.location.index == (1,)
    assert verdict.location.layer_index == 3
    assert (verdict.expected, verdict.actual) == (2.5, -2.5)


def test_check_cross_entropy_holds_for_the_unnormalised_target_formula() -> None:
    # Arrange
    a, y = [0.0, 0.0], [1.0, 2.0]

    # Act
    with mpmath.workdps(30):
        verdict = check_loss_gradient(Loss.SOFTMAX_CROSS_ENTROPY, a, y, [0.5, -0.5],
                                      bound=1e-15)

    # Assert
    assert isinstance(verdict, Holds)
    assert verdict.result_id == CROSS_ENTROPY_ID


def test_check_cross_entropy_rejects_p_minus_y_when_targets_do_not_sum_to_one(
        ) -> None:
    # Arrange: p - y = (1/2 - 1, 1/2 - 2) = (-0.5, -1.5), right only if sum y = 1.
    a, y = [0.0, 0.0], [1.0, 2.0]

    # Act
    with mpmath.workdps(30):
        verdict = check_loss_gradient(Loss.SOFTMAX_CROSS_ENTROPY, a, y,
                                      [-0.5, -1.5], bound=1e-12)

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.result_id == CROSS_ENTROPY_ID
    assert verdict.location.quantity == "bias_gradient"
    assert verdict.expected in (0.5, -0.5)
    assert verdict.absolute_error == 1.0
    assert verdict.violating == 2


def test_check_cross_entropy_sees_an_error_of_4e_18_at_far_apart_logits() -> None:
    # Arrange: a = (40, 0), y = (1, 0): p_1 = 1/(1 + e^40) ~ 4.25e-18 and the
    # gradient is (p_0 - 1, p_1) = (-p_1, p_1). In float64, p_0 rounds to 1, so
    # a naive p - y claims 0 for the first entry.
    p1 = 1 / (1 + math.exp(40.0))

    # Act
    with mpmath.workdps(30):
        accurate = check_loss_gradient(Loss.SOFTMAX_CROSS_ENTROPY, [40.0, 0.0],
                                       [1.0, 0.0], [-p1, p1], bound=1e-25)
        naive = check_loss_gradient(Loss.SOFTMAX_CROSS_ENTROPY, [40.0, 0.0],
                                    [1.0, 0.0], [0.0, p1], bound=1e-25)

    # Assert
    assert isinstance(accurate, Holds)
    assert isinstance(naive, Violated)
    assert naive.location.index == (0,)
    assert naive.expected == pytest.approx(-p1, rel=1e-12)


def _correctly_rounded_cross_entropy_gradient(a: Sequence[float],
                                              y: Sequence[float]) -> list[float]:
    """softmax(a) * sum(y) - y at 50 digits, written out here, then rounded."""
    with mpmath.workdps(50):
        exps = [mpmath.exp(mpmath.mpf(v)) for v in a]
        total = sum(exps, mpmath.mpf(0))
        weight = sum((mpmath.mpf(v) for v in y), mpmath.mpf(0))
        return [float(e / total * weight - mpmath.mpf(v)) for e, v in zip(exps, y)]


def test_cross_entropy_check_accepts_correctly_rounded_gradients_at_30_digits(
        ) -> None:
    # Arrange: each claimed entry is the exact gradient rounded once, so it is
    # within half an ulp; allow one ulp.
    a, y = [1.0, 2.0, 3.0], [0.3, 0.3, 0.4]
    claimed = _correctly_rounded_cross_entropy_gradient(a, y)
    bound = [float(np.spacing(abs(v))) for v in claimed]

    # Act
    with mpmath.workdps(30):
        verdict = check_loss_gradient(Loss.SOFTMAX_CROSS_ENTROPY, a, y, claimed,
                                      bound=bound)

    # Assert
    assert isinstance(verdict, Holds)
    assert verdict.worst_error_in_bounds <= 0.5 + 1e-12


def test_cross_entropy_check_accepts_correctly_rounded_gradients_at_default_precision(
        ) -> None:
    # Arrange
    a, y = [1.0, 2.0, 3.0], [0.3, 0.3, 0.4]
    claimed = _correctly_rounded_cross_entropy_gradient(a, y)
    bound = [float(np.spacing(abs(v))) for v in claimed]

    # Act: mpmath's default working precision, as a direct caller has it.
    with mpmath.workdps(15):
        verdict = check_loss_gradient(Loss.SOFTMAX_CROSS_ENTROPY, a, y, claimed,
                                      bound=bound)

    # Assert
    assert isinstance(verdict, Holds)


def test_loss_gradient_through_weights_holds_for_g_times_x_transposed() -> None:
    # Arrange: a = (3, -1), y = (1, 0.5): g = a - y = (2, -1.5); x = (2, -1):
    # dW = g x^T = [[4, -2], [-3, 1.5]].
    claimed = [[4.0, -2.0], [-3.0, 1.5]]

    # Act
    verdict = check_loss_gradient_through_weights(
        Loss.SQUARED_ERROR, [3.0, -1.0], [1.0, 0.5], [2.0, -1.0], claimed,
        bound=0.0)

    # Assert
    assert isinstance(verdict, Holds)
    assert verdict.result_id == SQUARED_ERROR_ID
    assert verdict.compared == 4


def test_loss_gradient_through_weights_names_the_wrong_weight_entry() -> None:
    # Arrange: x g^T (transposed) instead of g x^T: entries (0, 1), (1, 0) swap.
    claimed = [[4.0, -3.0], [-2.0, 1.5]]

    # Act
    with mpmath.workdps(30):
        verdict = check_loss_gradient_through_weights(
            Loss.SQUARED_ERROR, [3.0, -1.0], [1.0, 0.5], [2.0, -1.0], claimed,
            bound=1e-15, layer_index=1)

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location.quantity == "weight_gradient"
    assert verdict.location.layer_index == 1
    assert verdict.location.index in {(0, 1), (1, 0)}
    assert verdict.violating == 2


def test_check_loss_gradient_accepts_exact_outputs() -> None:
    # Arrange: a = (1/3, 0) exactly; with y = (0, 0) the gradient is a itself,
    # and the float 1/3 is within half an ulp of it.
    with mpmath.workdps(30):
        a = np.array([mpmath.mpf(1) / 3, mpmath.mpf(0)], dtype=object)

        # Act
        verdict = check_loss_gradient(Loss.SQUARED_ERROR, a, [0.0, 0.0],
                                      [1 / 3, 0.0], bound=2.0 ** -55)

    # Assert
    assert isinstance(verdict, Holds)
