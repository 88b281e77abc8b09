"""What the benchmarks ran on: CPU, cores, library versions, BLAS, load."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
"""Environment variables that change which kernels OpenBLAS picks; the
benchmarks measure with them as found and once more without them."""

REPOSITORY = Path(__file__).resolve().parent.parent
"""The checkout the benchmarks run in (subprocesses start there)."""


@dataclass(frozen=True)
class Machine:
    """A description of the machine and software, for the report header."""

    date: str
    cpu_model: str
    logical_cpus: int
    physical_cores: str
    python: str
    versions: dict[str, str]
    blas: list[str]
    blas_variables: dict[str, str]
    commit: str
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0))


def _cpuinfo() -> tuple[str, str]:
    """CPU model name and the physical core count from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown", "unknown"
    model = "unknown"
    cores: set[tuple[str, str]] = set()
    physical = core = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and model == "unknown":
            model = value
        elif key == "physical id":
            physical = value
        elif key == "core id":
            core = value
            cores.add((physical, core))
    return model, str(len(cores)) if cores else "unknown"


def _version(module: str) -> str:
    try:
        imported = __import__(module)
    except ImportError:
        return "not installed"
    return str(getattr(imported, "__version__", "unknown"))


def blas_description() -> list[str]:
    """One line per BLAS or OpenMP pool that threadpoolctl finds loaded."""
    try:
        # threadpoolctl ships no type information.
        from threadpoolctl import threadpool_info  # type: ignore[import-untyped]
    except ImportError:
        return ["threadpoolctl not installed"]
    lines = []
    for pool in threadpool_info():
        info: dict[str, Any] = dict(pool)
        parts = [
            f"{info.get('internal_api')} {info.get('version') or ''}".strip(),
            f"{info.get('num_threads')} threads",
        ]
        if info.get("architecture"):
            parts.append(f"kernels for {info['architecture']}")
        if info.get("threading_layer"):
            parts.append(f"{info['threading_layer']} threading")
        parts.append(f"from {Path(str(info.get('filepath'))).name}")
        lines.append(", ".join(parts))
    return lines


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" with uncommitted changes" if dirty else "")


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages (zeros where unavailable)."""
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)


def describe_machine() -> Machine:
    """Everything the report header states, measured now."""
    try:
        import torch  # noqa: F401 - loaded so threadpoolctl sees its OpenMP pool
    except ImportError:
        pass
    model, cores = _cpuinfo()
    versions = {
        name: _version(name)
        for name in ("numpy", "torch", "mpmath", "gmpy2", "hypothesis", "matplotlib")
    }
    import mpmath

    versions["mpmath backend"] = str(mpmath.libmp.BACKEND)
    return Machine(
        date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        cpu_model=model,
        logical_cpus=os.cpu_count() or 0,
        physical_cores=cores,
        python=f"{platform.python_implementation()} {sys.version.split()[0]}",
        versions=versions,
        blas=blas_description(),
        blas_variables={name: os.environ.get(name, "") for name in BLAS_VARIABLES},
        commit=_commit(),
        load_before=load_average(),
    )


def numpy_dtype_name(dtype: type[np.floating]) -> str:
    """``float64`` for ``np.float64``."""
    return np.dtype(dtype).name
