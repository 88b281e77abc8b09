"""Partial derivatives from the definition, Jacobian entries, JVP and VJP."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from spec import ExactArray, Holds, Violated
from spec._verdict import to_exact
from spec.jacobian import (
    PRODUCTS_ID,
    RESULT_ID,
    check_jacobian_entries,
    check_jacobian_products,
    partial_derivative,
)


def product_and_wave(v: ExactArray) -> ExactArray:
    """f(v) = (v0 v1, e^{v0} sin v1)."""
    return np.array([v[0] * v[1], mpmath.exp(v[0]) * mpmath.sin(v[1])], dtype=object)


def test_partial_derivative_matches_the_hand_derivative_of_a_smooth_map() -> None:
    # Arrange: df_1/dv_0 = e^{v0} sin v1 at (2, 5).
    x = to_exact([2.0, 5.0])

    # Act
    value, error = partial_derivative(product_and_wave, x, 1, 0, accuracy=1e-25)

    # Assert
    with mpmath.workdps(40):
        expected = mpmath.exp(2) * mpmath.sin(5)
        assert abs(value - expected) < mpmath.mpf("1e-25")
    assert error <= 1e-25


def test_partial_derivative_error_estimate_covers_a_once_differentiable_point(
        ) -> None:
    # Arrange: elu is differentiable at 0 with derivative 1 but its second
    # derivative jumps, so the quotient's error is O(h), not O(h^4).
    def elu(v: ExactArray) -> ExactArray:
        z = v[0]
        return np.array([z if z > 0 else mpmath.exp(z) - 1], dtype=object)

    # Act
    value, error = partial_derivative(elu, to_exact([0.0]), 0, 0, accuracy=1e-20)

    # Assert
    assert abs(value - 1) <= error
    assert abs(value - 1) < 1e-10


def test_jacobian_entries_hold_for_the_hand_jacobian() -> None:
    # Arrange: J = [[v1, v0], [e^{v0} sin v1, e^{v0} cos v1]] at (0, 1.5).
    J = [[1.5, 0.0], [np.sin(1.5), np.cos(1.5)]]
    entries = [(0, 0), (0, 1), (1, 0), (1, 1)]

    # Act
    verdict = check_jacobian_entries(product_and_wave, [0.0, 1.5], J, entries,
                                     bound=[1e-15] * 4)

    # Assert
    assert isinstance(verdict, Holds)
    assert verdict.result_id == RESULT_ID
    assert verdict.compared == 4


def _times_a(v: ExactArray) -> ExactArray:
    """z = W a for a 2 x 3 matrix W given as vec(W), a = (1, 2, 3)."""
    W = [[v[i + 2 * j] for j in range(3)] for i in range(2)]
    a = [1, 2, 3]
    return np.array([sum(w * x for w, x in zip(row, a)) for row in W], dtype=object)


def test_jacobian_in_vec_w_is_the_kronecker_factor_a_transposed_times_identity(
        ) -> None:
    # Arrange
    claimed = np.kron(np.array([[1.0, 2.0, 3.0]]), np.eye(2))
    entries = [(i, p) for i in range(2) for p in range(6)]

    # Act
    verdict = check_jacobian_entries(_times_a, np.arange(6.0), claimed, entries,
                                     bound=[1e-20] * len(entries))

    # Assert
    assert isinstance(verdict, Holds)
    assert verdict.compared == 12


def test_a_row_major_jacobian_is_violated_at_the_named_entry() -> None:
    # Arrange: stacking rows instead of columns claims dz_0/dvec(W)_1 = a_1 = 2,
    # but coordinate 1 of vec(W) is W[1, 0], on which z_0 does not depend.
    # Entries (0, 0) and (1, 5) (W[1, 2], slope a_2 = 3) agree in both orders.
    claimed = np.kron(np.eye(2), np.array([[1.0, 2.0, 3.0]]))
    entries = [(0, 0), (1, 5), (0, 1)]

    # Act
    verdict = check_jacobian_entries(_times_a, np.arange(6.0), claimed, entries,
                                     bound=[1e-20] * 3, quantity="weight_jacobian",
                                     layer_index=1)

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location.index == (0, 1)
    assert verdict.location.quantity == "weight_jacobian"
    assert verdict.location.layer_index == 1
    assert verdict.expected == 0.0
    assert verdict.actual == 2.0
    assert verdict.violating == 1 and verdict.compared == 3


SQUARE = to_exact([[1.0, 2.0], [3.0, 4.0]])


def test_jacobian_products_hold_for_hand_computed_products() -> None:
    # Arrange: J v = (1, 3) for v = (1, 0); u^T J = (4, 6) for u = (1, 1).
    u, v = [1.0, 1.0], [1.0, 0.0]

    # Act
    verdict = check_jacobian_products(SQUARE, u, v, [1.0, 3.0], [4.0, 6.0],
                                      jvp_bound=1e-15, vjp_bound=1e-15,
                                      adjoint_bound=1e-15)

    # Assert
    assert isinstance(verdict, Holds)
    assert verdict.result_id == PRODUCTS_ID
    assert verdict.compared == 5


def test_a_vjp_that_uses_j_instead_of_its_transpose_is_violated() -> None:
    # Arrange: J u = (3, 7), not u^T J = (4, 6).
    u, v = [1.0, 1.0], [1.0, 0.0]

    # Act
    verdict = check_jacobian_products(SQUARE, u, v, [1.0, 3.0], [3.0, 7.0],
                                      jvp_bound=1e-15, vjp_bound=1e-15,
                                      adjoint_bound=1e-15)

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location.quantity in {"vjp", "adjoint_identity"}
    assert verdict.violating >= 1


def test_a_vjp_inconsistent_with_the_jvp_breaks_the_adjoint_identity() -> None:
    # Arrange: the vjp is within its loose bound of (4, 6), but
    # <u, Jv> = 1 + 3 = 4 while <vjp, v> = 4.5.
    u, v = [1.0, 1.0], [1.0, 0.0]

    # Act
    verdict = check_jacobian_products(SQUARE, u, v, [1.0, 3.0], [4.5, 6.0],
                                      jvp_bound=1e-15, vjp_bound=1.0,
                                      adjoint_bound=1e-12)

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location.quantity == "adjoint_identity"
    assert verdict.expected == 0.0
    assert verdict.actual == pytest.approx(-0.5)
    assert "<u, Jv> - <J^T u, v>" in verdict.detail


def test_a_wrong_jvp_is_violated_at_its_entry() -> None:
    # Arrange
    u, v = [1.0, 1.0], [1.0, 0.0]

    # Act
    verdict = check_jacobian_products(SQUARE, u, v, [1.0, 2.0], [4.0, 6.0],
                                      jvp_bound=1e-15, vjp_bound=1e-15,
                                      adjoint_bound=10.0)

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location.quantity == "jvp"
    assert verdict.location.index == (1,)
    assert verdict.expected == 3.0
    assert verdict.actual == 2.0
