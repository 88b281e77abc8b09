"""What every adapter's tests check of it, whatever the library.

An adapter is judged against the mpmath oracle: its loss and gradients, and
each Jacobian it declares, agree with the oracle's to a few rounding errors
per layer; float32 arguments give float32 results; it never writes into its
arguments; it declares exactly the capabilities its tests expect; and it
says how to install its library when that is missing.

This file is not collected itself (no ``test_`` prefix). Each
``test_<library>.py`` loads it by path (pytest runs with
``--import-mode=importlib`` and the test folders are no packages), subclasses
:class:`AdapterContract`, :class:`JacobianContract` or
:class:`LayerJacobianContract` as ``Test<Library>Adapter`` with its networks,
capabilities and install message, and provides the ``backend`` fixture; the
library's own conventions, limits and known bugs stay in its file.

Networks use moderate weights and inputs (no saturated activation), where a
correct float64 backpropagation agrees with the oracle to a few rounding
errors per layer.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import ClassVar, Protocol, cast

import numpy as np
import numpy.typing as npt
import pytest

import impl
from impl import Backend, Capability, JacobianBackend
from spec import Activation, Loss, Network, Parameters
from spec.errors import BackendLoadError

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


def tolerance(network: Network, dtype: type[np.floating] = np.float64) -> float:
    """Normwise relative tolerance: 8 unit roundoffs per layer, plus the loss.

    Each layer adds a dot product of at most 4 terms, an activation and its
    derivative, each a few roundings (u = eps / 2) relative to the entries at
    these moderate magnitudes; 8 u per layer leaves room for their
    accumulation without hiding a wrong formula (which errs by O(1)).
    """
    return 8 * float(np.finfo(dtype).eps) / 2 * (network.depth + 1)


def assert_close(actual: FloatArray, expected: FloatArray, relative: float) -> None:
    """max |actual - expected| <= relative * max |expected|, same shape."""
    assert actual.shape == expected.shape
    scale = float(np.max(np.abs(expected)))
    gap = float(np.max(np.abs(np.asarray(actual, dtype=np.float64) - expected)))
    assert gap <= relative * scale, (gap, scale)


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

    def float32_gradient_tolerance(self, network: Network) -> float:
        """Relative tolerance of float32 gradients against the oracle."""
        return tolerance(network, np.float32)

    def test_loss_and_gradients_agree_with_the_oracle(self, backend: Backend,
                                                      index: int) -> None:
        # Arrange
        network = self.networks[index]
        parameters, inputs, targets = self.case(network, index)
        expected = impl.MpmathBackend().loss_and_gradients(network, parameters,
                                                           inputs, targets)

        # Act
        answer = backend.loss_and_gradients(network, parameters, inputs, targets)

        # Assert
        relative = tolerance(network)
        assert abs(answer.loss - expected.loss) <= relative * abs(expected.loss)
        for got, want in zip(answer.gradients.weights + answer.gradients.biases,
                             expected.gradients.weights + expected.gradients.biases):
            assert got.dtype == np.float64
            assert_close(got, want, relative)

    def test_answers_float32_arguments_in_float32(self, backend: Backend) -> None:
        # Arrange
        network = self.networks[self.float32_index]
        parameters, inputs, targets = self.case(network, self.float32_index,
                                                np.float32)
        expected = impl.MpmathBackend().loss_and_gradients(network, parameters,
                                                           inputs, targets)

        # Act
        answer = backend.loss_and_gradients(network, parameters, inputs, targets)

        # Assert
        relative = tolerance(network, np.float32)
        assert abs(answer.loss - expected.loss) <= relative * abs(expected.loss)
        for got, want in zip(answer.gradients.weights, expected.gradients.weights):
            assert got.dtype == np.float32
            assert_close(got, want, self.float32_gradient_tolerance(network))
        if Capability.INPUT_JACOBIAN.value in self.capabilities:
            J = cast(JacobianBackend, backend).input_jacobian(network, parameters,
                                                              inputs[0])
            assert J.dtype == np.float32

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
        # Arrange
        network = self.networks[index]
        parameters, inputs, _ = self.case(network, index)
        x = inputs[0]
        rng = np.random.default_rng(index)
        u = rng.standard_normal(network.widths[-1])
        v = rng.standard_normal(network.widths[0])
        oracle = impl.MpmathBackend()
        relative = tolerance(network)
        J = oracle.input_jacobian(network, parameters, x)

        # Act
        reverse = backend.input_jacobian(network, parameters, x)
        by_parameters = backend.parameter_jacobian(network, parameters, x)
        vjp = backend.vjp(network, parameters, x, u)

        # Assert
        assert {Capability.INPUT_JACOBIAN.value, Capability.PARAMETER_JACOBIAN.value,
                Capability.VJP.value} <= self.capabilities
        assert_close(reverse, J, relative)
        assert_close(by_parameters, oracle.parameter_jacobian(network, parameters, x),
                     relative)
        assert_close(vjp, oracle.vjp(network, parameters, x, u), relative)
        if Capability.JVP.value in self.capabilities:
            assert_close(backend.jvp(network, parameters, x, v),
                         oracle.jvp(network, parameters, x, v), relative)
        if Capability.FORWARD_JACOBIAN.value in self.capabilities:
            forward = cast(_ForwardJacobian, backend).input_jacobian_forward(
                network, parameters, x)
            assert_close(forward, J, relative)

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

    def test_layer_jacobians_agree_with_one_layer_oracle_jacobians(
            self, backend: Backend, index: int) -> None:
        # Arrange: layer l's Jacobian is the input Jacobian of the one-layer
        # network (W_l, b_l, sigma_l) at a_{l-1}, which the oracle gives.
        network = self.networks[index]
        parameters, inputs, _ = self.case(network, index)
        oracle = impl.MpmathBackend()
        a = inputs[0]
        expected = []
        for ell in range(1, network.depth + 1):
            layer = Network(network.widths[ell - 1:ell + 1],
                            (network.activations[ell - 1],), network.loss)
            alone = Parameters((parameters.weights[ell - 1],),
                               (parameters.biases[ell - 1],))
            expected.append(oracle.input_jacobian(layer, alone, a))
            forward = impl.ReferenceBackend().forward(layer, alone, a[None, :])
            a = np.asarray(forward.A[-1][0])

        # Act
        jacobians = cast(_LayerJacobians, backend).layer_jacobians(
            network, parameters, inputs[0])

        # Assert
        assert Capability.LAYER_JACOBIANS.value in self.capabilities
        assert len(jacobians) == network.depth
        for got, want in zip(jacobians, expected):
            assert_close(got, want, tolerance(network))
