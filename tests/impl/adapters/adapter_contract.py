"""What every adapter's tests check of it, whatever the library.

An adapter is judged against the mpmath oracle entry by entry, under the
error bounds of :mod:`conformance._bounds` (never a tolerance picked by
hand): its loss and gradients through :func:`conformance.verify_gradients`,
and each Jacobian it declares with :func:`spec.compare` against the exact
Jacobian and the :class:`~conformance._bounds.BoundCalculator`'s bound of
each entry, as the suite's own checks do; float32 arguments give float32
results, judged under the float32 bounds; it never writes into its
arguments; it declares exactly the capabilities its tests expect; and it
says how to install its library when that is missing.

This file is not collected itself (no ``test_`` prefix). Each
``test_<library>.py`` loads it by path (pytest runs with
``--import-mode=importlib`` and the test folders are no packages), subclasses
:class:`AdapterContract`, :class:`JacobianContract` or
:class:`LayerJacobianContract` as ``Test<Library>Adapter`` with its networks,
capabilities and install message, and provides the ``backend`` fixture; the
library's own conventions, limits and known bugs stay in its file. The
module-level helpers (:func:`assert_gradients_hold`, :class:`ExactPoint`,
:func:`assert_within_bounds`, :func:`assert_products_hold`) judge any
backend the same way outside the contract.

Networks use moderate weights and inputs (no saturated activation, no kink
within the error bounds), where every derivative is defined and the bounds
are tight.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from functools import cached_property
from typing import ClassVar, Protocol, cast

import mpmath
import numpy as np
import numpy.typing as npt
import pytest

import impl
from conformance import Case, judge, verify_gradients
from conformance._bounds import BoundCalculator
from conformance.checks import Outcome
from impl import Backend, Capability, JacobianBackend
from spec import (
    Activation,
    ExactArray,
    Holds,
    Loss,
    LossAndGradients,
    Network,
    NotApplicable,
    Parameters,
    Violated,
    chain_rule,
    compare,
    jacobian,
    to_exact,
)
from spec.errors import BackendLoadError
from spec.layer_jacobians import activation_jacobian

FloatArray = npt.NDArray[np.float64]
"""Arrays of the run's dtype (float32 ones too, as in spec.FloatArray)."""

NETWORKS = (
    Network((3, 4, 2), (Activation.TANH, Activation.SIGMOID), Loss.SQUARED_ERROR),
    Network((2, 3, 3, 3), (Activation.RELU, Activation.ELU, Activation.IDENTITY),
            Loss.SOFTMAX_CROSS_ENTROPY),
    Network((2, 3, 2), (Activation.SOFTPLUS, Activation.LEAKY_RELU),
            Loss.SQUARED_ERROR),
    Network((4, 3), (Activation.TANH,), Loss.SOFTMAX_CROSS_ENTROPY),
)
"""Every activation and both losses, for adapters that build any network."""


def as_dtype(array: npt.NDArray[np.float64], dtype: type[np.floating]) -> FloatArray:
    """``array`` rounded to ``dtype``, typed as the protocol's arrays."""
    return array.astype(dtype)


def case(network: Network, seed: int, dtype: type[np.floating] = np.float64, *,
         bias_shift: float = 0.0, probability_targets: bool = False) -> \
        tuple[Parameters, FloatArray, FloatArray]:
    """Standard normal weights and inputs, biases 0.3 N(0, 1) + ``bias_shift``,
    targets U(0, 1), batch 3.

    With ``probability_targets`` the cross-entropy targets are scaled to sum
    to one per example (before rounding to ``dtype``).
    """
    rng = np.random.default_rng(seed)
    weights = tuple(as_dtype(rng.standard_normal(network.weight_shape(ell)), dtype)
                    for ell in range(1, network.depth + 1))
    biases = tuple(as_dtype(0.3 * rng.standard_normal(network.widths[ell])
                            + bias_shift, dtype)
                   for ell in range(1, network.depth + 1))
    inputs = as_dtype(rng.standard_normal((3, network.widths[0])), dtype)
    targets = rng.uniform(0.0, 1.0, (3, network.widths[-1]))
    if probability_targets and network.loss is Loss.SOFTMAX_CROSS_ENTROPY:
        targets /= targets.sum(axis=1, keepdims=True)
    return Parameters(weights, biases), inputs, as_dtype(targets, dtype)


def widened(parameters: Parameters) -> Parameters:
    """``parameters`` converted to float64, exactly (every float32 is a float64)."""
    return Parameters(tuple(w.astype(np.float64) for w in parameters.weights),
                      tuple(b.astype(np.float64) for b in parameters.biases))


def explain(outcome: Outcome) -> str:
    """What a verdict says, for the message of an assertion that it holds."""
    if isinstance(outcome, Violated):
        return outcome.describe()
    if isinstance(outcome, Holds):
        return f"{outcome.result_id}: holds ({outcome.compared} compared)"
    if isinstance(outcome, NotApplicable):
        return f"{outcome.result_id}: not applicable: {outcome.reason}"
    return f"{outcome.result_id}: {outcome.message}"


def assert_gradients_hold(network: Network, parameters: Parameters,
                          inputs: FloatArray, targets: FloatArray,
                          answer: LossAndGradients,
                          dtype: type[np.floating] = np.float64) -> None:
    """The loss and every gradient entry within its bound of the oracle's.

    The batch is given in ``dtype``; the oracle and the bounds work from its
    exact float64 values, the bounds scaled to ``dtype``'s rounding.
    """
    for ell in range(1, network.depth + 1):
        shapes = (answer.gradients.weights[ell - 1].shape,
                  answer.gradients.biases[ell - 1].shape)
        assert shapes == (network.weight_shape(ell), (network.widths[ell],)), \
            f"layer {ell}: gradient shapes {shapes}"
    verdict = verify_gradients(network, widened(parameters),
                               np.asarray(inputs, dtype=np.float64),
                               np.asarray(targets, dtype=np.float64),
                               answer.loss, answer.gradients, dtype=dtype)
    assert isinstance(verdict, Holds), explain(verdict)


def assert_within_bounds(claimed: npt.ArrayLike, exact: ExactArray,
                         bound: FloatArray, quantity: str, *,
                         result_id: str = jacobian.RESULT_ID,
                         layer_index: int | None = None) -> None:
    """Every entry of ``claimed`` within its ``bound`` of the exact value."""
    array = np.asarray(claimed)
    assert array.shape == exact.shape, \
        f"{quantity}: shape {array.shape}, expected {exact.shape}"
    verdict = compare(result_id, claimed=array, exact=exact, bound=bound,
                      quantity=quantity, layer_index=layer_index)
    assert isinstance(verdict, Holds), explain(verdict)


class ExactPoint:
    """The oracle's Jacobians of the network map at one input, and their bounds.

    Each exact Jacobian comes with the bound of every entry for ``dtype``,
    from :class:`~conformance._bounds.BoundCalculator`: the input and
    parameter Jacobians from its per-output sweeps (row :math:`i` of the
    input Jacobian is also the VJP at the unit cotangent :math:`e_i`, column
    :math:`j` the JVP at the unit tangent :math:`e_j`), the layer
    Jacobians :math:`\\operatorname{diag}(\\sigma'(z_\\ell))W_\\ell` at the
    exact :math:`z_\\ell` from its layer bounds.

    Parameters
    ----------
    network, parameters, x
        The point, in any float format (converted exactly to float64).
    dtype
        The format the judged backend computed in.
    """

    def __init__(self, network: Network, parameters: Parameters,
                 x: npt.NDArray[np.floating],
                 dtype: type[np.floating] = np.float64) -> None:
        self.network = network
        self.parameters = widened(parameters)
        self.x = np.asarray(x, dtype=np.float64)
        self.oracle = impl.MpmathBackend()
        targets = np.zeros((1, network.widths[-1]))
        self.example = self.oracle.exact(network, self.parameters, self.x[None, :],
                                         targets).examples[0]
        self.calculator = BoundCalculator(network, self.parameters, dtype)

    @cached_property
    def _rows(self) -> tuple[FloatArray, FloatArray]:
        return self.calculator.jacobian_rows(self.example)

    @cached_property
    def input_jacobian(self) -> ExactArray:
        """The exact ``n_L x n_0`` Jacobian of the network map in its input."""
        return self.oracle.exact_input_jacobian(self.network, self.parameters, self.x)

    @property
    def input_bound(self) -> FloatArray:
        """The bound of each entry of :attr:`input_jacobian`."""
        return self._rows[0]

    @cached_property
    def parameter_jacobian(self) -> ExactArray:
        """The exact ``n_L x P`` Jacobian in the parameters."""
        return self.oracle.exact_parameter_jacobian(self.network, self.parameters,
                                                    self.x)

    @property
    def parameter_bound(self) -> FloatArray:
        """The bound of each entry of :attr:`parameter_jacobian`."""
        return self._rows[1]

    @cached_property
    def layer_jacobians(self) -> list[ExactArray]:
        """Each layer's exact Jacobian, the factors of the chain rule."""
        z = self.example.forward.z
        with mpmath.workdps(self.oracle.digits):
            return [activation_jacobian(activation, list(z[ell])).dot(
                        to_exact(self.parameters.weights[ell]))
                    for ell, activation in enumerate(self.network.activations)]

    @cached_property
    def layer_bounds(self) -> list[FloatArray]:
        """The bound of each entry of each of :attr:`layer_jacobians`."""
        return self.calculator.layer_jacobians(self.example)


def assert_products_hold(backend: Backend, network: Network, parameters: Parameters,
                         x: FloatArray, probe_seed: int) -> None:
    """The backend's VJP and JVP at random vectors, judged by the suite's check.

    ``jacobian.products`` draws the vectors from ``probe_seed``, bounds
    :math:`u^\\top J` and :math:`J v` from the input Jacobian's bounds and
    checks the adjoint identity :math:`u^\\top (J v) = (u^\\top J) v`.
    """
    case = Case(network, parameters, x[None, :], np.zeros((1, network.widths[-1])),
                probe_seed)
    outcome = judge(jacobian.PRODUCTS_ID, backend, case)
    assert isinstance(outcome, Holds), explain(outcome)


class _ForwardJacobian(Protocol):
    def input_jacobian_forward(self, network: Network, parameters: Parameters,
                               x: FloatArray) -> FloatArray: ...


class _LayerJacobians(Protocol):
    def layer_jacobians(self, network: Network, parameters: Parameters,
                        x: FloatArray) -> Sequence[FloatArray]: ...


class AdapterContract:
    """The checks of every adapter; a subclass sets the class attributes.

    Its test module provides the ``backend`` fixture (the adapter under
    test); ``index`` runs a test once per entry of :attr:`networks`, with the
    index as the case's seed.
    """

    networks: ClassVar[Sequence[Network]] = NETWORKS
    """Networks the adapter can build, judged against the oracle."""
    backend_class: ClassVar[type[Backend]]
    """Makes the adapter with its defaults (to see it fail to load)."""
    capabilities: ClassVar[frozenset[str]]
    """Exactly the capability values the adapter declares."""
    library_modules: ClassVar[tuple[str, ...]]
    """Modules whose absence makes the library missing."""
    install_message: ClassVar[str]
    """The whole BackendLoadError message when the library is missing."""
    float32_index: ClassVar[int] = 0
    """The network (and seed) the float32 test uses."""
    bias_shift: ClassVar[float] = 0.0
    """Added to every bias of the cases (see :func:`case`)."""
    probability_targets: ClassVar[bool] = False
    """Whether cross-entropy targets sum to one (see :func:`case`)."""

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "index" in metafunc.fixturenames:
            metafunc.parametrize("index", range(len(self.networks)))

    def case(self, network: Network, seed: int,
             dtype: type[np.floating] = np.float64) -> \
            tuple[Parameters, FloatArray, FloatArray]:
        """:func:`case` with this adapter's biases and targets."""
        return case(network, seed, dtype, bias_shift=self.bias_shift,
                    probability_targets=self.probability_targets)

    def test_loss_and_gradients_agree_with_the_oracle(self, backend: Backend,
                                                      index: int) -> None:
        # Arrange
        network = self.networks[index]
        parameters, inputs, targets = self.case(network, index)

        # Act
        answer = backend.loss_and_gradients(network, parameters, inputs, targets)

        # Assert
        assert all(g.dtype == np.float64
                   for g in answer.gradients.weights + answer.gradients.biases)
        assert_gradients_hold(network, parameters, inputs, targets, answer)

    def test_answers_float32_arguments_in_float32(self, backend: Backend) -> None:
        # Arrange: the oracle works from the float32 numbers' exact values, the
        # bounds are float32's.
        network = self.networks[self.float32_index]
        parameters, inputs, targets = self.case(network, self.float32_index,
                                                np.float32)

        # Act
        answer = backend.loss_and_gradients(network, parameters, inputs, targets)

        # Assert
        assert all(g.dtype == np.float32
                   for g in answer.gradients.weights + answer.gradients.biases)
        assert_gradients_hold(network, parameters, inputs, targets, answer,
                              np.float32)
        if Capability.INPUT_JACOBIAN.value in self.capabilities:
            J = cast(JacobianBackend, backend).input_jacobian(network, parameters,
                                                              inputs[0])
            assert J.dtype == np.float32
            point = ExactPoint(network, parameters, inputs[0], np.float32)
            assert_within_bounds(J, point.input_jacobian, point.input_bound,
                                 "input_jacobian (float32)")

    def test_never_writes_into_its_arguments(self, backend: Backend) -> None:
        # Arrange: read-only arrays make any write raise.
        network = self.networks[1]
        parameters, inputs, targets = self.case(network, 1)
        for array in (*parameters.weights, *parameters.biases, inputs, targets):
            array.flags.writeable = False

        # Act
        answer = backend.loss_and_gradients(network, parameters, inputs, targets)

        # Assert
        assert np.isfinite(answer.loss)

    def test_declares_exactly_its_capabilities(self, backend: Backend) -> None:
        # Act
        declared = {c.value for c in backend.capabilities}

        # Assert
        assert declared == self.capabilities

    def test_reports_how_to_install_it_when_missing(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        # Arrange
        for module in self.library_modules:
            monkeypatch.setitem(sys.modules, module, None)

        # Act
        with pytest.raises(BackendLoadError) as raised:
            self.backend_class()

        # Assert
        assert str(raised.value) == self.install_message


class JacobianContract(AdapterContract):
    """The checks of an adapter declaring the input and parameter Jacobians and
    the VJP; the JVP and the forward-mode Jacobian too where it declares them."""

    def test_jacobians_agree_with_the_oracle(self, backend: JacobianBackend,
                                             index: int) -> None:
        # Arrange: the VJP at each unit cotangent e_i is row i of the input
        # Jacobian, the JVP at each unit tangent e_j its column j, each entry
        # bounded like the Jacobian's.
        network = self.networks[index]
        parameters, inputs, _ = self.case(network, index)
        x = inputs[0]
        point = ExactPoint(network, parameters, x)
        declared = {c.value for c in backend.capabilities}

        # Act
        reverse = backend.input_jacobian(network, parameters, x)
        by_parameters = backend.parameter_jacobian(network, parameters, x)
        rows = [backend.vjp(network, parameters, x, e)
                for e in np.eye(network.widths[-1])]

        # Assert
        assert {Capability.INPUT_JACOBIAN.value, Capability.PARAMETER_JACOBIAN.value,
                Capability.VJP.value} <= declared
        assert_within_bounds(reverse, point.input_jacobian, point.input_bound,
                             "input_jacobian")
        assert_within_bounds(by_parameters, point.parameter_jacobian,
                             point.parameter_bound, "parameter_jacobian")
        assert_within_bounds(np.array(rows), point.input_jacobian, point.input_bound,
                             "vjp at unit cotangents (rows)")
        if Capability.JVP.value in declared:
            columns = [backend.jvp(network, parameters, x, e)
                       for e in np.eye(network.widths[0])]
            assert_within_bounds(np.array(columns).T, point.input_jacobian,
                                 point.input_bound, "jvp at unit tangents (columns)")
            assert_products_hold(backend, network, parameters, x, index)
        if Capability.FORWARD_JACOBIAN.value in declared:
            forward = cast(_ForwardJacobian, backend).input_jacobian_forward(
                network, parameters, x)
            assert_within_bounds(forward, point.input_jacobian, point.input_bound,
                                 "input_jacobian_forward")

    def test_parameter_jacobian_stacks_the_columns_of_w(
            self, backend: JacobianBackend) -> None:
        # Arrange: a = W x + b, W = [[1, 2], [3, 4]], x = (5, 7); columns W[0,0],
        # W[1,0], W[0,1], W[1,1], b[0], b[1].
        network = Network((2, 2), (Activation.IDENTITY,), Loss.SQUARED_ERROR)
        parameters = Parameters((np.array([[1.0, 2.0], [3.0, 4.0]]),),
                                (np.array([0.0, 0.0]),))

        # Act
        J = backend.parameter_jacobian(network, parameters, np.array([5.0, 7.0]))

        # Assert
        assert J.tolist() == [[5.0, 0.0, 7.0, 0.0, 1.0, 0.0],
                              [0.0, 5.0, 0.0, 7.0, 0.0, 1.0]]


class LayerJacobianContract(JacobianContract):
    """The checks of an adapter declaring the layer Jacobians as well."""

    def test_layer_jacobians_agree_with_the_exact_factors(
            self, backend: Backend, index: int) -> None:
        # Arrange: layer l's Jacobian is diag(sigma'(z_l)) W_l at the exact z_l;
        # its bound allows for the error of the computed z_l.
        network = self.networks[index]
        parameters, inputs, _ = self.case(network, index)
        point = ExactPoint(network, parameters, inputs[0])

        # Act
        jacobians = cast(_LayerJacobians, backend).layer_jacobians(
            network, parameters, inputs[0])

        # Assert
        assert Capability.LAYER_JACOBIANS in backend.capabilities
        assert len(jacobians) == network.depth
        for ell, (got, want, bound) in enumerate(
                zip(jacobians, point.layer_jacobians, point.layer_bounds), start=1):
            assert_within_bounds(got, want, bound, "layer_jacobian",
                                 result_id=chain_rule.RESULT_ID, layer_index=ell)
