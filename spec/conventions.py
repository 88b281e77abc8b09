r"""The conventions every statement, backend and adapter uses.

Stated once here; adapters convert their library's conventions to these.

Network
    A network has :math:`L` layers and widths :math:`n_0, \dots, n_L`.
    Layer :math:`\ell` computes

    .. math::

        z_\ell = W_\ell a_{\ell-1} + b_\ell, \qquad a_\ell = \sigma_\ell(z_\ell),

    with :math:`a_0 = x`, :math:`W_\ell \in \mathbb{R}^{n_\ell \times n_{\ell-1}}`
    and :math:`b_\ell \in \mathbb{R}^{n_\ell}`. Layers are numbered from 1.
Batches
    A batch :math:`X` is ``B x n_0`` (one example per row), targets :math:`Y`
    are ``B x n_L``. The batch loss is the mean of the example losses:
    :math:`\mathcal{L} = \frac1B \sum_k \ell(a_L^{(k)}, y^{(k)})`.
Jacobians
    :math:`J_f(x)` is output-by-input, ``m x n`` for
    :math:`f:\mathbb{R}^n\to\mathbb{R}^m`, with entries
    :math:`\partial f_i / \partial x_j`.
vec
    ``vec`` stacks columns: :math:`\operatorname{vec}(W)_{i + j m} = W_{ij}` for
    ``W`` of shape ``m x n`` (NumPy ``order="F"``). Then
    :math:`\operatorname{vec}(W a) = (a^\top \otimes I_m)\operatorname{vec}(W)`.
Gradients
    A backend returns :math:`\partial\mathcal{L}/\partial W_\ell` in the shape of
    :math:`W_\ell`, entry ``[i, j]`` being the partial derivative with respect
    to ``W[i, j]``; that is :math:`\operatorname{vec}^{-1}` of the transposed
    Jacobian :math:`J_{\operatorname{vec} W_\ell}^\top`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np

from spec._verdict import ExactArray, FloatArray

LEAKY_RELU_SLOPE = "0.01"
"""Slope of leaky ReLU for :math:`z < 0`, as an exact decimal string."""

ELU_ALPHA = "1"
r"""The :math:`\alpha` of ELU, :math:`\alpha(e^z - 1)` for :math:`z < 0`."""


class Activation(str, enum.Enum):
    """Elementwise activations :math:`\\sigma`."""

    IDENTITY = "identity"
    SIGMOID = "sigmoid"
    TANH = "tanh"
    RELU = "relu"
    LEAKY_RELU = "leaky_relu"
    SOFTPLUS = "softplus"
    ELU = "elu"

    @property
    def has_kink(self) -> bool:
        """Whether :math:`\\sigma` fails to be differentiable at ``z = 0``."""
        return self in (Activation.RELU, Activation.LEAKY_RELU)


class Loss(str, enum.Enum):
    r"""Example losses :math:`\ell(a, y)` on the last layer's output."""

    SQUARED_ERROR = "squared_error"
    SOFTMAX_CROSS_ENTROPY = "softmax_cross_entropy"


@dataclass(frozen=True)
class Network:
    """The shape of a network: widths, one activation per layer, the loss.

    >>> net = Network((3, 4, 2), (Activation.TANH, Activation.IDENTITY),
    ...               Loss.SQUARED_ERROR)
    >>> net.depth
    2
    """

    widths: tuple[int, ...]
    activations: tuple[Activation, ...]
    loss: Loss

    def __post_init__(self) -> None:
        if len(self.widths) < 2:
            raise ValueError(f"widths={self.widths!r}: need at least n_0 and n_1")
        if any(int(w) < 1 for w in self.widths):
            raise ValueError(f"widths={self.widths!r}: every width must be >= 1")
        if len(self.activations) != len(self.widths) - 1:
            raise ValueError(
                f"activations has {len(self.activations)} entries but "
                f"widths={self.widths!r} describes {len(self.widths) - 1} layers"
            )

    @property
    def depth(self) -> int:
        """The number of layers :math:`L`."""
        return len(self.widths) - 1

    def weight_shape(self, layer_index: int) -> tuple[int, int]:
        """Shape ``(n_l, n_{l-1})`` of :math:`W_\\ell`, ``layer_index`` from 1."""
        return (self.widths[layer_index], self.widths[layer_index - 1])

    def describe(self) -> str:
        """One line: ``3-4-2 tanh,identity squared_error``."""
        widths = "-".join(str(w) for w in self.widths)
        activations = ",".join(a.value for a in self.activations)
        return f"{widths} {activations} {self.loss.value}"


@dataclass(frozen=True)
class Parameters:
    """Weights and biases, ``weights[l - 1]`` being :math:`W_\\ell`.

    The same structure carries gradients: ``weights[l - 1]`` is then
    :math:`\\partial\\mathcal{L}/\\partial W_\\ell` in the shape of
    :math:`W_\\ell`.
    """

    weights: tuple[FloatArray, ...]
    biases: tuple[FloatArray, ...]

    def copy(self) -> Parameters:
        """A deep copy, so a backend cannot alter the caller's arrays."""
        return Parameters(tuple(w.copy() for w in self.weights),
                          tuple(b.copy() for b in self.biases))


@dataclass(frozen=True)
class LossAndGradients:
    """What every backend returns: the batch loss and its gradients."""

    loss: float
    gradients: Parameters


def vec(matrix: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Stack the columns of ``matrix`` into one vector.

    >>> vec(np.array([[1, 2], [3, 4]])).tolist()
    [1, 3, 2, 4]
    """
    return np.asarray(matrix).reshape(-1, order="F")


def unvec(vector: np.ndarray[Any, Any], shape: tuple[int, int]) -> \
        np.ndarray[Any, Any]:
    """Inverse of :func:`vec` for a matrix of ``shape``."""
    return np.asarray(vector).reshape(shape, order="F")


# Exact definitions (mpmath). These are the definitions the statements and the
# oracle use; fast float versions live with the backends.

def sigma(activation: Activation, z: Any) -> Any:
    r"""The activation :math:`\sigma(z)` in exact arithmetic.

    .. math::

        \operatorname{sigmoid}(z) = \frac{1}{1+e^{-z}},\quad
        \operatorname{softplus}(z) = \log(1 + e^z),\quad
        \operatorname{elu}(z) = \begin{cases} z & z > 0\\
            \alpha(e^z-1) & z \le 0\end{cases}

    >>> sigma(Activation.SOFTPLUS, mpmath.mpf(0)) == mpmath.log(2)
    True
    """
    z = mpmath.mpf(z)
    if activation is Activation.IDENTITY:
        return z
    if activation is Activation.SIGMOID:
        return 1 / (1 + mpmath.exp(-z))
    if activation is Activation.TANH:
        return mpmath.tanh(z)
    if activation is Activation.RELU:
        return z if z > 0 else mpmath.mpf(0)
    if activation is Activation.LEAKY_RELU:
        return z if z > 0 else mpmath.mpf(LEAKY_RELU_SLOPE) * z
    if activation is Activation.SOFTPLUS:
        return mpmath.log1p(mpmath.exp(z))
    if activation is Activation.ELU:
        return z if z > 0 else mpmath.mpf(ELU_ALPHA) * mpmath.expm1(z)
    raise ValueError(f"activation={activation!r} is not an Activation")


def sigma_prime(activation: Activation, z: Any, *, at_kink: str = "left") -> Any:
    r"""The derivative :math:`\sigma'(z)` in exact arithmetic.

    At a kink (``z = 0`` for ReLU and leaky ReLU) the derivative does not
    exist; ``at_kink`` picks the one-sided value (``"left"`` or ``"right"``)
    that some implementations use by convention. Statements never rely on it.

    >>> sigma_prime(Activation.RELU, 0, at_kink="right")
    mpf('1.0')
    """
    z = mpmath.mpf(z)
    right = at_kink == "right"
    if activation is Activation.IDENTITY:
        return mpmath.mpf(1)
    if activation is Activation.SIGMOID:
        # s (1 - s) = e / (1 + e)^2 with e = exp(-|z|): no cancellation in
        # 1 - s where s is close to 1.
        e = mpmath.exp(-abs(z))
        return e / (1 + e) ** 2
    if activation is Activation.TANH:
        return 1 / mpmath.cosh(z) ** 2
    if activation is Activation.RELU:
        return mpmath.mpf(1) if z > 0 or (z == 0 and right) else mpmath.mpf(0)
    if activation is Activation.LEAKY_RELU:
        positive = z > 0 or (z == 0 and right)
        return mpmath.mpf(1) if positive else mpmath.mpf(LEAKY_RELU_SLOPE)
    if activation is Activation.SOFTPLUS:
        return 1 / (1 + mpmath.exp(-z))
    if activation is Activation.ELU:
        return mpmath.mpf(1) if z > 0 else mpmath.mpf(ELU_ALPHA) * mpmath.exp(z)
    raise ValueError(f"activation={activation!r} is not an Activation")


def sigma_second(activation: Activation, z: Any) -> Any:
    r"""The second derivative :math:`\sigma''(z)`, zero away from kinks.

    Used to propagate rounding errors through :math:`\sigma'`.
    """
    z = mpmath.mpf(z)
    if activation in (Activation.SIGMOID, Activation.SOFTPLUS):
        s = 1 / (1 + mpmath.exp(-z))
        d = s * (1 - s)
        return d if activation is Activation.SOFTPLUS else d * (1 - 2 * s)
    if activation is Activation.TANH:
        return -2 * mpmath.tanh(z) / mpmath.cosh(z) ** 2
    if activation is Activation.ELU:
        return mpmath.mpf(0) if z > 0 else mpmath.mpf(ELU_ALPHA) * mpmath.exp(z)
    return mpmath.mpf(0)


def is_differentiable_at(activation: Activation, z: Any) -> bool:
    """Whether :math:`\\sigma` is differentiable at ``z`` (false only at kinks).

    ELU with :math:`\\alpha = 1` is differentiable at 0 (both sides have
    slope 1).
    """
    return not (activation.has_kink and mpmath.mpf(z) == 0)


def softmax(a: Sequence[Any]) -> list[Any]:
    r""":math:`p_i = e^{a_i} / \sum_j e^{a_j}` in exact arithmetic (shifted)."""
    shift = max(a)
    exps = [mpmath.exp(v - shift) for v in a]
    total = mpmath.fsum(exps)
    return [e / total for e in exps]


def example_loss(loss: Loss, a: Sequence[Any], y: Sequence[Any]) -> Any:
    r"""The example loss :math:`\ell(a, y)` in exact arithmetic.

    .. math::

        \ell_{\mathrm{se}}(a, y) = \tfrac12\lVert a - y\rVert^2, \qquad
        \ell_{\mathrm{ce}}(a, y) = -\sum_i y_i \log \operatorname{softmax}(a)_i.
    """
    if loss is Loss.SQUARED_ERROR:
        return mpmath.fsum((ai - yi) ** 2 for ai, yi in zip(a, y)) / 2
    if loss is Loss.SOFTMAX_CROSS_ENTROPY:
        # log sum exp(a) = a_k + log1p(sum_{i != k} exp(a_i - a_k)), k = argmax:
        # keeps a loss of 1e-40 exact instead of rounding log(1 + 1e-40) to 0.
        k = max(range(len(a)), key=lambda i: a[i])
        rest = mpmath.fsum(mpmath.exp(a[i] - a[k]) for i in range(len(a)) if i != k)
        log_sum = mpmath.log1p(rest)
        return mpmath.fsum(yi * ((a[k] - ai) + log_sum) for ai, yi in zip(a, y))
    raise ValueError(f"loss={loss!r} is not a Loss")


@dataclass(frozen=True)
class ExactForward:
    """Every intermediate of one example's forward pass, exact.

    ``z[l - 1]`` and ``a[l]`` belong to layer :math:`\\ell`; ``a[0]`` is the input.
    """

    z: tuple[ExactArray, ...]
    a: tuple[ExactArray, ...]
    loss: Any


def forward_exact(
    network: Network,
    weights: Sequence[ExactArray],
    biases: Sequence[ExactArray],
    x: ExactArray,
    y: ExactArray,
) -> ExactForward:
    """Evaluate the network and the example loss in exact arithmetic.

    Parameters
    ----------
    weights, biases
        Exact ``W_l`` (``n_l x n_{l-1}``) and ``b_l`` (``n_l``).
    x, y
        One example, ``n_0`` and ``n_L`` entries.
    """
    a_previous = np.asarray(x, dtype=object)
    zs: list[ExactArray] = []
    activations: list[ExactArray] = [a_previous]
    for W, b, activation in zip(weights, biases, network.activations):
        z = np.array([mpmath.fdot(row, a_previous) + bi for row, bi in zip(W, b)],
                     dtype=object)
        a_previous = np.array([sigma(activation, v) for v in z], dtype=object)
        zs.append(z)
        activations.append(a_previous)

    value = example_loss(network.loss, list(a_previous), list(y))
    return ExactForward(tuple(zs), tuple(activations), value)
