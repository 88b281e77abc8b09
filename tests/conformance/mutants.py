r"""The mutation set: backprop implementations with one real-world mistake each.

Every backend here is small batched numpy written for these tests. They
measure the suite's detection power: each *wrong* backend makes one mistake
people actually make when writing backpropagation by hand, named in its
docstring; each *correct* one computes the right answer in another way, and
must not be flagged. The wrong ones fall into seven kinds (:class:`Kind`):

formula
    a wrong derivative of an activation or of the loss;
indexing
    a transpose, a layer confused with its neighbour, an off-by-one in the
    layer loop;
batch
    sums for means, state leaking from one call into the next, the wrong axis;
convention
    a loss that is not the spec's (or whose gradient is not its derivative);
precision
    float32 inside a float64 API, small relative noise, a cancelling formula;
stability
    inf or NaN from an ``exp`` that overflows or a probability that underflows;
aliasing
    writing into the caller's arrays, returning buffers the next call reuses.

Every backend answers :class:`spec.LossAndGradients` with float64 arrays in
the shapes of the parameters, so the suite has to catch a wrong one by the
mathematics; only the mistakes that *are* a misbehaviour (writing into the
inputs, answering the same question differently, inf or NaN) may show as
one. A mistake that numpy would reject with a
shape error on most networks (a transposed matrix, a neighbouring layer's
matrix) is made where the shapes let it through and nowhere else, as it
would be in a real program that runs.

All of them are built on :class:`Template`, the textbook algorithm of
:class:`wrong_backends.TextbookBackend` cut into finer steps, each step a
method, so a mutant overrides the one step it gets wrong. The classes can be
created without arguments, so the command line loads them as
``mutants:SoftmaxWithoutShiftBackend`` with this folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import enum
import faulthandler
import importlib.util
import multiprocessing
import os
import sys
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np


def _load_sibling(name: str) -> None:
    """Import ``name``.py from this folder, whatever pytest's import mode."""
    if name in sys.modules:
        return
    location = Path(__file__).resolve().parent / f"{name}.py"
    module_spec = importlib.util.spec_from_file_location(name, location)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)


_load_sibling("wrong_backends")

# Imports after the loader above has registered wrong_backends.
from wrong_backends import (
    Array,
    TextbookBackend,
    example_losses,
    log_softmax,
    sigma,
    sigma_prime,
    summed,
)

from conformance import Case, SuiteReport, run_suite
from spec import (
    Activation,
    FloatArray,
    Loss,
    LossAndGradients,
    Network,
    Parameters,
)
from spec.conventions import ELU_ALPHA, LEAKY_RELU_SLOPE

Arrays = tuple[list[Array], list[Array], Array, Array]
"""Weights, biases, inputs and targets as arrays of a backend's dtype."""


class Kind(str, enum.Enum):
    """The seven kinds of mistake in the mutation set."""

    FORMULA = "formula"
    INDEXING = "indexing"
    BATCH = "batch"
    CONVENTION = "convention"
    PRECISION = "precision"
    STABILITY = "stability"
    ALIASING = "aliasing"


# The template: the textbook algorithm, one method a step.

@dataclass
class Template(TextbookBackend):
    r"""Correct batched backpropagation, cut into steps for mutants to override.

    .. math::

        Z_\ell = A_{\ell-1} W_\ell^\top + b_\ell,\quad A_\ell = \sigma_\ell(Z_\ell),
        \quad G_L = \nabla_{A_L}\ell / B,\quad
        \Delta_\ell = \sigma_\ell'(Z_\ell) \odot G_\ell,\quad
        G_{\ell-1} = \Delta_\ell W_\ell.

    Steps: :meth:`arrays` (the arguments in the working dtype, not copied
    when already in it), :meth:`forward`, :meth:`batch_loss`,
    :meth:`output_cotangent` times :meth:`batch_scale`, :meth:`backward`
    (per layer :meth:`activation_derivative`, :meth:`weight_gradient` of
    :meth:`layer_input`, :meth:`bias_gradient`, then :meth:`propagate`), and
    :meth:`answer`.
    """

    name: str = "template"
    kind: ClassVar[Kind | None] = None

    def loss_and_gradients(self, network: Network, parameters: Parameters,
                           inputs: FloatArray, targets: FloatArray) -> \
            LossAndGradients:
        """Mean loss over the batch and its gradients."""
        W, b, X, Y = self.arrays(parameters, inputs, targets)
        Z, A = self.forward(network, W, b, X)
        loss = self.batch_loss(network.loss, A[-1], Y)

        G = self.output_cotangent(network.loss, A[-1], Y) * self.batch_scale(len(X))
        weight_gradients, bias_gradients = self.backward(network, W, Z, A, G)
        return self.answer(loss, weight_gradients, bias_gradients,
                           np.asarray(inputs).dtype)

    def arrays(self, parameters: Parameters, inputs: FloatArray,
               targets: FloatArray) -> Arrays:
        """The arguments in the working dtype (the caller's own arrays if in it)."""
        W = [np.asarray(w, dtype=self.dtype) for w in parameters.weights]
        b = [np.asarray(v, dtype=self.dtype) for v in parameters.biases]
        return (W, b, np.asarray(inputs, dtype=self.dtype),
                np.asarray(targets, dtype=self.dtype))

    def forward(self, network: Network, W: list[Array], b: list[Array],
                X: Array) -> tuple[list[Array], list[Array]]:
        """Pre-activations ``Z[l - 1]`` and activations ``A[l]``, ``A[0] = X``."""
        Z: list[Array] = []
        A: list[Array] = [X]
        for ell in range(1, network.depth + 1):
            Z.append(A[-1] @ W[ell - 1].T + b[ell - 1])
            A.append(self.activate(network.activations[ell - 1], Z[-1]))
        return Z, A

    def activate(self, activation: Activation, z: Array) -> Array:
        """The activation's value; a mutant changes how one is computed here."""
        return sigma(activation, z)

    def batch_loss(self, loss: Loss, A: Array, Y: Array) -> float:
        """The mean of the example losses."""
        return float(example_losses(loss, A, Y).mean())

    def backward(self, network: Network, W: list[Array], Z: list[Array],
                 A: list[Array], G: Array) -> tuple[list[Array], list[Array]]:
        """Backpropagate the row cotangents ``G``; gradients in layer order."""
        weights: list[Array] = []
        biases: list[Array] = []
        for ell in range(network.depth, 0, -1):
            delta = self.activation_derivative(network, ell, Z[ell - 1], A[ell]) * G
            weights.append(self.weight_gradient(delta, self.layer_input(A, ell)))
            biases.append(self.bias_gradient(delta))
            if ell > 1:
                G = self.propagate(network, W, delta, ell)
        return weights[::-1], biases[::-1]

    def layer_input(self, A: list[Array], ell: int) -> Array:
        """``A_{l-1}``, the input of layer ``ell``."""
        return A[ell - 1]

    def propagate(self, network: Network, W: list[Array], delta: Array,
                  ell: int) -> Array:
        """``G_{l-1} = Delta_l W_l``."""
        G: Array = delta @ W[ell - 1]
        return G

    def answer(self, loss: float, weights: list[Array], biases: list[Array],
               dtype: np.dtype[Any]) -> LossAndGradients:
        """The result, every gradient in ``dtype`` (the dtype received)."""
        return LossAndGradients(
            float(loss),
            Parameters(tuple(np.asarray(g, dtype=dtype) for g in weights),
                       tuple(np.asarray(g, dtype=dtype) for g in biases)))


def _square(matrix: Array) -> bool:
    return bool(matrix.shape[0] == matrix.shape[1])


# 1. Formula: the derivative of an activation or of the loss is wrong.

@dataclass
class TanhDerivativeOfPreActivationBackend(Template):
    r"""Mistake: :math:`\tanh'` written as :math:`1 - z^2`, from ``z`` not ``a``.

    The identity :math:`\tanh'(z) = 1 - \tanh^2(z) = 1 - a^2` applied to the
    pre-activation instead of the activation. Only tanh layers are affected.
    """

    name: str = "tanh-derivative-of-pre-activation"
    kind: ClassVar[Kind | None] = Kind.FORMULA

    def activation_derivative(self, network: Network, ell: int, z: Array,
                              a: Array) -> Array:
        if network.activations[ell - 1] is Activation.TANH:
            return 1 - z * z
        return super().activation_derivative(network, ell, z, a)


@dataclass
class SigmoidDerivativeWithoutComplementBackend(Template):
    r"""Mistake: :math:`\operatorname{sigmoid}'` taken as ``s``, not ``s (1 - s)``.

    The factor :math:`1 - s` is dropped. Only sigmoid layers are affected.
    """

    name: str = "sigmoid-derivative-without-complement"
    kind: ClassVar[Kind | None] = Kind.FORMULA

    def activation_derivative(self, network: Network, ell: int, z: Array,
                              a: Array) -> Array:
        if network.activations[ell - 1] is Activation.SIGMOID:
            return a
        return super().activation_derivative(network, ell, z, a)


@dataclass
class TanhDerivativeSignBackend(Template):
    r"""Mistake, a sign: :math:`\tanh'` written as :math:`1 + \tanh^2`.

    Confuses :math:`\tanh` with :math:`\tan` (whose derivative is
    :math:`1 + \tan^2`). Only tanh layers are affected.
    """

    name: str = "tanh-derivative-sign"
    kind: ClassVar[Kind | None] = Kind.FORMULA

    def activation_derivative(self, network: Network, ell: int, z: Array,
                              a: Array) -> Array:
        if network.activations[ell - 1] is Activation.TANH:
            return 1 + a * a
        return super().activation_derivative(network, ell, z, a)


@dataclass
class DerivativeBeforeBiasBackend(Template):
    r"""Mistake: :math:`\sigma'` evaluated at :math:`W a`, before the bias is added.

    The forward pass caches the matrix product as "the pre-activation" and
    adds the bias only inside :math:`\sigma`; the backward pass then
    differentiates at the wrong point. Harmless for identity layers and
    wherever the bias does not move ``z`` across a kink.
    """

    name: str = "derivative-before-bias"
    kind: ClassVar[Kind | None] = Kind.FORMULA

    def forward(self, network: Network, W: list[Array], b: list[Array],
                X: Array) -> tuple[list[Array], list[Array]]:
        Z: list[Array] = []
        A: list[Array] = [X]
        for ell in range(1, network.depth + 1):
            product = A[-1] @ W[ell - 1].T
            Z.append(product)
            A.append(sigma(network.activations[ell - 1], product + b[ell - 1]))
        return Z, A


@dataclass
class LeakyReluSlopeForgottenBackend(Template):
    """Mistake: leaky ReLU differentiated like ReLU, slope 0 (not 0.01) for z < 0.

    The forward pass leaks; the backward pass does not.
    """

    name: str = "leaky-relu-slope-forgotten"
    kind: ClassVar[Kind | None] = Kind.FORMULA

    def activation_derivative(self, network: Network, ell: int, z: Array,
                              a: Array) -> Array:
        if network.activations[ell - 1] is Activation.LEAKY_RELU:
            return sigma_prime(Activation.RELU, z)
        return super().activation_derivative(network, ell, z, a)


@dataclass
class EluConstantSlopeBackend(Template):
    r"""Mistake: :math:`\operatorname{elu}'(z) = \alpha` for :math:`z \le 0`.

    The derivative of leaky ReLU's negative branch carried over to ELU,
    whose negative branch :math:`\alpha(e^z - 1)` has slope
    :math:`\alpha e^z`. Right only as ``z`` approaches 0 from below.
    """

    name: str = "elu-constant-slope"
    kind: ClassVar[Kind | None] = Kind.FORMULA

    def activation_derivative(self, network: Network, ell: int, z: Array,
                              a: Array) -> Array:
        if network.activations[ell - 1] is Activation.ELU:
            one = np.ones_like(z)
            return np.where(z > 0, one, z.dtype.type(ELU_ALPHA) * one)
        return super().activation_derivative(network, ell, z, a)


@dataclass
class DiagonalSoftmaxJacobianBackend(Template):
    r"""Mistake: softmax differentiated elementwise, keeping only :math:`p_i(1-p_i)`.

    Cross-entropy is backpropagated through softmax as if it were a sigmoid:
    :math:`-y_i/p_i \cdot p_i(1 - p_i) = -y_i(1 - p_i)`, dropping the
    off-diagonal terms :math:`-p_i p_j` of the softmax Jacobian. Right only
    with one output unit, where both are 0.
    """

    name: str = "diagonal-softmax-jacobian"
    kind: ClassVar[Kind | None] = Kind.FORMULA

    def output_cotangent(self, loss: Loss, A: Array, Y: Array) -> Array:
        if loss is Loss.SOFTMAX_CROSS_ENTROPY:
            P = np.exp(log_softmax(A))
            diagonal: Array = -Y * (1 - P)
            return diagonal
        return super().output_cotangent(loss, A, Y)


# 2. Indexing: transposes, neighbouring layers, off-by-one in the layer loop.

@dataclass
class TransposedRecursionWeightBackend(Template):
    r"""Mistake: the recursion multiplies by :math:`W_\ell^\top`, not :math:`W_\ell`.

    :math:`G_{\ell-1} = \Delta_\ell W_\ell^\top` instead of
    :math:`\Delta_\ell W_\ell`: the transpose, which numpy accepts
    only when :math:`W_\ell` is square; there it is made. Only layers above
    the first propagate, so one layer never shows it.
    """

    name: str = "transposed-recursion-weight"
    kind: ClassVar[Kind | None] = Kind.INDEXING

    def propagate(self, network: Network, W: list[Array], delta: Array,
                  ell: int) -> Array:
        if _square(W[ell - 1]):
            G: Array = delta @ W[ell - 1].T
            return G
        return super().propagate(network, W, delta, ell)


@dataclass
class ReversedLayerOrderBackend(Template):
    """Mistake: gradients listed from the last layer to the first.

    The backward sweep appends each layer's gradient as it goes and the list
    is never reversed. Shapes catch that unless every layer has the same
    shape, which is where it is made.
    """

    name: str = "reversed-layer-order"
    kind: ClassVar[Kind | None] = Kind.INDEXING

    def backward(self, network: Network, W: list[Array], Z: list[Array],
                 A: list[Array], G: Array) -> tuple[list[Array], list[Array]]:
        weights, biases = super().backward(network, W, Z, A, G)
        if len({w.shape for w in W}) == 1:
            return weights[::-1], biases[::-1]
        return weights, biases


@dataclass
class FirstLayerWithoutDerivativeBackend(Template):
    r"""Mistake, off by one in the layer loop: layer 1's :math:`\sigma_1'` is skipped.

    The loop applying :math:`\sigma'` stops one layer early, treating the
    first layer as if it were the input layer: :math:`\Delta_1 = G_1`.
    Harmless when layer 1 is an identity layer.
    """

    name: str = "first-layer-without-derivative"
    kind: ClassVar[Kind | None] = Kind.INDEXING

    def activation_derivative(self, network: Network, ell: int, z: Array,
                              a: Array) -> Array:
        if ell == 1:
            return np.ones_like(z)
        return super().activation_derivative(network, ell, z, a)


@dataclass
class WeightOfLayerBelowBackend(Template):
    r"""Mistake: the recursion uses :math:`W_{\ell-1}` where :math:`W_\ell` belongs.

    The delta recursion :math:`\delta_{\ell-1} = \sigma'(z_{\ell-1}) \odot
    W_\ell^\top \delta_\ell` indexed one layer too low (``weights[ell - 2]``),
    which numpy accepts when the two layers' matrices have the same shape.
    """

    name: str = "weight-of-layer-below"
    kind: ClassVar[Kind | None] = Kind.INDEXING

    def propagate(self, network: Network, W: list[Array], delta: Array,
                  ell: int) -> Array:
        if W[ell - 2].shape == W[ell - 1].shape:
            G: Array = delta @ W[ell - 2]
            return G
        return super().propagate(network, W, delta, ell)


@dataclass
class LayerOutputAsInputBackend(Template):
    r"""Mistake: :math:`\partial\mathcal L/\partial W_\ell = \Delta_\ell^\top A_\ell`.

    The activation list is indexed with the layer's own index, taking its
    output for its input :math:`A_{\ell-1}`; numpy accepts that when the
    layer is square.
    """

    name: str = "layer-output-as-input"
    kind: ClassVar[Kind | None] = Kind.INDEXING

    def layer_input(self, A: list[Array], ell: int) -> Array:
        if A[ell].shape == A[ell - 1].shape:
            return A[ell]
        return A[ell - 1]


TRUNCATION_WINDOW = 3
"""Layers the truncated backward pass reaches (counted from the output)."""


@dataclass
class TruncatedBackpropBackend(Template):
    """Mistake: the backward pass stops after :data:`TRUNCATION_WINDOW` layers.

    A truncation window (as in truncated backpropagation through time) left
    in a feed-forward network: layers further from the output get zero
    gradients. Only networks deeper than the window show it.
    """

    name: str = "truncated-backprop"
    kind: ClassVar[Kind | None] = Kind.INDEXING

    def propagate(self, network: Network, W: list[Array], delta: Array,
                  ell: int) -> Array:
        G = super().propagate(network, W, delta, ell)
        reached = network.depth - ell + 1
        return G if reached < TRUNCATION_WINDOW else 0 * G


# 3. Batches: sums for means, state across calls, the wrong axis.

@dataclass
class SummedBatchLossBackend(Template):
    """Mistake: the batch loss and its gradients are sums over the batch, not means.

    Loss and gradients agree with each other, but not with the spec's
    mean; the same on one example.
    """

    name: str = "summed-batch-loss"
    kind: ClassVar[Kind | None] = Kind.BATCH

    def batch_loss(self, loss: Loss, A: Array, Y: Array) -> float:
        return float(example_losses(loss, A, Y).sum())

    def batch_scale(self, batch_size: int) -> Any:
        return self.dtype(1)


@dataclass
class AveragedTwiceBackend(Template):
    """Mistake: the gradients are divided by the batch size twice.

    Once in the loss gradient and again when reducing over the batch with a
    mean instead of a sum. Right on one example.
    """

    name: str = "averaged-twice"
    kind: ClassVar[Kind | None] = Kind.BATCH

    def weight_gradient(self, delta: Array, a_previous: Array) -> Array:
        gradient: Array = delta.T @ a_previous / len(delta)
        return gradient

    def bias_gradient(self, delta: Array) -> Array:
        mean: Array = delta.mean(axis=0)
        return mean


@dataclass
class SoftmaxOverBatchAxisBackend(Template):
    """Mistake: softmax normalised over the batch axis (axis 0), not the classes.

    Both the loss and its gradient use the same wrong softmax, so they agree
    with each other. On one example every "probability" is 1.
    """

    name: str = "softmax-over-batch-axis"
    kind: ClassVar[Kind | None] = Kind.BATCH

    def batch_loss(self, loss: Loss, A: Array, Y: Array) -> float:
        if loss is Loss.SOFTMAX_CROSS_ENTROPY:
            return float(-summed(Y * _column_log_softmax(A), 1).mean())
        return super().batch_loss(loss, A, Y)

    def output_cotangent(self, loss: Loss, A: Array, Y: Array) -> Array:
        if loss is Loss.SOFTMAX_CROSS_ENTROPY:
            P = np.exp(_column_log_softmax(A))
            return P * summed(Y, 0, keepdims=True) - Y
        return super().output_cotangent(loss, A, Y)


def _column_log_softmax(A: Array) -> Array:
    shifted: Array = A - A.max(axis=0, keepdims=True)
    return shifted - np.log(summed(np.exp(shifted), 0, keepdims=True))


@dataclass
class GradientAccumulatorNotResetBackend(Template):
    """Mistake: gradients accumulate across calls; nothing zeroes them.

    Like a framework's ``.grad`` buffers without ``zero_grad()``: each call
    adds its gradients to the previous ones (the buffers are only
    reallocated when the parameter shapes change). The first call is right.
    """

    name: str = "gradient-accumulator-not-reset"
    kind: ClassVar[Kind | None] = Kind.BATCH
    accumulated: list[Array] = field(default_factory=list, repr=False)

    def answer(self, loss: float, weights: list[Array], biases: list[Array],
               dtype: np.dtype[Any]) -> LossAndGradients:
        fresh = weights + biases
        if [g.shape for g in fresh] == [g.shape for g in self.accumulated]:
            for total, gradient in zip(self.accumulated, fresh):
                total += gradient
        else:
            self.accumulated = [g.copy() for g in fresh]
        depth = len(weights)
        return super().answer(loss, self.accumulated[:depth],
                              self.accumulated[depth:], dtype)


@dataclass
class StaleForwardCacheBackend(Template):
    """Mistake: the forward pass is cached by network and batch shape only.

    A memo meant to save recomputation is keyed on the shapes, not the
    values, so a call with new parameters or inputs on a network seen before
    backpropagates through the old activations. The first call on each
    network is right.
    """

    name: str = "stale-forward-cache"
    kind: ClassVar[Kind | None] = Kind.BATCH
    cache: dict[tuple[Network, tuple[int, ...]],
                tuple[list[Array], list[Array]]] = field(default_factory=dict,
                                                         repr=False)

    def forward(self, network: Network, W: list[Array], b: list[Array],
                X: Array) -> tuple[list[Array], list[Array]]:
        key = (network, X.shape)
        if key not in self.cache:
            self.cache[key] = super().forward(network, W, b, X)
        return self.cache[key]


# 4. Conventions: a loss other than the spec's.

@dataclass
class LossWithoutHalfBackend(Template):
    r"""Mistake: loss :math:`\lVert a - y\rVert^2`, gradient of half of it.

    The reported squared-error loss is twice the spec's
    :math:`\tfrac12\lVert a - y\rVert^2` while the gradient is the spec's:
    loss and gradient disagree with each other. The gradients alone are
    right.
    """

    name: str = "loss-without-half"
    kind: ClassVar[Kind | None] = Kind.CONVENTION

    def batch_loss(self, loss: Loss, A: Array, Y: Array) -> float:
        if loss is Loss.SQUARED_ERROR:
            return float(summed((A - Y) ** 2, 1).mean())
        return super().batch_loss(loss, A, Y)


@dataclass
class CrossEntropyAveragedOverClassesBackend(Template):
    r"""Mistake: cross-entropy averaged over the classes, not summed.

    :math:`-\frac1{n_L}\sum_i y_i \log p_i`: a mean over the last axis
    where the spec sums; loss and gradient are
    both divided by :math:`n_L` and agree with each other.
    """

    name: str = "cross-entropy-averaged-over-classes"
    kind: ClassVar[Kind | None] = Kind.CONVENTION

    def batch_loss(self, loss: Loss, A: Array, Y: Array) -> float:
        value = super().batch_loss(loss, A, Y)
        return value / A.shape[1] if loss is Loss.SOFTMAX_CROSS_ENTROPY else value

    def output_cotangent(self, loss: Loss, A: Array, Y: Array) -> Array:
        G = super().output_cotangent(loss, A, Y)
        return G / A.shape[1] if loss is Loss.SOFTMAX_CROSS_ENTROPY else G


@dataclass
class MeanSquaredErrorBackend(Template):
    r"""Convention difference: squared error as the mean over all entries.

    :math:`\frac{1}{B n_L}\sum_{k,i}(a_{ki} - y_{ki})^2`, the usual "MSE"
    of libraries, with its gradient :math:`2(a - y)/(B n_L)`. Loss and
    gradient agree with each other, but both are :math:`2/n_L` times the
    spec's, so they coincide with it only when :math:`n_L = 2`.
    """

    name: str = "mean-squared-error"
    kind: ClassVar[Kind | None] = Kind.CONVENTION

    def batch_loss(self, loss: Loss, A: Array, Y: Array) -> float:
        if loss is Loss.SQUARED_ERROR:
            return float(((A - Y) ** 2).mean())
        return super().batch_loss(loss, A, Y)

    def output_cotangent(self, loss: Loss, A: Array, Y: Array) -> Array:
        if loss is Loss.SQUARED_ERROR:
            G: Array = 2 * (A - Y) / A.shape[1]
            return G
        return super().output_cotangent(loss, A, Y)


@dataclass
class ArgmaxTargetsBackend(Template):
    r"""Mistake: cross-entropy targets replaced by the one-hot of their argmax.

    :math:`y \to e_k` with :math:`k = \operatorname{argmax}(y)`: code
    written for one-hot targets reads only the index of the largest entry,
    as a "sparse" cross-entropy would. Loss and gradient agree with each
    other; on one-hot targets both are right.
    """

    name: str = "argmax-targets"
    kind: ClassVar[Kind | None] = Kind.CONVENTION

    def loss_and_gradients(self, network: Network, parameters: Parameters,
                           inputs: FloatArray, targets: FloatArray) -> \
            LossAndGradients:
        if network.loss is Loss.SOFTMAX_CROSS_ENTROPY:
            rows = np.arange(len(targets))
            labels = np.zeros_like(targets)
            labels[rows, np.asarray(targets).argmax(axis=1)] = 1
            targets = labels
        return super().loss_and_gradients(network, parameters, inputs, targets)


@dataclass
class BinaryCrossEntropyForOneOutputBackend(Template):
    r"""Mistake: one output unit switches to binary (sigmoid) cross-entropy.

    With :math:`n_L = 1` softmax is constant, the spec's cross-entropy is 0
    and so are its gradients; the backend assumes a binary classifier and
    uses :math:`-y\log s(a) - (1-y)\log(1-s(a))` with gradient
    :math:`s(a) - y` instead. Loss and gradient agree with each other; with
    two or more classes it is right.
    """

    name: str = "binary-cross-entropy-for-one-output"
    kind: ClassVar[Kind | None] = Kind.CONVENTION

    def batch_loss(self, loss: Loss, A: Array, Y: Array) -> float:
        if loss is Loss.SOFTMAX_CROSS_ENTROPY and A.shape[1] == 1:
            # log s(a) = -softplus(-a), log(1 - s(a)) = -softplus(a).
            log_s = -sigma(Activation.SOFTPLUS, -A)
            log_not_s = -sigma(Activation.SOFTPLUS, A)
            return float(-summed(Y * log_s + (1 - Y) * log_not_s, 1).mean())
        return super().batch_loss(loss, A, Y)

    def output_cotangent(self, loss: Loss, A: Array, Y: Array) -> Array:
        if loss is Loss.SOFTMAX_CROSS_ENTROPY and A.shape[1] == 1:
            return sigma(Activation.SIGMOID, A) - Y
        return super().output_cotangent(loss, A, Y)


# 5. Precision.

@dataclass
class Float32ArithmeticBackend(Template):
    """Mistake: computes everything in float32 behind a float64 interface.

    The formulas are right; the answer, cast back to float64, carries
    float32 rounding errors (about 1e-7 relative), far beyond float64's.
    """

    name: str = "float32-arithmetic"
    kind: ClassVar[Kind | None] = Kind.PRECISION
    dtype: type[np.floating[Any]] = np.float32


@dataclass
class Float32ActivationsBackend(Template):
    """Mistake: the forward pass stores its activations in float32.

    Memory saved the wrong way: every activation kept for the backward pass
    (and fed to the next layer) is rounded to single precision, while the
    rest is float64.
    """

    name: str = "float32-activations"
    kind: ClassVar[Kind | None] = Kind.PRECISION

    def activate(self, activation: Activation, z: Array) -> Array:
        stored = sigma(activation, z).astype(np.float32)
        return stored.astype(self.dtype)


@dataclass
class SigmoidThroughTanhBackend(Template):
    r"""Mistake: sigmoid as :math:`(1 + \tanh(z/2))/2`, for sigmoid and softplus'.

    An identity that avoids overflow but cancels: for negative ``z`` the
    sum :math:`1 + \tanh(z/2)` loses the leading digits of a small number,
    and below :math:`z \approx -37` all of them, returning 0 for a value of
    :math:`e^{z}`. The absolute error stays below :math:`10^{-16}`; the
    relative error, which the stable formula keeps at a few units of
    rounding, reaches 100 %. Used for sigmoid activations and for the
    derivative of softplus.
    """

    name: str = "sigmoid-through-tanh"
    kind: ClassVar[Kind | None] = Kind.PRECISION

    def activate(self, activation: Activation, z: Array) -> Array:
        return (_tanh_sigmoid(z) if activation is Activation.SIGMOID
                else sigma(activation, z))

    def activation_derivative(self, network: Network, ell: int, z: Array,
                              a: Array) -> Array:
        activation = network.activations[ell - 1]
        if activation is Activation.SIGMOID:
            return a * (1 - a)
        if activation is Activation.SOFTPLUS:
            return _tanh_sigmoid(z)
        return super().activation_derivative(network, ell, z, a)


def _tanh_sigmoid(z: Array) -> Array:
    s: Array = (1 + np.tanh(z / 2)) / 2
    return s


RELATIVE_NOISE = 1e-10
"""Size of the relative error :class:`RelativeNoiseBackend` adds."""


@dataclass
class RelativeNoiseBackend(Template):
    """Mistake: every gradient entry is off by a relative error of about 1e-10.

    What a gradient mixed with a finite-difference correction, or a constant
    typed with ten digits, looks like: far below what a plot or a training
    run would show, about a million times float64's rounding. The noise is
    seeded by the arguments, so the same question gets the same answer.
    """

    name: str = "relative-noise"
    kind: ClassVar[Kind | None] = Kind.PRECISION

    def loss_and_gradients(self, network: Network, parameters: Parameters,
                           inputs: FloatArray, targets: FloatArray) -> \
            LossAndGradients:
        right = super().loss_and_gradients(network, parameters, inputs, targets)
        seed = zlib.crc32(np.ascontiguousarray(inputs).tobytes()
                          + b"".join(np.ascontiguousarray(w).tobytes()
                                     for w in parameters.weights))
        rng = np.random.default_rng(seed)

        def noisy(g: FloatArray) -> FloatArray:
            factor = 1 + RELATIVE_NOISE * rng.standard_normal(g.shape)
            return np.asarray(g * factor, dtype=g.dtype)

        gradients = right.gradients
        return LossAndGradients(right.loss, Parameters(
            tuple(noisy(g) for g in gradients.weights),
            tuple(noisy(g) for g in gradients.biases)))


# 6. Numerical stability: inf or NaN where the exact values are finite.

@dataclass
class _Unchecked(Template):
    """The template with numpy's floating-point warnings silenced.

    As the code the stability mutants model does, so an inf or NaN passes
    on silently (and the test output stays clean).
    """

    def loss_and_gradients(self, network: Network, parameters: Parameters,
                           inputs: FloatArray, targets: FloatArray) -> \
            LossAndGradients:
        with np.errstate(all="ignore"):
            return super().loss_and_gradients(network, parameters, inputs, targets)


@dataclass
class SoftmaxWithoutShiftBackend(_Unchecked):
    r"""Mistake: softmax and log-sum-exp without subtracting the largest logit.

    :math:`e^{a_i}` overflows to inf past :math:`a_i \approx 709.8`, and the
    loss and probabilities become inf or NaN; a logit below about
    :math:`-708.4` has a subnormal (or zero) exponential, so its probability
    loses digits even when the other logits are moderate, and when every logit
    of an example is that low they become NaN. Right for moderate logits.
    """

    name: str = "softmax-without-shift"
    kind: ClassVar[Kind | None] = Kind.STABILITY

    def batch_loss(self, loss: Loss, A: Array, Y: Array) -> float:
        if loss is Loss.SOFTMAX_CROSS_ENTROPY:
            log_total = np.log(summed(np.exp(A), 1, keepdims=True))
            return float(-summed(Y * (A - log_total), 1).mean())
        return super().batch_loss(loss, A, Y)

    def output_cotangent(self, loss: Loss, A: Array, Y: Array) -> Array:
        if loss is Loss.SOFTMAX_CROSS_ENTROPY:
            E = np.exp(A)
            return E / summed(E, 1, keepdims=True) * summed(Y, 1, keepdims=True) - Y
        return super().output_cotangent(loss, A, Y)


@dataclass
class SoftplusOverflowBackend(_Unchecked):
    r"""Mistake: softplus computed literally as :math:`\log(1 + e^z)`.

    :math:`e^z` overflows past :math:`z \approx 709.8`, making the
    activation inf; for negative ``z`` the sum :math:`1 + e^z` also
    rounds away digits of the small :math:`e^z`, losing relative accuracy
    (all of it below :math:`z \approx -37`). The derivative (sigmoid,
    computed stably) is right.
    """

    name: str = "softplus-overflow"
    kind: ClassVar[Kind | None] = Kind.STABILITY

    def activate(self, activation: Activation, z: Array) -> Array:
        return (np.log(1 + np.exp(z)) if activation is Activation.SOFTPLUS
                else sigma(activation, z))


@dataclass
class LogOfSoftmaxBackend(_Unchecked):
    r"""Mistake: cross-entropy as :math:`-\sum y_i \log p_i` of the probabilities.

    The softmax is shifted and safe, but its probabilities underflow to 0
    once a logit trails the largest by more than about 745, and
    :math:`\log 0 = -\infty` makes the loss inf (or NaN, :math:`0 \cdot
    \infty`, where the target is 0); subnormal probabilities lose digits
    before that. Log-softmax avoids both. The gradient is right.
    """

    name: str = "log-of-softmax"
    kind: ClassVar[Kind | None] = Kind.STABILITY

    def batch_loss(self, loss: Loss, A: Array, Y: Array) -> float:
        if loss is Loss.SOFTMAX_CROSS_ENTROPY:
            P = np.exp(log_softmax(A))
            return float(-summed(Y * np.log(P), 1).mean())
        return super().batch_loss(loss, A, Y)


# 7. Aliasing: writing into the caller's arrays, returning reused buffers.

@dataclass
class ReusedGradientBuffersBackend(Template):
    """Mistake: returns its internal gradient buffers, which the next call overwrites.

    Preallocated arrays, one per parameter shape, are filled in place and
    handed out without a copy: a caller keeping an answer sees it change as
    soon as the backend is asked anything else on a network of the same
    shapes. Each answer is right at the moment it is returned.
    """

    name: str = "reused-gradient-buffers"
    kind: ClassVar[Kind | None] = Kind.ALIASING
    buffers: dict[tuple[int, ...], list[FloatArray]] = field(default_factory=dict,
                                                             repr=False)

    def answer(self, loss: float, weights: list[Array], biases: list[Array],
               dtype: np.dtype[Any]) -> LossAndGradients:
        right = super().answer(loss, weights, biases, dtype)
        fresh = right.gradients.weights + right.gradients.biases
        key = tuple(n for g in fresh for n in (*g.shape, -1))
        if key not in self.buffers:
            self.buffers[key] = [np.empty_like(g) for g in fresh]
        for buffer, gradient in zip(self.buffers[key], fresh):
            np.copyto(buffer, gradient)
        depth = len(weights)
        held = self.buffers[key]
        return LossAndGradients(right.loss, Parameters(tuple(held[:depth]),
                                                       tuple(held[depth:])))


@dataclass
class CotangentInTargetsBackend(Template):
    """Mistake: the loss gradient is computed in place in the caller's targets.

    ``np.subtract(A, Y, out=Y)`` to save an allocation: the answer is right,
    but the caller's target array now holds ``a - y`` (or ``p sum(y) - y``).
    """

    name: str = "cotangent-in-targets"
    kind: ClassVar[Kind | None] = Kind.ALIASING

    def output_cotangent(self, loss: Loss, A: Array, Y: Array) -> Array:
        if loss is Loss.SQUARED_ERROR:
            return np.subtract(A, Y, out=Y)
        P = np.exp(log_softmax(A))
        total = summed(Y, 1, keepdims=True)
        np.negative(Y, out=Y)
        Y += P * total
        return Y


LEARNING_RATE = 0.1
"""The step :class:`GradientStepInPlaceBackend` takes on the caller's weights."""


@dataclass
class GradientStepInPlaceBackend(Template):
    r"""Mistake: takes a gradient-descent step on the caller's weights.

    Training code folded into the gradient function: after computing the
    (right) gradients it updates :math:`W_\ell \mathrel{-}=
    \eta\,\partial\mathcal L/\partial W_\ell` in place, in the caller's
    arrays.
    """

    name: str = "gradient-step-in-place"
    kind: ClassVar[Kind | None] = Kind.ALIASING

    def backward(self, network: Network, W: list[Array], Z: list[Array],
                 A: list[Array], G: Array) -> tuple[list[Array], list[Array]]:
        weights, biases = super().backward(network, W, Z, A, G)
        for parameter, gradient in zip(W, weights):
            parameter -= LEARNING_RATE * gradient
        return weights, biases


# Correct, but computed differently.

@dataclass
class PerExampleVectorsBackend(Template):
    r"""Correct: one example at a time, with vectors and outer products.

    :math:`\delta_\ell = \sigma'(z_\ell) \odot W_{\ell+1}^\top \delta_{\ell+1}`
    per example, :math:`\delta_\ell a_{\ell-1}^\top` accumulated over the
    batch, and one division by :math:`B` at the end.
    """

    name: str = "per-example-vectors"

    def loss_and_gradients(self, network: Network, parameters: Parameters,
                           inputs: FloatArray, targets: FloatArray) -> \
            LossAndGradients:
        W, b, X, Y = self.arrays(parameters, inputs, targets)
        weights = [np.zeros_like(w) for w in W]
        biases = [np.zeros_like(v) for v in b]
        total = 0.0
        for x, y in zip(X, Y):
            total += self._accumulate(network, W, b, x, y, weights, biases)

        B = len(X)
        return self.answer(total / B, [w / B for w in weights], [v / B for v in biases],
                           np.asarray(inputs).dtype)

    def _accumulate(self, network: Network, W: list[Array], b: list[Array],
                    x: Array, y: Array, weights: list[Array],
                    biases: list[Array]) -> float:
        z_list: list[Array] = []
        a_list: list[Array] = [x]
        for ell in range(1, network.depth + 1):
            z_list.append(W[ell - 1] @ a_list[-1] + b[ell - 1])
            a_list.append(sigma(network.activations[ell - 1], z_list[-1]))

        a_L, y_row = a_list[-1][None, :], y[None, :]
        g = self.output_cotangent(network.loss, a_L, y_row)[0]
        for ell in range(network.depth, 0, -1):
            delta = sigma_prime(network.activations[ell - 1], z_list[ell - 1]) * g
            weights[ell - 1] += np.outer(delta, a_list[ell - 1])
            biases[ell - 1] += delta
            g = W[ell - 1].T @ delta
        return float(example_losses(network.loss, a_L, y_row)[0])


@dataclass
class ExtendedPrecisionBackend(Template):
    """Correct: computes in ``np.longdouble``, rounds the answer to float64.

    Where long double is wider than float64 (x87's 80 bits on x86-64) the
    answer is more accurate than float64 arithmetic gives; elsewhere it is
    float64 arithmetic.
    """

    name: str = "extended-precision"
    dtype: type[np.floating[Any]] = np.longdouble


@dataclass
class ColumnLayoutBackend(Template):
    r"""Correct: examples as columns, and the batch mean taken at the very end.

    :math:`Z_\ell^\top = W_\ell A_{\ell-1}^\top + b_\ell \mathbf 1^\top`,
    :math:`\partial\mathcal L/\partial W_\ell = (\Delta_\ell^\top
    A_{\ell-1})/B` formed as :math:`(\Delta^\top_\ell)(A_{\ell-1})` from the
    column layout, the recursion as :math:`W_\ell^\top \Delta_\ell^\top`:
    every product associated differently from the row layout.
    """

    name: str = "column-layout"

    def loss_and_gradients(self, network: Network, parameters: Parameters,
                           inputs: FloatArray, targets: FloatArray) -> \
            LossAndGradients:
        W, b, X, Y = self.arrays(parameters, inputs, targets)
        Zt: list[Array] = []
        At: list[Array] = [X.T]
        for ell in range(1, network.depth + 1):
            Zt.append(W[ell - 1] @ At[-1] + b[ell - 1][:, None])
            At.append(sigma(network.activations[ell - 1], Zt[-1]))
        B = X.shape[0]
        loss = float(summed(example_losses(network.loss, At[-1].T, Y), 0) / B)

        Gt = self.output_cotangent(network.loss, At[-1].T, Y).T
        weights: list[Array] = [X] * network.depth
        biases: list[Array] = [X] * network.depth
        for ell in range(network.depth, 0, -1):
            Dt = sigma_prime(network.activations[ell - 1], Zt[ell - 1]) * Gt
            weights[ell - 1] = Dt @ At[ell - 1].T / B
            biases[ell - 1] = summed(Dt, 1) / B
            Gt = W[ell - 1].T @ Dt
        return self.answer(loss, weights, biases, np.asarray(inputs).dtype)


@dataclass
class ReluRightDerivativeBackend(Template):
    r"""Correct: takes :math:`\operatorname{relu}'(0) = 1` (and leaky ReLU's 1).

    The right derivative at the kink, where none exists; the suite must
    report the convention, never fail it.
    """

    name: str = "relu-right-derivative"

    def activation_derivative(self, network: Network, ell: int, z: Array,
                              a: Array) -> Array:
        activation = network.activations[ell - 1]
        if activation in (Activation.RELU, Activation.LEAKY_RELU):
            slope = z.dtype.type(LEAKY_RELU_SLOPE if activation is
                                 Activation.LEAKY_RELU else 0)
            return np.where(z >= 0, 1, slope) * np.ones_like(z)
        return super().activation_derivative(network, ell, z, a)


@dataclass
class LibraryFormulasBackend(Template):
    r"""Correct: other stable formulas, as libraries write them.

    Sigmoid :math:`1/(1 + e^{-z})` (overflow of :math:`e^{-z}` gives the
    right limit 0) and its derivative :math:`s(1 - s)`; softplus as
    ``logaddexp(0, z)``, its derivative that same sigmoid; ELU's
    derivative for :math:`z \le 0` as :math:`\operatorname{elu}(z) + \alpha`;
    cross-entropy through ``logaddexp.reduce``.
    """

    name: str = "library-formulas"

    def activate(self, activation: Activation, z: Array) -> Array:
        return _library_sigma(activation, z)

    def batch_loss(self, loss: Loss, A: Array, Y: Array) -> float:
        if loss is Loss.SOFTMAX_CROSS_ENTROPY:
            log_total = np.logaddexp.reduce(A, axis=1, keepdims=True)
            return float(-summed(Y * (A - log_total), 1).mean())
        return super().batch_loss(loss, A, Y)

    def activation_derivative(self, network: Network, ell: int, z: Array,
                              a: Array) -> Array:
        activation = network.activations[ell - 1]
        if activation is Activation.SIGMOID:
            return a * (1 - a)
        if activation is Activation.SOFTPLUS:
            return _library_sigma(Activation.SIGMOID, z)
        if activation is Activation.ELU:
            return np.where(z > 0, 1, a + z.dtype.type(ELU_ALPHA)) * np.ones_like(z)
        return super().activation_derivative(network, ell, z, a)


def _library_sigma(activation: Activation, z: Array) -> Array:
    if activation is Activation.SIGMOID:
        with np.errstate(over="ignore"):
            s: Array = 1 / (1 + np.exp(-z))
        return s
    if activation is Activation.SOFTPLUS:
        softplus: Array = np.logaddexp(0, z)
        return softplus
    return sigma(activation, z)


WRONG: tuple[type[Template], ...] = (
    TanhDerivativeOfPreActivationBackend,
    SigmoidDerivativeWithoutComplementBackend,
    TanhDerivativeSignBackend,
    DerivativeBeforeBiasBackend,
    LeakyReluSlopeForgottenBackend,
    EluConstantSlopeBackend,
    DiagonalSoftmaxJacobianBackend,
    TransposedRecursionWeightBackend,
    ReversedLayerOrderBackend,
    FirstLayerWithoutDerivativeBackend,
    WeightOfLayerBelowBackend,
    LayerOutputAsInputBackend,
    TruncatedBackpropBackend,
    SummedBatchLossBackend,
    AveragedTwiceBackend,
    SoftmaxOverBatchAxisBackend,
    GradientAccumulatorNotResetBackend,
    StaleForwardCacheBackend,
    LossWithoutHalfBackend,
    CrossEntropyAveragedOverClassesBackend,
    MeanSquaredErrorBackend,
    ArgmaxTargetsBackend,
    BinaryCrossEntropyForOneOutputBackend,
    Float32ArithmeticBackend,
    Float32ActivationsBackend,
    SigmoidThroughTanhBackend,
    RelativeNoiseBackend,
    SoftmaxWithoutShiftBackend,
    SoftplusOverflowBackend,
    LogOfSoftmaxBackend,
    ReusedGradientBuffersBackend,
    CotangentInTargetsBackend,
    GradientStepInPlaceBackend,
)
"""Every wrong backend, one mistake each, grouped by :class:`Kind`."""

CORRECT: tuple[type[Template], ...] = (
    Template,
    PerExampleVectorsBackend,
    ExtendedPrecisionBackend,
    ColumnLayoutBackend,
    ReluRightDerivativeBackend,
    LibraryFormulasBackend,
)
"""Correct backends computing in other orders, precisions or formulas."""


def by_name(class_name: str) -> type[Template]:
    """The backend class ``class_name`` of this module."""
    found = {c.__name__: c for c in WRONG + CORRECT}.get(class_name)
    if found is None:
        raise ValueError(f"class_name={class_name!r} is not a backend of mutants.py")
    return found


# Cases on which the suite flags every correct backend.

def false_alarm_cases() -> dict[str, tuple[str, Case]]:
    """Cases, found by random seeds, on which a check flags right answers.

    Each maps to the check id that flagged it and the case. The bundled
    reference backend, the textbook template and a long-double computation
    agree on them to float64's precision: the check was wrong (the Taylor
    test's own rounding was left out of its bound; self-consistency
    differenced across ELU's jump in curvature at 0). ``test_mutants.py``
    keeps them judged.
    """
    saturated = Case(
        Network((1, 1, 1, 1), (Activation.SIGMOID, Activation.SIGMOID,
                               Activation.IDENTITY), Loss.SQUARED_ERROR),
        Parameters((np.array([[0.1257302210933933]]),
                    np.array([[-0.1321048632913019]]),
                    np.array([[0.6404226504432821]])),
                   (np.array([10.490011715303972]), np.array([-53.566937316111094]),
                    np.array([36.159505490948476]))),
        np.array([[130.40000451301373]]), np.array([[94.70809631292421]]))
    elu_at_zero = Case(
        Network((1, 1), (Activation.ELU,), Loss.SQUARED_ERROR),
        Parameters((np.array([[0.1257302210933933]]),), (np.array([0.0]),)),
        np.array([[0.0]]), np.array([[-0.535669373161111]]))
    return {
        "a gradient 10^37 times below the loss": ("total-derivative", saturated),
        "ELU pre-activation exactly 0": ("self-consistency", elu_at_zero),
    }


# Judging the mutants, several at a time.

Job = tuple[str, int, int]
"""A suite run: backend class name, seed, examples per result."""


def judged(class_name: str, seed: int, examples: int) -> SuiteReport:
    """The whole suite on a fresh instance of the backend ``class_name``."""
    return run_suite(by_name(class_name)(), backend_spec=f"mutants:{class_name}",
                     examples=examples, seed=seed)


class Runs:
    """Suite runs started at once on every core, collected in any order.

    ``judge(name, seed, examples)`` makes one report (default
    :func:`judged`); it must be a module-level function. The workers are
    fresh interpreters (``spawn``; forked from a large process such as a
    test session they ran a third slower, copying its memory page by page).
    They import this module by name, from this folder, and print a traceback
    if they crash; should one die, the runs left undone are made in this
    process. With one worker every run is made here, when its report is
    first asked for.
    """

    def __init__(self, jobs: Sequence[Job], *, workers: int | None = None,
                 judge: Callable[[str, int, int], SuiteReport] = judged) -> None:
        self.workers = workers or _cores()
        self.workers_lost = False
        self._judge = judge
        self._futures: dict[Job, Future[SuiteReport]] = {}
        self._done: dict[Job, SuiteReport] = {}
        if self.workers > 1:
            self._start(jobs)

    def _start(self, jobs: Sequence[Job]) -> None:
        # Workers start during the submissions and take sys.path as it is then.
        folder = str(Path(__file__).resolve().parent)
        sys.path.insert(0, folder)
        try:
            executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=faulthandler.enable)
            self._futures = {job: executor.submit(self._judge, *job)
                             for job in dict.fromkeys(jobs)}
            executor.shutdown(wait=False)
        finally:
            sys.path.remove(folder)

    def report(self, job: Job) -> SuiteReport:
        """The report of ``job``, waiting for it (or running it) if need be."""
        if job not in self._done:
            future = self._futures.pop(job, None)
            try:
                self._done[job] = future.result() if future else self._judge(*job)
            except BrokenProcessPool:
                # A worker was killed from outside (the pool cannot say why);
                # the runs it left undone are made here, one at a time.
                self.workers_lost = True
                self._done[job] = self._judge(*job)
        return self._done[job]


def _cores() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
