r"""The ``mpmath`` backend: the oracle every comparison is made against.

Parameters and inputs are float64, hence exact dyadic rationals; the oracle
converts them without rounding and evaluates the network, the loss and the
backpropagation recursion of :mod:`spec.backprop` in ``digits`` significant
decimal digits (30 by default). Its float64 answers are the exact values
rounded once. Tests check it against high-precision central differences (the
definition of the derivative) and against the explicit Jacobian product.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import mpmath
import numpy as np

from impl._protocol import Capability
from spec import (
    ExactArray,
    FloatArray,
    LossAndGradients,
    Network,
    Parameters,
    to_exact,
    to_float,
)
from spec.backprop import gradients_by_backprop
from spec.conventions import ExactForward, forward_exact, sigma_prime
from spec.errors import UsageError
from spec.loss_gradient import loss_gradient

logger = logging.getLogger(__name__)

DEFAULT_DIGITS = 30
"""Significant decimal digits of the oracle: float64 carries about 16, so the
oracle's own rounding is :math:`10^{-14}` times smaller than a float64 ulp."""


@dataclass(frozen=True)
class ExactExample:
    """One example's exact forward pass and gradients."""

    forward: ExactForward
    deltas: list[ExactArray]
    weight_gradients: list[ExactArray]
    bias_gradients: list[ExactArray]
    upstream: list[ExactArray]
    """``upstream[l - 1]`` is the exact gradient of the loss in ``a_l``."""


@dataclass(frozen=True)
class ExactBatch:
    """A batch's exact quantities: per example, and their means."""

    examples: list[ExactExample]
    loss: Any
    weight_gradients: list[ExactArray]
    bias_gradients: list[ExactArray]


@dataclass
class MpmathBackend:
    """High-precision backpropagation in mpmath.

    Parameters
    ----------
    digits
        Working precision in significant decimal digits, at least 20.
    """

    digits: int = DEFAULT_DIGITS
    name: str = "mpmath"
    capabilities: frozenset[Capability] = field(
        default=frozenset({Capability.INPUT_JACOBIAN, Capability.PARAMETER_JACOBIAN,
                           Capability.VJP, Capability.JVP,
                           Capability.LAYER_JACOBIANS}), repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.digits, int) or self.digits < 20:
            raise UsageError(f"digits={self.digits!r}: the oracle needs an integer "
                             "of at least 20 significant digits")

    def exact(self, network: Network, parameters: Parameters, inputs: FloatArray,
              targets: FloatArray) -> ExactBatch:
        """Everything the suite compares against, in exact arithmetic."""
        with mpmath.workdps(self.digits):
            W = [to_exact(w) for w in parameters.weights]
            b = [to_exact(v) for v in parameters.biases]
            examples = [self._example(network, W, b, x, y)
                        for x, y in zip(inputs, targets)]
            B = len(examples)
            loss = mpmath.fsum(e.forward.loss for e in examples) / B
            mean_W = [_mean([e.weight_gradients[i] for e in examples])
                      for i in range(network.depth)]
            mean_b = [_mean([e.bias_gradients[i] for e in examples])
                      for i in range(network.depth)]
        return ExactBatch(examples, loss, mean_W, mean_b)

    def _example(self, network: Network, W: list[ExactArray], b: list[ExactArray],
                 x: FloatArray, y: FloatArray) -> ExactExample:
        y_exact = to_exact(y)
        forward = forward_exact(network, W, b, to_exact(x), y_exact)
        weight_gradients, deltas = gradients_by_backprop(network, W, forward, y_exact)
        upstream = [loss_gradient(network.loss, list(forward.a[-1]), list(y_exact))]
        for ell in range(network.depth, 1, -1):
            upstream.insert(0, W[ell - 1].T.dot(deltas[ell - 1]))
        return ExactExample(forward, deltas, weight_gradients, list(deltas), upstream)

    def loss_and_gradients(self, network: Network, parameters: Parameters,
                           inputs: FloatArray, targets: FloatArray) -> \
            LossAndGradients:
        """The exact batch loss and gradients, each rounded once to float64."""
        batch = self.exact(network, parameters, inputs, targets)
        return LossAndGradients(
            float(batch.loss),
            Parameters(tuple(to_float(g) for g in batch.weight_gradients),
                       tuple(to_float(g) for g in batch.bias_gradients)))

    def exact_input_jacobian(self, network: Network, parameters: Parameters,
                             x: FloatArray) -> ExactArray:
        r"""Exact ``n_L x n_0`` Jacobian of :math:`x \mapsto a_L`."""
        with mpmath.workdps(self.digits):
            W = [to_exact(w) for w in parameters.weights]
            forward = self._forward_only(network, parameters, x)
            J = np.eye(network.widths[-1], dtype=object) * mpmath.mpf(1)
            for ell in range(network.depth, 0, -1):
                D = [sigma_prime(network.activations[ell - 1], v)
                     for v in forward.z[ell - 1]]
                J = (J * np.array(D, dtype=object)[None, :]).dot(W[ell - 1])
        return np.asarray(J, dtype=object)

    def exact_parameter_jacobian(self, network: Network, parameters: Parameters,
                                 x: FloatArray) -> ExactArray:
        r"""Exact ``n_L x P`` Jacobian, columns :math:`\operatorname{vec}W_1, b_1,\dots`."""
        with mpmath.workdps(self.digits):
            W = [to_exact(w) for w in parameters.weights]
            forward = self._forward_only(network, parameters, x)
            G = np.eye(network.widths[-1], dtype=object) * mpmath.mpf(1)
            blocks: list[ExactArray] = []
            for ell in range(network.depth, 0, -1):
                D = [sigma_prime(network.activations[ell - 1], v)
                     for v in forward.z[ell - 1]]
                delta = G * np.array(D, dtype=object)[None, :]
                blocks = [np.kron(forward.a[ell - 1][None, :], delta), delta] + blocks
                G = delta.dot(W[ell - 1])
        return np.concatenate(blocks, axis=1)

    def _forward_only(self, network: Network, parameters: Parameters,
                      x: FloatArray) -> ExactForward:
        zeros = np.zeros(network.widths[-1])
        return forward_exact(network, [to_exact(w) for w in parameters.weights],
                             [to_exact(v) for v in parameters.biases],
                             to_exact(x), to_exact(zeros))

    def layer_jacobians(self, network: Network, parameters: Parameters,
                        x: FloatArray) -> list[FloatArray]:
        r"""Each layer's :math:`\operatorname{diag}(\sigma'(z_\ell)) W_\ell`, rounded."""
        with mpmath.workdps(self.digits):
            forward = self._forward_only(network, parameters, x)
            return [to_float(np.array([[sigma_prime(activation, zi) * wij for wij in row]
                                       for zi, row in zip(z, to_exact(W))],
                                      dtype=object))
                    for activation, z, W in zip(network.activations, forward.z,
                                                parameters.weights)]

    def input_jacobian(self, network: Network, parameters: Parameters,
                       x: FloatArray) -> FloatArray:
        """The exact input Jacobian rounded to float64."""
        return to_float(self.exact_input_jacobian(network, parameters, x))

    def parameter_jacobian(self, network: Network, parameters: Parameters,
                           x: FloatArray) -> FloatArray:
        """The exact parameter Jacobian rounded to float64."""
        return to_float(self.exact_parameter_jacobian(network, parameters, x))

    def vjp(self, network: Network, parameters: Parameters, x: FloatArray,
            u: FloatArray) -> FloatArray:
        r""":math:`u^\top J_x`, exact then rounded."""
        J = self.exact_input_jacobian(network, parameters, x)
        with mpmath.workdps(self.digits):
            return to_float(to_exact(u).dot(J))

    def jvp(self, network: Network, parameters: Parameters, x: FloatArray,
            v: FloatArray) -> FloatArray:
        r""":math:`J_x v`, exact then rounded."""
        J = self.exact_input_jacobian(network, parameters, x)
        with mpmath.workdps(self.digits):
            return to_float(J.dot(to_exact(v)))


def _mean(arrays: list[ExactArray]) -> ExactArray:
    total = arrays[0]
    for array in arrays[1:]:
        total = total + array
    return np.asarray(total / len(arrays), dtype=object)
