"""The runner people live with: reports, profiles, known differences,
parallel runs, shards and campaigns, interruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conformance.campaign import shard_of
from conformance.runner import check_ids, run_suite
from impl import ReferenceBackend, load_backend
from impl._loading import FunctionBackend
from spec import Activation, LossAndGradients, Network, Parameters
from cli_runner import run_cli

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "docs" / "report-schema.json").read_text())

SIGN_FLIP = (
    "from impl import ReferenceBackend\n"
    "from spec import LossAndGradients, Parameters\n"
    "def backend(network, parameters, inputs, targets):\n"
    "    answer = ReferenceBackend().loss_and_gradients(network, parameters,\n"
    "                                                  inputs, targets)\n"
    "    g = answer.gradients\n"
    "    return LossAndGradients(answer.loss, Parameters(\n"
    "        tuple(-w for w in g.weights), tuple(-b for b in g.biases)))\n")


@pytest.fixture()
def sign_flip(tmp_path: Path) -> Path:
    (tmp_path / "sign_flip.py").write_text(SIGN_FLIP)
    return tmp_path


def test_json_reports_of_passing_and_failing_runs_follow_the_documented_schema(
        tmp_path: Path, sign_flip: Path) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"

    run_cli("--examples", "3", "--report", str(good))
    run_cli("--examples", "3", "--backend", "sign_flip:backend", "--report",
            str(bad), extra_path=sign_flip)

    for path in (good, bad):
        jsonschema.validate(json.loads(path.read_text()), SCHEMA)
    failed = json.loads(bad.read_text())
    assert failed["conformant"] is False
    violated = [r for r in failed["results"] if r["status"] == "violated"]
    assert violated and all("reproducer" in r["counterexample"] for r in violated)


def test_the_schema_rejects_a_report_missing_a_field() -> None:
    with pytest.raises(jsonschema.ValidationError, match="'complete' is a required"):
        jsonschema.validate({"schema_version": 2, "backend": "x", "seed": 0,
                             "examples_per_result": 1, "conformant": True,
                             "dtype": "float64", "results": []}, SCHEMA)


def test_junit_xml_has_one_testcase_per_check_and_failures_for_violations(
        tmp_path: Path, sign_flip: Path) -> None:
    junit = tmp_path / "junit.xml"

    result = run_cli("--examples", "3", "--backend", "sign_flip:backend",
                     "--junit", str(junit), extra_path=sign_flip)

    suite = ET.parse(junit).getroot()
    names = [case.get("name") for case in suite.iter("testcase")]
    assert result.returncode == 1
    assert names == check_ids()
    assert int(suite.get("failures", "0")) >= 1
    failure = next(suite.iter("failure"))
    assert "reproduce with:" in (failure.text or "")


def test_markdown_summary_names_the_backend_and_every_check(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"

    run_cli("--examples", "3", "--markdown", str(summary))

    text = summary.read_text()
    assert text.startswith("## backprop-spec: `reference` is conformant")
    assert all(f"| `{check}` |" in text for check in check_ids())


def test_known_differences_are_reported_not_failed_and_a_fixed_one_is_flagged(
        tmp_path: Path, sign_flip: Path) -> None:
    known = tmp_path / "known.toml"
    known.write_text(
        '[[difference]]\nbackend = "sign_flip:backend"\n'
        'check = "loss-gradient.squared-error"\nreason = "sign convention"\n\n'
        '[[difference]]\nbackend = "*"\ncheck = "layer-jacobian.softmax"\n'
        'reason = "stale entry"\n')

    result = run_cli("--examples", "3", "--backend", "sign_flip:backend",
                     "--only", "loss-gradient.squared-error", "--expected-failures",
                     str(known), extra_path=sign_flip)
    fixed = run_cli("--examples", "3", "--only", "layer-jacobian.softmax",
                    "--expected-failures", str(known))

    assert result.returncode == 0, result.stdout
    assert "expected failure" in result.stdout
    assert "known difference: sign convention" in result.stdout
    assert fixed.returncode == 0
    assert "UNEXPECTEDLY PASSING" in fixed.stdout
    assert "holds now; remove it from the file" in fixed.stdout


def test_a_malformed_known_differences_file_is_a_usage_error(tmp_path: Path) -> None:
    known = tmp_path / "known.toml"
    known.write_text('[[difference]]\nbackend = "torch"\ncheck = "no-such-check"\n'
                     'reason = "x"\n')

    result = run_cli("--expected-failures", str(known))

    assert result.returncode == 2
    assert "names check 'no-such-check', which does not exist" in result.stderr


def test_profiles_set_the_number_of_examples_from_option_or_environment(
        tmp_path: Path) -> None:
    report = tmp_path / "r.json"

    run_cli("--only", "layer-jacobian.affine", "--report", str(report),
            env={"BACKPROP_SPEC_PROFILE": "dev"})
    from_environment = json.loads(report.read_text())["examples_per_result"]
    bad = run_cli("--only", "layer-jacobian.affine",
                  env={"BACKPROP_SPEC_PROFILE": "turbo"})

    assert from_environment == 10
    assert bad.returncode == 2
    assert "BACKPROP_SPEC_PROFILE='turbo' is not a profile" in bad.stderr


def test_two_worker_processes_give_the_same_verdicts_as_one() -> None:
    backend = load_backend("reference")

    serial = run_suite(backend, backend_spec="reference", examples=8)
    parallel = run_suite(backend, backend_spec="reference", examples=8, jobs=2)

    assert [(r.result_id, r.status, r.examples) for r in parallel.results] == \
        [(r.result_id, r.status, r.examples) for r in serial.results]


def test_shards_partition_the_checks() -> None:
    checks = check_ids()

    shards = [shard_of(checks, i, 3) for i in (1, 2, 3)]

    assert sorted(sum(shards, [])) == sorted(checks)
    assert all(shards)


def test_a_campaign_runs_on_an_existing_engine_and_merges(tmp_path: Path) -> None:
    out = tmp_path / "campaign"  # not there yet: the campaign command creates it
    plan = run_cli("campaign", "--backends", "reference", "--seeds", "0,1",
                   "--shards", "2", "--examples", "2", "--out", str(out))
    jobs = tmp_path / "jobs.txt"
    jobs.write_text(plan.stdout)

    # xargs is the engine here; a Slurm array or a Dask cluster runs the
    # same lines.
    subprocess.run(["xargs", "-P", "2", "-I", "{}", "sh", "-c", "{}"],
                   stdin=jobs.open(), check=True, timeout=600, capture_output=True,
                   env=dict(os.environ, PYTHONPATH=str(REPO)))
    merged = run_cli("merge", *sorted(str(p) for p in out.glob("*.json")))
    missing = run_cli("merge", str(sorted(out.glob("*.json"))[0]))

    assert len(plan.stdout.splitlines()) == 4
    assert merged.returncode == 0, merged.stdout
    assert f"reference float64 seed 1: {len(check_ids())} checks, conformant" in \
        merged.stdout
    assert missing.returncode == 1
    shard = sorted(out.glob("*.json"))[0]
    ran = [r["id"] for r in json.loads(shard.read_text())["results"]]
    assert missing.stdout.startswith(
        f"reference float64 seed 0: {len(ran)} of {len(check_ids())} checks, none "
        "failed, no verdict yet; missing ")


def test_an_interrupted_run_leaves_its_finished_checks_marked_incomplete(
        tmp_path: Path) -> None:
    # A backend that is quick on one example and slow on batches: the first
    # check (one example) finishes, the second (batches) is interrupted.
    (tmp_path / "slow_batches.py").write_text(
        "import time\n"
        "from impl import ReferenceBackend\n"
        "def backend(network, parameters, inputs, targets):\n"
        "    if inputs.shape[0] > 1:\n"
        "        time.sleep(0.5)\n"
        "    return ReferenceBackend().loss_and_gradients(network, parameters,\n"
        "                                                 inputs, targets)\n")
    report, junit = tmp_path / "r.json", tmp_path / "junit.xml"
    environment = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{tmp_path}")
    process = subprocess.Popen(
        [sys.executable, "-m", "conformance", "--backend", "slow_batches:backend",
         "--examples", "200", "--only", "layer-jacobian.affine", "--only",
         "backprop.batch-mean", "--report", str(report), "--junit", str(junit)],
        cwd=REPO, env=environment,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    first_line = process.stderr.readline()  # plain progress: a check finished

    process.send_signal(signal.SIGINT)
    output, errors = process.communicate(timeout=120)

    data = json.loads(report.read_text())
    assert "layer-jacobian.affine" in first_line
    assert process.returncode == 130, (output, errors)
    assert "interrupted" in errors
    assert data["complete"] is False
    assert data["conformant"] is False  # an unfinished run has shown nothing
    assert [r["id"] for r in data["results"]] == ["layer-jacobian.affine"]
    # CI must not show the JUnit of an unfinished run as passing.
    suite = ET.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("errors")) == ("2", "1")
    error = suite.find("testcase[@name='run-incomplete']/error")
    assert error is not None
    assert error.get("message", "").endswith(
        "1 check did not run: backprop.batch-mean")


def test_version_and_help_mention_the_project() -> None:
    version = run_cli("--version")
    help_text = run_cli("--help")

    assert version.stdout.startswith("backprop-spec ")
    assert "--expected-failures" in help_text.stdout
    assert "campaign" in help_text.stdout


def test_on_a_terminal_progress_is_live_and_quiet_mode_shows_only_the_verdict() -> None:
    import pty

    leader, follower = pty.openpty()
    environment = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="100")
    live = subprocess.run([sys.executable, "-m", "conformance", "--examples", "3",
                           "--only", "layer-jacobian.affine"], cwd=REPO,
                          env=environment, stdout=subprocess.PIPE, stderr=follower,
                          text=True, timeout=300)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    quiet = run_cli("--examples", "3", "--only", "layer-jacobian.affine", "-q")

    assert live.returncode == 0
    assert b"checks" in shown and b"\x1b[" in shown  # a live rich display
    assert quiet.stdout.strip() == "conformant: 1 check of 1 result, none violated"
    assert quiet.stderr == ""


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_activation_lemma_judges_every_activation_whatever_the_seed(
        seed: int) -> None:
    # Arrange: a backend that notes the activation of every network it sees.
    seen: list[Activation] = []

    def noting(network: Network, parameters: Parameters, inputs: Any,
               targets: Any) -> LossAndGradients:
        seen.extend(network.activations)
        return ReferenceBackend().loss_and_gradients(network, parameters, inputs,
                                                     targets)

    # Act: two drawn examples only, far too few to meet seven activations.
    report = run_suite(FunctionBackend(noting), backend_spec="noting", examples=2,
                       seed=seed, only=("layer-jacobian.activation",))

    # Assert
    assert report.conformant
    assert set(seen) == set(Activation)
    assert report.results[0].judged >= len(Activation)
