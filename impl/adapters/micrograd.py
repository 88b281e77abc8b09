r"""The ``micrograd`` backend: Karpathy's scalar autodiff engine.

Every parameter is one ``micrograd.engine.Value``; the network is built from
``Value`` additions and multiplications, one scalar at a time, and
``Value.backward()`` fills in every parameter's ``grad``. Nothing of
``micrograd.nn`` is used: its ``Neuron`` draws random weights and applies
ReLU to every layer but the last, while the spec's network is given.

What micrograd can represent is declared in :data:`MICROGRAD_CONSTRAINTS`.
The released ``Value`` (micrograd 0.1.0) has ``+``, ``*``, ``**`` with a
constant exponent, and ``relu()``, but neither ``exp``, ``log`` nor
``tanh``. So:

* activations are identity and ReLU only (sigmoid, tanh, softplus and ELU
  need an exponential; leaky ReLU could be composed from ReLU, but the
  composition would impose its own slope at the kink, so it is left out);
* the loss is squared error only (softmax cross-entropy needs ``exp`` and
  ``log``).

``Value.relu()`` returns ``z`` for ``z >= 0`` and passes the gradient only
where the output is positive, so its slope at the kink is 0 (the left
derivative).

Conventions converted here, each applied alike to the loss and its gradient:

* Layer :math:`\ell` computes
  :math:`z_i = (\sum_j W_{ij} a_j) + b_i`, the sum taken in order of ``j``,
  so parameter ``W[i, j]`` maps to the ``Value`` in row ``i``, column
  ``j``, and gradients are read back in the parameters' shapes.
* Squared error is :math:`\sum_i \tfrac12 (a_i - y_i)^2` per example; the
  batch loss is the sum over examples divided by ``B`` with micrograd's
  ``/``, which multiplies by ``B ** -1`` (one more rounding than a true
  division when ``B`` is not a power of two).

micrograd computes in Python floats, which are float64 whatever the run's
dtype: in a ``--dtype float32`` run it starts from the float32 inputs
exactly and rounds its float64 results to float32 at the end, so it is
judged more leniently than a true float32 computation.

Capabilities: ``input_jacobian`` (one ``backward()`` per output unit),
``parameter_jacobian`` (the same, reading the parameters' ``grad``) and
``vjp`` (one ``backward()`` of :math:`u^\top a_L`). micrograd has no forward
mode, so no ``jvp``.

Speed: a few microseconds per scalar operation, so a network of the suite's
largest size (depth 6, width 8, batch 8) takes tens of milliseconds.
``Value.backward()`` orders the graph with a recursive depth-first search,
so very long chains of operations exceed Python's recursion limit; networks
past :data:`MAX_OPERATION_CHAIN` raise :class:`BackendLimitError`.

micrograd is imported when the backend is created.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from impl._protocol import Capability, NetworkConstraints
from spec import Activation, FloatArray, Loss, LossAndGradients, Network, Parameters
from spec.errors import BackendLimitError, BackendLoadError

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'backprop-spec[micrograd]'"

MICROGRAD_CONSTRAINTS = NetworkConstraints(
    activations=frozenset({Activation.IDENTITY, Activation.RELU}),
    output_activations={
        Loss.SQUARED_ERROR: frozenset({Activation.IDENTITY, Activation.RELU})},
)
"""Identity and ReLU layers with squared error: what micrograd's ``Value``
can express without an exponential."""

MAX_OPERATION_CHAIN = sys.getrecursionlimit() // 2
"""Longest chain of dependent ``Value`` operations allowed, half the
recursion limit, so ``Value.backward()``'s recursive graph walk (one Python
frame per node on the chain) keeps a margin for the frames below it."""


def _import_value() -> Any:
    """``micrograd.engine.Value``, or :class:`BackendLoadError`."""
    try:
        engine = importlib.import_module("micrograd.engine")
    except ImportError as error:
        raise BackendLoadError(
            "the micrograd backend needs micrograd, which is not installed; "
            f"install it with: {INSTALL_HINT}") from error
    logger.info("micrograd loaded from %s", engine.__file__)
    return engine.Value


def operation_chain(network: Network, batch_size: int) -> int:
    """Longest chain of dependent ``Value`` nodes in the batch-loss graph.

    Per layer: ``n_{l-1}`` products and additions in the row sum, the bias
    and the activation; then three nodes per output for the squared error and
    one per example for the batch sum, and the division.
    """
    layers = sum(2 * n + 3 for n in network.widths[:-1])
    return layers + 3 * network.widths[-1] + batch_size + 2


@dataclass
class MicrogradBackend:
    """micrograd's scalar ``Value`` engine, one ``Value`` per parameter."""

    name: str = "micrograd"
    capabilities: frozenset[Capability] = field(
        default=frozenset({Capability.INPUT_JACOBIAN, Capability.PARAMETER_JACOBIAN,
                           Capability.VJP}),
        repr=False)
    constraints: NetworkConstraints = field(default=MICROGRAD_CONSTRAINTS,
                                            repr=False)
    value_class: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.value_class is None:
            self.value_class = _import_value()

    # Building blocks: parameters as Values, the network map, the loss.

    def _check(self, network: Network, batch_size: int) -> None:
        unsupported = [a.value for a in network.activations
                       if a not in MICROGRAD_CONSTRAINTS.activations]
        if unsupported or network.loss is not Loss.SQUARED_ERROR:
            raise BackendLimitError(
                f"the micrograd backend cannot represent network "
                f"{network.describe()!r}: micrograd's Value has no exp or log, so "
                "only identity and relu layers with squared_error are supported")
        chain = operation_chain(network, batch_size)
        if chain > MAX_OPERATION_CHAIN:
            raise BackendLimitError(
                f"network {network.describe()!r} with batch {batch_size} chains "
                f"{chain} micrograd operations, more than {MAX_OPERATION_CHAIN} "
                "(half the recursion limit Value.backward() walks within); use "
                "fewer or narrower layers, or a smaller batch")

    def _values(self, parameters: Parameters) -> tuple[list[list[list[Any]]],
                                                       list[list[Any]]]:
        Value = self.value_class
        weights = [[[Value(float(w)) for w in row] for row in np.asarray(W)]
                   for W in parameters.weights]
        biases = [[Value(float(v)) for v in np.asarray(b)] for b in parameters.biases]
        return weights, biases

    def _network(self, network: Network, weights: list[list[list[Any]]],
                 biases: list[list[Any]], x: Sequence[Any]) -> list[Any]:
        a = list(x)
        for W, b, activation in zip(weights, biases, network.activations):
            z = []
            for row, bias in zip(W, b):
                total = row[0] * a[0]
                for w, a_j in zip(row[1:], a[1:]):
                    total = total + w * a_j
                z.append(total + bias)
            a = [v.relu() for v in z] if activation is Activation.RELU else z
        return a

    def _inputs(self, x: FloatArray) -> list[Any]:
        return [self.value_class(float(v)) for v in np.asarray(x)]

    # The protocol.

    def loss_and_gradients(self, network: Network, parameters: Parameters,
                           inputs: FloatArray, targets: FloatArray) -> \
            LossAndGradients:
        """Mean squared error over the batch and ``Value.backward()`` of it.

        Raises
        ------
        BackendLimitError
            ``network`` is outside :data:`MICROGRAD_CONSTRAINTS` or too long
            a chain of operations.
        """
        dtype = np.asarray(inputs).dtype
        self._check(network, len(inputs))
        weights, biases = self._values(parameters)

        total: Any = 0.0
        for x, y in zip(np.asarray(inputs), np.asarray(targets)):
            output = self._network(network, weights, biases,
                                   [float(v) for v in x])
            example: Any = 0.0
            for a_i, y_i in zip(output, y):
                example = example + (a_i - float(y_i)) ** 2 * 0.5
            total = total + example
        loss = total / len(inputs)

        loss.backward()
        return LossAndGradients(
            float(loss.data),
            Parameters(tuple(_grads(W, dtype) for W in weights),
                       tuple(_grads(b, dtype) for b in biases)))

    def _output_backward(self, network: Network, parameters: Parameters,
                         x: FloatArray, seed: Sequence[float]) -> \
            tuple[list[Any], list[list[list[Any]]], list[list[Any]]]:
        """Build the graph at ``x`` and backpropagate :math:`\\sum_i s_i a_i`."""
        self._check(network, 1)
        weights, biases = self._values(parameters)
        x_values = self._inputs(x)
        output = self._network(network, weights, biases, x_values)
        product: Any = 0.0
        for s_i, a_i in zip(seed, output):
            product = product + a_i * s_i
        product.backward()
        return x_values, weights, biases

    def input_jacobian(self, network: Network, parameters: Parameters,
                       x: FloatArray) -> FloatArray:
        """``n_L x n_0``, row ``i`` from ``backward()`` of output ``i``."""
        dtype = np.asarray(x).dtype
        rows = []
        for i in range(network.widths[-1]):
            seed = [1.0 if k == i else 0.0 for k in range(network.widths[-1])]
            x_values, _, _ = self._output_backward(network, parameters, x, seed)
            rows.append(_grads(x_values, dtype))
        return np.array(rows, dtype=dtype)

    def parameter_jacobian(self, network: Network, parameters: Parameters,
                           x: FloatArray) -> FloatArray:
        r"""``n_L x P``, columns :math:`\operatorname{vec}W_1, b_1, \dots`."""
        dtype = np.asarray(x).dtype
        rows = []
        for i in range(network.widths[-1]):
            seed = [1.0 if k == i else 0.0 for k in range(network.widths[-1])]
            _, weights, biases = self._output_backward(network, parameters, x, seed)
            parts: list[FloatArray] = []
            for W, b in zip(weights, biases):
                parts += [_grads(W, dtype).reshape(-1, order="F"), _grads(b, dtype)]
            rows.append(np.concatenate(parts))
        return np.array(rows, dtype=dtype)

    def vjp(self, network: Network, parameters: Parameters, x: FloatArray,
            u: FloatArray) -> FloatArray:
        """:math:`u^\\top J_x` from one ``backward()`` of :math:`u^\\top a_L`."""
        dtype = np.asarray(x).dtype
        x_values, _, _ = self._output_backward(
            network, parameters, x, [float(v) for v in np.asarray(u)])
        return _grads(x_values, dtype)


def _grads(values: Sequence[Any], dtype: np.dtype[Any]) -> FloatArray:
    """The ``grad`` of each ``Value`` (nested lists keep their shape)."""
    def grad(item: Any) -> Any:
        if isinstance(item, list):
            return [grad(v) for v in item]
        return float(item.grad)

    return np.array([grad(v) for v in values], dtype=dtype)
