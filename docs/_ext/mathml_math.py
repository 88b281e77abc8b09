r"""A Sphinx math renderer that writes MathML into the page at build time.

Every ``:math:`` role, ``.. math::`` block and math node made by another
extension is converted from LaTeX to MathML with ``latex2mathml`` while the
HTML is written. The page then needs no script, no font download and no
network: browsers render MathML Core natively. The LaTeX source rides along
in an ``<annotation encoding="application/x-tex">`` element, which browsers
do not display but screen readers and copy-paste can use.

A formula the converter cannot handle fails the build: a conversion error, or
a LaTeX command left in the output as text (``latex2mathml`` passes unknown
commands such as ``\foo`` through as ``<mi>\foo</mi>``), is reported as a
Sphinx warning at the formula's source line, and the docs build runs with
warnings as errors.
"""

from __future__ import annotations

import html
import re
from typing import Any, Literal

from docutils import nodes
from latex2mathml.converter import convert
from sphinx.application import Sphinx
from sphinx.locale import _
from sphinx.util import logging
from sphinx.util.math import get_node_equation_number
from sphinx.writers.html5 import HTML5Translator

logger = logging.getLogger(__name__)

RENDERER_NAME = "mathml"

_TEXT_WITH_COMMAND = re.compile(r">([^<]*\\[A-Za-z]+[^<]*)<")
"""Text between two tags that still holds a LaTeX command."""

_TOP_LEVEL_NEWLINE = re.compile(r"\\\\")


class MathConversionError(ValueError):
    """LaTeX that could not be turned into MathML without losing something."""


def to_mathml(latex: str, *, display: Literal["inline", "block"]) -> str:
    """Convert one formula to a ``<math>`` element with its TeX annotation.

    Raises
    ------
    MathConversionError
        The converter failed, or left a LaTeX command in the output as text.
    """
    try:
        converted = convert(latex, display=display)
    except Exception as error:  # the converter raises several unrelated types
        raise MathConversionError(
            f"latex2mathml cannot convert {latex!r}: {type(error).__name__}: {error}"
        ) from error
    leftover = _TEXT_WITH_COMMAND.search(converted)
    if leftover:
        raise MathConversionError(
            f"latex2mathml does not know the command in {leftover.group(1)!r} "
            f"(from {latex!r}); write it with commands it supports"
        )

    # Wrap the presentation in <semantics> so the source travels with it.
    start = converted.index(">") + 1
    end = converted.rindex("</math>")
    annotation = (
        '<annotation encoding="application/x-tex">'
        f"{html.escape(latex.strip(), quote=False)}</annotation>"
    )
    return (
        f"{converted[:start]}<semantics><mrow>{converted[start:end]}</mrow>"
        f"{annotation}</semantics></math>"
    )


def _display_parts(latex: str) -> list[str]:
    r"""The equations of a display block: paragraphs, as Sphinx splits them.

    A paragraph with a top-level ``\\`` becomes an ``aligned`` environment,
    because MathML Core has no line breaks inside one formula.
    """
    parts = [part.strip() for part in latex.split("\n\n") if part.strip()]
    wrapped = []
    for part in parts:
        if _TOP_LEVEL_NEWLINE.search(part) and r"\begin" not in part:
            part = rf"\begin{{aligned}}{part}\end{{aligned}}"
        wrapped.append(part)
    return wrapped


def _converted_or_warned(
    translator: HTML5Translator,
    node: nodes.Element,
    latex: str,
    display: Literal["inline", "block"],
) -> str:
    try:
        return to_mathml(latex, display=display)
    except MathConversionError as error:
        logger.warning("%s", error, location=node, type="math", subtype="mathml")
        return f"<code>{translator.encode(latex)}</code>"


def visit_math(translator: HTML5Translator, node: nodes.math) -> None:
    """Inline math: a ``<span class="math">`` holding one ``<math>``."""
    translator.body.append(
        translator.starttag(node, "span", "", CLASS="math notranslate nohighlight")
    )
    translator.body.append(
        _converted_or_warned(translator, node, node.astext(), "inline")
    )
    translator.body.append("</span>")
    raise nodes.SkipNode


def visit_math_block(translator: HTML5Translator, node: nodes.math_block) -> None:
    """Display math: one ``<math display="block">`` per equation, numbered."""
    translator.body.append(
        translator.starttag(node, "div", CLASS="math notranslate nohighlight")
    )
    if node["number"]:
        number = get_node_equation_number(translator, node)
        translator.body.append(f'<span class="eqno">({number})')
        translator.add_permalink_ref(node, _("Link to this equation"))
        translator.body.append("</span>")

    for part in _display_parts(node.astext()):
        translator.body.append(_converted_or_warned(translator, node, part, "block"))
    translator.body.append("</div>\n")
    raise nodes.SkipNode


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the renderer; select it with ``html_math_renderer = "mathml"``."""
    app.add_html_math_renderer(
        RENDERER_NAME,
        inline_renderers=(visit_math, None),
        block_renderers=(visit_math_block, None),
    )
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
