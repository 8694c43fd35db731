"""The report as a small document model, rendered to HTML and Markdown by the same templates.

A :class:`Document` is a list of :class:`Section` objects whose ``blocks`` are paragraphs,
lists, alerts, tables (already formatted to text) and figures (PNG bytes). Both templates
walk the same blocks, so the HTML and Markdown reports cannot drift apart.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

MISSING = "–"


@dataclass(frozen=True)
class Table:
    """A formatted table. ``flags`` holds one CSS class per row (``""``, ``"bad"``,
    ``"good"``, ``"warn"``); ``csv`` names the CSV file holding the full table."""

    key: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    csv: str | None = None
    text_columns: tuple[bool, ...] = ()
    kind: str = field(default="table", init=False)

    def flag(self, i: int) -> str:
        return self.flags[i] if i < len(self.flags) else ""

    def is_text(self, j: int) -> bool:
        """Columns of words are left-aligned, numbers right-aligned."""
        return self.text_columns[j] if j < len(self.text_columns) else False


@dataclass(frozen=True)
class Figure:
    key: str
    title: str
    png: bytes
    alt: str
    caption: str = ""
    kind: str = field(default="figure", init=False)

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")

    @property
    def filename(self) -> str:
        return f"{self.key}.png"


@dataclass(frozen=True)
class Paragraph:
    """Text, optionally led by a bold run-in heading (``lead``)."""

    text: str
    lead: str = ""
    kind: str = field(default="paragraph", init=False)


@dataclass(frozen=True)
class Items:
    items: tuple[str, ...]
    kind: str = field(default="items", init=False)


@dataclass(frozen=True)
class Alert:
    """A highlighted box: ``level`` is ``"danger"`` (synthetic data, failed checks),
    ``"warning"`` or ``"info"``."""

    text: str
    level: str = "warning"
    items: tuple[str, ...] = ()
    kind: str = field(default="alert", init=False)


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    blocks: tuple[Any, ...] = ()
    collapsed: bool = False
    kind: str = field(default="section", init=False)


@dataclass(frozen=True)
class Document:
    title: str
    subtitle: str
    banner: Alert | None
    meta: tuple[tuple[str, str], ...]
    sections: tuple[Section, ...]
    footer: str = ""

    def figures(self) -> list[Figure]:
        out: list[Figure] = []

        def walk(blocks: Sequence[Any]) -> None:
            for b in blocks:
                if isinstance(b, Figure):
                    out.append(b)
                elif isinstance(b, Section):
                    walk(b.blocks)

        for s in self.sections:
            walk(s.blocks)
        return out


def anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# ---------------------------------------------------------------------------------------------
# number formatting


def _is_missing(x: Any) -> bool:
    if x is None or x is pd.NA:
        return True
    try:
        return bool(isinstance(x, float | np.floating) and math.isnan(x))
    except TypeError:
        return False


def fmt_number(x: Any, digits: int = 3) -> str:
    if _is_missing(x):
        return MISSING
    if isinstance(x, bool | np.bool_):
        return "yes" if x else "no"
    if isinstance(x, int | np.integer):
        return str(int(x))
    if isinstance(x, float | np.floating):
        x = float(x)
        if math.isinf(x):
            return "∞" if x > 0 else "-∞"
        if x != 0 and (abs(x) >= 1e5 or abs(x) < 10.0 ** (-digits)):
            return f"{x:.{digits}g}"
        return f"{x:.{digits}f}"
    return str(x)


def fmt_p(x: Any) -> str:
    """p-values: three decimals, ``<0.001`` below."""
    if _is_missing(x):
        return MISSING
    return "<0.001" if float(x) < 0.001 else f"{float(x):.3f}"


def fmt_prob(x: Any) -> str:
    """Posterior probabilities: three decimals, ``>0.999`` / ``<0.001`` at the ends (Monte
    Carlo error makes more digits meaningless)."""
    if _is_missing(x):
        return MISSING
    x = float(x)
    if x > 0.999:
        return ">0.999"
    if x < 0.001:
        return "<0.001"
    return f"{x:.3f}"


_COUNTS = ("k", "p", "seed", "attempts", "n_divergent", "n_pareto_k_high", "ppp_mixed_extreme",
           "qm_df", "qe_df", "q_between_df", "rows")


def default_formatter(column: str) -> Callable[[Any], str]:
    """Format by column name: p-values (``pval``, ``*_p``), posterior probabilities
    (``p_*``, ``ppp_*``), percentages (I², R²), counts, ESS; three decimals otherwise."""
    c = column.lower()
    if c in _COUNTS or c.startswith("k_"):
        return fmt_number
    if c == "p_loo":
        return fmt_number
    if c.endswith("pval") or c.endswith("_p"):
        return fmt_p
    if c.startswith("p_") or c.startswith("ppp"):
        return fmt_prob
    if c in ("i2", "reml_i2") or c.startswith("i2_percent") or c.startswith("r2_reml"):
        return lambda x: fmt_number(x, 1)
    if c.startswith("ess"):
        return lambda x: fmt_number(x if _is_missing(x) else int(round(float(x))))
    return fmt_number


def table_from_frame(df: pd.DataFrame, key: str, *, columns: Sequence[str] | None = None,
                     title: str | None = None, labels: Mapping[str, str] | None = None,
                     formats: Mapping[str, Callable[[Any], str]] | None = None,
                     notes: Sequence[str] = (), flag: Callable[[Mapping[str, Any]], str]
                     | None = None, csv: str | None = None) -> Table:
    """Format ``df`` (the CSV table) for the report: chosen columns, display labels from
    ``df.attrs["labels"]`` (overridden by ``labels``), number formats by column name."""
    cols = [c for c in (columns or list(df.columns)) if c in df.columns]
    names = {**df.attrs.get("labels", {}), **(labels or {})}
    fmts = {c: (formats or {}).get(c, default_formatter(c)) for c in cols}
    rows, flags = [], []
    for record in df.to_dict("records"):
        rows.append(tuple(fmts[c](record[c]) for c in cols))
        flags.append(flag(record) if flag else "")
    text = tuple(not (pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]))
                 for c in cols)
    return Table(key=key, title=title if title is not None else df.attrs.get("title", key),
                 columns=tuple(names.get(c, c) for c in cols), rows=tuple(rows),
                 notes=tuple(notes) + tuple(df.attrs.get("notes", [])), flags=tuple(flags),
                 csv=csv, text_columns=text)
