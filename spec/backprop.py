r"""Theorem: backpropagation evaluates the Jacobian product from the loss side.

Define :math:`\delta_\ell = \nabla_{z_\ell}\ell` by the recursion

.. math::

    \delta_L = \sigma_L'(z_L) \odot \nabla_{a_L}\ell, \qquad
    \delta_\ell = \sigma_\ell'(z_\ell) \odot W_{\ell+1}^\top \delta_{\ell+1};

then :math:`\partial\ell/\partial W_\ell = \delta_\ell a_{\ell-1}^\top` and
:math:`\partial\ell/\partial b_\ell = \delta_\ell`. For a batch, the loss is the
mean of the example losses, so its gradient is the mean of the example
gradients. Restates item 5 of the paper's summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mpmath
import numpy as np
import numpy.typing as npt

from spec._verdict import (
    at_exact_precision,
    ExactArray,
    NotApplicable,
    Result,
    Verdict,
    compare,
    to_exact,
    worst_of,
)
from spec.conventions import ExactForward, Network, forward_exact, sigma_prime
from spec.gradient_product import first_kink, judge_layers
from spec.loss_gradient import loss_gradient

DELTA_ID = "backprop.delta-recursion"
BATCH_ID = "backprop.batch-mean"


def deltas(
    network: Network, weights: Sequence[ExactArray], forward: ExactForward,
    y: ExactArray,
) -> list[ExactArray]:
    r"""The exact :math:`\delta_1, \dots, \delta_L` by the recursion."""
    L = network.depth
    g = loss_gradient(network.loss, list(forward.a[L]), list(y))
    result: list[ExactArray] = [np.empty(0, dtype=object)] * L
    for ell in range(L, 0, -1):
        D = [sigma_prime(network.activations[ell - 1], v) for v in forward.z[ell - 1]]
        delta = np.array([d * gi for d, gi in zip(D, g)], dtype=object)
        result[ell - 1] = delta
        if ell > 1:
            W = np.asarray(weights[ell - 1], dtype=object)
            g = np.array([mpmath.fdot(W[:, j], delta) for j in range(W.shape[1])],
                         dtype=object)
    return result


def gradients_by_backprop(
    network: Network, weights: Sequence[ExactArray], forward: ExactForward,
    y: ExactArray,
) -> tuple[list[ExactArray], list[ExactArray]]:
    r"""Exact gradients :math:`(\delta_\ell a_{\ell-1}^\top, \delta_\ell)` per layer."""
    ds = deltas(network, weights, forward, y)
    weight_gradients = [np.outer(d, forward.a[ell]).astype(object)
                        for ell, d in enumerate(ds)]
    return weight_gradients, ds


@at_exact_precision
def check_delta_recursion(
    network: Network,
    weights: Sequence[npt.ArrayLike],
    biases: Sequence[npt.ArrayLike],
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    claimed_weight_gradients: Sequence[npt.ArrayLike],
    claimed_bias_gradients: Sequence[npt.ArrayLike],
    *,
    weight_bounds: Sequence[npt.ArrayLike],
    bias_bounds: Sequence[npt.ArrayLike],
) -> Verdict:
    r"""Judge one example's gradients against :math:`\delta_\ell a_{\ell-1}^\top, \delta_\ell`.

    Hypotheses: every activation is differentiable at its pre-activation.
    Parameters are those of
    :func:`spec.gradient_product.check_gradient_product`.
    """
    W = [to_exact(w) for w in weights]
    forward = forward_exact(network, W, [to_exact(b) for b in biases],
                            to_exact(x), to_exact(y))
    kink = first_kink(network, forward)
    if kink is not None:
        return NotApplicable(DELTA_ID, f"layer {kink[0]} unit {kink[1]} has z = 0, "
                             "where its activation is not differentiable")

    expected_W, expected_b = gradients_by_backprop(network, W, forward, to_exact(y))
    return judge_layers(DELTA_ID, expected_W, expected_b, claimed_weight_gradients,
                        claimed_bias_gradients, weight_bounds, bias_bounds)


@at_exact_precision
def check_batch_mean(
    example_losses: Sequence[Any],
    example_weight_gradients: Sequence[Sequence[ExactArray]],
    example_bias_gradients: Sequence[Sequence[ExactArray]],
    claimed_loss: float,
    claimed_weight_gradients: Sequence[npt.ArrayLike],
    claimed_bias_gradients: Sequence[npt.ArrayLike],
    *,
    loss_bound: float,
    weight_bounds: Sequence[npt.ArrayLike],
    bias_bounds: Sequence[npt.ArrayLike],
) -> Verdict:
    r"""Judge a batch loss and gradient against the means over its examples.

    .. math::

        \mathcal{L} = \frac1B\sum_{k=1}^B \ell^{(k)}, \qquad
        \nabla\mathcal{L} = \frac1B\sum_{k=1}^B \nabla\ell^{(k)}.

    Parameters
    ----------
    example_losses
        Exact :math:`\ell^{(k)}`, ``B`` values.
    example_weight_gradients, example_bias_gradients
        Exact per-example gradients: ``[k][l - 1]``.
    claimed_loss, claimed_weight_gradients, claimed_bias_gradients
        The batch quantities returned by the implementation.
    loss_bound, weight_bounds, bias_bounds
        Allowed absolute errors.
    """
    B = len(example_losses)
    mean_loss = np.array([mpmath.fsum(example_losses) / B], dtype=object)
    depth = len(example_weight_gradients[0])
    mean_W = [sum((g[ell] for g in example_weight_gradients[1:]),
                  start=example_weight_gradients[0][ell]) / B for ell in range(depth)]
    mean_b = [sum((g[ell] for g in example_bias_gradients[1:]),
                  start=example_bias_gradients[0][ell]) / B for ell in range(depth)]

    loss_verdict = compare(BATCH_ID, claimed=[claimed_loss], exact=mean_loss,
                           bound=[loss_bound], quantity="loss", batch_size=B)
    layers = judge_layers(BATCH_ID, mean_W, mean_b, claimed_weight_gradients,
                          claimed_bias_gradients, weight_bounds, bias_bounds,
                          batch_size=B)
    return worst_of([loss_verdict, layers])


DELTA_RECURSION = Result(
    id=DELTA_ID,
    kind="theorem",
    title="Backpropagation: the delta recursion",
    statement=(
        r"\delta_L = \sigma_L'(z_L) \odot \nabla_{a_L}\ell,\quad "
        r"\delta_\ell = \sigma_\ell'(z_\ell) \odot W_{\ell+1}^\top \delta_{\ell+1},"
        r"\quad \frac{\partial \ell}{\partial W_\ell} = \delta_\ell\, "
        r"a_{\ell-1}^\top,\quad \frac{\partial \ell}{\partial b_\ell} = \delta_\ell"
    ),
    hypotheses=(r"Every activation $\sigma_\ell$ is differentiable at $z_\ell$.",),
    predicate=check_delta_recursion,
    paper_section="5",
)

BATCH_MEAN = Result(
    id=BATCH_ID,
    kind="theorem",
    title="Backpropagation over a batch: the mean of example gradients",
    statement=(r"\mathcal{L} = \frac1B \sum_{k=1}^{B} \ell\bigl(a_L^{(k)}, "
               r"y^{(k)}\bigr) \implies \nabla \mathcal{L} = \frac1B "
               r"\sum_{k=1}^{B} \nabla \ell^{(k)}"),
    hypotheses=(r"Each example loss is differentiable at the parameters.",),
    predicate=check_batch_mean,
    paper_section="5",
)
