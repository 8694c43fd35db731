"""Render a report :class:`~.document.Document` to self-contained HTML and to Markdown.

Templates live in ``bayesmeta/report/templates`` (jinja2). The HTML template escapes every
value (``autoescape``), embeds figures as base64 PNG and its CSS inline, and loads nothing
from the network; the Markdown template links the figures written to a folder beside it.
"""

from __future__ import annotations

from pathlib import Path

from .document import Document

TEMPLATES = Path(__file__).parent / "templates"


def _environment(html: bool):  # noqa: ANN202 - jinja2 is imported lazily
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=html,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["md_cell"] = md_cell
    return env


def md_cell(text: object) -> str:
    """A Markdown table cell: pipes escaped, line breaks flattened."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_html(doc: Document) -> str:
    from .. import __version__

    return _environment(True).get_template("report.html.j2").render(doc=doc,
                                                                    version=__version__)


def render_markdown(doc: Document, figure_dir: str = "figures") -> str:
    from .. import __version__

    text = _environment(False).get_template("report.md.j2").render(
        doc=doc, version=__version__, figure_dir=figure_dir)
    # collapse the blank lines the template's control blocks leave behind
    lines, blank = [], 0
    for line in text.splitlines():
        blank = blank + 1 if not line.strip() else 0
        if blank <= 1:
            lines.append(line.rstrip())
    return "\n".join(lines).strip() + "\n"
