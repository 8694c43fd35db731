"""Property tests for escalc and the VAS conversion (hypothesis).

Properties that must hold for every valid input: swapping the arms flips the sign of every
two-group measure and keeps its variance; variances are positive; Hedges' g is shrunk towards 0
relative to Cohen's d; ``sign=-1`` negates yi only; the input table is never modified; the VAS
map round-trips for every linear instrument.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayesmeta import escalc
from bayesmeta.effects import INSTRUMENTS, from_vas, to_vas
from bayesmeta.effects.means import hedges_correction, pooled_sd
from bayesmeta.errors import BayesmetaWarning

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
# Exact symmetry is expected (negation and commutative sums are exact in IEEE arithmetic), but
# logs of p and 1-p may round differently when the arms swap; 1e-12 relative leaves room for that.
RTOL_SYMMETRY = 1e-12

means = st.floats(min_value=0.1, max_value=100.0, allow_nan=False)
sds = st.floats(min_value=0.05, max_value=50.0, allow_nan=False)
sizes = st.integers(min_value=2, max_value=500)


@st.composite
def arm_data(draw, k_max: int = 5):
    k = draw(st.integers(min_value=1, max_value=k_max))
    cols = {name: draw(st.lists(strategy, min_size=k, max_size=k))
            for name, strategy in (("m1", means), ("sd1", sds), ("n1", sizes),
                                   ("m2", means), ("sd2", sds), ("n2", sizes))}
    return pd.DataFrame(cols)


@st.composite
def tables(draw, k_max: int = 5):
    k = draw(st.integers(min_value=1, max_value=k_max))
    n1 = draw(st.lists(st.integers(1, 300), min_size=k, max_size=k))
    n2 = draw(st.lists(st.integers(1, 300), min_size=k, max_size=k))
    a = [draw(st.integers(0, n)) for n in n1]
    c = [draw(st.integers(0, n)) for n in n2]
    return pd.DataFrame({"a": a, "n1": n1, "c": c, "n2": n2})


def _arms(df: pd.DataFrame, swap: bool = False) -> dict[str, str]:
    one, two = ("2", "1") if swap else ("1", "2")
    return dict(m1i=f"m{one}", sd1i=f"sd{one}", n1i=f"n{one}",
                m2i=f"m{two}", sd2i=f"sd{two}", n2i=f"n{two}")


@SETTINGS
@given(arm_data(), st.sampled_from(["SMD", "SMDH", "MD", "ROM"]))
def test_swapping_arms_flips_means_measures_and_keeps_vi(df, measure):
    out = escalc(measure, df, **_arms(df))
    swapped = escalc(measure, df, **_arms(df, swap=True))
    np.testing.assert_allclose(swapped["yi"], -out["yi"], rtol=RTOL_SYMMETRY, atol=1e-300)
    np.testing.assert_allclose(swapped["vi"], out["vi"], rtol=RTOL_SYMMETRY)
    assert (out["vi"] > 0).all()
    assert np.isfinite(out["yi"]).all()


@SETTINGS
@given(tables(), st.sampled_from(["OR", "RR", "RD"]), st.sampled_from(["only0", "all"]))
def test_swapping_arms_flips_binary_measures_and_keeps_vi(df, measure, to):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayesmetaWarning)  # double-zero tables warn by design
        out = escalc(measure, df, ai="a", n1i="n1", ci="c", n2i="n2", to=to)
        swapped = escalc(measure, df, ai="c", n1i="n2", ci="a", n2i="n1", to=to)
    np.testing.assert_allclose(swapped["yi"], -out["yi"], rtol=RTOL_SYMMETRY, atol=1e-15)
    np.testing.assert_allclose(swapped["vi"], out["vi"], rtol=RTOL_SYMMETRY)
    assert (out["vi"] > 0).all()


@SETTINGS
@given(arm_data())
def test_hedges_g_is_shrunk_towards_zero_relative_to_cohens_d(df):
    out = escalc("SMD", df, **_arms(df))
    d = (df["m1"] - df["m2"]) / pooled_sd(df["sd1"], df["n1"], df["sd2"], df["n2"])
    nonzero = d != 0
    assert (np.abs(out["yi"][nonzero]) < np.abs(d[nonzero])).all()
    assert (np.sign(out["yi"]) == np.sign(d)).all()
    ratio = out["yi"][nonzero] / d[nonzero]
    expected = hedges_correction((df["n1"] + df["n2"] - 2.0)[nonzero].to_numpy(dtype=float))
    np.testing.assert_allclose(ratio, expected, rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=2, max_value=100_000))
def test_hedges_correction_is_below_one_and_close_to_the_approximation(m):
    c = float(hedges_correction(np.float64(m)))
    assert 0 < c < 1
    # Hedges (1981): c(m) = 1 - 3/(4m) - 7/(32 m^2) + ..., and 1 - 3/(4m - 1) = 1 - 3/(4m)
    # - 3/(16 m^2) + ..., so they differ by about 1/(32 m^2) (0.029/m^2 at m = 2). Beyond m ~ 1000
    # that difference is below the rounding of the lgamma differences (~1e-16 * lgamma(m/2)).
    gap = abs(c - (1 - 3 / (4 * m - 1)))
    assert gap < 0.04 / m**2 + 1e-16 * 2 * m * np.log(m)


@SETTINGS
@given(arm_data(), st.sampled_from(["SMD", "MD", "ROM"]))
def test_sign_minus_one_negates_yi_and_leaves_the_input_alone(df, measure):
    before = df.copy()
    plus = escalc(measure, df, **_arms(df))
    minus = escalc(measure, df, sign=-1, **_arms(df))
    np.testing.assert_array_equal(minus["yi"], -plus["yi"])
    np.testing.assert_array_equal(minus["vi"], plus["vi"])
    assert minus.attrs["escalc"]["sign"] == -1
    pd.testing.assert_frame_equal(df, before)
    assert "yi" not in df.columns


@SETTINGS
@given(st.lists(st.floats(-0.99, 0.99), min_size=1, max_size=5), st.integers(4, 1000))
def test_correlation_measures_have_positive_variance_and_flip_with_r(rs, n):
    ns = [n] * len(rs)
    for measure in ("COR", "ZCOR"):
        out = escalc(measure, ri=rs, ni=ns)
        neg = escalc(measure, ri=[-r for r in rs], ni=ns)
        assert (out["vi"] > 0).all()
        np.testing.assert_allclose(neg["yi"], -out["yi"], rtol=RTOL_SYMMETRY, atol=1e-300)


@SETTINGS
@given(st.lists(st.integers(1, 200), min_size=1, max_size=5), st.data())
def test_plo_is_antisymmetric_in_events_and_non_events(ns, data):
    xs = [data.draw(st.integers(0, n)) for n in ns]
    out = escalc("PLO", xi=xs, ni=ns)
    flipped = escalc("PLO", xi=[n - x for x, n in zip(xs, ns, strict=True)], ni=ns)
    np.testing.assert_allclose(flipped["yi"], -out["yi"], rtol=RTOL_SYMMETRY, atol=1e-15)
    np.testing.assert_allclose(flipped["vi"], out["vi"], rtol=RTOL_SYMMETRY)
    assert (out["vi"] > 0).all()


LINEAR = sorted(INSTRUMENTS)


@SETTINGS
@given(st.sampled_from(LINEAR), st.booleans(), st.data())
def test_to_vas_round_trips_for_every_named_instrument(name, worse, data):
    inst = INSTRUMENTS[name]
    x = data.draw(st.lists(st.floats(inst.minimum, inst.maximum), min_size=1, max_size=6))
    vas = to_vas(x, name, higher_is_worse=worse)
    assert ((vas >= 0) & (vas <= 10)).all()
    np.testing.assert_allclose(from_vas(vas, name, higher_is_worse=worse), x, rtol=1e-12,
                               atol=1e-12 * inst.width)
    sd = data.draw(st.floats(0, inst.width))
    assert from_vas(to_vas(sd, name, kind="sd"), name, kind="sd") == pytest.approx(sd, rel=1e-12,
                                                                                  abs=1e-12)
    change = data.draw(st.floats(-inst.width, inst.width))
    back = from_vas(to_vas(change, name, kind="change", higher_is_worse=worse), name,
                    kind="change", higher_is_worse=worse)
    assert back == pytest.approx(change, rel=1e-12, abs=1e-12)


@SETTINGS
@given(st.floats(-50, 50), st.floats(0.5, 100), st.booleans(), st.data())
def test_custom_scale_round_trips_and_preserves_differences(lo, width, worse, data):
    hi = lo + width
    a, b = data.draw(st.floats(lo, hi)), data.draw(st.floats(lo, hi))
    va, vb = (to_vas(v, "custom", scale_min=lo, scale_max=hi, higher_is_worse=worse)
              for v in (a, b))
    assert from_vas(va, "custom", scale_min=lo, scale_max=hi,
                    higher_is_worse=worse) == pytest.approx(a, rel=1e-9, abs=1e-9 * width)
    # a difference of means maps exactly like a change score
    diff = to_vas(a - b, "custom", scale_min=lo, scale_max=hi, kind="change",
                  higher_is_worse=worse)
    assert va - vb == pytest.approx(diff, rel=1e-9, abs=1e-9)
