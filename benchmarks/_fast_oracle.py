r"""An experimental batched oracle, to show how fast gradient verification can be.

Not used by the suite. It computes what :class:`impl.MpmathBackend` and
:class:`conformance._bounds.BoundCalculator` compute for a batch (exact
forward and backward pass, float64 error bounds of loss and gradients), with
three changes that the profile of the suite's path (see the notes of the
first section of ``docs/benchmarks.md``) points at:

1. the whole batch at once: one object-array product ``A @ W.T`` per layer
   instead of one ``mpmath.fdot`` per unit and example, and the bounds as
   float64 matrix products over the batch instead of a Python loop;
2. numbers of :mod:`gmpy2` (``mpfr``, arithmetic in C) instead of
   ``mpmath.mpf`` (arithmetic in Python on top of gmpy2 integers) — the
   module can run with either, to separate the two gains;
3. every exact quantity rounded to float64 once, and :math:`\sigma''` formed
   from the :math:`\sigma` and :math:`\sigma'` already computed instead of
   new transcendental evaluations.

Products are rounded to the working precision term by term, where
``mpmath.fdot`` rounds once; at 30 digits the difference is some
:math:`10^{-30}` relative to the sum of magnitudes, far below the float64
bounds (:math:`\gamma_n` times the same sum). The benchmark checks that both
oracles agree on every exact value and bound.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np
import numpy.typing as npt

from conformance._bounds import (
    ACTIVATION_ROUNDINGS,
    LOSS_EXTRA_TERMS,
    SUP_FIRST,
    SUP_SECOND,
    SUP_THIRD,
    _derivative_magnitude,
    _rounding_magnitude,
    gamma,
    unit_roundoff,
)
from impl._numeric import sigma_prime as float_sigma_prime
from spec import Activation, FloatArray, Loss, Network, Parameters
from spec.conventions import ELU_ALPHA, LEAKY_RELU_SLOPE

ObjectArray = npt.NDArray[np.object_]
"""An array of high-precision numbers (``gmpy2.mpfr`` or ``mpmath.mpf``)."""


_EXPM1_BELOW = 0.35
"""Below this :math:`|z|`, :math:`e^{-2|z|} > 1/2`: ``expm1`` gives
:math:`e - 1` without cancellation; above, ``exp`` gives :math:`e` itself."""


@dataclass(frozen=True)
class Arithmetic:
    """A kind of high-precision number and its elementary functions.

    Attributes
    ----------
    name
        ``"gmpy2"`` or ``"mpmath"``.
    number
        Exact conversion of a float (or of a decimal string, rounded).
    functions
        ``exp``, ``log1p`` and ``expm1``, one number each.
    precision
        Context manager setting the working precision in decimal digits.
    """

    name: str
    number: Callable[[Any], Any]
    functions: dict[str, Callable[[Any], Any]]
    precision: Callable[[int], contextlib.AbstractContextManager[object]]
    convert_by_multiplying: bool = False

    def array(self, values: npt.ArrayLike) -> ObjectArray:
        """Exact conversion of a float array.

        For gmpy2, multiplying by an exact one converts a float about ten times
        faster than ``gmpy2.mpfr(float)`` (microseconds), and as exactly; for
        mpmath the constructor is the faster of the two.
        """
        floats = np.asarray(values, dtype=np.float64)
        if self.convert_by_multiplying:
            one = np.full(floats.shape, self.number(1.0), dtype=object)
            return np.asarray(one * floats.astype(object), dtype=object)
        return np.asarray(np.frompyfunc(self.number, 1, 1)(floats), dtype=object)

    def apply(self, name: str, values: ObjectArray) -> ObjectArray:
        """An elementary function, entry by entry."""
        return np.asarray(
            np.frompyfunc(self.functions[name], 1, 1)(values), dtype=object
        )


@contextlib.contextmanager
def _gmpy2_precision(digits: int) -> Iterator[object]:
    import gmpy2

    bits = int(mpmath.libmp.dps_to_prec(digits))
    with gmpy2.context(gmpy2.get_context(), precision=bits) as context:
        yield context


def gmpy2_arithmetic() -> Arithmetic:
    """``gmpy2.mpfr`` numbers; raises ImportError without gmpy2."""
    import gmpy2

    return Arithmetic(
        "gmpy2",
        gmpy2.mpfr,
        {"exp": gmpy2.exp, "log1p": gmpy2.log1p, "expm1": gmpy2.expm1},
        _gmpy2_precision,
        convert_by_multiplying=True,
    )


def mpmath_arithmetic() -> Arithmetic:
    """``mpmath.mpf`` numbers, the suite's own."""
    return Arithmetic(
        "mpmath",
        mpmath.mpf,
        {"exp": mpmath.exp, "log1p": mpmath.log1p, "expm1": mpmath.expm1},
        mpmath.workdps,
    )


@dataclass(frozen=True)
class BatchExact:
    r"""Exact quantities of a batch, rows being examples.

    ``Z[l - 1]``, ``deltas[l - 1]`` and ``upstream[l - 1]`` (the gradient of
    the example loss in ``a_l``) are ``B x n_l``; ``A[l]`` is ``B x n_l``
    with ``A[0]`` the inputs; ``second[l - 1]`` holds
    :math:`|\sigma''(z_l)|` rounded to float64.
    """

    Z: list[ObjectArray]
    A: list[ObjectArray]
    upstream: list[ObjectArray]
    deltas: list[ObjectArray]
    second: list[FloatArray]
    losses: ObjectArray
    loss: Any
    weight_gradients: list[ObjectArray]
    bias_gradients: list[ObjectArray]


@dataclass(frozen=True)
class BatchBounds:
    """Bounds on the float64 batch loss and mean gradients."""

    loss: float
    weight_gradients: list[FloatArray]
    bias_gradients: list[FloatArray]


@dataclass(frozen=True)
class Verification:
    """The outcome of comparing a backend's gradients with the exact ones."""

    worst_error_in_bounds: float
    compared: int
    violating: int

    @property
    def holds(self) -> bool:
        """Every compared entry within its bound."""
        return self.violating == 0


class BatchedOracle:
    """Exact batch forward and backward pass in one kind of arithmetic.

    Parameters
    ----------
    digits
        Working precision in significant decimal digits.
    arithmetic
        The numbers used; gmpy2's by default.
    """

    def __init__(self, digits: int = 30, arithmetic: Arithmetic | None = None) -> None:
        self.digits = digits
        self.arithmetic = arithmetic or gmpy2_arithmetic()
        number = self.arithmetic.number
        with self.arithmetic.precision(digits):
            self._zero, self._one = number(0.0), number(1.0)
            self._slope, self._alpha = number(LEAKY_RELU_SLOPE), number(ELU_ALPHA)

    def exact(
        self,
        network: Network,
        parameters: Parameters,
        inputs: FloatArray,
        targets: FloatArray,
    ) -> BatchExact:
        """Forward pass, example losses, backward pass and batch means."""
        with self.arithmetic.precision(self.digits):
            W = [self.arithmetic.array(w) for w in parameters.weights]
            b = [self.arithmetic.array(v) for v in parameters.biases]
            Y = self.arithmetic.array(targets)
            Z, A, derivatives, second = self._forward(
                network, W, b, self.arithmetic.array(inputs)
            )
            losses, G = self._loss(network.loss, A[-1], Y)
            upstream, deltas, weights, biases = self._backward(W, A, derivatives, G)
            B = inputs.shape[0]
            return BatchExact(
                Z,
                A,
                upstream,
                deltas,
                second,
                losses,
                losses.sum() / B,
                weights,
                biases,
            )

    def _forward(
        self,
        network: Network,
        W: list[ObjectArray],
        b: list[ObjectArray],
        X: ObjectArray,
    ) -> tuple[
        list[ObjectArray], list[ObjectArray], list[ObjectArray], list[FloatArray]
    ]:
        Z: list[ObjectArray] = []
        A = [X]
        derivatives: list[ObjectArray] = []
        second: list[FloatArray] = []
        for W_ell, b_ell, activation in zip(W, b, network.activations):
            z = np.asarray(A[-1] @ W_ell.T + b_ell, dtype=object)
            a, d, dd = self._activation(activation, z)
            Z.append(z)
            A.append(a)
            derivatives.append(d)
            second.append(np.abs(np.asarray(dd, dtype=object).astype(np.float64)))
        return Z, A, derivatives, second

    def _activation(
        self, activation: Activation, z: ObjectArray
    ) -> tuple[ObjectArray, ObjectArray, ObjectArray]:
        r""":math:`\sigma`, :math:`\sigma'` (left one at kinks), :math:`\sigma''`."""
        apply, zero, one = self.arithmetic.apply, self._zero, self._one
        positive = z > 0
        zeros = np.full(z.shape, zero, dtype=object)
        if activation is Activation.IDENTITY:
            return z, np.full(z.shape, one, dtype=object), zeros
        if activation in (Activation.SIGMOID, Activation.SOFTPLUS):
            s = 1 / (1 + apply("exp", -z))
            d = s * (1 - s)
            if activation is Activation.SOFTPLUS:
                return apply("log1p", apply("exp", z)), s, d
            return s, d, d * (1 - 2 * s)
        if activation is Activation.TANH:
            t, d = self._tanh(z)
            return t, d, -2 * t * d
        if activation is Activation.RELU:
            return (np.where(positive, z, zero), np.where(positive, one, zero), zeros)
        if activation is Activation.LEAKY_RELU:
            return (
                np.where(positive, z, self._slope * z),
                np.where(positive, one, self._slope),
                zeros,
            )
        if activation is Activation.ELU:
            e = apply("exp", np.where(positive, zero, z))
            return (
                np.where(positive, z, self._alpha * (e - 1)),
                np.where(positive, one, self._alpha * e),
                np.where(positive, zero, self._alpha * e),
            )
        raise ValueError(f"activation={activation!r} is not an Activation")

    def _tanh(self, z: ObjectArray) -> tuple[ObjectArray, ObjectArray]:
        r""":math:`\tanh z` and :math:`\operatorname{sech}^2 z` from one exponential.

        With :math:`e = e^{-2|z|}` and :math:`m = e - 1`,
        :math:`\tanh|z| = -m / (1 + e)` and
        :math:`\operatorname{sech}^2 z = 4e / (1 + e)^2`. Both keep full
        relative accuracy when ``m`` comes from ``expm1`` where
        :math:`|z|` is small and ``e`` from ``exp`` where it is not, so
        neither is formed by cancellation.
        """
        apply, x = self.arithmetic.apply, -2 * np.abs(z)
        small = np.asarray(np.abs(z) < _EXPM1_BELOW, dtype=bool)
        m, e = np.empty(z.shape, dtype=object), np.empty(z.shape, dtype=object)
        m[small] = apply("expm1", x[small])
        e[small] = 1 + m[small]
        e[~small] = apply("exp", x[~small])
        m[~small] = e[~small] - 1
        magnitude = -m / (1 + e)
        return np.where(z < 0, -magnitude, magnitude), 4 * e / ((1 + e) * (1 + e))

    def _loss(
        self, loss: Loss, A_L: ObjectArray, Y: ObjectArray
    ) -> tuple[ObjectArray, ObjectArray]:
        """Example losses (``B``) and their gradients in ``a_L`` (``B x n_L``)."""
        if loss is Loss.SQUARED_ERROR:
            R = np.asarray(A_L - Y, dtype=object)
            return np.asarray((R * R).sum(axis=1) / 2, dtype=object), R
        apply = self.arithmetic.apply
        losses, gradients = [], []
        for a, y in zip(A_L, Y):
            # log sum exp(a) = a_k + log1p(sum_{i != k} exp(a_i - a_k)), k = argmax.
            k = max(range(len(a)), key=lambda i: a[i])
            e = apply("exp", np.asarray(a - a[k], dtype=object))
            log_sum = apply("log1p", np.asarray([e.sum() - e[k]], dtype=object))[0]
            losses.append((y * ((a[k] - a) + log_sum)).sum())
            gradients.append(e / e.sum() * y.sum() - y)
        return np.asarray(losses, dtype=object), np.asarray(gradients, dtype=object)

    def _backward(
        self,
        W: list[ObjectArray],
        A: list[ObjectArray],
        derivatives: list[ObjectArray],
        G: ObjectArray,
    ) -> tuple[
        list[ObjectArray], list[ObjectArray], list[ObjectArray], list[ObjectArray]
    ]:
        L, B = len(W), G.shape[0]
        upstream: list[ObjectArray] = [G] * L
        deltas: list[ObjectArray] = [G] * L
        weights: list[ObjectArray] = [G] * L
        biases: list[ObjectArray] = [G] * L
        for ell in range(L, 0, -1):
            upstream[ell - 1] = G
            delta = np.asarray(derivatives[ell - 1] * G, dtype=object)
            deltas[ell - 1] = delta
            weights[ell - 1] = np.asarray(delta.T @ A[ell - 1] / B, dtype=object)
            biases[ell - 1] = np.asarray(delta.sum(axis=0) / B, dtype=object)
            if ell > 1:
                G = np.asarray(delta @ W[ell - 1], dtype=object)
        return upstream, deltas, weights, biases


def _rounded(values: ObjectArray) -> FloatArray:
    return np.asarray(values, dtype=object).astype(np.float64)


def batch_bounds(
    network: Network,
    parameters: Parameters,
    exact: BatchExact,
    targets: FloatArray,
    dtype: type[np.floating] = np.float64,
) -> BatchBounds:
    """The bounds of :meth:`BoundCalculator.batch`, all examples at once.

    Same model and formulas (see :mod:`conformance._bounds`), with the
    per-example bounds of the weight gradients averaged by one matrix product.
    """
    u = unit_roundoff(dtype)
    tiny = float(np.finfo(dtype).smallest_subnormal)
    absW = [np.abs(W) for W in parameters.weights]
    Z = [_rounded(z) for z in exact.Z]
    A = [_rounded(a) for a in exact.A]
    E_z, E_a = _forward_bounds(network, parameters, Z, A, u, tiny)

    B = targets.shape[0]
    mean_rounding = float(gamma(B + 1, u))
    loss_bounds, E_g = _loss_bounds(network.loss, A[-1], E_a[-1], targets, u, tiny)
    losses = np.abs(_rounded(exact.losses))
    loss = float(loss_bounds.sum() / B + mean_rounding * losses.mean() + tiny)

    L = network.depth
    weights: list[FloatArray] = [np.empty(0)] * L
    biases: list[FloatArray] = [np.empty(0)] * L
    for ell in range(L, 0, -1):
        activation = network.activations[ell - 1]
        g = np.abs(_rounded(exact.upstream[ell - 1]))
        d = np.abs(float_sigma_prime(activation, Z[ell - 1]))
        curvature = (
            exact.second[ell - 1] + SUP_THIRD.get(activation, 0.0) * E_z[ell - 1]
        )
        e_d = np.minimum(
            curvature * E_z[ell - 1], SUP_FIRST.get(activation, 1.0)
        ) + ACTIVATION_ROUNDINGS * u * _derivative_magnitude(
            activation, Z[ell - 1], A[ell], d
        )
        e_delta = (d + e_d) * E_g + g * e_d + u * (d + e_d) * (g + E_g) + tiny

        delta = np.abs(_rounded(exact.deltas[ell - 1]))
        computed = delta + e_delta
        a_prev, e_prev = np.abs(A[ell - 1]), E_a[ell - 1]
        per_example = (
            e_delta.T @ a_prev
            + computed.T @ e_prev
            + u * computed.T @ (a_prev + e_prev)
        ) / B + tiny
        weights[ell - 1] = per_example + mean_rounding * (delta.T @ a_prev) / B + tiny
        biases[ell - 1] = (
            e_delta.mean(axis=0) + mean_rounding * delta.mean(axis=0) + tiny
        )
        if ell > 1:
            n = network.widths[ell]
            E_g = (
                e_delta @ absW[ell - 1]
                + gamma(n, u) * (computed @ absW[ell - 1])
                + tiny
            )
    return BatchBounds(loss, weights, biases)


def _forward_bounds(
    network: Network,
    parameters: Parameters,
    Z: list[FloatArray],
    A: list[FloatArray],
    u: float,
    tiny: float,
) -> tuple[list[FloatArray], list[FloatArray]]:
    E_a = [np.zeros_like(A[0])]
    E_z: list[FloatArray] = []
    for ell, activation in enumerate(network.activations):
        # z = W a + b: propagated error plus an (n + 1)-term dot product.
        absW, n = np.abs(parameters.weights[ell]), network.widths[ell]
        magnitude = np.abs(A[ell]) @ absW.T + np.abs(parameters.biases[ell])
        E_z.append(E_a[ell] @ absW.T + gamma(n + 1, u) * magnitude + tiny)
        lipschitz = np.minimum(
            SUP_FIRST.get(activation, 1.0),
            np.abs(float_sigma_prime(activation, Z[ell]))
            + SUP_SECOND.get(activation, 0.0) * E_z[-1],
        )
        rounding = (
            ACTIVATION_ROUNDINGS
            * u
            * _rounding_magnitude(activation, Z[ell], A[ell + 1])
        )
        E_a.append(lipschitz * E_z[-1] + rounding + tiny)
    return E_z, E_a


def _loss_bounds(
    loss: Loss, A: FloatArray, E_a: FloatArray, Y: FloatArray, u: float, tiny: float
) -> tuple[FloatArray, FloatArray]:
    """Per-example loss bounds (``B``) and loss-gradient bounds (``B x n_L``)."""
    n = A.shape[1]
    if loss is Loss.SQUARED_ERROR:
        R = np.abs(A - Y)
        terms = R * (E_a + u * (np.abs(A) + np.abs(Y)))
        losses = terms.sum(axis=1) + gamma(n + 1, u) * 0.5 * (R * R).sum(axis=1) + tiny
        return losses, E_a + u * R + tiny
    shifted = A - A.max(axis=1, keepdims=True)
    total = np.exp(shifted).sum(axis=1, keepdims=True)
    P = np.exp(shifted) / total
    lse = np.abs(A.max(axis=1, keepdims=True) + np.log(total))
    s = np.abs(Y.sum(axis=1, keepdims=True))
    extra = gamma(n + LOSS_EXTRA_TERMS, u)
    gradient = np.abs(P * Y.sum(axis=1, keepdims=True) - Y)
    magnitude = (np.abs(Y) * (np.abs(A) + lse + 1.0)).sum(axis=1) + lse[:, 0]
    losses = (gradient * E_a).sum(axis=1) + extra * magnitude + tiny
    spread = -shifted
    P_e = (P * E_a).sum(axis=1, keepdims=True)
    P_spread = (P * spread).sum(axis=1, keepdims=True)
    E_g = (
        s * (P * E_a + P * P_e)
        + u * P * (spread + P_spread) * s
        + extra * (P * s + np.abs(Y))
        + tiny
    )
    return losses, E_g


def compare_batch(
    oracle: BatchedOracle,
    exact: BatchExact,
    bounds: BatchBounds,
    loss: float,
    weights: tuple[FloatArray, ...],
    biases: tuple[FloatArray, ...],
) -> Verification:
    """Every claimed number against its exact value, in units of its bound."""
    claimed = [np.array([loss])] + list(weights) + list(biases)
    expected = (
        [np.asarray([exact.loss], dtype=object)]
        + exact.weight_gradients
        + exact.bias_gradients
    )
    allowed = (
        [np.array([bounds.loss])] + bounds.weight_gradients + bounds.bias_gradients
    )
    worst, compared, violating = 0.0, 0, 0
    with oracle.arithmetic.precision(oracle.digits):
        for values, exact_values, bound in zip(claimed, expected, allowed):
            finite = np.isfinite(values)
            safe = oracle.arithmetic.array(np.where(finite, values, 0.0))
            errors = np.where(finite, _rounded(np.abs(safe - exact_values)), np.inf)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                ratios = np.where(errors == 0.0, 0.0, errors / bound)
            ratios = np.where(np.isnan(ratios), np.inf, ratios)
            worst = max(worst, float(ratios.max()))
            compared += int(ratios.size)
            violating += int(np.count_nonzero(ratios > 1.0))
    return Verification(worst, compared, violating)
