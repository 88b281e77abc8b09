"""The error bounds: hand-derived constants, and they separate right from wrong."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

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


def _mean_of_example_bounds(calculator: BoundCalculator, exact: Any, Y: np.ndarray) \
        -> tuple[float, list[Any], list[Any]]:
    """The batch bounds assembled one example at a time, as a plain loop."""
    u = calculator.u
    examples = [calculator.example(e, y) for e, y in zip(exact.examples, Y)]
    B = len(examples)
    mean_rounding = (B + 1) * u / (1 - (B + 1) * u)
    losses = [abs(float(e.forward.loss)) for e in exact.examples]
    loss = sum(b.loss for b in examples) / B + mean_rounding * sum(losses) / B
    weights: list[Any] = []
    biases: list[Any] = []
    for ell in range(len(examples[0].weight_gradients)):
        size_W = sum(np.abs(to_float(e.weight_gradients[ell])) for e in exact.examples) / B
        size_b = sum(np.abs(to_float(e.bias_gradients[ell])) for e in exact.examples) / B
        weights.append(sum(b.weight_gradients[ell] for b in examples) / B
                       + mean_rounding * size_W)
        biases.append(sum(b.bias_gradients[ell] for b in examples) / B
                      + mean_rounding * size_b)
    return loss, weights, biases


@pytest.mark.parametrize("loss", list(Loss))
def test_batch_bounds_equal_the_mean_of_the_example_bounds(loss: Loss) -> None:
    # Arrange: every activation with a second derivative, both losses.
    network, parameters, X, Y = make_case()
    network = Network(network.widths, network.activations, loss)
    exact = MpmathBackend().exact(network, parameters, X, Y)
    calculator = BoundCalculator(network, parameters)

    # Act
    batch = calculator.batch(exact, Y)
    loss_bound, weights, biases = _mean_of_example_bounds(calculator, exact, Y)

    # Assert: the same formulas summed in another order agree to rounding.
    assert batch.loss == pytest.approx(loss_bound, rel=1e-12)
    for mine, theirs in zip(batch.weight_gradients + batch.bias_gradients,
                            weights + biases):
        np.testing.assert_allclose(mine, theirs, rtol=1e-12)
    # Layer 1's inputs are exact, so its pre-activation bound is the rounding
    # of an (n_0 + 1)-term dot product alone: gamma_{n_0+1} (|W_1| |x| + |b_1|).
    n0 = network.widths[0]
    u = 2.0 ** -53
    by_hand = ((n0 + 1) * u / (1 - (n0 + 1) * u)
               * (np.abs(X) @ np.abs(parameters.weights[0]).T
                  + np.abs(parameters.biases[0])))
    np.testing.assert_allclose(batch.z[0], by_hand, rtol=1e-12)
