"""Backends: the protocol, the bundled implementations and the loader.

``reference`` is fast batched numpy backpropagation; ``jacobian-product`` is
the paper's formula with explicit matrices; ``mpmath`` is the high-precision
oracle; ``torch`` adapts PyTorch autograd. Any other implementation plugs in
through :func:`load_backend` with ``package.module:attribute``.
"""

from impl._counting import OperationCounter
from impl._loading import (
    FunctionBackend,
    builtin_backends,
    function_backend,
    load_backend,
)
from impl._protocol import Backend, Capability, JacobianBackend, NetworkConstraints
from impl.jacobian_product import JacobianProductBackend
from impl.oracle import MpmathBackend
from impl.reference import ReferenceBackend

__all__ = [
    "Backend",
    "Capability",
    "FunctionBackend",
    "JacobianBackend",
    "JacobianProductBackend",
    "MpmathBackend",
    "NetworkConstraints",
    "OperationCounter",
    "ReferenceBackend",
    "builtin_backends",
    "function_backend",
    "load_backend",
]
