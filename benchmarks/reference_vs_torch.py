"""Benchmark 3: the numpy reference backprop against PyTorch CPU autograd.

Forward plus backward (loss and every parameter gradient) of the same MLP
with the same parameters: ReLU hidden layers, softmax cross-entropy, batch
of 256, on a wide network (784-512-512-10) and a deep one (11 layers of
width 64), in float64 and float32. Also: the reference's gradient/forward
time ratio and the fraction of the machine's matmul peak it reaches,
the peak measured with a large numpy matmul in the same process.

The measurements run in a subprocess (``python -m
benchmarks.reference_vs_torch``, printing JSON) so that the environment of
BLAS can be changed for it alone: when ``OPENBLAS_CORETYPE`` or
``OPENBLAS_L2_SIZE`` is set, it runs once as found and once without both.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks._machine import BLAS_VARIABLES, REPOSITORY, blas_description
from benchmarks._table import Row, Section, Target, format_value
from benchmarks._timing import Sample, measure, measure_rounds, paired_ratios, sample_of
from impl import ReferenceBackend
from impl._numeric import example_losses
from spec import Activation, Loss, Network, Parameters

REFERENCE_TARGET = Target("<=", 0.9)
GRADIENT_FORWARD_TARGET = Target("<=", 2.3, on="value")
PEAK_TARGET = Target(">=", 0.75, on="value")

REFERENCE = "reference (numpy) forward+backward"
TORCH = "torch autograd forward+backward"
FORWARD = "reference forward only (with loss)"
GRADIENT_FORWARD = "reference (forward+backward) / forward"
PEAK_FRACTION = "reference fraction of matmul peak"

DTYPES: dict[str, type[np.floating]] = {"float64": np.float64, "float32": np.float32}

KEEP_FREED_MEMORY = {
    "MALLOC_MMAP_THRESHOLD_": str(1 << 28),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
}
"""glibc tunables under which freed memory below 256 MiB stays in the heap."""

SETTING_PEAK_COLUMN = "of this setting's matmul peak (GFLOP/s)"

SLOWDOWN_WORTH_NOTING = 1.5
"""Default threads slower than one thread by this factor get explained."""

NUMPY = "numpy"
TORCH_LIBRARY = "torch"

DEFAULT_THREADS = "default threads"
ONE_THREAD = "1 thread"
THREAD_SETTINGS = (DEFAULT_THREADS, ONE_THREAD)
"""Each case is measured with every thread pool as found (2 threads here),
then with numpy's BLAS, OpenMP and torch limited to one thread: on a
2-core machine that other work also uses, a 2-thread OpenMP region can wait
a scheduler time slice for its second thread."""


@dataclass(frozen=True)
class Case:
    """One network, batch size and dtype; ``wide`` cases carry the targets."""

    label: str
    widths: tuple[int, ...]
    batch_size: int
    dtype: str
    wide: bool

    def network(self) -> Network:
        """ReLU hidden layers, identity output, softmax cross-entropy."""
        depth = len(self.widths) - 1
        return Network(
            self.widths,
            (Activation.RELU,) * (depth - 1) + (Activation.IDENTITY,),
            Loss.SOFTMAX_CROSS_ENTROPY,
        )

    @property
    def name(self) -> str:
        """``784-512-512-10, B=256, float64``."""
        return f"{self.label}, B={self.batch_size}, {self.dtype}"

    def forward_flops(self) -> int:
        """Floating-point operations of the forward pass's matrix products."""
        return (
            2
            * self.batch_size
            * sum(m * n for n, m in zip(self.widths[:-1], self.widths[1:]))
        )

    def matmul_flops(self) -> int:
        r"""Floating-point operations of the matrix products of forward+backward.

        Forward :math:`Z_\ell = A_{\ell-1}W_\ell^\top`, backward
        :math:`\Delta_\ell^\top A_{\ell-1}` for every layer and
        :math:`\Delta_\ell W_\ell` for all but the first: two flops per
        multiply-add.
        """
        sizes = [m * n for n, m in zip(self.widths[:-1], self.widths[1:])]
        return 2 * self.batch_size * (3 * sum(sizes) - sizes[0])


def cases(*, quick: bool) -> tuple[Case, ...]:
    """The benchmark's cases, or tiny ones for a smoke test."""
    if quick:
        shapes = [("32-16-16-4", (32, 16, 16, 4), True), ("5 x 8", (8,) * 6, False)]
        batch = 8
    else:
        shapes = [
            ("784-512-512-10", (784, 512, 512, 10), True),
            ("11 x 64", (64,) * 12, False),
        ]
        batch = 256
    return tuple(
        Case(label, widths, batch, dtype, wide)
        for label, widths, wide in shapes
        for dtype in DTYPES
    )


def _problem(case: Case, seed: int = 0) -> tuple[Parameters, Any, Any]:
    rng = np.random.default_rng(seed)
    dtype = DTYPES[case.dtype]
    pairs = list(zip(case.widths[:-1], case.widths[1:]))
    weights = tuple(
        (rng.standard_normal((m, n)) * np.sqrt(2.0 / n)).astype(dtype) for n, m in pairs
    )
    biases = tuple((0.01 * rng.standard_normal(m)).astype(dtype) for _, m in pairs)
    inputs = rng.standard_normal((case.batch_size, case.widths[0])).astype(dtype)
    labels = rng.integers(0, case.widths[-1], case.batch_size)
    targets = np.eye(case.widths[-1], dtype=dtype)[labels]
    return Parameters(weights, biases), inputs, targets


def _torch_call(
    case: Case, parameters: Parameters, inputs: Any, targets: Any
) -> Callable[[], object]:
    """Forward and backward in torch autograd, the same network and loss."""
    import torch

    tensors = [
        torch.tensor(array, requires_grad=True)
        for pair in zip(parameters.weights, parameters.biases)
        for array in pair
    ]
    X, Y = torch.from_numpy(inputs), torch.from_numpy(targets)
    depth = len(case.widths) - 1

    def forward_backward() -> object:
        a = X
        for ell in range(depth):
            a = torch.nn.functional.linear(a, tensors[2 * ell], tensors[2 * ell + 1])
            if ell < depth - 1:
                a = torch.relu(a)
        loss = -(Y * torch.log_softmax(a, dim=1)).sum(dim=1).mean()
        return torch.autograd.grad(loss, tensors)

    return forward_backward


def measure_case(case: Case, *, repeats: int) -> dict[str, Sample]:
    """Reference forward+backward, its forward alone and torch, in rounds."""
    network = case.network()
    parameters, inputs, targets = _problem(case)
    backend = ReferenceBackend()

    def forward() -> object:
        state = backend.forward(network, parameters, inputs)
        return example_losses(network.loss, state.A[-1], targets).mean()

    return measure_rounds(
        {
            REFERENCE: lambda: backend.loss_and_gradients(
                network, parameters, inputs, targets
            ),
            FORWARD: forward,
            TORCH: _torch_call(case, parameters, inputs, targets),
        },
        repeats=repeats,
        warmup=2,
    )


def measure_peak(
    size: int, dtype: str, *, repeats: int, library: str = NUMPY
) -> Sample:
    """GFLOP/s of an ``n x n`` matmul (``2 n^3`` flops) in numpy or torch."""
    rng = np.random.default_rng(1)
    A = rng.standard_normal((size, size)).astype(DTYPES[dtype])
    B = rng.standard_normal((size, size)).astype(DTYPES[dtype])
    product: Callable[[], object] = lambda: A @ B
    if library == TORCH_LIBRARY:
        import torch

        A_t, B_t = torch.from_numpy(A), torch.from_numpy(B)
        product = lambda: A_t @ B_t
    seconds = measure(product, repeats=repeats)
    return sample_of([2 * size**3 / s / 1e9 for s in seconds.values])


@contextlib.contextmanager
def thread_setting(setting: str) -> Iterator[None]:
    """Every thread pool as found, or BLAS, OpenMP and torch at 1 thread."""
    if setting == DEFAULT_THREADS:
        yield
        return
    import torch

    # threadpoolctl ships no type information.
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(threads)


def measure_all(
    *,
    quick: bool,
    repeats: int,
    peak_size: int,
    settings: Sequence[str] = THREAD_SETTINGS,
) -> dict[str, Any]:
    """Everything this benchmark measures, as JSON-ready data.

    ``data["cases"][setting][case name][subject]`` holds seconds per round;
    ``data["peak"][setting]["numpy float64"]`` (and torch, float32) GFLOP/s
    per repeat.
    """
    import torch

    data: dict[str, Any] = {
        "cases": {},
        "peak": {},
        "torch_threads": int(torch.get_num_threads()),
        "blas": blas_description(),
    }
    for setting in settings:
        with thread_setting(setting):
            data["peak"][setting] = {
                f"{library} {dtype}": list(
                    measure_peak(
                        peak_size,
                        dtype,
                        repeats=max(11, repeats // 2),
                        library=library,
                    ).values
                )
                for library in (NUMPY, TORCH_LIBRARY)
                for dtype in DTYPES
            }
            data["cases"][setting] = {
                case.name: {
                    name: list(s.values)
                    for name, s in measure_case(case, repeats=repeats).items()
                }
                for case in cases(quick=quick)
            }
    return data


def _run_subprocess(
    *,
    quick: bool,
    repeats: int,
    peak_size: int,
    without_blas_variables: bool = False,
    extra_environment: dict[str, str] | None = None,
    settings: Sequence[str] = THREAD_SETTINGS,
) -> dict[str, Any]:
    env = dict(os.environ) | (extra_environment or {})
    if without_blas_variables:
        for name in BLAS_VARIABLES:
            env.pop(name, None)
    command = [
        sys.executable,
        "-m",
        "benchmarks.reference_vs_torch",
        "--repeats",
        str(repeats),
        "--peak-size",
        str(peak_size),
        *(part for setting in settings for part in ("--setting", setting)),
    ]
    finished = subprocess.run(
        command + (["--quick"] if quick else []),
        cwd=REPOSITORY,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result: dict[str, Any] = json.loads(finished.stdout)
    return result


def run(*, quick: bool, repeats: int, peak_size: int) -> Section:
    """Measure as the environment is (and without the OpenBLAS variables if set)."""
    started = time.perf_counter()
    data = _run_subprocess(
        quick=quick, repeats=repeats, peak_size=peak_size, without_blas_variables=False
    )
    peaks = {
        setting: {dtype: sample_of(values) for dtype, values in by_dtype.items()}
        for setting, by_dtype in data["peak"].items()
    }
    rows: list[Row] = [
        Row(
            f"matmul {peak_size}x{peak_size}, {name.split()[1]}, {setting}",
            f"{name.split()[0]} matmul rate",
            peak,
            unit="GFLOP/s",
            peer="" if name.startswith(NUMPY) else f"{NUMPY} matmul rate",
            ratio=None
            if name.startswith(NUMPY)
            else paired_ratios(peak, by_name[name.replace(TORCH_LIBRARY, NUMPY)]),
        )
        for setting, by_name in peaks.items()
        for name, peak in by_name.items()
    ]
    for setting in THREAD_SETTINGS:
        for case in cases(quick=quick):
            rows += _case_rows(
                case,
                setting,
                data["cases"][setting][case.name],
                max(peaks[s][f"{NUMPY} {case.dtype}"].maximum for s in THREAD_SETTINGS),
                peaks[setting][f"{NUMPY} {case.dtype}"].maximum,
            )

    notes = [
        (
            "BLAS in the benchmark process (threadpoolctl): "
            f"{'; '.join(data['blas'])}. "
            f"torch intra-op threads by default: {data['torch_threads']}."
        ),
        (
            "Each round calls the reference forward+backward, its forward alone and "
            "torch's forward+backward once each (after two warm-up calls), so load "
            "changes hit all three alike. Gradients w.r.t. every weight and bias; "
            "torch builds its graph on every call, as a training step does."
        ),
        (
            "Every case is measured with the thread pools as found, then with numpy's "
            "BLAS, OpenMP and torch limited to 1 thread (threadpoolctl and "
            "torch.set_num_threads); the targets are judged in both settings."
        ),
        (
            "Fraction of peak: the matmul flops of forward+backward "
            "(2·B·(3·Σ n_l·n_{l-1} − n_1·n_0)) over the reference's time, divided by "
            "the best rate of the large numpy matmul of the same dtype in either "
            "thread setting, measured in the same process (the machine's peak as "
            "measured, for both settings' rows); the last column gives the same "
            "rate as a fraction of the best matmul of its own thread setting."
        ),
        (
            "Matmul rates: the same square product in numpy (its OpenBLAS) and in "
            "torch (its own BLAS), one call per repeat; the peak is the best "
            "repeat. Both implementations spend nearly all their time in such "
            "products, so the torch/numpy rate ratio bounds how far the reference "
            "can get ahead of torch."
        ),
    ]
    notes.append(_thread_note(data, quick=quick))
    notes.append(
        "For a matmul-bound implementation the gradient/forward time ratio "
        "tends to the flop ratio (forward+backward)/forward: "
        + "; ".join(
            f"{case.label} {case.matmul_flops() / case.forward_flops():.2f}"
            for case in cases(quick=quick)
            if case.dtype == "float64"
        )
        + " (the first layer's input gradient is already skipped)."
    )
    notes.append(_malloc_note(data, quick=quick, repeats=repeats, peak_size=peak_size))
    notes.append(
        _blas_variable_note(data, quick=quick, repeats=repeats, peak_size=peak_size)
    )
    return Section(
        "reference-vs-torch",
        "Reference backprop vs PyTorch",
        "Forward+backward time of the numpy reference against torch CPU "
        "autograd, ReLU hidden layers, softmax cross-entropy.",
        tuple(rows),
        extra_columns=("GFLOP/s (median)", SETTING_PEAK_COLUMN),
        notes=tuple(notes),
        seconds=time.perf_counter() - started,
    )


def _case_rows(
    case: Case,
    setting: str,
    values: dict[str, list[float]],
    peak: float,
    setting_peak: float,
) -> list[Row]:
    """The case's rows; ``peak`` is the machine's, ``setting_peak`` this setting's."""
    samples = {name: sample_of(v) for name, v in values.items()}
    reference, torch_time, forward = (
        samples[REFERENCE],
        samples[TORCH],
        samples[FORWARD],
    )
    flops = case.matmul_flops()
    rate = sample_of([flops / t / 1e9 for t in reference.values])
    gradient_forward = sample_of(
        [r / f for r, f in zip(reference.values, forward.values)]
    )
    peak_fraction = sample_of([g / peak for g in rate.values])
    name = f"{case.name}, {setting}"
    return [
        Row(
            name,
            REFERENCE,
            reference,
            peer=TORCH,
            ratio=sample_of(
                [r / t for r, t in zip(reference.values, torch_time.values)]
            ),
            target=REFERENCE_TARGET,
            extra={"GFLOP/s (median)": f"{rate.median:.3g}"},
        ),
        Row(
            name,
            TORCH,
            torch_time,
            extra={"GFLOP/s (median)": f"{flops / torch_time.median / 1e9:.3g}"},
        ),
        Row(name, FORWARD, forward),
        Row(
            name,
            GRADIENT_FORWARD,
            gradient_forward,
            unit="x",
            target=GRADIENT_FORWARD_TARGET if case.wide else None,
        ),
        Row(
            name,
            PEAK_FRACTION,
            peak_fraction,
            unit="fraction",
            target=PEAK_TARGET if case.wide else None,
            extra={
                SETTING_PEAK_COLUMN: f"{100 * rate.median / setting_peak:.3g} % of "
                f"{setting_peak:.3g}"
            },
        ),
    ]


def _thread_note(data: dict[str, Any], *, quick: bool) -> str:
    """How much slower the default thread setting was than one thread, and why."""
    slowdowns = [
        sample_of(data["cases"][DEFAULT_THREADS][case.name][name]).median
        / sample_of(data["cases"][ONE_THREAD][case.name][name]).median
        for case in cases(quick=quick)
        for name in (REFERENCE, TORCH)
    ]
    cpus = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    text = (
        f"With default threads, forward+backward took {min(slowdowns):.2f}x to "
        f"{max(slowdowns):.1f}x the 1-thread time (both libraries, all cases)."
    )
    if max(slowdowns) > SLOWDOWN_WORTH_NOTING and load >= cpus:
        text += (
            f" The load average was {load:.1f} on {cpus} CPUs: other work held "
            "the cores, so a 2-thread BLAS or OpenMP call kept waiting for its "
            "second thread. On such a machine the 1-thread rows are the ones "
            "that measure the code."
        )
    return text


def _malloc_note(
    data: dict[str, Any], *, quick: bool, repeats: int, peak_size: int
) -> str:
    """The same 1-thread cases with glibc keeping freed memory for reuse."""
    kept = _run_subprocess(
        quick=quick,
        repeats=repeats,
        peak_size=peak_size,
        extra_environment=KEEP_FREED_MEMORY,
        settings=(ONE_THREAD,),
    )
    parts = []
    for case in cases(quick=quick):
        for name in (REFERENCE, TORCH):
            before = sample_of(data["cases"][ONE_THREAD][case.name][name]).median
            after = sample_of(kept["cases"][ONE_THREAD][case.name][name]).median
            parts.append(
                f"{case.name} {name.split(' ')[0]}: {format_value(before, 's')} → "
                f"{format_value(after, 's')} ({after / before:.2f}x)"
            )
    setting = " ".join(f"{k}={v}" for k, v in KEEP_FREED_MEMORY.items())
    return (
        "Temporaries: every call allocates fresh arrays for its intermediates, "
        "and glibc may serve large ones by mmap and unmap them on free, so that "
        "each call page-faults them in again. To see what that costs here, the "
        f"1-thread cases were measured again in a subprocess with `{setting}`, "
        "which keeps freed memory for reuse (a ratio near 1 means it does not "
        "matter on this run): " + "; ".join(parts) + "."
    )


def _blas_variable_note(
    data: dict[str, Any], *, quick: bool, repeats: int, peak_size: int
) -> str:
    found = {name: os.environ[name] for name in BLAS_VARIABLES if name in os.environ}
    if not found:
        return (
            "Neither OPENBLAS_CORETYPE nor OPENBLAS_L2_SIZE is set here, so "
            "there is nothing to unset; the numbers are OpenBLAS's own kernel "
            "choice for this CPU."
        )
    other = _run_subprocess(
        quick=quick, repeats=repeats, peak_size=peak_size, without_blas_variables=True
    )
    parts = []
    for case in cases(quick=quick):
        for name in (REFERENCE, TORCH):
            before = sample_of(data["cases"][DEFAULT_THREADS][case.name][name]).median
            after = sample_of(other["cases"][DEFAULT_THREADS][case.name][name]).median
            parts.append(
                f"{case.name} {name.split(' ')[0]}: "
                f"{format_value(before, 's')} → {format_value(after, 's')} "
                f"({after / before:.2f}x)"
            )
    for setting in THREAD_SETTINGS:
        for dtype, values in other["peak"][setting].items():
            parts.append(
                f"matmul peak {dtype}, {setting}: "
                f"{max(data['peak'][setting][dtype]):.3g} → "
                f"{max(values):.3g} GFLOP/s"
            )
    setting_text = ", ".join(f"{k}={v!r}" for k, v in found.items())
    return (
        f"This environment sets {setting_text}. Measured again in a subprocess "
        "without both (default threads; medians, as set → unset): "
        + "; ".join(parts)
        + "."
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.reference_vs_torch``: print the measurements as JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reference_vs_torch")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--peak-size", type=int, default=1024)
    parser.add_argument(
        "--setting", action="append", choices=THREAD_SETTINGS, default=[]
    )
    args = parser.parse_args(argv)
    print(
        json.dumps(
            measure_all(
                quick=args.quick,
                repeats=args.repeats,
                peak_size=args.peak_size,
                settings=args.setting or THREAD_SETTINGS,
            )
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
