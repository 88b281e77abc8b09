"""Shards, campaigns, merging and the matrix command: what each takes, refuses
and writes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conformance.campaign import shard_of
from conformance.runner import check_ids
from cli_runner import run_cli

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "docs" / "report-schema.json").read_text())
CHECKS = len(check_ids())

TWO_OF_A_NAME = (
    "from impl import ReferenceBackend\n"
    "from spec import LossAndGradients, Parameters\n"
    "class Right:\n"
    "    name = 'mine'\n"
    "    capabilities = frozenset()\n"
    "    def loss_and_gradients(self, network, parameters, inputs, targets):\n"
    "        return ReferenceBackend().loss_and_gradients(network, parameters,\n"
    "                                                     inputs, targets)\n"
    "class Doubled(Right):\n"
    "    def loss_and_gradients(self, network, parameters, inputs, targets):\n"
    "        g = super().loss_and_gradients(network, parameters, inputs,\n"
    "                                       targets).gradients\n"
    "        return LossAndGradients(0.0, Parameters(\n"
    "            tuple(2 * w for w in g.weights), g.biases))\n"
    "right, doubled = Right(), Doubled()\n")

OVERFLOWING = (
    "import numpy as np\n"
    "from impl import ReferenceBackend\n"
    "from spec import LossAndGradients, Parameters\n"
    "def backend(network, parameters, inputs, targets):\n"
    "    answer = ReferenceBackend().loss_and_gradients(network, parameters,\n"
    "                                                   inputs, targets)\n"
    "    factor = 1.0\n"
    "    if network.activations[0].value in ('sigmoid', 'tanh', 'softplus',\n"
    "                                        'elu'):\n"
    "        # exp of the first layer's pre-activations: inf past |z| = 709\n"
    "        z = inputs @ parameters.weights[0].T + parameters.biases[0]\n"
    "        with np.errstate(all='ignore'):\n"
    "            big = np.exp(np.max(np.abs(z)))\n"
    "            factor = big / big\n"
    "    g = answer.gradients\n"
    "    return LossAndGradients(answer.loss, Parameters(\n"
    "        tuple(w * factor for w in g.weights), g.biases))\n")


# Shards.

def test_a_shard_beyond_the_number_of_checks_is_empty() -> None:
    assert shard_of(check_ids(), CHECKS + 1, CHECKS + 1) == []
    assert shard_of(check_ids(), 20, 20) == []
    assert shard_of([], 1, 2) == []


@pytest.mark.parametrize("shard", [f"{CHECKS + 1}/{CHECKS + 1}", "20/20"])
def test_an_empty_shard_judges_nothing_says_so_and_leaves_an_empty_report(
        tmp_path: Path, shard: str) -> None:
    report, junit = tmp_path / "r.json", tmp_path / "j.xml"
    markdown = tmp_path / "m.md"
    number, shards = shard.split("/")

    result = run_cli("--shard", shard, "--quiet", "--report", str(report),
                     "--junit", str(junit), "--markdown", str(markdown))

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == (f"shard {number}/{shards} holds no check: {CHECKS} "
                             f"checks over {shards} shards leave it empty; "
                             "nothing was judged\n")
    data = json.loads(report.read_text())
    jsonschema.validate(data, SCHEMA)
    assert (data["complete"], data["results"]) == (True, [])
    suite = ET.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("errors"), suite.get("failures")) == \
        ("0", "0", "0")
    assert markdown.read_text().startswith(
        "## backprop-spec: `reference`: no verdict (no check in this run")


def test_a_shard_shares_out_the_checks_only_chose(tmp_path: Path) -> None:
    first, second = tmp_path / "1.json", tmp_path / "2.json"

    empty = run_cli("--shard", "2/2", "--only", "cost", "--report", str(second))
    # Given twice and out of order, the choice is still the suite's order.
    one = run_cli("--examples", "2", "--quiet", "--shard", "1/2", "--only", "cost",
                  "--only", "layer-jacobian.affine", "--only", "cost",
                  "--report", str(first))

    assert empty.returncode == 0, empty.stderr
    assert empty.stdout.splitlines()[-1] == (
        "shard 2/2 holds no check: 1 check chosen with --only over 2 shards "
        "leaves it empty; nothing was judged")
    assert json.loads(second.read_text())["results"] == []
    assert one.returncode == 0, one.stderr
    assert [r["id"] for r in json.loads(first.read_text())["results"]] == \
        ["layer-jacobian.affine"]


@pytest.mark.parametrize("value", ["-1/2", "0/2", "3/2"])
def test_a_shard_out_of_range_gets_the_shard_message(value: str) -> None:
    result = run_cli("--shard", value)

    assert result.returncode == 2
    assert result.stderr.startswith(
        f"python -m conformance: error: argument --shard: expected 1 <= I <= N, "
        f"got '{value}'\n")


# Campaigns.

@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--backends", ""), "--backends '': expected comma-separated backend "
         "names, got an empty one"),
        (("--backends", "reference,,torch"), "--backends 'reference,,torch': "
         "expected comma-separated backend names, got an empty one"),
        (("--backends", "reference", "--seeds=-1"), "--seeds '-1': expected 0 or "
         "more, got -1"),
        (("--backends", "reference", "--seeds", "-1,2"), "--seeds '-1,2': expected "
         "0 or more, got -1"),
        (("--backends", "reference", "--seeds", "x"), "--seeds 'x': expected a "
         "whole number, got 'x'"),
        (("--backends", "reference,torch,reference"), "--backends "
         "'reference,torch,reference': reference given more than once; the jobs "
         "of each would write the same report, so give each once"),
        (("--backends", "reference", "--seeds", "0,1,0"), "--seeds '0,1,0': 0 "
         "given more than once; the jobs of each would write the same report, so "
         "give each once"),
        (("--backends", "reference", "--seeds", "1,01"), "--seeds '1,01': a seed "
         "given more than once (as 1, 01); give each once"),
        (("--backends", "reference", "--dtypes", "float32,float32"), "--dtypes "
         "'float32,float32': float32 given more than once; the jobs of each would "
         "write the same report, so give each once"),
        (("--backends", "m:b_c,m_b:c"), "--backends: 'm:b_c' and 'm_b:c' would "
         "write reports of the same file name; run them as two campaigns with "
         "different --out folders"),
        (("--backends", "nosuch"), "--backends: 'nosuch' is not a known backend"),
        (("--backends", "reference", "--shards", str(CHECKS + 1)),
         f"--shards {CHECKS + 1}: the suite has {CHECKS} checks, so shards beyond "
         f"the {CHECKS}th would hold none; give --shards {CHECKS} or fewer"),
        (("--backends", "reference", "--examples", "100001"), "argument "
         "--examples: expected at most 100000 examples per check, got 100001"),
    ],
)
def test_a_campaign_is_checked_like_the_main_command(
        tmp_path: Path, arguments: tuple[str, ...], message: str) -> None:
    out = tmp_path / "campaign"

    result = run_cli("campaign", *arguments, "--out", str(out))

    assert result.returncode == 2
    assert result.stderr.startswith(
        f"python -m conformance campaign: error: {message}")
    assert len(result.stderr.splitlines()) == 2  # the message, and --help
    assert result.stdout == ""
    assert not out.exists()


def test_a_campaign_of_as_many_shards_as_checks_gives_each_one_check(
        tmp_path: Path) -> None:
    result = run_cli("campaign", "--backends", "reference", "--shards",
                     str(CHECKS), "--out", str(tmp_path))

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == CHECKS
    assert [line.split("--shard ")[1].split()[0] for line in lines] == \
        [f"{i}/{CHECKS}" for i in range(1, CHECKS + 1)]


# Merging.

def _run(tmp_path: Path, spec: str, name: str, *extra: str) -> Path:
    path = tmp_path / name
    result = run_cli("--backend", spec, "--examples", "2", "--only",
                     "gradient-product", "--report", str(path), *extra,
                     extra_path=tmp_path)
    assert result.returncode in (0, 1), result.stderr
    return path


def test_merge_keeps_two_backends_of_one_name_apart(tmp_path: Path) -> None:
    (tmp_path / "two.py").write_text(TWO_OF_A_NAME)
    right = _run(tmp_path, "two:right", "right.json")
    doubled = _run(tmp_path, "two:doubled", "doubled.json")

    result = run_cli("merge", str(right), str(doubled))

    data = json.loads(right.read_text())
    jsonschema.validate(data, SCHEMA)
    assert (data["backend"], data["backend_spec"]) == ("mine", "two:right")
    rows = [line.split("; missing")[0] for line in result.stdout.splitlines()]
    assert result.returncode == 1
    assert rows == [
        f"two:doubled (named 'mine') float64 seed 0: 1 of {CHECKS} checks, "
        "FAILED: gradient-product",
        f"two:right (named 'mine') float64 seed 0: 1 of {CHECKS} checks, none "
        "failed, no verdict yet"]


def test_merge_refuses_a_report_without_spec_whose_name_another_backend_has(
        tmp_path: Path) -> None:
    (tmp_path / "two.py").write_text(TWO_OF_A_NAME)
    right = _run(tmp_path, "two:right", "right.json")
    doubled = _run(tmp_path, "two:doubled", "doubled.json")
    older = json.loads(right.read_text())
    del older["backend_spec"]
    right.write_text(json.dumps(older))

    result = run_cli("merge", str(right), str(doubled))

    assert result.returncode == 2
    assert result.stderr == (
        f"python -m conformance merge: error: {right}: records no backend_spec, "
        "and backend name 'mine' is also that of two:doubled; which backend it "
        "judged cannot be told, so it is not merged under either: run its job "
        "again to record the spec\n")


@pytest.mark.parametrize(("version", "said"), [(99, "has schema_version 99"),
                                               ("1", "has schema_version '1'"),
                                               (None, "records no schema_version")])
def test_merge_refuses_a_report_of_another_schema_version(
        tmp_path: Path, version: Any, said: str) -> None:
    path = tmp_path / "future.json"
    data = {"schema_version": version, "backend": "x", "seed": 0,
            "examples_per_result": 1, "complete": True, "dtype": "float64",
            "conformant": True, "results": []}
    if version is None:
        del data["schema_version"]
    path.write_text(json.dumps(data))

    result = run_cli("merge", str(path))

    assert result.returncode == 2
    assert result.stderr == (
        f"python -m conformance merge: error: {path}: {said}, and this version of "
        "backprop-spec reads reports of schema versions 1 and 2 only; merge it "
        "with the version that wrote it, or run its job again with this one\n")


def test_merge_reads_a_report_of_schema_version_1(tmp_path: Path) -> None:
    # Version 1 had no backend_spec or robustness and a number where version
    # 2 may write null; a report of a full run, turned back into version 1.
    path = tmp_path / "old.json"
    run = run_cli("--examples", "2", "--quiet", "--report", str(path))
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads(path.read_text())
    assert data["schema_version"] == 2
    data["schema_version"] = 1
    del data["backend_spec"], data["robustness"]
    for row in data["results"]:
        if row["worst_error_in_bounds"] is None:
            row["worst_error_in_bounds"] = 0
    path.write_text(json.dumps(data))

    result = run_cli("merge", str(path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "conformant" in result.stdout


def test_merge_honours_the_robustness_setting_each_report_was_written_with(
        tmp_path: Path) -> None:
    (tmp_path / "overflowing.py").write_text(OVERFLOWING)
    reported = tmp_path / "reported.json"
    run = run_cli("--backend", "overflowing:backend", "--examples", "3", "--quiet",
                  "--robustness", "report", "--report", str(reported),
                  extra_path=tmp_path)
    data = json.loads(reported.read_text())
    overflowed = [r["id"] for r in data["results"] if r["status"] == "robustness"]
    failing = tmp_path / "failing.json"
    failing.write_text(json.dumps(dict(data, robustness="fail")))

    merged = run_cli("merge", str(reported))
    merged_failing = run_cli("merge", str(failing))

    assert run.returncode == 0, run.stdout + run.stderr
    assert overflowed, "the backend was meant to overflow somewhere"
    assert (data["robustness"], data["conformant"]) == ("report", True)
    jsonschema.validate(data, SCHEMA)
    assert merged.returncode == 0, merged.stdout
    assert merged.stdout == (
        f"overflowing:backend float64 seed 0: {CHECKS} checks, conformant; "
        f"overflows reported only (--robustness report): {', '.join(overflowed)}\n")
    assert merged_failing.returncode == 1
    assert merged_failing.stdout == (
        f"overflowing:backend float64 seed 0: {CHECKS} checks, FAILED: "
        f"{', '.join(overflowed)}\n")


# The matrix.

def test_matrix_checks_the_readme_before_running_any_backend(
        tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# A project\n\nNo matrix markers here.\n")
    out = tmp_path / "matrix"

    result = run_cli("matrix", "--backends", "reference", "--out", str(out),
                     "--readme", str(readme))
    missing = run_cli("matrix", "--backends", "reference", "--out", str(out),
                      "--readme", str(tmp_path / "absent.md"))

    assert result.returncode == 2
    assert result.stderr == (
        f"python -m conformance matrix: error: --readme {readme}: has no "
        "<!-- conformance-matrix:start --> ... <!-- conformance-matrix:end --> "
        "block to replace; add the two markers, in that order, where the matrix "
        "goes\n")
    assert "running" not in result.stderr
    assert not out.exists()
    assert missing.returncode == 2
    assert missing.stderr == (f"python -m conformance matrix: error: --readme "
                              f"{tmp_path / 'absent.md'}: no such file\n")


def test_matrix_writes_its_files_and_the_readme_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- conformance-matrix:start -->\nSTALE BLOCK\n"
                      "<!-- conformance-matrix:end -->\noutro\n")
    out = tmp_path / "matrix"

    result = run_cli("matrix", "--backends", "reference", "--examples", "1",
                     "--out", str(out), "--readme", str(readme))

    assert result.returncode == 0, result.stdout + result.stderr
    table = (out / "matrix.md").read_text()
    assert "| reference | conformant |" in table
    assert json.loads((out / "matrix.json").read_text())
    text = readme.read_text()
    assert text.startswith("intro\n<!-- conformance-matrix:start -->\n")
    assert text.endswith("<!-- conformance-matrix:end -->\noutro\n")
    assert "STALE BLOCK" not in text and "| reference | conformant |" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "matrix"]
