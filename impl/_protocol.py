"""The backend protocol: what any implementation under test provides.

A backend receives a network's shape, its parameters, a batch and targets,
all in the conventions of :mod:`spec.conventions`, and returns the batch loss
and its gradients in the same structure as the parameters. Optional
capabilities are declared in ``capabilities``; the suite calls a capability
method only when it is declared.
"""

from __future__ import annotations

import enum
from typing import Protocol, runtime_checkable

from spec import FloatArray, LossAndGradients, Network, Parameters


class Capability(str, enum.Enum):
    """Optional abilities a backend may declare.

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
    """

    INPUT_JACOBIAN = "input_jacobian"
    PARAMETER_JACOBIAN = "parameter_jacobian"
    VJP = "vjp"
    JVP = "jvp"


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
