r"""The ``mpmath`` backend: the oracle every comparison is made against.

Parameters and inputs are float64, hence exact dyadic rationals; the oracle
converts them without rounding and evaluates the network, the loss and the
backpropagation recursion of :mod:`spec.backprop` in ``digits`` significant
decimal digits (30 by default), for the whole batch at once (see
:mod:`impl._exact_engine`): in Arb ball arithmetic when python-flint is
installed, as it is with this package, else in gmpy2's or mpmath's numbers.
Its float64 answers are the exact values rounded once. Tests check it against high-precision central differences (the
definition of the derivative) and against the explicit Jacobian product.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import mpmath
import numpy as np

from impl._exact_engine import (
    BatchArrays,
    ExactEngine,
    ObjectArray,
    arb_arithmetic,
    default_arithmetic,
    gmpy2_arithmetic,
    make_engine,
    mpmath_arithmetic,
    to_mpf,
    to_mpf_array,
)
from impl._protocol import Capability
from spec import (
    ExactArray,
    FloatArray,
    LossAndGradients,
    Network,
    Parameters,
    SplitExact,
    split_exact,
    to_exact,
    to_float,
)
from spec.conventions import ExactForward, forward_exact, sigma_prime
from spec.errors import UsageError

logger = logging.getLogger(__name__)

DEFAULT_DIGITS = 30
"""Significant decimal digits of the oracle: float64 carries about 16, so the
oracle's own rounding is :math:`10^{-14}` times smaller than a float64 ulp."""


@dataclass(frozen=True)
class ExactExample:
    """One example's exact forward pass and gradients, in ``mpmath.mpf``."""

    forward: ExactForward
    deltas: list[ExactArray]
    weight_gradients: list[ExactArray]
    bias_gradients: list[ExactArray]
    upstream: list[ExactArray]
    """``upstream[l - 1]`` is the exact gradient of the loss in ``a_l``."""


@dataclass(frozen=True)
class RoundedBatch:
    r"""The exact intermediates of a batch, each rounded once to float64.

    ``z[l - 1]``, ``deltas[l - 1]`` and ``upstream[l - 1]`` are ``B x n_l``;
    ``a[l]`` is ``B x n_l``, ``a[0]`` the inputs; ``second[l - 1]`` holds
    :math:`|\sigma''(z_\ell)|`; ``losses`` the example losses.
    """

    z: list[FloatArray]
    a: list[FloatArray]
    upstream: list[FloatArray]
    deltas: list[FloatArray]
    second: list[FloatArray]
    losses: FloatArray


@dataclass(frozen=True)
class SplitGradients:
    """The batch loss and mean gradients as :class:`spec.SplitExact` pairs."""

    loss: SplitExact
    weight_gradients: list[SplitExact]
    bias_gradients: list[SplitExact]


@dataclass(frozen=True)
class ExactBatch:
    """A batch's exact quantities: the whole batch, per example, and the means.

    The oracle computes everything once, for the whole batch, in its own
    high-precision numbers (:mod:`impl._exact_engine`); the views below
    convert on first use and are then kept. ``loss``, ``weight_gradients``,
    ``bias_gradients`` and ``examples`` hold ``mpmath.mpf`` values, as the
    predicates of :mod:`spec` expect; ``rounded`` and ``split`` are float64
    arrays for the error bounds and for :func:`spec.compare`.
    """

    network: Network
    arrays: BatchArrays = field(repr=False)
    engine: ExactEngine = field(repr=False, compare=False)

    @property
    def batch_size(self) -> int:
        """Examples in the batch."""
        return int(self.arrays.a[0].shape[0])

    @cached_property
    def loss(self) -> Any:
        """The batch loss, the mean of the example losses."""
        with mpmath.workdps(self.engine.digits):
            return to_mpf(self.arrays.loss)

    @cached_property
    def weight_gradients(self) -> list[ExactArray]:
        r"""Per layer, the batch-mean gradient in :math:`W_\ell`."""
        with mpmath.workdps(self.engine.digits):
            return [to_mpf_array(g) for g in self.arrays.weight_gradients]

    @cached_property
    def bias_gradients(self) -> list[ExactArray]:
        r"""Per layer, the batch-mean gradient in :math:`b_\ell`."""
        with mpmath.workdps(self.engine.digits):
            return [to_mpf_array(g) for g in self.arrays.bias_gradients]

    @cached_property
    def split(self) -> SplitGradients:
        """The loss and mean gradients split for :func:`spec.compare`."""
        arrays = self.arrays
        parts = [np.asarray([arrays.loss], dtype=object), *arrays.weight_gradients,
                 *arrays.bias_gradients]
        # One split of every entry at once, then each part as a view of it.
        with self.engine.arithmetic.precision(self.engine.digits):
            together = split_exact(np.concatenate([p.ravel() for p in parts]))
        pieces: list[SplitExact] = []
        start = 0
        for part in parts:
            stop = start + part.size
            pieces.append(SplitExact(together.hi[start:stop].reshape(part.shape),
                                     together.lo[start:stop].reshape(part.shape)))
            start = stop
        L = len(arrays.weight_gradients)
        return SplitGradients(pieces[0], pieces[1:L + 1], pieces[L + 1:])

    @cached_property
    def rounded(self) -> RoundedBatch:
        """Every intermediate rounded once to float64."""
        arrays = self.arrays
        return RoundedBatch([_rounded(z) for z in arrays.z],
                            [_rounded(a) for a in arrays.a],
                            [_rounded(g) for g in arrays.upstream],
                            [_rounded(d) for d in arrays.deltas],
                            arrays.second, _rounded(arrays.losses))

    @cached_property
    def examples(self) -> list[ExactExample]:
        """Each example's exact quantities, in ``mpmath.mpf``."""
        arrays, L = self.arrays, self.network.depth
        with mpmath.workdps(self.engine.digits):
            z = [to_mpf_array(v) for v in arrays.z]
            a = [to_mpf_array(v) for v in arrays.a]
            deltas = [to_mpf_array(v) for v in arrays.deltas]
            upstream = [to_mpf_array(v) for v in arrays.upstream]
            losses = to_mpf_array(arrays.losses)
            examples = []
            for k in range(self.batch_size):
                forward = ExactForward(tuple(v[k] for v in z), tuple(v[k] for v in a),
                                       losses[k])
                example_deltas = [d[k] for d in deltas]
                weight_gradients = [np.asarray(np.outer(example_deltas[ell], a[ell][k]),
                                               dtype=object) for ell in range(L)]
                examples.append(ExactExample(forward, example_deltas, weight_gradients,
                                             list(example_deltas),
                                             [g[k] for g in upstream]))
        return examples


def _rounded(values: ObjectArray) -> FloatArray:
    return np.asarray(values, dtype=object).astype(np.float64)


@dataclass
class MpmathBackend:
    """High-precision backpropagation: the oracle.

    Parameters
    ----------
    digits
        Working precision in significant decimal digits, at least 20.
    arithmetic
        ``"arb"`` (python-flint's balls, each enclosing its exact value),
        ``"gmpy2"`` or ``"mpmath"`` numbers. By default the first of these
        whose library is installed: all three give the same values, arb's
        fastest and with a guarantee, mpmath's slowest.
    """

    digits: int = DEFAULT_DIGITS
    name: str = "mpmath"
    capabilities: frozenset[Capability] = field(
        default=frozenset({Capability.INPUT_JACOBIAN, Capability.PARAMETER_JACOBIAN,
                           Capability.VJP, Capability.JVP,
                           Capability.LAYER_JACOBIANS}), repr=False)
    arithmetic: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.digits, int) or self.digits < 20:
            raise UsageError(f"digits={self.digits!r}: the oracle needs an integer "
                             "of at least 20 significant digits")
        choices = {"arb": arb_arithmetic, "gmpy2": gmpy2_arithmetic,
                   "mpmath": mpmath_arithmetic}
        if self.arithmetic is not None and self.arithmetic not in choices:
            raise UsageError(f"arithmetic={self.arithmetic!r}: choose 'arb', "
                             "'gmpy2' or 'mpmath' (or leave it out for the "
                             "default)")
        chosen = (choices[self.arithmetic]() if self.arithmetic is not None
                  else default_arithmetic())
        self._engine = make_engine(self.digits, chosen)

    @property
    def number_type(self) -> str:
        """The oracle's numbers: ``"arb"``, ``"gmpy2"`` or ``"mpmath"``."""
        return self._engine.arithmetic.name

    def exact(self, network: Network, parameters: Parameters, inputs: FloatArray,
              targets: FloatArray) -> ExactBatch:
        """Everything the suite compares against, in exact arithmetic."""
        arrays = self._engine.run(network, parameters, np.asarray(inputs, np.float64),
                                  np.asarray(targets, np.float64))
        return ExactBatch(network, arrays, self._engine)

    def loss_and_gradients(self, network: Network, parameters: Parameters,
                           inputs: FloatArray, targets: FloatArray) -> \
            LossAndGradients:
        """The exact batch loss and gradients, each rounded once to float64."""
        split = self.exact(network, parameters, inputs, targets).split
        return LossAndGradients(
            float(split.loss.hi[0]),
            Parameters(tuple(g.hi for g in split.weight_gradients),
                       tuple(g.hi for g in split.bias_gradients)))

    def exact_input_jacobian(self, network: Network, parameters: Parameters,
                             x: FloatArray) -> ExactArray:
        r"""Exact ``n_L x n_0`` Jacobian of :math:`x \mapsto a_L`."""
        with mpmath.workdps(self.digits):
            W = [to_exact(w) for w in parameters.weights]
            forward = self._forward_only(network, parameters, x)
            J = np.eye(network.widths[-1], dtype=object) * mpmath.mpf(1)
            for ell in range(network.depth, 0, -1):
                D = [sigma_prime(network.activations[ell - 1], v)
                     for v in forward.z[ell - 1]]
                J = (J * np.array(D, dtype=object)[None, :]).dot(W[ell - 1])
        return np.asarray(J, dtype=object)

    def exact_parameter_jacobian(self, network: Network, parameters: Parameters,
                                 x: FloatArray) -> ExactArray:
        r"""Exact ``n_L x P`` Jacobian, columns :math:`\operatorname{vec}W_1, b_1,\dots`."""
        with mpmath.workdps(self.digits):
            W = [to_exact(w) for w in parameters.weights]
            forward = self._forward_only(network, parameters, x)
            G = np.eye(network.widths[-1], dtype=object) * mpmath.mpf(1)
            blocks: list[ExactArray] = []
            for ell in range(network.depth, 0, -1):
                D = [sigma_prime(network.activations[ell - 1], v)
                     for v in forward.z[ell - 1]]
                delta = G * np.array(D, dtype=object)[None, :]
                blocks = [np.kron(forward.a[ell - 1][None, :], delta), delta] + blocks
                G = delta.dot(W[ell - 1])
        return np.concatenate(blocks, axis=1)

    def _forward_only(self, network: Network, parameters: Parameters,
                      x: FloatArray) -> ExactForward:
        zeros = np.zeros(network.widths[-1])
        return forward_exact(network, [to_exact(w) for w in parameters.weights],
                             [to_exact(v) for v in parameters.biases],
                             to_exact(x), to_exact(zeros))

    def layer_jacobians(self, network: Network, parameters: Parameters,
                        x: FloatArray) -> list[FloatArray]:
        r"""Each layer's :math:`\operatorname{diag}(\sigma'(z_\ell)) W_\ell`, rounded."""
        with mpmath.workdps(self.digits):
            forward = self._forward_only(network, parameters, x)
            return [to_float(np.array([[sigma_prime(activation, zi) * wij for wij in row]
                                       for zi, row in zip(z, to_exact(W))],
                                      dtype=object))
                    for activation, z, W in zip(network.activations, forward.z,
                                                parameters.weights)]

    def input_jacobian(self, network: Network, parameters: Parameters,
                       x: FloatArray) -> FloatArray:
        """The exact input Jacobian rounded to float64."""
        return to_float(self.exact_input_jacobian(network, parameters, x))

    def parameter_jacobian(self, network: Network, parameters: Parameters,
                           x: FloatArray) -> FloatArray:
        """The exact parameter Jacobian rounded to float64."""
        return to_float(self.exact_parameter_jacobian(network, parameters, x))

    def vjp(self, network: Network, parameters: Parameters, x: FloatArray,
            u: FloatArray) -> FloatArray:
        r""":math:`u^\top J_x`, exact then rounded."""
        J = self.exact_input_jacobian(network, parameters, x)
        with mpmath.workdps(self.digits):
            return to_float(to_exact(u).dot(J))

    def jvp(self, network: Network, parameters: Parameters, x: FloatArray,
            v: FloatArray) -> FloatArray:
        r""":math:`J_x v`, exact then rounded."""
        J = self.exact_input_jacobian(network, parameters, x)
        with mpmath.workdps(self.digits):
            return to_float(J.dot(to_exact(v)))
