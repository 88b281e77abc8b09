r"""Definition: the Jacobian, the matrix of partial derivatives.

For :math:`f:\mathbb{R}^n\to\mathbb{R}^m` differentiable at :math:`x`, the
matrix of :math:`Df(x)` in the standard bases is the ``m x n`` Jacobian

.. math::

    J_f(x)_{ij} = \frac{\partial f_i}{\partial x_j}(x).

A matrix argument :math:`W` (``m x n``) is vectorised by stacking columns, so
entry ``[i, j]`` of :math:`W` is coordinate :math:`i + j m` of
:math:`\operatorname{vec} W`. Restates item 1 of the paper's summary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import mpmath
import numpy as np
import numpy.typing as npt

from spec._verdict import ExactArray, Result, Verdict, compare, to_exact

RESULT_ID = "jacobian"


def partial_derivative(
    f: Callable[[ExactArray], ExactArray], x: ExactArray, i: int, j: int
) -> mpmath.mpf:
    r"""The partial derivative :math:`\partial f_i/\partial x_j` from its definition.

    Evaluated as the limit of difference quotients by :func:`mpmath.diff`,
    which raises the working precision to absorb the cancellation; no
    derivative formula of ``f`` is used.

    >>> f = lambda v: np.array([v[0] * v[1]], dtype=object)
    >>> float(partial_derivative(f, to_exact([2.0, 5.0]), 0, 1))
    2.0
    """
    def along_axis(t: mpmath.mpf) -> mpmath.mpf:
        shifted = np.array(x, dtype=object)
        shifted[j] = shifted[j] + t
        return f(shifted)[i]

    return mpmath.diff(along_axis, 0)


def check_jacobian_entries(
    f: Callable[[ExactArray], ExactArray],
    x: npt.ArrayLike,
    claimed: npt.ArrayLike,
    entries: Sequence[tuple[int, int]],
    *,
    bound: npt.ArrayLike,
    quantity: str = "jacobian",
    layer_index: int | None = None,
) -> Verdict:
    r"""Judge chosen entries of a claimed Jacobian against partial derivatives.

    .. math::

        \bigl|\hat J_{ij} - \tfrac{\partial f_i}{\partial x_j}(x)\bigr|
        \le \beta_{ij} \quad \text{for each chosen } (i, j).

    Hypotheses: each :math:`f_i` has a partial derivative in :math:`x_j` at
    ``x``.

    Parameters
    ----------
    f
        Exact map from ``n`` to ``m`` entries.
    x
        The point, ``n`` entries.
    claimed
        The claimed ``m x n`` Jacobian.
    entries
        The ``(i, j)`` entries to judge.
    bound
        Allowed absolute errors, one per entry of ``entries``.

    >>> f = lambda v: np.array([v[0] ** 3], dtype=object)
    >>> check_jacobian_entries(f, [2.0], [[12.0]], [(0, 0)], bound=[1e-20]).compared
    1
    """
    x_exact = to_exact(x)
    claimed_array = np.atleast_2d(np.asarray(claimed, dtype=np.float64))
    exact = np.array(
        [partial_derivative(f, x_exact, i, j) for i, j in entries], dtype=object
    )
    picked = np.array([claimed_array[i, j] for i, j in entries], dtype=np.float64)
    verdict = compare(
        RESULT_ID,
        claimed=picked,
        exact=exact,
        bound=bound,
        quantity=quantity,
        layer_index=layer_index,
    )
    return _name_entry(verdict, entries)


def _name_entry(verdict: Verdict, entries: Sequence[tuple[int, int]]) -> Verdict:
    """Replace the position within the picked list by the Jacobian entry."""
    from dataclasses import replace

    from spec._verdict import Violated

    if not isinstance(verdict, Violated):
        return verdict
    picked_index = verdict.location.index[0]
    location = replace(verdict.location, index=tuple(entries[picked_index]))
    return replace(verdict, location=location)


JACOBIAN = Result(
    id=RESULT_ID,
    kind="definition",
    title="Jacobian matrix",
    statement=(
        r"J_f(x) \in \mathbb{R}^{m \times n}, \quad "
        r"J_f(x)_{ij} = \frac{\partial f_i}{\partial x_j}(x), \quad "
        r"\operatorname{vec}(W)_{i + j m} = W_{ij}"
    ),
    hypotheses=(
        r"$f:\mathbb{R}^n\to\mathbb{R}^m$ is differentiable at $x$.",
        r"Matrix arguments are vectorised by stacking columns.",
    ),
    predicate=check_jacobian_entries,
    paper_section="1",
    conventions=("Jacobians are output-by-input", "vec stacks columns"),
)
