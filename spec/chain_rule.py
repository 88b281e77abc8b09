r"""Theorem: the chain rule, for two maps and for :math:`L` of them.

.. math::

    J_{g\circ f}(x) = J_g(f(x))\,J_f(x), \qquad
    J_{f_L\circ\cdots\circ f_1}(x) = J_{f_L}(x_{L-1}) \cdots J_{f_1}(x_0),

where :math:`x_0 = x` and :math:`x_k = f_k(x_{k-1})`. Restates item 2 of the
paper's summary.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from spec._verdict import at_exact_precision, ExactArray, Result, Verdict, compare

RESULT_ID = "chain-rule"


def jacobian_product(factors: Sequence[ExactArray]) -> ExactArray:
    r"""Multiply Jacobians given innermost first: :math:`J_L \cdots J_1`.

    ``factors[0]`` is :math:`J_{f_1}(x_0)` (``n_1 x n_0``) and the last is
    :math:`J_{f_L}(x_{L-1})`; the product is ``n_L x n_0``.

    >>> from spec._verdict import to_exact
    >>> jacobian_product([to_exact([[2.0]]), to_exact([[3.0]])]).tolist()
    [[mpf('6.0')]]
    """
    if not factors:
        raise ValueError("jacobian_product() needs at least one factor")
    product = np.asarray(factors[0], dtype=object)
    for factor in factors[1:]:
        if np.shape(factor)[1] != product.shape[0]:
            raise ValueError(
                f"factor of shape {np.shape(factor)} cannot follow one of "
                f"shape {product.shape}: inner widths differ"
            )
        product = np.asarray(factor, dtype=object).dot(product)
    return product


@at_exact_precision
def check_chain_rule(
    factors: Sequence[ExactArray],
    claimed: npt.ArrayLike,
    *,
    bound: npt.ArrayLike,
    quantity: str = "composite_jacobian",
) -> Verdict:
    r"""Judge a claimed Jacobian of a composition against the product rule.

    .. math::

        \bigl|\hat J_{ij} - (J_{f_L}(x_{L-1})\cdots J_{f_1}(x_0))_{ij}\bigr|
        \le \beta_{ij}.

    Hypotheses: each :math:`f_k` is differentiable at :math:`x_{k-1}`.

    Parameters
    ----------
    factors
        Exact Jacobians of the maps, innermost first, each evaluated at the
        point the previous maps produced.
    claimed
        The claimed Jacobian of the composition, ``n_L x n_0``.
    bound
        Allowed absolute errors, broadcastable to ``n_L x n_0``.
    """
    return compare(
        RESULT_ID,
        claimed=np.atleast_2d(np.asarray(claimed, dtype=np.float64)),
        exact=jacobian_product(factors),
        bound=bound,
        quantity=quantity,
    )


CHAIN_RULE = Result(
    id=RESULT_ID,
    kind="theorem",
    title="Chain rule",
    statement=(
        r"J_{g \circ f}(x) = J_g\bigl(f(x)\bigr)\, J_f(x), \qquad "
        r"J_{f_L \circ \cdots \circ f_1}(x_0) = "
        r"J_{f_L}(x_{L-1}) \cdots J_{f_1}(x_0)"
    ),
    hypotheses=(
        r"$f$ is differentiable at $x$ and $g$ at $f(x)$.",
        r"Each Jacobian is evaluated at the point the earlier maps produced, "
        r"$x_k = f_k(x_{k-1})$.",
    ),
    predicate=check_chain_rule,
    paper_section="2",
)
