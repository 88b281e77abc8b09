"""Turning a :class:`SuiteReport` into the printed table and the JSON file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from conformance.checks import BackendError, RobustnessError
from conformance.runner import ResultReport, SuiteReport
from spec import Violated

REPORT_SCHEMA_VERSION = 1
"""Version of the JSON report layout; raised whenever a field changes meaning."""

VERDICT_WORDS = {
    "holds": "holds",
    "violated": "VIOLATED",
    "error": "BACKEND ERROR",
    "not-applicable": "not applicable",
    "robustness": "OVERFLOWS",
    "expected-failure": "expected failure",
    "unexpected-pass": "UNEXPECTEDLY PASSING",
}


def render_table(report: SuiteReport) -> str:
    """The per-result table, one row a result, and a closing line."""
    header = ("result", "examples", "worst error / bound", "verdict")
    rows = [(r.result_id, str(r.examples), _worst(r), _verdict(r))
            for r in report.results]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(4)]
    lines = [f"backend {report.backend!r}, seed {report.seed}, "
             f"{report.examples} examples per check", ""]
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    failed = [r for r in report.results if r.failed]
    fragile = [r for r in report.results if r.status == "robustness"]
    lines.append("")
    if fragile:
        effect = ("counted as failures" if report.robustness_fails else
                  "reported only (--robustness report)")
        lines.append(f"robustness: {len(fragile)} results saw inf or NaN where the "
                     f"exact values are finite; {effect}")
    if not failed and not (fragile and report.robustness_fails):
        results = len({r.result or r.result_id for r in report.results})
        lines.append(f"conformant: {len(report.results)} checks of {results} "
                     "results, none violated")
    elif any(r.status == "violated" for r in failed):
        violated = [r for r in failed if r.status == "violated"]
        lines.append(f"NOT conformant: {len(failed)} of {len(report.results)} "
                     f"checks failed; the most specific is "
                     f"{most_specific(violated).result_id}")
    elif failed:
        lines.append(f"NOT conformant: the backend misbehaved in {len(failed)} of "
                     f"{len(report.results)} checks (see below); nothing could "
                     "be judged there")
    else:
        lines.append("NOT conformant: numerically fragile (see robustness above)")
    return "\n".join(lines)


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


def _worst(result: ResultReport) -> str:
    if result.status == "not-applicable":
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


def to_json(report: SuiteReport) -> dict[str, Any]:
    """The report as JSON-ready data (schema version :data:`REPORT_SCHEMA_VERSION`)."""
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "backend": report.backend,
        "seed": report.seed,
        "examples_per_result": report.examples,
        "complete": report.complete,
        "dtype": report.dtype,
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
        "worst_error_in_bounds": _finite(result.worst_error_in_bounds),
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


def write_json(report: SuiteReport, path: Path) -> None:
    """Write the report atomically: a crash mid-write leaves the previous file."""
    text = json.dumps(to_json(report), indent=2)
    directory = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text + "\n")
    os.replace(temporary, path)


def render_notes(report: SuiteReport) -> str:
    """Lines for known differences: expected failures and unexpected passes."""
    return "\n".join(f"{r.result_id}: {r.message}" for r in report.results
                     if r.status in ("expected-failure", "unexpected-pass"))
