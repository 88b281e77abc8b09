"""Progress while checks run: a live display on a terminal, plain lines otherwise.

On a terminal, a ``rich`` progress bar shows the check running and its
examples; when output is not a terminal (a CI log), one plain line per
finished check goes to standard error; ``--quiet`` shows nothing.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from conformance.runner import SuiteReport


class Progress:
    """Reports progress; a context manager around the run.

    Use :meth:`for_terminal` to get the right kind for the current output.
    """

    def __init__(self, total: int, examples: int) -> None:
        self.total = total
        self.examples = examples
        self.done = 0

    @staticmethod
    def for_terminal(*, quiet: bool, total: int, examples: int) -> Progress:
        """Live display on a terminal, plain lines otherwise, nothing if quiet."""
        if quiet:
            return Progress(total, examples)
        if sys.stderr.isatty():
            return LiveProgress(total, examples)
        return PlainProgress(total, examples)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        return None

    def example(self, check_id: str, count: int) -> None:
        """One more example of ``check_id`` ran (``count`` so far)."""

    def finished(self, report: SuiteReport) -> None:
        """A check finished; ``report.results[-1]`` or a later one is new."""
        self.done = len(report.results)


class PlainProgress(Progress):
    """One line per finished check on standard error."""

    def finished(self, report: SuiteReport) -> None:
        for index, result in enumerate(report.results[self.done:],
                                       start=self.done + 1):
            print(f"[{index}/{self.total}] {result.result_id}: "
                  f"{result.status} ({result.examples} example"
                  f"{'' if result.examples == 1 else 's'}, "
                  f"{result.seconds:.1f} s)", file=sys.stderr, flush=True)
        self.done = len(report.results)


class LiveProgress(Progress):
    """A ``rich`` progress bar: checks done, and the current check's examples."""

    def __init__(self, total: int, examples: int) -> None:
        super().__init__(total, examples)
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
        from rich.progress import Progress as RichProgress

        self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), transient=True,
                                console=Console(stderr=True))
        self.checks = self.bar.add_task("checks", total=total)
        self.current: Any = None
        self.current_id = ""

    def __enter__(self) -> Progress:
        self.bar.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.bar.stop()

    def example(self, check_id: str, count: int) -> None:
        if check_id != self.current_id:
            if self.current is not None:
                self.bar.remove_task(self.current)
            self.current = self.bar.add_task(f"  {check_id}", total=self.examples)
            self.current_id = check_id
        self.bar.update(self.current, completed=count)

    def finished(self, report: SuiteReport) -> None:
        self.done = len(report.results)
        self.bar.update(self.checks, completed=self.done)
