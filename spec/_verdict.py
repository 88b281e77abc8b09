r"""Verdicts, results and the exact comparison every predicate shares.

A predicate in :mod:`spec` never raises to report that a statement fails: it
returns a :data:`Verdict`, one of

* :class:`Holds`: the claimed quantity agrees with the statement, with the
  worst error measured in units of the allowed bound;
* :class:`Violated`: the worst disagreement, where it is (layer, parameter,
  index, example), the expected and the returned value and the bound;
* :class:`NotApplicable`: a hypothesis of the statement fails at this point
  (for example a ReLU evaluated exactly at its kink), so nothing is judged.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeAlias

import mpmath
import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

FloatArray: TypeAlias = npt.NDArray[np.float64]
"""A float64 array as a backend returns it."""

ExactArray: TypeAlias = npt.NDArray[np.object_]
"""An array of :class:`mpmath.mpf` values, exact to the working precision."""


@dataclass(frozen=True)
class Location:
    """Where in a network a compared number lives.

    Attributes
    ----------
    quantity
        What was compared: ``"loss"``, ``"weight_gradient"``,
        ``"bias_gradient"``, ``"input_jacobian"``, ...
    layer_index
        1-based layer :math:`\\ell` of the paper, or ``None`` when the quantity
        belongs to no single layer (the loss).
    index
        The entry within that quantity, in the array's own shape.
    example_index
        The row of the batch, when the quantity is per example.
    """

    quantity: str
    layer_index: int | None = None
    index: tuple[int, ...] = ()
    example_index: int | None = None

    def describe(self) -> str:
        """Return a short human description, e.g. ``weight_gradient W_2[0, 1]``."""
        parts = [self.quantity]
        if self.layer_index is not None:
            symbol = {"weight_gradient": "W", "bias_gradient": "b"}.get(
                self.quantity, "layer "
            )
            parts.append(f"{symbol}{'_' if symbol != 'layer ' else ''}"
                         f"{self.layer_index}")
        if self.index:
            parts[-1] += "[" + ", ".join(str(i) for i in self.index) + "]"
        if self.example_index is not None:
            parts.append(f"(example {self.example_index})")
        return " ".join(parts)


@dataclass(frozen=True)
class Holds:
    """The statement holds at this point.

    Attributes
    ----------
    result_id
        Stable id of the result judged.
    worst_error_in_bounds
        Largest ``|claimed - exact| / bound`` over the compared entries; at
        most 1 by definition of holding.
    compared
        How many numbers were compared.
    """

    result_id: str
    worst_error_in_bounds: float
    compared: int
    detail: str = ""


@dataclass(frozen=True)
class Violated:
    """The statement fails at this point.

    Attributes
    ----------
    result_id
        Stable id of the result judged.
    location
        The entry with the largest error relative to its bound.
    expected, actual
        The exact value (rounded to float for display) and the claimed one.
    absolute_error, bound
        ``|actual - expected|`` and the allowed bound at ``location``.
    worst_error_in_bounds
        ``absolute_error / bound`` (``inf`` when the bound is zero).
    violating
        How many entries exceed their bound, out of ``compared``.
    """

    result_id: str
    location: Location
    expected: float
    actual: float
    absolute_error: float
    bound: float
    worst_error_in_bounds: float
    violating: int
    compared: int
    detail: str = ""

    def describe(self) -> str:
        """Return the one-paragraph diagnosis printed in reports."""
        text = (
            f"{self.result_id}: {self.location.describe()} expected "
            f"{self.expected!r}, got {self.actual!r} (|error| = "
            f"{self.absolute_error:.3e}, allowed {self.bound:.3e}, "
            f"{_units(self.worst_error_in_bounds)} bounds); "
            f"{self.violating} of {self.compared} compared entries exceed "
            "their bound."
        )
        return f"{text} {self.detail}".strip()


@dataclass(frozen=True)
class NotApplicable:
    """A hypothesis of the statement fails here, so nothing is judged.

    Attributes
    ----------
    result_id
        Stable id of the result.
    reason
        Which hypothesis fails and where, in words.
    convention
        What the claimed value corresponds to at that point, when it can be
        recognised (e.g. ``"relu'(0) = 0"``); reported, never failed.
    """

    result_id: str
    reason: str
    convention: str = ""


Verdict: TypeAlias = Holds | Violated | NotApplicable


EXACT_DIGITS = 30
"""Least working precision of every predicate, in significant decimal digits:
float64 carries about 16, so exact values computed at 30 digits are far closer
to the truth than any float64 bound can resolve."""

P = ParamSpec("P")


def at_exact_precision(predicate: Callable[P, Verdict]) -> Callable[P, Verdict]:
    """Run ``predicate`` with at least :data:`EXACT_DIGITS` digits of mpmath.

    A predicate's exact values must not depend on the precision its caller
    happens to have set (mpmath's default is 15 digits).
    """
    @functools.wraps(predicate)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Verdict:
        with mpmath.workdps(max(mpmath.mp.dps, EXACT_DIGITS)):
            return predicate(*args, **kwargs)
    return wrapper


def _units(ratio: float) -> str:
    return "inf" if ratio == float("inf") else f"{ratio:.3g}"


@dataclass(frozen=True)
class Result:
    r"""One definition, lemma or theorem of the paper as an executable object.

    Attributes
    ----------
    id
        Stable identifier, used in reports, expected-failure files and
        command lines; never reused for another statement.
    kind
        ``"definition"``, ``"lemma"`` or ``"theorem"``.
    title
        A few words.
    statement
        The statement in LaTeX, without surrounding ``$``.
    hypotheses
        What must be true for the statement to apply, one sentence each.
    predicate
        The executable check; its own docstring gives its signature.
    paper_section
        Which numbered item of the paper's summary it restates.
    """

    id: str
    kind: str
    title: str
    statement: str
    hypotheses: tuple[str, ...]
    predicate: Callable[..., Verdict]
    paper_section: str
    conventions: tuple[str, ...] = field(default=())


def to_exact(values: npt.ArrayLike) -> ExactArray:
    """Convert a float (or nested list of floats) array to exact ``mpf`` values.

    Every binary64 number is a dyadic rational, so the conversion is exact.

    >>> to_exact([0.5, 2.0]).tolist()
    [mpf('0.5'), mpf('2.0')]
    """
    array = np.asarray(values, dtype=np.float64)
    flat = [mpmath.mpf(float(v)) for v in array.ravel()]
    return np.array(flat, dtype=object).reshape(array.shape)


def to_float(values: ExactArray) -> FloatArray:
    """Round exact values to the nearest float64 (ties to even)."""
    flat = [float(v) for v in np.asarray(values, dtype=object).ravel()]
    return np.array(flat, dtype=np.float64).reshape(np.shape(values))


@dataclass(frozen=True)
class SplitExact:
    r"""Exact values held as the unevaluated sum of two float64 arrays.

    ``hi`` is each value rounded to float64 and ``lo`` the rest,
    :math:`v - \mathrm{hi}`, rounded to float64, so that ``hi + lo`` carries
    about 106 bits, more than enough to measure a float's error against
    ``v`` (see :func:`compare`). Where ``v`` overflows float64, ``hi`` is
    infinite and ``lo`` zero.
    """

    hi: FloatArray
    lo: FloatArray

    @property
    def shape(self) -> tuple[int, ...]:
        """The arrays' shape."""
        return tuple(self.hi.shape)


def split_exact(values: npt.ArrayLike) -> SplitExact:
    """Split high-precision values (``mpf``, ``gmpy2.mpfr``) into :class:`SplitExact`.

    Call inside the working precision of the values, so that ``v - hi`` is
    formed exactly (it always fits: it is below half an ulp of ``hi``).

    >>> with mpmath.workdps(30):
    ...     s = split_exact([mpmath.mpf(1) / 3])
    >>> float(s.hi[0]), abs(float(s.lo[0])) < 1e-16
    (0.3333333333333333, True)
    """
    array = np.asarray(values, dtype=object)
    hi = array.astype(np.float64) if array.size else np.zeros(array.shape)
    finite = np.isfinite(hi)
    lo = np.zeros(array.shape, dtype=np.float64)
    if array.size:
        rest = np.asarray(array[finite] - hi[finite], dtype=object)
        lo[finite] = rest.astype(np.float64)
    return SplitExact(hi, lo)


def compare(
    result_id: str,
    *,
    claimed: npt.ArrayLike,
    exact: ExactArray | SplitExact,
    bound: npt.ArrayLike,
    quantity: str,
    layer_index: int | None = None,
    example_index: int | None = None,
    detail: str = "",
    batch_size: int | None = None,
) -> Holds | Violated:
    r"""Judge ``claimed`` against ``exact`` entry by entry.

    The claimed entry :math:`\hat v_i` holds when
    :math:`|\hat v_i - v_i| \le \beta_i`, with :math:`v_i` exact and
    :math:`\beta_i` the bound. A non-finite claimed value never holds.

    The error is measured, not estimated: with :math:`v = h + l` split as in
    :class:`SplitExact`, it is computed as :math:`|(\hat v - h) - l|` in
    float64. Where :math:`\hat v` is within a factor 2 of :math:`h` the first
    difference is exact (Sterbenz's lemma); otherwise the error is at least
    half of :math:`|h|`. Either way the measured error is within a few units
    in its own last place of the true one, plus :math:`2^{-106}|v|` from the
    split, far below the smallest bound the suite uses (itself at least one
    unit roundoff of the compared value's format).

    Parameters
    ----------
    claimed
        Values returned by the implementation judged, any shape.
    exact
        The same shape: high-precision entries (``mpf``), or their split.
    bound
        Non-negative allowed absolute errors, broadcastable to that shape.
    """
    claimed_array = np.asarray(claimed, dtype=np.float64)
    bound_array = np.broadcast_to(np.asarray(bound, dtype=np.float64),
                                  claimed_array.shape)
    split = exact if isinstance(exact, SplitExact) else split_exact(exact)
    hi = np.broadcast_to(split.hi, claimed_array.shape)
    lo = np.broadcast_to(split.lo, claimed_array.shape)
    with np.errstate(invalid="ignore", over="ignore"):
        errors = np.abs((claimed_array - hi) - lo)
    errors = np.where(np.isfinite(claimed_array) & ~np.isnan(errors), errors,
                      np.inf)

    ratios = _ratios(errors, bound_array)
    worst = np.unravel_index(int(np.argmax(ratios)), ratios.shape) if \
        ratios.size else ()
    worst_ratio = float(ratios[worst]) if ratios.size else 0.0
    violating = int(np.count_nonzero(ratios > 1.0))
    if violating == 0:
        return Holds(result_id, worst_ratio, int(ratios.size), detail)

    index = tuple(int(i) for i in worst)
    expected_float = np.asarray(hi, dtype=np.float64)
    pattern = recognise(claimed_array, expected_float, bound_array, batch_size)
    return Violated(
        result_id=result_id,
        location=Location(quantity, layer_index, index, example_index),
        expected=float(hi[index]),
        actual=float(claimed_array[index]),
        absolute_error=float(errors[index]),
        bound=float(bound_array[index]),
        worst_error_in_bounds=worst_ratio,
        violating=violating,
        compared=int(ratios.size),
        detail=" ".join(part for part in (pattern, detail) if part),
    )


def recognise(claimed: FloatArray, expected: FloatArray, bound: FloatArray,
              batch_size: int | None = None) -> str:
    """Say which way ``claimed`` is wrong, when it is a recognisable pattern.

    Tried in order: every entry zero; the transpose of the expected matrix;
    the expected values times one constant (-1: a sign; 2 or 1/2: the
    halving convention of the squared error; another whole number or its
    inverse: a sum where a mean belongs, over a batch or the outputs); and
    agreement to a few digits only (arithmetic in a narrower format). A
    pattern counts when every entry fits it within the entry's bound; for a
    factor ``f``, within ``|f|`` times the bound (values scaled by ``f`` carry
    ``f`` times the error), so that the rounding of the narrower formats does
    not hide a whole factor.

    >>> recognise(np.array([-1.0, 2.0]), np.array([1.0, -2.0]), np.array([1e-15] * 2))
    'Pattern: the returned values are the expected ones times -1 (a sign error).'
    >>> "off by the batch size 2" in recognise(
    ...     np.array([2.0000002]), np.array([1.0]), np.array([3e-7]), batch_size=2)
    True
    """
    def fits(candidate: FloatArray, scale: float = 1.0) -> bool:
        allowed = 2 * max(1.0, abs(scale)) * bound + 1e-300
        return bool(np.all(np.abs(claimed - candidate) <= allowed))

    finite = np.isfinite(claimed) & np.isfinite(expected)
    significant = finite & (np.abs(expected) > 4 * bound)
    if not np.any(significant):
        return ""
    if np.all(claimed == 0):
        return "Pattern: every returned value is zero (a gradient never filled in?)."
    if claimed.ndim == 2 and claimed.shape[0] == claimed.shape[1] and \
            not np.allclose(expected, expected.T) and fits(expected.T):
        return "Pattern: the returned matrix is the transpose of the expected one."
    factor = float(np.median(claimed[significant] / expected[significant]))
    if factor != 0 and fits(factor * expected, factor) and abs(factor - 1) > 1e-3:
        simple = _simple_factor(factor)
        if simple is not None and fits(simple * expected, simple):
            factor = simple
        return "Pattern: " + _factor_words(factor, batch_size)
    relative = float(np.max(np.abs(claimed - expected)[significant]
                            / np.abs(expected[significant])))
    if 0 < relative < 1e-3:
        digits = -np.log10(relative)
        return (f"Pattern: the values agree to about {digits:.0f} significant "
                "digits only, far below the format's; arithmetic in a narrower "
                "format (float32) inside, or added noise?")
    return ""


def _simple_factor(factor: float) -> float | None:
    """The factor -1, ``k`` or ``1/k`` (``k`` from 2 to 64) nearest ``factor``.

    ``None`` when ``factor`` is nowhere near one; whether the values fit the
    simple factor is for the caller to decide, against their bounds.

    >>> _simple_factor(3.9999998), _simple_factor(0.2500001), _simple_factor(-1.02)
    (4.0, 0.25, -1.0)
    """
    if factor < 0:
        return -1.0
    if factor >= 1:
        k = round(factor)
        return float(k) if 2 <= k <= 64 else None
    k = round(1 / factor)
    return 1 / k if 2 <= k <= 64 else None


def _factor_words(factor: float, batch_size: int | None) -> str:
    text = f"the returned values are the expected ones times {factor:.6g}"
    if abs(factor + 1) < 1e-9:
        return text + " (a sign error)."
    for k in range(2, 65):
        larger = abs(factor - k) < 1e-9 * k
        if not (larger or abs(factor - 1 / k) < 1e-9 / k):
            continue
        if k == batch_size:
            return (f"{text} (off by the batch size {k}: "
                    + ("a sum over the examples where the mean belongs?)" if larger
                       else "divided by the batch size once more than needed, "
                       "or a mean where a sum belongs?)"))
        if k == 2:
            return (f"{text} (a factor 2: the 1/2 of the squared error "
                    + ("dropped, or a sum over two examples or outputs?)" if larger
                       else "applied twice, or a mean over two examples or "
                       "outputs where a sum belongs?)"))
        return (f"{text} (a whole factor {k}: "
                + ("a sum where a mean belongs?)" if larger
                   else "a mean where a sum belongs, or one division too many?)"))
    return text + "."


def _ratios(errors: FloatArray, bounds: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratios = np.where(errors == 0.0, 0.0, errors / bounds)
    return np.where(np.isnan(ratios), np.inf, ratios).astype(np.float64)


def worst_of(verdicts: Sequence[Verdict]) -> Verdict:
    """Combine verdicts on parts of one quantity into one.

    A violation wins over everything (the one with the largest error in
    bounds); otherwise a non-applicable part makes the whole non-applicable;
    otherwise the worst ``Holds``.
    """
    violated = [v for v in verdicts if isinstance(v, Violated)]
    if violated:
        return max(violated, key=lambda v: v.worst_error_in_bounds)
    skipped = [v for v in verdicts if isinstance(v, NotApplicable)]
    if skipped:
        return skipped[0]
    held = [v for v in verdicts if isinstance(v, Holds)]
    if not held:
        raise ValueError("worst_of() needs at least one verdict")
    worst = max(held, key=lambda v: v.worst_error_in_bounds)
    return Holds(worst.result_id, worst.worst_error_in_bounds,
                 sum(v.compared for v in held), worst.detail)


def exact_dot(row: Sequence[Any], column: Sequence[Any]) -> Any:
    """Exact-precision dot product of two sequences of ``mpf`` (``fdot``)."""
    return mpmath.fdot(row, column)
