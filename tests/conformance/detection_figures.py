"""Detection figures of the conformance suite, measured on the mutation set.

Run from a checkout (or with the project installed)::

    python tests/conformance/detection_figures.py [OUTPUT.md]

It prints, and writes as Markdown to ``OUTPUT.md`` (default
``docs/detection.md`` in the repository):

1. how many of the wrong mutants of ``mutants.py`` the suite catches, each
   judged by the whole suite at its default size with several seeds;
2. for each, how many examples the suite needed: the ``examples`` count of
   a failed result runs up to and including the first failing example, so
   the smallest count over the failed results is the number of examples
   after which the suite had its first counterexample; the median over the
   seeds is reported, with the range;
3. the thorough profile (2,000 examples per check, random seeds) on the
   reference, mpmath and torch backends, read from the reports that
   ``thorough_runs.py`` keeps in ``docs/thorough/``;
4. false alarms: longer runs (random seeds) of the bundled reference
   backend and of correct mutants computed differently, which must find
   nothing.

The runs share every core. The default sizes (5 seeds of 40 examples per
result for each wrong mutant, then 300 examples per result on the reference
and 150 on three correct mutants) take about 7 minutes on 2 idle cores, and
longer on a machine busy with other work; ``--seeds``, ``--thorough`` and
``--workers`` change them.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if importlib.util.find_spec("conformance") is None:
    # Run from a checkout without the project installed.
    sys.path.insert(0, str(REPO_ROOT))


def _load_sibling(name: str) -> None:
    """Import ``name``.py from this folder, as a script or under pytest."""
    if name in sys.modules:
        return
    location = Path(__file__).resolve().parent / f"{name}.py"
    module_spec = importlib.util.spec_from_file_location(name, location)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)


_load_sibling("mutants")

# Imports after the path is settled and mutants registered.
import mutants

from conformance import (
    DEFAULT_EXAMPLES,
    ResultReport,
    SuiteReport,
    judge,
    run_suite,
)
from conformance.report import most_specific
from impl import ReferenceBackend
from spec import Violated

DEFAULT_OUTPUT = REPO_ROOT / "docs" / "detection.md"
DEFAULT_SEEDS = 5
THOROUGH = {
    "reference": 300,
    "PerExampleVectorsBackend": 150,
    "LibraryFormulasBackend": 150,
    "ReluRightDerivativeBackend": 150,
}
"""Examples per result of each false-alarm run: the bundled reference backend
(which declares every Jacobian capability, so every check runs) and correct
mutants that compute in another order, with other formulas and with the
other kink convention. 2000 examples per result would take about 13 minutes
for the reference alone on one core; these sizes keep the whole script near
7 minutes on 2 idle cores."""

REFERENCE = "reference"
"""The name under which the bundled reference backend is run."""

JUDGED = ("holds", "not-applicable")


def judged(name: str, seed: int, examples: int) -> SuiteReport:
    """The whole suite on the reference backend or on the mutant ``name``."""
    if name == REFERENCE:
        return run_suite(ReferenceBackend(), backend_spec=REFERENCE,
                         examples=examples, seed=seed)
    return mutants.judged(name, seed, examples)


def failing(report: SuiteReport) -> list[ResultReport]:
    """Results that count against the backend (violated, error, robustness)."""
    return [r for r in report.results if r.status not in JUDGED]


@dataclass(frozen=True)
class Detection:
    """How one wrong mutant fared over the seeds."""

    class_name: str
    kind: str
    needed: tuple[int, ...]
    """Examples to the first counterexample, one per seed that caught it."""
    seeds: int
    named: str
    """The most specific failed result on the first seed that caught it."""

    @property
    def caught_always(self) -> bool:
        return len(self.needed) == self.seeds

    def cells(self) -> list[str]:
        first = [f"`{self.class_name}`", self.kind,
                 mistake(mutants.by_name(self.class_name)),
                 f"{len(self.needed)}/{self.seeds}"]
        if not self.needed:
            return first + ["-", "-", "-"]
        median = statistics.median(self.needed)
        spread = f"{min(self.needed)}-{max(self.needed)}"
        return first + [f"{median:g}", spread, f"`{self.named}`"]


def mistake(backend_class: type) -> str:
    """The first line of a mutant's docstring, in MyST Markdown."""
    line = (backend_class.__doc__ or "").strip().splitlines()[0]
    for prefix in ("Mistake: ", "Mistake, "):
        line = line.removeprefix(prefix)
    line = re.sub(r":(?:math|data):`", lambda m: "{math}`" if "math" in m.group()
                  else "`", line)
    return line.replace("``", "`").replace("|", "\\|")


def detection(class_name: str, reports: Sequence[SuiteReport]) -> Detection:
    """Summarise the runs of one wrong mutant."""
    needed, named = [], ""
    for report in reports:
        failed = failing(report)
        if report.conformant or not failed:
            continue
        needed.append(min(r.examples for r in failed))
        named = named or most_specific(failed).result_id
    kind = mutants.by_name(class_name).kind
    return Detection(class_name, kind.value if kind else "", tuple(needed),
                     len(reports), named)


@dataclass(frozen=True)
class FalseAlarms:
    """One thorough run of a correct backend."""

    name: str
    seed: int
    examples: int
    judged: int
    alarms: list[str]
    seconds: float

    def cells(self) -> list[str]:
        return [f"`{self.name}`", str(self.seed), str(self.examples), str(self.judged),
                str(len(self.alarms)), f"{self.seconds:.0f}"]


def false_alarms(name: str, report: SuiteReport) -> FalseAlarms:
    """What a thorough run of a correct backend flagged (nothing, if right)."""
    alarms = [f"{r.result_id}: {r.status}" for r in failing(report)]
    return FalseAlarms(name, report.seed, report.examples,
                       sum(r.judged for r in report.results), alarms,
                       sum(r.seconds for r in report.results))


def pinned_alarms() -> list[str]:
    """Whether the reference backend is still flagged on each pinned case."""
    lines = []
    for name, (check_id, case) in mutants.false_alarm_cases().items():
        verdict = judge(check_id, ReferenceBackend(), case)
        state = ("still flagged" if isinstance(verdict, Violated)
                 else "no longer flagged")
        lines.append(f"- {name} ({case.describe()}): `{check_id}` {state}")
    return lines


THOROUGH_REPORTS = REPO_ROOT / "docs" / "thorough"
"""JSON reports of ``thorough_runs.py``: the thorough profile on reference,
mpmath and torch."""


@dataclass(frozen=True)
class ThoroughRun:
    """One kept report of the thorough profile (2,000 examples per check)."""

    backend: str
    seed: int
    examples: int
    complete: bool
    judged: int
    not_applicable: int
    alarms: list[str]
    seconds: float

    def cells(self) -> list[str]:
        return [f"`{self.backend}`", str(self.seed), str(self.examples),
                str(self.judged), str(self.not_applicable), str(len(self.alarms)),
                "yes" if self.complete else "**no**", f"{self.seconds:.0f}"]


def thorough_runs(folder: Path = THOROUGH_REPORTS) -> list[ThoroughRun]:
    """The kept thorough-profile reports, in backend order."""
    import json

    runs = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        results = data["results"]
        runs.append(ThoroughRun(
            str(data["backend"]), int(data["seed"]), int(data["examples_per_result"]),
            bool(data["complete"]), sum(int(r["judged"]) for r in results),
            sum(int(r["not_applicable"]) for r in results),
            [f"{r['id']}: {r['status']}" for r in results
             if r["status"] not in ("holds", "not-applicable")],
            sum(float(r["seconds"]) for r in results)))
    return runs


def thorough_section(runs: list[ThoroughRun]) -> list[str]:
    """The thorough profile's runs on the backends that must never be blamed."""
    if not runs:
        return ["", "## Thorough profile", "",
                "No thorough-profile reports are kept in `docs/thorough/`; run "
                "`python tests/conformance/thorough_runs.py` to make them."]
    raised = sum(len(r.alarms) for r in runs)
    summary = (f"**{raised}** false alarms in {sum(r.judged for r in runs)} judged "
               "examples of the `thorough` profile (2,000 examples per check), "
               "with random seeds, on "
               + ", ".join(f"`{r.backend}`" for r in runs) + ". The reports are "
               "kept in `docs/thorough/` and made by "
               "`python tests/conformance/thorough_runs.py`. *Not judged* counts "
               "examples where a hypothesis of the result fails (a unit on a "
               "kink, a loss gradient below the Taylor test's resolution); "
               "they are reported, never counted as passes.")
    header = ["backend", "seed", "examples per check", "examples judged",
              "not judged", "false alarms", "complete", "seconds"]
    details = [f"- {r.backend} (seed {r.seed}): {alarm}" for r in runs
               for alarm in r.alarms]
    return (["", "## Thorough profile", "", summary, ""]
            + table(header, [r.cells() for r in runs])
            + ([""] + details if details else []))


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(" --- " for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def markdown(detections: list[Detection], alarms: list[FalseAlarms],
             pinned: list[str], *, seeds: Sequence[int], seconds: float,
             workers: int) -> str:
    """The figures as a Markdown page (MyST, an orphan until linked)."""
    preamble = (f"Generated by `python tests/conformance/detection_figures.py` "
                f"in {seconds:.0f} s on {workers} worker processes; do not edit "
                "by hand, run the command again. The wrong and correct backends "
                "are those of `tests/conformance/mutants.py`.")
    lines = ["---", "orphan: true", "---", "", "# Detection power", "", preamble]
    lines += caught_section(detections, seeds)
    lines += thorough_section(thorough_runs())
    lines += alarms_section(alarms, pinned)
    return "\n".join(lines) + "\n"


def caught_section(detections: list[Detection], seeds: Sequence[int]) -> list[str]:
    """How many mistakes are caught, and after how many examples."""
    caught = sum(d.caught_always for d in detections)
    missed = [d.class_name for d in detections if not d.needed]
    sometimes = [d.class_name for d in detections
                 if d.needed and not d.caught_always]
    needed = [n for d in detections for n in d.needed]
    summary = (f"**{caught} of {len(detections)}** deliberate mistakes are caught "
               f"by a default run ({DEFAULT_EXAMPLES} examples per result) with "
               f"every one of the seeds {', '.join(str(s) for s in seeds)}.")
    if missed:
        summary += f" Missed with every seed: {', '.join(missed)}."
    if sometimes:
        summary += f" Caught with some seeds only: {', '.join(sometimes)}."

    legend = ("*Examples needed* is the number of examples a result had run when "
              "it met its first counterexample, the smallest over the failed "
              "results: the median over the seeds that caught the mistake, and "
              "the range. *Named by* is the most specific failed result, the one "
              "the summary line names.")
    if needed:
        legend += (f" Over all runs that caught a mistake the median is "
                   f"{statistics.median(needed):g} and the largest {max(needed)}.")
    header = ["mutant", "kind", "mistake", "caught (seeds)",
              "examples needed (median)", "range", "named by"]
    return (["", "## Mistakes caught", "", summary, "", legend, ""]
            + table(header, [d.cells() for d in detections]))


def alarms_section(alarms: list[FalseAlarms], pinned: list[str]) -> list[str]:
    """False alarms of the thorough runs, and the pinned cases."""
    raised = sum(len(a.alarms) for a in alarms)
    summary = (f"**{raised}** false alarms in {sum(a.judged for a in alarms)} "
               "judged examples: runs made by this script, with random seeds, of "
               "backends that are right, computed in different ways.")
    header = ["backend", "seed", "examples per result", "examples judged",
              "false alarms", "seconds"]
    lines = (["", "## False alarms", "", summary, ""]
             + table(header, [a.cells() for a in alarms]))

    details = [f"- {a.name} (seed {a.seed}): {alarm}" for a in alarms
               for alarm in a.alarms]
    note = ("Cases on which earlier random runs made the suite flag every "
            "correct backend (`false_alarm_cases` in "
            "`tests/conformance/mutants.py`, kept as tests in "
            "`test_mutants.py`), judged again on the reference backend:")
    return lines + ([""] + details if details else []) + ["", note, "", *pinned]


def main(argv: Sequence[str] | None = None) -> int:
    """Run everything, print the page and write it to the output file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", type=Path, default=DEFAULT_OUTPUT,
                        help="Markdown file to write (default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                        help="seeds per wrong mutant (default: %(default)s)")
    parser.add_argument("--thorough", type=float, default=1.0,
                        help="scale of the false-alarm runs' examples (default 1)")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (default: one per core)")
    options = parser.parse_args(argv)

    started = time.perf_counter()
    seeds = list(range(options.seeds))
    picker = random.Random()
    thorough = [(name, picker.randrange(2**32),
                 max(1, round(size * options.thorough)))
                for name, size in THOROUGH.items()]
    wrong = [(cls.__name__, seed, DEFAULT_EXAMPLES) for cls in mutants.WRONG
             for seed in seeds]
    # The long runs first, so no worker is left with one at the end.
    runs = mutants.Runs(thorough + wrong, workers=options.workers, judge=judged)

    detections = []
    for cls in mutants.WRONG:
        reports = [runs.report((cls.__name__, seed, DEFAULT_EXAMPLES))
                   for seed in seeds]
        detections.append(detection(cls.__name__, reports))
        print(f"judged {cls.__name__}", file=sys.stderr, flush=True)
    alarms = [false_alarms(job[0], runs.report(job)) for job in thorough]

    page = markdown(detections, alarms, pinned_alarms(), seeds=seeds,
                    seconds=time.perf_counter() - started, workers=runs.workers)
    print(page)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(page, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
