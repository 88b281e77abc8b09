"""Finding a backend by name or by ``package.module:attribute``."""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from impl._protocol import Backend, Capability
from spec import FloatArray, LossAndGradients, Network, Parameters
from spec.errors import BackendLoadError

logger = logging.getLogger(__name__)

GradientFunction = Callable[[Network, Parameters, FloatArray, FloatArray], Any]
"""``fn(network, parameters, inputs, targets)`` returning
``(loss, weight_gradients, bias_gradients)`` or a :class:`LossAndGradients`."""


@dataclass
class FunctionBackend:
    """A backend made from one plain function.

    The function receives the network, the parameters, the batch and the
    targets, and returns ``(loss, weight_gradients, bias_gradients)``: a float
    and two sequences of arrays, one per layer, in the shapes of ``W_l`` and
    ``b_l``. A :class:`spec.LossAndGradients` is accepted as well.
    """

    function: GradientFunction
    name: str = "function"
    capabilities: frozenset[Capability] = field(default=frozenset())

    def loss_and_gradients(self, network: Network, parameters: Parameters,
                           inputs: FloatArray, targets: FloatArray) -> \
            LossAndGradients:
        """Call the function and pack its answer."""
        answer = self.function(network, parameters, inputs, targets)
        if isinstance(answer, LossAndGradients):
            return answer
        if not isinstance(answer, tuple) or len(answer) != 3:
            raise TypeError(
                f"{self.name} returned {type(answer).__name__}; expected a tuple "
                "(loss, weight_gradients, bias_gradients) or LossAndGradients")
        loss, weights, biases = answer
        return LossAndGradients(loss, Parameters(tuple(weights), tuple(biases)))


def function_backend(name: str) -> Callable[[GradientFunction], FunctionBackend]:
    """Decorator turning a plain gradient function into a backend.

    >>> @function_backend("doubled")
    ... def backend(network, parameters, inputs, targets):
    ...     return 0.0, parameters.weights, parameters.biases
    >>> backend.name
    'doubled'
    """
    def wrap(function: GradientFunction) -> FunctionBackend:
        return FunctionBackend(function, name=name)
    return wrap


BUILTIN_BACKENDS: dict[str, str] = {
    "reference": "impl.reference:ReferenceBackend",
    "jacobian-product": "impl.jacobian_product:JacobianProductBackend",
    "mpmath": "impl.oracle:MpmathBackend",
    "torch": "impl.adapters.torch:TorchBackend",
    "jax": "impl.adapters.jax:JaxBackend",
    "autograd": "impl.adapters.autograd:AutogradBackend",
    "tinygrad": "impl.adapters.tinygrad:TinygradBackend",
    "sklearn": "impl.adapters.sklearn:SklearnBackend",
    "micrograd": "impl.adapters.micrograd:MicrogradBackend",
    "mygrad": "impl.adapters.mygrad:MygradBackend",
}
"""Built-in backend names and where each lives; adapters import their library
only when created, so listing them costs nothing."""

ENTRY_POINT_GROUP = "backprop_spec.backends"
"""Installed packages register backends in this entry-point group: the entry
point's name is the backend name, its value ``package.module:attribute``."""


def builtin_backends() -> dict[str, str]:
    """Every known backend name with its ``module:attribute``.

    The built-in ones first, then those registered by installed packages
    through the :data:`ENTRY_POINT_GROUP` entry points (a registered name
    never replaces a built-in one).
    """
    from importlib.metadata import entry_points

    known = dict(BUILTIN_BACKENDS)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        known.setdefault(entry.name, entry.value)
    return known


def load_backend(name: str) -> Backend:
    """Return the backend called ``name``, or loaded from ``module:attribute``.

    The attribute may be a backend object, a class whose instances are
    backends (created with no arguments), or a plain function as described
    in :class:`FunctionBackend`.

    Raises
    ------
    BackendLoadError
        The name is unknown, the module cannot be imported, the attribute is
        missing, or it is not a backend.
    """
    known = builtin_backends()
    if name in known:
        return _load_target(known[name], name)
    if ":" not in name:
        raise BackendLoadError(
            f"backend {name!r} is not a known backend ({', '.join(known)}) "
            "nor of the form package.module:attribute; "
            "'python -m conformance --list' shows the known ones")
    return _load_target(name, name)


def _load_target(target: str, name: str) -> Backend:
    module_name, _, attribute = target.partition(":")
    module = _import(module_name, name)
    if not attribute or not hasattr(module, attribute):
        raise BackendLoadError(
            f"module {module_name!r} has no attribute {attribute!r}; name the "
            "object that implements loss_and_gradients, e.g. mymodule:backend")
    return _as_backend(getattr(module, attribute), name)


def _import(module_name: str, full_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except BackendLoadError:
        raise
    except ImportError as error:
        raise BackendLoadError(
            f"cannot import module {module_name!r} for backend {full_name!r}: "
            f"{error}; check the name and that its folder is on PYTHONPATH"
        ) from error
    except SystemExit as error:
        raise BackendLoadError(
            f"importing module {module_name!r} for backend {full_name!r} called "
            f"sys.exit({error.code!r}); a backend module must not exit when "
            "imported (put its script part under if __name__ == '__main__':)"
        ) from error
    except Exception as error:
        raise BackendLoadError(
            f"importing module {module_name!r} raised "
            f"{type(error).__name__}: {error}") from error


def _as_backend(obj: Any, full_name: str) -> Backend:
    if inspect.isclass(obj):
        try:
            obj = obj()
        except BackendLoadError:
            raise
        except (Exception, SystemExit) as error:
            raise BackendLoadError(
                f"{full_name} is a class, but creating it with no arguments raised "
                f"{type(error).__name__}: {error}") from error
    if hasattr(obj, "loss_and_gradients") and callable(obj.loss_and_gradients):
        if not isinstance(getattr(obj, "name", None), str):
            obj.name = full_name
        if not hasattr(obj, "capabilities"):
            obj.capabilities = frozenset()
        return obj  # type: ignore[no-any-return]  # checked just above
    if callable(obj):
        if not _takes_four_arguments(obj):
            raise BackendLoadError(
                f"{full_name} is a function that cannot be called with the four "
                "arguments of a backend (network, parameters, inputs, targets); "
                "point --backend at a function with that signature, an object "
                "with a loss_and_gradients method, or a class creating one")
        return FunctionBackend(obj, name=full_name)
    raise BackendLoadError(
        f"{full_name} is a {type(obj).__name__}, not a backend: expected an object "
        "with a loss_and_gradients method, a class creating one, or a function "
        "(network, parameters, inputs, targets) -> (loss, dW, db)")


def _takes_four_arguments(function: Any) -> bool:
    """Whether ``function`` accepts four positional arguments, when that can be told.

    Functions written in C may have no signature to inspect; they are given
    the benefit of the doubt, and a wrong one is then reported when called.
    """
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return True
    try:
        signature.bind(None, None, None, None)
    except TypeError:
        return False
    return True


def as_float_array(value: Any) -> FloatArray:
    """``value`` as a float64 array, without copying when it already is one."""
    return np.asarray(value, dtype=np.float64)
