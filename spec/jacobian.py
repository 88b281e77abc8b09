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

from spec._verdict import at_exact_precision, ExactArray, Result, Verdict, compare, to_exact, worst_of
from spec.errors import UsageError

RESULT_ID = "jacobian"


MARGIN_DIGITS = 20
"""Extra decimal digits beyond what the requested accuracy needs, absorbing
higher derivatives up to :math:`10^{20}` times the function's size."""


def partial_derivative(
    f: Callable[[ExactArray], ExactArray],
    x: ExactArray,
    i: int,
    j: int,
    *,
    accuracy: float = 1e-25,
) -> tuple[mpmath.mpf, mpmath.mpf]:
    r"""The partial derivative :math:`\partial f_i/\partial x_j` from its definition.

    A central difference quotient, extrapolated (Richardson) from steps
    :math:`h` and :math:`h/2`, so its truncation error is :math:`O(h^4)`:

    .. math::

        D(h) = \frac{f(x + h e_j) - f(x - h e_j)}{2h},\qquad
        \partial_j f \approx \frac{4 D(h/2) - D(h)}{3}.

    The working precision :math:`P` digits and :math:`h = 10^{-P/5}` are
    chosen from ``accuracy`` and the size :math:`S` of :math:`f_i(x)`, so the
    rounding error :math:`10^{-P} S / h` and the truncation error
    :math:`h^4 S` are both about :math:`10^{-4P/5} S`, below ``accuracy``
    with :data:`MARGIN_DIGITS` to spare. No derivative formula of ``f`` is
    used.

    Returns
    -------
    (derivative, error_estimate)
        The estimate and :math:`|D_{\mathrm{extrapolated}} - D(h/2)| +
        |D(h/2) - D(h)|`, an estimate of its error that stays an upper bound
        where :math:`f` is only once differentiable (ELU at 0), when the
        truncation error is :math:`O(h)` instead of :math:`O(h^4)`, plus the
        change when the precision is raised by :data:`MARGIN_DIGITS`, which
        exposes cancellation inside ``f``; the precision is doubled, up to
        :data:`RETRIES` times, while that estimate exceeds ``accuracy``.

    Examples
    --------
    >>> f = lambda v: np.array([v[0] * v[1]], dtype=object)
    >>> value, error = partial_derivative(f, to_exact([2.0, 5.0]), 0, 1)
    >>> float(value), error < 1e-25
    (2.0, True)
    """
    size = abs(f(x)[i]) + mpmath.mpf(2) ** -1074
    needed = float(mpmath.log10(size / mpmath.mpf(accuracy)))
    digits = max(mpmath.mp.dps, int(1.25 * max(needed, 0.0)) + MARGIN_DIGITS)
    for _ in range(RETRIES):
        value, error = _extrapolated(f, x, i, j, digits)
        check, _ = _extrapolated(f, x, i, j, digits + MARGIN_DIGITS)
        error += abs(check - value)
        if error <= accuracy:
            break
        digits *= 2
    return check, error


RETRIES = 4
"""Times the precision is doubled when the error estimate exceeds the
requested accuracy (a loss whose value hides cancellation, for instance)."""


def _extrapolated(
    f: Callable[[ExactArray], ExactArray], x: ExactArray, i: int, j: int, digits: int
) -> tuple[mpmath.mpf, mpmath.mpf]:
    with mpmath.workdps(digits):
        h = mpmath.mpf(10) ** (-(digits // 5))

        def quotient(step: mpmath.mpf) -> mpmath.mpf:
            up = np.array(x, dtype=object)
            down = np.array(x, dtype=object)
            up[j] = up[j] + step
            down[j] = down[j] - step
            return (f(up)[i] - f(down)[i]) / (2 * step)

        coarse, fine = quotient(h), quotient(h / 2)
        extrapolated = (4 * fine - coarse) / 3
        return +extrapolated, abs(extrapolated - fine) + abs(fine - coarse)


@at_exact_precision
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

    Hypotheses: each :math:`f_i` is smooth near ``x`` in :math:`x_j`. The
    allowed error is :math:`\beta_{ij}` plus the estimated error of the
    numerical derivative, itself computed to well below :math:`\beta_{ij}`.

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

    Examples
    --------
    >>> f = lambda v: np.array([v[0] ** 3], dtype=object)
    >>> check_jacobian_entries(f, [2.0], [[12.0]], [(0, 0)], bound=[1e-20]).compared
    1
    """
    x_exact = to_exact(x)
    claimed_array = np.atleast_2d(np.asarray(claimed, dtype=np.float64))
    bounds = np.broadcast_to(np.asarray(bound, dtype=np.float64), (len(entries),))
    derivatives = [partial_derivative(f, x_exact, i, j, accuracy=max(beta, 1e-320))
                   for (i, j), beta in zip(entries, bounds)]
    exact = np.array([d for d, _ in derivatives], dtype=object)
    own_error = np.array([float(e) for _, e in derivatives], dtype=np.float64)
    picked = np.array([claimed_array[i, j] for i, j in entries], dtype=np.float64)
    verdict = compare(
        RESULT_ID,
        claimed=picked,
        exact=exact,
        bound=bounds + own_error,
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


PRODUCTS_ID = "jacobian.products"


@at_exact_precision
def check_jacobian_products(
    J: ExactArray,
    u: npt.ArrayLike,
    v: npt.ArrayLike,
    claimed_jvp: npt.ArrayLike | None,
    claimed_vjp: npt.ArrayLike | None,
    *,
    jvp_bound: npt.ArrayLike,
    vjp_bound: npt.ArrayLike,
    adjoint_bound: float | None,
) -> Verdict:
    r"""Judge Jacobian-vector and vector-Jacobian products, and their adjointness.

    .. math::

        \widehat{Jv} = J v,\qquad \widehat{u^\top J} = u^\top J,\qquad
        \langle u, \widehat{Jv}\rangle = \langle \widehat{J^\top u}, v\rangle.

    The first two compare with the exact Jacobian; the third needs no exact
    value at all: it holds for any linear map and its transpose, so it
    catches a reverse mode that is not the transpose of the forward mode.

    Parameters
    ----------
    J
        Exact ``m x n`` Jacobian.
    u, v
        ``m`` and ``n`` entries.
    claimed_jvp, claimed_vjp
        ``m`` and ``n`` entries; ``None`` for a product not computed (an
        implementation with only one mode), which is then not judged.
    jvp_bound, vjp_bound
        Allowed absolute errors of each product.
    adjoint_bound
        Allowed :math:`|\langle u, \widehat{Jv}\rangle - \langle
        \widehat{J^\top u}, v\rangle|`; used only when both products are
        given.

    Examples
    --------
    >>> J = np.array([[2.0, 0.0], [1.0, -1.0]])
    >>> check_jacobian_products(J, [1.0, 1.0], [1.0, 2.0], None, [3.0, -1.0],
    ...                         jvp_bound=[0.0, 0.0], vjp_bound=[0.0, 0.0],
    ...                         adjoint_bound=None).compared
    2
    """
    if claimed_jvp is None and claimed_vjp is None:
        raise UsageError("claimed_jvp and claimed_vjp are both None: give at "
                         "least one product to judge")
    u_exact, v_exact = to_exact(u), to_exact(v)
    J = np.asarray(J, dtype=object)
    verdicts: list[Verdict] = []
    if claimed_jvp is not None:
        verdicts.append(compare(PRODUCTS_ID, claimed=claimed_jvp,
                                exact=J.dot(v_exact), bound=jvp_bound,
                                quantity="jvp"))
    if claimed_vjp is not None:
        verdicts.append(compare(PRODUCTS_ID, claimed=claimed_vjp,
                                exact=u_exact.dot(J), bound=vjp_bound,
                                quantity="vjp"))
    if claimed_jvp is not None and claimed_vjp is not None:
        if adjoint_bound is None:
            raise UsageError("adjoint_bound is None: both products are given, "
                             "so their adjoint identity needs a bound")
        left = mpmath.fdot(u_exact, to_exact(claimed_jvp))
        right = mpmath.fdot(to_exact(claimed_vjp), v_exact)
        verdicts.append(compare(PRODUCTS_ID, claimed=[float(left - right)],
                                exact=np.array([mpmath.mpf(0)], dtype=object),
                                bound=[adjoint_bound], quantity="adjoint_identity",
                                detail="<u, Jv> - <J^T u, v> must vanish"))
    return worst_of(verdicts)


JACOBIAN_PRODUCTS = Result(
    id=PRODUCTS_ID,
    kind="definition",
    title="Products with the Jacobian (JVP and VJP)",
    statement=(
        r"\operatorname{jvp}(x, v) = J_f(x)\, v,\quad "
        r"\operatorname{vjp}(x, u) = u^\top J_f(x),\quad "
        r"\langle u, J v\rangle = \langle J^\top u, v\rangle"
    ),
    hypotheses=(r"$f$ is differentiable at $x$; $u \in \mathbb{R}^m$, "
                r"$v \in \mathbb{R}^n$.",),
    predicate=check_jacobian_products,
    paper_section="1",
)
