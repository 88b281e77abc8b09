"""What the command line tells its user: the hang diagnosis, the table's
"worst error / bound" cell where nothing was judged, and a shard's closing
line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from cli_runner import run_cli

REPO = Path(__file__).resolve().parents[2]

HANGING = (
    "import time\n"
    "def backend(network, parameters, inputs, targets):\n"
    "    time.sleep(60)\n")

RAISING_ON_BATCHES = (
    "from impl import ReferenceBackend\n"
    "def backend(network, parameters, inputs, targets):\n"
    "    if len(inputs) > 1:\n"
    "        raise RuntimeError('batches are not supported')\n"
    "    return ReferenceBackend().loss_and_gradients(network, parameters,\n"
    "                                                 inputs, targets)\n")


def test_a_hung_backend_is_diagnosed_once_with_the_limit_and_what_to_try(
        tmp_path: Path) -> None:
    (tmp_path / "hanging.py").write_text(HANGING)

    result = run_cli("--backend", "hanging:backend", "--time-limit", "0.5",
                     "--examples", "3", "--only", "total-derivative", "--only",
                     "self-consistency", extra_path=tmp_path)

    hang = (r"total-derivative: backend 'hanging:backend' did not answer within "
            r"0\.5 s \(the per-call time limit\) on network [^,]+, batch \d+, so "
            r"it was not called again in this run; if it is only slow, raise the "
            r"limit with --time-limit SECONDS \(--conformance-time-limit under "
            r"pytest\), otherwise look for a loop or a wait that never ends")
    lines = result.stdout.splitlines()
    assert result.returncode == 1
    assert [line for line in lines if line.startswith("total-derivative: ")] \
        and all(re.fullmatch(hang, line) for line in lines
                if line.startswith("total-derivative: "))
    assert any(re.fullmatch(f"self-consistency: not run, because {hang}", line)
               for line in lines)
    assert all(line.count("backend 'hanging:backend'") <= 1 for line in lines)
    assert "Traceback" not in result.stdout + result.stderr


def test_rows_where_the_backend_misbehaved_show_no_worst_error(
        tmp_path: Path) -> None:
    (tmp_path / "batchless.py").write_text(RAISING_ON_BATCHES)
    markdown, report = tmp_path / "summary.md", tmp_path / "report.json"

    result = run_cli("--backend", "batchless:backend", "--examples", "10",
                     "--only", "backprop.batch-mean", "--only",
                     "layer-jacobian.affine", "--markdown", str(markdown),
                     "--report", str(report), extra_path=tmp_path)

    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()
            if line.startswith(("backprop.batch-mean ", "layer-jacobian.affine "))}
    table = {line.split(" | ")[0]: line.split(" | ")[1:]
             for line in markdown.read_text().splitlines() if line.startswith("| `")}
    assert result.returncode == 1
    examples, cell, *verdict = rows["backprop.batch-mean"]
    assert (cell, verdict) == ("-", ["BACKEND", "ERROR"])
    assert table["| `backprop.batch-mean`"] == [examples, "-", "BACKEND ERROR |"]
    # A check that judged its examples keeps its number, in both formats.
    affine = rows["layer-jacobian.affine"]
    assert affine[2:] == ["holds"] and 0 <= float(affine[1]) <= 1
    assert table["| `layer-jacobian.affine`"] == [affine[0], affine[1], "holds |"]
    # In JSON: null for the error row, the same number for the other, and
    # the report still follows the documented schema.
    data = json.loads(report.read_text())
    jsonschema.validate(data, json.loads(
        (REPO / "docs" / "report-schema.json").read_text()))
    worst = {r["id"]: r["worst_error_in_bounds"] for r in data["results"]}
    assert worst["backprop.batch-mean"] is None
    assert f"{worst['layer-jacobian.affine']:.3g}" == affine[1]


@pytest.mark.parametrize(("shard", "shards", "mine", "results"), [
    # The suite's 15 checks (13 results) dealt round robin: shard 4 of 4
    # takes the 4th, 8th and 12th, each of its own result.
    (4, 4, ["jacobian.products", "layer-jacobian.softmax",
            "backprop.delta-recursion"], 3),
    (1, 15, ["total-derivative"], 1),
])
def test_a_shard_says_which_share_of_the_checks_and_results_it_judged(
        shard: int, shards: int, mine: list[str], results: int,
        tmp_path: Path) -> None:
    report = tmp_path / "shard.json"

    result = run_cli("--examples", "2", "--quiet", "--shard", f"{shard}/{shards}",
                     "--report", str(report))

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == (
        f"conformant on shard {shard}/{shards}: {len(mine)} of the 15 checks, on "
        f"{results} of the 13 results, none violated (merge every shard's report "
        "for the verdict on the whole suite)")
    assert [r["id"] for r in json.loads(report.read_text())["results"]] == mine


def test_a_run_of_one_check_says_check_and_result_in_the_singular() -> None:
    result = run_cli("--examples", "2", "--quiet", "--only", "layer-jacobian.affine")

    assert result.returncode == 0
    assert result.stdout.strip() == "conformant: 1 check of 1 result, none violated"


HANGING_ON_BATCHES = (
    "import time\n"
    "from impl import ReferenceBackend\n"
    "def backend(network, parameters, inputs, targets):\n"
    "    if len(inputs) > 1:\n"
    "        time.sleep(60)\n"
    "    return ReferenceBackend().loss_and_gradients(network, parameters,\n"
    "                                                 inputs, targets)\n")


def test_the_case_shown_after_a_hang_is_the_one_the_backend_hung_on(
        tmp_path: Path) -> None:
    # The backend answers single examples and hangs on batches. After the
    # hang it is not called again, so a shrunk case (one example, which it
    # would have answered) would be a case it never saw.
    (tmp_path / "slow_batches.py").write_text(HANGING_ON_BATCHES)
    report = tmp_path / "report.json"

    result = run_cli("--backend", "slow_batches:backend", "--time-limit", "0.5",
                     "--examples", "20", "--only", "backprop.batch-mean",
                     "--report", str(report), extra_path=tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    (row,) = json.loads(report.read_text())["results"]
    assert row["status"] == "error"
    assert len(row["counterexample"]["inputs"]) > 1
    batch = len(row["counterexample"]["inputs"])
    assert f"batch {batch}, so it was not called again" in result.stdout


def test_a_time_limit_given_to_one_run_does_not_carry_into_the_next() -> None:
    from conformance._guard import POLICY
    from conformance.runner import run_suite
    from impl import ReferenceBackend

    before = (POLICY.time_limit, POLICY.check_determinism)
    limit = (before[0] or 0.0) + 7
    seen: list[tuple[float | None, bool]] = []
    run_suite(ReferenceBackend(), backend_spec="reference", examples=1,
              only=["layer-jacobian.affine"], time_limit=limit,
              check_determinism=not before[1],
              on_result=lambda _: seen.append((POLICY.time_limit,
                                               POLICY.check_determinism)))

    assert seen[-1] == (limit, not before[1])
    assert (POLICY.time_limit, POLICY.check_determinism) == before


def test_plain_progress_lines_count_examples_in_the_singular_and_plural(
        capsys: pytest.CaptureFixture[str]) -> None:
    from conformance.progress import PlainProgress
    from conformance.runner import ResultReport, SuiteReport

    report = SuiteReport("reference", 0, 3)
    progress = PlainProgress(2, 3)
    report.results.append(ResultReport("cost", "Cost", examples=1, seconds=0.25))
    progress.finished(report)
    report.results.append(ResultReport("jacobian", "Jacobian", status="violated",
                                       examples=3, seconds=1.0))
    progress.finished(report)

    assert capsys.readouterr().err.splitlines() == [
        "[1/2] cost: holds (1 example, 0.2 s)",
        "[2/2] jacobian: violated (3 examples, 1.0 s)"]
