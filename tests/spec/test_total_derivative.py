"""The Taylor-remainder test of the total derivative."""

from __future__ import annotations

import re

import mpmath
import numpy as np
import pytest

from spec import ExactArray, Holds, NotApplicable, Violated
from spec.total_derivative import RESULT_ID, check_total_derivative


def polynomial(v: ExactArray) -> ExactArray:
    """f(v) = (v0^2 v1, v0 v1^3 + v0)."""
    return np.array([v[0] ** 2 * v[1], v[0] * v[1] ** 3 + v[0]], dtype=object)


X = [1.5, 0.5]
H = [1.0, -2.0]
# Df(x) = [[2 v0 v1, v0^2], [v1^3 + 1, 3 v0 v1^2]] at (1.5, 0.5), all exact
# binary fractions.
EXACT_J = [[1.5, 2.25], [1.125, 1.125]]


def _order(detail: str) -> float:
    match = re.search(r"t\^([-+0-9.infa]+)", detail)
    assert match is not None, detail
    return float(match.group(1))


def test_exact_derivative_holds_with_a_remainder_of_order_two() -> None:
    # Arrange
    bound = [1e-30, 1e-30]

    # Act
    verdict = check_total_derivative(polynomial, X, EXACT_J, H, bound=bound)

    # Assert
    assert isinstance(verdict, Holds)
    assert verdict.result_id == RESULT_ID
    assert verdict.compared == 2
    assert verdict.worst_error_in_bounds < 1e-6
    assert _order(verdict.detail) == pytest.approx(2.0, abs=0.01)


def test_wrong_derivative_is_violated_at_the_wrong_row_with_order_one() -> None:
    # Arrange: J[1][0] = 1 instead of 1.125, so (Df - J) h = (0, 0.125 * 1).
    wrong = [[1.5, 2.25], [1.0, 1.125]]

    # Act
    verdict = check_total_derivative(polynomial, X, wrong, H, bound=[1e-30, 1e-30],
                                     quantity="loss_gradient", layer_index=2)

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location.quantity == "loss_gradient"
    assert verdict.location.layer_index == 2
    assert verdict.expected == 0.0
    assert verdict.actual == pytest.approx(0.125, rel=1e-12)
    assert verdict.violating == 1 and verdict.compared == 2
    assert _order(verdict.detail) == pytest.approx(1.0, abs=0.01)
    assert "(Df(x) - J) h" in verdict.detail


def test_an_error_within_the_bound_holds_and_one_outside_it_is_violated() -> None:
    # Arrange: J[0][0] too large by 2^-40, so the coefficient (Df - J) h is
    # -2^-40 * h_0 ~ -9.1e-13.
    off = [[1.5 + 2.0 ** -40, 2.25], [1.125, 1.125]]

    # Act
    loose = check_total_derivative(polynomial, X, off, H, bound=[1e-12, 1e-12])
    tight = check_total_derivative(polynomial, X, off, H, bound=[1e-13, 1e-13])

    # Assert
    assert isinstance(loose, Holds)
    assert loose.worst_error_in_bounds == pytest.approx(2.0 ** -40 / 1e-12, rel=1e-9)
    assert isinstance(tight, Violated)
    assert tight.actual == pytest.approx(-(2.0 ** -40), rel=1e-9)
    assert tight.absolute_error == pytest.approx(2.0 ** -40, rel=1e-9)
    assert tight.bound == 1e-13


def test_wrong_derivative_verdict_names_the_failing_row_of_f() -> None:
    # Arrange: only row 1 of J is wrong.
    wrong = [[1.5, 2.25], [1.0, 1.125]]

    # Act
    verdict = check_total_derivative(polynomial, X, wrong, H, bound=[1e-30, 1e-30])

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location.index == (1,)


def test_a_transcendental_map_with_an_exact_derivative_holds_with_order_two(
        ) -> None:
    # Arrange: f(v) = (sin v1 e^{v0}); Df = (sin v1 e^{v0}, cos v1 e^{v0}),
    # given as exact mpf values so no float rounding sits in J.
    def f(v: ExactArray) -> ExactArray:
        return np.array([mpmath.sin(v[1]) * mpmath.exp(v[0])], dtype=object)

    with mpmath.workdps(60):
        x0, x1 = mpmath.mpf("0.25"), mpmath.mpf("0.75")
        J = np.array([[mpmath.sin(x1) * mpmath.exp(x0),
                       mpmath.cos(x1) * mpmath.exp(x0)]], dtype=object)

    # Act
    verdict = check_total_derivative(f, [0.25, 0.75], J, [0.5, 1.0], bound=[1e-35])

    # Assert
    assert isinstance(verdict, Holds)
    assert _order(verdict.detail) == pytest.approx(2.0, abs=0.01)


def test_a_linear_map_has_no_remainder_at_all() -> None:
    # Arrange
    def linear(v: ExactArray) -> ExactArray:
        return np.array([3 * v[0] - v[1]], dtype=object)

    # Act
    verdict = check_total_derivative(linear, [1.0, 2.0], [[3.0, -1.0]], [1.0, 1.0],
                                     bound=[1e-30])

    # Assert
    assert isinstance(verdict, Holds)
    assert verdict.worst_error_in_bounds == 0.0
    assert "t^inf" in verdict.detail


def test_a_zero_direction_is_not_applicable() -> None:
    # Arrange
    direction = [0.0, 0.0]

    # Act
    verdict = check_total_derivative(polynomial, X, EXACT_J, direction,
                                     bound=[1e-30, 1e-30])

    # Assert
    assert isinstance(verdict, NotApplicable)
    assert verdict.reason == "the direction h is zero"
