"""Benchmark 3: the numpy reference backprop against PyTorch CPU autograd.

Forward plus backward (loss and every parameter gradient) of the same MLP
with the same parameters: ReLU hidden layers, softmax cross-entropy, batch
of 256, on a wide network (784-512-512-10) and a deep one (11 layers of
width 64), in float64 and float32. Also: the reference's gradient/forward
time ratios beside the ratios of their flop counts, the time of its matrix
products alone, and the fraction of the machine's matmul peak it reaches,
the peak being a large numpy matmul of the same dtype measured in the same
rounds, with the same threads.

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
from impl import ReferenceBackend, reference
from spec import Activation, Loss, Network, Parameters

REFERENCE_TARGET = Target("<=", 0.9)
GRADIENT_FORWARD_TARGET = Target("<=", 2.3, on="value")
PEAK_TARGET = Target(">=", 0.75, on="value")

REFERENCE = "reference (numpy) forward+backward"
TORCH = "torch autograd forward+backward"
FORWARD = "reference forward only (with loss)"
BACKWARD = "reference backward only (with loss gradient)"
PRODUCTS = "its matrix products alone (numpy)"
PEAK_MATMUL = "large square numpy matmul"
GRADIENT_FORWARD = "reference (forward+backward) / forward"
BACKWARD_FORWARD = "reference backward / forward"
PEAK_FRACTION = "reference fraction of matmul peak"

RATE_COLUMN = "GFLOP/s (median)"
FLOOR_COLUMN = "flop-count ratio"

DTYPES: dict[str, type[np.floating]] = {"float64": np.float64, "float32": np.float32}

KEEP_FREED_MEMORY = {
    "MALLOC_MMAP_THRESHOLD_": str(1 << 28),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
}
"""glibc tunables under which freed memory below 256 MiB stays in the heap."""

SETTLE_SECONDS = 0.2
"""Wait before a library's turn when the other one ran before it, with thread
pools as found: OpenBLAS's idle workers keep spinning for 2^28 cycles (0.1 s
at 2.6 GHz) and libgomp's for less, and while they do, the other library's
threads wait for a core."""

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

    def _layer_sizes(self) -> list[int]:
        r""":math:`n_\ell n_{\ell-1}` for each layer."""
        return [m * n for n, m in zip(self.widths[:-1], self.widths[1:])]

    def forward_flops(self) -> int:
        r"""Flops of the forward pass's matrix products
        :math:`Z_\ell = A_{\ell-1}W_\ell^\top`, two per multiply-add."""
        return 2 * self.batch_size * sum(self._layer_sizes())

    def backward_flops(self) -> int:
        r"""Flops of the backward pass's matrix products: :math:`\Delta_\ell^\top
        A_{\ell-1}` for every layer, :math:`\Delta_\ell W_\ell` for all but the
        first (the gradient with respect to the inputs is not needed)."""
        sizes = self._layer_sizes()
        return 2 * self.batch_size * (2 * sum(sizes) - sizes[0])

    def matmul_flops(self) -> int:
        """Flops of the matrix products of forward+backward."""
        return self.forward_flops() + self.backward_flops()


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


def _products_call(parameters: Parameters, inputs: Any) -> Callable[[], object]:
    """The reference's matrix products alone: same shapes, layouts and dtype,
    into kept arrays where the reference keeps them (pre-activations and
    cotangents) and into new ones where it returns them (weight gradients)."""
    activations, cotangents = [inputs], []
    for W in parameters.weights:
        activations.append(activations[-1] @ W.T)
        cotangents.append(np.ones_like(activations[-1]))
    operands = [
        (W, a, delta, np.empty_like(delta), np.empty_like(a))
        for W, a, delta in zip(parameters.weights, activations, cotangents)
    ]

    def products() -> object:
        for ell, (W, a, delta, z, g) in enumerate(operands):
            np.matmul(a, W.T, out=z)
            delta.T @ a
            if ell > 0:
                np.matmul(delta, W, out=g)
        return None

    return products


def _backward_call(
    network: Network, parameters: Parameters, inputs: Any, targets: Any
) -> Callable[[], object]:
    """The reference's backward pass alone, again and again on one forward pass.

    Runs the code :meth:`ReferenceBackend.loss_and_gradients` runs after its
    forward pass (loss and loss gradient, then every layer's gradients), on
    arrays of its own.
    """
    workspace = reference._Workspace()
    Z_arrays, G_arrays = workspace.arrays(network, parameters, inputs, targets)
    A, Z = reference._forward_in_place(network, parameters, inputs, Z_arrays)
    return lambda: reference._loss_and_backward(
        network, parameters, A, Z, targets, G_arrays
    )


def _square_matmul(size: int, dtype: str) -> Callable[[], object]:
    """One ``size x size`` numpy matmul (``2 size^3`` flops)."""
    rng = np.random.default_rng(1)
    A = rng.standard_normal((size, size)).astype(DTYPES[dtype])
    B = rng.standard_normal((size, size)).astype(DTYPES[dtype])
    return lambda: A @ B


def measure_case(
    case: Case, *, repeats: int, peak_size: int, settle: float = 0.0
) -> dict[str, Sample]:
    """Reference forward+backward, its forward and backward alone, its matrix
    products alone, a large square matmul and torch, in rounds.

    Every turn starts with one call that is not timed; the first numpy turn
    of a round and torch's turn start ``settle`` seconds after the previous
    turn (see :data:`SETTLE_SECONDS`).
    """
    network = case.network()
    parameters, inputs, targets = _problem(case)
    backend = ReferenceBackend()
    return measure_rounds(
        {
            REFERENCE: lambda: backend.loss_and_gradients(
                network, parameters, inputs, targets
            ),
            FORWARD: lambda: backend.loss(network, parameters, inputs, targets),
            BACKWARD: _backward_call(network, parameters, inputs, targets),
            PRODUCTS: _products_call(parameters, inputs),
            PEAK_MATMUL: _square_matmul(peak_size, case.dtype),
            TORCH: _torch_call(case, parameters, inputs, targets),
        },
        repeats=repeats,
        warmup=2,
        turn_warmup=1,
        settle={REFERENCE: settle, TORCH: settle},
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
        settle = SETTLE_SECONDS if setting == DEFAULT_THREADS else 0.0
        with thread_setting(setting):
            data["peak"][setting] = {}
            for library in (NUMPY, TORCH_LIBRARY):
                time.sleep(settle)
                for dtype in DTYPES:
                    data["peak"][setting][f"{library} {dtype}"] = list(
                        measure_peak(
                            peak_size,
                            dtype,
                            repeats=max(11, repeats // 2),
                            library=library,
                        ).values
                    )
            data["cases"][setting] = {
                case.name: {
                    name: list(s.values)
                    for name, s in measure_case(
                        case, repeats=repeats, peak_size=peak_size, settle=settle
                    ).items()
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
                case, setting, data["cases"][setting][case.name], peak_size
            )

    notes = [
        (
            "BLAS in the benchmark process (threadpoolctl): "
            f"{'; '.join(data['blas'])}. "
            f"torch intra-op threads by default: {data['torch_threads']}."
        ),
        (
            "Each round times, in turn and after two warm-up calls each: the "
            "reference forward+backward (loss_and_gradients), its forward alone "
            "(loss: the same forward pass and loss), its backward alone, its "
            f"matrix products alone, a {peak_size}x{peak_size} numpy matmul of the "
            "case's dtype, and torch's forward+backward. Load changes hit all six "
            "alike, and every ratio below is taken round by round. Each turn "
            "starts with one untimed call, then repeats the call for at least 2 "
            "ms: the first call after another subject's turn finds cold caches "
            "and sleeping threads, which a training loop calling one library "
            "does not. Gradients w.r.t. every weight and bias; torch builds its "
            "graph on every call, as a training step does."
        ),
        (
            "Every case is measured with the thread pools as found, then with numpy's "
            "BLAS, OpenMP and torch limited to 1 thread (threadpoolctl and "
            "torch.set_num_threads); the targets are judged in both settings. With "
            "the pools as found, the reference's turn and torch's start "
            f"{SETTLE_SECONDS:g} s after the previous turn, and so do the matmul "
            "rates of each library: the idle worker threads of the library that "
            "ran before keep spinning for up to 0.1 s, and in the same process "
            "they take the cores from the other library's threads, a slowdown "
            "that no user running one library sees."
        ),
        (
            f"'{PRODUCTS}': the forward and backward matrix products of the "
            "reference, with the same shapes, memory layouts and dtype, and nothing "
            "else. Its ratio to torch is the best the reference could reach with "
            "this numpy's BLAS if all its other work were free; where that ratio is "
            "above the 0.9 target, no change to the reference's own code meets "
            "the target, only a faster BLAS."
        ),
        (
            "Fraction of peak: the flops of the reference's matrix products "
            "(forward+backward, below) over its time, divided by the rate of the "
            f"{peak_size}x{peak_size} numpy matmul (2·n³ flops) of the same dtype, "
            "measured in the same round with the same threads; the median over "
            f"rounds. The {RATE_COLUMN} column of that row gives the matmul's rate. "
            "Both measured in the same rounds, a load change slows both; a peak "
            "taken at another moment, or in the other thread setting, would not."
        ),
        (
            "Matmul rates: the same square product in numpy (its OpenBLAS) and in "
            "torch (its own BLAS), one call per repeat, measured before the cases. "
            "Both implementations spend nearly all their time in such products, so "
            "the torch/numpy rate ratio bounds how far the reference can get ahead "
            "of torch."
        ),
    ]
    notes.append(_thread_note(data, quick=quick))
    notes.append(_flop_note(quick=quick))
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
        extra_columns=(RATE_COLUMN, FLOOR_COLUMN),
        notes=tuple(notes),
        seconds=time.perf_counter() - started,
    )


def _per_round(
    values: dict[str, list[float]], formula: Callable[..., float], *names: str
) -> Sample:
    """``formula`` of the named subjects' times, one value per round."""
    return sample_of([formula(*times) for times in zip(*(values[n] for n in names))])


def _case_rows(
    case: Case, setting: str, values: dict[str, list[float]], peak_size: int
) -> list[Row]:
    """The case's rows in one thread setting, every ratio taken round by round."""
    samples = {name: sample_of(v) for name, v in values.items()}
    flops, forward_flops = case.matmul_flops(), case.forward_flops()
    peak_flops = 2 * peak_size**3
    name = f"{case.name}, {setting}"

    def rate(subject: str) -> dict[str, str]:
        return {RATE_COLUMN: f"{flops / samples[subject].median / 1e9:.3g}"}

    return [
        Row(
            name,
            REFERENCE,
            samples[REFERENCE],
            peer=TORCH,
            ratio=_per_round(values, lambda r, t: r / t, REFERENCE, TORCH),
            target=REFERENCE_TARGET,
            extra=rate(REFERENCE),
        ),
        Row(name, TORCH, samples[TORCH], extra=rate(TORCH)),
        Row(
            name,
            PRODUCTS,
            samples[PRODUCTS],
            peer=TORCH,
            ratio=_per_round(values, lambda p, t: p / t, PRODUCTS, TORCH),
            extra=rate(PRODUCTS),
        ),
        Row(name, FORWARD, samples[FORWARD]),
        Row(name, BACKWARD, samples[BACKWARD]),
        Row(
            name,
            GRADIENT_FORWARD,
            _per_round(values, lambda r, f: r / f, REFERENCE, FORWARD),
            unit="x",
            target=GRADIENT_FORWARD_TARGET if case.wide else None,
            extra={FLOOR_COLUMN: f"{flops / forward_flops:.2f}"},
        ),
        Row(
            name,
            BACKWARD_FORWARD,
            _per_round(values, lambda b, f: b / f, BACKWARD, FORWARD),
            unit="x",
            extra={FLOOR_COLUMN: f"{case.backward_flops() / forward_flops:.2f}"},
        ),
        Row(
            name,
            PEAK_FRACTION,
            _per_round(
                values,
                lambda r, p: (flops / r) / (peak_flops / p),
                REFERENCE,
                PEAK_MATMUL,
            ),
            unit="fraction",
            target=PEAK_TARGET if case.wide else None,
            extra={
                RATE_COLUMN: f"{peak_flops / samples[PEAK_MATMUL].median / 1e9:.3g} "
                f"({peak_size}x{peak_size} matmul)"
            },
        ),
    ]


def _flop_note(*, quick: bool) -> str:
    """Flop counts of forward and backward, and which ratio the target judges."""
    counts = "; ".join(
        f"{case.label}: forward {case.forward_flops() / 1e6:.4g} MFLOP, backward "
        f"{case.backward_flops() / 1e6:.4g} MFLOP, so (forward+backward)/forward "
        f"{case.matmul_flops() / case.forward_flops():.2f} and backward/forward "
        f"{case.backward_flops() / case.forward_flops():.2f}"
        for case in cases(quick=quick)
        if case.dtype == "float64"
    )
    wide = next(case for case in cases(quick=quick) if case.wide)
    floor = wide.matmul_flops() / wide.forward_flops()
    verdict = (
        f"On {wide.label} that ratio's floor, {floor:.2f}, is above the target of "
        f"{GRADIENT_FORWARD_TARGET.value:g}: the target can only be met where the "
        "backward's products run faster per flop than the forward's, and an "
        "implementation equally efficient in both misses it by construction."
        if floor > GRADIENT_FORWARD_TARGET.value
        else f"On {wide.label} that ratio's floor is {floor:.2f}."
    )
    return (
        "Flop counts of the matrix products, two per multiply-add, B·n_l·n_{l-1} "
        "per product: the forward computes Z_l = A_{l-1}·W_lᵀ for every layer; "
        "the backward Δ_lᵀ·A_{l-1} for every layer and Δ_l·W_l for every layer "
        "but the first, whose input gradient is not needed (elementwise work, "
        f"O(B·Σ n_l), is left out). {counts}. An implementation that runs its "
        "backward products at its forward products' rate reaches these ratios "
        "and no lower, so the 'flop-count ratio' column is the floor of each "
        "time ratio. The backward is timed alone, run again and again on one "
        "forward pass: the code loss_and_gradients runs after its forward pass, "
        "loss and loss gradient included (so forward and backward together "
        "count the loss twice, a few microseconds). The target 'gradient/forward time ratio <= 2.3' is judged "
        "on (forward+backward)/forward: the gradient cannot be had without the "
        "forward pass, so the time it takes is that of loss_and_gradients, "
        "compared with loss; the cost theorem of spec/cost.py bounds the same "
        f"ratio (by 3). {verdict} The backward/forward row, the other reading, "
        "carries no target."
    )


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
        "Temporaries: torch allocates its intermediates on every call; the "
        "reference keeps its pre-activations and cotangents from one call to "
        "the next of the same shapes, and allocates the gradients it returns "
        "and a few smaller arrays. glibc may serve large arrays by mmap and "
        "unmap them on free, so that each call page-faults them in again. To "
        "see what that costs here, the "
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
