"""Parse single cells of a study table into their schema type.

Cells arrive as whatever the file format gives: text from CSV, numbers/booleans/text from Excel,
typed values from parquet or a DataFrame. Each parser returns the value in its canonical Python
form or raises :class:`CellError` with the expectation wording used in the error message.
"""

from __future__ import annotations

import math
import numbers
import re
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from .schema import FALSE_TOKENS, MISSING_TOKENS, TRUE_TOKENS, Column

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+")


class CellError(ValueError):
    """A cell that cannot become a value of its column; the message says what was expected."""


def is_missing(value: Any) -> bool:
    """Whether a cell holds no value (empty, NaN, NA, None, or a text in ``MISSING_TOKENS``)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, str):
        return value.strip().lower() in MISSING_TOKENS
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    return False


def parse_text(value: Any) -> str:
    """Text, stripped; a whole number stored as a float (Excel, parquet) reads as ``"3"``."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def parse_number(value: Any, noun: str) -> float:
    if isinstance(value, bool | np.bool_):
        raise CellError(f"{noun} must be a number, not a yes/no value")
    if isinstance(value, numbers.Real | Decimal):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            number = float(text)
        elif _DECIMAL_COMMA.fullmatch(text):
            raise CellError(f"{noun} must be a number written with a decimal point (e.g. 1.5)")
        else:
            raise CellError(f"{noun} must be a number")
    else:
        raise CellError(f"{noun} must be a number")
    if not math.isfinite(number):
        raise CellError(f"{noun} must be a finite number")
    return number


def parse_integer(value: Any, noun: str) -> int:
    number = parse_number(value, noun)
    if not number.is_integer():
        raise CellError(f"{noun} must be a whole number")
    return int(number)


def parse_boolean(value: Any, noun: str) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, numbers.Real) and float(value) in (0.0, 1.0):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE_TOKENS:
            return True
        if text in FALSE_TOKENS:
            return False
    raise CellError(f"{noun} must be true/false, yes/no or 1/0 (any case)")


def parse_category(value: Any, column: Column) -> str:
    """A level in its canonical spelling (matched case-insensitively).

    An open category also keeps values outside its levels; a closed one rejects them.
    """
    text = parse_text(value)
    for level in column.levels:
        if text.lower() == level.lower():
            return level
    if column.closed:
        raise CellError(f"{column.noun} must be one of: {', '.join(column.levels)}")
    return text


def parse_cell(column: Column, value: Any) -> Any:
    """Parse one non-missing cell of a schema column; bounds are checked here too."""
    if column.kind == "text":
        return parse_text(value)
    if column.kind == "category":
        return parse_category(value, column)
    if column.kind == "boolean":
        return parse_boolean(value, column.noun)
    number = (parse_integer if column.kind == "integer" else parse_number)(value, column.noun)
    if not column.allows(number):
        raise CellError(f"{column.noun} must be {column.bounds_text}")
    return number


def infer_column(values: list[Any]) -> tuple[list[Any], str]:
    """Values and dtype of a column outside the schema: numbers, else yes/no, else text.

    The same column thus gets the same dtype whether it came from CSV text, Excel or parquet.
    """
    for parse, dtype in ((parse_number, "float64"), (parse_boolean, "boolean")):
        try:
            return [None if is_missing(v) else parse(v, "") for v in values], dtype
        except CellError:
            continue
    return [None if is_missing(v) else parse_text(v) for v in values], "string"
