"""The documentation site: builds clean, covers every result, cannot drift.

Each build runs ``python -m sphinx -W --keep-going`` in a subprocess on a
copy of the tree (tracked files and new files git does not ignore), so
nothing generated lands in the working copy and a stale ``docs/results/``
cannot hide a missing stub.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

import spec

REPOSITORY = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SECONDS_PER_BUILD = 300
SECONDS_PER_BROWSER_RUN = 90
DRIFT = r" + \Omega_{\mathrm{drift}}"
"""Appended to a statement in the copied spec module by the drift test."""

LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
HIDDEN_TAGS = frozenset({"annotation", "script", "style", "pre", "head"})
"""Elements whose text a reader does not see as prose: the TeX annotation of
each formula, scripts, styles, the document head, and code blocks (which
show the predicate's source, LaTeX docstring included, on purpose)."""


# Arrange: copies of the tree and builds of the site.


def _require(condition: bool, what: str) -> None:
    """Skip when something optional is missing, but fail under CI."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing, and CI must run this test; see .ci/run")
    pytest.skip(f"{what} is missing (install it to run this test)")


def _tree_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(
        name for name in listed.split("\0") if name and (REPOSITORY / name).is_file()
    )


def _copy_tree(destination: Path) -> Path:
    for name in _tree_files():
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPOSITORY / name, target)
    return destination


def _build(tree: Path) -> Path:
    _require(importlib.util.find_spec("sphinx") is not None, "Sphinx (the docs extra)")
    _require(
        importlib.util.find_spec("latex2mathml") is not None,
        "latex2mathml (the docs extra)",
    )
    environment = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    command = [
        sys.executable,
        "-m",
        "sphinx",
        "-W",
        "--keep-going",
        "-q",
        "-b",
        "html",
        "docs",
        "docs/_build/html",
    ]
    completed = subprocess.run(
        command,
        check=False,
        cwd=tree,
        capture_output=True,
        text=True,
        env=environment,
        timeout=SECONDS_PER_BUILD,
    )
    assert completed.returncode == 0, (
        f"the docs build failed (exit {completed.returncode}):\n"
        f"{completed.stdout}\n{completed.stderr}"
    )
    return tree / "docs" / "_build" / "html"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built from a clean copy of the tree."""
    return _build(_copy_tree(tmp_path_factory.mktemp("clean")))


class _PageText(HTMLParser):
    """The text a reader sees, and the names of the elements met."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.visible: list[str] = []
        self.tags: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in HIDDEN_TAGS:
            self._hidden_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in HIDDEN_TAGS and self._hidden_depth:
            self._hidden_depth -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth and data.strip():
            self.visible.append(data)


def _read_page(text: str) -> _PageText:
    parser = _PageText()
    parser.feed(text)
    parser.close()
    return parser


def _page(site_root: Path, result_id: str) -> Path:
    return site_root / "results" / f"{result_id}.html"


# (1) The build, from a clean copy, with warnings as errors.


def test_docs_build_from_a_clean_copy_with_warnings_as_errors(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert (site / "tutorial.html").is_file()
    assert (site / "conventions.html").is_file()
    assert (site / "api" / "spec.html").is_file()


def test_no_page_loads_anything_from_the_network(site: Path) -> None:
    remote = re.compile(
        r"""<(?:script|link|img|iframe)[^>]+(?:src|href)=["']"""
        r"""(?:https?:)?//"""
    )
    offenders = [
        page.relative_to(site).as_posix()
        for page in site.rglob("*.html")
        if remote.search(page.read_text(encoding="utf-8"))
    ]
    assert offenders == [], f"pages loading remote resources: {offenders}"


def test_no_page_shows_latex_source_outside_code(site: Path) -> None:
    shown = {}
    for page in sorted(site.rglob("*.html")):
        seen = _read_page(page.read_text(encoding="utf-8"))
        raw = [text for text in seen.visible if LATEX_COMMAND.search(text)]
        if raw:
            shown[page.relative_to(site).as_posix()] = raw[:3]
    assert shown == {}, f"LaTeX source shown as text: {shown}"


# (2) Every result has its page.


def test_every_result_has_a_page_with_its_id_title_and_statement(site: Path) -> None:
    for result in spec.RESULTS:
        page = _page(site, result.id)
        assert page.is_file(), f"no page for result {result.id!r} at {page}"
        html_text = page.read_text(encoding="utf-8")
        seen = _read_page(html_text)
        visible = " ".join(seen.visible)

        assert result.id in visible, f"{page.name} does not show its id"
        assert result.title in visible, f"{page.name} does not show its title"
        assert result.predicate.__name__ in visible
        assert (
            '<math xmlns="http://www.w3.org/1998/Math/MathML" display="block"'
            in html_text
        ), f"{page.name} has no display math for its statement"


def test_every_result_page_names_the_checks_that_judge_it(site: Path) -> None:
    from conformance.checks import all_checks

    for check in all_checks():
        page = _page(site, check.result_id)
        if not page.is_file():
            continue  # a check of a result the registry does not list
        visible = " ".join(_read_page(page.read_text(encoding="utf-8")).visible)
        assert check.judge.__qualname__ in visible, (
            f"{page.name} does not name its judge {check.judge.__qualname__}"
        )


# (3) Drift: the statement lives in its spec module and nowhere else.


def _verbatim_statement() -> tuple[spec.Result, str]:
    """A result whose statement is one literal, and the spec module holding it."""
    for result in spec.RESULTS:
        literal = f'r"{result.statement}"'
        holders = [
            path
            for path in sorted((REPOSITORY / "spec").glob("*.py"))
            if literal in path.read_text(encoding="utf-8")
        ]
        if len(holders) == 1:
            return result, holders[0].relative_to(REPOSITORY).as_posix()
    pytest.fail(
        "no statement of spec.RESULTS is written as a single literal, so "
        'the drift test has none to edit; write one as r"..."'
    )


def _files_holding(text: str) -> list[str]:
    """Tree files whose text contains ``text``, whitespace ignored."""
    wanted = "".join(text.split())
    holders = []
    for name in _tree_files():
        try:
            content = (REPOSITORY / name).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if wanted in "".join(content.split()):
            holders.append(name)
    return holders


def test_no_file_but_its_spec_module_holds_a_statement() -> None:
    result, module = _verbatim_statement()

    holders = _files_holding(result.statement)

    assert holders == [module], (
        f"the statement of {result.id!r} is copied outside {module}: {holders}"
    )
    for other in spec.RESULTS:
        copies = [
            name
            for name in _files_holding(other.statement)
            if not name.startswith("spec/")
        ]
        assert copies == [], f"the statement of {other.id!r} is copied in {copies}"


def test_editing_a_statement_in_spec_changes_its_page(
    site: Path, tmp_path: Path
) -> None:
    result, module = _verbatim_statement()
    tree = _copy_tree(tmp_path / "edited")
    path = tree / module
    literal = f'r"{result.statement}"'
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            literal, f'r"{result.statement}{DRIFT}"'
        ),
        encoding="utf-8",
    )

    edited_site = _build(tree)

    before = _page(site, result.id).read_text(encoding="utf-8")
    after = _page(edited_site, result.id).read_text(encoding="utf-8")
    assert after != before
    assert "drift" not in before
    assert r"\Omega_{\mathrm{drift}}" in after, "the page does not show the edit"
    assert "&#x003A9;" in after or "\u03a9" in after, "the edit is not rendered"


# (4) In a browser: math is drawn, not left as LaTeX.


def _chromium_command(profile: Path) -> list[str]:
    return [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={profile}",
        # No network: every request goes to a closed loopback port.
        "--proxy-server=127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
    ]


def test_a_theorem_page_shows_rendered_math_in_chromium(
    site: Path, tmp_path: Path
) -> None:
    _require(CHROMIUM.is_file(), f"Chromium ({CHROMIUM}, Debian package chromium)")
    theorems = [r for r in spec.RESULTS if r.kind == "theorem"]
    theorem = next(
        (r for r in theorems if "\\nabla" in r.statement or "\\frac" in r.statement),
        theorems[0],
    )
    url = _page(site, theorem.id).as_uri()
    command = _chromium_command(tmp_path / "profile")
    screenshot = tmp_path / "page.png"

    dom = subprocess.run(
        [*command, "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=SECONDS_PER_BROWSER_RUN,
        check=True,
    ).stdout
    subprocess.run(
        [*command, f"--screenshot={screenshot}", "--window-size=1200,1600", url],
        capture_output=True,
        timeout=SECONDS_PER_BROWSER_RUN,
        check=True,
    )

    seen = _read_page(dom)
    assert seen.tags.count("math") >= 1 + sum("$" in h for h in theorem.hypotheses)
    assert {"mrow", "mi", "semantics"} <= set(seen.tags)
    raw = [text for text in seen.visible if LATEX_COMMAND.search(text)]
    assert raw == [], f"LaTeX source visible on the page: {raw[:5]}"
    assert theorem.title in " ".join(seen.visible)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000, "the screenshot looks blank"


# The tutorial's example runs, and fails where the tutorial says.


def _tutorial_diff() -> tuple[str, str]:
    text = (REPOSITORY / "docs" / "tutorial.rst").read_text(encoding="utf-8")
    removed = re.search(r"^ +-( +return .*)$", text, re.MULTILINE)
    added = re.search(r"^ +\+( +return .*)$", text, re.MULTILINE)
    assert removed and added, "the tutorial's diff block is missing"
    return removed.group(1), added.group(1)


def _conformance(folder: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, PYTHONPATH=f"{folder}{os.pathsep}{REPOSITORY}")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance",
            "--backend",
            "mybackprop:backend",
            *arguments,
        ],
        check=False,
        cwd=folder,
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )


def _table_rows(text: str) -> dict[str, str]:
    """``result id -> verdict word`` for each row of a printed table."""
    ids = {r.id for r in spec.RESULTS}
    rows = {}
    for line in text.splitlines():
        cells = line.split()
        if len(cells) >= 4 and cells[0] in ids:
            rows[cells[0]] = cells[3]
    return rows


def test_the_tutorial_backend_conforms_as_its_table_shows(tmp_path: Path) -> None:
    folder = tmp_path / "tutorial"
    shutil.copytree(REPOSITORY / "docs" / "examples", folder)
    tutorial = (REPOSITORY / "docs" / "tutorial.rst").read_text(encoding="utf-8")
    shown = tutorial.split("A failure\n")[0]

    completed = _conformance(folder)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    real = _table_rows(completed.stdout)
    for result_id, verdict in _table_rows(shown).items():
        assert real.get(result_id) == verdict, (
            f"the tutorial shows {result_id} {verdict}, a run gives "
            f"{real.get(result_id)}"
        )


def _shown_block(tutorial: str, first: str) -> list[str]:
    """The lines of the tutorial's output block starting with ``first``."""
    lines = tutorial.splitlines()
    start = next(n for n, line in enumerate(lines) if line.strip().startswith(first))
    block = []
    for line in lines[start:]:
        if line and not line.startswith("   "):
            break
        block.append(line[3:].rstrip())
    while block and not block[-1]:
        block.pop()
    return block


def test_the_tutorial_bug_fails_where_the_tutorial_says(tmp_path: Path) -> None:
    folder = tmp_path / "tutorial"
    shutil.copytree(REPOSITORY / "docs" / "examples", folder)
    tutorial = (REPOSITORY / "docs" / "tutorial.rst").read_text(encoding="utf-8")
    good, broken = _tutorial_diff()
    source = (folder / "my_mlp.py").read_text(encoding="utf-8")
    assert source.count(good) == 1, "the tutorial's diff no longer matches my_mlp.py"
    (folder / "my_mlp.py").write_text(source.replace(good, broken), encoding="utf-8")

    completed = _conformance(folder)

    assert completed.returncode == 1, completed.stdout + completed.stderr
    real_lines = {line.rstrip() for line in completed.stdout.splitlines()}
    failing_table = tutorial.split("A failure\n")[1].split("Below the table")[0]
    real = _table_rows(completed.stdout)
    for result_id, verdict in _table_rows(failing_table).items():
        assert real.get(result_id) == verdict, f"{result_id}: run gives {real}"
    closing = _shown_block(tutorial, "NOT conformant:")[0]
    assert closing in real_lines, f"the run does not end with {closing!r}"
    block = _shown_block(tutorial, "== layer-jacobian.activation:")
    missing = [line for line in block if line.strip() and line not in real_lines]
    assert missing == [], f"the tutorial's failure block differs from a run: {missing}"

    script = "\n".join(line[4:] for line in block[block.index("reproduce with:") + 1 :])
    rerun = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        cwd=folder,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=f"{folder}{os.pathsep}{REPOSITORY}"),
        timeout=120,
    )
    assert rerun.stdout.startswith("Violated(result_id='layer-jacobian.activation'")


def test_the_readme_gradient_check_example_runs_as_shown_and_holds() -> None:
    readme = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Check one gradient, like gradcheck", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]

    completed = subprocess.run([sys.executable, "-c", code], cwd=REPOSITORY,
                               capture_output=True, text=True, check=False)

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("Holds(result_id='backprop.batch-mean'")
    # One loss and 3 x 2 + 3 + 1 x 3 + 1 = 13 gradient entries.
    assert "compared=14" in completed.stdout
