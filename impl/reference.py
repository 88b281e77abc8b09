r"""The ``reference`` backend: batched backpropagation in numpy.

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

import threading
from dataclasses import dataclass, field

import numpy as np

from impl import _numeric
from impl._counting import OperationCounter, elementwise, matmul
from impl._protocol import Capability
from spec import Activation, FloatArray, LossAndGradients, Network, Parameters


@dataclass(frozen=True)
class _Forward:
    Z: list[FloatArray]
    A: list[FloatArray]


@dataclass
class ReferenceBackend:
    """Fast batched numpy backpropagation; the suite's default subject.

    Arrays keep their dtype: float32 parameters and inputs are computed in
    float32 throughout. The caller's arrays are only read, and every array
    returned is new. The pre-activations and cotangents inside
    :meth:`loss_and_gradients` and :meth:`loss` go to arrays kept from the
    previous call of the same shapes in the same thread (see
    :class:`_Workspace`).

    Attributes
    ----------
    counter
        When set, the backend runs the recursion as written above, one
        counted operation at a time, and adds every arithmetic operation to
        the counter; without it the same formulas run with fewer
        temporaries, in arrays reused from call to call.
    """

    name: str = "reference"
    capabilities: frozenset[Capability] = field(
        default=frozenset(Capability), repr=False)
    counter: OperationCounter | None = None

    def forward(self, network: Network, parameters: Parameters,
                inputs: FloatArray) -> _Forward:
        r"""Every layer's pre-activations and activations, batch as rows.

        For the identity, :math:`A_\ell` is the array :math:`Z_\ell` itself.
        """
        if self.counter is not None:
            return self._counted_forward(network, parameters, inputs,
                                         self.counter)
        Z: list[FloatArray] = []
        A: list[FloatArray] = [np.asarray(inputs)]
        for W, b, activation in zip(parameters.weights, parameters.biases,
                                    network.activations):
            z = _affine(A[-1], W, b, None)
            Z.append(z)
            A.append(z if activation is Activation.IDENTITY
                     else _numeric.sigma(activation, z))
        return _Forward(Z, A)

    def loss(self, network: Network, parameters: Parameters, inputs: FloatArray,
             targets: FloatArray) -> float:
        """The mean loss alone, by the forward pass of :meth:`loss_and_gradients`."""
        if self.counter is not None:
            _, losses = self._counted_losses(network, parameters, inputs, targets,
                                             self.counter)
            return float(losses.mean())
        X, Y = np.asarray(inputs), np.asarray(targets)
        Z_arrays, _ = _WORKSPACE.arrays(network, parameters, X, Y)
        A, _ = _forward_in_place(network, parameters, X, Z_arrays)
        return float(_numeric.example_losses(network.loss, A[-1], Y).mean())

    def loss_and_gradients(self, network: Network, parameters: Parameters,
                           inputs: FloatArray, targets: FloatArray) -> \
            LossAndGradients:
        """Mean loss over the batch and its gradients by backpropagation."""
        if self.counter is not None:
            return self._counted_loss_and_gradients(network, parameters, inputs,
                                                    targets, self.counter)
        X, Y = np.asarray(inputs), np.asarray(targets)
        Z_arrays, G_arrays = _WORKSPACE.arrays(network, parameters, X, Y)
        A, Z = _forward_in_place(network, parameters, X, Z_arrays)
        return _loss_and_backward(network, parameters, A, Z, Y, G_arrays)

    def _counted_forward(self, network: Network, parameters: Parameters,
                         inputs: FloatArray, counter: OperationCounter) -> \
            _Forward:
        """:meth:`forward`, every operation counted."""
        Z: list[FloatArray] = []
        A: list[FloatArray] = [np.asarray(inputs)]
        for W, b, activation in zip(parameters.weights, parameters.biases,
                                    network.activations):
            z = elementwise(matmul(A[-1], W.T, counter) + b, counter)
            Z.append(z)
            A.append(elementwise(_numeric.sigma(activation, z), counter))
        return _Forward(Z, A)

    def _counted_losses(self, network: Network, parameters: Parameters,
                        inputs: FloatArray, targets: FloatArray,
                        counter: OperationCounter) -> tuple[_Forward, FloatArray]:
        """The forward pass and each example's loss, counted as the forward
        phase."""
        counter.phase = "forward"
        state = self._counted_forward(network, parameters, inputs, counter)
        return state, elementwise(_numeric.example_losses(network.loss, state.A[-1],
                                                          targets), counter)

    def _counted_loss_and_gradients(self, network: Network, parameters: Parameters,
                                    inputs: FloatArray, targets: FloatArray,
                                    counter: OperationCounter) -> LossAndGradients:
        """:meth:`loss_and_gradients`, every operation counted by phase."""
        state, losses = self._counted_losses(network, parameters, inputs, targets,
                                             counter)

        counter.phase = "backward"
        G = _numeric.loss_gradient(network.loss, state.A[-1], targets) / \
            inputs.shape[0]
        L = network.depth
        weights: list[FloatArray] = [np.empty(0)] * L
        biases: list[FloatArray] = [np.empty(0)] * L
        for ell in range(L, 0, -1):
            D = _numeric.sigma_prime(network.activations[ell - 1], state.Z[ell - 1])
            delta = elementwise(D * G, counter)
            weights[ell - 1] = matmul(delta.T, state.A[ell - 1], counter)
            biases[ell - 1] = np.asarray(delta.sum(axis=0))
            if ell > 1:
                G = matmul(delta, parameters.weights[ell - 1], counter)
        return LossAndGradients(float(losses.mean()),
                                Parameters(tuple(weights), tuple(biases)))

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


class _Workspace(threading.local):
    r"""Arrays for one network's intermediates, kept from call to call.

    A fresh array of a few hundred kilobytes or more is often mapped from
    the operating system on every call and faulted in page by page; on the
    784-512-512-10 network in float64 that cost a fifth of the time. So the
    pre-activations :math:`Z_\ell` (``B x n_l``, the activation computed over
    them where :data:`impl._numeric.FROM_VALUE` allows) and the cotangents
    :math:`\Delta_\ell W_\ell` (``B x n_{l-1}``) of the last call are kept
    and reused by the next call with the same shapes. Each thread has its
    own set, and nothing in it is ever returned.
    """

    def __init__(self) -> None:
        self.key: tuple[object, ...] = ()
        self.Z: list[FloatArray | None] = []
        self.G: list[FloatArray | None] = []

    def arrays(self, network: Network, parameters: Parameters, X: FloatArray,
               Y: FloatArray) -> tuple[list[FloatArray | None],
                                       list[FloatArray | None]]:
        r"""Per layer ``l``, an array for :math:`Z_\ell` and one for the
        cotangent of :math:`A_{\ell-1}` (``None`` for layer 1, which has
        none); ``None`` throughout where the dtypes differ, so that numpy's
        own promotion decides the dtype of each result."""
        dtype, B, L = X.dtype, X.shape[0], network.depth
        if not (Y.dtype == dtype and all(W.dtype == dtype for W in parameters.weights)
                and all(b.dtype == dtype for b in parameters.biases)):
            return [None] * L, [None] * L
        key = (dtype, B, network.widths)
        if key != self.key:
            self.Z = [np.empty((B, n), dtype) for n in network.widths[1:]]
            self.G = [None] + [np.empty((B, n), dtype) for n in network.widths[1:-1]]
            self.key = key
        return self.Z, self.G


_WORKSPACE = _Workspace()


def _affine(a: FloatArray, W: FloatArray, b: FloatArray,
            out: FloatArray | None) -> FloatArray:
    r""":math:`a W^\top + b`, into ``out`` when given; the bias is added in
    place unless it has the wider dtype (then the sum takes it, as
    ``a @ W.T + b`` would)."""
    z = np.matmul(a, W.T, out=out)
    if b.dtype == z.dtype:
        z += b
        return z
    return np.asarray(z + b)


def _forward_in_place(network: Network, parameters: Parameters, X: FloatArray,
                      Z_arrays: list[FloatArray | None]) -> \
        tuple[list[FloatArray], list[FloatArray]]:
    r"""Activations ``A`` (``A[0]`` is ``X``) and what each layer's derivative
    needs: :math:`Z_\ell`, or :math:`A_\ell` for the activations whose
    derivative comes from their value (:data:`impl._numeric.FROM_VALUE`),
    which are computed over :math:`Z_\ell` in its array."""
    A = [X]
    Z: list[FloatArray] = []
    for W, b, activation, out in zip(parameters.weights, parameters.biases,
                                     network.activations, Z_arrays):
        z = _affine(A[-1], W, b, out)
        Z.append(z)
        A.append(_numeric.sigma_over(activation, z))
    return A, Z


def _loss_and_backward(network: Network, parameters: Parameters,
                       A: list[FloatArray], Z: list[FloatArray], Y: FloatArray,
                       G_arrays: list[FloatArray | None]) -> LossAndGradients:
    """What :meth:`ReferenceBackend.loss_and_gradients` does after the forward
    pass: the loss with its gradient, then the backward pass. Reads ``A`` and
    ``Z`` only, so it can run again on the same forward pass."""
    losses, G = _numeric.losses_and_gradient(network.loss, A[-1], Y)
    G /= A[0].shape[0]
    weights, biases = _backward(network, parameters, A, Z, G, G_arrays)
    return LossAndGradients(float(losses.mean()),
                            Parameters(tuple(weights), tuple(biases)))


def _backward(network: Network, parameters: Parameters, A: list[FloatArray],
              Z: list[FloatArray], G: FloatArray,
              G_arrays: list[FloatArray | None]) -> \
        tuple[list[FloatArray], list[FloatArray]]:
    """Backpropagate the row cotangents ``G`` (``B x n_L``, overwritten).

    The bias gradient sums over the batch as a product with a vector of
    ones; layer 1's input cotangent is never formed. The gradients are new
    arrays; the cotangents go to ``G_arrays[l - 2]`` for layer ``l``.
    """
    L = network.depth
    weights: list[FloatArray] = [np.empty(0)] * L
    biases: list[FloatArray] = [np.empty(0)] * L
    ones = np.ones(G.shape[0], dtype=G.dtype)
    for ell in range(L, 0, -1):
        delta = _numeric.backpropagate(network.activations[ell - 1], Z[ell - 1],
                                       A[ell], G)
        weights[ell - 1] = delta.T @ A[ell - 1]
        biases[ell - 1] = ones @ delta
        if ell > 1:
            G = np.matmul(delta, parameters.weights[ell - 1],
                          out=G_arrays[ell - 1])
    return weights, biases
