"""Studies that ``escalc(..., drop00=True)`` dropped are left out of the model, never silently.

metafor's ``escalc(drop00=TRUE)`` sets yi/vi of a double-zero study to NA and its ``rma`` then
omits the study. Here ``resolve_effects`` (shared by ``rma`` and ``bayes_rma``) recognises the
rows escalc recorded in ``attrs["escalc"]["dropped"]``, leaves them out, warns, and lists them in
``EffectData.excluded``. A NaN that escalc did not record stays an error.

The R reference: metafor's ``rma`` without the dropped study is its ``leave1out`` fit for that
study, pinned in tests/reference/RobergeEtAl2017.json (``metafor_tight.leave1out_REML``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from refdata import REFERENCE, assert_close, reference_document

from bayesmeta import escalc, rma
from bayesmeta.errors import BayesmetaWarning, InputError
from bayesmeta.inputs import ExcludedStudy, resolve_effects

PE = dict(ai="asp.PE.events", n1i="asp.PE.total", ci="cont.PE.events", n2i="cont.PE.total")
BENIGNI = "row 2 (Benigni (1989)): no events in either arm (drop00=True)"


def _roberge(drop00: bool = True) -> pd.DataFrame:
    data = pd.read_csv(REFERENCE / "data" / "RobergeEtAl2017.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayesmetaWarning)  # escalc's own drop00 warning
        return escalc("OR", data, drop00=drop00, **PE)


def test_resolve_effects_excludes_the_recorded_study_and_says_so():
    table = _roberge()
    with pytest.warns(BayesmetaWarning, match=r"row 2 \(Benigni \(1989\)\): no events in either "
                                              r"arm \(drop00=True\); escalc set yi/vi to NaN, "
                                              r"so the study is left out of the model"):
        effects = resolve_effects("yi", "vi", data=table)
    assert effects.excluded == (ExcludedStudy(2, "Benigni (1989)", ("yi", "vi"),
                                              "no events in either arm (drop00=True)"),)
    assert effects.excluded[0].to_dict() == {"row": 2, "study": "Benigni (1989)",
                                             "columns": ["yi", "vi"],
                                             "reason": "no events in either arm (drop00=True)"}
    assert effects.k == len(table) - 1
    assert effects.rows.tolist() == [0, *range(2, len(table))]
    assert "Benigni (1989)" not in effects.labels
    # data holds the kept rows only, aligned with yi/vi, and keeps escalc's record
    assert len(effects.data) == effects.k
    np.testing.assert_array_equal(effects.data["yi"].to_numpy(), effects.yi)
    assert effects.data.attrs["escalc"]["dropped"][0]["row"] == 2
    assert effects.measure == "OR"


def test_rma_on_a_drop00_table_is_metafors_fit_without_the_study():
    table = _roberge()
    ref = reference_document("RobergeEtAl2017")["analyses"]["OR_PE"]["metafor_tight"]
    l1o = ref["leave1out_REML"]
    assert l1o["label"][1] == "Benigni (1989)"
    with pytest.warns(BayesmetaWarning, match="Benigni"):
        fit = rma("yi", "vi", data=table)
    assert fit.k == len(table) - 1
    out = fit.to_dict()
    assert_close("estimate", out["estimate"], l1o["estimate"][1])
    assert_close("se", out["se"], l1o["se"][1])
    assert_close("tau2", out["tau2"], l1o["tau2"][1])
    assert_close("qe", out["qe"], l1o["Q"][1])
    # the same arrays with data= for the row record: excluded in the same way
    with pytest.warns(BayesmetaWarning, match="Benigni"):
        same = rma(table["yi"].to_numpy(), table["vi"].to_numpy(), data=table)
    assert same.to_dict()["estimate"] == out["estimate"]


def test_explicit_labels_do_not_change_which_study_is_excluded():
    table = _roberge()
    with pytest.warns(BayesmetaWarning, match=r"row 2 \(Benigni \(1989\)\)"):
        effects = resolve_effects("yi", "vi", data=table, labels="label")
    assert effects.k == len(table) - 1 and effects.rows[1] == 2


def test_a_stale_record_never_excludes_another_study():
    # attrs survive reordering, so escalc's "row 2" now points at another study: nothing is
    # excluded and the NaN row is an error that names drop00 as the cause.
    table = _roberge().iloc[::-1].reset_index(drop=True)
    assert table.attrs["escalc"]["dropped"][0]["row"] == 2
    where = len(table) - 1  # Benigni, row 2 of k before, is row k - 1 reversed
    with pytest.raises(InputError) as info:
        resolve_effects("yi", "vi", data=table)
    text = str(info.value)
    assert f"row {where} (Benigni (1989)), column yi: missing (NaN); an effect size" in text
    assert ("escalc(drop00=True) set yi/vi to NaN for row(s) 2 (Benigni (1989)), but this row is "
            "not one of them as recorded (was the table filtered or reordered after escalc?"
            in text)
    assert f"row {where} (Benigni (1989)), column vi: missing (NaN); a sampling" in text


def test_an_unrecorded_nan_is_still_an_error_without_a_drop00_hint():
    table = _roberge(drop00=False)
    table.loc[3, "yi"] = np.nan
    with pytest.raises(InputError, match=r"row 4 \(Sibai \(1993a\)\), column yi: .*an effect "
                                         r"size must be a finite number$"):
        resolve_effects("yi", "vi", data=table)


def test_a_recorded_row_with_a_value_is_used_not_excluded():
    # the user filled the dropped row in after escalc: it is a study like any other
    table = _roberge()
    table.loc[1, ["yi", "vi"]] = [0.1, 0.5]
    with warnings.catch_warnings():
        warnings.simplefilter("error", BayesmetaWarning)
        effects = resolve_effects("yi", "vi", data=table)
    assert effects.k == len(table) and effects.excluded == ()


def test_every_study_dropped_is_an_error():
    data = pd.DataFrame({"study_id": ["A", "B"], "e1": [0, 0], "n1": [10, 12], "e2": [0, 0],
                         "n2": [11, 9]})
    with pytest.warns(BayesmetaWarning, match="drop00=True"):
        table = escalc("RR", data, ai="e1", n1i="n1", ci="e2", n2i="n2", drop00=True)
    with pytest.raises(InputError, match=r"column yi; no studies left: escalc dropped every "
                                         r"one \(no events in either arm \(drop00=True\); 2 "
                                         r"studies\)"):
        resolve_effects("yi", "vi", data=table, context="rma")


def test_bayes_rma_leaves_the_study_out_too():
    from bayesmeta import bayes_rma

    table = _roberge()
    with pytest.warns(BayesmetaWarning, match="Benigni"):
        fit = bayes_rma("yi", "vi", data=table, engine="exact")
    assert len(fit.yi) == len(table) - 1 and "Benigni (1989)" not in fit.labels
    np.testing.assert_array_equal(fit.yi, np.delete(table["yi"].to_numpy(), 1))


# The model entry points fit without the dropped studies and list them in their warnings.


def test_rma_result_lists_the_dropped_study():
    with pytest.warns(BayesmetaWarning):
        fit = rma("yi", "vi", data=_roberge())
    assert any("Benigni" in w for w in fit.warnings)


def test_rma_subgroups_on_a_drop00_table():
    table = _roberge().assign(half=lambda t: np.where(np.arange(len(t)) < 20, "a", "b"))
    with pytest.warns(BayesmetaWarning):
        fit = rma("yi", "vi", data=table, subgroup="half")
    assert fit.overall.k == len(table) - 1


def test_rma_moderators_on_a_drop00_table():
    table = _roberge().assign(x=lambda t: np.arange(len(t), dtype=float))
    with pytest.warns(BayesmetaWarning):
        fit = rma("yi", "vi", data=table, mods="~ x")
    assert fit.k == len(table) - 1


def test_bayes_rma_result_lists_the_dropped_study():
    from bayesmeta import bayes_rma

    with pytest.warns(BayesmetaWarning):
        fit = bayes_rma("yi", "vi", data=_roberge(), engine="exact")
    assert any("Benigni" in w for w in fit.warnings)


def test_moderator_table_for_the_callers_rows_lines_up_after_drop00():
    table = _roberge()
    mods = pd.DataFrame({"x": np.arange(len(table), dtype=float)})  # one row per caller row
    with pytest.warns(BayesmetaWarning):
        fit = rma("yi", "vi", data=table, mods=mods)
    kept = table.drop(index=1)  # Benigni (row 2) was dropped
    direct = rma(kept["yi"].to_numpy(), kept["vi"].to_numpy(),
                 mods=pd.DataFrame({"x": np.delete(np.arange(len(table), dtype=float), 1)}))
    np.testing.assert_allclose(fit.coefficients["estimate"], direct.coefficients["estimate"],
                               rtol=1e-12)
    from bayesmeta import bayes_rma
    from bayesmeta.bayes.priors import HalfNormal

    with pytest.warns(BayesmetaWarning):
        bayes = bayes_rma("yi", "vi", data=table, mods=mods, engine="exact",
                          tau_prior=HalfNormal(0.5))
    # the REML twin of a moderator table is fitted too (was missing for DataFrame mods)
    np.testing.assert_allclose(bayes.frequentist.coefficients["estimate"],
                               direct.coefficients["estimate"], rtol=1e-12)


def test_influence_rows_name_the_callers_rows_after_drop00():
    from bayesmeta import influence

    with pytest.warns(BayesmetaWarning):
        fit = rma("yi", "vi", data=_roberge())
    assert fit.data_rows[:3] == (1, 3, 4) and fit.data_rows[-1] == 40  # row 2 was dropped
    table = influence(fit)
    assert table["row"].tolist()[:3] == [1, 3, 4]

