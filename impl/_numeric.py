r"""Activations and losses shared by the bundled numpy backends.

Each formula is the numerically stable form: sigmoid never evaluates
:math:`e^{-z}` for very negative :math:`z`, softplus is
:math:`\max(z, 0) + \log(1 + e^{-|z|})`, ELU uses ``expm1``, and softmax
subtracts the largest logit. At a kink the derivative is the left one
(:math:`\operatorname{relu}'(0) = 0`), a convention the suite reports and
never fails. Results keep the dtype of their arguments: float32 in gives
float32 out, with no float64 intermediate.
"""

from __future__ import annotations

import numpy as np

from spec import Activation, FloatArray, Loss
from spec.conventions import ELU_ALPHA, LEAKY_RELU_SLOPE

SLOPE = float(LEAKY_RELU_SLOPE)
ALPHA = float(ELU_ALPHA)


def _f64(values: object, like: FloatArray | None = None) -> FloatArray:
    """``values`` as an array of ``like``'s dtype (float64 when not given)."""
    dtype = like.dtype if like is not None else np.float64
    return np.asarray(values, dtype=dtype)


def sigmoid(z: FloatArray) -> FloatArray:
    """:math:`1/(1+e^{-z})` without overflow for either sign of ``z``."""
    # 1/(1 + e) where z >= 0, e/(1 + e) elsewhere, with e = exp(-|z|) <= 1.
    e = np.exp(-np.abs(z))
    denominator = 1.0 + e
    s = np.divide(1.0, denominator)
    np.divide(e, denominator, out=s, where=z < 0)
    return _f64(s, z)


def sigma(activation: Activation, z: FloatArray) -> FloatArray:
    """Apply the activation elementwise."""
    if activation is Activation.IDENTITY:
        return z.copy()
    if activation is Activation.SIGMOID:
        return sigmoid(z)
    if activation is Activation.TANH:
        return np.tanh(z)
    if activation is Activation.RELU:
        return np.maximum(z, 0.0)
    if activation is Activation.LEAKY_RELU:
        return _f64(np.where(z > 0, z, SLOPE * z), z)
    if activation is Activation.SOFTPLUS:
        return _f64(np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z))), z)
    if activation is Activation.ELU:
        return _f64(np.where(z > 0, z, ALPHA * np.expm1(np.minimum(z, 0.0))), z)
    raise ValueError(f"activation={activation!r} is not an Activation")


def sigma_prime(activation: Activation, z: FloatArray) -> FloatArray:
    """The derivative elementwise; the left derivative at kinks."""
    if activation is Activation.IDENTITY:
        return np.ones_like(z)
    if activation is Activation.SOFTPLUS:
        return sigmoid(z)
    if activation is Activation.SIGMOID:
        # e / (1 + e)^2 with e = exp(-|z|): one exponential, no cancellation.
        e = np.exp(-np.abs(z))
        return _f64(e / (1.0 + e) ** 2, z)
    if activation is Activation.TANH:
        t = np.tanh(z)
        return _f64(1.0 - t * t, z)
    if activation is Activation.RELU:
        return _f64(z > 0, z)
    if activation is Activation.LEAKY_RELU:
        return np.where(z > 0, z.dtype.type(1.0), z.dtype.type(SLOPE))
    if activation is Activation.ELU:
        return _f64(np.where(z > 0, 1.0, ALPHA * np.exp(np.minimum(z, 0.0))), z)
    raise ValueError(f"activation={activation!r} is not an Activation")


FROM_VALUE = frozenset({Activation.IDENTITY, Activation.RELU, Activation.TANH})
r"""Activations whose derivative is a function of their value
:math:`a = \sigma(z)` with no loss of accuracy: 1, :math:`[a > 0]` (the
same as :math:`[z > 0]`, the left derivative at 0) and :math:`1 - a^2`
(what :func:`sigma_prime` computes after its own ``tanh``)."""


def sigma_over(activation: Activation, z: FloatArray) -> FloatArray:
    """:func:`sigma`, written over ``z`` for the activations in
    :data:`FROM_VALUE` (whose backward pass needs no ``z``)."""
    if activation not in FROM_VALUE:
        return sigma(activation, z)
    if activation is Activation.RELU:
        return np.maximum(z, 0.0, out=z)
    if activation is Activation.TANH:
        return np.tanh(z, out=z)
    return z


def backpropagate(activation: Activation, z: FloatArray, a: FloatArray,
                  G: FloatArray) -> FloatArray:
    r""":math:`\Delta = \sigma'(z) \odot G`, written over ``G``.

    ``a`` is :math:`\sigma(z)` as the forward pass computed it. For the
    activations in :data:`FROM_VALUE` only ``a`` is read (``z`` may be ``a``
    itself, see :func:`sigma_over`); the others evaluate
    :func:`sigma_prime` at ``z``. ``G`` must be an array the caller owns and
    no longer needs.
    """
    if activation is Activation.RELU:
        return np.multiply(G, a > 0, out=G)
    if activation is Activation.IDENTITY:
        return G
    if activation is Activation.TANH:
        D = a * a
        np.subtract(1.0, D, out=D)
        return np.multiply(G, D, out=G)
    return np.multiply(G, sigma_prime(activation, z), out=G)


def _row_sums(M: FloatArray) -> FloatArray:
    """Each row's sum, as a product with a vector of ones.

    The same sum in another order (any order meets the same error bound);
    for rows of tens of entries it is several times faster than
    ``M.sum(axis=-1)``.
    """
    return np.asarray(M @ np.ones(M.shape[-1], dtype=M.dtype))


def log_softmax(A: FloatArray) -> FloatArray:
    r"""Row-wise :math:`a - \log\sum e^{a}`, shifted by the row maximum."""
    shifted = A - A.max(axis=-1, keepdims=True)
    shifted -= np.log(_row_sums(np.exp(shifted)))[..., None]
    return _f64(shifted, A)


def losses_and_gradient(loss: Loss, A: FloatArray, Y: FloatArray) -> \
        tuple[FloatArray, FloatArray]:
    """:func:`example_losses` and :func:`loss_gradient` of the same rows, with
    the softmax computed once."""
    if loss is Loss.SQUARED_ERROR:
        D = A - Y
        return _f64(0.5 * np.einsum("ij,ij->i", D, D), A), D
    if loss is Loss.SOFTMAX_CROSS_ENTROPY:
        log_p = log_softmax(A)
        losses = _f64(-np.einsum("ij,ij->i", Y, log_p), A)
        # p sum(y) - y, with p = exp(log_p) in log_p's place.
        G = np.exp(log_p, out=log_p)
        G *= _row_sums(Y)[..., None]
        G -= Y
        return losses, G
    raise ValueError(f"loss={loss!r} is not a Loss")


def example_losses(loss: Loss, A: FloatArray, Y: FloatArray) -> FloatArray:
    """One loss per row of ``A`` (``B x n_L``)."""
    if loss is Loss.SQUARED_ERROR:
        D = A - Y
        return _f64(0.5 * np.einsum("ij,ij->i", D, D), A)
    if loss is Loss.SOFTMAX_CROSS_ENTROPY:
        return _f64(-np.einsum("ij,ij->i", Y, log_softmax(A)), A)
    raise ValueError(f"loss={loss!r} is not a Loss")


def loss_gradient(loss: Loss, A: FloatArray, Y: FloatArray) -> FloatArray:
    r"""Row-wise :math:`\nabla_a\ell`, ``B x n_L``."""
    return losses_and_gradient(loss, A, Y)[1]
