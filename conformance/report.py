"""Turning a :class:`SuiteReport` into the printed table and the JSON file."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

from conformance.checks import BackendError, RobustnessError
from conformance.runner import ResultReport, SuiteReport, check_ids
from spec import RESULTS, Violated

REPORT_SCHEMA_VERSION = 2
"""Version of the JSON report layout; raised whenever a field changes meaning.

Version 2: ``worst_error_in_bounds`` is ``null`` where nothing was judged
(version 1 wrote a number there), and reports record ``backend_spec`` and
``robustness``.
"""

READABLE_SCHEMA_VERSIONS = (1, 2)
"""Report versions ``merge`` reads: a version 1 report lacks only what
version 2 added, which merge does without."""

VERDICT_WORDS = {
    "holds": "holds",
    "violated": "VIOLATED",
    "error": "BACKEND ERROR",
    "not-applicable": "not applicable",
    "robustness": "OVERFLOWS",
    "expected-failure": "expected failure",
    "unexpected-pass": "UNEXPECTEDLY PASSING",
}


def render_table(report: SuiteReport, *,
                 shard: tuple[int, int] | None = None,
                 pool: int | None = None) -> str:
    """The per-result table, one row a result, and a closing line.

    ``shard`` is ``(I, N)`` for a run of the I-th of N shares of the checks:
    the closing line then says which share it judged, out of how many checks
    and results, since one shard alone decides no campaign. ``pool`` is the
    number of checks the shards share (fewer than the suite's when ``--only``
    chose them); a shard left without any says so, and nothing else.
    """
    lines = [f"backend {report.backend!r}, seed {report.seed}, "
             f"{report.examples} examples per check", ""]
    if shard is not None and not report.results:
        return "\n".join(lines + [empty_shard_line(shard, pool)])
    header = ("result", "examples", "worst error / bound", "verdict")
    rows = [(r.result_id, str(r.examples), worst_cell(r), _verdict(r))
            for r in report.results]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    failed = [r for r in report.results if r.failed]
    fragile = [r for r in report.results if r.status == "robustness"]
    lines.append("")
    if fragile:
        effect = ("counted as failures" if report.robustness_fails else
                  "reported only (--robustness report)")
        lines.append(f"robustness: {_count(len(fragile), 'check')} saw inf or NaN "
                     f"where the exact values are finite; {effect}")
    where = "" if shard is None else f" (shard {shard[0]}/{shard[1]})"
    if not failed and not (fragile and report.robustness_fails):
        lines.append(_conformant_line(report, shard))
    elif any(r.status == "violated" for r in failed):
        violated = [r for r in failed if r.status == "violated"]
        lines.append(f"NOT conformant{where}: {len(failed)} of "
                     f"{len(report.results)} checks failed; the most specific is "
                     f"{most_specific(violated).result_id}")
    elif failed:
        lines.append(f"NOT conformant{where}: the backend misbehaved in "
                     f"{len(failed)} of {len(report.results)} checks (see below); "
                     "nothing could be judged there")
    else:
        lines.append(f"NOT conformant{where}: numerically fragile (see robustness "
                     "above)")
    return "\n".join(lines)


def _conformant_line(report: SuiteReport, shard: tuple[int, int] | None) -> str:
    """The closing line of a run in which nothing failed.

    A whole run counts its checks and the results they judge (a result can
    have more than one check); a shard says what share of the suite it ran.

    >>> from conformance.runner import ResultReport, SuiteReport
    >>> cost = ResultReport("cost", "Cost", result="cost")
    >>> one = SuiteReport("b", 0, 1, results=[cost])
    >>> _conformant_line(one, None)
    'conformant: 1 check of 1 result, none violated'
    >>> import textwrap
    >>> print(textwrap.fill(_conformant_line(one, (4, 4))))
    conformant on shard 4/4: 1 of the 15 checks, on 1 of the 13 results,
    none violated (merge every shard's report for the verdict on the whole
    suite)
    """
    checks = len(report.results)
    results = len({r.result or r.result_id for r in report.results})
    if shard is None:
        return (f"conformant: {_count(checks, 'check')} of "
                f"{_count(results, 'result')}, none violated")
    return (f"conformant on shard {shard[0]}/{shard[1]}: {checks} of the "
            f"{len(check_ids())} checks, on {results} of the {len(RESULTS)} "
            "results, none violated (merge every shard's report for the verdict "
            "on the whole suite)")


def empty_shard_line(shard: tuple[int, int], pool: int | None = None) -> str:
    """The closing line of a shard that holds no check (more shards than checks).

    >>> empty_shard_line((16, 16)).split("; ")
    ['shard 16/16 holds no check: 15 checks over 16 shards leave it empty', \
'nothing was judged']
    >>> empty_shard_line((2, 2), pool=1).split("; ")[0]
    'shard 2/2 holds no check: 1 check chosen with --only over 2 shards leaves it empty'
    """
    every = len(check_ids())
    pool = every if pool is None else pool
    chosen = "" if pool == every else " chosen with --only"
    verb = "leaves" if pool == 1 else "leave"
    return (f"shard {shard[0]}/{shard[1]} holds no check: {_count(pool, 'check')}"
            f"{chosen} over {shard[1]} shards {verb} it empty; nothing was judged")


def _count(number: int, noun: str) -> str:
    """``1 check``, ``2 checks``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


SPECIFICITY = (
    "loss-gradient.squared-error", "loss-gradient.softmax-cross-entropy",
    "layer-jacobian.affine", "layer-jacobian.activation", "layer-jacobian.softmax",
    "backprop.delta-recursion", "gradient-product", "backprop.batch-mean",
    "jacobian.products", "chain-rule", "jacobian", "total-derivative",
    "self-consistency", "robustness", "cost",
)
"""Results from the narrowest probe to the widest: the loss lemmas first (read
through the weight gradient, they involve no other Jacobian), then the layer
lemmas, judged on one layer and one example, the theorems on deep networks, then batches; the
definitions on any network. A mistake is best explained by the narrowest
result it violates."""


def most_specific(failed: list[ResultReport]) -> ResultReport:
    """The failed result whose probe is narrowest (see :data:`SPECIFICITY`)."""
    def rank(result: ResultReport) -> int:
        ids = list(SPECIFICITY)
        return ids.index(result.result_id) if result.result_id in ids else len(ids)
    return min(failed, key=rank)


def judged_nothing(result: ResultReport) -> bool:
    """Whether no error in units of the bound stands for this check's answers.

    So it is where the backend misbehaved (raised, hung, answered in the
    wrong shape...), where the check stopped or was not run, and where
    nothing was applicable. An expected failure keeps what it was: one
    without a counterexample was a check that stopped or was not run (a
    violation or an overflow always has one).
    """
    if result.status in ("error", "not-applicable"):
        return True
    if result.counterexample is not None:
        return isinstance(result.counterexample.outcome, BackendError)
    return result.status == "expected-failure"


def worst_cell(result: ResultReport) -> str:
    """The "worst error / bound" cell: ``-`` where nothing was judged."""
    if judged_nothing(result):
        return "-"
    if result.counterexample and isinstance(result.counterexample.outcome, Violated):
        value = result.counterexample.outcome.worst_error_in_bounds
        return "inf" if value == float("inf") else f"{value:.3g}"
    return f"{result.worst_error_in_bounds:.3g}"


def _verdict(result: ResultReport) -> str:
    word = VERDICT_WORDS[result.status]
    notes = []
    if result.not_applicable and result.status == "holds":
        notes.append(f"{result.not_applicable} at kinks")
    notes.extend(sorted(result.conventions))
    return f"{word} ({'; '.join(notes)})" if notes else word


def render_failures(report: SuiteReport) -> str:
    """For each failed result: the diagnosis, the minimal case, a reproducer."""
    blocks = []
    for result in report.results:
        if not (result.failed or result.status == "robustness"):
            continue
        lines = [f"== {result.result_id}: {result.title} =="]
        if result.counterexample is None:
            lines.append(result.message)
        else:
            outcome = result.counterexample.outcome
            lines.append(outcome.describe() if isinstance(outcome, Violated)
                         else outcome.message)
            lines.append(f"minimal case: {result.counterexample.case.describe()}")
            lines.append("reproduce with:")
            lines.extend("    " + line for line in
                         result.counterexample.reproducer.splitlines())
        if result.not_applicable_reason and result.status == "not-applicable":
            lines.append(result.not_applicable_reason)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def to_json(report: SuiteReport, *, backend_spec: str | None = None) -> dict[str, Any]:
    """The report as JSON-ready data (schema version :data:`REPORT_SCHEMA_VERSION`).

    ``backend_spec`` is what the backend was loaded by (``--backend``): two
    backends may share a name, and ``merge`` tells them apart by it.
    """
    spec = {} if backend_spec is None else {"backend_spec": backend_spec}
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "backend": report.backend,
        **spec,
        "seed": report.seed,
        "examples_per_result": report.examples,
        "complete": report.complete,
        "dtype": report.dtype,
        "robustness": "fail" if report.robustness_fails else "report",
        # An unfinished run has not shown conformance, whatever it found so far.
        "conformant": report.complete and report.conformant,
        "results": [_result_json(r) for r in report.results],
    }


def _result_json(result: ResultReport) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": result.result_id,
        "result": result.result or result.result_id,
        "title": result.title,
        "status": result.status,
        "examples": result.examples,
        "judged": result.judged,
        "not_applicable": result.not_applicable,
        "worst_error_in_bounds": (None if judged_nothing(result)
                                  else _finite(result.worst_error_in_bounds)),
        "conventions": sorted(result.conventions),
        "seconds": round(result.seconds, 3),
    }
    if result.message:
        data["message"] = result.message
    if result.counterexample is not None:
        data["counterexample"] = _counterexample_json(result)
    return data


def _counterexample_json(result: ResultReport) -> dict[str, Any]:
    assert result.counterexample is not None
    case = result.counterexample.case
    outcome = result.counterexample.outcome
    data: dict[str, Any] = {
        "network": {"widths": list(case.network.widths),
                    "activations": [a.value for a in case.network.activations],
                    "loss": case.network.loss.value},
        "weights": [w.tolist() for w in case.parameters.weights],
        "biases": [b.tolist() for b in case.parameters.biases],
        "inputs": case.inputs.tolist(),
        "targets": case.targets.tolist(),
        "probe_seed": case.probe_seed,
        "reproducer": result.counterexample.reproducer,
    }
    if isinstance(outcome, BackendError):
        data["backend_error"] = outcome.message
    elif isinstance(outcome, RobustnessError):
        data["robustness_error"] = outcome.message
    else:
        data.update({
            "quantity": outcome.location.quantity,
            "layer": outcome.location.layer_index,
            "index": list(outcome.location.index),
            "expected": outcome.expected,
            "actual": _finite(outcome.actual),
            "absolute_error": _finite(outcome.absolute_error),
            "bound": outcome.bound,
            "error_in_bounds": _finite(outcome.worst_error_in_bounds),
            "diagnosis": outcome.describe(),
        })
    return data


def _finite(value: float) -> float | str:
    return value if value == value and abs(value) != float("inf") else str(value)


def json_text(report: SuiteReport, *, backend_spec: str | None = None) -> str:
    """The text of the JSON report file (see :func:`to_json`)."""
    return json.dumps(to_json(report, backend_spec=backend_spec), indent=2) + "\n"


def write_json(report: SuiteReport, path: Path, *,
               backend_spec: str | None = None) -> None:
    """Write the report atomically: a crash mid-write leaves the previous file."""
    write_atomically(path, json_text(report, backend_spec=backend_spec))


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` in one step (a crash leaves the old file).

    The text goes to a new file beside ``path``, which then replaces it; that
    file is removed whatever fails, so none is left behind. It is created with
    the permissions the umask gives any new file (as :func:`open` does), and
    written as UTF-8, a character UTF-8 cannot hold (a lone surrogate in a
    backend's message) becoming ``?``.

    Raises
    ------
    OSError
        The folder cannot hold a new file, or ``path`` cannot be replaced (a
        folder, or on a read-only file system).
    """
    data = text.encode("utf-8", errors="replace")
    handle, temporary = _new_file_beside(path)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _new_file_beside(path: Path) -> tuple[int, Path]:
    """A new, empty file in ``path``'s folder, open for writing, and its path."""
    for _ in range(100):
        temporary = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                           0o666), temporary
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def output_problem(path: Path) -> str | None:
    """Why a report cannot be written to ``path``, or None when it can.

    Tried before a run starts, so that a run of minutes does not end in a
    file that cannot be written: ``path`` must not be a folder or a device,
    its folder must exist, and a file must be creatable there (one is
    created and removed again).
    """
    if path.is_dir():
        return (f"a folder, not a file; name a file in it, such as "
                f"{path / 'report.json'}")
    if path.exists() and not path.is_file():
        return "not a regular file (a device, pipe or socket); name a file"
    folder = path.parent
    if not folder.is_dir():
        blocking = next((p for p in [folder, *folder.parents] if p.exists()), None)
        if blocking is not None and not blocking.is_dir():
            return f"{blocking} is a file, not a folder"
        return f"folder {folder} does not exist; create it first"
    try:
        handle, temporary = _new_file_beside(path)
    except OSError as error:
        return (f"cannot create a file in {folder} "
                f"({error.strerror or error}); choose a folder you can write to")
    os.close(handle)
    with contextlib.suppress(OSError):
        os.unlink(temporary)
    return None


def render_notes(report: SuiteReport) -> str:
    """Lines for known differences: expected failures and unexpected passes."""
    return "\n".join(f"{r.result_id}: {r.message}" for r in report.results
                     if r.status in ("expected-failure", "unexpected-pass"))
