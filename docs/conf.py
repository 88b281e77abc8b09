"""Sphinx configuration: the site is generated from ``spec/`` at build time.

Build it with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.

Math is rendered to MathML while the pages are written (``_ext/mathml_math.py``,
with the pure-Python ``latex2mathml`` from PyPI) rather than by MathJax or
KaTeX in the browser. The site then works with no network at build time and
at view time, needs no npm step to copy a JavaScript library and its fonts
into the site, and Chromium, Firefox and Safari draw MathML Core natively; the TeX source is
kept in each formula's ``<annotation>`` for screen readers and copying. A
formula the converter cannot render fails the build instead of showing raw
LaTeX.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

# The packages documented are the ones of this tree, even when another copy is
# installed: the drift test builds an edited copy of the repository.
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))

project = "backprop-spec"
author = "the backprop-spec authors"
copyright = "the backprop-spec authors"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "mathml_math",
    "spec_pages",
    "myst_parser",
]

# Generated Markdown (the conformance matrix, benchmark and detection tables)
# is read by MyST; rst stays the format of the hand-written pages.
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_heading_anchors = 2

root_doc = "index"
exclude_patterns = ["_build", "examples"]
templates_path: list[str] = []

# Math: MathML written at build time, no script (see the module docstring).
html_math_renderer = "mathml"

# Python objects.
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
# Type hints name numpy, mpmath and hypothesis types that this site does not
# document; references to them stay plain text instead of failing the build.
nitpicky = False
add_module_names = False

# Pages.
html_theme = "alabaster"
html_static_path = ["_static"]
html_css_files = ["spec.css"]
html_title = "backprop-spec"
html_show_sourcelink = False
html_theme_options = {
    "description": "The calculus of backpropagation as executable checks",
    "fixed_sidebar": False,
    "page_width": "1100px",
}
pygments_style = "sphinx"

# No autodoc_type_aliases: Sphinx 9.0 shows an alias nested in a generic
# (``Sequence[npt.ArrayLike]``) as ``TypeAliasForwardRef('...')``, so types
# are shown expanded, which is long for ``ArrayLike`` but never wrong.
