"""The pinned R reference values (tests/reference/) as the test modules read them.

One place for the reference directory, the ``metafor_tight`` tolerance, the loop over the dataset
documents, the study table of an analysis and the comparison with a reference value. Test modules
import it as ``from refdata import ...``: pytest's default ``prepend`` import mode puts tests/ on
``sys.path`` (tests/ has no ``__init__.py``).

The parsed documents are cached and shared by every test module: treat them as read-only.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

REFERENCE = Path(__file__).parent / "reference"

#: Tolerance against metafor's ``metafor_tight`` values (tests/reference/README.md): 1e-6
#: relative, or 1e-8 absolute for values near zero, whichever is larger.
RTOL = 1e-6
ATOL = 1e-8

#: reference files that are not dataset documents (tests/reference/README.md): the independent
#: quadrature of the bayesmeta fits and the per-call timings used by benchmarks/
NOT_DATASETS = ("timings", "crosscheck")


@functools.cache
def reference_document(stem: str) -> dict:
    """The parsed ``tests/reference/<stem>.json`` (cached; read-only)."""
    return json.loads((REFERENCE / f"{stem}.json").read_text())


@functools.cache
def _dataset_stems() -> tuple[str, ...]:
    # sorted by file name, the order the test ids have always had
    return tuple(path.stem for path in sorted(REFERENCE.glob("*.json"))
                 if not path.name.startswith(NOT_DATASETS))


def reference_documents() -> Iterator[tuple[str, dict]]:
    """(dataset stem, parsed document) for every dataset file, sorted by file name.

    Skips ``timings*.json`` and ``crosscheck*.json``. Every dataset document has ``analyses``
    (one entry per effect measure / subset); a file without it is an error, not a silent skip.
    """
    for stem in _dataset_stems():
        doc = reference_document(stem)
        assert "analyses" in doc, f"tests/reference/{stem}.json has no 'analyses'"
        yield stem, doc


def study_table(doc: dict, analysis: dict) -> pd.DataFrame:
    """The study table of one analysis, rows aligned with its yi/vi.

    The dataset's CSV (``doc["data_csv"]``) with the reference effects added as ``yi_ref`` and
    ``vi_ref``; for an analysis of a subset (dat.curtis1998 ``xtrt == NONE``, where labels are
    unique) the rows of that subset in the analysis's order.
    """
    csv = pd.read_csv(REFERENCE / doc["data_csv"])
    if len(csv) == analysis["k"]:
        table = csv.copy()
    else:
        table = csv.set_index("label").loc[analysis["label"]].reset_index()
    assert table["label"].tolist() == analysis["label"]
    table["yi_ref"] = analysis["yi"]
    table["vi_ref"] = analysis["vi"]
    return table


def assert_close(tag: str, value, ref, rtol: float = RTOL, atol: float = ATOL) -> None:
    """Assert ``|value - ref| <= max(rtol * |ref|, atol)``, elementwise for arrays.

    ``ref`` None (R's NULL/NA recorded as null) matches only ``value`` None, and ``value`` None
    matches only ``ref`` None. Otherwise both become float arrays of the same shape (a scalar is
    not a length-1 array); NaN never matches anything.
    """
    if ref is None or value is None:
        assert value is None and ref is None, f"{tag}: ours {value!r}, reference {ref!r}"
        return
    ours = np.asarray(value, dtype=float)
    theirs = np.asarray(ref, dtype=float)
    assert ours.shape == theirs.shape, f"{tag}: shape {ours.shape}, reference {theirs.shape}"
    bad = ~(np.abs(ours - theirs) <= np.maximum(rtol * np.abs(theirs), atol))
    if ours.ndim == 0:
        assert not bad, f"{tag}: ours {value!r}, reference {ref!r}"
    else:
        assert not bad.any(), (f"{tag}: at {np.flatnonzero(bad).tolist()} ours {ours[bad]}, "
                               f"reference {theirs[bad]}")


def assert_close_r_vector(tag: str, value, ref, rtol: float = RTOL, atol: float = ATOL) -> None:
    """:func:`assert_close` for a vector that R holds and jsonlite wrote with ``auto_unbox``.

    jsonlite writes an R vector of length 1 as a bare number, so a reference scalar stands for a
    length-1 vector here; ``value`` itself must be one-dimensional.
    """
    assert np.ndim(value) == 1, f"{tag}: ours {value!r} is not a vector"
    assert_close(tag, value, np.atleast_1d(np.asarray(ref, dtype=float)), rtol, atol)


def roberge_table() -> pd.DataFrame:
    """dat.roberge2017's 40 complete-case studies with the reference log odds ratios of
    preeclampsia (analysis ``OR_PE``) as ``yi``/``vi`` and ``attrs["measure"] = "OR"``: the
    data of the bmr() references (a fresh table each call)."""
    doc = reference_document("RobergeEtAl2017")
    table = pd.read_csv(REFERENCE / doc["data_csv"])
    analysis = doc["analyses"]["OR_PE"]
    table["yi"], table["vi"] = analysis["yi"], analysis["vi"]
    table.attrs["measure"] = "OR"
    return table
