"""Study tables: read CSV / Excel / parquet (or a DataFrame) into a validated DataFrame.

The schema (``/work/shared/design/SCHEMA.md``) is one declarative table,
:data:`bayesmeta.io.schema.COLUMNS`; :class:`StudyTable` describes it, :func:`read_studies`
validates against it, :mod:`bayesmeta.io.template` turns it into the extraction template and
its documentation.
"""

from __future__ import annotations

from .reader import excluded, read_studies
from .schema import SCHEMA_VERSION, STUDY_TABLE, Column, StudyTable

__all__ = ["SCHEMA_VERSION", "STUDY_TABLE", "Column", "StudyTable", "excluded", "read_studies"]
