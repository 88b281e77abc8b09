r"""Pages generated from :data:`spec.RESULTS` while the site is built.

Nothing about a result is written into the repository: when the build
starts, one stub per result is written to ``docs/results/`` (ignored by git)
holding only ``.. spec-result:: <id>``, and the directive reads everything
else from the live objects:

* title, kind, stable id and paper section from the :class:`spec.Result`;
* the statement as display math, the hypotheses with their inline math;
* the conventions the result names, each linked to its entry on the
  conventions page, which ``.. spec-conventions::`` renders from the
  docstring of :mod:`spec.conventions`;
* the predicate's typed signature (:func:`inspect.signature`) and source
  (:func:`inspect.getsource`);
* every check of :func:`conformance.checks.all_checks` judging the result:
  its judge function's name and docstring, the cases it draws and the
  capabilities it needs.

Every page depends on the Python files of ``spec/`` and ``conformance/``, so
editing a statement rebuilds the pages even in an incremental build.

Also here: ``.. spec-results-table::`` (all results, in registry order),
``.. spec-api:: PACKAGE`` (autodoc of a package and its public modules) and
the role ``:result:`ID``` (a link to a result's page).
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import pkgutil
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.parsers.rst.states import Inliner
from docutils.statemachine import StringList
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

logger = logging.getLogger(__name__)

RESULTS_FOLDER = "results"
"""Folder under the docs source, ignored by git, that receives the stubs."""

CONVENTION_LABEL_PREFIX = "spec-convention-"
CONVENTIONS_DOC = "conventions"
"""The page whose ``.. spec-conventions::`` renders :mod:`spec.conventions`."""

PACKAGES = ("spec", "impl", "conformance")
"""Packages whose Python files every generated page depends on."""

_INLINE_MATH = re.compile(r"\$(.+?)\$")

LONG_STATEMENT = 90
"""Characters of LaTeX past which a statement is shown one equation a line."""

_OPENERS = re.compile(r"\\(?:[bB]igg?l|left)")
_CLOSERS = re.compile(r"\\(?:[bB]igg?r|right)")
_SPLIT_TOKENS = re.compile(r"\\(?:[bB]igg?[lr]|left|right)|\\q?quad(?![A-Za-z])|[{}]")


# 1. Stubs, written when the build starts.


def _stub(result_id: str) -> str:
    return (
        ".. Written by docs/_ext/spec_pages.py at build time; do not edit.\n\n"
        f".. spec-result:: {result_id}\n"
    )


def _index_stub(result_ids: Sequence[str]) -> str:
    entries = "".join(f"   {result_id}\n" for result_id in result_ids)
    return (
        ".. Written by docs/_ext/spec_pages.py at build time; do not edit.\n\n"
        "Results\n=======\n\n"
        "Every definition, lemma and theorem of the specification, in the "
        "order of :data:`spec.RESULTS`: definitions first, then the lemmas "
        "and the theorems built on them.\n\n"
        ".. spec-results-table::\n\n"
        f".. toctree::\n   :hidden:\n\n{entries}"
    )


def write_result_stubs(app: Sphinx) -> None:
    """Write one stub per result and an index; remove stubs of removed results.

    A stub is rewritten only when its text changes, so an unchanged registry
    leaves file times, and so incremental builds, alone.
    """
    import spec

    folder = Path(app.srcdir) / RESULTS_FOLDER
    folder.mkdir(exist_ok=True)
    ids = [result.id for result in spec.RESULTS]
    wanted = {f"{result_id}.rst": _stub(result_id) for result_id in ids}
    wanted["index.rst"] = _index_stub(ids)

    for name, text in wanted.items():
        path = folder / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    for path in folder.glob("*.rst"):
        if path.name not in wanted:
            path.unlink()


# 2. Small builders of nodes.


def _repository_root(env: BuildEnvironment) -> Path:
    return Path(env.app.confdir).resolve().parent


def _note_source_dependencies(env: BuildEnvironment) -> None:
    """Rebuild the current page whenever any file of the packages changes."""
    root = _repository_root(env)
    env.note_dependency(str(Path(__file__).resolve()))
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            env.note_dependency(str(path))


def text_with_math(text: str) -> list[nodes.Node]:
    """Plain text with ``$...$`` pieces turned into inline math nodes."""
    pieces: list[nodes.Node] = []
    position = 0
    for match in _INLINE_MATH.finditer(text):
        if match.start() > position:
            pieces.append(nodes.Text(text[position : match.start()]))
        latex = match.group(1)
        pieces.append(nodes.math(latex, latex))
        position = match.end()
    if position < len(text):
        pieces.append(nodes.Text(text[position:]))
    return pieces


def display_lines(latex: str) -> list[str]:
    r"""A long statement cut at its top-level ``\quad`` and ``\qquad``.

    MathML has no automatic line breaks, so a statement made of several
    equations side by side is shown one equation a line when it is longer
    than :data:`LONG_STATEMENT`; separators inside braces or ``\bigl ...
    \bigr`` pairs are left alone.
    """
    if len(latex) <= LONG_STATEMENT:
        return [latex]
    pieces: list[str] = []
    depth = 0
    start = 0
    for match in _SPLIT_TOKENS.finditer(latex):
        token = match.group(0)
        if token == "{" or _OPENERS.fullmatch(token):
            depth += 1
        elif token == "}" or _CLOSERS.fullmatch(token):
            depth -= 1
        elif depth == 0:
            pieces.append(latex[start : match.start()])
            start = match.end()
    pieces.append(latex[start:])
    return [piece.strip() for piece in pieces if piece.strip()]


def _section(title: str, section_id: str) -> nodes.section:
    section = nodes.section(ids=[section_id], names=[nodes.fully_normalize_name(title)])
    section += nodes.title(title, title)
    return section


def _paragraph(*children: nodes.Node) -> nodes.paragraph:
    paragraph = nodes.paragraph()
    paragraph.extend(children)
    return paragraph


def _bullets(items: Sequence[Sequence[nodes.Node]]) -> nodes.bullet_list:
    bullets = nodes.bullet_list()
    for children in items:
        bullets += nodes.list_item("", _paragraph(*children))
    return bullets


def _xref(
    env: BuildEnvironment,
    domain: str,
    role: str,
    target: str,
    content: nodes.Node,
    *,
    warn: bool = True,
) -> addnodes.pending_xref:
    reference = addnodes.pending_xref(
        "",
        content,
        refdomain=domain,
        reftype=role,
        reftarget=target,
        refexplicit=True,
        refwarn=warn,
        refdoc=env.docname,
    )
    return reference


def _python_block(code: str, *, first_line: int | None = None) -> nodes.literal_block:
    block = nodes.literal_block(code, code, language="python")
    if first_line is not None:
        block["linenos"] = True
        block["highlight_args"] = {"linenostart": first_line}
    return block


def _literal(text: str) -> nodes.literal:
    return nodes.literal(text, text)


# 3. Reading the live objects.


class _Shown:
    """An annotation shown exactly as written in the source."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _shown(annotation: Any) -> Any:
    if annotation is inspect.Parameter.empty:
        return annotation
    if isinstance(annotation, str):
        return _Shown(annotation)
    return _Shown(inspect.formatannotation(annotation))


def typed_signature(function: Callable[..., Any]) -> str:
    """``def name(...) -> R`` with the annotations as the source writes them.

    Modules use postponed evaluation of annotations, so
    :func:`inspect.signature` returns them as the strings of the source;
    they are shown unquoted, one parameter a line.
    """
    signature = inspect.signature(function)
    lines: list[str] = []
    previous_kind: inspect._ParameterKind | None = None
    for parameter in signature.parameters.values():
        kind = parameter.kind
        if previous_kind is inspect.Parameter.POSITIONAL_ONLY and kind != previous_kind:
            lines.append("/")
        if kind is inspect.Parameter.KEYWORD_ONLY and previous_kind not in (
            inspect.Parameter.KEYWORD_ONLY,
            inspect.Parameter.VAR_POSITIONAL,
        ):
            lines.append("*")
        lines.append(str(parameter.replace(annotation=_shown(parameter.annotation))))
        previous_kind = kind

    returned = ""
    if signature.return_annotation is not inspect.Signature.empty:
        returned = f" -> {_shown(signature.return_annotation)!r}"
    body = "".join(f"    {line},\n" for line in lines)
    return f"def {function.__name__}(\n{body}){returned}: ..."


def convention_terms() -> list[str]:
    """The terms of the definition list in :mod:`spec.conventions`'s docstring.

    A term is an unindented line directly followed by an indented one, as
    reST writes definition lists.
    """
    import spec.conventions

    lines = (inspect.getdoc(spec.conventions) or "").splitlines()
    return [
        line.strip()
        for line, following in itertools.pairwise(lines)
        if line.strip() and not line[0].isspace() and following[:1].isspace()
    ]


def convention_label(term: str) -> str:
    """The cross-reference label of one conventions entry."""
    return CONVENTION_LABEL_PREFIX + re.sub(r"[^a-z0-9]+", "-", term.lower()).strip("-")


def term_of(convention: str, terms: Sequence[str]) -> str | None:
    """The conventions entry a result's convention belongs to, if one is named.

    The first entry whose term appears in the convention as a word (``vec``,
    ``Jacobians``, or the term without its plural ``s``) wins; a convention
    naming no entry links to the conventions page as a whole.
    """
    words = set(re.findall(r"[a-z0-9]+", convention.lower()))
    for term in terms:
        lowered = term.lower()
        if lowered in words or lowered.rstrip("s") in words:
            return term
    return None


def _checks_for(result_id: str) -> list[Any]:
    from conformance.checks import all_checks

    return [check for check in all_checks() if check.result_id == result_id]


def _relative_source(env: BuildEnvironment, function: Callable[..., Any]) -> str:
    path = Path(inspect.getsourcefile(inspect.unwrap(function)) or "")
    try:
        return path.resolve().relative_to(_repository_root(env)).as_posix()
    except ValueError:
        return path.name


# 4. The directives.


class SpecResultDirective(SphinxDirective):
    """``.. spec-result:: ID``: the whole page of one result."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        import spec

        try:
            result = spec.get(self.arguments[0])
        except KeyError as error:
            raise self.error(str(error.args[0])) from error
        _note_source_dependencies(self.env)

        page = _section(result.title, f"result-{result.id}")
        self.state.document.note_implicit_target(page)
        page += self._summary(result)
        page += self._statement(result)
        page += self._hypotheses(result)
        page += self._conventions(result)
        page += self._predicate(result)
        page += self._checks(result)
        return [page]

    def _summary(self, result: Any) -> nodes.field_list:
        fields = nodes.field_list(classes=["spec-result-summary"])
        checks = _checks_for(result.id)
        rows: list[tuple[str, list[nodes.Node]]] = [
            ("Kind", [nodes.Text(result.kind)]),
            ("Id", [_literal(result.id)]),
            (
                "Restates",
                [nodes.Text(f"item {result.paper_section} of the paper's summary")],
            ),
            (
                "Judged by",
                [
                    nodes.Text(
                        ", ".join(c.judge.__qualname__ for c in checks)
                        or "no check yet"
                    )
                ],
            ),
        ]
        for name, children in rows:
            body = nodes.field_body("", _paragraph(*children))
            fields += nodes.field("", nodes.field_name(name, name), body)
        return fields

    def _statement(self, result: Any) -> nodes.section:
        section = _section("Statement", "statement")
        latex = "\n\n".join(display_lines(result.statement))
        block = nodes.math_block(
            latex,
            latex,
            docname=self.env.docname,
            number=None,
            label=None,
            nowrap=False,
        )
        block["no-wrap"] = False
        section += block
        return section

    def _hypotheses(self, result: Any) -> nodes.section:
        section = _section("Hypotheses", "hypotheses")
        if result.hypotheses:
            section += _bullets([text_with_math(h) for h in result.hypotheses])
        else:
            section += _paragraph(nodes.Text("None: the statement holds everywhere."))
        return section

    def _conventions(self, result: Any) -> nodes.section:
        section = _section("Conventions", "conventions")
        terms = convention_terms()
        items: list[list[nodes.Node]] = []
        for convention in result.conventions:
            term = term_of(convention, terms)
            if term is None:
                link = _xref(
                    self.env,
                    "std",
                    "doc",
                    f"/{CONVENTIONS_DOC}",
                    nodes.inline(convention, convention),
                )
            else:
                link = _xref(
                    self.env,
                    "std",
                    "ref",
                    convention_label(term),
                    nodes.inline(convention, convention),
                )
            items.append([link])
        if items:
            section += _paragraph(nodes.Text("This result relies on:"))
            section += _bullets(items)
        else:
            section += _paragraph(
                nodes.Text("This result names no convention of its own.")
            )
        everything = _xref(
            self.env,
            "std",
            "doc",
            f"/{CONVENTIONS_DOC}",
            nodes.inline("conventions page", "conventions page"),
        )
        section += _paragraph(
            nodes.Text("Every convention on the "),
            everything,
            nodes.Text(" holds for this result too."),
        )
        return section

    def _predicate(self, result: Any) -> nodes.section:
        section = _section("Predicate", "predicate")
        predicate = result.predicate
        module = predicate.__module__
        name = f"{module}.{predicate.__qualname__}"
        lines, first_line = inspect.getsourcelines(predicate)
        where = (
            f" ({_relative_source(self.env, predicate)}, lines {first_line}"
            f"\N{EN DASH}{first_line + len(lines) - 1})"
        )
        section += _paragraph(
            nodes.Text("The executable statement is "),
            _xref(self.env, "py", "func", name, _literal(name)),
            nodes.Text(where + ". It returns a verdict: "),
            _xref(self.env, "py", "class", "spec.Holds", _literal("Holds")),
            nodes.Text(", "),
            _xref(self.env, "py", "class", "spec.Violated", _literal("Violated")),
            nodes.Text(" or "),
            _xref(
                self.env, "py", "class", "spec.NotApplicable", _literal("NotApplicable")
            ),
            nodes.Text("."),
        )
        section += _python_block(typed_signature(predicate))
        source = _section("Source", "source")
        source += _python_block(inspect.getsource(predicate), first_line=first_line)
        section += source
        return section

    def _checks(self, result: Any) -> nodes.section:
        section = _section("How the conformance suite probes it", "conformance-checks")
        checks = _checks_for(result.id)
        if not checks:
            section += _paragraph(
                nodes.Text(
                    "No check of conformance.checks.all_checks() judges this result "
                    "yet, so python -m conformance does not report it."
                )
            )
        for check in checks:
            section += self._check(check)
        return section

    def _check(self, check: Any) -> list[nodes.Node]:
        judge = check.judge
        name = f"{judge.__module__}.{judge.__qualname__}"
        parts: list[nodes.Node] = [nodes.rubric("", "", _literal(name))]
        docstring = inspect.getdoc(judge) or "(The judge has no docstring.)"
        container = nodes.container(classes=["spec-judge-docstring"])
        self.state.nested_parse(
            StringList(docstring.splitlines(), source=f"<docstring of {name}>"),
            0,
            container,
        )
        parts.append(container)
        strategy = " ".join(repr(check.strategy).split())
        needs = ", ".join(sorted(c.value for c in check.needs))
        fields: list[tuple[str, nodes.Node]] = [("Cases", _literal(strategy))]
        if needs:
            fields.append(
                (
                    "Needs",
                    nodes.Text(
                        f"{needs} (a backend that does not declare it is not judged)"
                    ),
                )
            )
        field_list = nodes.field_list()
        for label, child in fields:
            body = nodes.field_body("", _paragraph(child))
            field_list += nodes.field("", nodes.field_name(label, label), body)
        parts.append(field_list)
        return parts


class SpecResultsTableDirective(SphinxDirective):
    """``.. spec-results-table::``: every result with its kind and statement."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        import spec

        _note_source_dependencies(self.env)
        table = nodes.table(classes=["spec-results", "colwidths-given"])
        group = nodes.tgroup(cols=3)
        table += group
        for width in (32, 11, 57):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        head += self._row(
            [[nodes.Text("Result")], [nodes.Text("Kind")], [nodes.Text("Statement")]]
        )
        group += head
        body = nodes.tbody()
        for result in spec.RESULTS:
            link = _xref(
                self.env,
                "std",
                "doc",
                f"/{RESULTS_FOLDER}/{result.id}",
                nodes.inline(result.title, result.title),
            )
            latex = "\n\n".join(display_lines(result.statement))
            statement = nodes.math_block(
                latex,
                latex,
                docname=self.env.docname,
                number=None,
                label=None,
                nowrap=False,
            )
            statement["no-wrap"] = False
            body += self._row(
                [
                    [link, nodes.Text(" "), _literal(result.id)],
                    [nodes.Text(result.kind)],
                    statement,
                ]
            )
        group += body
        return [table]

    @staticmethod
    def _row(cells: Sequence[Sequence[nodes.Node] | nodes.Element]) -> nodes.row:
        row = nodes.row()
        for cell in cells:
            if isinstance(cell, nodes.Element):
                row += nodes.entry("", cell)
            else:
                row += nodes.entry("", _paragraph(*cell))
        return row


class SpecConventionsDirective(SphinxDirective):
    """``.. spec-conventions::``: the docstring of :mod:`spec.conventions`.

    Each entry of its definition list gets a label, so result pages link to
    the entry they rely on; then a list of which result names which
    convention.
    """

    has_content = False

    def run(self) -> list[nodes.Node]:
        import spec
        import spec.conventions

        _note_source_dependencies(self.env)
        container = nodes.container(classes=["spec-conventions"])
        docstring = inspect.getdoc(spec.conventions) or ""
        self.state.nested_parse(
            StringList(
                docstring.splitlines(), source="<docstring of spec.conventions>"
            ),
            0,
            container,
        )
        for item in container.findall(nodes.definition_list_item):
            term = item[0].astext()
            item["names"].append(nodes.fully_normalize_name(convention_label(term)))
            self.state.document.note_explicit_target(item, item)

        named = _section("Conventions named by results", "named-by-results")
        items: list[list[nodes.Node]] = []
        for result in spec.RESULTS:
            for convention in result.conventions:
                link = _xref(
                    self.env,
                    "std",
                    "doc",
                    f"/{RESULTS_FOLDER}/{result.id}",
                    _literal(result.id),
                )
                items.append([nodes.Text(f"{convention}: "), link])
        if items:
            named += _bullets(items)
        else:
            named += _paragraph(nodes.Text("No result names a convention."))
        return [container, named]


class SpecApiDirective(SphinxDirective):
    """``.. spec-api:: PACKAGE``: autodoc of a package and its public modules.

    The package's ``__all__`` is documented under the package's name; each
    public module (no leading underscore, found with :mod:`pkgutil`) gets a
    section with the members it defines that the package does not already
    re-export.
    """

    required_arguments = 1
    has_content = False
    option_spec: ClassVar[dict[str, Callable[[str], Any]]] = {
        "exclude-members": directives.unchanged
    }

    def run(self) -> list[nodes.Node]:
        package_name = self.arguments[0]
        lines = [f".. automodule:: {package_name}", "   :members:"]
        if "exclude-members" in self.options:
            lines.append(f"   :exclude-members: {self.options['exclude-members']}")
        for module_name in public_modules(package_name):
            title = f"``{module_name}``"
            lines += [
                "",
                title,
                "-" * len(title),
                "",
                f".. automodule:: {module_name}",
                "   :members:",
            ]
            shown_above = reexported_names(module_name)
            if shown_above:
                lines.append(f"   :exclude-members: {', '.join(shown_above)}")
        container = nodes.section()
        container.document = self.state.document
        nested_parse_with_titles(
            self.state,
            StringList(lines, source=f"<spec-api {package_name}>"),
            container,
        )
        return list(container.children)


def public_modules(package_name: str) -> Iterator[str]:
    """Importable public modules under ``package_name``, depth first."""
    package = importlib.import_module(package_name)
    for info in pkgutil.iter_modules(package.__path__, prefix=f"{package_name}."):
        short = info.name.rsplit(".", 1)[1]
        if short.startswith("_"):
            continue
        yield info.name
        if info.ispkg:
            yield from public_modules(info.name)


def reexported_names(module_name: str) -> list[str]:
    """Members of ``module_name`` that an enclosing package re-exports.

    They are documented once, under the package's name, which is the path
    users are told to import from.
    """
    module = importlib.import_module(module_name)
    parts = module_name.split(".")
    names: set[str] = set()
    for depth in range(1, len(parts)):
        package = importlib.import_module(".".join(parts[:depth]))
        for name in getattr(package, "__all__", ()):
            if name in vars(module) and vars(module)[name] is getattr(package, name):
                names.add(name)
    return sorted(names)


def resolve_reexported(
    app: Sphinx,
    env: BuildEnvironment,
    node: addnodes.pending_xref,
    contnode: nodes.TextElement,
) -> nodes.reference | None:
    """Point ``spec.conventions.Network`` at its documented ``spec.Network``."""
    if node.get("refdomain") != "py":
        return None
    target = str(node.get("reftarget", ""))
    package_name, _, rest = target.partition(".")
    if package_name not in PACKAGES or "." not in rest:
        return None
    public = f"{package_name}.{rest.rsplit('.', 1)[1]}"
    domain = env.domains["py"]
    resolved = domain.resolve_xref(
        env,
        node.get("refdoc", env.docname),
        app.builder,
        node["reftype"],
        public,
        node,
        contnode,
    )
    return resolved


def result_role(
    name: str,
    rawtext: str,
    text: str,
    lineno: int,
    inliner: Inliner,
    options: dict[str, Any] | None = None,
    content: Sequence[str] = (),
) -> tuple[list[nodes.Node], list[nodes.system_message]]:
    """``:result:`chain-rule```: the result's id, linked to its page."""
    import spec

    try:
        spec.get(text)
    except KeyError as error:
        message = inliner.reporter.error(str(error.args[0]), line=lineno)
        problem = inliner.problematic(rawtext, rawtext, message)
        return [problem], [message]
    env = inliner.document.settings.env
    link = _xref(env, "std", "doc", f"/{RESULTS_FOLDER}/{text}", _literal(text))
    return [link], []


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directives, the role and the stub writer."""
    app.connect("builder-inited", write_result_stubs)
    app.connect("missing-reference", resolve_reexported)
    app.add_directive("spec-result", SpecResultDirective)
    app.add_directive("spec-results-table", SpecResultsTableDirective)
    app.add_directive("spec-conventions", SpecConventionsDirective)
    app.add_directive("spec-api", SpecApiDirective)
    app.add_role("result", result_role)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
