"""Repeated wall-clock measurements and their summaries.

Every number in the benchmark tables is a median over repeats, shown with
its interquartile range and its minimum and maximum. Peers are measured in
rounds (one call of each per round, in turn) so that a change of machine load
during a run slows both, and each round gives one ratio.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

MIN_REPEAT_SECONDS = 0.002
"""Shortest repeat worth timing: a repeat of a call faster than this runs
the call in a loop (as :mod:`timeit`'s autorange does), so that the clock's
resolution and the loop overhead stay below a thousandth of the value."""


@dataclass(frozen=True)
class Sample:
    """Repeated measurements of one quantity (seconds, or any positive unit).

    Attributes
    ----------
    values
        One value per repeat, in the order measured.
    """

    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("a Sample needs at least one value")

    @property
    def median(self) -> float:
        """The middle value."""
        return float(statistics.median(self.values))

    @property
    def quartiles(self) -> tuple[float, float]:
        """First and third quartiles (inclusive method; the value itself for one)."""
        if len(self.values) == 1:
            return self.values[0], self.values[0]
        q1, _, q3 = statistics.quantiles(self.values, n=4, method="inclusive")
        return float(q1), float(q3)

    @property
    def minimum(self) -> float:
        """The smallest value."""
        return min(self.values)

    @property
    def maximum(self) -> float:
        """The largest value."""
        return max(self.values)

    @property
    def count(self) -> int:
        """How many repeats."""
        return len(self.values)


def _loop_count(function: Callable[[], object]) -> int:
    """Calls per repeat so that one repeat lasts at least MIN_REPEAT_SECONDS."""
    number = 1
    while True:
        started = time.perf_counter()
        for _ in range(number):
            function()
        if time.perf_counter() - started >= MIN_REPEAT_SECONDS or number >= 1 << 16:
            return number
        number *= 2


def measure_rounds(
    functions: Mapping[str, Callable[[], object]],
    *,
    repeats: int,
    warmup: int = 1,
    turn_warmup: int = 0,
    settle: Mapping[str, float] | None = None,
) -> dict[str, Sample]:
    """Seconds per call of each function, measured in alternating rounds.

    Each function is first called ``warmup`` times (imports, caches, thread
    pools), then its loop count is fixed; each of the ``repeats`` rounds
    times every function once, in the given order. Within a round, each
    function's turn may start with ``turn_warmup`` calls that are not timed,
    and with a wait of ``settle[name]`` seconds, also not timed: after the
    previous turn ran another library, its worker threads may still spin
    on the cores for a while, and its data fill the caches.
    """
    if repeats < 1:
        raise ValueError(f"repeats={repeats!r}: need at least 1")
    for function in functions.values():
        for _ in range(warmup):
            function()
    numbers = {name: _loop_count(function) for name, function in functions.items()}
    waits = dict(settle or {})

    values: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            if waits.get(name, 0.0) > 0:
                time.sleep(waits[name])
            for _ in range(turn_warmup):
                function()
            started = time.perf_counter()
            for _ in range(numbers[name]):
                function()
            values[name].append((time.perf_counter() - started) / numbers[name])
    return {name: Sample(tuple(v)) for name, v in values.items()}


def measure(function: Callable[[], object], *, repeats: int, warmup: int = 1) -> Sample:
    """Seconds per call of one function."""
    return measure_rounds({"only": function}, repeats=repeats, warmup=warmup)["only"]


def paired_ratios(subject: Sample, peer: Sample) -> Sample:
    """Round-by-round ``subject / peer``, for samples measured in the same rounds."""
    if subject.count != peer.count:
        raise ValueError(
            f"samples of {subject.count} and {peer.count} values "
            "were not measured in the same rounds"
        )
    return Sample(tuple(s / p for s, p in zip(subject.values, peer.values)))


def sample_of(values: Sequence[float]) -> Sample:
    """A Sample from plain numbers."""
    return Sample(tuple(float(v) for v in values))
