"""Counting arithmetic operations as the bundled backends execute them.

A multiply-add counts once, an elementwise operation once per entry. The
counts make the cost theorem (:mod:`spec.cost`) checkable without timing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spec import FloatArray


@dataclass
class OperationCounter:
    """Running totals, split by phase.

    Attributes
    ----------
    forward, backward
        Operations counted so far in each phase.
    """

    forward: int = 0
    backward: int = 0
    phase: str = "forward"

    def add(self, operations: int) -> None:
        """Add ``operations`` to the current phase."""
        if self.phase == "forward":
            self.forward += operations
        else:
            self.backward += operations

    @property
    def total(self) -> int:
        """Forward plus backward."""
        return self.forward + self.backward


def matmul(A: FloatArray, B: FloatArray, counter: OperationCounter | None) -> \
        FloatArray:
    """``A @ B``, counting ``rows(A) * cols(A) * cols(B)`` multiply-adds."""
    if counter is not None:
        inner = A.shape[-1]
        rows = A.shape[0] if A.ndim > 1 else 1
        cols = B.shape[-1] if B.ndim > 1 else 1
        counter.add(rows * inner * cols)
    return np.asarray(A @ B)


def elementwise(result: FloatArray, counter: OperationCounter | None) -> FloatArray:
    """Count one operation per entry of an elementwise ``result``."""
    if counter is not None:
        counter.add(int(result.size))
    return result
