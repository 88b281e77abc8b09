r"""The ``autograd`` backend: HIPS autograd's ``grad``, ``jacobian`` and VJPs.

Conventions converted here, each applied alike to the loss and its gradient:

* The batch is one ``B x n_0`` array and layer :math:`\ell` computes
  ``a @ W.T + b`` with ``autograd.numpy``, so ``autograd.grad`` returns
  gradients already in the parameters' shapes.
* Squared error is written as :math:`\tfrac12\sum_i (a_i-y_i)^2` per example
  and averaged over the batch.
* Softmax cross-entropy is :math:`-\sum_i y_i\,(a_i - \operatorname{logsumexp}
  (a))` per example with ``autograd.scipy.special.logsumexp``, averaged over
  the batch; targets need not sum to one.
* autograd has no activation library, so each is written with its
  primitives: sigmoid is ``autograd.scipy.special.expit``, tanh is
  ``np.tanh``, ReLU is ``np.maximum(z, 0)``, leaky ReLU is
  ``np.where(z > 0, z, 0.01 * z)``, softplus is ``np.logaddexp(z, 0)``, and
  ELU is ``np.where(z > 0, z, np.expm1(np.where(z > 0, 0, z)))``. The inner
  ``where`` keeps ``expm1`` of a large positive ``z`` (``inf``) out of the
  gradient, where ``0 * inf`` would give NaN; it changes no value. At a tie
  ``np.maximum`` splits the gradient evenly, so autograd's ReLU has slope
  1/2 at its kink, neither one-sided derivative.
* The parameter Jacobian is ``autograd.jacobian`` of the network output as a
  function of one vector :math:`(\operatorname{vec}W_1, b_1,
  \operatorname{vec}W_2, \dots)`, so its columns come out in the spec's
  order; each ``vec W`` is unpacked as ``reshape(n, m).T`` (vec stacks
  columns).

Capabilities: ``input_jacobian`` (``autograd.jacobian``, reverse mode),
``parameter_jacobian``, ``vjp`` (``autograd.make_vjp``), ``jvp`` and
``layer_jacobians``. The JVP is ``make_jvp_reversemode`` (the VJP of the
VJP). Forward mode (``FORWARD_JACOBIAN``) is not declared: autograd's
forward mode defines no JVP rule for ``scipy.special.expit``, so every
network with a sigmoid would fail there; the reverse-mode capabilities
cover it.

Arrays are computed in the dtype they arrive in (float64, or float32 in a
``--dtype float32`` run). autograd is imported when the backend is created,
so the rest of the project runs without it.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from impl._protocol import Capability
from spec import Activation, FloatArray, Loss, LossAndGradients, Network, Parameters
from spec.conventions import LEAKY_RELU_SLOPE
from spec.errors import BackendLoadError

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'backprop-spec[autograd]'"


@dataclass(frozen=True)
class _Autograd:
    """The parts of autograd the backend uses."""

    autograd: Any
    np: Any
    special: Any
    make_jvp_reversemode: Any


def _import_autograd() -> _Autograd:
    """autograd's modules, or :class:`BackendLoadError`."""
    try:
        autograd = importlib.import_module("autograd")
        anp = importlib.import_module("autograd.numpy")
        special = importlib.import_module("autograd.scipy.special")
        operators = importlib.import_module("autograd.differential_operators")
    except ImportError as error:
        raise BackendLoadError(
            "the autograd backend needs autograd (HIPS), which is not installed "
            f"(or its scipy is missing); install it with: {INSTALL_HINT}"
        ) from error
    logger.info("autograd loaded from %s", autograd.__file__)
    return _Autograd(autograd, anp, special, operators.make_jvp_reversemode)


@dataclass
class AutogradBackend:
    """HIPS autograd reverse mode, in the dtype of the run."""

    name: str = "autograd"
    capabilities: frozenset[Capability] = field(
        default=frozenset({Capability.INPUT_JACOBIAN, Capability.PARAMETER_JACOBIAN,
                           Capability.VJP, Capability.JVP,
                           Capability.LAYER_JACOBIANS}),
        repr=False)
    library: _Autograd | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.library is None:
            self.library = _import_autograd()
        self._ag = self.library

    # Building blocks: the activations, the network map, the loss.

    def _activate(self, activation: Activation, z: Any) -> Any:
        anp = self._ag.np
        if activation is Activation.IDENTITY:
            return z
        if activation is Activation.SIGMOID:
            return self._ag.special.expit(z)
        if activation is Activation.TANH:
            return anp.tanh(z)
        if activation is Activation.RELU:
            return anp.maximum(z, 0.0)
        if activation is Activation.LEAKY_RELU:
            return anp.where(z > 0, z, float(LEAKY_RELU_SLOPE) * z)
        if activation is Activation.SOFTPLUS:
            return anp.logaddexp(z, 0.0)
        if activation is Activation.ELU:
            return anp.where(z > 0, z, anp.expm1(anp.where(z > 0, 0.0, z)))
        raise ValueError(f"activation={activation!r} is not an Activation")

    def _layer(self, activation: Activation, W: Any, b: Any, a: Any) -> Any:
        return self._activate(activation, self._ag.np.dot(a, W.T) + b)

    def _network(self, network: Network, weights: list[Any], biases: list[Any],
                 inputs: Any) -> Any:
        a = inputs
        for W, b, activation in zip(weights, biases, network.activations):
            a = self._layer(activation, W, b, a)
        return a

    def _loss(self, network: Network, output: Any, targets: FloatArray) -> Any:
        anp = self._ag.np
        if network.loss is Loss.SQUARED_ERROR:
            per_example = 0.5 * anp.sum((output - targets) ** 2, axis=1)
        else:
            log_sum = self._ag.special.logsumexp(output, axis=1, keepdims=True)
            per_example = -anp.sum(targets * (output - log_sum), axis=1)
        return anp.mean(per_example)

    def _input_map(self, network: Network, parameters: Parameters,
                   dtype: np.dtype[Any]) -> Callable[[Any], Any]:
        weights = [np.array(W, dtype=dtype) for W in parameters.weights]
        biases = [np.array(b, dtype=dtype) for b in parameters.biases]
        return lambda x: self._network(network, weights, biases, x)

    # The protocol.

    def loss_and_gradients(self, network: Network, parameters: Parameters,
                           inputs: FloatArray, targets: FloatArray) -> \
            LossAndGradients:
        """Mean loss and ``autograd.value_and_grad`` of it."""
        dtype = np.asarray(inputs).dtype
        X, Y = np.array(inputs, dtype=dtype), np.array(targets, dtype=dtype)
        weights = [np.array(W, dtype=dtype) for W in parameters.weights]
        biases = [np.array(b, dtype=dtype) for b in parameters.biases]

        def batch_loss(weights_and_biases: tuple[list[Any], list[Any]]) -> Any:
            weights, biases = weights_and_biases
            return self._loss(network, self._network(network, weights, biases, X), Y)

        loss, (dW, db) = self._ag.autograd.value_and_grad(batch_loss)(
            (weights, biases))
        return LossAndGradients(
            float(loss),
            Parameters(tuple(np.array(g, dtype=dtype) for g in dW),
                       tuple(np.array(g, dtype=dtype) for g in db)))

    def input_jacobian(self, network: Network, parameters: Parameters,
                       x: FloatArray) -> FloatArray:
        """``autograd.jacobian`` of :math:`x \\mapsto a_L`, ``n_L x n_0``."""
        dtype = np.asarray(x).dtype
        J = self._ag.autograd.jacobian(self._input_map(network, parameters, dtype))(
            np.array(x, dtype=dtype))
        return np.array(J, dtype=dtype)

    def parameter_jacobian(self, network: Network, parameters: Parameters,
                           x: FloatArray) -> FloatArray:
        r"""``autograd.jacobian`` in :math:`(\operatorname{vec}W_1, b_1, \dots)`."""
        dtype = np.asarray(x).dtype
        x_array = np.array(x, dtype=dtype)
        theta = np.concatenate([part for W, b in zip(parameters.weights,
                                                     parameters.biases)
                                for part in (np.asarray(W).reshape(-1, order="F"),
                                             np.asarray(b))]).astype(dtype)

        def output(theta: Any) -> Any:
            weights, biases, at = [], [], 0
            for ell in range(1, network.depth + 1):
                m, n = network.weight_shape(ell)
                weights.append(self._ag.np.reshape(theta[at:at + m * n], (n, m)).T)
                biases.append(theta[at + m * n:at + m * n + m])
                at += m * n + m
            return self._network(network, weights, biases, x_array)

        return np.array(self._ag.autograd.jacobian(output)(theta), dtype=dtype)

    def vjp(self, network: Network, parameters: Parameters, x: FloatArray,
            u: FloatArray) -> FloatArray:
        """``autograd.make_vjp``: :math:`u^\\top J_x`, ``n_0`` entries."""
        dtype = np.asarray(x).dtype
        pullback, _ = self._ag.autograd.make_vjp(
            self._input_map(network, parameters, dtype))(np.array(x, dtype=dtype))
        return np.array(pullback(np.array(u, dtype=dtype)), dtype=dtype)

    def jvp(self, network: Network, parameters: Parameters, x: FloatArray,
            v: FloatArray) -> FloatArray:
        """``make_jvp_reversemode``: :math:`J_x v`, ``n_L`` entries."""
        dtype = np.asarray(x).dtype
        pushforward = self._ag.make_jvp_reversemode(
            self._input_map(network, parameters, dtype))(np.array(x, dtype=dtype))
        return np.array(pushforward(np.array(v, dtype=dtype)), dtype=dtype)

    def layer_jacobians(self, network: Network, parameters: Parameters,
                        x: FloatArray) -> list[FloatArray]:
        r"""``autograd.jacobian`` of each layer map :math:`a_{\ell-1} \mapsto a_\ell`.

        One ``n_l x n_{l-1}`` matrix per layer, layer 1 first, each at the
        point the earlier layers produce from ``x``.
        """
        dtype = np.asarray(x).dtype
        a = np.array(x, dtype=dtype)
        jacobians: list[FloatArray] = []
        for W, b, activation in zip(parameters.weights, parameters.biases,
                                    network.activations):
            W_array, b_array = np.array(W, dtype=dtype), np.array(b, dtype=dtype)

            def layer(a_previous: Any, W: Any = W_array, b: Any = b_array,
                      activation: Activation = activation) -> Any:
                return self._layer(activation, W, b, a_previous)

            jacobians.append(np.array(self._ag.autograd.jacobian(layer)(a),
                                      dtype=dtype))
            a = np.array(layer(a), dtype=dtype)
        return jacobians
