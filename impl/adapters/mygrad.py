r"""The ``mygrad`` backend: MyGrad's ``Tensor.backward()`` on NumPy arrays.

Conventions converted here, each applied alike to the loss and its gradient:

* The batch is one ``B x n_0`` tensor and layer :math:`\ell` computes
  ``mygrad.matmul(a, W.T) + b``, so :math:`W_\ell` keeps the spec's
  ``n_l x n_{l-1}`` shape and ``W.grad`` is already in it.
* Squared error is written as :math:`\tfrac12\sum_i (a_i-y_i)^2` per example
  and averaged over the batch.
* Softmax cross-entropy is :math:`-\sum_i y_i\,
  (\texttt{mygrad.nnet.logsoftmax}(a))_i` per example, averaged over the
  batch. ``mygrad.nnet.softmax_crossentropy`` is not used: it takes class
  indices, while the spec's targets are vectors that need not sum to one.
* Activations: ``sigmoid``, ``relu``, ``leaky_relu(z, 0.01)`` and
  ``elu(z, alpha=1)`` from ``mygrad.nnet``, and ``mygrad.tanh``; softplus,
  which ``mygrad.nnet`` lacks, is ``mygrad.logaddexp(z, 0)``. At the kink
  ``relu`` passes no gradient (left derivative) and ``leaky_relu``, built
  from ``maximum`` and ``minimum``, passes none either (slope 0, neither
  one-sided value).
* The parameter Jacobian is assembled from one ``backward()`` per output
  unit; each weight block is flattened column-major (vec stacks columns)
  and the blocks laid out :math:`\operatorname{vec}W_1, b_1, \dots`.

Capabilities: ``input_jacobian`` and ``parameter_jacobian`` (one
``backward(seed)`` per output unit) and ``vjp`` (one ``backward(u)``).
MyGrad has reverse mode only, so no ``jvp``.

Every array is copied before MyGrad sees it: MyGrad marks the arrays in a
live graph read-only, and the caller's must stay as they were. Arrays are
computed in the dtype they arrive in (float64, or float32 in a
``--dtype float32`` run). MyGrad is imported when the backend is created.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from impl._protocol import Capability
from spec import Activation, FloatArray, Loss, LossAndGradients, Network, Parameters
from spec.conventions import ELU_ALPHA, LEAKY_RELU_SLOPE
from spec.errors import BackendLoadError

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'backprop-spec[mygrad]'"


@dataclass(frozen=True)
class _Mygrad:
    """The parts of MyGrad the backend uses."""

    mygrad: Any
    activations: Any


def _import_mygrad() -> _Mygrad:
    """MyGrad and its activations, or :class:`BackendLoadError`."""
    try:
        mygrad = importlib.import_module("mygrad")
        activations = importlib.import_module("mygrad.nnet.activations")
    except ImportError as error:
        raise BackendLoadError(
            "the mygrad backend needs MyGrad, which is not installed; install "
            f"it with: {INSTALL_HINT}") from error
    logger.info("mygrad %s loaded", mygrad.__version__)
    return _Mygrad(mygrad, activations)


@dataclass
class MygradBackend:
    """MyGrad reverse mode, in the dtype of the run."""

    name: str = "mygrad"
    capabilities: frozenset[Capability] = field(
        default=frozenset({Capability.INPUT_JACOBIAN, Capability.PARAMETER_JACOBIAN,
                           Capability.VJP}),
        repr=False)
    library: _Mygrad | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.library is None:
            self.library = _import_mygrad()
        self._mg = self.library

    # Building blocks: tensors, the activations, the network map, the loss.

    def _tensor(self, array: FloatArray, dtype: np.dtype[Any]) -> Any:
        return self._mg.mygrad.tensor(np.array(array, dtype=dtype))

    def _activate(self, activation: Activation, z: Any) -> Any:
        mg, nnet = self._mg.mygrad, self._mg.activations
        if activation is Activation.IDENTITY:
            return z
        if activation is Activation.SIGMOID:
            return nnet.sigmoid(z)
        if activation is Activation.TANH:
            return mg.tanh(z)
        if activation is Activation.RELU:
            return nnet.relu(z)
        if activation is Activation.LEAKY_RELU:
            return nnet.leaky_relu(z, float(LEAKY_RELU_SLOPE))
        if activation is Activation.SOFTPLUS:
            return mg.logaddexp(z, 0.0)
        if activation is Activation.ELU:
            return nnet.elu(z, alpha=float(ELU_ALPHA))
        raise ValueError(f"activation={activation!r} is not an Activation")

    def _network(self, network: Network, weights: list[Any], biases: list[Any],
                 inputs: Any) -> Any:
        a = inputs
        for W, b, activation in zip(weights, biases, network.activations):
            a = self._activate(activation, self._mg.mygrad.matmul(a, W.T) + b)
        return a

    def _loss(self, network: Network, output: Any, targets: Any) -> Any:
        mg = self._mg.mygrad
        if network.loss is Loss.SQUARED_ERROR:
            per_example = 0.5 * mg.sum((output - targets) ** 2, axis=1)
        else:
            log_p = self._mg.activations.logsoftmax(output, axis=1)
            per_example = -mg.sum(targets * log_p, axis=1)
        return mg.mean(per_example)

    def _parameters(self, parameters: Parameters,
                    dtype: np.dtype[Any]) -> tuple[list[Any], list[Any]]:
        return ([self._tensor(W, dtype) for W in parameters.weights],
                [self._tensor(b, dtype) for b in parameters.biases])

    # The protocol.

    def loss_and_gradients(self, network: Network, parameters: Parameters,
                           inputs: FloatArray, targets: FloatArray) -> \
            LossAndGradients:
        """Mean loss and ``backward()`` of it into every parameter."""
        dtype = np.asarray(inputs).dtype
        weights, biases = self._parameters(parameters, dtype)
        X, Y = np.array(inputs, dtype=dtype), np.array(targets, dtype=dtype)

        loss = self._loss(network, self._network(network, weights, biases, X), Y)
        loss.backward()

        return LossAndGradients(
            float(loss.item()),
            Parameters(tuple(_grad(W, dtype) for W in weights),
                       tuple(_grad(b, dtype) for b in biases)))

    def _backward_from_output(self, network: Network, parameters: Parameters,
                              x: FloatArray, seed: FloatArray) -> \
            tuple[Any, list[Any], list[Any]]:
        """Build the graph at ``x``; ``backward(seed)`` from :math:`a_L`."""
        dtype = np.asarray(x).dtype
        weights, biases = self._parameters(parameters, dtype)
        x_tensor = self._tensor(x, dtype)
        output = self._network(network, weights, biases, x_tensor)
        output.backward(np.array(seed, dtype=dtype))
        return x_tensor, weights, biases

    def input_jacobian(self, network: Network, parameters: Parameters,
                       x: FloatArray) -> FloatArray:
        """``n_L x n_0``, row ``i`` from ``backward(e_i)``."""
        dtype = np.asarray(x).dtype
        basis = np.eye(network.widths[-1], dtype=dtype)
        rows = [_grad(self._backward_from_output(network, parameters, x, e)[0], dtype)
                for e in basis]
        return np.array(rows, dtype=dtype)

    def parameter_jacobian(self, network: Network, parameters: Parameters,
                           x: FloatArray) -> FloatArray:
        r"""``n_L x P``, columns :math:`\operatorname{vec}W_1, b_1, \dots`."""
        dtype = np.asarray(x).dtype
        rows = []
        for e in np.eye(network.widths[-1], dtype=dtype):
            _, weights, biases = self._backward_from_output(network, parameters, x, e)
            rows.append(np.concatenate(
                [part for W, b in zip(weights, biases)
                 for part in (_grad(W, dtype).reshape(-1, order="F"),
                              _grad(b, dtype))]))
        return np.array(rows, dtype=dtype)

    def vjp(self, network: Network, parameters: Parameters, x: FloatArray,
            u: FloatArray) -> FloatArray:
        """:math:`u^\\top J_x` from ``backward(u)``, ``n_0`` entries."""
        dtype = np.asarray(x).dtype
        x_tensor, _, _ = self._backward_from_output(network, parameters, x, u)
        return _grad(x_tensor, dtype)


def _grad(tensor: Any, dtype: np.dtype[Any]) -> FloatArray:
    """A copy of ``tensor.grad``, which MyGrad leaves ``None`` if none flowed."""
    if tensor.grad is None:
        raise RuntimeError(
            f"MyGrad left the gradient of a tensor of shape {tensor.shape} unset "
            "after backward(), though the tensor is part of the graph")
    return np.array(tensor.grad, dtype=dtype)
