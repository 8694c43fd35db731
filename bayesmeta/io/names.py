"""Column names: normalise to lower-case snake_case and map aliases onto schema columns."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import Problem
from .schema import ALIASES, STUDY_TABLE


def snake_case(name: str) -> str:
    """``"Study ID"`` -> ``"study_id"``, ``"n.e"`` -> ``"n_e"``: lower case, runs of anything but
    letters and digits become one underscore."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def check_user_aliases(aliases: Any) -> list[Problem]:
    """Problems with the ``aliases=`` argument itself (it must map names onto schema columns)."""
    if aliases is None:
        return []
    if not isinstance(aliases, Mapping):
        return [Problem("aliases= must be a dict mapping your column names to schema columns",
                        column="aliases", value=type(aliases).__name__)]
    problems = []
    for name, target in aliases.items():
        if not isinstance(name, str) or target not in STUDY_TABLE:
            problems.append(Problem(
                f"aliases= must map a column name onto a schema column (e.g. 'study_id', 'n1'); "
                f"{target!r} is not one", column="aliases", value=f"{name!r}: {target!r}"))
    return problems


def map_names(header: Sequence[str], aliases: Mapping[str, str] | None
              ) -> tuple[list[str], dict[str, str], list[Problem]]:
    """Canonical name of every header entry.

    Returns
    -------
    names
        One name per header entry: a schema column, or the snake_case form of an unknown name.
    mapped
        ``{name as written: name used}`` for every header that changed.
    problems
        Two headers meaning the same column; user aliases naming no column of the table.
    """
    user = dict(aliases or {})
    user_snake = {snake_case(k): v for k, v in user.items()}
    names, mapped, problems = [], {}, []
    first_of: dict[str, str] = {}
    used_user = set()
    for written in header:
        snake = snake_case(written) or written
        if written in user or snake in user_snake:
            name = user.get(written, user_snake.get(snake))
            used_user.add(written if written in user else snake)
        elif snake in STUDY_TABLE:
            name = snake
        else:
            name = ALIASES.get(snake, snake)
        if name in first_of:
            problems.append(Problem(
                f"columns {first_of[name]!r} and {written!r} both mean {name}; keep one of them",
                column=name, value=written))
        else:
            first_of[name] = written
        if name != written:
            mapped[written] = name
        names.append(name)
    for key in user:
        if key not in used_user and snake_case(key) not in used_user:
            problems.append(Problem(
                "aliases= names a column the table does not have; its columns are "
                + ", ".join(map(str, header)), column="aliases", value=key))
    return names, mapped, problems
