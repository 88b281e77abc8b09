r"""Floating-point error bounds, propagated alongside the computation.

Every tolerance of the suite comes from here; none is picked by hand.

Model
-----
Each basic operation of a float format with unit roundoff :math:`u`
(:math:`2^{-53}` for float64, :math:`2^{-24}` for float32) returns
:math:`\mathrm{fl}(x \circ y) = (x \circ y)(1 + \epsilon)`, :math:`|\epsilon|
\le u`, plus an underflow term below the smallest subnormal. A sum or dot
product of :math:`k` terms computed in any order errs by at most
:math:`\gamma_k \sum |x_i y_i|` with :math:`\gamma_k = k u / (1 - k u)`
(Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1).
An elementary function (``exp``, ``log1p``, ``tanh``, ...) evaluated by a
library within one ulp, then combined by at most two further operations,
errs by at most :data:`ACTIVATION_ROUNDINGS` :math:`\cdot u` relative to the
magnitudes of the terms it combines.

Propagation
-----------
An input error :math:`e` in :math:`v` reaches :math:`f(v)` as
:math:`|f'(v)|\,e` (first order), so each intermediate :math:`v` of the
forward and backward pass carries a bound :math:`\beta_v` built from the
bounds of its operands and its own rounding, evaluated on the exact
intermediates the oracle computed. The result bounds the error of any
implementation that evaluates the textbook formulas in that format, in any
summation order; different but stable formulas stay well inside it. It is a
first-order bound: terms in :math:`u^2` are left out, which is safe while
:math:`\beta_v` is far below the scale on which :math:`f'` changes, and the
suite declares a point not judgeable where it is not (a kink closer than the
error bound).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from impl.oracle import ExactBatch, ExactExample
from spec import (
    Activation,
    ExactArray,
    FloatArray,
    Loss,
    Network,
    Parameters,
    to_float,
)
from spec.conventions import ELU_ALPHA, sigma_second

ACTIVATION_ROUNDINGS = 4
"""Roundings charged to one activation or derivative evaluation: an elementary
function correct to one ulp (two units of :math:`u`) and up to two basic
operations (one unit each)."""

SUP_FIRST = {Activation.SIGMOID: 0.25}
r"""Suprema of :math:`|\sigma'|` over the real line that are not 1 (1 for
identity, tanh, ReLU, leaky ReLU, softplus and ELU with :math:`\alpha = 1`)."""

SUP_SECOND = {Activation.SIGMOID: 0.0963, Activation.TANH: 0.7699,
              Activation.SOFTPLUS: 0.25, Activation.ELU: 1.0}
r"""Upper bounds, rounded up, of :math:`\sup|\sigma''|`: sigmoid
:math:`1/(6\sqrt3)`, tanh :math:`4/(3\sqrt3)`, softplus :math:`1/4`, ELU
:math:`\alpha`; zero for the piecewise-linear ones away from kinks."""

SUP_THIRD = {Activation.SIGMOID: 0.125, Activation.TANH: 2.0,
             Activation.SOFTPLUS: 0.0963, Activation.ELU: 1.0}
r"""Upper bounds of :math:`\sup|\sigma^{(3)}|` (sigmoid :math:`1/8`, tanh 2,
softplus :math:`1/(6\sqrt3)`, ELU :math:`\alpha`). With them the bound on
:math:`|\sigma'(\hat z) - \sigma'(z)|` holds for any error, not only small
ones (mean value theorem), so the propagation is not only first-order."""

LOSS_EXTRA_TERMS = 4
"""Operations a softmax cross-entropy adds beyond its ``n`` exponentials and
sum: the shift, the logarithm, the division and the final subtraction."""


def unit_roundoff(dtype: type[np.floating] | np.dtype[np.floating]) -> float:
    """:math:`u = 2^{-p}` for a format with ``p`` significand bits.

    >>> unit_roundoff(np.float64) == 2.0 ** -53
    True
    """
    return float(np.finfo(dtype).eps) / 2


def gamma(k: int | FloatArray, u: float) -> FloatArray:
    r""":math:`\gamma_k = k u / (1 - k u)`, the bound of a ``k``-term sum's rounding.

    >>> float(gamma(2, 2.0 ** -53)) > 2 * 2.0 ** -53
    True
    """
    k_array = np.asarray(k, dtype=np.float64)
    return np.asarray(k_array * u / (1.0 - k_array * u), dtype=np.float64)


@dataclass(frozen=True)
class ExampleBounds:
    """Bounds for one example.

    Attributes
    ----------
    z
        Per layer, the bound on the error of each pre-activation.
    loss
        The bound on the example loss.
    weight_gradients, bias_gradients
        Per layer, the bound on each entry of the example's gradients.
    """

    z: list[FloatArray]
    loss: float
    weight_gradients: list[FloatArray]
    bias_gradients: list[FloatArray]


@dataclass(frozen=True)
class BatchBounds:
    """Bounds for a batch mean, and the pre-activation bounds of each example.

    Attributes
    ----------
    z
        Per layer, ``B x n_l``: the bound on each example's pre-activations.
    loss
        The bound on the batch loss.
    weight_gradients, bias_gradients
        Per layer, the bound on each entry of the batch-mean gradients.
    """

    z: list[FloatArray]
    loss: float
    weight_gradients: list[FloatArray]
    bias_gradients: list[FloatArray]


def _rounding_magnitude(activation: Activation, z: FloatArray, a: FloatArray) \
        -> FloatArray:
    """Magnitude of the terms a standard formula for sigma(z) combines."""
    if activation in (Activation.IDENTITY, Activation.RELU):
        return np.zeros_like(z)
    if activation is Activation.ELU:
        alpha = float(ELU_ALPHA)
        return np.where(z > 0, 0.0, alpha * (np.exp(np.minimum(z, 0.0)) + 1.0))
    return np.abs(a)


def _derivative_magnitude(activation: Activation, z: FloatArray, a: FloatArray,
                          d: FloatArray) -> FloatArray:
    """Magnitude of the terms a standard formula for sigma'(z) combines.

    Formulas written through the activation's value (``s (1 - s)`` for
    sigmoid, ``1 - t^2`` for tanh, ``elu(z) + alpha``) lose absolute, not
    relative, accuracy where the derivative is small; the magnitudes here
    allow for that, as those formulas are the ones libraries use.
    """
    if activation in (Activation.IDENTITY, Activation.RELU):
        return np.zeros_like(z)
    if activation is Activation.LEAKY_RELU:
        return np.abs(d)
    if activation is Activation.SIGMOID:
        return np.abs(d) + np.abs(a)
    if activation is Activation.TANH:
        return np.abs(d) + a * a
    if activation is Activation.SOFTPLUS:
        return np.abs(d)
    alpha = float(ELU_ALPHA)
    return np.abs(d) + np.where(z > 0, 0.0, alpha)


def _second(activation: Activation, z_exact: ExactArray) -> FloatArray:
    return np.array([abs(float(sigma_second(activation, v))) for v in z_exact],
                    dtype=np.float64)


class BoundCalculator:
    """Computes bounds for one network and parameters in one float format.

    Parameters
    ----------
    network, parameters
        The case judged.
    dtype
        The format the implementation computes in (float64 by default).
    """

    def __init__(self, network: Network, parameters: Parameters,
                 dtype: type[np.floating] = np.float64) -> None:
        self.network = network
        self.absW = [np.abs(W) for W in parameters.weights]
        self.absb = [np.abs(b) for b in parameters.biases]
        self.u = unit_roundoff(dtype)
        self.tiny = float(np.finfo(dtype).smallest_subnormal)
        self.c = ACTIVATION_ROUNDINGS * self.u

    def example(self, exact: ExactExample, y: FloatArray) -> ExampleBounds:
        """Bounds of one example's loss and gradients."""
        z = [to_float(v) for v in exact.forward.z]
        a = [to_float(v) for v in exact.forward.a]
        e_z, e_a = self._forward(z, a)
        loss_bound = self._loss(a[-1], e_a[-1], y)
        weights, biases = self._backward(exact, z, a, e_z, e_a,
                                         self._loss_gradient(a[-1], e_a[-1], y))
        return ExampleBounds(e_z, loss_bound, weights, biases)

    def _forward(self, z: list[FloatArray], a: list[FloatArray]) -> \
            tuple[list[FloatArray], list[FloatArray]]:
        """Bounds of one example's pre-activations and activations, per layer."""
        e_z, e_a, _ = self._forward_batch([v[None, :] for v in z],
                                          [v[None, :] for v in a])
        return [e[0] for e in e_z], [e[0] for e in e_a]

    def _loss(self, a: FloatArray, e_a: FloatArray, y: FloatArray) -> float:
        n = a.size
        if self.network.loss is Loss.SQUARED_ERROR:
            r = np.abs(a - y)
            terms = r * (e_a + self.u * (np.abs(a) + np.abs(y)))
            return float(terms.sum() + gamma(n + 1, self.u) * 0.5 * (r * r).sum()
                         + self.tiny)
        p, lse = _softmax(a)
        gradient = np.abs(p * y.sum() - y)
        magnitude = np.abs(y) @ (np.abs(a) + abs(lse) + 1.0) + abs(lse)
        return float(gradient @ e_a + gamma(n + LOSS_EXTRA_TERMS, self.u) * magnitude
                     + self.tiny)

    def _loss_gradient(self, a: FloatArray, e_a: FloatArray, y: FloatArray) -> \
            FloatArray:
        if self.network.loss is Loss.SQUARED_ERROR:
            return np.asarray(e_a + self.u * np.abs(a - y) + self.tiny)
        # g = p sum(y) - y, p = softmax(a): |J_p| e_a plus p's own rounding,
        # including the shift a - max(a), whose error exp magnifies.
        n = a.size
        p, _ = _softmax(a)
        s = abs(float(y.sum()))
        spread = np.abs(a - a.max())
        propagated = s * (p * e_a + p * (p @ e_a))
        shift = self.u * p * (spread + p @ spread) * s
        own = gamma(n + LOSS_EXTRA_TERMS, self.u) * (p * s + np.abs(y))
        return np.asarray(propagated + shift + own + self.tiny)

    def _backward(self, exact: ExactExample, z: list[FloatArray],
                  a: list[FloatArray], e_z: list[FloatArray],
                  e_a: list[FloatArray], e_g: FloatArray) -> \
            tuple[list[FloatArray], list[FloatArray]]:
        L = self.network.depth
        g = np.abs(to_float(exact.upstream[L - 1]))
        weights: list[FloatArray] = [np.empty(0)] * L
        biases: list[FloatArray] = [np.empty(0)] * L
        for ell in range(L, 0, -1):
            e_delta = self._delta(ell, exact, z, a, e_z, g, e_g)
            delta = np.abs(to_float(exact.deltas[ell - 1]))
            computed = delta + e_delta
            weights[ell - 1] = (np.outer(e_delta, np.abs(a[ell - 1]))
                                + np.outer(computed, e_a[ell - 1])
                                + self.u * np.outer(computed,
                                                    np.abs(a[ell - 1]) + e_a[ell - 1])
                                + self.tiny)
            biases[ell - 1] = e_delta
            if ell > 1:
                # g_{l-1} = W_l^T delta_l: an n_l-term dot product per entry.
                n = self.network.widths[ell]
                e_g = (self.absW[ell - 1].T @ e_delta
                       + gamma(n, self.u) * (self.absW[ell - 1].T @ computed)
                       + self.tiny)
                g = np.abs(to_float(exact.upstream[ell - 2]))
        return weights, biases

    def _delta(self, ell: int, exact: ExactExample, z: list[FloatArray],
               a: list[FloatArray], e_z: list[FloatArray], g: FloatArray,
               e_g: FloatArray) -> FloatArray:
        """Bound of delta_l = sigma'(z_l) * g_l, for errors of any size."""
        activation = self.network.activations[ell - 1]
        d = _abs_prime(activation, z[ell - 1])
        e_d = self._derivative_error(activation, exact.forward.z[ell - 1],
                                     z[ell - 1], a[ell], d, e_z[ell - 1])
        return np.asarray((d + e_d) * e_g + g * e_d + self.u * (d + e_d) * (g + e_g)
                          + self.tiny)

    def _derivative_error(self, activation: Activation, z_exact: ExactArray,
                          z: FloatArray, a: FloatArray, d: FloatArray,
                          e_z: FloatArray) -> FloatArray:
        """Bound of the change of sigma' over the error of z, plus its rounding."""
        curvature = _second(activation, z_exact) + SUP_THIRD.get(activation, 0.0) * e_z
        moved = np.minimum(curvature * e_z, SUP_FIRST.get(activation, 1.0))
        return np.asarray(moved + self.c * _derivative_magnitude(activation, z, a, d))

    def batch(self, exact: ExactBatch, targets: FloatArray) -> BatchBounds:
        """Bounds of a batch mean, every example at once.

        The same model and formulas as :meth:`example`, evaluated on
        ``B x n`` arrays: each example's bounds, then their mean plus the
        rounding of the mean itself (a ``B + 1``-term sum and a division).
        """
        rounded, u, tiny = exact.rounded, self.u, self.tiny
        Z, A = rounded.z, rounded.a
        E_z, E_a, D = self._forward_batch(Z, A)
        B = int(targets.shape[0])
        mean_rounding = float(gamma(B + 1, u))
        loss_bounds, E_g = self._loss_batch(A[-1], E_a[-1], np.asarray(targets))
        loss = float(loss_bounds.sum() / B
                     + mean_rounding * float(np.abs(rounded.losses).mean()) + tiny)

        L = self.network.depth
        weights: list[FloatArray] = [np.empty(0)] * L
        biases: list[FloatArray] = [np.empty(0)] * L
        for ell in range(L, 0, -1):
            activation = self.network.activations[ell - 1]
            g = np.abs(rounded.upstream[ell - 1])
            d = D[ell - 1]
            curvature = (rounded.second[ell - 1]
                         + SUP_THIRD.get(activation, 0.0) * E_z[ell - 1])
            e_d = (np.minimum(curvature * E_z[ell - 1], SUP_FIRST.get(activation, 1.0))
                   + self.c * _derivative_magnitude(activation, Z[ell - 1], A[ell], d))
            e_delta = (d + e_d) * E_g + g * e_d + u * (d + e_d) * (g + E_g) + tiny
            delta = np.abs(rounded.deltas[ell - 1])
            computed = delta + e_delta
            a_prev, e_prev = np.abs(A[ell - 1]), E_a[ell - 1]
            per_example = (e_delta.T @ a_prev + computed.T @ e_prev
                           + u * (computed.T @ (a_prev + e_prev))) / B + tiny
            weights[ell - 1] = (per_example + mean_rounding * (delta.T @ a_prev) / B
                                + tiny)
            biases[ell - 1] = ((e_delta.sum(axis=0)
                                + mean_rounding * delta.sum(axis=0)) / B + tiny)
            if ell > 1:
                # g_{l-1} = W_l^T delta_l: an n_l-term dot product per entry.
                n = self.network.widths[ell]
                E_g = (e_delta @ self.absW[ell - 1]
                       + gamma(n, u) * (computed @ self.absW[ell - 1]) + tiny)
        return BatchBounds(E_z, loss, weights, biases)

    def _forward_batch(self, Z: list[FloatArray], A: list[FloatArray]) -> \
            tuple[list[FloatArray], list[FloatArray], list[FloatArray]]:
        """Bounds of every example's pre-activations and activations (``B x n``),
        and :math:`|\\sigma'(z)|` at the rounded pre-activations, which the
        backward bounds use again."""
        E_a = [np.zeros_like(A[0])]
        E_z: list[FloatArray] = []
        D: list[FloatArray] = []
        for ell, activation in enumerate(self.network.activations):
            n = self.network.widths[ell]
            magnitude = np.abs(A[ell]) @ self.absW[ell].T + self.absb[ell]
            E_z.append(E_a[ell] @ self.absW[ell].T + gamma(n + 1, self.u) * magnitude
                       + self.tiny)
            D.append(_abs_prime(activation, Z[ell]))
            lipschitz = np.minimum(SUP_FIRST.get(activation, 1.0),
                                   D[-1] + SUP_SECOND.get(activation, 0.0) * E_z[-1])
            rounding = self.c * _rounding_magnitude(activation, Z[ell], A[ell + 1])
            E_a.append(lipschitz * E_z[-1] + rounding + self.tiny)
        return E_z, E_a, D

    def _loss_batch(self, A: FloatArray, E_a: FloatArray, Y: FloatArray) -> \
            tuple[FloatArray, FloatArray]:
        """:meth:`_loss` and :meth:`_loss_gradient` for ``B x n_L`` arrays."""
        u, tiny, n = self.u, self.tiny, A.shape[1]
        if self.network.loss is Loss.SQUARED_ERROR:
            R = np.abs(A - Y)
            terms = R * (E_a + u * (np.abs(A) + np.abs(Y)))
            losses = terms.sum(axis=1) + gamma(n + 1, u) * 0.5 * (R * R).sum(axis=1)
            return losses + tiny, E_a + u * R + tiny
        shifted = A - A.max(axis=1, keepdims=True)
        exponentials = np.exp(shifted)
        total = exponentials.sum(axis=1, keepdims=True)
        P = exponentials / total
        lse = np.abs(A.max(axis=1, keepdims=True) + np.log(total))
        sums = Y.sum(axis=1, keepdims=True)
        s = np.abs(sums)
        extra = gamma(n + LOSS_EXTRA_TERMS, u)
        gradient = np.abs(P * sums - Y)
        magnitude = (np.abs(Y) * (np.abs(A) + lse + 1.0)).sum(axis=1) + lse[:, 0]
        losses = (gradient * E_a).sum(axis=1) + extra * magnitude + tiny
        spread = -shifted
        propagated = s * (P * E_a + P * (P * E_a).sum(axis=1, keepdims=True))
        shift = u * P * (spread + (P * spread).sum(axis=1, keepdims=True)) * s
        own = extra * (P * s + np.abs(Y))
        return losses, propagated + shift + own + tiny

    def input_jacobian(self, exact: ExactExample) -> FloatArray:
        r"""Bound of each entry of the ``n_L x n_0`` Jacobian of :math:`x\mapsto a_L`.

        Row :math:`i` is a reverse sweep started from the exact unit
        cotangent :math:`e_i`, so it is bounded like a gradient whose loss
        gradient is exact. Forward mode forms the same products in another
        order; the bound, a sum of magnitudes, does not depend on the order.
        """
        return self.jacobian_rows(exact)[0]

    def product_bounds(self, exact: ExactExample, J: ExactArray, u: FloatArray,
                       v: FloatArray) -> tuple[FloatArray, FloatArray]:
        r"""Bounds of each entry of :math:`Jv` (``n_L``) and :math:`u^\top J` (``n_0``).

        A product is bounded like the Jacobian entries it sums plus the
        rounding of that sum: :math:`\beta_J |v| + \gamma_{n_0+1}|J||v|`,
        and :math:`|u| \beta_J + \gamma_{n_L+1}|u||J|`, with :math:`\beta_J`
        the bound of each Jacobian entry (:meth:`input_jacobian`). A backend
        that never forms :math:`J` sums the same terms in another order, which
        the bound, a sum of magnitudes, does not depend on.
        """
        bound = self.input_jacobian(exact)
        absJ = np.abs(to_float(J))
        gamma_in = float(gamma(self.network.widths[0] + 1, self.u))
        gamma_out = float(gamma(self.network.widths[-1] + 1, self.u))
        jvp = bound @ np.abs(v) + gamma_in * (absJ @ np.abs(v))
        vjp = np.abs(u) @ bound + gamma_out * (np.abs(u) @ absJ)
        return np.asarray(jvp), np.asarray(vjp)

    def adjoint_bound(self, u: FloatArray, v: FloatArray, jvp: FloatArray,
                      vjp: FloatArray, jvp_bound: FloatArray,
                      vjp_bound: FloatArray) -> float:
        r"""Bound of :math:`\langle u, \widehat{Jv}\rangle - \langle
        \widehat{J^\top u}, v\rangle`, which is exactly zero for exact products.

        Each inner product carries its factor's error and the rounding of
        its own sum (the returned products' magnitudes, as computed).
        """
        gamma_in = float(gamma(self.network.widths[0] + 1, self.u))
        gamma_out = float(gamma(self.network.widths[-1] + 1, self.u))
        return float(np.abs(u) @ jvp_bound + vjp_bound @ np.abs(v)
                     + gamma_out * (np.abs(u) @ np.abs(jvp))
                     + gamma_in * (np.abs(vjp) @ np.abs(v)))

    def parameter_jacobian(self, exact: ExactExample) -> FloatArray:
        r"""Bound of each entry of the ``n_L x P`` Jacobian in the parameters.

        Columns in the order :math:`\operatorname{vec}W_1, b_1, \dots`.
        """
        return self.jacobian_rows(exact)[1]

    def jacobian_rows(self, exact: ExactExample) -> tuple[FloatArray, FloatArray]:
        """Bounds of the input and parameter Jacobians, one sweep per output."""
        z = [to_float(v) for v in exact.forward.z]
        a = [to_float(v) for v in exact.forward.a]
        e_z, e_a = self._forward(z, a)
        input_rows, parameter_rows = [], []
        for i in range(self.network.widths[-1]):
            row_x, row_theta = self._sweep(i, z, a, e_z, e_a, exact)
            input_rows.append(row_x)
            parameter_rows.append(row_theta)
        return np.array(input_rows), np.array(parameter_rows)

    def _sweep(self, i: int, z: list[FloatArray], a: list[FloatArray],
               e_z: list[FloatArray], e_a: list[FloatArray],
               exact: ExactExample) -> tuple[FloatArray, FloatArray]:
        L = self.network.depth
        g = np.zeros(self.network.widths[-1])
        g[i] = 1.0
        e_g = np.zeros_like(g)
        blocks: list[FloatArray] = []
        for ell in range(L, 0, -1):
            activation = self.network.activations[ell - 1]
            d = _abs_prime(activation, z[ell - 1])
            e_d = self._derivative_error(activation, exact.forward.z[ell - 1],
                                         z[ell - 1], a[ell], d, e_z[ell - 1])
            e_delta = ((d + e_d) * e_g + g * e_d + self.u * (d + e_d) * (g + e_g)
                       + self.tiny)
            computed = d * g + e_delta
            a_prev = np.abs(a[ell - 1])
            e_W = (np.outer(e_delta, a_prev) + np.outer(computed, e_a[ell - 1])
                   + self.u * np.outer(computed, a_prev + e_a[ell - 1]) + self.tiny)
            blocks = [e_W.reshape(-1, order="F"), e_delta] + blocks
            n = self.network.widths[ell]
            e_g = (self.absW[ell - 1].T @ e_delta
                   + gamma(n, self.u) * (self.absW[ell - 1].T @ computed) + self.tiny)
            g = self.absW[ell - 1].T @ (d * g)
        return np.asarray(e_g, dtype=np.float64), np.concatenate(blocks)

    def layer_jacobians(self, exact: ExactExample) -> list[FloatArray]:
        r"""Bounds of each layer's Jacobian :math:`\operatorname{diag}(\sigma'(z))W`.

        The layer's input is itself computed, so :math:`z` carries its
        forward error into :math:`\sigma'`; the product adds one rounding.
        """
        z = [to_float(v) for v in exact.forward.z]
        a = [to_float(v) for v in exact.forward.a]
        e_z, _ = self._forward(z, a)
        bounds = []
        for ell, activation in enumerate(self.network.activations, start=1):
            d = _abs_prime(activation, z[ell - 1])
            e_d = self._derivative_error(activation, exact.forward.z[ell - 1],
                                         z[ell - 1], a[ell], d, e_z[ell - 1])
            absW = self.absW[ell - 1]
            bounds.append(e_d[:, None] * absW + self.u * (d + e_d)[:, None] * absW
                          + self.tiny)
        return bounds


def _abs_prime(activation: Activation, z: FloatArray) -> FloatArray:
    from impl import _numeric

    return np.abs(_numeric.sigma_prime(activation, z))


def _softmax(a: FloatArray) -> tuple[FloatArray, float]:
    shifted = a - a.max()
    total = np.exp(shifted).sum()
    return np.exp(shifted) / total, float(a.max() + np.log(total))
