"""Timing and warning capture for the steps of a run: nothing a fit says is lost.

Every step runs inside :meth:`Recorder.step`, which times it and records every Python warning
it raises. Warnings about the analysis (bayesmeta's own, numerical ones) go to ``warnings``
and are shown in the report; deprecation notices of third-party libraries are kept apart in
``library`` (they concern library versions, not the data) and written to run.json.
A step that cannot be computed for the data at hand (an :class:`~bayesmeta.errors.InputError`,
e.g. Egger's test with k = 2) is recorded as a note by :meth:`Recorder.attempt`; any other
exception propagates.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ..errors import InputError

T = TypeVar("T")

_LIBRARY_CATEGORIES = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


class Recorder:
    """Collects the timings (seconds per step), warnings and notes of one analysis."""

    def __init__(self, source: str):
        self.source = source
        self.timings: dict[str, float] = {}
        self.warnings: list[str] = []
        self.notes: list[str] = []
        self.library: list[str] = []

    def warn(self, step: str, messages: Iterable[str]) -> None:
        """Record messages (e.g. a result's ``warnings``) under ``step``, once each."""
        for message in messages:
            text = f"{step}: {message}"
            if text not in self.warnings:
                self.warnings.append(text)

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)

    @contextmanager
    def step(self, step: str) -> Iterator[None]:
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield
            finally:
                self.timings[step] = self.timings.get(step, 0.0) + time.perf_counter() - start
        for w in caught:
            text = str(w.message)
            if issubclass(w.category, _LIBRARY_CATEGORIES):
                entry = f"{w.category.__name__} ({w.filename.rsplit('/', 1)[-1]}): {text}"
                if entry not in self.library:
                    self.library.append(entry)
            else:
                self.warn(step, [text])

    def attempt(self, step: str, func: Callable[[], T], *, timed: bool = True) -> T | None:
        """Run ``func`` as ``step``; an InputError becomes a note saying why it was not
        computed (and ``None`` is returned). ``timed=False`` when ``func`` times its own
        steps."""
        try:
            if not timed:
                return func()
            with self.step(step):
                return func()
        except InputError as exc:
            self.note(f"{step} not computed: {exc}")
            return None

    def summary(self) -> dict[str, Any]:
        return {"timings": dict(self.timings), "warnings": list(self.warnings),
                "notes": list(self.notes), "library": list(self.library)}
