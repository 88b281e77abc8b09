r"""The ``jacobian-product`` backend: the paper's formula, literally.

For each example and each layer :math:`\ell`, every Jacobian of the chain is
formed as a dense matrix and the product is evaluated from the parameter side,
the order that forms the largest intermediates:

.. math::

    M \leftarrow D_\ell (a_{\ell-1}^\top \otimes I), \quad
    M \leftarrow D_k W_k M \ (k = \ell+1, \dots, L), \quad
    \nabla_{\operatorname{vec}W_\ell}\ell = (J_\ell M)^\top.

Nothing is shared between layers or examples. This is slow on purpose: it is
the cost baseline of :mod:`spec.cost` and an independent float64
implementation of :mod:`spec.gradient_product`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from impl import _numeric
from impl._counting import OperationCounter, elementwise, matmul
from impl._protocol import Capability
from spec import FloatArray, LossAndGradients, Network, Parameters
from spec.conventions import unvec
from spec.errors import BackendLimitError

MAX_MATRIX_ENTRIES = 1 << 24
"""Largest explicit Jacobian formed: 2**24 float64 entries, 128 MiB.

The Kronecker factor of layer :math:`\\ell` alone has
:math:`n_\\ell^2 n_{\\ell-1}` entries, so a 512-wide layer would need 1 GiB;
past this limit the backend refuses with a clear error instead."""


@dataclass
class JacobianProductBackend:
    """Explicit Jacobian matrices multiplied as the statement writes them."""

    name: str = "jacobian-product"
    capabilities: frozenset[Capability] = field(default=frozenset(), repr=False)
    counter: OperationCounter | None = None

    def loss_and_gradients(self, network: Network, parameters: Parameters,
                           inputs: FloatArray, targets: FloatArray) -> \
            LossAndGradients:
        """Mean loss and gradients, each example and layer on its own."""
        _check_size(network)
        B = inputs.shape[0]
        weights = [np.zeros_like(W) for W in parameters.weights]
        biases = [np.zeros_like(b) for b in parameters.biases]
        total = inputs.dtype.type(0)
        for k in range(B):
            loss, dW, db = self._example(network, parameters, inputs[k], targets[k])
            total += loss
            for ell in range(network.depth):
                weights[ell] += dW[ell] / B
                biases[ell] += db[ell] / B
        return LossAndGradients(float(total / B),
                                Parameters(tuple(weights), tuple(biases)))

    def _example(self, network: Network, parameters: Parameters, x: FloatArray,
                 y: FloatArray) -> tuple[float, list[FloatArray], list[FloatArray]]:
        if self.counter is not None:
            self.counter.phase = "forward"
        z_list, a_list = self._forward(network, parameters, x)
        loss = float(_numeric.example_losses(network.loss, a_list[-1][None, :],
                                             y[None, :])[0])
        if self.counter is not None:
            self.counter.phase = "backward"
        J_loss = _numeric.loss_gradient(network.loss, a_list[-1][None, :],
                                        y[None, :])
        D = [np.diag(_numeric.sigma_prime(act, z))
             for act, z in zip(network.activations, z_list)]

        weights, biases = [], []
        for ell in range(1, network.depth + 1):
            m = network.widths[ell]
            kron = np.asarray(np.kron(a_list[ell - 1][None, :],
                                      np.eye(m, dtype=x.dtype)))
            M_W = matmul(D[ell - 1], kron, self.counter)
            M_b = D[ell - 1].copy()
            for k in range(ell + 1, network.depth + 1):
                chain = matmul(D[k - 1], parameters.weights[k - 1], self.counter)
                M_W = matmul(chain, M_W, self.counter)
                M_b = matmul(chain, M_b, self.counter)
            weights.append(unvec(matmul(J_loss, M_W, self.counter)[0],
                                 network.weight_shape(ell)))
            biases.append(matmul(J_loss, M_b, self.counter)[0])
        return loss, weights, biases

    def _forward(self, network: Network, parameters: Parameters, x: FloatArray) -> \
            tuple[list[FloatArray], list[FloatArray]]:
        z_list: list[FloatArray] = []
        a_list: list[FloatArray] = [np.asarray(x)]
        for W, b, activation in zip(parameters.weights, parameters.biases,
                                    network.activations):
            z = elementwise(matmul(W, a_list[-1], self.counter) + b, self.counter)
            z_list.append(z)
            a_list.append(elementwise(_numeric.sigma(activation, z), self.counter))
        return z_list, a_list


def _check_size(network: Network) -> None:
    for ell in range(1, network.depth + 1):
        entries = network.widths[ell] ** 2 * network.widths[ell - 1]
        if entries > MAX_MATRIX_ENTRIES:
            raise BackendLimitError(
                f"jacobian-product: layer {ell} ({network.widths[ell]} x "
                f"{network.widths[ell - 1]}) needs a Kronecker Jacobian of "
                f"{entries} entries, over the limit of {MAX_MATRIX_ENTRIES}; "
                "use the reference backend for networks this wide"
            )
