r"""Theorem: backpropagation costs a small constant times the forward pass.

Counting arithmetic operations (a multiply-add counts once, an elementwise
operation once), the forward pass of layer :math:`\ell` costs
:math:`n_\ell n_{\ell-1} + 2 n_\ell`. Backpropagation adds, per layer, one
product :math:`W_{\ell+1}^\top\delta_{\ell+1}` and one outer product
:math:`\delta_\ell a_{\ell-1}^\top` (each :math:`n_\ell n_{\ell-1}`) and two
elementwise operations, so

.. math::

    \frac{C_{\mathrm{forward}} + C_{\mathrm{backward}}}{C_{\mathrm{forward}}}
    \le 3 \quad\text{for every depth } L,

while multiplying the explicit Jacobians (each layer's product formed on its
own, the Kronecker factor as a dense :math:`n \times n^2` matrix) costs a
ratio that grows with depth and width. Restates item 5 of the paper's summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from spec._verdict import Holds, Location, Result, Verdict, Violated

RESULT_ID = "cost"

BACKPROP_RATIO_BOUND = 3.0
r"""The constant of the statement: forward plus backward is at most three forward
passes, from the operation count in this module's docstring."""


@dataclass(frozen=True)
class OperationCounts:
    """Operations counted while running implementations on one network.

    Attributes
    ----------
    depth, width
        :math:`L` and the common width of the network measured.
    forward
        Forward pass alone (loss included).
    backprop
        Forward plus backward pass by backpropagation.
    jacobian_product
        Forward pass plus the explicit Jacobian products for every layer.
    """

    depth: int
    width: int
    forward: int
    backprop: int
    jacobian_product: int


def check_cost(counts: Sequence[OperationCounts]) -> Verdict:
    r"""Judge measured operation counts against the cost theorem.

    Holds when, at every measured depth,
    :math:`C_{\mathrm{backprop}} / C_{\mathrm{forward}} \le 3`, and the
    explicit product's ratio at the greatest depth exceeds the ratio at the
    smallest (it is not bounded independently of depth).

    Parameters
    ----------
    counts
        At least two measurements at distinct depths.

    Examples
    --------
    >>> check_cost([OperationCounts(1, 4, 30, 80, 200),
    ...             OperationCounts(8, 4, 240, 640, 9000)]).worst_error_in_bounds
    0.888...
    """
    if len({c.depth for c in counts}) < 2:
        raise ValueError("check_cost() needs counts at two or more distinct depths")
    ordered = sorted(counts, key=lambda c: c.depth)
    worst = max(ordered, key=lambda c: c.backprop / c.forward)
    ratio = worst.backprop / worst.forward
    if ratio > BACKPROP_RATIO_BOUND:
        return _violated(worst, ratio, "backprop costs more than 3 forward passes")

    first, last = ordered[0], ordered[-1]
    if last.jacobian_product / last.forward <= first.jacobian_product / first.forward:
        return _violated(last, last.jacobian_product / last.forward,
                         "the explicit product's cost ratio did not grow with depth")
    detail = (f"backprop/forward <= {ratio:.2f} at depths {first.depth}-{last.depth}; "
              f"explicit product/forward grew from "
              f"{first.jacobian_product / first.forward:.1f} to "
              f"{last.jacobian_product / last.forward:.1f}")
    return Holds(RESULT_ID, ratio / BACKPROP_RATIO_BOUND, len(ordered), detail)


def _violated(counts: OperationCounts, ratio: float, detail: str) -> Violated:
    return Violated(
        result_id=RESULT_ID,
        location=Location("operation_count", None, (counts.depth, counts.width)),
        expected=BACKPROP_RATIO_BOUND,
        actual=ratio,
        absolute_error=abs(ratio - BACKPROP_RATIO_BOUND),
        bound=BACKPROP_RATIO_BOUND,
        worst_error_in_bounds=ratio / BACKPROP_RATIO_BOUND,
        violating=1,
        compared=1,
        detail=detail,
    )


COST = Result(
    id=RESULT_ID,
    kind="theorem",
    title="Cost of backpropagation",
    statement=(
        r"\frac{C_{\mathrm{forward}} + C_{\mathrm{backward}}}{C_{\mathrm{forward}}}"
        r" \le 3 \text{ for every depth } L, \qquad "
        r"\frac{C_{\mathrm{explicit\ product}}}{C_{\mathrm{forward}}} "
        r"\to \infty \text{ as } L \to \infty"
    ),
    hypotheses=(
        r"Costs are counts of arithmetic operations of the bundled reference "
        r"implementations; a multiply-add counts once.",
    ),
    predicate=check_cost,
    paper_section="5",
)
