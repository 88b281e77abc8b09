"""The cost theorem on counted operations, measured and hand-made."""

from __future__ import annotations

import numpy as np
import pytest

import impl
from spec import Activation, Holds, Loss, Network, Parameters, Violated
from spec.cost import RESULT_ID, OperationCounts, check_cost

WIDTH = 4
BATCH = 2


def _measure(depth: int) -> OperationCounts:
    """Count the reference (backprop) and the explicit product on one network."""
    widths = (WIDTH,) * (depth + 1)
    activations = tuple([Activation.TANH] * (depth - 1) + [Activation.IDENTITY])
    network = Network(widths, activations, Loss.SQUARED_ERROR)
    rng = np.random.default_rng(depth)
    parameters = Parameters(
        tuple(rng.standard_normal((WIDTH, WIDTH)) / 2 for _ in range(depth)),
        tuple(rng.standard_normal(WIDTH) for _ in range(depth)))
    inputs = rng.standard_normal((BATCH, WIDTH))
    targets = rng.standard_normal((BATCH, WIDTH))

    backprop = impl.OperationCounter()
    impl.ReferenceBackend(counter=backprop).loss_and_gradients(
        network, parameters, inputs, targets)
    explicit = impl.OperationCounter()
    impl.JacobianProductBackend(counter=explicit).loss_and_gradients(
        network, parameters, inputs, targets)
    return OperationCounts(depth, WIDTH, backprop.forward, backprop.total,
                           explicit.total)


def test_cost_holds_on_counts_measured_at_depths_1_2_4_and_8() -> None:
    # Arrange
    counts = [_measure(depth) for depth in (1, 2, 4, 8)]

    # Act
    verdict = check_cost(counts)

    # Assert
    assert isinstance(verdict, Holds)
    assert verdict.result_id == RESULT_ID
    assert verdict.compared == 4
    assert 0 < verdict.worst_error_in_bounds <= 1
    assert all(c.backprop / c.forward <= 3 for c in counts)
    ratios = [c.jacobian_product / c.forward for c in counts]
    assert ratios == sorted(ratios) and ratios[-1] > 2 * ratios[0]
    assert "depths 1-8" in verdict.detail


def test_forward_counts_grow_linearly_with_depth() -> None:
    # Arrange: per example and layer, 16 multiply-adds, 4 z and 4 a entries;
    # plus one loss per example.
    depths = (1, 2, 4, 8)

    # Act
    forward = [_measure(depth).forward for depth in depths]

    # Assert
    assert forward == [BATCH * (24 * depth + 1) for depth in depths]


def test_cost_is_violated_by_a_hand_made_count_with_ratio_above_three() -> None:
    # Arrange: at depth 4, forward 100 and backprop 350: ratio 3.5.
    counts = [OperationCounts(1, 4, 30, 80, 200),
              OperationCounts(4, 4, 100, 350, 5000)]

    # Act
    verdict = check_cost(counts)

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location.quantity == "operation_count"
    assert verdict.location.index == (4, 4)
    assert verdict.actual == 3.5
    assert verdict.expected == 3.0
    assert verdict.worst_error_in_bounds == pytest.approx(3.5 / 3)
    assert "more than 3 forward passes" in verdict.detail


def test_cost_is_violated_when_the_explicit_product_does_not_grow_with_depth(
        ) -> None:
    # Arrange: explicit/forward 200/30 ~ 6.7 at depth 1 but 600/240 = 2.5 at 8.
    counts = [OperationCounts(8, 4, 240, 640, 600),
              OperationCounts(1, 4, 30, 80, 200)]

    # Act
    verdict = check_cost(counts)

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location.index == (8, 4)
    assert verdict.actual == 2.5
    assert "did not grow with depth" in verdict.detail


def test_cost_holds_for_hand_made_counts_and_reports_the_worst_ratio() -> None:
    # Arrange: ratios 80/30 and 640/240, both 8/3.
    counts = [OperationCounts(1, 4, 30, 80, 200),
              OperationCounts(8, 4, 240, 640, 9000)]

    # Act
    verdict = check_cost(counts)

    # Assert
    assert isinstance(verdict, Holds)
    assert verdict.worst_error_in_bounds == pytest.approx(8 / 9)


def test_cost_needs_two_distinct_depths() -> None:
    # Arrange
    counts = [OperationCounts(2, 4, 30, 80, 200), OperationCounts(2, 8, 90, 200, 900)]

    # Act
    with pytest.raises(ValueError) as raised:
        check_cost(counts)

    # Assert
    assert "two or more distinct depths" in str(raised.value)
