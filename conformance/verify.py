r"""Judge one computed loss and gradient against the oracle, in one call.

:func:`verify_gradients` is what the suite does for a batch gradient,
without Hypothesis around it: the exact loss and batch-mean gradients from
the oracle, the error bound of every component for the declared float
format, and the comparison of every component (the loss and each entry of
every :math:`W_\ell` and :math:`b_\ell`) with its bound. It is the
counterpart of ``torch.autograd.gradcheck``, with no step size to choose
and no tolerance to tune:

>>> import numpy as np
>>> from impl import ReferenceBackend
>>> from spec import Activation, Loss, Network, Parameters
>>> network = Network((2, 3, 1), (Activation.TANH, Activation.IDENTITY),
...                   Loss.SQUARED_ERROR)
>>> rng = np.random.default_rng(0)
>>> parameters = Parameters((rng.standard_normal((3, 2)), rng.standard_normal((1, 3))),
...                         (rng.standard_normal(3), rng.standard_normal(1)))
>>> X, Y = rng.standard_normal((4, 2)), rng.standard_normal((4, 1))
>>> answer = ReferenceBackend().loss_and_gradients(network, parameters, X, Y)
>>> verdict = verify_gradients(network, parameters, X, Y, answer.loss, answer.gradients)
>>> type(verdict).__name__, verdict.compared
('Holds', 14)
>>> wrong = Parameters(answer.gradients.weights,
...                    (answer.gradients.biases[0], -answer.gradients.biases[1]))
>>> verdict = verify_gradients(network, parameters, X, Y, answer.loss, wrong)
>>> print(verdict.location.describe())
bias_gradient b_2[0]

Arguments that do not describe one batch and one answer for it are refused
before the oracle runs, naming the argument:

>>> verify_gradients(network, parameters, X, Y, answer.loss,  # doctest: +ELLIPSIS
...                  (answer.gradients.weights, answer.gradients.biases[:1]))
Traceback (most recent call last):
...
spec.errors.UsageError: gradients: 1 bias gradient for a network of 2 layers ... b_2

A point the statement does not cover is not judged, whatever the answer:
here the first unit of a ReLU layer sits exactly on its kink, where the
derivative does not exist.

>>> relu = Network((2, 2, 1), (Activation.RELU, Activation.IDENTITY),
...                Loss.SQUARED_ERROR)
>>> at_kink = Parameters((np.eye(2), np.ones((1, 2))), (np.zeros(2), np.zeros(1)))
>>> x, y = np.array([[0.0, 1.0]]), np.array([[3.0]])
>>> answer = ReferenceBackend().loss_and_gradients(relu, at_kink, x, y)
>>> print(verify_gradients(relu, at_kink, x, y, answer.loss, answer.gradients).reason)
relu is not differentiable at z = 0: layer 1 unit 0 of example 0 has z = 0
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from conformance._bounds import BoundCalculator
from conformance._guard import as_array
from conformance.checks import kink_in
from impl.oracle import MpmathBackend
from spec import (
    Activation,
    FloatArray,
    Holds,
    Location,
    Loss,
    Network,
    NotApplicable,
    Parameters,
    SplitExact,
    Violated,
    compare,
)
from spec._verdict import worst_of
from spec.errors import ArgumentTypeError, UsageError

RESULT_ID = "backprop.batch-mean"
"""The result a batch loss and gradient are judged under."""


GradientPair = tuple[Sequence[FloatArray], Sequence[FloatArray]]
"""Weight gradients and bias gradients, one array per layer each."""

FloatFormat = type[np.floating[Any]] | np.dtype[np.floating[Any]] | str
"""How a float format may be named: ``np.float32``, ``np.dtype("float32")``
or ``"float32"`` (likewise for float64)."""

_FORMATS: dict[str, type[np.floating[Any]]] = {"float64": np.float64,
                                                "float32": np.float32}
"""The formats whose rounding the bounds model, by name."""

_Claim = tuple[str, int | None, FloatArray, SplitExact]
"""One judged quantity: its name, layer, claimed values and exact values."""

_FLOAT64 = np.dtype(np.float64)

_KINKED = frozenset(activation for activation in Activation if activation.has_kink)
"""The activations not differentiable at 0."""


def verify_gradients(network: Network, parameters: Parameters,
                     inputs: npt.ArrayLike, targets: npt.ArrayLike,
                     loss: float | npt.ArrayLike,
                     gradients: Parameters | GradientPair, *,
                     dtype: FloatFormat = np.float64,
                     oracle: MpmathBackend | None = None) \
        -> Holds | Violated | NotApplicable:
    """Compare a batch loss and its gradients with the exact ones, entry by entry.

    Parameters
    ----------
    network
        The network: integer widths, one :class:`spec.Activation` per layer
        and a :class:`spec.Loss`.
    parameters
        :class:`spec.Parameters` with one :math:`W_\\ell` of shape
        ``(n_l, n_{l-1})`` and one :math:`b_\\ell` of shape ``(n_l,)`` per
        layer, finite.
    inputs, targets
        The batch, ``(B, n_0)`` and ``(B, n_L)`` with ``B >= 1``, finite.
        Parameters, inputs and targets must be float64 or exactly
        representable in it (float32, float16, integers): the oracle works
        from their exact values.
    loss
        The batch-mean loss to judge: a Python or numpy real number, or a 0-d
        or 1-element array.
    gradients
        Its gradient in every :math:`W_\\ell` and :math:`b_\\ell`, as
        :class:`spec.Parameters` or a pair ``(weight_gradients,
        bias_gradients)`` of per-layer arrays in the parameters' shapes.
        Real floats or integers of any width; they are judged as float64.
    dtype
        The format they were computed in, ``np.float64`` (the default) or
        ``np.float32`` (also as ``"float32"`` or ``np.dtype("float32")``);
        the bounds scale with its rounding.
    oracle
        The oracle to use (a default :class:`impl.MpmathBackend` if not given).

    Returns
    -------
    Holds or Violated or NotApplicable
        The worst component: :class:`spec.Holds` when every one is within its
        bound, else :class:`spec.Violated` naming quantity, layer and index.
        :class:`spec.NotApplicable`, with the reason, when the point cannot
        be judged: a unit of a kinked activation (ReLU, leaky ReLU) has
        exact pre-activation 0 or one within its rounding bound of 0; an
        exact loss or gradient is beyond float64's range; or the error bound
        cannot be computed in float64 at these magnitudes.

    Raises
    ------
    spec.errors.ArgumentTypeError
        A ``TypeError``: an argument of the wrong kind: ``network`` not a
        :class:`spec.Network` of integer widths, :class:`spec.Activation`
        and :class:`spec.Loss`; ``parameters`` not :class:`spec.Parameters`;
        ``gradients`` neither :class:`spec.Parameters` nor a pair; ``loss``
        not a real number; arrays of complex, boolean, string or object
        values; ``oracle`` not an :class:`impl.MpmathBackend`.
    spec.errors.UsageError
        A ``ValueError``: an argument of the right kind but unusable: an
        array that is not rectangular, a shape or a number of layers that
        disagrees with ``network``, an empty batch, a NaN or infinity in the parameters,
        inputs or targets (never in the judged answer: that is a
        :class:`spec.Violated`), a ``loss`` of more than one number, or a
        ``dtype`` other than float64 and float32.

    Notes
    -----
    Any array argument may also be a framework's tensor, read as the suite
    reads a backend's answers: a torch tensor (even one that requires grad,
    or lives on another device) through ``detach().cpu()``, without touching
    its autograd graph; anything else (JAX arrays, objects with
    ``__array__``) through ``np.asarray``. Arguments are checked before the
    oracle runs, with a few vectorised numpy calls.
    """
    float_format = _float_format(dtype)
    if oracle is not None and not isinstance(oracle, MpmathBackend):
        raise ArgumentTypeError(
            f"oracle: expected an impl.MpmathBackend (or None for the "
            f"default one), got {_kind(oracle)}")
    _check_network(network)
    if not isinstance(parameters, Parameters):
        raise ArgumentTypeError(
            f"parameters: expected spec.Parameters, got "
            f"{_kind(parameters)}; wrap per-layer arrays as "
            "Parameters(tuple(weights), tuple(biases))")
    weights = _layer_arrays("parameters", "weights", parameters.weights, network,
                            data=True)
    biases = _layer_arrays("parameters", "biases", parameters.biases, network,
                           data=True)
    if weights is not parameters.weights or biases is not parameters.biases:
        parameters = Parameters(weights, biases)
    X, Y = _batch(network, inputs, targets)
    _require_finite(parameters, X, Y)
    claimed_loss = _loss_value(loss)
    claimed = _as_parameters(gradients, network)

    exact = (oracle or MpmathBackend()).exact(network, parameters, X, Y)
    split = exact.split
    claims: list[_Claim] = [("loss", None, np.asarray([claimed_loss]), split.loss)]
    for ell in range(network.depth):
        claims.append(("weight_gradient", ell + 1, claimed.weights[ell],
                       split.weight_gradients[ell]))
        claims.append(("bias_gradient", ell + 1, claimed.biases[ell],
                       split.bias_gradients[ell]))
    exact_hi = np.concatenate([c[3].hi.ravel() for c in claims])

    # Past float64's range the bound's own arithmetic overflows; that is
    # detected below, so numpy's warnings about it would only be noise.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        bounds = BoundCalculator(network, parameters, float_format).batch(exact, Y)
    part_bounds = [np.asarray([bounds.loss])]
    for weight_bound, bias_bound in zip(bounds.weight_gradients, bounds.bias_gradients):
        part_bounds += [weight_bound, bias_bound]
    bound = np.concatenate([b.ravel() for b in part_bounds])
    if not np.isfinite(bound).all():
        if not np.isfinite(exact_hi).all():
            return NotApplicable(RESULT_ID, _beyond_range_reason(claims, exact_hi))
        return NotApplicable(RESULT_ID, _bound_reason(claims, bound))
    if not _KINKED.isdisjoint(network.activations):
        reason = kink_in(network, exact, bounds)
        if reason:
            return NotApplicable(RESULT_ID, reason)

    # One pass over every entry; the per-part comparison below, which
    # locates a violation, runs only when there is one.
    exact_lo = np.concatenate([c[3].lo.ravel() for c in claims])
    together = compare(RESULT_ID,
                       claimed=np.concatenate([c[2].ravel() for c in claims]),
                       exact=SplitExact(exact_hi, exact_lo), bound=bound,
                       quantity="gradient")
    if isinstance(together, Holds):
        # An infinite exact value is never within a finite bound of a claimed
        # one, so every exact value held here is finite.
        return together
    if not np.isfinite(exact_hi).all():
        return NotApplicable(RESULT_ID, _beyond_range_reason(claims, exact_hi))
    B = int(X.shape[0])
    verdicts = [compare(RESULT_ID, claimed=values, exact=exact_part, bound=part_bound,
                        quantity=quantity, layer_index=layer, batch_size=B)
                for (quantity, layer, values, exact_part), part_bound
                in zip(claims, part_bounds)]
    worst = worst_of(verdicts)
    assert isinstance(worst, (Holds, Violated))
    return worst


def _kind(value: object) -> str:
    """How a wrong argument is named in a message: its type, and the value if short."""
    text = repr(value)
    name = type(value).__name__
    return f"{name} {text}" if len(text) <= 40 else name


def _float_format(dtype: object) -> type[np.floating[Any]]:
    """``dtype`` as ``np.float64`` or ``np.float32``, or a UsageError."""
    if dtype is np.float64 or dtype is np.float32:
        return dtype
    if isinstance(dtype, str) and dtype in _FORMATS:
        return _FORMATS[dtype]
    if isinstance(dtype, np.dtype) and dtype.name in _FORMATS and dtype.isnative:
        return _FORMATS[dtype.name]
    raise UsageError(f"dtype={dtype!r}: the bounds model float64 and float32 "
                     "rounding only; pass np.float64 or np.float32 (or 'float64', "
                     "'float32'), the format the loss and gradients were computed in")


def _check_network(network: object) -> None:
    """An ArgumentTypeError unless ``network`` has int widths, activations, a loss."""
    if not isinstance(network, Network):
        raise ArgumentTypeError(
            f"network: expected spec.Network, got {_kind(network)}")
    for position, width in enumerate(network.widths):
        if not isinstance(width, (int, np.integer)) or isinstance(width, bool):
            raise ArgumentTypeError(
                f"network.widths={network.widths!r}: every width must be "
                f"an int, got {width!r} ({type(width).__name__}) at "
                f"position {position}")
    for position, activation in enumerate(network.activations):
        if not isinstance(activation, Activation):
            raise ArgumentTypeError(
                f"network.activations[{position}]: expected a "
                f"spec.Activation, got {_kind(activation)}")
    if not isinstance(network.loss, Loss):
        raise ArgumentTypeError(
            f"network.loss: expected a spec.Loss, got "
            f"{_kind(network.loss)}")


def _array(what: str, value: object, *, data: bool) -> FloatArray:
    """``value`` as a float64 array, or an error naming ``what``.

    ``data`` arrays (parameters, inputs, targets) must convert exactly, as the
    oracle judges their exact values; judged values are taken as float64, as
    :func:`spec.compare` does.
    """
    if type(value) is np.ndarray and value.dtype == np.float64:
        return value
    try:
        array = as_array(value)
    except (ValueError, TypeError) as error:
        raise UsageError(f"{what}: could not be read as an array of numbers "
                         f"({error}); pass a numpy array, or nested lists whose "
                         "rows all have the same length") from None
    kind = array.dtype.kind
    if kind not in "iuf":
        raise ArgumentTypeError(
            f"{what}: expected real numbers (floats or integers), got "
            f"an array of dtype {array.dtype} "
            f"({_DTYPE_KINDS.get(kind, 'not numbers')})")
    if data and kind == "f" and array.dtype.itemsize > 8:
        raise ArgumentTypeError(
            f"{what}: dtype {array.dtype} has more precision than "
            "float64, the format the oracle reads; round it with "
            ".astype(np.float64) if that is the value meant")
    converted = np.asarray(array, dtype=np.float64)
    if data and kind in "iu" and not np.array_equal(converted.astype(array.dtype),
                                                    array):
        raise UsageError(f"{what}: integers beyond 2**53 are not exactly float64; "
                         "pass them as float64")
    return converted


_DTYPE_KINDS = {"c": "complex numbers", "b": "booleans",
                "U": "strings", "S": "bytes", "O": "Python objects",
                "M": "dates", "m": "time spans", "V": "raw records"}
"""What each array kind that is not a real number holds, for messages."""


def _layer_arrays(owner: str, field: str, arrays: object, network: Network, *,
                  data: bool) -> tuple[FloatArray, ...]:
    """One float64 array per layer in the parameters' shapes, or an error."""
    weights = field == "weights"
    symbol = "W" if weights else "b"
    if not isinstance(arrays, (tuple, list)):
        raise ArgumentTypeError(
            f"{owner}.{field}: expected a tuple or list of one array per "
            f"layer, got {_kind(arrays)}")
    widths = network.widths
    expected_shapes = _shapes(tuple(widths))[0 if weights else 1]
    L = len(expected_shapes)
    if len(arrays) != L:
        nouns = {("gradients", True): ("weight gradient", "weight gradients"),
                 ("gradients", False): ("bias gradient", "bias gradients"),
                 ("parameters", True): ("weight matrix", "weight matrices"),
                 ("parameters", False): ("bias vector", "bias vectors")}
        noun = nouns[owner, weights][0 if len(arrays) == 1 else 1]
        raise UsageError(f"{owner}: {len(arrays)} {noun} for a network of "
                         f"{L} layer{'s' if L != 1 else ''} (widths "
                         f"{tuple(widths)}); expected one per layer, "
                         f"{symbol}_1 to {symbol}_{L}")
    for value, shape in zip(arrays, expected_shapes):
        if type(value) is not np.ndarray or value.dtype is not _FLOAT64 or \
                value.shape != shape:
            break
    else:
        return tuple(arrays)  # all float64 already, in their shapes
    checked = []
    for ell, value in enumerate(arrays, start=1):
        if type(value) is np.ndarray and value.dtype == np.float64:
            array = value
        else:
            array = _array(_array_name(owner, field, ell), value, data=data)
        expected = expected_shapes[ell - 1]
        if array.shape != expected:
            raise UsageError(_array_name(owner, field, ell)
                             + _shape_problem(owner, symbol, ell, array.shape,
                                              expected, network))
        checked.append(array)
    return tuple(checked)


@functools.lru_cache(maxsize=64)
def _shapes(widths: tuple[int, ...]) -> tuple[tuple[tuple[int, ...], ...],
                                              tuple[tuple[int, ...], ...]]:
    """The shapes of :math:`W_1, \\dots, W_L` and of :math:`b_1, \\dots, b_L`."""
    layers = range(1, len(widths))
    return (tuple((int(widths[ell]), int(widths[ell - 1])) for ell in layers),
            tuple((int(widths[ell]),) for ell in layers))


def _array_name(owner: str, field: str, ell: int) -> str:
    """How messages name the array of layer ``ell`` in ``owner.field``."""
    symbol = "W" if field == "weights" else "b"
    if owner == "gradients":
        return f"gradients: the gradient in {symbol}_{ell}"
    return f"parameters.{field}[{ell - 1}] ({symbol}_{ell})"


def _shape_problem(owner: str, symbol: str, ell: int, shape: tuple[int, ...],
                   expected: tuple[int, ...], network: Network) -> str:
    """The end of a message about an array of the wrong shape."""
    formula = (f"(n_{ell}, n_{ell - 1})" if symbol == "W" else f"(n_{ell},)")
    text = (f" has shape {shape}, expected {tuple(int(n) for n in expected)}, "
            f"{symbol}_{ell}'s shape {formula} for widths {tuple(network.widths)}")
    if owner == "parameters":
        return text + "; the network's widths and the parameters' shapes disagree"
    if len(shape) == 2 and shape == expected[::-1] and shape != expected:
        return text + "; it looks transposed"
    if int(np.prod(shape)) == int(np.prod(expected)):
        return text + f"; reshape it to {tuple(int(n) for n in expected)}"
    return text


def _batch(network: Network, inputs: object, targets: object) -> \
        tuple[FloatArray, FloatArray]:
    """``inputs`` and ``targets`` as float64 ``(B, n_0)`` and ``(B, n_L)`` arrays."""
    X = _array("inputs", inputs, data=True)
    Y = _array("targets", targets, data=True)
    n_in, n_out = network.widths[0], network.widths[-1]
    if X.ndim != 2 or X.shape[1] != n_in:
        raise UsageError(f"inputs: shape {X.shape}, expected (B, n_0) = (B, {n_in}), "
                         f"one row per example for widths {tuple(network.widths)}"
                         + ("; a single example is x.reshape(1, -1)"
                            if X.ndim == 1 and X.shape[0] == n_in else ""))
    B = X.shape[0]
    if B == 0:
        raise UsageError(f"inputs: an empty batch (shape {X.shape}); the batch loss "
                         "is a mean over at least one example")
    if Y.shape != (B, n_out):
        raise UsageError(f"targets: shape {Y.shape}, expected (B, n_L) = ({B}, "
                         f"{n_out}), one row per row of inputs for widths "
                         f"{tuple(network.widths)}"
                         + (f"; reshape it to ({B}, {n_out})"
                            if Y.size == B * n_out else ""))
    return X, Y


def _require_finite(parameters: Parameters, X: FloatArray, Y: FloatArray) -> None:
    """A UsageError naming the first NaN or infinity of the batch, if any."""
    arrays = [X, Y, *parameters.weights, *parameters.biases]
    if np.isfinite(np.concatenate([a.ravel() for a in arrays])).all():
        return
    L = len(parameters.weights)
    names = ["inputs", "targets",
             *(f"parameters.weights[{i}] (W_{i + 1})" for i in range(L)),
             *(f"parameters.biases[{i}] (b_{i + 1})" for i in range(L))]
    for name, array in zip(names, arrays):
        bad = ~np.isfinite(array)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            count = _count(int(bad.sum()), array.size)
            raise UsageError(f"{name}: entry [{', '.join(map(str, first))}] is "
                             f"{array[first]} ({count} not finite); the exact loss "
                             "and gradients exist only at finite inputs, targets "
                             "and parameters")


def _count(bad: int, size: int) -> str:
    """``"1 of its 8 entries is"``, ``"2 of its 8 entries are"``."""
    return f"{bad} of its {size} entries {'is' if bad == 1 else 'are'}"


def _loss_value(loss: object) -> float:
    """The claimed loss as a float, or an error saying what came instead."""
    if isinstance(loss, float):
        return float(loss)
    if isinstance(loss, (bool, np.bool_)) or loss is None or \
            isinstance(loss, (str, bytes)):
        raise ArgumentTypeError(
            f"loss: expected the batch-mean loss as a real number "
            f"(a Python or numpy float, or a 0-d or 1-element array), "
            f"got {_kind(loss)}")
    array = _array("loss", loss, data=False)
    if array.size != 1:
        raise UsageError(f"loss: expected one number, the batch-mean loss, got an "
                         f"array of shape {array.shape}; if these are the example "
                         "losses, pass their mean")
    return float(array.reshape(()))


def _as_parameters(gradients: object, network: Network) -> Parameters:
    """``gradients`` as float64 :class:`spec.Parameters` in the parameters' shapes."""
    if isinstance(gradients, Parameters):
        weights, biases = gradients.weights, gradients.biases
    elif isinstance(gradients, (tuple, list)) and len(gradients) == 2:
        weights, biases = gradients
    else:
        raise ArgumentTypeError(
            f"gradients: expected spec.Parameters or a pair (weight "
            f"gradients, bias gradients), got {type(gradients).__name__}")
    checked_weights = _layer_arrays("gradients", "weights", weights, network,
                                    data=False)
    checked_biases = _layer_arrays("gradients", "biases", biases, network, data=False)
    if isinstance(gradients, Parameters) and checked_weights is weights and \
            checked_biases is biases:
        return gradients
    return Parameters(checked_weights, checked_biases)


def _locate(claims: list[_Claim], together: FloatArray) -> tuple[str, int]:
    """Where the first non-finite entry of ``together`` (the claims' entries,
    flat and in order) is, described, and how many entries are not finite."""
    bad = ~np.isfinite(together)
    flat = int(np.argmax(bad))
    for quantity, layer, _, exact_part in claims:
        size = int(np.prod(exact_part.shape))
        if flat < size:
            if quantity == "loss":
                return "loss", int(bad.sum())
            index = tuple(int(i) for i in np.unravel_index(flat, exact_part.shape))
            return Location(quantity, layer, index).describe(), int(bad.sum())
        flat -= size
    raise AssertionError("every entry is finite")


def _others(count: int, what: str) -> str:
    """``"; 2 more bounds do too"`` when ``count`` entries are not finite."""
    if count <= 1:
        return ""
    return (f"; {count - 1} more {what} does too" if count == 2
            else f"; {count - 1} more {what}s do too")


def _beyond_range_reason(claims: list[_Claim], exact_hi: FloatArray) -> str:
    """Why a batch whose exact loss or gradients leave float64's range is not judged."""
    where, count = _locate(claims, exact_hi)
    return (f"the exact {where} is beyond float64's range (it rounds to "
            f"infinity{_others(count, 'exact value')}), so no float64 answer can "
            "be judged against it; scale the inputs, targets or parameters down")


def _bound_reason(claims: list[_Claim], bound: FloatArray) -> str:
    """Why a batch whose error bounds overflow float64 is not judged."""
    where, count = _locate(claims, bound)
    return (f"the error bound cannot be computed in float64 at these magnitudes "
            f"(the bound of {'the ' if where == 'loss' else ''}{where} overflows "
            "float64's range"
            f"{_others(count, 'bound')}), so nothing is judged; scale the inputs, "
            "targets or parameters down")


