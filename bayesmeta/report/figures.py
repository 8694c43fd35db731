"""Figures of the report: the package's plot functions drawn into PNG bytes.

Building the document records one :class:`FigureJob` per figure and puts a placeholder in
the document; :func:`draw` rasterises a job (any process may run it: the output step runs the
jobs of a report in parallel) and :func:`fill_figures` puts the PNG bytes into the document.
Each figure is drawn by a :mod:`bayesmeta.plots` function (nothing statistical happens here).
A plot that cannot be drawn for a result (an InputError from the plot function) becomes an
alert in the report where the figure would have been, never a silent gap.
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config import DEFAULTS
from ..errors import InputError
from .document import Alert, Document, Figure, Section


@dataclass(frozen=True)
class FigureJob:
    """How to draw one figure: ``draw()`` returns an Axes, an array of Axes or a Figure."""

    key: str
    draw: Callable[[], Any]


@dataclass(frozen=True)
class Drawn:
    """A rasterised figure (``png`` is None when it could not be drawn) and its notes."""

    key: str
    png: bytes | None
    notes: tuple[str, ...] = ()


class FigureMaker:
    """Collects the figure jobs of a document, returning placeholders."""

    def __init__(self) -> None:
        self.jobs: list[FigureJob] = []

    def make(self, key: str, title: str, draw: Callable[[], Any], alt: str,
             caption: str = "") -> Figure:
        self.jobs.append(FigureJob(key, draw))
        return Figure(key=key, title=title, png=b"", alt=alt, caption=caption)


def draw(job: FigureJob, dpi: int = DEFAULTS.report_dpi) -> Drawn:
    """Draw and rasterise one figure; an InputError of the plot function becomes a note."""
    import matplotlib.pyplot as plt

    notes = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fig = _figure_of(job.draw())
        except InputError as exc:
            plt.close("all")
            return Drawn(job.key, None, (f"figure {job.key} not drawn: {exc}",))
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        plt.close(fig)
    for w in caught:
        if not issubclass(w.category, DeprecationWarning | FutureWarning):
            text = f"figure {job.key}: {w.message}"
            if text not in notes:
                notes.append(text)
    return Drawn(job.key, buf.getvalue(), tuple(notes))


def _figure_of(drawn: Any) -> Any:
    """The matplotlib Figure of an Axes, an array of Axes or a Figure."""
    import numpy as np
    from matplotlib.figure import Figure as MplFigure

    if isinstance(drawn, MplFigure):
        return drawn
    if isinstance(drawn, np.ndarray):
        return drawn.flat[0].figure
    return drawn.figure


def fill_figures(doc: Document, drawn: Mapping[str, Drawn]) -> Document:
    """The document with each placeholder replaced by its PNG, or by an alert saying why it
    could not be drawn."""

    def fill(blocks: tuple[Any, ...]) -> tuple[Any, ...]:
        out = []
        for b in blocks:
            if isinstance(b, Figure):
                d = drawn[b.key]
                if d.png is None:
                    out.append(Alert("; ".join(d.notes), "warning"))
                else:
                    out.append(dataclasses.replace(b, png=d.png))
            elif isinstance(b, Section):
                out.append(dataclasses.replace(b, blocks=fill(b.blocks)))
            else:
                out.append(b)
        return tuple(out)

    return dataclasses.replace(doc, sections=fill(doc.sections))
