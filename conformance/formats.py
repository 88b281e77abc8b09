"""Reports for CI systems: JUnit XML and a Markdown summary.

Both are rewritten after every result, like the JSON report, so an
interrupted or crashed run leaves everything finished so far on disk, marked
incomplete.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from conformance.report import (
    VERDICT_WORDS,
    render_failures,
    worst_cell,
    write_atomically,
)
from conformance.runner import ResultReport, SuiteReport

__all__ = ["INCOMPLETE_CASE", "to_junit", "to_markdown", "write_atomically"]

INCOMPLETE_CASE = "run-incomplete"
"""Name of the ``testcase`` whose ``error`` marks the JUnit XML of a run that
did not finish, so that CI never shows an interrupted run as passing."""

_TERMINAL_CODES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
"""ANSI escape sequences (colours, cursor moves) a backend's message may hold."""

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 cannot hold, even as character references."""


def xml_safe(text: str) -> str:
    r"""``text`` without terminal escape sequences, and with every character XML
    1.0 cannot hold written out as its Python escape.

    >>> xml_safe("\x1b[31mshape\x1b[0m \x00 \udcff ok")
    'shape \\x00 \\udcff ok'
    """
    return _NOT_XML.sub(_escaped, _TERMINAL_CODES.sub("", text))


def _escaped(match: re.Match[str]) -> str:
    """The matched character as its Python escape (``\\x00``, ``\\udcff``)."""
    return match.group().encode("unicode_escape",
                                errors="backslashreplace").decode("ascii")


_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
"""Control characters (newline and tab aside) and lone surrogates."""


def printable(text: str, *, one_line: bool = False) -> str:
    r"""``text`` without terminal escape sequences, with other control
    characters and lone surrogates written as their Python escapes; with
    ``one_line`` newlines and tabs too.

    >>> printable("\x1b[31mred\x1b[0m\x07\nnext", one_line=True)
    'red\\x07\\nnext'
    """
    text = _TERMINAL_CODES.sub("", text)
    pattern = re.compile("[\t\n]|" + _UNPRINTABLE.pattern) if one_line \
        else _UNPRINTABLE
    return pattern.sub(_escaped, text)


def to_junit(report: SuiteReport, planned: Sequence[str] = ()) -> str:
    """The report as JUnit XML: one ``testcase`` per check.

    Violations and robustness failures are ``failure`` elements, backend
    errors ``error`` elements, not-applicable checks ``skipped``. A report
    of a run that did not finish has one more test case,
    :data:`INCOMPLETE_CASE`, with an ``error`` naming the checks of
    ``planned`` (those the run was to judge) that did not run. Every text
    goes through :func:`xml_safe`, so the XML is well formed whatever a
    backend's messages hold.
    """
    failures = sum(r.status in ("violated", "robustness") for r in report.results)
    errors = sum(r.status == "error" for r in report.results)
    skipped = sum(r.status == "not-applicable" for r in report.results)
    incomplete = not report.complete
    suite = ET.Element("testsuite", {
        "name": f"backprop-spec conformance of {report.backend}",
        "tests": str(len(report.results) + incomplete), "failures": str(failures),
        "errors": str(errors + incomplete), "skipped": str(skipped),
        "time": f"{sum(r.seconds for r in report.results):.3f}"})
    properties = ET.SubElement(suite, "properties")
    for name, value in (("seed", report.seed), ("examples", report.examples),
                        ("dtype", report.dtype), ("complete", report.complete)):
        ET.SubElement(properties, "property", {"name": name, "value": str(value)})
    for result in report.results:
        _testcase(suite, report, result)
    if incomplete:
        _incomplete_case(suite, report, planned)
    ET.indent(suite)
    return xml_safe(ET.tostring(suite, encoding="unicode",
                                xml_declaration=True)) + "\n"


def _incomplete_case(suite: ET.Element, report: SuiteReport,
                     planned: Sequence[str]) -> None:
    done = {r.result_id for r in report.results}
    not_run = [check for check in planned if check not in done]
    checks = f"{len(not_run)} check{'' if len(not_run) == 1 else 's'}"
    which = (f"{checks} did not run: {', '.join(not_run)}" if not_run
             else "which checks did not run is not known" if not planned
             else "every check ran, but the run did not close")
    message = ("the run did not finish (interrupted, crashed or still running); "
               f"no verdict; {which}")
    case = ET.SubElement(suite, "testcase", {
        "classname": f"conformance.{report.backend}", "name": INCOMPLETE_CASE,
        "time": "0.000"})
    element = ET.SubElement(case, "error", {"message": message,
                                            "type": "incomplete"})
    element.text = (f"{message}\nRun it again for a verdict; a report is "
                    "complete only once the run ends.")


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
    """A Markdown summary: the verdict table and each failure's reproducer.

    The backend's name and messages are shown :func:`printable` (a name on
    one line), so that they cannot break the layout.
    """
    name = printable(report.backend, one_line=True)
    if report.complete and not report.results:
        heading = (f"`{name}`: no verdict (no check in this run: an "
                   "empty shard)")
    elif not report.complete and report.conformant:
        heading = (f"`{name}`: no verdict (INCOMPLETE: the run was "
                   "interrupted; nothing failed in the checks it finished)")
    else:
        verdict = "conformant" if report.conformant else "**not conformant**"
        state = "" if report.complete else " (INCOMPLETE: the run was interrupted)"
        heading = f"`{name}` is {verdict}{state}"
    lines = [f"## backprop-spec: {heading}", "",
             f"Seed {report.seed}, {report.examples} examples per check, "
             f"{report.dtype}.", "",
             "| check | examples | worst error / bound | verdict |",
             "|---|---|---|---|"]
    for result in report.results:
        lines.append(f"| `{result.result_id}` | {result.examples} | "
                     f"{worst_cell(result)} | "
                     f"{VERDICT_WORDS.get(result.status, result.status)} |")
    failures = printable(render_failures(report))
    if failures:
        lines += ["", "```text", failures, "```"]
    return "\n".join(lines) + "\n"
