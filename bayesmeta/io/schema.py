"""The extraction schema as one declarative table (``/work/shared/design/SCHEMA.md``).

Every column of a study table is one :class:`Column` in :data:`COLUMNS`: its type, whether it is
required, its allowed values or bounds, and what it means. The reader validates against this
table, ``scripts/make_template.py`` builds the extraction template from it and the datasheet's
column list is printed from it, so the three cannot drift apart.

This module holds data only (no pandas, no I/O): the reader, the template and the docs sit above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = "1.0"

#: kinds of column and the pandas dtype each becomes in a validated table
KINDS = {
    "text": "string",
    "category": "category",
    "number": "float64",
    "integer": "Int64",
    "boolean": "boolean",
}

#: the row key: one comparison of one outcome at one follow-up
KEY = ("study_id", "comparison_id", "outcome", "follow_up")

#: comparison_id of a row that leaves it empty (and of every row when the column is absent)
DEFAULT_COMPARISON_ID = "1"

#: instrument -> (lowest, highest) possible score; ``custom`` takes scale_min/scale_max instead
INSTRUMENT_RANGES: dict[str, tuple[float, float]] = {
    "VAS_0_10": (0.0, 10.0),
    "VAS_0_100": (0.0, 100.0),
    "NRS_0_10": (0.0, 10.0),
    "RMDQ_0_24": (0.0, 24.0),
    "ODI_0_100": (0.0, 100.0),
}
CUSTOM_INSTRUMENT = "custom"

#: effect measures a form C row may name (metafor 3.8-1 spellings, see ``?escalc``)
MEASURE_NAMES = (
    "SMD", "SMDH", "SMCC", "SMCR", "MD", "MC", "ROM",
    "OR", "RR", "RD", "PLO", "PLN", "PR", "COR", "ZCOR", "GEN",
)

#: cell texts read as "no value" (compared after stripping and lower-casing). ``none`` is NOT
#: here: it is a level of psych_component.
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "nr", "not reported"})

#: texts accepted for a boolean cell (compared lower-cased)
TRUE_TOKENS = frozenset({"true", "yes", "1"})
FALSE_TOKENS = frozenset({"false", "no", "0"})


@dataclass(frozen=True)
class Column:
    """One column of the study table.

    Attributes
    ----------
    name
        Lower-case snake_case name.
    kind
        ``"text"``, ``"category"``, ``"number"``, ``"integer"`` or ``"boolean"``
        (see :data:`KINDS`).
    group
        Section of the schema (``"identification"``, ``"form A"``, ...), for the docs and template.
    meaning
        One line for the docs.
    required
        Whether every row must fill it (and every table must have it).
    levels
        Values of a category, in their canonical spelling and order (matched case-insensitively).
    closed
        Whether only ``levels`` are allowed; an open category also accepts other values.
    lower, upper
        Bounds of a number; ``lower_open``/``upper_open`` make them strict (``> 0``).
    noun
        How error messages name a value of this column (``"a standard deviation"``).
    example
        The value in the template's example row (``None``: left empty there).
    """

    name: str
    kind: str
    group: str
    meaning: str
    required: bool = False
    levels: tuple[str, ...] = ()
    closed: bool = False
    lower: float | None = None
    lower_open: bool = False
    upper: float | None = None
    upper_open: bool = False
    noun: str = "the value"
    example: Any = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name}: unknown kind {self.kind!r}")

    @property
    def bounds_text(self) -> str:
        """The allowed range in words (``"> 0"``, ``"between -1 and 1"``), or ``""``."""
        lo, hi = self.lower, self.upper
        if lo is not None and hi is not None and not (self.lower_open or self.upper_open):
            return f"between {lo:g} and {hi:g}"
        parts = []
        if lo is not None:
            parts.append(f"{'>' if self.lower_open else '>='} {lo:g}")
        if hi is not None:
            parts.append(f"{'<' if self.upper_open else '<='} {hi:g}")
        return " and ".join(parts)

    def allows(self, value: float) -> bool:
        """Whether a parsed number lies within the bounds."""
        lo, hi = self.lower, self.upper
        if lo is not None and (value <= lo if self.lower_open else value < lo):
            return False
        return not (hi is not None and (value >= hi if self.upper_open else value > hi))


def _arms(stem: str, kind: str, group: str, meaning: str, examples: tuple[Any, Any],
          **kw: Any) -> tuple[Column, Column]:
    return tuple(
        Column(f"{stem}{arm}", kind, group, f"{meaning}, arm {arm} ({who})", example=ex, **kw)
        for arm, who, ex in ((1, "individualized", examples[0]), (2, "control", examples[1]))
    )  # type: ignore[return-value]


_SD = {"lower": 0.0, "lower_open": True, "noun": "a standard deviation"}
_N = {"lower": 2.0, "noun": "a sample size"}
_R = {"lower": -1.0, "upper": 1.0, "noun": "a correlation"}

#: The schema, in template order.
COLUMNS: tuple[Column, ...] = (
    # identification
    Column("study_id", "text", "identification", "short study label, e.g. `Ford 2016`",
           required=True, noun="a study label", example="Example 2020"),
    Column("comparison_id", "text", "identification",
           "distinguishes the comparisons of a multi-arm trial (empty: `1`)",
           noun="a comparison label", example="1"),
    Column("outcome", "category", "identification", "outcome, e.g. `pain`, `disability`",
           required=True, levels=("pain", "disability"), noun="an outcome", example="pain"),
    Column("follow_up", "category", "identification",
           "`short` (closest to 12 weeks) or `long` (closest to 12 months)", required=True,
           levels=("short", "long"), noun="a follow-up", example="short"),
    Column("follow_up_weeks", "number", "identification", "the actual time point, in weeks",
           lower=0.0, noun="a time point in weeks", example=12),
    # arm sizes, shared by forms A and B and binary outcomes
    *_arms("n", "integer", "arms", "analysed participants", (60, 58), **_N),
    # form A: change scores
    *_arms("change_mean", "number", "form A", "mean change (follow-up minus baseline)",
           (-2.1, -1.2), noun="a mean change"),
    *_arms("change_sd", "number", "form A",
           "SD of the change (empty: imputed from form B's SDs and prepost_r)", (1.7, 1.7), **_SD),
    # form B: baseline and follow-up
    *_arms("baseline_mean", "number", "form B", "mean at baseline", (5.1, 5.0), noun="a mean"),
    *_arms("baseline_sd", "number", "form B", "SD at baseline", (1.4, 1.5), **_SD),
    *_arms("post_mean", "number", "form B", "mean at follow-up", (3.0, 3.8), noun="a mean"),
    *_arms("post_sd", "number", "form B", "SD at follow-up", (1.9, 1.9), **_SD),
    Column("prepost_r", "number", "form B",
           "pre-post correlation used to impute change SDs (Cochrane Handbook 6.5.2.8)",
           example=0.5, **_R),
    # form C: effect already computed
    Column("yi", "number", "form C", "effect size, on the scale named by `measure`",
           noun="an effect size"),
    Column("vi", "number", "form C", "sampling variance of yi (or give sei)", lower=0.0,
           lower_open=True, noun="a sampling variance"),
    Column("sei", "number", "form C", "standard error of yi (or give vi)", lower=0.0,
           lower_open=True, noun="a standard error"),
    Column("measure", "category", "form C", "effect measure of yi (metafor's name)",
           levels=MEASURE_NAMES, closed=True, noun="a measure"),
    # binary outcomes (with n1, n2) and correlations
    *_arms("events", "integer", "binary", "participants with the event", (None, None),
           lower=0.0, noun="an event count"),
    Column("ri", "number", "correlation", "correlation coefficient", **_R),
    Column("ni", "integer", "correlation", "sample size of the correlation", **_N),
    # scale
    Column("instrument", "category", "scale",
           "measurement instrument; `custom` needs scale_min and scale_max",
           levels=(*INSTRUMENT_RANGES, CUSTOM_INSTRUMENT), closed=True,
           noun="an instrument", example="VAS_0_10"),
    Column("scale_min", "number", "scale", "lowest possible score (required for `custom`)",
           noun="a scale end"),
    Column("scale_max", "number", "scale", "highest possible score (required for `custom`)",
           noun="a scale end"),
    Column("higher_is_worse", "boolean", "scale",
           "whether a higher score means more burden (pain and disability scales: true)",
           noun="a yes/no flag", example=True),
    # moderators of the review
    Column("comparator", "category", "moderators", "type of control",
           levels=("active", "passive"), closed=True, noun="a comparator", example="active"),
    Column("comparator_detail", "category", "moderators", "control in detail",
           levels=("exercise", "usual_care_advice", "no_treatment", "passive_therapy",
                   "medication"), closed=True, noun="a comparator detail", example="exercise"),
    Column("exercise_type", "category", "moderators", "exercise type (`smt`: sensorimotor)",
           levels=("mixed", "smt", "aerobic", "mckenzie", "back_school", "pilates", "yoga"),
           closed=True, noun="an exercise type", example="smt"),
    Column("effective_exercise", "boolean", "moderators",
           "known-effective exercise type (as the review classified)", noun="a yes/no flag",
           example=True),
    Column("psych_component", "category", "moderators", "psychological component",
           levels=("none", "cbt", "behavioural", "other"), closed=True,
           noun="a psychological component", example="none"),
    Column("behavioural", "boolean", "moderators", "additional behavioural treatment",
           noun="a yes/no flag", example=False),
    Column("matched_control", "boolean", "moderators",
           "control is the same exercise without individualisation", noun="a yes/no flag",
           example=False),
    Column("rob_overall", "category", "moderators", "overall risk of bias (RoB 2)",
           levels=("low", "some_concerns", "high"), closed=True, noun="a risk-of-bias rating",
           example="some_concerns"),
    Column("lbp_12_weeks", "boolean", "moderators",
           "inclusion criterion: low back pain for at least 12 weeks", noun="a yes/no flag",
           example=True),
    Column("duration_weeks", "number", "moderators", "intervention length, in weeks",
           lower=0.0, lower_open=True, noun="an intervention length", example=8),
    Column("n_total", "integer", "moderators", "randomised participants (all arms)",
           lower=1.0, noun="a number of participants", example=130),
    Column("mean_age", "number", "moderators", "mean age of the participants, in years",
           lower=0.0, lower_open=True, noun="a mean age", example=45.4),
    # provenance
    Column("source", "text", "provenance", "citation or DOI of the report",
           noun="a source", example="invented for the template"),
    Column("extracted_by", "text", "provenance", "who extracted the row",
           noun="a name", example="AB"),
    Column("notes", "text", "provenance", "anything a reader of the data should know",
           noun="a note", example="example row, not real data"),
)

COLUMNS_BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}


@dataclass(frozen=True)
class Form:
    """One way to give a row's outcome data.

    ``needs`` lists requirements; each requirement is a tuple of alternatives, each alternative a
    tuple of columns that must all be filled. The form is complete when every requirement has one
    filled alternative.
    """

    name: str
    meaning: str
    needs: tuple[tuple[tuple[str, ...], ...], ...]

    @property
    def summary(self) -> str:
        """The columns in short, arms paired: ``"n1/2, change_mean1/2, change_sd1/2"``."""
        tokens = [" or ".join(a[0] for a in alts) if all(len(a) == 1 for a in alts)
                  else alts[0][0] for alts in self.needs]
        out = []
        for token in tokens:
            if token.endswith("2") and token[:-1] + "1" in out:
                out[out.index(token[:-1] + "1")] = token[:-1] + "1/2"
            else:
                out.append(token)
        return ", ".join(out)

    @property
    def columns(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for alternatives in self.needs:
            for alternative in alternatives:
                seen.update(dict.fromkeys(alternative))
        return tuple(seen)


def _one(*names: str) -> tuple[tuple[tuple[str, ...], ...], ...]:
    return tuple(((n,),) for n in names)


FORMS: tuple[Form, ...] = (
    Form("A", "change scores",
         (*_one("n1", "n2", "change_mean1", "change_mean2"),
          (("change_sd1",), ("baseline_sd1", "post_sd1", "prepost_r")),
          (("change_sd2",), ("baseline_sd2", "post_sd2", "prepost_r")))),
    Form("B", "baseline and follow-up values",
         _one("n1", "n2", "baseline_mean1", "baseline_sd1", "baseline_mean2", "baseline_sd2",
              "post_mean1", "post_sd1", "post_mean2", "post_sd2")),
    Form("C", "effect already computed", (*_one("yi"), (("vi",), ("sei",)), *_one("measure"))),
    Form("binary", "event counts", _one("events1", "n1", "events2", "n2")),
    Form("correlation", "correlation", _one("ri", "ni")),
)

#: columns whose means must lie within the instrument's range, and change means within +-width
LEVEL_MEANS = ("baseline_mean1", "baseline_mean2", "post_mean1", "post_mean2")
CHANGE_MEANS = ("change_mean1", "change_mean2")

#: (event column, its sample-size column)
EVENTS_WITHIN = (("events1", "n1"), ("events2", "n2"))

#: Column-name aliases (after lower-casing and turning spaces, dots and hyphens into
#: underscores). Only unambiguous names: metafor's ``m1i``/``sd1i`` are not here because they may
#: hold change scores or follow-up values.
ALIASES: dict[str, str] = {
    "study": "study_id",
    "study_name": "study_id",
    "study_label": "study_id",
    "studlab": "study_id",  # R package meta
    "author_year": "study_id",
    "trial": "study_id",
    "comparison": "comparison_id",
    "followup": "follow_up",
    "timepoint": "follow_up",
    "time_point": "follow_up",
    "followup_weeks": "follow_up_weeks",
    "n1i": "n1",  # metafor
    "n2i": "n2",
    "n_e": "n1",  # meta: n.e, n.c
    "n_c": "n2",
    "ai": "events1",  # metafor: events in arm 1 / arm 2
    "ci": "events2",
    "event_e": "events1",  # meta: event.e, event.c
    "event_c": "events2",
    "se": "sei",
    "pre_post_r": "prepost_r",
    "r_prepost": "prepost_r",
    "scale": "instrument",
    "rob": "rob_overall",
    "risk_of_bias": "rob_overall",
    "age_mean": "mean_age",
    "n_randomised": "n_total",
    "n_randomized": "n_total",
    "doi": "source",
    "reference": "source",
    "citation": "source",
    "extractor": "extracted_by",
    "note": "notes",
    "comment": "notes",
    "comments": "notes",
}


@dataclass(frozen=True)
class StudyTable:
    """The study-table schema: the columns a validated table may hold and the rules they obey.

    A validated study table itself is a plain :class:`pandas.DataFrame` returned by
    :func:`bayesmeta.io.read_studies`; this object describes it (``STUDY_TABLE.columns``,
    ``STUDY_TABLE["n1"]``) and is what the template and the docs are generated from.

    Attributes
    ----------
    columns
        Every schema column, in template order.
    forms
        The ways a row may give its outcome data (A, B, C, binary, correlation).
    key
        Columns whose combination must be unique.
    aliases
        Built-in column-name aliases -> schema column.
    version
        Schema version, recorded in ``DataFrame.attrs["schema_version"]``.
    """

    columns: tuple[Column, ...] = COLUMNS
    forms: tuple[Form, ...] = FORMS
    key: tuple[str, ...] = KEY
    aliases: tuple[tuple[str, str], ...] = tuple(ALIASES.items())
    version: str = SCHEMA_VERSION

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def __getitem__(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{name!r} is not a column of the study-table schema")

    def __contains__(self, name: object) -> bool:
        return name in self.names


STUDY_TABLE = StudyTable()
