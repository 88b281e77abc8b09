"""The command line: exit statuses, messages, the table and the JSON report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.runner import check_ids
from spec import RESULTS
from cli_runner import run_cli

REPO = Path(__file__).resolve().parents[2]


def test_default_run_judges_the_reference_backend_conformant() -> None:
    result = run_cli()

    assert result.returncode == 0, result.stdout + result.stderr
    assert "backend 'reference'" in result.stdout
    assert (f"conformant: {len(check_ids())} checks of {len(RESULTS)} results, "
            "none violated") in result.stdout
    for result_id in ("total-derivative", "gradient-product", "backprop.batch-mean"):
        assert result_id in result.stdout


def test_default_run_on_torch_is_conformant() -> None:
    pytest.importorskip("torch")

    result = run_cli("--backend", "torch")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "backend 'torch'" in result.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--bogus",), "unrecognized arguments: --bogus"),
        (("--examples", "0"), "--examples: expected at least 1, got 0"),
        (("--examples", "many"), "--examples: expected a whole number, got 'many'"),
        (("--examples", "100001"), "--examples: expected at most 100000 examples "
         "per check, got 100001"),
        (("--shard", "-1/2"), "--shard: expected 1 <= I <= N, got '-1/2'"),
        (("--shard", "2"), "--shard: expected I/N such as 2/4, got '2'"),
        (("--seed", "-3"), "expected 0 or more, got -3"),
        (("--only", "no-such-result"), "invalid choice: 'no-such-result'"),
        (("--backend", "nosuch"), "backend 'nosuch' is not a known backend"),
        (("--backend", "nosuchmodule:backend"), "cannot import module 'nosuchmodule'"),
        (("--backend", "json:nothing_here"), "module 'json' has no attribute"),
        (("--backend", "os:sep"), "os:sep is a str, not a backend"),
        (("--report", "/no/such/folder/r.json"), "folder /no/such/folder does not"),
    ],
)
def test_bad_command_lines_exit_2_with_one_clear_message(
    arguments: tuple[str, ...], message: str
) -> None:
    result = run_cli(*arguments)

    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def _report_of_two_checks(path: Path) -> Path:
    """A complete, conformant report of ``reference`` on two checks."""
    run_cli("--examples", "2", "--only", "cost", "--only", "layer-jacobian.affine",
            "--report", str(path))
    return path


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("absent.json", None, "{path}: no such file (give the JSON reports the "
         "campaign's commands wrote with --report)"),
        ("folder", "", "{path}: a folder, not a report file (give its JSON files, "
         "e.g. {path}/*.json)"),
        ("notes.json", "shard 1 done\n", "{path}: not JSON (Expecting value: line 1 "
         "column 1 (char 0)); give the JSON files written by --report"),
        ("list.json", "[1, 2]", "{path}: not a conformance report (a JSON list, "
         "expected an object)"),
        ("other.json", '{"backend": "x", "results": []}', "{path}: not a "
         "conformance report (no valid 'seed'; give the JSON files written by "
         "--report)"),
    ],
)
def test_merge_given_a_path_that_is_no_report_exits_2_with_one_clear_message(
        tmp_path: Path, name: str, content: str | None, message: str) -> None:
    good = _report_of_two_checks(tmp_path / "good.json")
    path = tmp_path / name
    if content == "":
        path.mkdir()
    elif content is not None:
        path.write_text(content)

    result = run_cli("merge", str(good), str(path))

    assert result.returncode == 2
    assert result.stderr == ("python -m conformance merge: error: "
                             + message.format(path=path) + "\n")
    assert result.stdout == ""


def test_merge_without_reports_is_a_usage_error_of_merge() -> None:
    result = run_cli("merge")

    assert result.returncode == 2
    assert result.stderr == ("python -m conformance merge: error: the following "
                             "arguments are required: REPORT\n"
                             "try 'python -m conformance merge --help'\n")


def test_help_shows_examples() -> None:
    result = run_cli("--help")

    assert result.returncode == 0
    assert "python -m conformance --backend torch" in result.stdout


def test_report_file_holds_every_result_with_its_verdict(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"

    result = run_cli("--examples", "5", "--seed", "3", "--report", str(report_path))

    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(report_path.read_text())
    assert data["schema_version"] == 2
    assert data["complete"] is True and data["conformant"] is True
    assert data["backend"] == "reference" and data["seed"] == 3
    assert [r["id"] for r in data["results"]] == check_ids()
    assert {r["result"] for r in data["results"]} == {r.id for r in RESULTS}
    assert all(r["status"] in ("holds", "not-applicable") for r in data["results"])
    assert all(0 <= r["worst_error_in_bounds"] <= 1 for r in data["results"])


def test_a_backend_that_raises_is_diagnosed_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "raising_backend.py").write_text(
        "def backend(network, parameters, inputs, targets):\n"
        "    raise RuntimeError('out of coffee')\n")

    result = run_cli("--examples", "3", "--only", "gradient-product", "--backend",
                     "raising_backend:backend", extra_path=tmp_path)

    assert result.returncode == 1
    assert "BACKEND ERROR" in result.stdout
    assert "raised RuntimeError: out of coffee" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_a_backend_returning_the_wrong_shape_is_diagnosed(tmp_path: Path) -> None:
    (tmp_path / "shape_backend.py").write_text(
        "import numpy as np\n"
        "def backend(network, parameters, inputs, targets):\n"
        "    return (0.0, [np.zeros((w.shape[0] + 1, 1)) for w in parameters.weights],\n"
        "            [np.zeros(b.shape) for b in parameters.biases])\n")

    result = run_cli("--examples", "3", "--only", "backprop.batch-mean", "--backend",
                     "shape_backend:backend", extra_path=tmp_path)

    assert result.returncode == 1
    assert "returned a weight gradient of shape (2, 1) for layer 1, expected (1, 1)" \
        in result.stdout
    assert "(the shape of the parameter)" in result.stdout


def test_a_backend_that_writes_into_its_inputs_is_diagnosed(tmp_path: Path) -> None:
    (tmp_path / "mutating_backend.py").write_text(
        "from impl import ReferenceBackend\n"
        "def backend(network, parameters, inputs, targets):\n"
        "    answer = ReferenceBackend().loss_and_gradients(network, parameters,\n"
        "                                                  inputs, targets)\n"
        "    inputs *= 2.0\n"
        "    return answer\n")

    result = run_cli("--examples", "3", "--only", "backprop.batch-mean", "--backend",
                     "mutating_backend:backend", extra_path=tmp_path)

    assert result.returncode == 1
    assert "modified its argument inputs in place" in result.stdout


def test_a_failure_prints_a_reproducer_that_runs_as_is(tmp_path: Path) -> None:
    (tmp_path / "signflip_backend.py").write_text(
        "from impl import ReferenceBackend\n"
        "from spec import LossAndGradients, Parameters\n"
        "def backend(network, parameters, inputs, targets):\n"
        "    answer = ReferenceBackend().loss_and_gradients(network, parameters,\n"
        "                                                  inputs, targets)\n"
        "    g = answer.gradients\n"
        "    return LossAndGradients(answer.loss, Parameters(\n"
        "        tuple(-w for w in g.weights), tuple(-b for b in g.biases)))\n")
    result = run_cli("--examples", "10", "--only", "gradient-product", "--backend",
                     "signflip_backend:backend", extra_path=tmp_path)
    lines = result.stdout.splitlines()
    start = lines.index("reproduce with:") + 1
    script = "\n".join(line[4:] for line in lines[start:] if line.startswith("    "))

    replay = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}"}, timeout=300)

    assert result.returncode == 1
    assert replay.returncode == 0, replay.stderr
    assert replay.stdout.startswith("Violated(result_id='gradient-product'")
