"""The report of a run: a document model (:mod:`.document`) composed from the results
(:mod:`.build`, figures by :mod:`bayesmeta.plots`) and rendered to self-contained HTML and to
Markdown through jinja2 templates (:mod:`.render`). No statistics are computed here."""

from .build import build_document
from .render import render_html, render_markdown

__all__ = ["build_document", "render_html", "render_markdown"]
