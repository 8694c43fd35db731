"""escalc against pinned metafor 3.8-1 values and against worked examples / closed forms.

Part 1 reads every ``tests/reference/<dataset>.json`` analysis whose ``escalc_call`` is an
``escalc(...)`` call, rebuilds the call from the recorded string (keyword -> CSV column) and
compares yi and vi to 1e-10 relative (the references are printed to 15 significant digits, so
agreement is limited to ~1e-15 by the JSON, not by us).

Part 2 covers measures without an R reference (SMDH, RD, COR, ZCOR, change scores with an
imputed SD) with textbook examples and closed forms, every expected number re-derived by hand
in the test so that the check never rests on a citation alone.
"""

from __future__ import annotations

import json
import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from refdata import REFERENCE, reference_documents

from bayesmeta import escalc
from bayesmeta.errors import BayesmetaWarning, InputError

RTOL_ESCALC = 1e-10  # tests/reference/README.md: escalc to 1e-10 relative

# Analyses whose effect sizes were not computed by escalc in R (given yi/vi columns).
NOT_ESCALC = {
    ("HinksEtAl2010", "OR"),
    ("Rubin1981", "raw"),
    ("dat.raudenbush1985", "SMD"),
}
# escalc keywords as written in the recorded R calls (metafor's names, identical to ours)
R_KEYWORDS = {"ai", "bi", "ci", "di", "n1i", "n2i", "m1i", "sd1i", "m2i", "sd2i", "xi", "mi",
              "ni", "ri"}


def _split_arguments(text: str) -> list[str]:
    """Split an R argument list at top-level commas."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current.strip())
    return parts


def parse_escalc_call(call: str) -> tuple[str, dict[str, str], tuple[str, str] | None]:
    """measure, keyword -> column, and an optional row filter ``(column, value)``.

    A bare name in the recorded call (``escalc(measure='ROM', m1i, sd1i, ...)``) is shorthand
    for ``m1i=m1i``: R itself would match a positional argument to ``ai``, and the recorded
    values are those of the keyword form, so this is how the references were made.
    """
    match = re.match(r"^escalc\((.*)\)(\[(.*)\])?\s*(#.*)?$", call.strip())
    assert match, call
    measure = None
    columns: dict[str, str] = {}
    for arg in _split_arguments(match.group(1)):
        if "=" in arg and not arg.startswith(("subset", "slab", "data")):
            key, value = (s.strip() for s in arg.split("=", 1))
            if key == "measure":
                measure = value.strip("'\"")
            else:
                assert key in R_KEYWORDS, f"unexpected argument {arg!r} in {call!r}"
                columns[key] = value
        elif "=" not in arg:
            assert arg in R_KEYWORDS, f"unexpected argument {arg!r} in {call!r}"
            columns[arg] = arg
    row_filter = None
    if match.group(3):
        cond = re.search(r"\$([\w.]+)\s*==\s*'([^']*)'", match.group(3))
        assert cond, f"cannot parse the row filter of {call!r}"
        row_filter = (cond.group(1), cond.group(2))
    assert measure is not None, call
    return measure, columns, row_filter


def _reference_cases() -> list[tuple[str, str]]:
    cases = []
    for dataset, doc in reference_documents():
        for key, analysis in doc["analyses"].items():
            if analysis.get("escalc_call", "").startswith("escalc("):
                cases.append((dataset, key))
    return cases


CASES = _reference_cases()


def test_every_reference_analysis_is_either_tested_or_known_to_be_precomputed():
    # Guards against a new reference analysis silently escaping the parametrised test below.
    everything = {(dataset, key) for dataset, doc in reference_documents()
                  for key in doc["analyses"]}
    assert everything == set(CASES) | NOT_ESCALC
    measures = {parse_escalc_call(json.loads((REFERENCE / f"{d}.json").read_text())
                                  ["analyses"][k]["escalc_call"])[0] for d, k in CASES}
    assert measures == {"RR", "SMD", "MD", "ROM", "PLO", "OR"}


@pytest.mark.parametrize(("dataset", "key"), CASES, ids=[f"{d}-{k}" for d, k in CASES])
def test_escalc_matches_metafor(dataset, key):
    analysis = json.loads((REFERENCE / f"{dataset}.json").read_text())["analyses"][key]
    measure, columns, row_filter = parse_escalc_call(analysis["escalc_call"])
    data = pd.read_csv(REFERENCE / "data" / f"{dataset}.csv")
    if row_filter is not None:
        data = data[data[row_filter[0]] == row_filter[1]].reset_index(drop=True)
    assert len(data) == analysis["k"]
    before = data.copy()
    with warnings.catch_warnings():
        # Double-zero studies (RobergeEtAl2017) warn by design; tested separately below.
        warnings.simplefilter("ignore", BayesmetaWarning)
        out = escalc(measure, data, **columns)
    assert list(out["label"]) == analysis["label"]
    np.testing.assert_allclose(out["yi"], analysis["yi"], rtol=RTOL_ESCALC, atol=0)
    np.testing.assert_allclose(out["vi"], analysis["vi"], rtol=RTOL_ESCALC, atol=0)
    pd.testing.assert_frame_equal(data, before)  # the input is never modified
    assert out.attrs["measure"] == measure
    record = out.attrs["escalc"]
    assert record["measure"] == measure
    # the reference CSVs carry R's yi/vi columns: overwritten, and said so
    assert record["replaced_columns"] == ["yi", "vi"]
    assert record["inputs"] == {k: v for k, v in columns.items()}
    counts = measure in ("OR", "RR", "PLO")
    assert (record["add"], record["to"]) == ((0.5, "only0") if counts else (None, None))


def test_double_zero_study_is_kept_with_warning_as_metafor_does():
    data = pd.read_csv(REFERENCE / "data" / "RobergeEtAl2017.csv")
    ref = json.loads((REFERENCE / "RobergeEtAl2017.json").read_text())["analyses"]["OR_PE"]
    args = dict(ai="asp.PE.events", n1i="asp.PE.total", ci="cont.PE.events",
                n2i="cont.PE.total")
    with pytest.warns(BayesmetaWarning, match=r"row 2 \(Benigni \(1989\)\): no events in "
                                              r"either arm \(a double-zero study\); kept"):
        out = escalc("OR", data, **args)
    # Benigni (1989): 0/17 vs 0/16 -> log((0.5 * 16.5) / (17.5 * 0.5)) = log(16.5 / 17.5)
    assert out["yi"].iloc[1] == pytest.approx(math.log(16.5 / 17.5), rel=1e-14)
    assert out["yi"].iloc[1] == pytest.approx(ref["yi"][1], rel=RTOL_ESCALC)
    record = out.attrs["escalc"]
    assert len(record["warnings"]) == 1 and "Benigni" in record["warnings"][0]
    assert record["zero_cell_rows"] == [2, 19, 28, 34]
    assert record["dropped"] == []

    with pytest.warns(BayesmetaWarning, match="set to NaN because drop00=True"):
        dropped = escalc("OR", data, drop00=True, **args)
    assert np.isnan(dropped["yi"].iloc[1]) and np.isnan(dropped["vi"].iloc[1])
    assert dropped.attrs["escalc"]["dropped"] == [
        {"row": 2, "study": "Benigni (1989)", "reason": "no events in either arm (drop00=True)"}]
    others = np.arange(len(data)) != 1
    np.testing.assert_allclose(dropped["yi"][others], np.asarray(ref["yi"])[others],
                               rtol=RTOL_ESCALC)
    assert dropped.attrs["escalc"]["zero_cell_rows"] == [19, 28, 34]


# ---------------------------------------------------------------------------------------------
# Part 2: worked examples and closed forms for measures without an R reference.
#
# Borenstein, Hedges, Higgins & Rothstein (2009), Introduction to Meta-Analysis, Wiley,
# doi:10.1002/9780470743386, chapters 4-6. We could not open the book on this machine: the
# example inputs and printed (4-decimal) results below are as we recall them, so each expected
# value is ALSO re-derived by hand in the comments and checked at full precision against that
# derivation; the test would stand even if a page number were wrong.
# ---------------------------------------------------------------------------------------------


def _c(m: float) -> float:
    """Hedges' exact correction, written out independently of the package."""
    return math.exp(math.lgamma(m / 2) - math.log(math.sqrt(m / 2)) - math.lgamma((m - 1) / 2))


def test_smd_borenstein_chapter4_example():
    # Means 103 vs 100, SDs 5.5 and 4.5, n = 50 per arm.
    # S_within = sqrt((49 * 5.5^2 + 49 * 4.5^2) / 98) = sqrt(25.25) = 5.024938
    # d = 3 / 5.024938 = 0.597022;  V_d = 1/50 + 1/50 + d^2 / 200 = 0.041782
    # J = 1 - 3 / (4 * 98 - 1) = 0.992327 (the book's approximation of c(98) = 0.992329)
    # g = J d = 0.5924;  V_g = J^2 V_d = 0.0411 (the book's eq. 4.24 = metafor vtype "LS2")
    out = escalc("SMD", m1i=[103.0], sd1i=[5.5], n1i=[50], m2i=[100.0], sd2i=[4.5], n2i=[50],
                 vtype="LS2")
    d = 3 / math.sqrt(25.25)
    assert out["yi"][0] == pytest.approx(_c(98) * d, rel=1e-13)
    assert out["vi"][0] == pytest.approx(_c(98) ** 2 * (0.04 + d**2 / 200), rel=1e-13)
    assert round(out["yi"][0], 4) == 0.5924
    assert round(out["vi"][0], 4) == 0.0411
    # metafor's default vtype "LS" plugs g into the variance: 0.04 + g^2 / 200
    default = escalc("SMD", m1i=[103.0], sd1i=[5.5], n1i=[50], m2i=[100.0], sd2i=[4.5], n2i=[50])
    assert default["vi"][0] == pytest.approx(0.04 + (_c(98) * d) ** 2 / 200, rel=1e-13)


def test_md_borenstein_chapter4_example():
    # D = 103 - 100 = 3; with n1 = n2 both variances coincide:
    # LS: 5.5^2/50 + 4.5^2/50 = (30.25 + 20.25)/50 = 1.01;  HO: 25.25 * (2/50) = 1.01
    for vtype in ("LS", "HO"):
        out = escalc("MD", m1i=[103.0], sd1i=[5.5], n1i=[50], m2i=[100.0], sd2i=[4.5],
                     n2i=[50], vtype=vtype)
        assert out["yi"][0] == 3.0
        assert out["vi"][0] == pytest.approx(1.01, rel=1e-14)


def test_binary_measures_borenstein_chapter5_example():
    # Treated 5 events / 95 non-events, control 10 / 90 (n = 100 each).
    # RR = 0.05/0.10 = 0.5, log = -0.6931, V = 1/5 - 1/100 + 1/10 - 1/100 = 0.28
    # OR = (5*90)/(95*10) = 0.47368, log = -0.7472, V = 1/5 + 1/95 + 1/10 + 1/90 = 0.321637
    # RD = 0.05 - 0.10 = -0.05, V = 0.05*0.95/100 + 0.10*0.90/100 = 0.001375
    cells = dict(ai=[5], bi=[95], ci=[10], di=[90])
    rr = escalc("RR", **cells)
    assert rr["yi"][0] == pytest.approx(math.log(0.5), rel=1e-14)
    assert rr["vi"][0] == pytest.approx(0.28, rel=1e-14)
    orr = escalc("OR", **cells)
    assert orr["yi"][0] == pytest.approx(math.log(450 / 950), rel=1e-14)
    assert orr["vi"][0] == pytest.approx(1 / 5 + 1 / 95 + 1 / 10 + 1 / 90, rel=1e-14)
    assert round(orr["yi"][0], 4) == -0.7472 and round(orr["vi"][0], 4) == 0.3216
    rd = escalc("RD", **cells)
    assert rd["yi"][0] == pytest.approx(-0.05, rel=1e-13)
    assert rd["vi"][0] == pytest.approx(0.001375, rel=1e-13)
    # the unbiased variant divides by n - 1: 0.0475/99 + 0.09/99
    rd_ub = escalc("RD", ai=[5], n1i=[100], ci=[10], n2i=[100], vtype="UB")
    assert rd_ub["vi"][0] == pytest.approx((0.0475 + 0.09) / 99, rel=1e-13)


def test_rd_zero_cell_correction_by_hand():
    # 0/20 vs 3/20 with add = 1/2 to every cell: p1 = 0.5/21, p2 = 3.5/21
    out = escalc("RD", ai=[0], n1i=[20], ci=[3], n2i=[20])
    p1, p2 = 0.5 / 21, 3.5 / 21
    assert out["yi"][0] == pytest.approx(p1 - p2, rel=1e-14)
    assert out["vi"][0] == pytest.approx(p1 * (1 - p1) / 21 + p2 * (1 - p2) / 21, rel=1e-14)
    assert out.attrs["escalc"]["zero_cell_rows"] == [1]


def test_correlations_borenstein_chapter6_example():
    # r = 0.50, n = 100: V_r = (1 - 0.25)^2 / 99 = 0.005682;
    # z = 0.5 ln(1.5/0.5) = 0.5493, V_z = 1/97 = 0.010309
    cor = escalc("COR", ri=[0.5], ni=[100])
    assert cor["yi"][0] == 0.5
    assert cor["vi"][0] == pytest.approx(0.5625 / 99, rel=1e-14)
    z = escalc("ZCOR", ri=[0.5], ni=[100])
    assert z["yi"][0] == pytest.approx(0.5 * math.log(3.0), rel=1e-14)
    assert z["vi"][0] == pytest.approx(1 / 97, rel=1e-14)
    assert round(z["yi"][0], 4) == 0.5493


def test_smdh_closed_form():
    """No published SMDH example was at hand (Bonett 2009, doi:10.1037/a0016619, gives the
    formula); this is an independent closed-form check instead.

    With equal SDs s in both arms and equal n, Bonett's SD sqrt((s^2 + s^2)/2) = s equals the
    pooled SD, so SMDH's estimate equals SMD's, and metafor 3.8-1's variance reduces to
    c^2 [g^2 (2 s^4/(n-1)) / (8 s^4) + (2 s^2/(n-1)) / s^2] = c^2 [g^2 / (4(n-1)) + 2/(n-1)].
    """
    args = dict(m1i=[103.0], sd1i=[5.0], n1i=[50], m2i=[100.0], sd2i=[5.0], n2i=[50])
    h = escalc("SMDH", **args)
    g = _c(98) * 0.6
    assert h["yi"][0] == pytest.approx(g, rel=1e-13)
    assert h["yi"][0] == pytest.approx(escalc("SMD", **args)["yi"][0], rel=1e-13)
    assert h["vi"][0] == pytest.approx(_c(98) ** 2 * (g**2 / 196 + 2 / 49), rel=1e-13)
    # Unequal SDs: s = sqrt((6^2 + 3^2)/2) = sqrt(22.5), n1 = 21, n2 = 31, m = 50
    h2 = escalc("SMDH", m1i=[10.0], sd1i=[6.0], n1i=[21], m2i=[8.0], sd2i=[3.0], n2i=[31])
    s2 = 22.5
    g2 = _c(50) * 2 / math.sqrt(s2)
    v2 = g2**2 * (6**4 / 20 + 3**4 / 30) / (8 * s2**2) + (36 / 20 + 9 / 30) / s2
    assert h2["yi"][0] == pytest.approx(g2, rel=1e-13)
    assert h2["vi"][0] == pytest.approx(_c(50) ** 2 * v2, rel=1e-13)


def test_smdh_worked_example_from_metafor_formula():
    """A worked SMDH example, computed by hand from metafor's formula (R/escalc.r, measure
    "SMDH": yi = c(m) (m1 - m2) / s with s = sqrt((sd1^2 + sd2^2)/2), vi = c(m)^2 [yi^2
    (sd1^4/(n1-1) + sd2^4/(n2-1)) / (2 (sd1^2 + sd2^2)^2) + (sd1^2/(n1-1) + sd2^2/(n2-1)) / s^2],
    where 2 (sd1^2 + sd2^2)^2 = 8 s^4). R is not installed on this machine, so the value was not
    produced by running metafor; every step is written out instead.

    Mean change -2.5 (SD 2.0, n 41) in arm 1 against -1.0 (SD 1.0, n 26) in arm 2:
      s^2 = (4 + 1) / 2 = 2.5, s = 1.5811388;  d = -1.5 / 1.5811388 = -0.9486833
      m = 41 + 26 - 2 = 65;  c(65) = Gamma(32.5) / (sqrt(32.5) Gamma(32)) = 0.9884095
                              (Hedges' approximation 1 - 3/(4*65 - 1) = 0.9884170)
      g = c d = -0.9376876;  g^2 = 0.8792580
      sd1^4/(n1-1) + sd2^4/(n2-1) = 16/40 + 1/25 = 0.44;  8 s^4 = 8 * 6.25 = 50
      sd1^2/(n1-1) + sd2^2/(n2-1) = 4/40 + 1/25 = 0.14;   / s^2 = 0.14 / 2.5 = 0.056
      bracket = 0.8792580 * 0.44 / 50 + 0.056 = 0.0077375 + 0.056 = 0.0637375
      vi = c^2 * bracket = 0.9769534 * 0.0637375 = 0.0622685
    The SMD of the same data is -0.8788 (its pooled SD weights the larger, more variable arm
    more), so the example also tells the two measures apart.
    """
    args = dict(m1i=[-2.5], sd1i=[2.0], n1i=[41], m2i=[-1.0], sd2i=[1.0], n2i=[26])
    h = escalc("SMDH", **args)
    c65 = _c(65)
    assert round(c65, 7) == 0.9884095
    g = c65 * -1.5 / math.sqrt(2.5)
    assert h["yi"][0] == pytest.approx(g, rel=1e-13)
    assert h["vi"][0] == pytest.approx(c65**2 * (g**2 * 0.44 / 50 + 0.056), rel=1e-13)
    assert round(h["yi"][0], 7) == -0.9376876
    assert round(h["vi"][0], 7) == 0.0622685
    assert round(escalc("SMD", **args)["yi"][0], 4) == -0.8788


# Change scores with an imputed SD. Cochrane Handbook v6 (2023), section 6.5.2.8, gives the
# imputation sd_change = sqrt(sd_b^2 + sd_f^2 - 2 r sd_b sd_f) and, for a study reporting all
# three SDs, the correlation r = (sd_b^2 + sd_f^2 - sd_change^2) / (2 sd_b sd_f). The checks below
# are closed forms: a 3-4-5 triangle (r = 0), equal SDs with r = 0.5, and the round trip through
# the Handbook's own worked example (section 6.5.2.8; section 16.1.3.2 in Handbook v5.1), whose
# SDs are used in test_change_sd_round_trip_through_the_handbook_correlation. As with Borenstein
# above, the Handbook could not be opened on this machine: its numbers are as we recall them and
# each is re-derived in the test, so the check does not rest on the citation alone.


def test_change_sd_imputation_closed_forms():
    # arm 1: baseline SD 3, follow-up SD 4, r = 0 -> sqrt(9 + 16) = 5 exactly
    # arm 2: baseline = follow-up SD 2, r = 0.5 -> sqrt(4 + 4 - 4) = 2
    out = escalc("MD", m1i=[-1.0], sd1i=[np.nan], n1i=[40], m2i=[0.5], sd2i=[np.nan], n2i=[50],
                 baseline_sd1i=[3.0], post_sd1i=[4.0], baseline_sd2i=[2.0], post_sd2i=[2.0],
                 prepost_r=[0.0])
    assert out["vi"][0] == pytest.approx(25 / 40 + 8 / 50, rel=1e-14)  # r=0 for both arms
    out = escalc("MD", m1i=[-1.0], sd1i=[np.nan], n1i=[40], m2i=[0.5], sd2i=[np.nan], n2i=[50],
                 baseline_sd1i=[3.0], post_sd1i=[4.0], baseline_sd2i=[2.0], post_sd2i=[2.0],
                 prepost_r=0.5)
    # arm 1 with r = 0.5: sqrt(9 + 16 - 12) = sqrt(13); arm 2: 2
    assert out["vi"][0] == pytest.approx(13 / 40 + 4 / 50, rel=1e-14)
    assert out["prepost_r_used"][0] == 0.5
    record = out.attrs["escalc"]
    assert [d["arm"] for d in record["imputed_change_sd"]] == [1, 2]
    assert record["imputed_change_sd"][0]["sd_change"] == pytest.approx(math.sqrt(13), rel=1e-15)
    assert record["prepost_r"] == 0.5


def test_change_sd_round_trip_through_the_handbook_correlation():
    # Cochrane Handbook v6 (2023), section 6.5.2.8, worked example: the experimental arm
    # reports baseline SD 6.4, final SD 7.1 and change SD 4.5, so the Handbook's
    # Corr_E = (6.4^2 + 7.1^2 - 4.5^2) / (2 * 6.4 * 7.1) = 71.12 / 90.88 = 0.782570..., which
    # the Handbook prints as 0.78; its comparator arm (baseline SD 7.0, final 6.9, change 4.2)
    # gives Corr_C = (49 + 47.61 - 17.64) / 96.6 = 78.97 / 96.6 = 0.817495..., printed 0.82.
    r = (6.4**2 + 7.1**2 - 4.5**2) / (2 * 6.4 * 7.1)
    assert round(r, 2) == 0.78
    r_c = (7.0**2 + 6.9**2 - 4.2**2) / (2 * 7.0 * 6.9)
    assert round(r_c, 2) == 0.82
    # Imputing the change SD back from those correlations returns the reported change SDs
    # (the Handbook's formula inverted), both arms at once.
    both = escalc("MD", m1i=[1.0], sd1i=[np.nan], n1i=[129], m2i=[1.5], sd2i=[np.nan],
                  n2i=[135], baseline_sd1i=[6.4], post_sd1i=[7.1], baseline_sd2i=[7.0],
                  post_sd2i=[6.9], prepost_r=[r])
    assert [d["sd_change"] for d in both.attrs["escalc"]["imputed_change_sd"]][0] == \
        pytest.approx(4.5, rel=1e-13)
    assert both["vi"][0] == pytest.approx(
        4.5**2 / 129 + (7.0**2 + 6.9**2 - 2 * r * 7.0 * 6.9) / 135, rel=1e-13)
    full = escalc("SMD", m1i=[-2.0], sd1i=[4.5], n1i=[30], m2i=[-1.0], sd2i=[3.9], n2i=[32])
    imputed = escalc("SMD", m1i=[-2.0], sd1i=[np.nan], n1i=[30], m2i=[-1.0], sd2i=[3.9],
                     n2i=[32], baseline_sd1i=[6.4], post_sd1i=[7.1], prepost_r=r)
    assert imputed["yi"][0] == pytest.approx(full["yi"][0], rel=1e-13)
    assert imputed["vi"][0] == pytest.approx(full["vi"][0], rel=1e-13)
    assert len(imputed.attrs["escalc"]["imputed_change_sd"]) == 1  # arm 2 SD was given


def test_study_table_change_scores_form_a_b_c():
    """The schema path: form A as given, form B derived/imputed, form C kept; all recorded."""
    table = pd.DataFrame({
        "study_id": ["A 2010", "B 2012", "C 2015"],
        "outcome": ["pain"] * 3, "follow_up": ["short"] * 3,
        "n1": [30, 40, np.nan], "n2": [30, 40, np.nan],
        "change_mean1": [-2.0, np.nan, np.nan], "change_mean2": [-1.0, -1.0, np.nan],
        "change_sd1": [2.0, np.nan, np.nan], "change_sd2": [2.0, 2.0, np.nan],
        "baseline_mean1": [np.nan, 6.0, np.nan], "post_mean1": [np.nan, 3.5, np.nan],
        "baseline_sd1": [np.nan, 3.0, np.nan], "post_sd1": [np.nan, 4.0, np.nan],
        "prepost_r": [np.nan, 0.0, np.nan],
        "yi": [np.nan, np.nan, -0.25], "vi": [np.nan, np.nan, 0.04],
        "measure": [None, None, "SMD"],
    })
    before = table.copy()
    out = escalc("MD", table.iloc[:2])
    # A: -2 - (-1) = -1, vi = 4/30 + 4/30
    # B: change mean 3.5 - 6 = -2.5 -> MD = -1.5; change SD sqrt(9 + 16 - 0) = 5 -> 25/40 + 4/40
    assert out["yi"].tolist()[:2] == [-1.0, -1.5]
    assert out["vi"][0] == pytest.approx(8 / 30, rel=1e-14)
    assert out["vi"][1] == pytest.approx(29 / 40, rel=1e-14)
    record = out.attrs["escalc"]
    assert record["derived_change_mean"][0]["row"] == 2
    assert record["imputed_change_sd"][0] == {"row": 2, "study": "B 2012", "arm": 1,
                                              "sd_baseline": 3.0, "sd_post": 4.0,
                                              "prepost_r": 0.0, "sd_change": 5.0}
    assert np.isnan(out["prepost_r_used"][0]) and out["prepost_r_used"][1] == 0.0
    pd.testing.assert_frame_equal(table, before)
    # Form C row 3 is given as SMD, so asking for MD is an error naming it ...
    with pytest.raises(InputError, match=r"row 3 \(C 2015\), column measure: SMD; this row "
                                         r"gives yi/vi as SMD, but escalc was asked for MD"):
        escalc("MD", table)
    # ... and asking for SMD keeps it (sign convention applies to every row).
    smd = escalc("SMD", table, sign=-1)
    assert smd["yi"][2] == 0.25 and smd["vi"][2] == 0.04
    assert smd.attrs["escalc"]["given_effects"] == [3]
    assert smd.attrs["escalc"]["direction"] == "yi = -1 x (arm 1 - arm 2)"
    # prepost_r= overrides the table's column (a sensitivity value): r = 0.8 for row B
    sens = escalc("MD", table.iloc[:2], prepost_r=0.8)
    assert sens["vi"][1] == pytest.approx((25 - 2 * 0.8 * 12) / 40 + 4 / 40, rel=1e-14)
    assert sens.attrs["escalc"]["prepost_r"] == 0.8


def test_study_table_binary_columns():
    # events1/n1/events2/n2 are read when no keyword is given: 5/100 vs 10/100 (chapter 5 above)
    table = pd.DataFrame({"study_id": ["X"], "events1": [5], "n1": [100], "events2": [10],
                          "n2": [100]})
    out = escalc("RR", table)
    assert out["yi"][0] == pytest.approx(math.log(0.5), rel=1e-14)
    assert out["vi"][0] == pytest.approx(0.28, rel=1e-14)
