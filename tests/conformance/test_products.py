"""The products with the Jacobian are judged for whichever mode a backend has.

A library with reverse mode only (a VJP, no JVP) is judged on its VJP; one
with both is judged on both and on their adjoint identity; one with neither
is told so. The exact values come from the hand-derived Jacobian of a
one-layer identity network, whose Jacobian is its weight matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from conformance import Case, judge
from impl import Capability, ReferenceBackend
from spec import Activation, FloatArray, Holds, Loss, Network, NotApplicable, \
    Parameters, Violated

W = np.array([[2.0, -1.0, 0.5], [0.25, 3.0, -2.0]])
CASE = Case(Network((3, 2), (Activation.IDENTITY,), Loss.SQUARED_ERROR),
            Parameters((W,), (np.array([0.1, -0.2]),)),
            np.array([[0.5, -1.5, 2.0]]), np.array([[0.0, 1.0]]), probe_seed=7)


@dataclass
class ReverseOnly(ReferenceBackend):
    """The reference with a VJP and no JVP; ``flip`` makes its VJP wrong."""

    capabilities: frozenset[Capability] = field(
        default=frozenset({Capability.INPUT_JACOBIAN, Capability.VJP}))
    flip: bool = False

    def vjp(self, network: Network, parameters: Parameters, x: FloatArray,
            u: FloatArray) -> FloatArray:
        # u^T J with J = W for an identity layer: the exact answer, or its
        # entries in reverse order.
        product = np.asarray(u) @ parameters.weights[0]
        return product[::-1].copy() if self.flip else product


@dataclass
class Neither(ReferenceBackend):
    """The reference declaring no product at all."""

    capabilities: frozenset[Capability] = field(
        default=frozenset({Capability.INPUT_JACOBIAN}))


def test_a_reverse_mode_only_backend_is_judged_on_its_vjp() -> None:
    verdict = judge("jacobian.products", ReverseOnly(), CASE)

    # Only the n_0 = 3 entries of the VJP: no JVP, so no adjoint identity.
    assert isinstance(verdict, Holds)
    assert verdict.compared == 3


def test_a_wrong_vjp_is_caught_without_a_jvp_to_compare_with() -> None:
    rng = np.random.default_rng(CASE.probe_seed)
    u = rng.standard_normal(2)  # the cotangent the check draws first
    right = u @ W

    verdict = judge("jacobian.products", ReverseOnly(flip=True), CASE)

    assert isinstance(verdict, Violated)
    assert verdict.location.quantity == "vjp"
    # The middle entry stays in place; the worst of the two swapped ones is
    # named, with the value returned and the exact one.
    (i,) = verdict.location.index
    assert i in (0, 2)
    assert verdict.actual == right[::-1][i]
    assert verdict.expected == right[i]
    assert verdict.violating == 2 and verdict.compared == 3


def test_a_backend_with_both_products_is_judged_on_both_and_their_adjointness() -> \
        None:
    verdict = judge("jacobian.products", ReferenceBackend(), CASE)

    # 2 JVP entries, 3 VJP entries and the adjoint identity.
    assert isinstance(verdict, Holds)
    assert verdict.compared == 2 + 3 + 1


def test_a_backend_with_neither_product_is_told_so() -> None:
    verdict = judge("jacobian.products", Neither(), CASE)

    assert isinstance(verdict, NotApplicable)
    assert verdict.reason == "the backend declares neither jvp nor vjp"
