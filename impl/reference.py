r"""The ``reference`` backend: batched backpropagation in float64 numpy.

Forward, for the batch as rows: :math:`Z_\ell = A_{\ell-1} W_\ell^\top + b_\ell`,
:math:`A_\ell = \sigma_\ell(Z_\ell)`. Backward, with
:math:`\Delta_L = \sigma_L'(Z_L) \odot \nabla_{A_L}\ell / B`:

.. math::

    \frac{\partial\mathcal{L}}{\partial W_\ell} = \Delta_\ell^\top A_{\ell-1},\quad
    \frac{\partial\mathcal{L}}{\partial b_\ell} = \mathbf{1}^\top\Delta_\ell,\quad
    \Delta_{\ell-1} = \sigma_{\ell-1}'(Z_{\ell-1}) \odot \Delta_\ell W_\ell.

It also declares every Jacobian capability, computed by the same recursion
with one cotangent per output unit (reverse mode) or one tangent (forward).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from impl import _numeric
from impl._counting import OperationCounter, elementwise, matmul
from impl._protocol import Capability
from spec import FloatArray, LossAndGradients, Network, Parameters


@dataclass(frozen=True)
class _Forward:
    Z: list[FloatArray]
    A: list[FloatArray]


@dataclass
class ReferenceBackend:
    """Fast batched numpy backpropagation; the suite's default subject.

    Attributes
    ----------
    counter
        When set, every arithmetic operation is counted into it.
    """

    name: str = "reference"
    capabilities: frozenset[Capability] = field(
        default=frozenset(Capability), repr=False)
    counter: OperationCounter | None = None

    def forward(self, network: Network, parameters: Parameters,
                inputs: FloatArray) -> _Forward:
        """Every layer's pre-activations and activations, batch as rows."""
        Z: list[FloatArray] = []
        A: list[FloatArray] = [np.asarray(inputs)]
        for W, b, activation in zip(parameters.weights, parameters.biases,
                                    network.activations):
            z = elementwise(matmul(A[-1], W.T, self.counter) + b, self.counter)
            Z.append(z)
            A.append(elementwise(_numeric.sigma(activation, z), self.counter))
        return _Forward(Z, A)

    def loss_and_gradients(self, network: Network, parameters: Parameters,
                           inputs: FloatArray, targets: FloatArray) -> \
            LossAndGradients:
        """Mean loss over the batch and its gradients by backpropagation."""
        if self.counter is not None:
            self.counter.phase = "forward"
        state = self.forward(network, parameters, inputs)
        B = inputs.shape[0]
        losses = elementwise(_numeric.example_losses(network.loss, state.A[-1],
                                                     targets), self.counter)
        loss = float(losses.mean())

        if self.counter is not None:
            self.counter.phase = "backward"
        G = _numeric.loss_gradient(network.loss, state.A[-1], targets) / B
        weights, biases = self._backward(network, parameters, state, G)
        return LossAndGradients(loss, Parameters(tuple(weights), tuple(biases)))

    def _backward(self, network: Network, parameters: Parameters, state: _Forward,
                  G: FloatArray) -> tuple[list[FloatArray], list[FloatArray]]:
        """Backpropagate the row cotangents ``G`` (``B x n_L``) to every layer."""
        L = network.depth
        weights: list[FloatArray] = [np.empty(0)] * L
        biases: list[FloatArray] = [np.empty(0)] * L
        for ell in range(L, 0, -1):
            D = _numeric.sigma_prime(network.activations[ell - 1], state.Z[ell - 1])
            delta = elementwise(D * G, self.counter)
            weights[ell - 1] = matmul(delta.T, state.A[ell - 1], self.counter)
            biases[ell - 1] = np.asarray(delta.sum(axis=0))
            if ell > 1:
                G = matmul(delta, parameters.weights[ell - 1], self.counter)
        return weights, biases

    def input_jacobian(self, network: Network, parameters: Parameters,
                       x: FloatArray) -> FloatArray:
        """``n_L x n_0``: reverse mode with one cotangent per output unit."""
        G = np.eye(network.widths[-1], dtype=np.asarray(x).dtype)
        state = self.forward(network, parameters, np.asarray(x)[None, :])
        for ell in range(network.depth, 0, -1):
            D = _numeric.sigma_prime(network.activations[ell - 1], state.Z[ell - 1])
            G = (D * G) @ parameters.weights[ell - 1]
        return np.asarray(G)

    def parameter_jacobian(self, network: Network, parameters: Parameters,
                           x: FloatArray) -> FloatArray:
        r"""``n_L x P``, columns :math:`\operatorname{vec}W_1, b_1, \dots`."""
        state = self.forward(network, parameters, np.asarray(x)[None, :])
        rows = np.eye(network.widths[-1], dtype=np.asarray(x).dtype)
        blocks: list[FloatArray] = []
        G = rows
        for ell in range(network.depth, 0, -1):
            D = _numeric.sigma_prime(network.activations[ell - 1], state.Z[ell - 1])
            delta = D * G
            kron = np.asarray(np.kron(state.A[ell - 1], delta))
            blocks = [kron, delta] + blocks
            G = delta @ parameters.weights[ell - 1]
        return np.asarray(np.concatenate(blocks, axis=1))

    def vjp(self, network: Network, parameters: Parameters, x: FloatArray,
            u: FloatArray) -> FloatArray:
        r""":math:`u^\top J_x`, by one reverse sweep."""
        return np.asarray(np.asarray(u) @ self.input_jacobian(network, parameters, x))

    def jvp(self, network: Network, parameters: Parameters, x: FloatArray,
            v: FloatArray) -> FloatArray:
        r""":math:`J_x v`, by one forward sweep of tangents."""
        state = self.forward(network, parameters, np.asarray(x)[None, :])
        tangent = np.asarray(v)
        for ell in range(1, network.depth + 1):
            D = _numeric.sigma_prime(network.activations[ell - 1], state.Z[ell - 1][0])
            tangent = D * (parameters.weights[ell - 1] @ tangent)
        return tangent

    def input_jacobian_forward(self, network: Network, parameters: Parameters,
                               x: FloatArray) -> FloatArray:
        """``n_L x n_0``: forward mode, one tangent per input coordinate."""
        state = self.forward(network, parameters, np.asarray(x)[None, :])
        T = np.eye(network.widths[0], dtype=np.asarray(x).dtype)
        for ell in range(1, network.depth + 1):
            D = _numeric.sigma_prime(network.activations[ell - 1], state.Z[ell - 1][0])
            T = D[:, None] * (parameters.weights[ell - 1] @ T)
        return np.asarray(T)

    def layer_jacobians(self, network: Network, parameters: Parameters,
                        x: FloatArray) -> list[FloatArray]:
        r"""Each layer's :math:`\operatorname{diag}(\sigma'(z_\ell)) W_\ell`."""
        state = self.forward(network, parameters, np.asarray(x)[None, :])
        return [np.asarray(_numeric.sigma_prime(activation, z[0])[:, None] * W)
                for activation, z, W in zip(network.activations, state.Z,
                                            parameters.weights)]
