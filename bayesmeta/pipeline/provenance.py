"""Where the data come from: the study table's hash, its datasheet, and whether it is synthetic.

A dataset is *synthetic* when its ``source`` column says so in any row, or its datasheet's
"real or synthetic" row does; the report then carries a banner that cannot be missed.
Datasheets are Markdown files beside the data: ``<stem>.DATASHEET.md`` or ``DATASHEET.md`` in
the same folder; the key-value rows of their first table are read.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Provenance:
    """Provenance of one data file.

    Attributes
    ----------
    path, sha256, rows
        The file, the SHA-256 of its bytes, its number of data rows.
    synthetic
        True when the source column or the datasheet says the data are synthetic.
    reasons
        What said so.
    datasheet_path, datasheet
        The datasheet found (or None) and the key-value rows of its first table.
    headline
        The datasheet's first block quote (its warning), if any.
    sources
        Distinct values of the ``source`` column (at most five).
    """

    path: Path
    sha256: str
    rows: int
    synthetic: bool
    reasons: tuple[str, ...] = ()
    datasheet_path: Path | None = None
    datasheet: Mapping[str, str] = field(default_factory=dict)
    headline: str = ""
    sources: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"path": str(self.path), "sha256": self.sha256, "rows": self.rows,
                "synthetic": self.synthetic, "reasons": list(self.reasons),
                "datasheet": None if self.datasheet_path is None else str(self.datasheet_path),
                "sources": list(self.sources)}


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def find_datasheet(path: Path) -> Path | None:
    for candidate in (path.with_name(path.stem + ".DATASHEET.md"),
                      path.parent / "DATASHEET.md"):
        if candidate.exists():
            return candidate
    return None


def _plain(text: str) -> str:
    """Markdown emphasis and code marks removed (the report escapes the rest)."""
    return re.sub(r"\*|`", "", text).strip()


def read_datasheet(path: Path) -> tuple[dict[str, str], str]:
    """The key-value rows of the first Markdown table and the first block quote."""
    rows: dict[str, str] = {}
    quote: list[str] = []
    in_table = False
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith(">") and not rows:
            quote.append(stripped.lstrip("> ").strip())
            continue
        if stripped.startswith("|"):
            in_table = True
            cells = [c.strip() for c in stripped.strip("|").split("|")]
            if len(cells) >= 2 and cells[0] and not set(cells[0]) <= set("-: "):
                rows[_plain(cells[0])] = _plain(" | ".join(cells[1:]))
        elif in_table:
            break
    return rows, _plain(" ".join(quote))


def provenance(path: str | Path, table: pd.DataFrame) -> Provenance:
    path = Path(path)
    reasons = []
    sources: tuple[str, ...] = ()
    if "source" in table.columns:
        values = table["source"].dropna().astype(str)
        sources = tuple(dict.fromkeys(values))[:5]
        n = int(values.str.contains("synthetic", case=False).sum())
        if n:
            reasons.append(f"the source column says SYNTHETIC in {n} of {len(table)} rows")
    sheet_path = find_datasheet(path)
    sheet: dict[str, str] = {}
    headline = ""
    if sheet_path is not None:
        sheet, headline = read_datasheet(sheet_path)
        kind = next((v for k, v in sheet.items() if k.lower().startswith("real or synthetic")),
                    "")
        if "synthetic" in kind.lower():
            reasons.append(f"its datasheet ({sheet_path.name}) says: {kind}")
    return Provenance(path=path, sha256=file_sha256(path), rows=len(table),
                      synthetic=bool(reasons), reasons=tuple(reasons),
                      datasheet_path=sheet_path, datasheet=sheet, headline=headline,
                      sources=sources)
