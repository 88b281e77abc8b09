r"""The oracle's arithmetic: a whole batch at once, in high precision.

Every layer is one object-array product over the batch (``A @ W.T``), the
activations are evaluated entry by entry by the number type's own
elementary functions, and the backward pass mirrors the forward one. The
numbers are :mod:`gmpy2`'s ``mpfr`` (arithmetic in C, through MPFR) or
``mpmath.mpf``, the same algorithm about four times slower. A third kind,
python-flint's ``arb`` balls, has its own engine
(:mod:`impl._arb_engine`): the same quantities with the products in C and
a guaranteed enclosure of each exact value.

Parameters and inputs are float64, hence dyadic rationals, and convert
exactly. Each basic operation then rounds to the working precision (30
significant digits by default, 103 bits), so a computed quantity errs by a
few units of :math:`10^{-30}` relative to the magnitudes it combines: some
:math:`10^{14}` times below a float64 rounding.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import mpmath
import numpy as np
import numpy.typing as npt

from spec import Activation, FloatArray, Loss, Network, Parameters
from spec.conventions import ELU_ALPHA, LEAKY_RELU_SLOPE

ObjectArray = npt.NDArray[np.object_]
"""An array of high-precision numbers (``gmpy2.mpfr``, ``mpmath.mpf`` or
``flint.arb``)."""

_EXPM1_BELOW = 0.35
"""Below this :math:`|z|`, :math:`e^{-2|z|} > 1/2`: ``expm1`` gives
:math:`e - 1` without cancellation; above, ``exp`` gives :math:`e` itself."""


@dataclass(frozen=True)
class Arithmetic:
    """A kind of high-precision number and its elementary functions.

    Attributes
    ----------
    name
        ``"arb"``, ``"gmpy2"`` or ``"mpmath"``.
    number
        Exact conversion of a float.
    functions
        ``exp``, ``log1p`` and ``expm1``, one number each.
    precision
        Context manager setting the working precision in decimal digits.
    convert_by_multiplying
        Convert floats by multiplying with an exact one (faster for gmpy2).
    """

    name: str
    number: Callable[[Any], Any]
    functions: dict[str, Callable[[Any], Any]]
    precision: Callable[[int], contextlib.AbstractContextManager[object]]
    convert_by_multiplying: bool = False

    def array(self, values: npt.ArrayLike) -> ObjectArray:
        """Exact conversion of a float array.

        For gmpy2, multiplying by an exact one converts a float about ten
        times faster than calling ``mpfr(float)``, and as exactly.
        """
        floats = np.asarray(values, dtype=np.float64)
        if self.convert_by_multiplying:
            one = np.full(floats.shape, self.number(1.0), dtype=object)
            return np.asarray(one * floats.astype(object), dtype=object)
        return np.asarray(np.frompyfunc(self.number, 1, 1)(floats), dtype=object)

    def apply(self, name: str, values: ObjectArray) -> ObjectArray:
        """An elementary function, entry by entry."""
        return np.asarray(np.frompyfunc(self.functions[name], 1, 1)(values),
                          dtype=object)


@contextlib.contextmanager
def _gmpy2_precision(digits: int) -> Iterator[object]:
    import gmpy2

    bits = int(mpmath.libmp.dps_to_prec(digits))
    with gmpy2.context(gmpy2.get_context(), precision=bits) as context:
        yield context


def gmpy2_arithmetic() -> Arithmetic:
    """``gmpy2.mpfr`` numbers; raises ImportError without gmpy2."""
    import gmpy2

    return Arithmetic("gmpy2", gmpy2.mpfr,
                      {"exp": gmpy2.exp, "log1p": gmpy2.log1p, "expm1": gmpy2.expm1},
                      _gmpy2_precision, convert_by_multiplying=True)


def mpmath_arithmetic() -> Arithmetic:
    """``mpmath.mpf`` numbers."""
    return Arithmetic("mpmath", mpmath.mpf,
                      {"exp": mpmath.exp, "log1p": mpmath.log1p, "expm1": mpmath.expm1},
                      mpmath.workdps)


def arb_arithmetic() -> Arithmetic:
    """python-flint's ``arb`` balls; raises ImportError without python-flint."""
    from impl._arb_engine import arb_arithmetic as arithmetic

    return arithmetic()


def default_arithmetic() -> Arithmetic:
    """The fastest kind that can be imported: arb balls, gmpy2's or mpmath's."""
    for arithmetic in (arb_arithmetic, gmpy2_arithmetic):
        try:
            return arithmetic()
        except ImportError:
            continue
    return mpmath_arithmetic()


def to_mpf(value: Any) -> Any:
    """Exact conversion of a high-precision number to ``mpmath.mpf``.

    ``mpmath.mpf(mpfr)`` would go through a float and lose the extra digits;
    this goes through the mantissa and exponent instead (of the midpoint,
    for an ``arb`` ball). Call it inside ``mpmath.workdps`` of at least the
    number's precision.
    """
    if isinstance(value, mpmath.mpf):
        return value
    as_mantissa_exp = getattr(value, "as_mantissa_exp", None)
    if as_mantissa_exp is None:
        mantissa, exponent = value.mid().man_exp()
    else:
        mantissa, exponent = as_mantissa_exp()
    return mpmath.mpf((int(mantissa), int(exponent)))


def to_mpf_array(values: ObjectArray) -> ObjectArray:
    """:func:`to_mpf` entry by entry, keeping the shape."""
    array = np.asarray(values, dtype=object)
    flat = [to_mpf(v) for v in array.ravel()]
    return np.array(flat + [None], dtype=object)[:-1].reshape(array.shape)


@dataclass(frozen=True)
class BatchArrays:
    r"""A batch's exact quantities, rows being examples.

    ``z[l - 1]``, ``deltas[l - 1]`` and ``upstream[l - 1]`` (the gradient of
    the example loss in :math:`a_\ell`) are ``B x n_l``; ``a[l]`` is
    ``B x n_l`` with ``a[0]`` the inputs; ``second[l - 1]`` holds
    :math:`|\sigma''(z_\ell)|` rounded to float64 (zero at the kinks of the
    piecewise-linear activations). ``losses`` are the example losses, ``loss``
    their mean, and the gradients are batch means.
    """

    z: list[ObjectArray]
    a: list[ObjectArray]
    upstream: list[ObjectArray]
    deltas: list[ObjectArray]
    second: list[FloatArray]
    losses: ObjectArray
    loss: Any
    weight_gradients: list[ObjectArray]
    bias_gradients: list[ObjectArray]


class ExactEngine(Protocol):
    """What the oracle needs of an engine: its precision, numbers and batch."""

    digits: int
    arithmetic: Arithmetic

    def run(self, network: Network, parameters: Parameters, inputs: FloatArray,
            targets: FloatArray) -> BatchArrays:
        """Forward pass, example losses, backward pass and batch means."""
        ...


def make_engine(digits: int, arithmetic: Arithmetic) -> ExactEngine:
    """The engine for ``arithmetic``: ball arithmetic has its own."""
    if arithmetic.name == "arb":
        from impl._arb_engine import ArbBatchEngine

        return ArbBatchEngine(digits, arithmetic)
    return BatchEngine(digits, arithmetic)


class BatchEngine:
    """Exact batch forward and backward pass in one kind of arithmetic.

    Parameters
    ----------
    digits
        Working precision in significant decimal digits.
    arithmetic
        The numbers used; :func:`default_arithmetic` when not given.
    """

    def __init__(self, digits: int, arithmetic: Arithmetic | None = None) -> None:
        self.digits = digits
        self.arithmetic = arithmetic or default_arithmetic()
        number = self.arithmetic.number
        with self.arithmetic.precision(digits):
            self._zero, self._one = number(0.0), number(1.0)
            self._slope, self._alpha = number(LEAKY_RELU_SLOPE), number(ELU_ALPHA)

    def run(self, network: Network, parameters: Parameters, inputs: FloatArray,
            targets: FloatArray) -> BatchArrays:
        """Forward pass, example losses, backward pass and batch means."""
        with self.arithmetic.precision(self.digits):
            W = [self.arithmetic.array(w) for w in parameters.weights]
            b = [self.arithmetic.array(v) for v in parameters.biases]
            Y = self.arithmetic.array(targets)
            Z, A, derivatives, second = self._forward(network, W, b,
                                                      self.arithmetic.array(inputs))
            losses, G = self._loss(network.loss, A[-1], Y)
            upstream, deltas, weights, biases = self._backward(W, A, derivatives, G)
            B = inputs.shape[0]
            return BatchArrays(Z, A, upstream, deltas, second, losses,
                               losses.sum() / B, weights, biases)

    def _forward(self, network: Network, W: list[ObjectArray], b: list[ObjectArray],
                 X: ObjectArray) -> tuple[list[ObjectArray], list[ObjectArray],
                                          list[ObjectArray], list[FloatArray]]:
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

    def _activation(self, activation: Activation, z: ObjectArray) -> \
            tuple[ObjectArray, ObjectArray, ObjectArray]:
        r""":math:`\sigma`, :math:`\sigma'` (the left one at kinks), :math:`\sigma''`."""
        apply, zero, one = self.arithmetic.apply, self._zero, self._one
        positive = z > 0
        zeros = np.full(z.shape, zero, dtype=object)
        if activation is Activation.IDENTITY:
            return z, np.full(z.shape, one, dtype=object), zeros
        if activation in (Activation.SIGMOID, Activation.SOFTPLUS):
            s, d = self._sigmoid(z)
            if activation is Activation.SOFTPLUS:
                # log(1 + e^z) = max(z, 0) + log1p(e^{-|z|}), with no overflow.
                tail = apply("log1p", apply("exp", -np.abs(z)))
                return np.where(positive, z, zero) + tail, s, d
            return s, d, d * (1 - 2 * s)
        if activation is Activation.TANH:
            return self._tanh(z)
        if activation is Activation.RELU:
            return np.where(positive, z, zero), np.where(positive, one, zero), zeros
        if activation is Activation.LEAKY_RELU:
            return (np.where(positive, z, self._slope * z),
                    np.where(positive, one, self._slope), zeros)
        if activation is Activation.ELU:
            negative_part = np.where(positive, zero, z)
            e = apply("exp", negative_part)
            return (np.where(positive, z,
                             self._alpha * apply("expm1", negative_part)),
                    np.where(positive, one, self._alpha * e),
                    np.where(positive, zero, self._alpha * e))
        raise ValueError(f"activation={activation!r} is not an Activation")

    def _sigmoid(self, z: ObjectArray) -> tuple[ObjectArray, ObjectArray]:
        r""":math:`s = 1/(1 + e^{-z})` and :math:`s(1 - s)`, through :math:`e^{-|z|}`.

        With :math:`e = e^{-|z|}`, :math:`s = 1/(1 + e)` for :math:`z \ge 0`
        and :math:`e/(1 + e)` otherwise, and :math:`s(1 - s) = e/(1 + e)^2`:
        nothing overflows and nothing is formed by cancellation.
        """
        e = self.arithmetic.apply("exp", -np.abs(z))
        q = 1 + e
        s = np.where(z >= 0, 1 / q, e / q)
        return np.asarray(s, dtype=object), np.asarray(e / (q * q), dtype=object)

    def _tanh(self, z: ObjectArray) -> tuple[ObjectArray, ObjectArray, ObjectArray]:
        r""":math:`\tanh z`, :math:`\operatorname{sech}^2 z` and
        :math:`\tanh'' z` from one exponential per entry.

        With :math:`e = e^{-2|z|}` and :math:`m = e - 1`,
        :math:`\tanh|z| = -m / (1 + e)` and
        :math:`\operatorname{sech}^2 z = 4e / (1 + e)^2`. Both keep full
        relative accuracy when ``m`` comes from ``expm1`` where :math:`|z|`
        is small and ``e`` from ``exp`` where it is not, so neither is formed
        by cancellation; :math:`\tanh'' = -2 \tanh \cdot \operatorname{sech}^2`.
        """
        functions = self.arithmetic.functions
        exp, expm1 = functions["exp"], functions["expm1"]

        def parts(value: Any) -> tuple[Any, Any, Any]:
            size = abs(value)
            if size < _EXPM1_BELOW:
                m = expm1(-2 * size)
                e = 1 + m
            else:
                e = exp(-2 * size)
                m = e - 1
            q = 1 + e
            t = m / q if value < 0 else -m / q
            d = 4 * e / (q * q)
            return t, d, -2 * t * d

        t, d, dd = np.frompyfunc(parts, 1, 3)(z)
        return (np.asarray(t, dtype=object), np.asarray(d, dtype=object),
                np.asarray(dd, dtype=object))

    def _loss(self, loss: Loss, A_L: ObjectArray, Y: ObjectArray) -> \
            tuple[ObjectArray, ObjectArray]:
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

    def _backward(self, W: list[ObjectArray], A: list[ObjectArray],
                  derivatives: list[ObjectArray], G: ObjectArray) -> \
            tuple[list[ObjectArray], list[ObjectArray], list[ObjectArray],
                  list[ObjectArray]]:
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
