r"""Benchmark 1: verifying a gradient with the oracle vs finite differences.

Ours: what the suite does to judge one batch gradient of a backend,
:func:`conformance.verify_gradients` on the reference backend's answer: the
exact gradient from :class:`impl.MpmathBackend` (30 digits), the float64
error bound of every component from
:class:`conformance._bounds.BoundCalculator`, the backend's own gradient,
and :func:`spec.compare` of every component (the loss and each entry of
every :math:`W_\ell` and :math:`b_\ell`).

Peer: ``torch.autograd.gradcheck`` on the same network and parameters,
written as a function of the parameters, in float64, default (slow) mode
and ``fast_mode=True``.

Measured three times, once per kind of oracle numbers: python-flint's
``arb`` balls (the default), gmpy2's ``mpfr`` and ``mpmath.mpf``; the
default's rows carry the targets.
"""

from __future__ import annotations

import contextlib
import cProfile
import functools
import pstats
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mpmath
import numpy as np

from benchmarks._table import Row, Section, Target
from benchmarks._timing import Sample, measure_rounds, paired_ratios
from conformance import verify_gradients
from conformance._bounds import BoundCalculator
from impl import MpmathBackend, ReferenceBackend
from spec import (
    Activation,
    FloatArray,
    Holds,
    Loss,
    Network,
    NotApplicable,
    Parameters,
    Violated,
    compare,
)

NETWORK = Network(
    (8, 8, 8, 4),
    (Activation.TANH, Activation.TANH, Activation.IDENTITY),
    Loss.SQUARED_ERROR,
)
"""The benchmark's MLP: widths 8-8-8-4, tanh hidden layers, squared error."""

SLOW_MODE_TARGET = Target("<=", 1 / 20)
FAST_MODE_TARGET = Target("<=", 1 / 2)
ORACLE_DIGITS = 30
PROFILE_CALLS = 20
PROFILE_LINES = 12
PROJECT_PACKAGES = ("impl", "spec", "conformance")

ARB_PATH = "verify_gradients (oracle in arb balls) on the reference's gradient"
GMPY2_PATH = "verify_gradients (oracle in gmpy2 numbers) on the reference's gradient"
MPMATH_PATH = "verify_gradients (oracle in mpmath numbers) on the reference's gradient"
ORACLE_PATHS = {"arb": ARB_PATH, "gmpy2": GMPY2_PATH, "mpmath": MPMATH_PATH}
"""Each kind of oracle numbers and its subject."""
SUITE_PATH = ARB_PATH
"""The subject whose oracle is the suite's default; it carries the targets."""
SLOW = "torch gradcheck (float64, slow mode)"
FAST = "torch gradcheck (float64, fast_mode=True)"


@dataclass(frozen=True)
class Problem:
    """One batch on the benchmark network."""

    parameters: Parameters
    inputs: FloatArray
    targets: FloatArray

    @property
    def batch_size(self) -> int:
        """Examples in the batch."""
        return int(self.inputs.shape[0])


def make_problem(network: Network, batch_size: int, seed: int) -> Problem:
    r"""Weights scaled by :math:`1/\sqrt{n_{\ell-1}}`; unit-normal inputs, targets."""
    rng = np.random.default_rng(seed)
    pairs = list(zip(network.widths[:-1], network.widths[1:]))
    weights = tuple(rng.standard_normal((m, n)) / np.sqrt(n) for n, m in pairs)
    biases = tuple(0.1 * rng.standard_normal(m) for _, m in pairs)
    return Problem(
        Parameters(weights, biases),
        rng.standard_normal((batch_size, network.widths[0])),
        rng.standard_normal((batch_size, network.widths[-1])),
    )


def verify_suite_path(
    network: Network, problem: Problem, oracle: MpmathBackend
) -> Holds | Violated | NotApplicable:
    """Judge the reference backend's batch gradient as the suite does."""
    answer = ReferenceBackend().loss_and_gradients(
        network,
        problem.parameters.copy(),
        problem.inputs.copy(),
        problem.targets.copy(),
    )
    return verify_gradients(
        network,
        problem.parameters,
        problem.inputs,
        problem.targets,
        answer.loss,
        answer.gradients,
        oracle=oracle,
    )


def torch_loss_function(
    network: Network, problem: Problem
) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """The batch loss as a function of ``(W_1, b_1, ..., W_L, b_L)`` in torch.

    Returns the function and the float64 parameter tensors (requiring grad)
    to hand to ``gradcheck``.
    """
    import torch

    functions: dict[Activation, Callable[[Any], Any]] = {
        Activation.IDENTITY: lambda z: z,
        Activation.TANH: torch.tanh,
        Activation.SIGMOID: torch.sigmoid,
        Activation.RELU: torch.relu,
    }
    if network.loss is not Loss.SQUARED_ERROR or any(
        a not in functions for a in network.activations
    ):
        raise ValueError(
            f"network={network.describe()!r}: the torch wrapper covers "
            "squared error and identity, tanh, sigmoid, relu only"
        )
    X, Y = torch.from_numpy(problem.inputs), torch.from_numpy(problem.targets)

    def batch_loss(*flat: Any) -> Any:
        a = X
        for ell, activation in enumerate(network.activations):
            a = functions[activation](a @ flat[2 * ell].T + flat[2 * ell + 1])
        return 0.5 * ((a - Y) ** 2).sum(dim=1).mean()

    tensors = tuple(
        torch.tensor(array, dtype=torch.float64, requires_grad=True)
        for pair in zip(problem.parameters.weights, problem.parameters.biases)
        for array in pair
    )
    return batch_loss, tensors


def gradcheck_call(
    network: Network, problem: Problem, *, fast_mode: bool
) -> Callable[[], bool]:
    """A call of ``torch.autograd.gradcheck`` with its default tolerances."""
    import torch

    function, tensors = torch_loss_function(network, problem)

    def check() -> bool:
        return bool(torch.autograd.gradcheck(function, tensors, fast_mode=fast_mode))

    return check


def profile_suite_path(
    network: Network,
    problem: Problem,
    oracle: MpmathBackend,
    calls: int = PROFILE_CALLS,
) -> tuple[list[str], list[str]]:
    """Where the suite path spends its time, by cProfile.

    Returns the project's functions (``impl/``, ``spec/``, ``conformance/``)
    with the largest cumulative share, and the functions of any library with
    the largest own share.
    """
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        verify_suite_path(network, problem, oracle)
    profiler.disable()
    # pstats keeps its raw table in an attribute its stubs do not declare.
    stats = pstats.Stats(profiler)
    entries: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in entries.values())

    def line(key: tuple[str, int, str], seconds: float, count: int) -> str:
        filename, number, name = key
        return (
            f"{100 * seconds / total:.0f} % `{name}` ({_short_path(filename)}:"
            f"{number}, {count / calls:g}x per verification)"
        )

    ours = [
        item
        for item in entries.items()
        if any(f"/{package}/" in item[0][0] for package in PROJECT_PACKAGES)
    ]
    by_cumulative = sorted(ours, key=lambda item: -item[1][3])[:PROFILE_LINES]
    by_own = sorted(entries.items(), key=lambda item: -item[1][2])[: PROFILE_LINES // 2]
    return (
        [line(key, entry[3], entry[1]) for key, entry in by_cumulative],
        [line(key, entry[2], entry[1]) for key, entry in by_own],
    )


def _short_path(filename: str) -> str:
    for marker in ("site-packages/", "/work/main/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return Path(filename).name if filename.startswith("/") else filename


def phase_breakdown(
    network: Network, problem: Problem, oracle: MpmathBackend, *, repeats: int
) -> dict[str, Sample]:
    """Seconds spent in each phase of the suite path, measured in rounds."""
    exact = oracle.exact(network, problem.parameters, problem.inputs, problem.targets)
    bounds = BoundCalculator(network, problem.parameters).batch(exact, problem.targets)
    answer = ReferenceBackend().loss_and_gradients(
        network, problem.parameters, problem.inputs, problem.targets
    )

    def compare_all() -> None:
        split = exact.split
        for ell in range(network.depth):
            compare(
                "benchmark",
                claimed=answer.gradients.weights[ell],
                exact=split.weight_gradients[ell],
                bound=bounds.weight_gradients[ell],
                quantity="weight_gradient",
            )
            compare(
                "benchmark",
                claimed=answer.gradients.biases[ell],
                exact=split.bias_gradients[ell],
                bound=bounds.bias_gradients[ell],
                quantity="bias_gradient",
            )

    def compare_fresh() -> None:
        _fresh_split(exact)
        compare_all()

    return measure_rounds(
        {
            "MpmathBackend.exact": lambda: oracle.exact(
                network, problem.parameters, problem.inputs, problem.targets
            ),
            "BoundCalculator.batch": lambda: BoundCalculator(
                network, problem.parameters
            ).batch(exact, problem.targets),
            "reference backend": lambda: ReferenceBackend().loss_and_gradients(
                network, problem.parameters, problem.inputs, problem.targets
            ),
            "ExactBatch.split and spec.compare of every entry": compare_fresh,
        },
        repeats=repeats,
    )


def _fresh_split(exact: Any) -> None:
    """Drop the cached split, so the next compare pays for splitting again."""
    exact.__dict__.pop("split", None)


def run(*, batch_sizes: tuple[int, ...], repeats: int, seed: int = 0) -> Section:
    """Time every verifier on every batch size; ratios to both gradcheck modes."""
    started = time.perf_counter()
    oracle = MpmathBackend(ORACLE_DIGITS)
    rows: list[Row] = []
    notes = [
        (
            "Ours is timed end to end: exact gradient, bounds, the reference "
            "backend's gradient and the comparison of every component (loss and "
            f"all {_parameter_count(NETWORK)} gradient entries) within its bound; "
            "gradcheck compares torch's analytical gradient with central "
            "differences (eps 1e-6, atol 1e-5, rtol 1e-3). Each round calls every "
            "verifier once, after one warm-up call each. torch runs with 1 intra-op "
            "thread here: on these 8-wide tensors a second thread cannot help, and "
            "on a loaded 2-core machine it can only make torch wait."
        ),
        f"mpmath {mpmath.__version__} arithmetic backend: "
        f"`mpmath.libmp.BACKEND == {mpmath.libmp.BACKEND!r}`"
        + (
            " (gmpy2 active)"
            if mpmath.libmp.BACKEND == "gmpy"
            else " (pure Python integers: install gmpy2 for a faster oracle)"
        ),
    ]
    oracles = {
        subject: MpmathBackend(ORACLE_DIGITS, arithmetic=arithmetic)
        for arithmetic, subject in ORACLE_PATHS.items()
    }
    notes.append(f"The oracle's default numbers here: {oracle.number_type}.")

    with torch_threads(1):
        rows += _measure_batches(batch_sizes, repeats, seed, oracles, notes)
    largest = make_problem(NETWORK, max(batch_sizes), seed)
    notes += profile_notes(largest, oracle, repeats=repeats)
    return Section(
        "oracle-vs-fd",
        "Oracle vs finite differences",
        "Time to verify the full batch gradient of a backend: ours "
        f"(the oracle at {ORACLE_DIGITS} digits, in its default numbers) against "
        "`torch.autograd.gradcheck` on the same network and parameters.",
        tuple(rows),
        notes=tuple(notes),
        seconds=time.perf_counter() - started,
    )


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run torch with ``count`` intra-op threads, then restore its setting."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _measure_batches(
    batch_sizes: tuple[int, ...],
    repeats: int,
    seed: int,
    oracles: dict[str, MpmathBackend],
    notes: list[str],
) -> list[Row]:
    """Rows of every verifier on every batch size; appends what each concluded."""
    rows: list[Row] = []
    for batch_size in batch_sizes:
        problem = make_problem(NETWORK, batch_size, seed)
        case = f"{'-'.join(map(str, NETWORK.widths))} tanh, B={batch_size}"
        calls: dict[str, Callable[[], object]] = {
            subject: functools.partial(verify_suite_path, NETWORK, problem, oracle)
            for subject, oracle in oracles.items()
        }
        calls[SLOW] = gradcheck_call(NETWORK, problem, fast_mode=False)
        calls[FAST] = gradcheck_call(NETWORK, problem, fast_mode=True)
        notes += _check_verdicts(case, calls)
        samples = measure_rounds(calls, repeats=repeats)

        rows += [Row(case, SLOW, samples[SLOW]), Row(case, FAST, samples[FAST])]
        for subject in oracles:
            for peer, target in ((SLOW, SLOW_MODE_TARGET), (FAST, FAST_MODE_TARGET)):
                rows.append(
                    Row(
                        case,
                        subject,
                        samples[subject],
                        peer=peer,
                        ratio=paired_ratios(samples[subject], samples[peer]),
                        target=target if subject == SUITE_PATH else None,
                    )
                )
    return rows


def profile_notes(
    largest: Problem, oracle: MpmathBackend, *, repeats: int
) -> list[str]:
    """The suite path's time by phase and by function, as report notes."""
    phases = phase_breakdown(NETWORK, largest, oracle, repeats=repeats)
    total = sum(sample.median for sample in phases.values())
    notes = []
    notes.append(
        f"Suite path by phase, B={largest.batch_size} (median, share): "
        + "; ".join(
            f"{name} {1e3 * sample.median:.2f} ms ({100 * sample.median / total:.0f} %)"
            for name, sample in phases.items()
        )
        + "."
    )
    cumulative, own = profile_suite_path(NETWORK, largest, oracle)
    notes.append(
        f"cProfile of the suite path, B={largest.batch_size}, "
        f"{PROFILE_CALLS} verifications; the project's functions by "
        "cumulative share (nested, so shares overlap): " + "; ".join(cumulative) + "."
    )
    notes.append("Same profile, any function by own time: " + "; ".join(own) + ".")
    return notes


def _parameter_count(network: Network) -> int:
    return sum(m * n + m for n, m in zip(network.widths[:-1], network.widths[1:]))


def _check_verdicts(case: str, calls: dict[str, Callable[[], object]]) -> list[str]:
    """Run each verifier once and say what it concluded (all must accept)."""
    verdicts = []
    for name, call in calls.items():
        outcome = call()
        if isinstance(outcome, Holds):
            verdict = (
                f"holds (worst error {outcome.worst_error_in_bounds:.3g} of "
                f"its bound over {outcome.compared} numbers)"
            )
        elif isinstance(outcome, Violated):
            verdict = f"VIOLATED at {outcome.violating} of {outcome.compared}"
        else:
            verdict = "passes" if outcome else "FAILS"
        verdicts.append(f"{name.split(':')[0]}: {verdict}")
    return [f"{case}, what each verifier concluded: " + "; ".join(verdicts) + "."]
