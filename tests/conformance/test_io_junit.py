"""JUnit XML and Markdown whatever a backend's messages hold, and the JUnit of
a run that did not finish."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from conformance.formats import INCOMPLETE_CASE, to_junit, to_markdown
from conformance.runner import ResultReport, SuiteReport
from cli_runner import run_cli


GARBLED = (
    "def backend(network, parameters, inputs, targets):\n"
    "    raise ValueError('bad \\x00 null \\x07 bell \\x1b[31m red\\x1b[0m '\n"
    "                     '\\udcff surrogate ]]> cdata')\n")


def test_control_characters_and_surrogates_in_a_message_leave_valid_reports(
        tmp_path: Path) -> None:
    (tmp_path / "garbled.py").write_text(GARBLED)
    junit, markdown = tmp_path / "j.xml", tmp_path / "m.md"

    result = run_cli("--backend", "garbled:backend", "--examples", "2", "--only",
                     "gradient-product", "--junit", str(junit), "--markdown",
                     str(markdown), "-q", extra_path=tmp_path)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    suite = ET.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("errors")) == ("1", "1")
    error = suite.find("testcase/error")
    assert error is not None and error.text is not None
    assert ("raised ValueError: bad \\x00 null \\x07 bell  red \\udcff surrogate "
            "]]> cdata") in error.text
    assert "\x1b" not in error.text
    text = markdown.read_bytes().decode("utf-8")  # strict: it is UTF-8
    assert text.startswith("## backprop-spec: `garbled:backend` is **not "
                           "conformant**\n")
    assert "INCOMPLETE" not in text
    assert "raised ValueError: bad \\x00 null \\x07 bell  red \\udcff surrogate" \
        in text


def test_a_surrogate_in_a_message_is_printed_escaped_under_a_strict_encoding(
        tmp_path: Path) -> None:
    (tmp_path / "garbled.py").write_text(GARBLED)

    result = run_cli("--backend", "garbled:backend", "--examples", "2", "--only",
                     "gradient-product", extra_path=tmp_path,
                     env={"PYTHONIOENCODING": "utf-8"})

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "\\udcff surrogate ]]> cdata on network" in result.stdout


def _report(complete: bool, message: str = "") -> SuiteReport:
    cost = ResultReport("cost", "Cost", status="holds", result="cost", examples=3,
                        judged=3, worst_error_in_bounds=0.5, message=message)
    return SuiteReport("b\x1b[1m\x00", 0, 3, results=[cost], complete=complete)


def test_the_junit_of_a_run_that_did_not_finish_carries_an_error() -> None:
    planned = ["total-derivative", "cost", "robustness"]

    suite = ET.fromstring(to_junit(_report(complete=False), planned))

    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == \
        ("2", "0", "1")
    assert [c.get("name") for c in suite.iter("testcase")] == ["cost",
                                                              INCOMPLETE_CASE]
    error = suite.find(f"testcase[@name='{INCOMPLETE_CASE}']/error")
    assert error is not None
    assert error.get("type") == "incomplete"
    assert error.get("message") == (
        "the run did not finish (interrupted, crashed or still running); no "
        "verdict; 2 checks did not run: total-derivative, robustness")
    assert suite.get("name") == "backprop-spec conformance of b\\x00"


def test_the_junit_of_a_finished_run_has_no_incomplete_case() -> None:
    suite = ET.fromstring(to_junit(_report(complete=True), ["cost"]))

    assert (suite.get("tests"), suite.get("errors")) == ("1", "0")
    assert suite.find(f"testcase[@name='{INCOMPLETE_CASE}']") is None


def test_a_backend_name_cannot_break_the_markdown_heading() -> None:
    report = _report(complete=True)
    report.backend = "evil\n## injected\x1b[31m"

    first, second = to_markdown(report).splitlines()[:2]

    assert first == "## backprop-spec: `evil\\n## injected` is conformant"
    assert second == ""


def test_the_terminal_gets_a_backends_escape_sequences_written_out(
        tmp_path: Path) -> None:
    (tmp_path / "loud.py").write_text(
        "def backend(network, parameters, inputs, targets):\n"
        "    raise RuntimeError('\\x1b[31mred alert\\x1b[0m\\x07 done')\n")

    result = run_cli("--backend", "loud:backend", "--examples", "2", "--only",
                     "layer-jacobian.affine", cwd=tmp_path, extra_path=tmp_path)

    assert result.returncode == 1
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "raised RuntimeError: red alert\\x07 done" in result.stdout
