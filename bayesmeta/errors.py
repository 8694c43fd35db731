"""Error and warning types shared by every user-facing entry point.

One :class:`Problem` per bad cell: it names the row (1-based, as a spreadsheet user counts data
rows, header excluded), the study label when known, the column, the offending value and what was
expected. :class:`InputError` carries all problems of one call, so a user fixes a file in one
round instead of one error at a time.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


def _format_value(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, float):
        if math.isnan(value):
            return "missing (NaN)"
        return f"{value:g}"
    if isinstance(value, str):
        return repr(value) if value.strip() != value or value == "" else value
    return str(value)


@dataclass(frozen=True)
class Problem:
    """One bad value: where it is, what it is, what was expected.

    Parameters
    ----------
    expected
        A short sentence saying what a valid value looks like, e.g.
        ``"a standard deviation must be > 0"``.
    row
        1-based data row (header excluded); ``None`` for a problem of the whole table or argument.
    study
        The study label of that row, when known.
    column
        Column or argument name.
    value
        The offending value (``None`` when the column itself is missing).
    """

    expected: str
    row: int | None = None
    study: str | None = None
    column: str | None = None
    value: Any = None
    show_value: bool = True

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}" + (f" ({self.study})" if self.study else ""))
        elif self.study:
            where.append(f"study {self.study}")
        if self.column is not None:
            where.append(f"column {self.column}")
        head = ", ".join(where)
        if self.show_value and (self.row is not None or self.value is not None):
            head = f"{head}: {_format_value(self.value)}" if head else _format_value(self.value)
        return f"{head}; {self.expected}" if head else self.expected


class InputError(ValueError):
    """Bad input. ``problems`` lists every problem found, not only the first.

    The message lists them one per line, prefixed by what was being read.
    """

    def __init__(self, problems: Problem | Sequence[Problem], context: str | None = None):
        if isinstance(problems, Problem):
            problems = [problems]
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.context = context
        super().__init__(self._message())

    def _message(self) -> str:
        lines = [str(p) for p in self.problems]
        if len(lines) == 1 and not self.context:
            return lines[0]
        n = len(lines)
        head = f"{n} problem{'s' if n != 1 else ''}"
        if self.context:
            head += f" in {self.context}"
        return head + ":\n" + "\n".join(f"  {line}" for line in lines)


def raise_if(problems: Iterable[Problem], context: str | None = None) -> None:
    """Raise one :class:`InputError` holding every problem, if there are any."""
    problems = list(problems)
    if problems:
        raise InputError(problems, context)


class BayesmetaWarning(UserWarning):
    """A condition the user should know about (recorded in results and reports as well)."""


class ConvergenceWarning(BayesmetaWarning):
    """An iterative estimator or sampler did not meet its convergence criteria."""


def warn(message: str, category: type[Warning] = BayesmetaWarning, stacklevel: int = 3) -> None:
    warnings.warn(message, category, stacklevel=stacklevel)
