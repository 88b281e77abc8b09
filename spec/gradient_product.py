r"""Theorem: the gradient of the loss is a product of Jacobians.

As a function of one layer's vectorised weights, the example loss is the
composition
:math:`\operatorname{vec} W_\ell \mapsto z_\ell \mapsto a_\ell \mapsto z_{\ell+1}
\mapsto \cdots \mapsto a_L \mapsto \ell`, so by the chain rule

.. math::

    \nabla_{\operatorname{vec} W_\ell}\,\ell =
    \Bigl(J_\ell(a_L)\, D_L W_L\, D_{L-1} \cdots W_{\ell+1}\, D_\ell\,
    (a_{\ell-1}^\top \otimes I)\Bigr)^\top,
    \qquad D_k = \operatorname{diag}\bigl(\sigma_k'(z_k)\bigr),

and the same product ending in :math:`I` instead of the Kronecker factor gives
:math:`\nabla_{b_\ell}\ell`. Restates item 4 of the paper's summary, the paper's
main result.
"""

from __future__ import annotations

from collections.abc import Sequence

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
from spec.conventions import ExactForward, Network, forward_exact, unvec
from spec.layer_jacobians import activation_jacobian, affine_jacobians
from spec.loss_gradient import loss_gradient

RESULT_ID = "gradient-product"


def gradients_by_jacobian_product(
    network: Network,
    weights: Sequence[ExactArray],
    forward: ExactForward,
    y: ExactArray,
) -> tuple[list[ExactArray], list[ExactArray]]:
    r"""Each layer's exact gradients, by multiplying the explicit Jacobians.

    Every factor is formed as a matrix, as in the statement: the loss's
    Jacobian (a row), each :math:`D_k` and :math:`W_k`, and the Kronecker
    matrix. Layers are computed independently of each other; reusing the
    shared left factors across layers is what backpropagation adds.

    Returns
    -------
    (weight_gradients, bias_gradients)
        ``weight_gradients[l - 1]`` in the shape of :math:`W_\ell`.
    """
    L = network.depth
    J_loss = loss_gradient(network.loss, list(forward.a[L]), list(y)).reshape(1, -1)
    weight_gradients: list[ExactArray] = []
    bias_gradients: list[ExactArray] = []
    for ell in range(1, L + 1):
        row = J_loss
        for k in range(L, ell, -1):
            row = row.dot(activation_jacobian(network.activations[k - 1],
                                              list(forward.z[k - 1])))
            row = row.dot(np.asarray(weights[k - 1], dtype=object))
        row = row.dot(activation_jacobian(network.activations[ell - 1],
                                          list(forward.z[ell - 1])))
        _, J_b, J_W = affine_jacobians(np.asarray(weights[ell - 1], dtype=object),
                                       forward.a[ell - 1])
        weight_gradients.append(unvec(row.dot(J_W)[0], network.weight_shape(ell)))
        bias_gradients.append(row.dot(J_b)[0])
    return weight_gradients, bias_gradients


def first_kink(network: Network, forward: ExactForward) -> tuple[int, int] | None:
    """The first ``(layer_index, unit)`` whose activation sits on its kink."""
    for ell, (activation, z) in enumerate(zip(network.activations, forward.z), 1):
        if activation.has_kink:
            for unit, value in enumerate(z):
                if value == 0:
                    return ell, unit
    return None


@at_exact_precision
def check_gradient_product(
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
    result_id: str = RESULT_ID,
) -> Verdict:
    r"""Judge one example's gradients, every layer, against the product.

    Hypotheses: every activation is differentiable at its pre-activation;
    where one is not (a ReLU unit with :math:`z = 0`), the verdict is
    :class:`NotApplicable`.

    Parameters
    ----------
    network
        Widths, activations, loss.
    weights, biases
        :math:`W_\ell` (``n_l x n_{l-1}``), :math:`b_\ell` (``n_l``), floats.
    x, y
        One example: ``n_0`` inputs, ``n_L`` targets.
    claimed_weight_gradients, claimed_bias_gradients
        Per layer, shapes of :math:`W_\ell` and :math:`b_\ell`.
    weight_bounds, bias_bounds
        Allowed absolute errors per layer, broadcastable to those shapes.
    """
    W = [to_exact(w) for w in weights]
    forward = forward_exact(network, W, [to_exact(b) for b in biases],
                            to_exact(x), to_exact(y))
    kink = first_kink(network, forward)
    if kink is not None:
        return NotApplicable(result_id, f"layer {kink[0]} unit {kink[1]} has "
                             "z = 0, where its activation is not differentiable")

    expected_W, expected_b = gradients_by_jacobian_product(network, W, forward,
                                                           to_exact(y))
    return judge_layers(result_id, expected_W, expected_b, claimed_weight_gradients,
                        claimed_bias_gradients, weight_bounds, bias_bounds)


def judge_layers(
    result_id: str,
    expected_W: Sequence[ExactArray],
    expected_b: Sequence[ExactArray],
    claimed_W: Sequence[npt.ArrayLike],
    claimed_b: Sequence[npt.ArrayLike],
    weight_bounds: Sequence[npt.ArrayLike],
    bias_bounds: Sequence[npt.ArrayLike],
    batch_size: int | None = None,
) -> Verdict:
    """Compare every layer's weight and bias gradient; the worst verdict wins."""
    verdicts: list[Verdict] = []
    for ell in range(len(expected_W)):
        verdicts.append(compare(result_id, claimed=claimed_W[ell],
                                exact=expected_W[ell], bound=weight_bounds[ell],
                                quantity="weight_gradient", layer_index=ell + 1,
                                batch_size=batch_size))
        verdicts.append(compare(result_id, claimed=claimed_b[ell],
                                exact=expected_b[ell], bound=bias_bounds[ell],
                                quantity="bias_gradient", layer_index=ell + 1,
                                batch_size=batch_size))
    return worst_of(verdicts)


GRADIENT_PRODUCT = Result(
    id=RESULT_ID,
    kind="theorem",
    title="Gradient as a product of Jacobians",
    statement=(
        r"\nabla_{\operatorname{vec} W_\ell}\, \ell = \Bigl(J_\ell(a_L)\, D_L W_L\, "
        r"D_{L-1} \cdots W_{\ell+1}\, D_\ell\, (a_{\ell-1}^\top \otimes I)\Bigr)^\top,"
        r"\quad \nabla_{b_\ell}\, \ell = \Bigl(J_\ell(a_L)\, D_L W_L \cdots "
        r"W_{\ell+1}\, D_\ell\Bigr)^\top,\quad "
        r"D_k = \operatorname{diag}\bigl(\sigma_k'(z_k)\bigr)"
    ),
    hypotheses=(
        r"Every activation $\sigma_k$ is differentiable at $z_k$.",
        r"Layer $\ell$ computes $z_\ell = W_\ell a_{\ell-1} + b_\ell$, "
        r"$a_\ell = \sigma_\ell(z_\ell)$, with $a_0 = x$.",
    ),
    predicate=check_gradient_product,
    paper_section="4",
    conventions=("vec stacks columns", "gradients have the shape of their parameter"),
)
