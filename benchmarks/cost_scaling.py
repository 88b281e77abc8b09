r"""Benchmark 4: the cost theorem shown in time and memory.

Backpropagation (the reference backend) against the explicit Jacobian
product (the jacobian-product backend) on one example, tanh layers and
squared error: by depth at width 16, and by width at depth 4. Time per
call, peak memory allocated during one call (:mod:`tracemalloc`, which
numpy reports its buffers to) and the operations the backends count
(:class:`impl.OperationCounter`). The explicit product refuses networks past
its size limit; that refusal is recorded, not hidden.
"""

from __future__ import annotations

import contextlib
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks._table import Row, Section, format_value
from benchmarks._timing import Sample, measure_rounds, paired_ratios
from impl import JacobianProductBackend, OperationCounter, ReferenceBackend
from spec import Activation, FloatArray, Loss, Network, Parameters
from spec.errors import BackendLimitError

POINT_BUDGET = 3.0
"""Seconds of rounds worth spending on one network size; slower sizes get
fewer rounds, never fewer than MIN_REPEATS."""

MIN_REPEATS = 5

BACKPROP = "backprop (reference)"
PRODUCT = "explicit Jacobian product (jacobian-product)"
MEMORY = "peak memory"
OPERATIONS = "operations"


@dataclass(frozen=True)
class Point:
    """One network size measured for one backend."""

    sweep: str
    depth: int
    width: int
    subject: str
    seconds: Sample | None
    peak_bytes: int | None
    operations: int | None
    refusal: str = ""


@contextlib.contextmanager
def one_blas_thread() -> Iterator[bool]:
    """Limit numpy's BLAS to one thread if threadpoolctl is there; say whether."""
    try:
        # threadpoolctl ships no type information.
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:
        yield False
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield True


def _network(depth: int, width: int) -> Network:
    return Network(
        (width,) * (depth + 1), (Activation.TANH,) * depth, Loss.SQUARED_ERROR
    )


def _problem(
    network: Network, seed: int = 0
) -> tuple[Parameters, FloatArray, FloatArray]:
    rng = np.random.default_rng(seed)
    width = network.widths[0]
    weights = tuple(
        rng.standard_normal((width, width)) / np.sqrt(width)
        for _ in range(network.depth)
    )
    biases = tuple(0.1 * rng.standard_normal(width) for _ in range(network.depth))
    return (
        Parameters(weights, biases),
        rng.standard_normal((1, width)),
        rng.standard_normal((1, width)),
    )


def peak_memory(call: Callable[[], object]) -> int:
    """Bytes allocated at the peak of one call, above what was live before it."""
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return max(0, peak - before)


def measure_size(sweep: str, depth: int, width: int, *, repeats: int) -> list[Point]:
    """Both backends on one network size; a refusal becomes a Point without time."""
    network = _network(depth, width)
    parameters, x, y = _problem(network)
    backends: dict[str, ReferenceBackend | JacobianProductBackend] = {
        BACKPROP: ReferenceBackend(),
        PRODUCT: JacobianProductBackend(),
    }
    calls: dict[str, Callable[[], object]] = {}
    refusals: dict[str, str] = {}
    for subject, backend in backends.items():

        def call(
            backend: ReferenceBackend | JacobianProductBackend = backend,
        ) -> object:
            return backend.loss_and_gradients(network, parameters, x, y)

        try:
            call()
        except BackendLimitError as error:
            refusals[subject] = f"refused: BackendLimitError: {error}"
            continue
        calls[subject] = call

    samples = (
        measure_rounds(calls, repeats=_affordable(calls, repeats)) if calls else {}
    )
    points = []
    for subject in backends:
        if subject in refusals:
            points.append(
                Point(sweep, depth, width, subject, None, None, None, refusals[subject])
            )
            continue
        points.append(
            Point(
                sweep,
                depth,
                width,
                subject,
                samples[subject],
                peak_memory(calls[subject]),
                _operations(subject, network, parameters, x, y),
            )
        )
    return points


def _affordable(calls: dict[str, Callable[[], object]], repeats: int) -> int:
    """Fewer rounds (never under MIN_REPEATS) where one round exceeds the budget."""
    started = time.perf_counter()
    for call in calls.values():
        call()
    round_seconds = time.perf_counter() - started
    return max(
        min(repeats, MIN_REPEATS), min(repeats, int(POINT_BUDGET / round_seconds))
    )


def _operations(
    subject: str, network: Network, parameters: Parameters, x: FloatArray, y: FloatArray
) -> int:
    counter = OperationCounter()
    backend = (
        ReferenceBackend(counter=counter)
        if subject == BACKPROP
        else JacobianProductBackend(counter=counter)
    )
    backend.loss_and_gradients(network, parameters, x, y)
    return counter.total


QUANTITIES: dict[str, Callable[[Point], float | None]] = {
    "time": lambda p: p.seconds.median if p.seconds is not None else None,
    "peak memory": lambda p: float(p.peak_bytes) if p.peak_bytes else None,
    "operations": lambda p: float(p.operations) if p.operations else None,
}
"""What is plotted and fitted against depth and width, per point."""


def slope(
    points: Sequence[Point], subject: str, variable: str, quantity: str = "time"
) -> float | None:
    """Least-squares exponent ``k`` of quantity ∝ variable^k on log-log axes."""
    pairs = [
        (p.depth if variable == "depth" else p.width, QUANTITIES[quantity](p))
        for p in points
        if p.subject == subject
    ]
    measured = [(x, y) for x, y in pairs if y is not None]
    if len(measured) < 2:
        return None
    xs, ys = zip(*measured)
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def run(
    *,
    depths: Sequence[int],
    depth_width: int,
    widths: Sequence[int],
    width_depth: int,
    refused_width: int,
    repeats: int,
    plot_path: Path | None,
) -> Section:
    """Both sweeps, the rows, the fitted exponents and the plot."""
    started = time.perf_counter()
    points: list[Point] = []
    with one_blas_thread() as limited:
        for depth in depths:
            points += measure_size("depth", depth, depth_width, repeats=repeats)
        for width in [*widths, refused_width]:
            points += measure_size("width", width_depth, width, repeats=repeats)

    rows = _rows(points)
    notes = [
        f"One example (B=1), tanh layers, squared error. Depth sweep at width "
        f"{depth_width}; width sweep at depth {width_depth}, plus width "
        f"{refused_width} to show the explicit product's size limit. Peak memory "
        "is what tracemalloc saw allocated during one call; operations are "
        "the backends' own counts (a multiply-add counts once). "
        + (
            "numpy's BLAS is limited to 1 thread here, so that the times follow "
            "the operation counts rather than thread hand-offs on a shared "
            "machine."
            if limited
            else "threadpoolctl is not installed: BLAS ran with its default threads."
        )
    ]
    for sweep in ("depth", "width"):
        measured = [p for p in points if p.sweep == sweep]
        fits = [
            f"{quantity} {name} k = {k:.2f}"
            for quantity in ("time", "operations")
            for name, subject in (("backprop", BACKPROP), ("product", PRODUCT))
            if (k := slope(measured, subject, sweep, quantity)) is not None
        ]
        left_out = f", the product's refused width {refused_width} left out"
        notes.append(
            f"Fitted exponents k of quantity ∝ {sweep}^k"
            + (left_out if sweep == "width" else "")
            + ": "
            + "; ".join(fits)
            + "."
        )
    notes.append(
        "Small networks take the reference tens of µs per call, mostly Python's "
        "fixed cost per layer, so its time grows slower than its operation count; "
        "the counts (bottom row of the plot) show the theorem itself."
    )
    figure = None
    if plot_path is not None:
        note, drawn = _plot_or_reason(points, plot_path)
        notes.append(note)
        figure = plot_path if drawn else None
    return Section(
        "cost-scaling",
        "The cost theorem shown",
        "Time, peak memory and operation count of backpropagation vs the "
        "explicit Jacobian product as depth and width grow.",
        tuple(rows),
        extra_columns=(MEMORY, OPERATIONS),
        notes=tuple(notes),
        seconds=time.perf_counter() - started,
        figure=figure,
    )


def _rows(points: Sequence[Point]) -> list[Row]:
    rows = []
    by_size: dict[tuple[str, int, int], dict[str, Point]] = {}
    for point in points:
        by_size.setdefault((point.sweep, point.depth, point.width), {})[
            point.subject
        ] = point
    for (sweep, depth, width), pair in by_size.items():
        case = f"{sweep} sweep: depth {depth}, width {width}"
        backprop = pair[BACKPROP]
        for point in pair.values():
            peer = point.subject != BACKPROP
            ratio = (
                paired_ratios(point.seconds, backprop.seconds)
                if peer and point.seconds is not None and backprop.seconds is not None
                else None
            )
            extra = {
                MEMORY: format_value(point.peak_bytes, "bytes")
                if point.peak_bytes is not None
                else "",
                OPERATIONS: format_value(point.operations, "ops")
                if point.operations is not None
                else "",
            }
            rows.append(
                Row(
                    case,
                    point.subject,
                    point.seconds,
                    peer=BACKPROP if peer else "",
                    ratio=ratio,
                    extra=extra,
                    note=point.refusal,
                )
            )
    return rows


def _plot_or_reason(points: Sequence[Point], path: Path) -> tuple[str, bool]:
    """Draw the plot; say what it shows, or why there is none."""
    try:
        plot(points, path)
    except ImportError:
        return (
            "matplotlib is not installed: no plot was drawn (pip install matplotlib).",
            False,
        )
    return (
        (
            f"Plot above (`{path.name}`, log-log): time, peak memory and operations "
            "against depth and width for both backends."
        ),
        True,
    )


def plot(points: Sequence[Point], path: Path) -> None:
    """Time, peak memory and operations vs depth and width, log-log, both backends."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {
        "time": "seconds per example (median)",
        "peak memory": "bytes (tracemalloc peak)",
        "operations": "operations counted",
    }
    figure, axes = plt.subplots(3, 2, figsize=(11, 12), constrained_layout=True)
    styles = {BACKPROP: ("tab:blue", "o"), PRODUCT: ("tab:red", "s")}
    for column, sweep in enumerate(("depth", "width")):
        measured = [p for p in points if p.sweep == sweep]
        fixed = (
            f"width {measured[0].width}"
            if sweep == "depth"
            else f"depth {measured[0].depth}"
        )
        for row, (quantity, label) in enumerate(labels.items()):
            axis = axes[row][column]
            for subject, (colour, marker) in styles.items():
                pairs = [
                    (p.depth if sweep == "depth" else p.width, QUANTITIES[quantity](p))
                    for p in measured
                    if p.subject == subject
                ]
                xs = [x for x, y in pairs if y is not None]
                ys = [y for _, y in pairs if y is not None]
                k = slope(measured, subject, sweep, quantity)
                fitted = f", ∝ {sweep}^{k:.2f}" if k is not None else ""
                axis.plot(xs, ys, marker=marker, color=colour, label=subject + fitted)
            for refused in (p for p in measured if p.refusal):
                axis.axvline(
                    refused.width,
                    color="tab:red",
                    linestyle=":",
                    label="jacobian-product refuses (BackendLimitError)",
                )
            axis.set_title(f"{quantity} vs {sweep} ({fixed})")
            axis.set_ylabel(label)
            axis.set_xlabel(sweep)
            axis.set_xscale("log", base=2)
            axis.set_yscale("log")
            axis.grid(True, which="both", alpha=0.3)
            axis.legend(fontsize=7)
    figure.suptitle("Backpropagation vs the explicit Jacobian product (one example)")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
