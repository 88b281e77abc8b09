r"""Lemmas: the Jacobians of one layer's pieces.

For the affine map :math:`z = W a + b` with :math:`W` of shape ``m x n``,

.. math::

    J_a = W, \qquad J_b = I_m, \qquad
    J_{\operatorname{vec} W} = a^\top \otimes I_m \in \mathbb{R}^{m \times mn};

for an elementwise activation, :math:`J = \operatorname{diag}(\sigma'(z))`; for
softmax :math:`p = \operatorname{softmax}(a)`, :math:`J = \operatorname{diag}(p) -
p p^\top`. Restates item 3 of the paper's summary.
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
    Holds,
    NotApplicable,
    Result,
    Verdict,
    compare,
    to_exact,
    worst_of,
)
from spec.conventions import (
    Activation,
    is_differentiable_at,
    sigma_prime,
    softmax,
    unvec,
)

AFFINE_ID = "layer-jacobian.affine"
ACTIVATION_ID = "layer-jacobian.activation"
SOFTMAX_ID = "layer-jacobian.softmax"


def affine_jacobians(W: ExactArray, a: ExactArray) -> tuple[ExactArray, ExactArray,
                                                            ExactArray]:
    r"""The three Jacobians of :math:`z = W a + b`: :math:`(J_a, J_b, J_{\mathrm{vec} W})`.

    >>> W = to_exact([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    >>> J_a, J_b, J_W = affine_jacobians(W, to_exact([7.0, 8.0]))
    >>> J_W.shape, float(J_W[1, 1]), float(J_W[1, 4])
    ((3, 6), 7.0, 8.0)
    """
    m = W.shape[0]
    identity = np.array([[mpmath.mpf(int(i == j)) for j in range(m)]
                         for i in range(m)], dtype=object)
    J_W = np.kron(np.asarray(a, dtype=object).reshape(1, -1), identity)
    return np.array(W, dtype=object), identity, J_W


@at_exact_precision
def check_affine_layer(
    W: npt.ArrayLike,
    a: npt.ArrayLike,
    upstream: ExactArray,
    claimed_weight_gradient: npt.ArrayLike,
    claimed_bias_gradient: npt.ArrayLike,
    *,
    weight_bound: npt.ArrayLike,
    bias_bound: npt.ArrayLike,
    layer_index: int = 1,
) -> Verdict:
    r"""Judge gradients through one affine layer against its Jacobians.

    With :math:`g = \partial\ell/\partial z` (a row vector) arriving from
    above, the lemma gives the gradients with respect to the parameters:

    .. math::

        \nabla_{\operatorname{vec} W}\,\ell = (a^\top \otimes I)^\top g^\top,
        \qquad \nabla_b\,\ell = I^\top g^\top.

    The Kronecker matrix is formed explicitly, as in the statement, and the
    claimed weight gradient (shape of :math:`W`) is vectorised by columns.

    Parameters
    ----------
    W
        ``m x n`` weights (only the shape is used by the weight Jacobian).
    a
        The layer's input, ``n`` entries.
    upstream
        Exact :math:`\partial\ell/\partial z`, ``m`` entries.
    claimed_weight_gradient, claimed_bias_gradient
        ``m x n`` and ``m``.
    weight_bound, bias_bound
        Allowed absolute errors, broadcastable to those shapes.
    """
    _, J_b, J_W = affine_jacobians(to_exact(W), to_exact(a))
    g = np.asarray(upstream, dtype=object)
    shape = np.shape(W)
    expected_W = unvec(J_W.T.dot(g), (shape[0], shape[1]))
    expected_b = J_b.T.dot(g)

    return worst_of([
        compare(AFFINE_ID, claimed=claimed_weight_gradient, exact=expected_W,
                bound=weight_bound, quantity="weight_gradient",
                layer_index=layer_index),
        compare(AFFINE_ID, claimed=claimed_bias_gradient, exact=expected_b,
                bound=bias_bound, quantity="bias_gradient",
                layer_index=layer_index),
    ])


def activation_jacobian(activation: Activation, z: Sequence[Any]) -> ExactArray:
    r""":math:`\operatorname{diag}(\sigma'(z))`, exact; only where differentiable."""
    n = len(z)
    return np.array([[sigma_prime(activation, z[i]) if i == j else mpmath.mpf(0)
                      for j in range(n)] for i in range(n)], dtype=object)


@at_exact_precision
def check_activation_layer(
    activation: Activation,
    z: npt.ArrayLike,
    upstream: ExactArray,
    claimed: npt.ArrayLike,
    *,
    bound: npt.ArrayLike,
    layer_index: int = 1,
    quantity: str = "bias_gradient",
) -> Verdict:
    r"""Judge a gradient through an elementwise activation.

    .. math::

        \nabla_z\,\ell = \operatorname{diag}(\sigma'(z))^\top
        \nabla_a\,\ell, \qquad a = \sigma(z).

    Hypotheses: :math:`\sigma` is differentiable at every :math:`z_i`. Where
    one :math:`z_i` is a kink, the verdict is :class:`NotApplicable`, and the
    one-sided derivative the claimed value matches, if any, is named as the
    implementation's convention.

    Parameters
    ----------
    z
        Pre-activations, ``m`` entries (exact or float).
    upstream
        Exact :math:`\nabla_a\ell`, ``m`` entries.
    claimed
        Claimed :math:`\nabla_z\ell`, ``m`` entries.
    bound
        Allowed absolute errors.
    """
    z_exact = _as_exact(z)
    g = np.asarray(upstream, dtype=object)
    kinks = [i for i, v in enumerate(z_exact)
             if not is_differentiable_at(activation, v)]
    if kinks:
        return _kink_verdict(activation, z_exact, g, claimed, bound, kinks,
                             layer_index)

    expected = activation_jacobian(activation, list(z_exact)).T.dot(g)
    return compare(ACTIVATION_ID, claimed=claimed, exact=expected, bound=bound,
                   quantity=quantity, layer_index=layer_index)


def _kink_verdict(
    activation: Activation,
    z: ExactArray,
    g: ExactArray,
    claimed: npt.ArrayLike,
    bound: npt.ArrayLike,
    kinks: list[int],
    layer_index: int,
) -> NotApplicable:
    convention = ""
    for side in ("left", "right"):
        slope = activation_slope(activation, side)
        one_sided = np.array([sigma_prime(activation, v, at_kink=side) * gi
                              for v, gi in zip(z, g)], dtype=object)
        judged = compare(ACTIVATION_ID, claimed=claimed, exact=one_sided,
                         bound=bound, quantity="bias_gradient")
        if isinstance(judged, Holds):
            convention = f"{activation.value}'(0) = {slope}"
            break
    reason = (f"{activation.value} is not differentiable at z = 0, and "
              f"layer {layer_index} has z[{kinks[0]}] = 0")
    return NotApplicable(ACTIVATION_ID, reason, convention)


def activation_slope(activation: Activation, side: str) -> str:
    """The one-sided slope at the kink, as text (``"0"``, ``"0.01"``, ``"1"``)."""
    value = sigma_prime(activation, 0, at_kink=side)
    return f"{float(value):g}"


def softmax_jacobian(a: Sequence[Any]) -> ExactArray:
    r""":math:`\operatorname{diag}(p) - p p^\top` with :math:`p = \operatorname{softmax}(a)`.

    >>> J = softmax_jacobian(to_exact([0.0, 0.0]))
    >>> [[float(v) for v in row] for row in J]
    [[0.25, -0.25], [-0.25, 0.25]]
    """
    p = softmax(list(a))
    n = len(p)
    return np.array([[(p[i] if i == j else 0) - p[i] * p[j] for j in range(n)]
                     for i in range(n)], dtype=object)


@at_exact_precision
def check_softmax_layer(
    a: npt.ArrayLike,
    upstream: ExactArray,
    claimed: npt.ArrayLike,
    *,
    bound: npt.ArrayLike,
    layer_index: int | None = None,
    quantity: str = "bias_gradient",
) -> Verdict:
    r"""Judge a gradient through softmax: :math:`\nabla_a = J_{\mathrm{softmax}}^\top \nabla_p`.

    .. math::

        J_{\mathrm{softmax}}(a) = \operatorname{diag}(p) - p p^\top.

    Parameters
    ----------
    a
        Logits, ``m`` entries.
    upstream
        Exact :math:`\nabla_p\ell`, ``m`` entries.
    claimed
        Claimed :math:`\nabla_a\ell`.
    bound
        Allowed absolute errors.
    """
    expected = softmax_jacobian(list(_as_exact(a))).T.dot(
        np.asarray(upstream, dtype=object))
    return compare(SOFTMAX_ID, claimed=claimed, exact=expected, bound=bound,
                   quantity=quantity, layer_index=layer_index)


def _as_exact(values: npt.ArrayLike) -> ExactArray:
    array = np.asarray(values)
    if array.dtype == object:
        return array
    return to_exact(array)


AFFINE_LAYER = Result(
    id=AFFINE_ID,
    kind="lemma",
    title="Jacobians of an affine layer",
    statement=(
        r"z = W a + b:\quad J_a = W,\quad J_b = I_m,\quad "
        r"J_{\operatorname{vec} W} = a^\top \otimes I_m"
    ),
    hypotheses=(r"$W \in \mathbb{R}^{m\times n}$, $a \in \mathbb{R}^n$, "
                r"$b \in \mathbb{R}^m$; vec stacks columns.",),
    predicate=check_affine_layer,
    paper_section="3",
    conventions=("vec stacks columns", "Kronecker factor order a^T (x) I"),
)

ACTIVATION_LAYER = Result(
    id=ACTIVATION_ID,
    kind="lemma",
    title="Jacobian of an elementwise activation",
    statement=(r"a = \sigma(z) \text{ elementwise}:\quad "
               r"J_z = \operatorname{diag}\bigl(\sigma'(z)\bigr)"),
    hypotheses=(r"$\sigma$ is differentiable at every $z_i$ (ReLU and leaky "
                r"ReLU are not at $0$).",),
    predicate=check_activation_layer,
    paper_section="3",
)

SOFTMAX_LAYER = Result(
    id=SOFTMAX_ID,
    kind="lemma",
    title="Jacobian of softmax",
    statement=(r"p = \operatorname{softmax}(a):\quad "
               r"J_a = \operatorname{diag}(p) - p\,p^\top"),
    hypotheses=(r"$a \in \mathbb{R}^m$ (softmax is smooth everywhere).",),
    predicate=check_softmax_layer,
    paper_section="3",
)
