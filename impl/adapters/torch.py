r"""The ``torch`` backend: PyTorch autograd on the CPU, in float64.

Conventions converted here, each applied alike to the loss and its gradient:

* Squared error is written as :math:`\tfrac12\sum_i (a_i-y_i)^2` per example
  and averaged over the batch. ``torch.nn.functional.mse_loss`` would average
  over every entry instead (a factor :math:`2/n_L` away), so it is not used.
* Softmax cross-entropy is ``torch.nn.functional.cross_entropy`` with
  probability targets and ``reduction="mean"``, which is exactly
  :math:`\frac1B\sum_k -\sum_i y_i\log\operatorname{softmax}(a)_i`.
* Softplus is ``torch.logaddexp(z, 0)``. ``torch.nn.functional.softplus``
  replaces :math:`\log(1+e^z)` by :math:`z` when :math:`z > 20` (its
  ``threshold``), which is off by up to :math:`e^{-20}\approx 2\cdot10^{-9}`
  in the value and the derivative; the suite reports that as a violation, so
  this adapter judges autograd itself rather than that approximation.
* Leaky ReLU uses slope 0.01, ELU :math:`\alpha = 1`: PyTorch's defaults.

PyTorch is imported when the backend is created, so the rest of the project
runs without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from impl._protocol import Capability
from spec import Activation, FloatArray, Loss, LossAndGradients, Network, Parameters
from spec.conventions import ELU_ALPHA, LEAKY_RELU_SLOPE
from spec.errors import BackendLoadError


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as error:
        raise BackendLoadError(
            "the torch backend needs PyTorch, which is not installed; install it "
            "with: pip install 'backprop-spec[torch]' (pins torch==2.13.0)"
        ) from error
    return torch


@dataclass
class TorchBackend:
    """PyTorch autograd with float64 tensors on the CPU."""

    name: str = "torch"
    capabilities: frozenset[Capability] = field(default=frozenset(Capability),
                                                repr=False)
    torch: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.torch is None:
            self.torch = _import_torch()

    def _tensor(self, array: FloatArray, grad: bool = False) -> Any:
        """A tensor of the array's own dtype (float64, or float32 in such runs)."""
        values = np.array(array)
        dtype = self.torch.float32 if values.dtype == np.float32 else self.torch.float64
        return self.torch.tensor(values, dtype=dtype, requires_grad=grad)

    def _activate(self, activation: Activation, z: Any) -> Any:
        torch = self.torch
        functional = torch.nn.functional
        if activation is Activation.IDENTITY:
            return z
        if activation is Activation.SIGMOID:
            return torch.sigmoid(z)
        if activation is Activation.TANH:
            return torch.tanh(z)
        if activation is Activation.RELU:
            return torch.relu(z)
        if activation is Activation.LEAKY_RELU:
            return functional.leaky_relu(z, negative_slope=float(LEAKY_RELU_SLOPE))
        if activation is Activation.SOFTPLUS:
            return torch.logaddexp(z, torch.zeros_like(z))
        if activation is Activation.ELU:
            return functional.elu(z, alpha=float(ELU_ALPHA))
        raise ValueError(f"activation={activation!r} is not an Activation")

    def _network(self, network: Network, weights: list[Any], biases: list[Any],
                 inputs: Any) -> Any:
        a = inputs
        for W, b, activation in zip(weights, biases, network.activations):
            a = self._activate(activation, a @ W.T + b)
        return a

    def _loss(self, network: Network, output: Any, targets: Any) -> Any:
        if network.loss is Loss.SQUARED_ERROR:
            return (0.5 * ((output - targets) ** 2).sum(dim=1)).mean()
        return self.torch.nn.functional.cross_entropy(output, targets,
                                                      reduction="mean")

    def loss_and_gradients(self, network: Network, parameters: Parameters,
                           inputs: FloatArray, targets: FloatArray) -> \
            LossAndGradients:
        """Mean loss and ``torch.autograd.grad`` of it."""
        weights = [self._tensor(W, grad=True) for W in parameters.weights]
        biases = [self._tensor(b, grad=True) for b in parameters.biases]
        output = self._network(network, weights, biases, self._tensor(inputs))
        loss = self._loss(network, output, self._tensor(targets))
        grads = self.torch.autograd.grad(loss, weights + biases)
        L = network.depth
        return LossAndGradients(
            loss.detach().numpy()[()],
            Parameters(tuple(g.detach().numpy().copy() for g in grads[:L]),
                       tuple(g.detach().numpy().copy() for g in grads[L:])))

    def _input_map(self, network: Network, parameters: Parameters) -> Any:
        weights = [self._tensor(W) for W in parameters.weights]
        biases = [self._tensor(b) for b in parameters.biases]
        return lambda x: self._network(network, weights, biases, x)

    def input_jacobian(self, network: Network, parameters: Parameters,
                       x: FloatArray) -> FloatArray:
        """``torch.autograd.functional.jacobian`` of the network map."""
        J = self.torch.autograd.functional.jacobian(
            self._input_map(network, parameters), self._tensor(x))
        return np.asarray(J.detach().numpy())

    def parameter_jacobian(self, network: Network, parameters: Parameters,
                           x: FloatArray) -> FloatArray:
        r"""Jacobian in the parameters, reordered to :math:`\operatorname{vec}W_1, b_1,\dots`.

        PyTorch returns the Jacobian with respect to ``W`` as an
        ``n_L x m x n`` tensor; it is flattened column-major (vec stacks
        columns) to match :mod:`spec.conventions`.
        """
        L = network.depth
        tensors = []
        for W, b in zip(parameters.weights, parameters.biases):
            tensors += [self._tensor(W), self._tensor(b)]
        x_tensor = self._tensor(x)

        def network_map(*flat: Any) -> Any:
            return self._network(network, list(flat[0::2]), list(flat[1::2]),
                                 x_tensor)

        parts = self.torch.autograd.functional.jacobian(network_map, tuple(tensors))
        n_out = network.widths[-1]
        blocks = []
        for ell in range(L):
            dW = parts[2 * ell].detach().numpy()
            blocks.append(dW.transpose(0, 2, 1).reshape(n_out, -1))
            blocks.append(parts[2 * ell + 1].detach().numpy())
        return np.asarray(np.concatenate(blocks, axis=1))

    def vjp(self, network: Network, parameters: Parameters, x: FloatArray,
            u: FloatArray) -> FloatArray:
        """``torch.autograd.functional.vjp``."""
        _, result = self.torch.autograd.functional.vjp(
            self._input_map(network, parameters), self._tensor(x), self._tensor(u))
        return np.asarray(result.detach().numpy())

    def jvp(self, network: Network, parameters: Parameters, x: FloatArray,
            v: FloatArray) -> FloatArray:
        """``torch.autograd.functional.jvp``."""
        _, result = self.torch.autograd.functional.jvp(
            self._input_map(network, parameters), self._tensor(x), self._tensor(v))
        return np.asarray(result.detach().numpy())

    def input_jacobian_forward(self, network: Network, parameters: Parameters,
                               x: FloatArray) -> FloatArray:
        """``torch.func.jacfwd`` of the network map (forward mode)."""
        J = self.torch.func.jacfwd(self._input_map(network, parameters))(
            self._tensor(x))
        return np.asarray(J.detach().numpy())

    def layer_jacobians(self, network: Network, parameters: Parameters,
                        x: FloatArray) -> list[FloatArray]:
        """Each layer's Jacobian by ``torch.autograd.functional.jacobian``."""
        jacobian = self.torch.autograd.functional.jacobian
        a = self._tensor(x)
        result = []
        for W, b, activation in zip(parameters.weights, parameters.biases,
                                    network.activations):
            W_t, b_t = self._tensor(W), self._tensor(b)

            def layer(v: Any, W_t: Any = W_t, b_t: Any = b_t,
                      activation: Activation = activation) -> Any:
                return self._activate(activation, W_t @ v + b_t)

            result.append(np.asarray(jacobian(layer, a).detach().numpy()))
            a = layer(a)
        return result
