r"""Definition: the total derivative, checked by a Taylor-remainder test.

A map :math:`f:\mathbb{R}^n\to\mathbb{R}^m` is differentiable at :math:`x` with
derivative :math:`J` when the remainder vanishes faster than the step:

.. math::

    \lim_{h\to 0}\frac{\lVert f(x+h) - f(x) - J h\rVert}{\lVert h\rVert} = 0.

Restates item 1 of the paper's summary.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import numpy.typing as npt

from spec._verdict import (
    ExactArray,
    Holds,
    Location,
    NotApplicable,
    Result,
    Verdict,
    Violated,
    to_exact,
)

logger = logging.getLogger(__name__)

RESULT_ID = "total-derivative"

STEP_EXPONENTS = (64, 65, 66)
r"""Steps :math:`t = 2^{-k}` at which the remainder is evaluated.

At :math:`t \approx 5\cdot10^{-20}` the second-order term of a smooth map is
below :math:`10^{-38}` times its curvature, far under any float64 error bound,
while the working precision of :func:`working_digits` keeps the difference
quotient's own rounding below :math:`10^{-40}`."""


def working_digits() -> int:
    """Decimal digits used for the remainder test: 60.

    The difference quotient loses about 20 digits to the step
    :math:`2^{-66}`; 60 digits keep 40, well past float64's 16.
    """
    return 60


def check_total_derivative(
    f: Callable[[ExactArray], ExactArray],
    x: npt.ArrayLike,
    J: npt.ArrayLike,
    direction: npt.ArrayLike,
    *,
    bound: npt.ArrayLike,
    quantity: str = "derivative",
    layer_index: int | None = None,
) -> Verdict:
    r"""Judge whether ``J`` is the total derivative of ``f`` at ``x`` along ``h``.

    .. math::

        r(t) = f(x + t h) - f(x) - t J h
             = t\,(Df(x) - J)\,h + O(t^2).

    The remainder's linear coefficient :math:`c = (Df(x) - J)h` is estimated by
    Richardson extrapolation of :math:`r(t)/t` at two steps, cancelling the
    :math:`O(t)` term; ``J`` holds as the derivative when
    :math:`|c_i| \le \beta_i` plus the rounding of the quotients themselves
    (a unit of the working precision times :math:`|f(x)|`, over the step).
    The observed order of decay of
    :math:`\lVert r(t)\rVert` (2 for an exact ``J`` on a smooth map, 1 for a
    wrong one) is reported in the verdict's detail.

    Hypotheses: ``f`` is twice continuously differentiable on a neighbourhood
    of ``x`` containing the segment to :math:`x + 2^{-64} h`.

    Parameters
    ----------
    f
        Maps an exact vector of ``n`` entries to an exact vector of ``m``.
    x
        The point, ``n`` floats or ``mpf``.
    J
        The claimed derivative, ``m x n``.
    direction
        :math:`h`, ``n`` entries, not all zero.
    bound
        Allowed :math:`|c_i|`, ``m`` entries (for example the float error
        bound of the claimed ``J`` applied to :math:`|h|`).

    Examples
    --------
    >>> square = lambda v: np.array([v[0] ** 2], dtype=object)
    >>> check_total_derivative(square, [3.0], [[6.0]], [1.0], bound=[1e-30])
    ... # doctest: +ELLIPSIS
    Holds(result_id='total-derivative', worst_error_in_bounds=..., compared=1, ...)
    >>> check_total_derivative(square, [3.0], [[5.0]], [1.0], bound=[1e-30]).location
    Location(quantity='derivative', layer_index=None, index=(), example_index=None)
    """
    with mpmath.workdps(working_digits()):
        x_exact = _exact(x)
        h = _exact(direction)
        J_exact = np.atleast_2d(_exact(J))
        if all(v == 0 for v in h):
            return NotApplicable(RESULT_ID, "the direction h is zero")

        # The remainder r(t) / t at three steps, and J h once.
        Jh = np.array([mpmath.fdot(row, h) for row in J_exact], dtype=object)
        f_x = np.asarray(f(x_exact), dtype=object)
        quotients = []
        for k in STEP_EXPONENTS:
            t = mpmath.ldexp(1, -k)
            f_step = np.asarray(f(x_exact + h * t), dtype=object)
            quotients.append((f_step - f_x) / t - Jh)

        # Richardson: c = 2 q(t/2) - q(t) removes the O(t) term.
        coefficient = 2 * quotients[1] - quotients[0]
        order = _observed_order(quotients)
        # The quotients' own rounding: each f value errs by a unit of the
        # working precision, divided by the step; Richardson triples it.
        unit = mpmath.mpf(10) ** (1 - working_digits())
        noise = np.array([float(3 * 2 * unit * abs(v) / mpmath.ldexp(1, -STEP_EXPONENTS[1]))
                          for v in f_x], dtype=np.float64)

    allowed = np.broadcast_to(np.asarray(bound, dtype=np.float64), noise.shape) + noise
    return _verdict(coefficient, allowed, order, quantity, layer_index)


def _exact(values: Any) -> ExactArray:
    array = np.asarray(values)
    if array.dtype == object:
        converted: ExactArray = np.vectorize(mpmath.mpf, otypes=[object])(array)
        return converted
    return to_exact(array)


def _observed_order(quotients: list[ExactArray]) -> float:
    """The exponent p with ||r(t)|| ~ t^p, from the last two steps."""
    norms = [mpmath.norm(list(q)) for q in quotients]
    if norms[1] == 0 or norms[2] == 0:
        return float("inf")
    return 1.0 + float(mpmath.log(norms[1] / norms[2], 2))


def _verdict(
    coefficient: ExactArray,
    bound: npt.ArrayLike,
    order: float,
    quantity: str,
    layer_index: int | None,
) -> Verdict:
    bounds = np.broadcast_to(np.asarray(bound, dtype=np.float64), coefficient.shape)
    errors = np.array([float(abs(c)) for c in coefficient], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratios = np.where(errors == 0.0, 0.0, errors / bounds)
    detail = f"remainder decays like t^{order:.2f}"
    worst = int(np.argmax(ratios))
    if ratios[worst] <= 1.0:
        return Holds(RESULT_ID, float(ratios[worst]), int(ratios.size), detail)
    return Violated(
        result_id=RESULT_ID,
        location=Location(quantity, layer_index,
                          (worst,) if coefficient.size > 1 else ()),
        expected=0.0,
        actual=float(coefficient[worst]),
        absolute_error=float(errors[worst]),
        bound=float(bounds[worst]),
        worst_error_in_bounds=float(ratios[worst]),
        violating=int(np.count_nonzero(ratios > 1.0)),
        compared=int(ratios.size),
        detail=detail + "; the value shown is the remainder's linear coefficient "
        "(Df(x) - J) h, which must vanish",
    )


TOTAL_DERIVATIVE = Result(
    id=RESULT_ID,
    kind="definition",
    title="Total derivative",
    statement=(
        r"\lim_{h \to 0} \frac{\lVert f(x+h) - f(x) - J\,h \rVert}{\lVert h \rVert}"
        r" = 0 \iff J = Df(x)"
    ),
    hypotheses=(
        r"$f:\mathbb{R}^n \to \mathbb{R}^m$ is twice continuously differentiable "
        r"near $x$, so the remainder shrinks like $\lVert h\rVert^2$.",
    ),
    predicate=check_total_derivative,
    paper_section="1",
)
