r"""The ``jax`` backend: JAX's ``grad``, ``jacrev``, ``jacfwd``, ``vjp``, ``jvp``.

Conventions converted here, each applied alike to the loss and its gradient:

* The batch is one ``B x n_0`` array and layer :math:`\ell` computes
  ``a @ W.T + b``, so :math:`W_\ell` keeps the spec's ``n_l x n_{l-1}``
  shape and ``jax.grad`` returns gradients already in the parameters'
  shapes; no reordering is needed.
* Squared error is written as :math:`\tfrac12\sum_i (a_i-y_i)^2` per example
  and averaged over the batch (``optax.l2_loss`` halves too but does not sum
  over outputs; neither it nor a mean over every entry is used).
* Softmax cross-entropy is :math:`-\sum_i y_i\,(\texttt{jax.nn.log\_softmax}
  (a))_i` per example, averaged over the batch; targets need not sum to one.
* Activations are ``jax.nn``'s: ``relu``, ``sigmoid``, ``tanh``,
  ``leaky_relu`` with slope 0.01, ``softplus`` (``logaddexp(z, 0)``) and
  ``elu`` with :math:`\alpha = 1`. At a kink ``jax.nn.relu`` takes the left
  derivative (0) and ``jax.nn.leaky_relu`` the right one (1).
* The parameter Jacobian from ``jax.jacrev`` has blocks ``n_L x m x n`` for
  :math:`W_\ell`; each is flattened column-major (vec stacks columns) and
  the blocks are laid out :math:`\operatorname{vec}W_1, b_1,
  \operatorname{vec}W_2, \dots`.

Creating the backend turns on ``jax_enable_x64`` for the whole process (JAX
otherwise silently computes float64 arrays in float32) and pins every
computation to the CPU device. Arrays are computed in the dtype they arrive
in (float64, or float32 in a ``--dtype float32`` run). Each function is
compiled with ``jax.jit``, as JAX code normally runs, once per network and
array shapes; parameters and data are arguments of the compiled function,
never constants XLA could fold at compile time.

JAX is imported when the backend is created, so the rest of the project runs
without it.
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
from spec.conventions import ELU_ALPHA, LEAKY_RELU_SLOPE
from spec.errors import BackendLoadError

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'backprop-spec[jax]'"


def _import_jax() -> Any:
    """``jax`` with float64 enabled, or :class:`BackendLoadError`."""
    try:
        jax = importlib.import_module("jax")
        importlib.import_module("jax.numpy")
        importlib.import_module("jax.nn")
    except ImportError as error:
        raise BackendLoadError(
            "the jax backend needs JAX, which is not installed; install it "
            f"with: {INSTALL_HINT}") from error
    jax.config.update("jax_enable_x64", True)
    logger.info("jax %s loaded with jax_enable_x64", jax.__version__)
    return jax


COMPILED_CACHE_SIZE = 256
"""Compiled functions kept per backend, keyed by what and which network; the
suite revisits a network while shrinking, and compiling dominates the time."""


@dataclass
class JaxBackend:
    """JAX reverse and forward mode on the CPU, in the dtype of the run."""

    name: str = "jax"
    capabilities: frozenset[Capability] = field(default=frozenset(Capability),
                                                repr=False)
    jax: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.jax is None:
            self.jax = _import_jax()
        self._cpu = self.jax.devices("cpu")[0]
        self._compiled: dict[tuple[str, Network], Any] = {}

    # Building blocks: arrays in, the network map, the loss, compiled functions.

    def _array(self, array: FloatArray, dtype: np.dtype[Any]) -> Any:
        return self.jax.device_put(np.array(array, dtype=dtype), self._cpu)

    def _activate(self, activation: Activation, z: Any) -> Any:
        nn = self.jax.nn
        if activation is Activation.IDENTITY:
            return z
        if activation is Activation.SIGMOID:
            return nn.sigmoid(z)
        if activation is Activation.TANH:
            return self.jax.numpy.tanh(z)
        if activation is Activation.RELU:
            return nn.relu(z)
        if activation is Activation.LEAKY_RELU:
            return nn.leaky_relu(z, negative_slope=float(LEAKY_RELU_SLOPE))
        if activation is Activation.SOFTPLUS:
            return nn.softplus(z)
        if activation is Activation.ELU:
            return nn.elu(z, alpha=float(ELU_ALPHA))
        raise ValueError(f"activation={activation!r} is not an Activation")

    def _layer(self, activation: Activation, W: Any, b: Any, a: Any) -> Any:
        return self._activate(activation, a @ W.T + b)

    def _network(self, network: Network, weights: list[Any], biases: list[Any],
                 inputs: Any) -> Any:
        a = inputs
        for W, b, activation in zip(weights, biases, network.activations):
            a = self._layer(activation, W, b, a)
        return a

    def _loss(self, network: Network, output: Any, targets: Any) -> Any:
        jnp = self.jax.numpy
        if network.loss is Loss.SQUARED_ERROR:
            per_example = 0.5 * jnp.sum((output - targets) ** 2, axis=1)
        else:
            log_p = self.jax.nn.log_softmax(output, axis=1)
            per_example = -jnp.sum(targets * log_p, axis=1)
        return jnp.mean(per_example)

    def _parameters(self, parameters: Parameters,
                    dtype: np.dtype[Any]) -> tuple[list[Any], list[Any]]:
        return ([self._array(W, dtype) for W in parameters.weights],
                [self._array(b, dtype) for b in parameters.biases])

    def _function(self, kind: str, network: Network,
                  build: Callable[[], Any]) -> Any:
        """``jax.jit(build())``, compiled once per ``kind`` and network.

        Every array is an argument of the compiled function, never a
        constant inside it, so XLA cannot fold the computation away.
        """
        key = (kind, network)
        if key not in self._compiled:
            if len(self._compiled) >= COMPILED_CACHE_SIZE:
                self._compiled.pop(next(iter(self._compiled)))
            self._compiled[key] = self.jax.jit(build())
        return self._compiled[key]

    def _call(self, kind: str, network: Network, build: Callable[[], Any],
              *arguments: Any) -> Any:
        with self.jax.default_device(self._cpu):
            return self._function(kind, network, build)(*arguments)

    # The protocol.

    def loss_and_gradients(self, network: Network, parameters: Parameters,
                           inputs: FloatArray, targets: FloatArray) -> \
            LossAndGradients:
        """Mean loss and ``jax.value_and_grad`` of it in every parameter."""
        dtype = np.asarray(inputs).dtype
        weights, biases = self._parameters(parameters, dtype)

        def build() -> Any:
            def batch_loss(weights: list[Any], biases: list[Any], X: Any,
                           Y: Any) -> Any:
                output = self._network(network, weights, biases, X)
                return self._loss(network, output, Y)

            return self.jax.value_and_grad(batch_loss, argnums=(0, 1))

        loss, (dW, db) = self._call("loss", network, build, weights, biases,
                                    self._array(inputs, dtype),
                                    self._array(targets, dtype))
        return LossAndGradients(
            float(loss),
            Parameters(tuple(np.array(g, dtype=dtype) for g in dW),
                       tuple(np.array(g, dtype=dtype) for g in db)))

    def _input_function(self, network: Network,
                        transform: Callable[[Callable[[Any], Any]], Any],
                        ) -> Callable[[], Any]:
        """A builder of ``(weights, biases, x, *rest) -> transform(f)(x, *rest)``
        for the network map ``f`` at fixed parameters."""
        def build() -> Any:
            def function(weights: list[Any], biases: list[Any], x: Any,
                         *rest: Any) -> Any:
                def network_map(x: Any) -> Any:
                    return self._network(network, weights, biases, x)

                return transform(network_map)(x, *rest)

            return function

        return build

    def _on_input(self, kind: str, network: Network, parameters: Parameters,
                  x: FloatArray, transform: Callable[[Callable[[Any], Any]], Any],
                  *rest: FloatArray) -> FloatArray:
        dtype = np.asarray(x).dtype
        weights, biases = self._parameters(parameters, dtype)
        result = self._call(kind, network, self._input_function(network, transform),
                            weights, biases, self._array(x, dtype),
                            *(self._array(r, dtype) for r in rest))
        return np.array(result, dtype=dtype)

    def input_jacobian(self, network: Network, parameters: Parameters,
                       x: FloatArray) -> FloatArray:
        """``jax.jacrev`` of :math:`x \\mapsto a_L`, ``n_L x n_0``."""
        return self._on_input("jacrev", network, parameters, x, self.jax.jacrev)

    def input_jacobian_forward(self, network: Network, parameters: Parameters,
                               x: FloatArray) -> FloatArray:
        """``jax.jacfwd`` of :math:`x \\mapsto a_L`, ``n_L x n_0``."""
        return self._on_input("jacfwd", network, parameters, x, self.jax.jacfwd)

    def vjp(self, network: Network, parameters: Parameters, x: FloatArray,
            u: FloatArray) -> FloatArray:
        """``jax.vjp``: :math:`u^\\top J_x`, ``n_0`` entries."""
        def pull_back(f: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
            return lambda x, u: self.jax.vjp(f, x)[1](u)[0]

        return self._on_input("vjp", network, parameters, x, pull_back, u)

    def jvp(self, network: Network, parameters: Parameters, x: FloatArray,
            v: FloatArray) -> FloatArray:
        """``jax.jvp``: :math:`J_x v`, ``n_L`` entries."""
        def push_forward(f: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
            return lambda x, v: self.jax.jvp(f, (x,), (v,))[1]

        return self._on_input("jvp", network, parameters, x, push_forward, v)

    def parameter_jacobian(self, network: Network, parameters: Parameters,
                           x: FloatArray) -> FloatArray:
        r"""``jax.jacrev`` in all parameters, columns
        :math:`\operatorname{vec}W_1, b_1, \operatorname{vec}W_2, \dots`."""
        dtype = np.asarray(x).dtype
        weights, biases = self._parameters(parameters, dtype)

        def build() -> Any:
            def output(weights: list[Any], biases: list[Any], x: Any) -> Any:
                return self._network(network, weights, biases, x)

            return self.jax.jacrev(output, argnums=(0, 1))

        dW, db = self._call("parameter_jacobian", network, build, weights, biases,
                            self._array(x, dtype))
        return _stack_parameter_blocks(network, dW, db, dtype)

    def layer_jacobians(self, network: Network, parameters: Parameters,
                        x: FloatArray) -> list[FloatArray]:
        r"""``jax.jacrev`` of each layer map :math:`a_{\ell-1} \mapsto a_\ell`.

        Returns one ``n_l x n_{l-1}`` matrix per layer, layer 1 first, each
        at the point the earlier layers produce from ``x``.
        """
        dtype = np.asarray(x).dtype
        weights, biases = self._parameters(parameters, dtype)

        def build() -> Any:
            def jacobians(weights: list[Any], biases: list[Any], a: Any) -> Any:
                found = []
                for W, b, activation in zip(weights, biases, network.activations):
                    def layer(a_previous: Any, W: Any = W, b: Any = b,
                              activation: Activation = activation) -> Any:
                        return self._layer(activation, W, b, a_previous)

                    found.append(self.jax.jacrev(layer)(a))
                    a = layer(a)
                return found

            return jacobians

        found = self._call("layer_jacobians", network, build, weights, biases,
                           self._array(x, dtype))
        return [np.array(J, dtype=dtype) for J in found]


def _stack_parameter_blocks(network: Network, weight_blocks: list[Any],
                            bias_blocks: list[Any],
                            dtype: np.dtype[Any]) -> FloatArray:
    """Lay ``n_L x m x n`` and ``n_L x m`` blocks out as ``vec W_1, b_1, ...``."""
    n_out = network.widths[-1]
    columns: list[FloatArray] = []
    for dW, db in zip(weight_blocks, bias_blocks):
        columns.append(np.asarray(dW, dtype=dtype).transpose(0, 2, 1)
                       .reshape(n_out, -1))
        columns.append(np.asarray(db, dtype=dtype))
    return np.array(np.concatenate(columns, axis=1), dtype=dtype)
