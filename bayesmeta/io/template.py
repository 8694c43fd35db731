"""The extraction template and the schema's documentation, generated from the schema table.

``scripts/make_template.py`` writes ``data/templates/extraction_template.{csv,xlsx}`` and the
column list of ``data/templates/DATASHEET.md`` with these functions.
"""

from __future__ import annotations

import csv
import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .schema import STUDY_TABLE, StudyTable

#: fixed workbook timestamps, so regenerating the template changes nothing a reader sees
_STAMP = datetime.datetime(2020, 1, 1)


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _allowed(column: Any) -> str:
    if column.levels:
        return ", ".join(column.levels) + ("" if column.closed else " (or others)")
    if column.kind == "boolean":
        return "true/false, yes/no, 1/0"
    if column.kind == "integer":
        return "whole number " + column.bounds_text
    return column.bounds_text


def schema_frame(table: StudyTable = STUDY_TABLE) -> pd.DataFrame:
    """One row per schema column: group, column, type, required, allowed values, meaning."""
    return pd.DataFrame(
        [{"group": c.group, "column": c.name, "type": c.kind,
          "required": "yes" if c.required else "no", "allowed": _allowed(c),
          "meaning": c.meaning} for c in table.columns],
        dtype="string",
    )


def schema_markdown(table: StudyTable = STUDY_TABLE) -> str:
    """The schema as a Markdown table (for datasheets and docs)."""
    frame = schema_frame(table)
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * frame.shape[1]]
    lines += ["| " + " | ".join(str(v).replace("|", "/") for v in row) + " |"
              for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def example_row(table: StudyTable = STUDY_TABLE) -> dict[str, Any]:
    """The template's example row: every column, ``None`` where the example leaves it empty."""
    return {c.name: c.example for c in table.columns}


def write_csv(path: str | Path, table: StudyTable = STUDY_TABLE) -> Path:
    """The template as CSV: the header and the example row."""
    path = Path(path)
    row = example_row(table)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(row)
        writer.writerow(_cell_text(v) for v in row.values())
    return path


def write_xlsx(path: str | Path, table: StudyTable = STUDY_TABLE, rows: int = 500) -> Path:
    """The template as a workbook.

    Sheet ``studies`` (read by default): header, the example row and drop-down lists on the
    category and yes/no columns for ``rows`` rows. Sheet ``schema``: :func:`schema_frame`.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    book = Workbook()
    book.properties.creator = "bayesmeta scripts/make_template.py"
    book.properties.created = _STAMP
    sheet = book.active
    sheet.title = "studies"
    row = example_row(table)
    sheet.append(list(row))
    sheet.append(list(row.values()))
    sheet.freeze_panes = "B2"
    for j, column in enumerate(table.columns, start=1):
        letter = get_column_letter(j)
        sheet.cell(row=1, column=j).font = Font(bold=True)
        sheet.column_dimensions[letter].width = max(10, len(column.name) + 2)
        if column.closed or column.kind == "boolean":
            choices = column.levels if column.closed else ("true", "false")
            check = DataValidation(type="list", formula1='"' + ",".join(choices) + '"',
                                   allow_blank=True, showErrorMessage=True,
                                   error=f"{column.name}: one of {', '.join(choices)}")
            check.add(f"{letter}2:{letter}{rows + 1}")
            sheet.add_data_validation(check)
    docs = book.create_sheet("schema")
    frame = schema_frame(table)
    docs.append(list(frame.columns))
    for values in frame.itertuples(index=False):
        docs.append([str(v) for v in values])
    for j in range(1, frame.shape[1] + 1):
        docs.cell(row=1, column=j).font = Font(bold=True)
    book.save(path)
    return Path(path)
