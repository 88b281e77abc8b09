"""The chain rule: the Jacobian of a composition is the product, outermost left."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from spec import Holds, Violated
from spec._verdict import to_exact
from spec.chain_rule import RESULT_ID, check_chain_rule, jacobian_product

# f_1: R^2 -> R^3 with J_1 (3 x 2), f_2: R^3 -> R^1 with J_2 (1 x 3).
J1 = to_exact([[1.0, 2.0], [0.0, 1.0], [3.0, -1.0]])
J2 = to_exact([[2.0, -1.0, 1.0]])
# J_2 J_1 = [2*1 - 0 + 3, 2*2 - 1 - 1] = [5, 2]; J_1 J_2 would not even fit.
PRODUCT = [[5.0, 2.0]]


def test_jacobian_product_multiplies_innermost_first() -> None:
    # Arrange
    factors = [J1, J2]

    # Act
    product = jacobian_product(factors)

    # Assert
    assert product.shape == (1, 2)
    assert [[float(v) for v in row] for row in product] == PRODUCT


def test_jacobian_product_rejects_factors_whose_widths_do_not_chain() -> None:
    # Arrange: listed outermost first, J_1 (3 x 2) cannot follow J_2 (1 x 3).
    factors = [J2, J1]

    # Act
    with pytest.raises(ValueError) as raised:
        jacobian_product(factors)

    # Assert
    assert "cannot follow one of shape (1, 3)" in str(raised.value)


def test_jacobian_product_needs_a_factor() -> None:
    # Arrange
    factors: list[object] = []

    # Act
    with pytest.raises(ValueError) as raised:
        jacobian_product(factors)  # type: ignore[arg-type]

    # Assert
    assert "at least one factor" in str(raised.value)


def test_chain_rule_holds_for_the_product_of_a_concrete_composition() -> None:
    # Arrange: f(x) = (x0 x1, sin x0) then g(u) = u0 + u1^2, at x = (0.5, 2).
    # J_f = [[x1, x0], [cos x0, 0]], J_g = [1, 2 u1] with u1 = sin 0.5.
    # By hand: d(g o f)/dx0 = x1 + 2 sin x0 cos x0, d/dx1 = x0.
    with mpmath.workdps(30):
        x0, x1 = mpmath.mpf("0.5"), mpmath.mpf(2)
        J_f = np.array([[x1, x0], [mpmath.cos(x0), mpmath.mpf(0)]], dtype=object)
        J_g = np.array([[mpmath.mpf(1), 2 * mpmath.sin(x0)]], dtype=object)
        claimed = [[float(x1 + mpmath.sin(2 * x0)), 0.5]]

        # Act
        verdict = check_chain_rule([J_f, J_g], claimed, bound=1e-15)

    # Assert
    assert isinstance(verdict, Holds)
    assert verdict.result_id == RESULT_ID
    assert verdict.compared == 2


def test_chain_rule_verdict_names_the_failing_entry() -> None:
    # Arrange: a wrong second entry, 2.5 instead of 2.
    claimed = [[5.0, 2.5]]

    # Act
    verdict = check_chain_rule([J1, J2], claimed, bound=1e-12,
                               quantity="input_jacobian")

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location.quantity == "input_jacobian"
    assert verdict.location.index == (0, 1)
    assert verdict.expected == 2.0
    assert verdict.actual == 2.5
    assert verdict.absolute_error == 0.5
    assert verdict.violating == 1 and verdict.compared == 2


def test_chain_rule_allows_errors_within_the_bound() -> None:
    # Arrange
    claimed = [[5.0 + 1e-13, 2.0 - 1e-13]]

    # Act
    verdict = check_chain_rule([J1, J2], claimed, bound=1e-12)

    # Assert
    assert isinstance(verdict, Holds)
    assert 0.05 < verdict.worst_error_in_bounds <= 0.11


def test_chain_rule_never_accepts_a_non_finite_claim() -> None:
    # Arrange
    claimed = [[5.0, float("nan")]]

    # Act
    verdict = check_chain_rule([J1, J2], claimed, bound=1e300)

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location.index == (0, 1)
    assert verdict.worst_error_in_bounds == float("inf")
