"""verify_gradients: one loss and gradient judged against the oracle."""

from __future__ import annotations

import numpy as np
import pytest

from conformance import verify_gradients
from spec import Activation, Holds, Loss, Network, Parameters, Violated

NETWORK = Network((2, 2, 1), (Activation.IDENTITY, Activation.IDENTITY),
                  Loss.SQUARED_ERROR)
PARAMETERS = Parameters((np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 1.0]])),
                        (np.zeros(2), np.zeros(1)))
X = np.array([[1.0, 2.0], [3.0, 4.0]])
Y = np.array([[0.0], [0.0]])


def _hand_gradients() -> tuple[float, list[np.ndarray], list[np.ndarray]]:
    # a = x_1 + x_2: 3 and 7; loss = mean of a^2 / 2 = (4.5 + 24.5) / 2 = 14.5.
    # dL/da = a / B = [1.5, 3.5]; b_2 gradient 5; W_2 gradient = sum over the
    # examples of (dL/da) z_1^T = 1.5 [1, 2] + 3.5 [3, 4] = [12, 17];
    # layer 1: delta_1 = W_2^T dL/da, so b_1 gradient [5, 5] and W_1 gradient
    # rows [1.5 + 10.5, 3 + 14] = [12, 17] for both units.
    return (14.5, [np.array([[12.0, 17.0], [12.0, 17.0]]), np.array([[12.0, 17.0]])],
            [np.array([5.0, 5.0]), np.array([5.0])])


def test_hand_computed_gradients_hold_as_parameters_and_as_a_pair() -> None:
    loss, weights, biases = _hand_gradients()

    as_parameters = verify_gradients(NETWORK, PARAMETERS, X, Y, loss,
                                      Parameters(tuple(weights), tuple(biases)))
    as_pair = verify_gradients(NETWORK, PARAMETERS, X, Y, loss, (weights, biases))

    assert isinstance(as_parameters, Holds)
    assert as_parameters.worst_error_in_bounds == 0.0  # every value is exact here
    assert as_parameters.compared == 1 + 4 + 2 + 2 + 1
    assert as_pair == as_parameters


def test_a_sum_over_the_batch_is_named_with_its_entry_and_pattern() -> None:
    loss, weights, biases = _hand_gradients()
    summed = Parameters(tuple(2 * w for w in weights), tuple(2 * b for b in biases))

    verdict = verify_gradients(NETWORK, PARAMETERS, X, Y, loss, summed)

    assert isinstance(verdict, Violated)
    assert verdict.expected in (12.0, 17.0, 5.0)
    assert verdict.actual == 2 * verdict.expected
    assert "off by the batch size 2" in verdict.detail


def test_gradients_of_another_kind_are_refused_with_what_was_expected() -> None:
    with pytest.raises(TypeError, match="expected spec.Parameters or a pair"):
        verify_gradients(NETWORK, PARAMETERS, X, Y, 14.5, {"W": 1})  # type: ignore[arg-type]
