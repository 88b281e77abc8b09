"""Reports for CI systems: JUnit XML and a Markdown summary.

Both are rewritten after every result, like the JSON report, so an
interrupted or crashed run leaves everything finished so far on disk, marked
incomplete.
"""

from __future__ import annotations

import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from conformance.report import VERDICT_WORDS, render_failures, worst_cell
from conformance.runner import ResultReport, SuiteReport


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` in one step (a crash leaves the old file)."""
    directory = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(temporary, path)


def to_junit(report: SuiteReport) -> str:
    """The report as JUnit XML: one ``testcase`` per check.

    Violations and robustness failures are ``failure`` elements, backend
    errors ``error`` elements, not-applicable checks ``skipped``.
    """
    failures = sum(r.status in ("violated", "robustness") for r in report.results)
    errors = sum(r.status == "error" for r in report.results)
    skipped = sum(r.status == "not-applicable" for r in report.results)
    suite = ET.Element("testsuite", {
        "name": f"backprop-spec conformance of {report.backend}",
        "tests": str(len(report.results)), "failures": str(failures),
        "errors": str(errors), "skipped": str(skipped),
        "time": f"{sum(r.seconds for r in report.results):.3f}"})
    properties = ET.SubElement(suite, "properties")
    for name, value in (("seed", report.seed), ("examples", report.examples),
                        ("dtype", report.dtype), ("complete", report.complete)):
        ET.SubElement(properties, "property", {"name": name, "value": str(value)})
    for result in report.results:
        _testcase(suite, report, result)
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def _testcase(suite: ET.Element, report: SuiteReport, result: ResultReport) -> None:
    case = ET.SubElement(suite, "testcase", {
        "classname": f"conformance.{report.backend}", "name": result.result_id,
        "time": f"{result.seconds:.3f}"})
    detail = _detail(report, result)
    if result.status in ("violated", "robustness"):
        element = ET.SubElement(case, "failure", {
            "message": VERDICT_WORDS[result.status], "type": result.status})
        element.text = detail
    elif result.status == "error":
        element = ET.SubElement(case, "error", {"message": "backend error",
                                                "type": "error"})
        element.text = detail
    elif result.status in ("not-applicable", "expected-failure"):
        ET.SubElement(case, "skipped", {
            "message": result.message or result.not_applicable_reason})


def _detail(report: SuiteReport, result: ResultReport) -> str:
    single = SuiteReport(report.backend, report.seed, report.examples,
                         report.dtype, [result], report.complete,
                         report.robustness_fails)
    return render_failures(single) or result.message


def to_markdown(report: SuiteReport) -> str:
    """A Markdown summary: the verdict table and each failure's reproducer."""
    if not report.complete and report.conformant:
        heading = (f"`{report.backend}`: no verdict (INCOMPLETE: the run was "
                   "interrupted; nothing failed in the checks it finished)")
    else:
        verdict = "conformant" if report.conformant else "**not conformant**"
        state = "" if report.complete else " (INCOMPLETE: the run was interrupted)"
        heading = f"`{report.backend}` is {verdict}{state}"
    lines = [f"## backprop-spec: {heading}", "",
             f"Seed {report.seed}, {report.examples} examples per check, "
             f"{report.dtype}.", "",
             "| check | examples | worst error / bound | verdict |",
             "|---|---|---|---|"]
    for result in report.results:
        lines.append(f"| `{result.result_id}` | {result.examples} | "
                     f"{worst_cell(result)} | "
                     f"{VERDICT_WORDS.get(result.status, result.status)} |")
    failures = render_failures(report)
    if failures:
        lines += ["", "```text", failures, "```"]
    return "\n".join(lines) + "\n"
