"""The registry lists every result once, in the paper's order."""

from __future__ import annotations

import pytest

import spec
from spec.backprop import check_batch_mean, check_delta_recursion
from spec.chain_rule import check_chain_rule
from spec.cost import check_cost
from spec.gradient_product import check_gradient_product
from spec.jacobian import check_jacobian_entries, check_jacobian_products
from spec.layer_jacobians import (
    check_activation_layer,
    check_affine_layer,
    check_softmax_layer,
)
from spec.loss_gradient import check_loss_gradient
from spec.total_derivative import check_total_derivative

EXPECTED_ORDER = [
    "total-derivative", "jacobian", "jacobian.products", "chain-rule", "layer-jacobian.affine",
    "layer-jacobian.activation", "layer-jacobian.softmax",
    "loss-gradient.squared-error", "loss-gradient.softmax-cross-entropy",
    "gradient-product", "backprop.delta-recursion", "backprop.batch-mean", "cost",
]


def test_results_are_listed_once_each_in_the_papers_order() -> None:
    # Arrange
    results = spec.RESULTS

    # Act
    ids = [r.id for r in results]

    # Assert
    assert ids == EXPECTED_ORDER
    assert len(set(ids)) == len(ids)


def test_each_result_carries_its_own_predicate() -> None:
    # Arrange
    expected = {
        "total-derivative": check_total_derivative,
        "jacobian": check_jacobian_entries,
        "jacobian.products": check_jacobian_products,
        "chain-rule": check_chain_rule,
        "layer-jacobian.affine": check_affine_layer,
        "layer-jacobian.activation": check_activation_layer,
        "layer-jacobian.softmax": check_softmax_layer,
        "loss-gradient.squared-error": check_loss_gradient,
        "loss-gradient.softmax-cross-entropy": check_loss_gradient,
        "gradient-product": check_gradient_product,
        "backprop.delta-recursion": check_delta_recursion,
        "backprop.batch-mean": check_batch_mean,
        "cost": check_cost,
    }

    # Act
    predicates = {r.id: r.predicate for r in spec.RESULTS}

    # Assert
    assert predicates == expected


def test_definitions_come_before_lemmas_and_lemmas_before_theorems_they_use(
        ) -> None:
    # Arrange
    kinds = {r.id: r.kind for r in spec.RESULTS}

    # Act
    definitions = [i for i, k in kinds.items() if k == "definition"]

    # Assert
    assert set(kinds.values()) == {"definition", "lemma", "theorem"}
    assert definitions == ["total-derivative", "jacobian", "jacobian.products"]
    assert kinds["chain-rule"] == "theorem"
    assert kinds["layer-jacobian.affine"] == "lemma"
    assert kinds["gradient-product"] == "theorem"


def test_every_result_states_itself_and_its_hypotheses() -> None:
    # Arrange
    results = spec.RESULTS

    # Act
    incomplete = [r.id for r in results
                  if not (r.title and r.statement and r.hypotheses
                          and r.paper_section)]

    # Assert
    assert incomplete == []
    assert all(not r.statement.startswith("$") for r in results)
    assert {r.paper_section for r in results} == {"1", "2", "3", "4", "5"}


def test_get_returns_the_result_with_that_id() -> None:
    # Arrange
    wanted = "backprop.batch-mean"

    # Act
    result = spec.get(wanted)

    # Assert
    assert result.id == wanted
    assert result.predicate is check_batch_mean


def test_get_with_an_unknown_id_names_the_known_ones() -> None:
    # Arrange
    wanted = "no-such-result"

    # Act
    with pytest.raises(KeyError) as raised:
        spec.get(wanted)

    # Assert
    message = str(raised.value)
    assert "no result with id 'no-such-result'" in message
    assert "chain-rule" in message and "cost" in message
