r"""Float64 activations and losses shared by the bundled numpy backends.

Each formula is the numerically stable form: sigmoid never evaluates
:math:`e^{-z}` for very negative :math:`z`, softplus is
:math:`\max(z, 0) + \log(1 + e^{-|z|})`, ELU uses ``expm1``, and softmax
subtracts the largest logit. At a kink the derivative is the left one
(:math:`\operatorname{relu}'(0) = 0`), a convention the suite reports and
never fails.
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
    e = np.exp(-np.abs(z))
    return _f64(np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)), z)


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
    if activation in (Activation.SIGMOID, Activation.SOFTPLUS):
        s = sigmoid(z)
        if activation is Activation.SOFTPLUS:
            return s
        e = np.exp(-np.abs(z))
        return _f64(e / (1.0 + e) ** 2, z)
    if activation is Activation.TANH:
        t = np.tanh(z)
        return _f64(1.0 - t * t, z)
    if activation is Activation.RELU:
        return _f64(z > 0, z)
    if activation is Activation.LEAKY_RELU:
        return _f64(np.where(z > 0, 1.0, SLOPE), z)
    if activation is Activation.ELU:
        return _f64(np.where(z > 0, 1.0, ALPHA * np.exp(np.minimum(z, 0.0))), z)
    raise ValueError(f"activation={activation!r} is not an Activation")


def log_softmax(A: FloatArray) -> FloatArray:
    """Row-wise :math:`a - \\log\\sum e^{a}`, shifted by the row maximum."""
    shifted = A - A.max(axis=-1, keepdims=True)
    return _f64(shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True)), A)


def example_losses(loss: Loss, A: FloatArray, Y: FloatArray) -> FloatArray:
    """One loss per row of ``A`` (``B x n_L``)."""
    if loss is Loss.SQUARED_ERROR:
        D = A - Y
        return _f64(0.5 * np.einsum("ij,ij->i", D, D), A)
    if loss is Loss.SOFTMAX_CROSS_ENTROPY:
        return _f64(-np.einsum("ij,ij->i", Y, log_softmax(A)), A)
    raise ValueError(f"loss={loss!r} is not a Loss")


def loss_gradient(loss: Loss, A: FloatArray, Y: FloatArray) -> FloatArray:
    """Row-wise :math:`\\nabla_a\\ell`, ``B x n_L``."""
    if loss is Loss.SQUARED_ERROR:
        return A - Y
    if loss is Loss.SOFTMAX_CROSS_ENTROPY:
        P = np.exp(log_softmax(A))
        return _f64(P * Y.sum(axis=-1, keepdims=True) - Y, A)
    raise ValueError(f"loss={loss!r} is not a Loss")
