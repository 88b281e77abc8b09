"""The backend protocol: what any implementation under test provides.

A backend receives a network's shape, its parameters, a batch and targets,
all in the conventions of :mod:`spec.conventions`, and returns the batch loss
and its gradients in the same structure as the parameters. Optional
capabilities are declared in ``capabilities``; the suite calls a capability
method only when it is declared.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from spec import Activation, FloatArray, Loss, LossAndGradients, Network, Parameters


class Capability(str, enum.Enum):
    r"""Optional abilities a backend may declare.

    INPUT_JACOBIAN
        ``input_jacobian(network, parameters, x)``: the ``n_L x n_0`` Jacobian
        of the network map :math:`x \\mapsto a_L` at one example ``x``.
    PARAMETER_JACOBIAN
        ``parameter_jacobian(network, parameters, x)``: the ``n_L x P``
        Jacobian of :math:`a_L` with respect to all parameters, ordered
        :math:`\\operatorname{vec} W_1, b_1, \\operatorname{vec} W_2, \\dots`
        (vec stacks columns).
    VJP
        ``vjp(network, parameters, x, u)``: :math:`u^\\top J` for the input
        Jacobian, ``n_0`` entries.
    JVP
        ``jvp(network, parameters, x, v)``: :math:`J v`, ``n_L`` entries.
    FORWARD_JACOBIAN
        ``input_jacobian_forward(network, parameters, x)``: the same
        ``n_L x n_0`` Jacobian as ``input_jacobian``, computed in forward mode
        (``input_jacobian`` is then understood as reverse mode).
    LAYER_JACOBIANS
        ``layer_jacobians(network, parameters, x)``: one matrix per layer,
        the ``n_l x n_{l-1}`` Jacobian of :math:`a_{\ell-1} \mapsto a_\ell`
        at the point the earlier layers produce from ``x``.

    Every array a capability method receives or returns has the dtype of
    the run (float64 unless the suite runs in float32).
    """

    INPUT_JACOBIAN = "input_jacobian"
    PARAMETER_JACOBIAN = "parameter_jacobian"
    VJP = "vjp"
    JVP = "jvp"
    FORWARD_JACOBIAN = "forward_jacobian"
    LAYER_JACOBIANS = "layer_jacobians"


@dataclass(frozen=True)
class NetworkConstraints:
    """Which networks a backend can represent; the suite draws only those.

    A backend without a ``constraints`` attribute accepts every network of
    :mod:`spec.conventions`. Libraries with a fixed architecture (one hidden
    activation for all layers, a fixed output layer) declare it here instead
    of failing on networks they cannot build.

    Attributes
    ----------
    activations
        Activations allowed in hidden layers (every layer but the last).
    output_activations
        Per loss, the activations allowed in the last layer.
    same_hidden_activation
        Every hidden layer uses one activation.
    targets_sum_to_one
        Cross-entropy targets are probability vectors.
    max_depth, min_depth
        Deepest and shallowest network supported.
    max_width
        Widest layer supported (a scalar engine may be slow past a few).
    min_output_width
        Narrowest last layer supported, per loss (a classifier may need two
        classes where a regressor takes one); losses not listed take 1.
    """

    activations: frozenset[Activation] = frozenset(Activation)
    output_activations: Mapping[Loss, frozenset[Activation]] = field(
        default_factory=lambda: {loss: frozenset(Activation) for loss in Loss})
    same_hidden_activation: bool = False
    targets_sum_to_one: bool = False
    max_depth: int | None = None
    min_depth: int = 1
    max_width: int | None = None
    min_output_width: Mapping[Loss, int] = field(default_factory=dict)

    @property
    def losses(self) -> tuple[Loss, ...]:
        """The losses with at least one allowed output activation."""
        return tuple(loss for loss in Loss if self.output_activations.get(loss))


@runtime_checkable
class Backend(Protocol):
    """An implementation of the network loss and its gradients.

    Attributes
    ----------
    name
        Shown in reports.
    capabilities
        The optional :class:`Capability` values it implements.
    """

    name: str
    capabilities: frozenset[Capability]

    def loss_and_gradients(
        self,
        network: Network,
        parameters: Parameters,
        inputs: FloatArray,
        targets: FloatArray,
    ) -> LossAndGradients:
        """Return the mean loss over the batch and its gradients.

        Arrays arrive in the run's dtype (float64 by default, float32 under
        ``--dtype float32``); compute in it and return gradients in it. Never
        write into the arguments.

        Parameters
        ----------
        network
            Widths, activations and loss.
        parameters
            ``weights[l - 1]`` is :math:`W_\\ell` (``n_l x n_{l-1}``),
            ``biases[l - 1]`` is :math:`b_\\ell` (``n_l``).
        inputs
            ``B x n_0``.
        targets
            ``B x n_L``.
        """
        ...


class JacobianBackend(Backend, Protocol):
    """A backend declaring the Jacobian capabilities."""

    def input_jacobian(self, network: Network, parameters: Parameters,
                       x: FloatArray) -> FloatArray:
        """``n_L x n_0`` Jacobian of the network map at one example."""
        ...

    def parameter_jacobian(self, network: Network, parameters: Parameters,
                           x: FloatArray) -> FloatArray:
        """``n_L x P`` Jacobian with respect to all parameters."""
        ...

    def vjp(self, network: Network, parameters: Parameters, x: FloatArray,
            u: FloatArray) -> FloatArray:
        """:math:`u^\\top J_x`, ``n_0`` entries."""
        ...

    def jvp(self, network: Network, parameters: Parameters, x: FloatArray,
            v: FloatArray) -> FloatArray:
        """:math:`J_x v`, ``n_L`` entries."""
        ...
