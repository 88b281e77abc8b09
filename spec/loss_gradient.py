r"""Lemmas: the gradients of the two example losses.

.. math::

    \nabla_a \tfrac12\lVert a - y\rVert^2 = a - y, \qquad
    \nabla_a\Bigl(-\sum_i y_i \log\operatorname{softmax}(a)_i\Bigr)
    = \operatorname{softmax}(a)\sum_i y_i - y.

The second needs no assumption that :math:`y` sums to one. Restates the loss
factor of item 4 of the paper's summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mpmath
import numpy as np
import numpy.typing as npt

from spec._verdict import at_exact_precision, ExactArray, Result, Verdict, compare, to_exact
from spec.conventions import Loss, softmax

SQUARED_ERROR_ID = "loss-gradient.squared-error"
CROSS_ENTROPY_ID = "loss-gradient.softmax-cross-entropy"


def loss_gradient(loss: Loss, a: Sequence[Any], y: Sequence[Any]) -> ExactArray:
    r"""The exact gradient :math:`\nabla_a \ell(a, y)` by the lemma's formula.

    >>> [float(v) for v in loss_gradient(Loss.SQUARED_ERROR, to_exact([3.0]),
    ...                                  to_exact([1.0]))]
    [2.0]
    """
    if loss is Loss.SQUARED_ERROR:
        return np.array([ai - yi for ai, yi in zip(a, y)], dtype=object)
    if loss is Loss.SOFTMAX_CROSS_ENTROPY:
        total = mpmath.fsum(y)
        return np.array([pi * total - yi for pi, yi in zip(softmax(list(a)), y)],
                        dtype=object)
    raise ValueError(f"loss={loss!r} is not a Loss")


@at_exact_precision
def check_loss_gradient(
    loss: Loss,
    a: npt.ArrayLike,
    y: npt.ArrayLike,
    claimed: npt.ArrayLike,
    *,
    bound: npt.ArrayLike,
    quantity: str = "bias_gradient",
    layer_index: int | None = None,
) -> Verdict:
    r"""Judge a claimed :math:`\nabla_a\ell(a, y)` against the lemma.

    Parameters
    ----------
    loss
        Which example loss.
    a, y
        Output and target, ``m`` entries each.
    claimed
        Claimed gradient, ``m`` entries.
    bound
        Allowed absolute errors.
    """
    result_id = SQUARED_ERROR_ID if loss is Loss.SQUARED_ERROR else CROSS_ENTROPY_ID
    expected = loss_gradient(loss, list(_as_exact(a)), list(to_exact(y)))
    return compare(result_id, claimed=claimed, exact=expected, bound=bound,
                   quantity=quantity, layer_index=layer_index)


@at_exact_precision
def check_loss_gradient_through_weights(
    loss: Loss,
    a: npt.ArrayLike,
    y: npt.ArrayLike,
    x: npt.ArrayLike,
    claimed_weight_gradient: npt.ArrayLike,
    *,
    bound: npt.ArrayLike,
    layer_index: int | None = 1,
) -> Verdict:
    r"""Judge the loss gradient as it appears in a one-layer weight gradient.

    For one identity layer :math:`a = W x + b`, the weight gradient is
    :math:`\nabla_a\ell\, x^\top`, so where :math:`x \ne 0` it carries the
    loss gradient without passing through the bias Jacobian: a mistake in
    :math:`J_b` alone then leaves this verdict holding.

    Parameters
    ----------
    a, y, x
        Output (``m``), target (``m``), input (``n``).
    claimed_weight_gradient
        ``m x n``.
    bound
        Allowed absolute errors, broadcastable to ``m x n``.
    """
    result_id = SQUARED_ERROR_ID if loss is Loss.SQUARED_ERROR else CROSS_ENTROPY_ID
    g = loss_gradient(loss, list(_as_exact(a)), list(to_exact(y)))
    expected = np.outer(g, to_exact(x)).astype(object)
    return compare(result_id, claimed=claimed_weight_gradient, exact=expected,
                   bound=bound, quantity="weight_gradient", layer_index=layer_index)


def _as_exact(values: npt.ArrayLike) -> ExactArray:
    array = np.asarray(values)
    return array if array.dtype == object else to_exact(array)


SQUARED_ERROR = Result(
    id=SQUARED_ERROR_ID,
    kind="lemma",
    title="Gradient of the squared error",
    statement=r"\nabla_a\, \tfrac12 \lVert a - y \rVert^2 = a - y",
    hypotheses=(r"$a, y \in \mathbb{R}^m$.",),
    predicate=check_loss_gradient,
    paper_section="4",
)

SOFTMAX_CROSS_ENTROPY = Result(
    id=CROSS_ENTROPY_ID,
    kind="lemma",
    title="Gradient of softmax cross-entropy",
    statement=(r"\nabla_a \Bigl(-\sum_i y_i \log \operatorname{softmax}(a)_i\Bigr)"
               r" = \operatorname{softmax}(a) \sum_i y_i - y"),
    hypotheses=(r"$a, y \in \mathbb{R}^m$; $y$ need not sum to one.",),
    predicate=check_loss_gradient,
    paper_section="4",
)
