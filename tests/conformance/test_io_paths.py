"""Report files and other paths of the command line: checked before anything
runs, written atomically with the usual permissions, never left half-made."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from conformance.formats import write_atomically
from cli_runner import run_cli

PROG = "python -m conformance: error: "


def leftovers(folder: Path) -> list[str]:
    """Hidden files in ``folder``: temporary files a writer left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(
    ("option", "target", "message"),
    [
        ("--report", "folder", "--report {folder}: a folder, not a file; name a "
         "file in it, such as {folder}/report.json"),
        ("--report", "afile/r.json", "--report {folder}/afile/r.json: "
         "{folder}/afile is a file, not a folder"),
        ("--junit", "afile/deeper/j.xml", "--junit {folder}/afile/deeper/j.xml: "
         "{folder}/afile is a file, not a folder"),
        ("--markdown", "no/such/m.md", "--markdown {folder}/no/such/m.md: folder "
         "{folder}/no/such does not exist; create it first"),
        # A pipe stands for any special file (a device such as /dev/null):
        # replacing one by a regular file would break whatever uses it.
        ("--junit", "pipe", "--junit {folder}/pipe: not a regular file (a "
         "device, pipe or socket); name a file"),
    ],
)
def test_a_report_path_that_cannot_be_written_is_refused_before_any_check(
        tmp_path: Path, option: str, target: str, message: str) -> None:
    (tmp_path / "afile").write_text("")
    os.mkfifo(tmp_path / "pipe")
    path = str(tmp_path if target == "folder" else tmp_path / target)

    result = run_cli("--only", "cost", option, path)

    assert result.returncode == 2
    assert result.stderr == PROG + message.format(folder=tmp_path) + "\n"
    assert result.stdout == ""
    assert leftovers(tmp_path) == []


def test_a_report_in_a_folder_where_no_file_can_be_created_is_refused() -> None:
    if not Path("/proc/version").is_file():
        pytest.skip("needs Linux's /proc")

    result = run_cli("--only", "cost", "--markdown", "/proc/version")

    assert result.returncode == 2
    assert result.stderr.startswith(PROG + "--markdown /proc/version: cannot "
                                    "create a file in /proc (")
    assert result.stderr.endswith("); choose a folder you can write to\n")
    assert result.stdout == ""


@pytest.mark.parametrize("option", ["--report", "--junit", "--markdown"])
def test_an_empty_report_name_is_a_usage_error(option: str) -> None:
    result = run_cli("--only", "cost", option, "")

    assert result.returncode == 2
    assert result.stderr.startswith(
        f"{PROG}argument {option}: expected a file name, got ''\n")


def test_one_file_named_by_two_options_is_refused(tmp_path: Path) -> None:
    known = tmp_path / "known.toml"
    known.write_text("")

    twice = run_cli("--only", "cost", "--report", "r.json", "--markdown",
                    str(tmp_path / "r.json"), cwd=tmp_path)
    clobbering = run_cli("--only", "cost", "--expected-failures", str(known),
                         "--junit", str(known))

    assert twice.returncode == 2
    assert twice.stderr == (f"{PROG}--report and --markdown both name "
                            f"{tmp_path}/r.json; give each its own file\n")
    assert clobbering.returncode == 2
    assert clobbering.stderr == (
        f"{PROG}--junit and --expected-failures both name {known}; give each its "
        "own file (a report written there would replace the expected-failures "
        "file)\n")
    assert known.read_text() == ""
    assert not (tmp_path / "r.json").exists()


def test_reports_stay_where_they_were_named_when_the_backend_changes_directory(
        tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # It moves when imported, and again when called.
    (tmp_path / "wanderer.py").write_text(
        "import os\n"
        "from impl import ReferenceBackend\n"
        f"os.chdir({str(elsewhere)!r})\n"
        "def backend(network, parameters, inputs, targets):\n"
        f"    os.chdir({str(elsewhere)!r})\n"
        "    return ReferenceBackend().loss_and_gradients(network, parameters,\n"
        "                                                 inputs, targets)\n")
    here = tmp_path / "here"
    here.mkdir()

    result = run_cli("--backend", "wanderer:backend", "--examples", "2", "--only",
                     "layer-jacobian.affine", "--only", "gradient-product",
                     "--report", "r.json", "--markdown", "m.md", "--junit", "j.xml",
                     cwd=here, extra_path=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in here.iterdir()) == ["j.xml", "m.md", "r.json"]
    assert list(elsewhere.iterdir()) == []
    data = json.loads((here / "r.json").read_text())
    assert [r["id"] for r in data["results"]] == ["layer-jacobian.affine",
                                                  "gradient-product"]


def test_reports_get_the_permissions_the_umask_gives(tmp_path: Path) -> None:
    result = run_cli("--examples", "1", "--only", "layer-jacobian.affine",
                     "--report", str(tmp_path / "r.json"), "--junit",
                     str(tmp_path / "j.xml"), "--markdown", str(tmp_path / "m.md"),
                     umask=0o022)

    assert result.returncode == 0, result.stderr
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"r.json": 0o644, "j.xml": 0o644, "m.md": 0o644}


def test_a_report_folder_removed_during_the_run_stops_it_with_one_line(
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "remover.py").write_text(
        "import shutil\n"
        "from impl import ReferenceBackend\n"
        "def backend(network, parameters, inputs, targets):\n"
        f"    shutil.rmtree({str(out)!r}, ignore_errors=True)\n"
        "    return ReferenceBackend().loss_and_gradients(network, parameters,\n"
        "                                                 inputs, targets)\n")

    result = run_cli("--backend", "remover:backend", "--examples", "2", "--only",
                     "layer-jacobian.affine", "--report", str(out / "r.json"),
                     extra_path=tmp_path)

    assert result.returncode == 2
    assert result.stderr.endswith(
        f"{PROG}--report {out}/r.json: could not be written (No such file or "
        "directory); the run stopped\n")
    assert "Traceback" not in result.stderr


def test_a_failed_atomic_write_leaves_neither_a_temporary_file_nor_a_change(
        tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "inside").write_text("kept")

    with pytest.raises(OSError):
        write_atomically(target, "text")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]
    assert (target / "inside").read_text() == "kept"


def test_an_atomic_write_replaces_a_character_utf8_cannot_hold(
        tmp_path: Path) -> None:
    path = tmp_path / "r.md"

    write_atomically(path, "lone \udcff surrogate, é kept\n")

    assert path.read_bytes() == "lone ? surrogate, é kept\n".encode()
    assert leftovers(tmp_path) == []


def test_a_database_that_is_a_file_is_refused(tmp_path: Path) -> None:
    database = tmp_path / "db"
    database.write_text("")

    result = run_cli("--only", "cost", "--database", str(database))
    below = run_cli("--only", "cost", "--database", str(database / "inner"))

    assert result.returncode == 2
    assert result.stderr == (
        f"{PROG}--database {database}: {database} is a file, not a folder; the "
        "database is a folder of examples (give a new or existing folder)\n")
    assert below.returncode == 2
    assert below.stderr.startswith(f"{PROG}--database {database}/inner: "
                                   f"{database} is a file, not a folder;")


def test_an_expected_failures_file_that_is_not_utf8_is_a_usage_error(
        tmp_path: Path) -> None:
    known = tmp_path / "known.toml"
    known.write_bytes(b'\xff\xfe[[difference]]\nbackend = "x"\n')

    result = run_cli("--only", "cost", "--expected-failures", str(known))

    assert result.returncode == 2
    assert result.stderr == (f"{PROG}--expected-failures {known}: not UTF-8 text "
                             "(invalid start byte at byte 0); save it as UTF-8\n")
