"""NUTS engine: agreement with the exact posterior within Monte Carlo error, compile-once reuse,
the diagnostics gate, the InferenceData contract, save/load, and defaults.

Tolerances: each compared quantity must be within max(4 MCSE, 1e-3) of the exact engine
(MCSE from arviz on the chains: quantile MCSE for quantiles, MCSE of the indicator's mean for
tail probabilities). Seeds are fixed, so a pass is reproducible.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import bayesmeta
from bayesmeta import priors
from bayesmeta.bayes import sampling
from bayesmeta.errors import InputError
from bayesmeta.results import FileIntegrityError

REF = Path(__file__).parent / "reference"


def analysis(dataset: str, key: str) -> dict:
    return json.loads((REF / f"{dataset}.json").read_text())["analyses"][key]


# Six (dataset, proper prior) pairs spanning k = 3 to 40, three tau prior families, both mu
# priors. All use capacity 64 so that the suite compiles one model per tau-prior structure.
CASES = [
    ("HinksEtAl2010", "OR", priors.HalfNormal(0.5), priors.Normal(0, 4)),
    ("CrinsEtAl2014", "OR", priors.HalfCauchy(0.5), priors.Normal(0, 4)),
    ("dat.bcg", "RR", priors.HalfNormal(0.5), priors.Normal(0, 4)),
    ("dat.li2007", "OR", priors.turner(), priors.Normal(0, 4)),
    ("dat.curtis1998", "ROM_xtrt_NONE", priors.HalfNormal(0.5), priors.Normal(0, 4)),
    ("RobergeEtAl2017", "OR_PE", priors.HalfCauchy(0.5), priors.Normal(0, 4)),
]


@pytest.fixture(scope="module")
def fits():
    out = {}
    for dataset, key, tau_prior, mu_prior in CASES:
        a = analysis(dataset, key)
        kw = dict(tau_prior=tau_prior, mu_prior=mu_prior, labels=a["label"])
        nuts = bayesmeta.bayes_rma(a["yi"], a["vi"], engine="nuts", seed=20261125,
                                   capacity=64, **kw)
        exact = bayesmeta.bayes_rma(a["yi"], a["vi"], engine="exact", **kw)
        out[dataset] = (nuts, exact)
    return out


@pytest.mark.parametrize("dataset", [c[0] for c in CASES])
def test_nuts_matches_exact_within_mcse(fits, dataset):
    nuts, exact = fits[dataset]
    assert nuts.diagnostics.passed, nuts.diagnostics.messages
    post = nuts.posterior
    failures = []
    for param in ("mu", "tau"):
        for q in (0.025, 0.5, 0.975):
            got, want = nuts.quantile(param, q), exact.quantile(param, q)
            tol = max(4 * post.mcse(param, "quantile", q), 1e-3)
            if abs(got - want) > tol:
                failures.append(f"{param} q{q}: nuts {got:.5f} exact {want:.5f} tol {tol:.5f}")
    # Tail probabilities above 0.01 (the acceptance); the MCSE of P(x > c) is that of the
    # indicator's mean, the same as for P(x < c).
    tails = [("mu", "<", c) for c in (0.0, -0.2, -0.5)] + [("tau", ">", c) for c in (0.5, 1.0)]
    for param, op, c in tails:
        want = exact.prob(param, op, c)
        if min(want, 1 - want) <= 0.01:
            continue
        got = nuts.prob(param, op, c)
        tol = max(4 * post.mcse(param, "prob", c), 1e-3)
        if abs(got - want) > tol:
            failures.append(f"P({param}{op}{c}): nuts {got:.4f} exact {want:.4f} "
                            f"tol {tol:.4f}")
    assert not failures, failures


def test_theta_new_and_shrinkage_agree(fits):
    nuts, exact = fits["dat.bcg"]
    post = nuts.posterior
    for param in ("theta_new", nuts.labels[0], nuts.labels[-1]):
        got, want = nuts.median(param), exact.median(param)
        assert abs(got - want) <= max(4 * post.mcse(param, "quantile", 0.5), 1e-3), param


def test_compile_once_across_datasets(fits):
    # All fits above used HalfNormal(0.5)/Normal(0, 4) at capacity 64 at least twice: the second
    # and later fits of one structure must reuse the compiled model.
    before = dict(sampling.COMPILE_STATS)
    a = analysis("dat.pritz1997", "PLO")
    res = bayesmeta.bayes_rma(a["yi"], a["vi"], tau_prior=priors.HalfNormal(0.5),
                              mu_prior=priors.Normal(0, 4), capacity=64, seed=3)
    assert sampling.COMPILE_STATS["compilations"] == before["compilations"]
    assert sampling.COMPILE_STATS["cache_hits"] > before["cache_hits"]
    assert res.settings["capacity"] == 64 and res.k == 14


def test_inference_data_contract(fits):
    nuts, _ = fits["dat.bcg"]
    idata = nuts.idata
    for group in ("posterior", "posterior_predictive", "log_likelihood", "observed_data",
                  "constant_data", "sample_stats", "prior"):
        assert group in idata.groups(), group
    post = idata.posterior
    assert post["theta"].dims == ("chain", "draw", "study")
    assert list(post["study"].values) == list(nuts.labels)
    assert post.sizes["chain"] == 4 and post.sizes["draw"] == 1000
    np.testing.assert_array_equal(idata.observed_data["y"].values, nuts.yi)
    assert idata.log_likelihood["y"].shape == (4, 1000, nuts.k)
    # No padding slot leaks into the output.
    assert post.sizes["study"] == 13


def test_prior_group_omitted_for_improper_prior():
    a = analysis("dat.bcg", "RR")
    res = bayesmeta.bayes_rma(a["yi"], a["vi"], tau_prior=priors.HalfNormal(0.5), mu_prior=None,
                              capacity=64, seed=5)
    assert "prior" not in res.idata.groups()
    assert any("prior group omitted" in w for w in res.warnings)


def test_gate_failure_is_recorded_not_silent():
    # 30 tuning steps and 40 draws cannot pass the ESS >= 400 gate; without retries the
    # failure must be recorded in diagnostics and warnings.
    a = analysis("dat.bcg", "RR")
    res = bayesmeta.bayes_rma(a["yi"], a["vi"], tau_prior=priors.HalfNormal(0.5),
                              mu_prior=priors.Normal(0, 4), capacity=64, draws=40, tune=30,
                              retry=False, seed=1)
    assert not res.diagnostics.passed
    assert any(m.startswith("bulk ESS") for m in res.diagnostics.messages)
    assert any("diagnostics gate FAILED" in w for w in res.warnings)
    assert len(res.diagnostics.attempts) == 1


def test_save_load_round_trip_and_tamper_detection(fits, tmp_path):
    nuts, exact = fits["dat.bcg"]
    for res, name in ((nuts, "nuts.nc"), (exact, "exact.nc")):
        path = tmp_path / name
        res.save(path)
        back = bayesmeta.load(path)
        assert back.engine == res.engine and back.labels == res.labels
        for param in ("mu", "tau", "theta_new"):
            assert back.quantile(param, 0.975) == pytest.approx(res.quantile(param, 0.975),
                                                                rel=1e-12)
        assert back.frequentist is not None
        assert back.frequentist.to_dict()["tau2"] == pytest.approx(
            res.frequentist.to_dict()["tau2"], rel=1e-10)
        assert back.priors == json.loads(json.dumps(res.priors))
    # Edit the stored data: loading must refuse.
    import h5netcdf

    path = tmp_path / "nuts.nc"
    with h5netcdf.File(path, "a") as f:
        f.variables["yi"][0] = f.variables["yi"][0] + 1.0
    with pytest.raises(FileIntegrityError, match="does not match its recorded input hash"):
        bayesmeta.load(path)


def test_raw_scale_requires_tau_prior():
    a = analysis("Rubin1981", "raw")
    with pytest.raises(InputError, match="tau_prior is required for raw-scale data"):
        bayesmeta.bayes_rma(a["yi"], a["vi"])


def test_standardised_defaults_are_applied_and_reported():
    table = bayesmeta.escalc("RR", ai=[4, 6, 3, 62], bi=[119, 300, 228, 13536],
                             ci=[11, 29, 11, 248], di=[128, 274, 209, 12619])
    res = bayesmeta.bayes_rma("yi", "vi", data=table, engine="exact")
    assert res.priors["tau"]["family"] == "HalfNormal" and res.priors["tau"]["scale"] == 0.5
    assert res.priors["mu"]["family"] == "Normal" and res.priors["mu"]["sd"] == 4.0
    assert any("package default" in n for n in res.settings["defaults_applied"])


def test_clinical_relevance_agrees_between_engines(fits):
    """P(mu beyond the MCID) and P(theta_new beyond it): NUTS within 4 MCSE of exact."""
    from bayesmeta.clinical import clinical_relevance

    nuts, exact = fits["dat.curtis1998"]
    # ROM is a log ratio; a 'clinically important' threshold of 0.05 on that scale, no sd_ref
    # conversion needed for the comparison of engines (sd_ref = 1 keeps the scale).
    kw = dict(mcid=0.05, sd_ref=1.0, direction="higher")
    a, b = clinical_relevance(nuts, **kw), clinical_relevance(exact, **kw)
    post = nuts.posterior
    draws_mu = post.flat("mu") > 0.05
    draws_new = post.flat("theta_new") > 0.05
    for got, want, ind in ((a.p_mu_mcid, b.p_mu_mcid, draws_mu),
                           (a.p_new_mcid, b.p_new_mcid, draws_new)):
        import arviz as az

        chains = ind.reshape(nuts.idata.posterior.sizes["chain"], -1).astype(float)
        mcse = float(az.mcse(az.convert_to_dataset({"x": chains}), method="mean")["x"])
        assert abs(got - want) <= max(4 * mcse, 1e-3), (got, want, mcse)
    np.testing.assert_allclose(a.curve["threshold_vas"], b.curve["threshold_vas"])
