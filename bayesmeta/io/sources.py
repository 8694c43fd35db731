"""Read a CSV, Excel or parquet file, or a DataFrame, into a raw table of untyped cells.

No typing or validation happens here beyond what is needed to see a table at all (a header, cells
under it). Each reader opens its file read-only and never writes to it. CSV and Excel are read
with the standard ``csv`` module and openpyxl rather than pandas so that duplicated headers,
ragged rows and blank rows are seen (pandas silently renames the first and pads the others).
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InputError, Problem
from .cells import is_missing

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
PARQUET_SUFFIXES = (".parquet", ".pq")
_DELIMITERS = (",", ";", "\t")


@dataclass(frozen=True)
class RawTable:
    """Cells as read, column by column.

    Attributes
    ----------
    header
        Column names as written in the source.
    columns
        One list of cells per header entry, all of the same length.
    rows
        1-based data row number (header excluded) of each position.
    blank_rows
        Data rows that held no value at all (skipped).
    problems
        Rows or columns that could not be read as cells of the table (ragged rows, data under
        an empty header); reported with the cell problems.
    source
        The path, or ``"DataFrame"``.
    context
        What error messages say was being read (the file name, or ``"the DataFrame"``).
    """

    header: tuple[str, ...]
    columns: tuple[list[Any], ...]
    rows: tuple[int, ...]
    blank_rows: tuple[int, ...]
    problems: tuple[Problem, ...]
    source: str
    context: str


def load(source: Any, *, sheet: str | int | None = None, delimiter: str | None = None,
         encoding: str = "utf-8-sig") -> RawTable:
    """Read ``source`` (a path or a DataFrame) into a :class:`RawTable`.

    Raises
    ------
    FileNotFoundError
        When the path does not exist.
    InputError
        When the file cannot be read as a table (unknown format, empty file, bad sheet, ...).
    """
    if isinstance(source, pd.DataFrame):
        _no_sheet(sheet, "a DataFrame")
        return _from_dataframe(source)
    if not isinstance(source, str | os.PathLike):
        raise InputError(Problem("expected a file path or a pandas DataFrame", column="source",
                                 value=type(source).__name__))
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    context = path.name
    if suffix in CSV_SUFFIXES:
        _no_sheet(sheet, context)
        header, records = _read_csv(path, delimiter, encoding, context)
    elif suffix in EXCEL_SUFFIXES:
        header, records = _read_excel(path, sheet, context)
    elif suffix in PARQUET_SUFFIXES:
        _no_sheet(sheet, context)
        return _from_dataframe(_read_parquet(path, context), source=str(path), context=context)
    else:
        hint = "; save it as .xlsx or CSV" if suffix == ".xls" else ""
        known = ", ".join(CSV_SUFFIXES + EXCEL_SUFFIXES + PARQUET_SUFFIXES)
        raise InputError(Problem(f"expected a file ending in {known}{hint}", column="source",
                                 value=path.name), context)
    return _from_records(header, records, source=str(path), context=context)


def _no_sheet(sheet: Any, what: str) -> None:
    if sheet is not None:
        raise InputError(Problem(f"sheet= applies to Excel files only, not {what}",
                                 column="sheet", value=sheet))


def _read_csv(path: Path, delimiter: str | None, encoding: str,
              context: str) -> tuple[list[Any], list[list[Any]]]:
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise InputError(Problem(
            f"the file is not {encoding} text ({exc.reason} at byte {exc.start}); save it as "
            "'CSV UTF-8' or pass encoding=", column="encoding", value=encoding), context) from None
    first = text.split("\n", 1)[0]
    if delimiter is None:
        # The header decides: a spreadsheet saved with a semicolon or tab separator has several
        # of them there and (usually) no commas.
        delimiter = max(_DELIMITERS, key=first.count) if first else ","
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise InputError(Problem(f"not readable as CSV: {exc}", column="source",
                                 value=path.name), context) from None
    if not records:
        return [], []
    return records[0], records[1:]


def _read_excel(path: Path, sheet: str | int | None,
                context: str) -> tuple[list[Any], list[list[Any]]]:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError) as exc:
        raise InputError(Problem(f"not a readable .xlsx workbook ({exc})", column="source",
                                 value=path.name), context) from None
    try:
        names = book.sheetnames
        if sheet is None:
            index = 0
        elif isinstance(sheet, int) and not isinstance(sheet, bool) and 0 <= sheet < len(names):
            index = sheet
        elif isinstance(sheet, str) and sheet in names:
            index = names.index(sheet)
        else:
            raise InputError(Problem(
                "no such sheet; the workbook has " + ", ".join(repr(n) for n in names)
                + f" (or an index 0-{len(names) - 1})", column="sheet", value=sheet), context)
        records = [list(r) for r in book.worksheets[index].iter_rows(values_only=True)]
    finally:
        book.close()
    if not records:
        return [], []
    return records[0], records[1:]


def _read_parquet(path: Path, context: str) -> pd.DataFrame:
    import pyarrow
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pyarrow.ArrowException, OSError) as exc:
        raise InputError(Problem(f"not a readable parquet file ({exc})", column="source",
                                 value=path.name), context) from None
    # through pandas so that a saved index (e.g. read_studies' "row") is restored as an index
    return table.to_pandas()


def _from_dataframe(frame: pd.DataFrame, *, source: str = "DataFrame",
                    context: str = "the DataFrame") -> RawTable:
    # A table returned by read_studies carries its file's row numbers in an index named "row";
    # keep them so re-validating reports the same rows. Other named indexes hold data.
    rows: Sequence[int] | None = None
    if frame.index.name == "row" and pd.api.types.is_integer_dtype(frame.index.dtype):
        rows = [int(r) for r in frame.index]
    elif any(name is not None for name in frame.index.names):
        frame = frame.reset_index()
    header = [str(c) for c in frame.columns]
    columns = [frame.iloc[:, j].tolist() for j in range(frame.shape[1])]
    records = [list(r) for r in zip(*columns, strict=True)] if columns else [[]] * len(frame)
    return _from_records(header, records, source=source, context=context, rows=rows)


def _from_records(header: Sequence[Any], records: Sequence[Sequence[Any]], *, source: str,
                  context: str, rows: Sequence[int] | None = None) -> RawTable:
    problems: list[Problem] = []
    if not header and not records:
        raise InputError(Problem("the table is empty: expected a header row naming the columns, "
                                 "then one row per comparison"), context)
    width = len(header)
    while width and _unnamed(header[width - 1]) and all(
            len(r) < width or is_missing(r[width - 1]) for r in records):
        width -= 1  # unnamed empty columns at the right edge (common in spreadsheets)
    numbers = list(rows) if rows is not None else list(range(1, len(records) + 1))
    kept, blank = [], []
    for number, record in zip(numbers, records, strict=True):
        cells = list(record[:width]) + [None] * (width - len(record))
        extra = [v for v in record[width:] if not is_missing(v)]
        if extra:
            problems.append(Problem(
                f"the row has cells beyond the {width} columns the header names", row=number,
                value=extra[0]))
        if all(is_missing(v) for v in cells):
            blank.append(number)
        else:
            kept.append((number, cells))
    names = []
    for j in range(width):
        name = header[j]
        if _unnamed(name):
            first = next((n for n, cells in kept if not is_missing(cells[j])), None)
            if first is not None:
                problems.append(Problem(
                    f"column {j + 1} has no name in the header but holds data; name it or "
                    "delete it",
                    row=first, value=next(c[j] for n, c in kept if n == first)))
            name = ""
        names.append(str(name).strip())
    keep = [j for j in range(width) if names[j] != ""]
    return RawTable(
        header=tuple(names[j] for j in keep),
        columns=tuple([cells[j] for _, cells in kept] for j in keep),
        rows=tuple(n for n, _ in kept),
        blank_rows=tuple(blank),
        problems=tuple(problems),
        source=source,
        context=context,
    )


def _unnamed(name: Any) -> bool:
    return name is None or (isinstance(name, str) and not name.strip()) or (
        isinstance(name, float) and name != name)
