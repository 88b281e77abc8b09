"""The registry: every result of the paper, in the paper's order.

Nothing else in the project restates a result: the report, the command line
and the documentation all read :data:`RESULTS`.
"""

from __future__ import annotations

from spec._verdict import Result
from spec.backprop import BATCH_MEAN, DELTA_RECURSION
from spec.chain_rule import CHAIN_RULE
from spec.cost import COST
from spec.gradient_product import GRADIENT_PRODUCT
from spec.jacobian import JACOBIAN, JACOBIAN_PRODUCTS
from spec.layer_jacobians import ACTIVATION_LAYER, AFFINE_LAYER, SOFTMAX_LAYER
from spec.loss_gradient import SOFTMAX_CROSS_ENTROPY, SQUARED_ERROR
from spec.total_derivative import TOTAL_DERIVATIVE

RESULTS: tuple[Result, ...] = (
    TOTAL_DERIVATIVE,
    JACOBIAN,
    JACOBIAN_PRODUCTS,
    CHAIN_RULE,
    AFFINE_LAYER,
    ACTIVATION_LAYER,
    SOFTMAX_LAYER,
    SQUARED_ERROR,
    SOFTMAX_CROSS_ENTROPY,
    GRADIENT_PRODUCT,
    DELTA_RECURSION,
    BATCH_MEAN,
    COST,
)
"""Every result, in order: definitions, then lemmas, then theorems built on them."""


def get(result_id: str) -> Result:
    """The result with ``result_id``.

    >>> get("chain-rule").kind
    'theorem'
    """
    for result in RESULTS:
        if result.id == result_id:
            return result
    known = ", ".join(r.id for r in RESULTS)
    raise KeyError(f"no result with id {result_id!r}; known ids: {known}")
