"""The error bounds: hand-derived constants, and they separate right from wrong."""

from __future__ import annotations

import numpy as np

from conformance._bounds import BoundCalculator, gamma, unit_roundoff
from impl import MpmathBackend, ReferenceBackend
from spec import Activation, Loss, Network, Parameters, to_float


def test_unit_roundoff_is_half_the_machine_epsilon() -> None:
    assert unit_roundoff(np.float64) == 2.0 ** -53
    assert unit_roundoff(np.float32) == 2.0 ** -24


def test_gamma_matches_its_definition() -> None:
    u = 2.0 ** -53

    assert float(gamma(3, u)) == 3 * u / (1 - 3 * u)


def make_case() -> tuple[Network, Parameters, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    network = Network((4, 5, 5, 3), (Activation.TANH, Activation.SOFTPLUS,
                                     Activation.SIGMOID), Loss.SQUARED_ERROR)
    parameters = Parameters(
        tuple(rng.standard_normal(network.weight_shape(ell)) for ell in (1, 2, 3)),
        tuple(rng.standard_normal(n) for n in network.widths[1:]))
    return network, parameters, rng.standard_normal((6, 4)), rng.standard_normal((6, 3))


def test_float64_reference_error_is_inside_the_bound_and_float32_is_far_outside() -> None:
    network, parameters, X, Y = make_case()
    exact = MpmathBackend().exact(network, parameters, X, Y)
    bounds = BoundCalculator(network, parameters).batch(exact, Y)
    single = Parameters(tuple(w.astype(np.float32).astype(np.float64)
                              for w in parameters.weights), parameters.biases)

    float64 = ReferenceBackend().loss_and_gradients(network, parameters, X, Y)
    float32 = ReferenceBackend().loss_and_gradients(network, single, X, Y)

    for ell in range(network.depth):
        expected = to_float(exact.weight_gradients[ell])
        ratio64 = np.abs(float64.gradients.weights[ell] - expected) / \
            bounds.weight_gradients[ell]
        ratio32 = np.abs(float32.gradients.weights[ell] - expected) / \
            bounds.weight_gradients[ell]
        assert ratio64.max() <= 1.0
        assert ratio32.max() > 1e3


def test_bound_scales_with_the_unit_roundoff_of_the_dtype() -> None:
    network, parameters, X, Y = make_case()
    exact = MpmathBackend().exact(network, parameters, X, Y)

    double = BoundCalculator(network, parameters, np.float64).batch(exact, Y)
    single = BoundCalculator(network, parameters, np.float32).batch(exact, Y)

    ratio = single.bias_gradients[0] / double.bias_gradients[0]
    assert np.all(ratio > 2.0 ** 28)
