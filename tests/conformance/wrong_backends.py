r"""Backends for testing the suite itself: wrong ones, and correct but different ones.

Every backend here is batched backpropagation in numpy, written for these
tests (it shares no code with :mod:`impl`). :class:`TextbookBackend` is the
plain algorithm, in the conventions of :mod:`spec.conventions`:

.. math::

    Z_\ell = A_{\ell-1} W_\ell^\top + b_\ell,\quad A_\ell = \sigma_\ell(Z_\ell),\quad
    G_L = \nabla_{A_L}\ell / B,

    \Delta_\ell = \sigma_\ell'(Z_\ell) \odot G_\ell,\quad
    \frac{\partial\mathcal L}{\partial W_\ell} = \Delta_\ell^\top A_{\ell-1},\quad
    \frac{\partial\mathcal L}{\partial b_\ell} = \mathbf 1^\top \Delta_\ell,\quad
    G_{\ell-1} = \Delta_\ell W_\ell.

Each step is a method, and each wrong backend overrides exactly one of them
with one classic mistake, named in its docstring. Every backend, wrong or
not, returns gradients in the shapes of the parameters and the dtype of the
arrays it received (float64 in a default run), so the suite must catch a
wrong one by the mathematics, never by a shape or dtype check.

The classes can be created without arguments, so the command line loads them
as ``wrong_backends:SignFlippedBackend`` with this folder on ``PYTHONPATH``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from impl import Capability
from spec import Activation, FloatArray, Loss, LossAndGradients, Network, Parameters
from spec.conventions import ELU_ALPHA, LEAKY_RELU_SLOPE

Array: TypeAlias = npt.NDArray[np.floating[Any]]
"""A float array of the working precision of a backend (float32, float64 or
long double)."""


# Activations and losses, in whatever float type the arrays carry.

def summed(M: Array, axis: int, *, keepdims: bool = False) -> Array:
    """``M`` summed along ``axis`` (typed: numpy's stubs say ``Any``)."""
    total: Array = M.sum(axis=axis, keepdims=keepdims)
    return total


def _sigmoid(z: Array) -> Array:
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def sigma(activation: Activation, z: Array) -> Array:
    """The activation, elementwise."""
    slope, alpha = z.dtype.type(LEAKY_RELU_SLOPE), z.dtype.type(ELU_ALPHA)
    if activation is Activation.IDENTITY:
        return z
    if activation is Activation.SIGMOID:
        return _sigmoid(z)
    if activation is Activation.TANH:
        return np.tanh(z)
    if activation is Activation.RELU:
        return np.where(z > 0, z, 0 * z)
    if activation is Activation.LEAKY_RELU:
        return np.where(z > 0, z, slope * z)
    if activation is Activation.SOFTPLUS:
        return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))
    if activation is Activation.ELU:
        return np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0)))
    raise ValueError(f"activation={activation!r} is not an Activation")


def sigma_prime(activation: Activation, z: Array) -> Array:
    """The derivative of the activation, elementwise; the left one at kinks."""
    slope, alpha = z.dtype.type(LEAKY_RELU_SLOPE), z.dtype.type(ELU_ALPHA)
    one = np.ones_like(z)
    if activation is Activation.IDENTITY:
        return one
    if activation is Activation.SIGMOID:
        e = np.exp(-np.abs(z))
        derivative: Array = e / ((1 + e) * (1 + e))
        return derivative
    if activation is Activation.TANH:
        t = np.tanh(z)
        return 1 - t * t
    if activation is Activation.RELU:
        return np.where(z > 0, one, 0 * one)
    if activation is Activation.LEAKY_RELU:
        return np.where(z > 0, one, slope * one)
    if activation is Activation.SOFTPLUS:
        return _sigmoid(z)
    if activation is Activation.ELU:
        return np.where(z > 0, one, alpha * np.exp(np.minimum(z, 0)))
    raise ValueError(f"activation={activation!r} is not an Activation")


def log_softmax(A: Array) -> Array:
    """Row-wise log softmax, shifted by the row maximum."""
    shifted: Array = A - A.max(axis=1, keepdims=True)
    return shifted - np.log(summed(np.exp(shifted), 1, keepdims=True))


def example_losses(loss: Loss, A: Array, Y: Array) -> Array:
    """One loss per row: ``1/2 ||a - y||^2`` or ``-sum y log softmax(a)``."""
    if loss is Loss.SQUARED_ERROR:
        return summed((A - Y) ** 2, 1) / 2
    if loss is Loss.SOFTMAX_CROSS_ENTROPY:
        return -summed(Y * log_softmax(A), 1)
    raise ValueError(f"loss={loss!r} is not a Loss")


# The textbook algorithm, one method a step.

@dataclass
class TextbookBackend:
    """Correct batched backpropagation; the template every backend below alters.

    Attributes
    ----------
    dtype
        The float type of every intermediate; the answer is rounded to the
        dtype of the arrays received (float64 in a default run).
    """

    name: str = "textbook"
    capabilities: frozenset[Capability] = field(default=frozenset())
    dtype: type[np.floating[Any]] = np.float64

    def loss_and_gradients(self, network: Network, parameters: Parameters,
                           inputs: FloatArray, targets: FloatArray) -> \
            LossAndGradients:
        """Mean loss over the batch and its gradients."""
        W = [np.asarray(w, dtype=self.dtype) for w in parameters.weights]
        b = [np.asarray(v, dtype=self.dtype) for v in parameters.biases]
        X = np.asarray(inputs, dtype=self.dtype)
        Y = np.asarray(targets, dtype=self.dtype)

        Z: list[Array] = []
        A: list[Array] = [X]
        for ell in range(1, network.depth + 1):
            Z.append(A[-1] @ W[ell - 1].T + b[ell - 1])
            A.append(sigma(network.activations[ell - 1], Z[-1]))
        loss = example_losses(network.loss, A[-1], Y).mean()

        G = self.output_cotangent(network.loss, A[-1], Y) * self.batch_scale(len(X))
        weight_gradients: list[Array] = [X] * network.depth
        bias_gradients: list[Array] = [X] * network.depth
        for ell in range(network.depth, 0, -1):
            delta = self.activation_derivative(network, ell, Z[ell - 1], A[ell]) * G
            weight_gradients[ell - 1] = self.weight_gradient(delta, A[ell - 1])
            bias_gradients[ell - 1] = self.bias_gradient(delta)
            G = delta @ W[ell - 1]
        answer = np.asarray(inputs).dtype
        return LossAndGradients(
            float(loss),
            Parameters(tuple(np.asarray(g, dtype=answer) for g in weight_gradients),
                       tuple(np.asarray(g, dtype=answer) for g in bias_gradients)))

    def output_cotangent(self, loss: Loss, A: Array, Y: Array) -> Array:
        """Row-wise gradient of the example loss with respect to ``a_L``."""
        if loss is Loss.SQUARED_ERROR:
            return A - Y
        P = np.exp(log_softmax(A))
        return P * summed(Y, 1, keepdims=True) - Y

    def batch_scale(self, batch_size: int) -> Any:
        """The factor turning the sum over the batch into its mean."""
        return self.dtype(1) / batch_size

    def activation_derivative(self, network: Network, ell: int, z: Array,
                              a: Array) -> Array:
        """``sigma_l'`` at the pre-activations ``z`` of layer ``ell``."""
        return sigma_prime(network.activations[ell - 1], z)

    def weight_gradient(self, delta: Array, a_previous: Array) -> Array:
        """``Delta_l^T A_{l-1}``: ``n_l x n_{l-1}``, the shape of ``W_l``."""
        return delta.T @ a_previous

    def bias_gradient(self, delta: Array) -> Array:
        """``Delta_l`` summed over the batch."""
        return summed(delta, 0)


# Wrong: one mistake each.

@dataclass
class TransposedWeightGradientBackend(TextbookBackend):
    """Mistake: returns the transpose of ``dL/dW_l`` whenever ``W_l`` is square.

    The transpose of an ``n x n`` gradient has the right shape, so only the
    values can expose it; on non-square layers the right gradient is
    returned (its transpose would not even fit).
    """

    name: str = "transposed-weight-gradient"

    def weight_gradient(self, delta: Array, a_previous: Array) -> Array:
        gradient = delta.T @ a_previous
        return gradient.T if gradient.shape[0] == gradient.shape[1] else gradient


@dataclass
class DerivativeAtActivationBackend(TextbookBackend):
    """Mistake: evaluates ``sigma'`` at the activation ``a = sigma(z)``, not at ``z``.

    Harmless for identity, ReLU and leaky ReLU (``a`` has the sign of ``z``
    and the slope is piecewise constant); wrong for every smooth nonlinearity.
    """

    name: str = "derivative-at-activation"

    def activation_derivative(self, network: Network, ell: int, z: Array,
                              a: Array) -> Array:
        return sigma_prime(network.activations[ell - 1], a)


@dataclass
class SummedBatchBackend(TextbookBackend):
    """Mistake: gradients are summed over the batch instead of averaged.

    The loss is still the mean, so the gradients are ``B`` times its gradient;
    right on batches of one example.
    """

    name: str = "summed-batch"

    def batch_scale(self, batch_size: int) -> Any:
        return self.dtype(1)


@dataclass
class DroppedBiasGradientBackend(TextbookBackend):
    """Mistake: every bias gradient is zero (the bias term was forgotten)."""

    name: str = "dropped-bias-gradient"

    def bias_gradient(self, delta: Array) -> Array:
        return np.zeros(delta.shape[1], dtype=delta.dtype)


@dataclass
class Float32Backend(TextbookBackend):
    """Mistake: computes in float32, then returns the results cast to float64.

    The formulas are right; the answer carries float32 rounding errors, far
    beyond what float64 arithmetic can make. (In a float32 run it is right.)
    """

    name: str = "float32-inside"
    dtype: type[np.floating[Any]] = np.float32


@dataclass
class SignFlippedBackend(TextbookBackend):
    """Mistake: the loss gradient has the wrong sign (``y - a`` for ``a - y``).

    Every gradient is then the negative of the right one: an ascent direction.
    """

    name: str = "sign-flipped"

    def output_cotangent(self, loss: Loss, A: Array, Y: Array) -> Array:
        return -super().output_cotangent(loss, A, Y)


@dataclass
class DoubledSquaredErrorBackend(TextbookBackend):
    """Mistake: squared-error gradient ``2 (a - y)`` for the loss ``1/2 ||a - y||^2``.

    The factor 2 belongs to ``||a - y||^2`` without the half; cross-entropy is
    right.
    """

    name: str = "doubled-squared-error"

    def output_cotangent(self, loss: Loss, A: Array, Y: Array) -> Array:
        if loss is Loss.SQUARED_ERROR:
            return 2 * (A - Y)
        return super().output_cotangent(loss, A, Y)


@dataclass
class CrossEntropyWithoutTargetSumBackend(TextbookBackend):
    """Mistake: softmax cross-entropy gradient ``p - y`` instead of ``p sum(y) - y``.

    Right when the targets sum to one (one-hot or probabilities), wrong for
    any other non-negative targets, for which the loss is still defined.
    """

    name: str = "cross-entropy-without-target-sum"

    def output_cotangent(self, loss: Loss, A: Array, Y: Array) -> Array:
        if loss is Loss.SOFTMAX_CROSS_ENTROPY:
            return np.exp(log_softmax(A)) - Y
        return super().output_cotangent(loss, A, Y)


@dataclass
class PreviousLayerDerivativeBackend(TextbookBackend):
    """Mistake, off by one layer: ``sigma_{l-1}'`` is used where ``sigma_l'`` belongs.

    Layer ``l > 1`` differentiates its pre-activations with the previous
    layer's activation function (layer 1 uses its own, having no previous
    one). Shapes are unaffected; only networks of two or more layers whose
    activations differ expose it.
    """

    name: str = "previous-layer-derivative"

    def activation_derivative(self, network: Network, ell: int, z: Array,
                              a: Array) -> Array:
        return sigma_prime(network.activations[max(ell - 2, 0)], z)


# Correct, but computed differently from the reference.

@dataclass
class PerExampleLoopBackend(TextbookBackend):
    """Correct: backpropagates one example at a time, then averages.

    Same mathematics as the batched form, but every sum over the batch is
    taken after backpropagation, in a different order.
    """

    name: str = "per-example-loop"

    def loss_and_gradients(self, network: Network, parameters: Parameters,
                           inputs: FloatArray, targets: FloatArray) -> \
            LossAndGradients:
        loss = 0.0
        weights = [np.zeros_like(w) for w in parameters.weights]
        biases = [np.zeros_like(b) for b in parameters.biases]
        for k in range(len(inputs)):
            example = super().loss_and_gradients(network, parameters,
                                                 inputs[k:k + 1], targets[k:k + 1])
            loss += example.loss
            for ell in range(network.depth):
                weights[ell] += example.gradients.weights[ell]
                biases[ell] += example.gradients.biases[ell]
        B = len(inputs)
        return LossAndGradients(loss / B,
                                Parameters(tuple(w / B for w in weights),
                                           tuple(b / B for b in biases)))


@dataclass
class LongDoubleBackend(TextbookBackend):
    """Correct: computes in ``np.longdouble`` and rounds the answer to float64.

    Where long double is wider than float64 (80-bit x87 on x86-64) the answer
    is more accurate than the reference's, never less.
    """

    name: str = "long-double"
    dtype: type[np.floating[Any]] = np.longdouble


@dataclass
class OuterProductSumBackend(TextbookBackend):
    r"""Correct: ``dL/dW_l`` as a sum of per-example outer products.

    :math:`\sum_k \delta^{(k)} a_{\ell-1}^{(k)\top}`, formed with ``einsum``
    and summed afterwards, instead of one matrix product: a different order
    of association for the same sum.
    """

    name: str = "outer-product-sum"

    def weight_gradient(self, delta: Array, a_previous: Array) -> Array:
        return summed(np.einsum("ki,kj->kij", delta, a_previous), 0)


WRONG_BACKENDS: tuple[type[TextbookBackend], ...] = (
    TransposedWeightGradientBackend,
    DerivativeAtActivationBackend,
    SummedBatchBackend,
    DroppedBiasGradientBackend,
    Float32Backend,
    SignFlippedBackend,
    DoubledSquaredErrorBackend,
    CrossEntropyWithoutTargetSumBackend,
    PreviousLayerDerivativeBackend,
)
"""Every deliberately wrong backend, one mistake each."""

CORRECT_BACKENDS: tuple[type[TextbookBackend], ...] = (
    TextbookBackend,
    PerExampleLoopBackend,
    LongDoubleBackend,
    OuterProductSumBackend,
)
"""Correct backends computing in other orders or precisions."""
