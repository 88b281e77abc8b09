r"""The oracle's arithmetic in arb balls, through python-flint.

The same batch as :class:`impl._exact_engine.BatchEngine`, with the same
formulas and conventions, computed in FLINT's ball arithmetic: each number
is a midpoint and a radius, and every operation returns a ball that is
guaranteed to contain the exact result of the operation on any points of
its operand balls. Every matrix product (``A W^T`` forward, ``delta^T A``
and ``delta W`` backward) is one ``flint.arb_mat`` product in C; only the
elementwise steps (activations, derivatives, loss) go entry by entry, in
object arrays.

Precision
---------
The batch is first computed at ``digits`` decimal digits (and at least
:data:`LEAST_FIRST_BITS` bits). Then the radius of every quantity
returned is compared with its midpoint: if any radius exceeds both
:math:`2^{-80}` times its midpoint's magnitude and :math:`2^{-1100}` (far
below the smallest float64; this lets values at or near zero pass), the
whole batch is computed again with twice the bits, up to
:data:`MAX_RUNS` runs. The returned midpoints are then the exact values to
at least 80 bits, 27 more than float64 carries, however many digits
cancelled on the way; rounding a midpoint to float64 (``float(x)`` rounds
it to nearest) or splitting it as ``hi + lo`` is as good as doing so with
the exact value.

One case never passes the check: a value that is exactly zero because two
equal computations cancel, such as the difference of two identical units'
outputs. The two balls are equal but not known to hold the same number,
so their difference is a ball around 0 whose radius shrinks with each
run but never vanishes. The last run's midpoints are then used (a DEBUG log
line says so); they come from eight times the first precision, and such a
radius is far below the float error bound of the value, which scales with
the magnitudes that cancelled.

Branches
--------
Piecewise formulas choose their branch by the sign of the midpoint, and
``z == 0`` holds only where the ball is exactly the point 0. That is
right here: parameters and inputs are floats, converted exactly, so a
first-layer pre-activation that is exactly zero comes out as the exact
ball 0. A ball that contains zero without being exactly zero (a later
layer's exact zero among them, as above) has a radius of order
:math:`2^{-100}` times the magnitudes summed into it, while the suite's
float error bound on that pre-activation is at least :math:`2^{-53}`
times the same magnitudes; the point is then within its error bound of
the kink, which the suite declares not judgeable, whichever branch the
midpoint chose.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import flint
import mpmath
import numpy as np
import numpy.typing as npt

from impl._exact_engine import Arithmetic, BatchArrays, ObjectArray
from spec import Activation, FloatArray, Loss, Network, Parameters
from spec.conventions import ELU_ALPHA, LEAKY_RELU_SLOPE

logger = logging.getLogger(__name__)

ACCURACY_BITS = 80
"""Least relative accuracy of every returned midpoint, in bits: float64's 53
plus 27, so a midpoint rounds to the same float64 as the exact value unless
that value lies within :math:`2^{-80}` of itself of a halfway point between
two floats."""

ABSOLUTE_FLOOR = flint.arb((1, -1100))
"""A radius this small passes the check whatever the midpoint: it is
:math:`2^{-26}` of the smallest float64 subnormal, below anything a float64
comparison or error bound can see."""

MAX_RUNS = 4
"""Runs at most (the bits doubling each time) before giving up on the check."""

LEAST_FIRST_BITS = ACCURACY_BITS + 16
"""Least precision of the first run: the 80 bits the check asks for, plus
16 for the roundings a batch accumulates. A first run at fewer bits (20
digits are 70) could never pass the check and would only add its cost."""


@contextlib.contextmanager
def working_bits(bits: int) -> Iterator[None]:
    """Set ``flint.ctx.prec``, which is global, and restore it afterwards."""
    previous = flint.ctx.prec
    flint.ctx.prec = bits
    try:
        yield
    finally:
        flint.ctx.prec = previous


@contextlib.contextmanager
def working_digits(digits: int) -> Iterator[None]:
    """:func:`working_bits` for ``digits`` significant decimal digits."""
    with working_bits(int(mpmath.libmp.dps_to_prec(digits))):
        yield


def arb_arithmetic() -> Arithmetic:
    """``flint.arb`` balls; the engine is :class:`ArbBatchEngine`."""
    return Arithmetic("arb", flint.arb,
                      {"exp": flint.arb.exp, "log1p": flint.arb.log1p,
                       "expm1": flint.arb.expm1},
                      working_digits)


def accurate(values: Sequence[flint.arb]) -> bool:
    r"""Whether every radius is at most :math:`\max(2^{-80}|m|, 2^{-1100})`.

    ``rel_accuracy_bits`` of at least 80 implies the first bound (it
    compares the top bits of radius and midpoint), so only the balls it
    does not clear, if any, are looked at exactly.
    """
    if min(map(flint.arb.rel_accuracy_bits, values), default=ACCURACY_BITS) >= \
            ACCURACY_BITS:
        return True
    scale = flint.arb((1, -ACCURACY_BITS))
    return all(x.rad() <= ABSOLUTE_FLOOR or x.rad() <= abs(x.mid()) * scale
               for x in values if x.rel_accuracy_bits() < ACCURACY_BITS)


class ArbBatchEngine:
    """Exact batch forward and backward pass in arb balls.

    Parameters
    ----------
    digits
        Working precision of the first run, in significant decimal digits;
        at least :data:`LEAST_FIRST_BITS` bits are used.
    arithmetic
        :func:`arb_arithmetic` (for :meth:`ExactBatch.split` and the name).
    """

    def __init__(self, digits: int, arithmetic: Arithmetic) -> None:
        self.digits = digits
        self.arithmetic = arithmetic
        self.bits = max(int(mpmath.libmp.dps_to_prec(digits)), LEAST_FIRST_BITS)

    def run(self, network: Network, parameters: Parameters, inputs: FloatArray,
            targets: FloatArray) -> BatchArrays:
        """Forward pass, example losses, backward pass and batch means.

        Computed again with twice the bits while some returned ball is
        wider than :data:`ACCURACY_BITS` allow (see the module's notes).
        """
        for run in range(MAX_RUNS):
            bits = self.bits << run
            with working_bits(bits):
                arrays = _Run(network).compute(parameters, inputs, targets)
                if accurate(_every_ball(arrays)):
                    return arrays
            logger.debug("arb balls wider than %d bits allow at %d bits",
                         ACCURACY_BITS, bits)
        return arrays


@functools.lru_cache(maxsize=8)
def _constants(bits: int) -> tuple[ObjectArray, ...]:
    """0, 1, the leaky ReLU slope and the ELU scale as balls at ``bits``, in
    0-d object arrays, which numpy broadcasts like arrays.

    The slope is a decimal string (0.01 has no exact binary form), so its
    ball depends on the precision; each precision's set is made once.
    """
    with working_bits(bits):
        return tuple(np.array(flint.arb(value), dtype=object)
                     for value in (0, 1, LEAKY_RELU_SLOPE, ELU_ALPHA))


class _Run:
    """One computation at the current ``flint.ctx.prec``.

    Entries live in object arrays (rows are examples), whose elementwise
    arithmetic numpy runs in C; a layer's products take them as
    ``flint.arb_mat``. Weights carry their bias as a last column and
    activations a column of ones, so one product gives :math:`W a + b`, and
    one gives the weight and bias gradients together.
    """

    def __init__(self, network: Network) -> None:
        self.network = network
        self.zero, self.one, self.slope, self.alpha = _constants(flint.ctx.prec)

    def compute(self, parameters: Parameters, inputs: FloatArray,
                targets: FloatArray) -> BatchArrays:
        """The batch's quantities."""
        B = int(inputs.shape[0])
        W_b = [_matrix(np.column_stack([W, b]))
               for W, b in zip(parameters.weights, parameters.biases)]
        X_ones = _matrix(np.column_stack([inputs, np.ones(B)]))
        Z, A, A_ones, derivatives, second = self._forward(W_b, X_ones)

        losses, G = self._loss(A[-1], targets)
        upstream, deltas, weights, biases = self._backward(W_b, A_ones, derivatives,
                                                           G)
        loss = sum(losses.tolist(), flint.arb(0)) / B
        return BatchArrays(Z, A, upstream, deltas, second, losses, loss, weights,
                           biases)

    def _forward(self, W_b: list[flint.arb_mat], X_ones: flint.arb_mat) -> \
            tuple[list[ObjectArray], list[ObjectArray], list[flint.arb_mat],
                  list[ObjectArray], list[FloatArray]]:
        r""":math:`Z = [A\ 1][W\ b]^\top`, then the activation entry by entry."""
        B, L = X_ones.nrows(), len(W_b)
        A = [_entries(X_ones, B)[:, :-1]]
        A_ones = [X_ones]
        Z: list[ObjectArray] = []
        derivatives: list[ObjectArray] = []
        second: list[FloatArray] = []
        for ell, activation in enumerate(self.network.activations, start=1):
            Z.append(_entries(A_ones[-1] * W_b[ell - 1].transpose(), B))
            a, d, dd = self._activation(activation, Z[-1])
            A.append(a)
            derivatives.append(d)
            second.append(np.abs(dd.astype(np.float64)))
            if ell < L:
                A_ones.append(_with_ones(a, self.one))
        return Z, A, A_ones, derivatives, second

    def _activation(self, activation: Activation, z: ObjectArray) -> \
            tuple[ObjectArray, ObjectArray, npt.NDArray[Any]]:
        r""":math:`\sigma`, :math:`\sigma'` (the left one at kinks), :math:`\sigma''`.

        :math:`\sigma''` comes as floats where it is zero.
        """
        zero, one = self.zero, self.one
        zeros = np.zeros(z.shape)
        if activation is Activation.IDENTITY:
            return z, np.full(z.shape, one, dtype=object), zeros
        if activation is Activation.TANH:
            # tanh' = sech^2 directly: 1 - tanh^2 would cancel where |z| is large.
            t, s = _apply(flint.arb.tanh, z), _apply(flint.arb.sech, z)
            d = s * s
            return t, d, t * d * -2
        positive = _positive(z)
        if activation in (Activation.SIGMOID, Activation.SOFTPLUS):
            return self._sigmoid_or_softplus(activation, z, positive)
        if activation is Activation.RELU:
            return (np.where(positive, z, zero), np.where(positive, one, zero),
                    zeros)
        if activation is Activation.LEAKY_RELU:
            return (np.where(positive, z, self.slope * z),
                    np.where(positive, one, self.slope), zeros)
        if activation is Activation.ELU:
            negative_part = np.where(positive, zero, z)
            e = self.alpha * _apply(flint.arb.exp, negative_part)
            return (np.where(positive, z,
                             self.alpha * _apply(flint.arb.expm1, negative_part)),
                    np.where(positive, one, e), np.where(positive, 0.0, e))
        raise ValueError(f"activation={activation!r} is not an Activation")

    def _sigmoid_or_softplus(self, activation: Activation, z: ObjectArray,
                             positive: npt.NDArray[np.bool_]) -> \
            tuple[ObjectArray, ObjectArray, ObjectArray]:
        r"""Through :math:`e = e^{-|z|}`: nothing overflows or cancels.

        Sigmoid :math:`s = 1/(1 + e)` for :math:`z > 0`, :math:`e/(1 + e)`
        otherwise (the same at 0), :math:`s' = e/(1 + e)^2`, :math:`s'' = s'(1 - 2s)`;
        softplus :math:`\log(1 + e^z) = \max(z, 0) + \log(1 + e)`, whose
        derivatives are :math:`s` and :math:`s'`.
        """
        e = _apply(flint.arb.exp, -np.abs(z))
        q = 1 + e
        s = np.where(positive, 1 / q, e / q)
        d = e / (q * q)
        if activation is Activation.SIGMOID:
            return s, d, d * (1 - 2 * s)
        tail = _apply(flint.arb.log1p, e)
        return np.where(positive, z + tail, tail), s, d

    def _loss(self, A_L: ObjectArray, Y: FloatArray) -> \
            tuple[ObjectArray, ObjectArray]:
        """Example losses (``B``) and their gradients in ``a_L`` (``B x n_L``)."""
        if self.network.loss is Loss.SQUARED_ERROR:
            R = np.asarray(A_L - Y, dtype=object)
            return np.asarray((R * R).sum(axis=1) / 2, dtype=object), R
        pairs = [_softmax_cross_entropy(a, y) for a, y in zip(A_L.tolist(),
                                                              Y.tolist())]
        gradients = [g for _, gradient in pairs for g in gradient]
        return (np.fromiter((loss for loss, _ in pairs), dtype=object,
                            count=len(pairs)),
                np.fromiter(gradients, dtype=object,
                            count=len(gradients)).reshape(A_L.shape))

    def _backward(self, W_b: list[flint.arb_mat], A_ones: list[flint.arb_mat],
                  derivatives: list[ObjectArray], G: ObjectArray) -> \
            tuple[list[ObjectArray], list[ObjectArray], list[ObjectArray],
                  list[ObjectArray]]:
        r""":math:`\delta = \sigma' \odot G`,
        :math:`[\nabla W\ \nabla b] = \delta^\top [A\ 1] / B`,
        :math:`G_{\ell-1} = \delta W` (the product with :math:`[W\ b]`, last
        column dropped)."""
        L, B = len(W_b), int(G.shape[0])
        upstream: list[ObjectArray] = [G] * L
        deltas: list[ObjectArray] = [G] * L
        weights: list[ObjectArray] = [G] * L
        biases: list[ObjectArray] = [G] * L
        for ell in range(L, 0, -1):
            upstream[ell - 1] = G
            if self.network.activations[ell - 1] is not Activation.IDENTITY:
                G = np.asarray(derivatives[ell - 1] * G, dtype=object)
            deltas[ell - 1] = G
            delta = flint.arb_mat(B, G.shape[1], G.ravel().tolist())

            gradient = _entries(delta.transpose() * A_ones[ell - 1] / B, G.shape[1])
            weights[ell - 1], biases[ell - 1] = gradient[:, :-1], gradient[:, -1]
            if ell > 1:
                G = _entries(delta * W_b[ell - 1], B)[:, :-1]
        return upstream, deltas, weights, biases


def _matrix(values: FloatArray) -> flint.arb_mat:
    """A float matrix as exact balls."""
    rows, columns = values.shape
    return flint.arb_mat(rows, columns, values.ravel().tolist())


def _entries(matrix: flint.arb_mat, rows: int) -> ObjectArray:
    """A matrix's entries as a ``rows x columns`` object array."""
    values = matrix.entries()
    return np.fromiter(values, dtype=object, count=len(values)).reshape(rows, -1)


def _with_ones(A: ObjectArray, one: ObjectArray) -> flint.arb_mat:
    """``[A 1]``: the ones column makes the bias part of the product."""
    B, n = A.shape
    augmented = np.empty((B, n + 1), dtype=object)
    augmented[:, :n] = A
    augmented[:, n] = one
    return flint.arb_mat(B, n + 1, augmented.ravel().tolist())


def _apply(function: Callable[[flint.arb], flint.arb], z: ObjectArray) -> \
        ObjectArray:
    """An elementary function, entry by entry."""
    return np.fromiter(map(function, z.ravel().tolist()), dtype=object,
                       count=z.size).reshape(z.shape)


def _positive(z: ObjectArray) -> npt.NDArray[np.bool_]:
    """Where the midpoint is above zero (the branch taken; see the module's notes)."""
    return np.fromiter((v.mid() > 0 for v in z.ravel().tolist()), dtype=bool,
                       count=z.size).reshape(z.shape)


def _softmax_cross_entropy(a: list[flint.arb], y: list[float]) -> \
        tuple[flint.arb, list[flint.arb]]:
    r""":math:`-\sum_i y_i \log p_i` and :math:`p \sum_i y_i - y`, with
    :math:`p = \operatorname{softmax}(a)`.

    With :math:`k` the largest entry, :math:`s = \sum_{i \ne k} e^{a_i - a_k}`
    and :math:`\lambda = \log(1 + s)`, the loss is
    :math:`\sum_{i \ne k} y_i (a_k - a_i) + \lambda \sum_i y_i` and
    :math:`p_i = e^{a_i - a_k} / (1 + s)`, with :math:`e^{a_k - a_k} = 1`
    taken exactly: the ball :math:`a_k - a_k` is as wide as twice the
    radius of :math:`a_k`, however exact the difference.
    """
    k = max(range(len(a)), key=lambda i: a[i].mid())
    e = [flint.arb(1) if i == k else (v - a[k]).exp() for i, v in enumerate(a)]
    others = sum((v for i, v in enumerate(e) if i != k), flint.arb(0))
    total = sum(map(flint.arb, y), flint.arb(0))
    loss = sum((y_i * (a[k] - a_i) for i, (a_i, y_i) in enumerate(zip(a, y))
                if i != k), total * others.log1p())
    scale = total / (1 + others)
    return loss, [v * scale - y_i for v, y_i in zip(e, y)]


def _every_ball(arrays: BatchArrays) -> list[flint.arb]:
    """Every returned ball, the inputs ``a[0]`` (exact) left out.

    An array returned twice (``a`` is ``z`` for an identity layer) is
    looked at once.
    """
    parts = [*arrays.z, *arrays.a[1:], *arrays.upstream, *arrays.deltas,
             arrays.losses, *arrays.weight_gradients, *arrays.bias_gradients]
    balls: list[flint.arb] = [arrays.loss]
    for part in {id(part): part for part in parts}.values():
        balls += part.ravel().tolist()
    return balls
