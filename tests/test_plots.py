"""The plotting layer: every plot returns its Axes, draws on a passed Axes, saves to PNG, and
shows exactly the numbers its result object holds (it computes nothing itself)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import arviz as az
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from scipy import stats

import bayesmeta
from bayesmeta import plots
from bayesmeta.bayes import priors as P
from bayesmeta.bayes.diagnostics import diagnostics_table
from bayesmeta.bayes.exact import conditional_moments
from bayesmeta.errors import InputError
from bayesmeta.ppc import PPCResult, posterior_predictive_check
from bayesmeta.results import BayesResult, Diagnostics, DrawsPosterior

REFERENCE = Path(__file__).parent / "reference"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------
# fixtures: real engine results on a real SMD dataset (Raudenbush 1985, k = 19)


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "data" / "dat.raudenbush1985.csv")


@pytest.fixture(scope="module")
def smd() -> dict:
    return json.loads((REFERENCE / "dat.raudenbush1985.json").read_text())["analyses"]["SMD"]


def _exact(smd: dict, tau_prior, level: float = 0.95) -> BayesResult:
    return bayesmeta.bayes_rma(np.array(smd["yi"]), np.array(smd["vi"]), tau_prior=tau_prior,
                               mu_prior=P.Normal(0, 4), engine="exact", labels=smd["label"],
                               measure="SMD", level=level)


@pytest.fixture(scope="module")
def exact(smd) -> BayesResult:
    return _exact(smd, P.HalfNormal(0.5))


@pytest.fixture(scope="module")
def sensitivity(smd, exact) -> dict[str, BayesResult]:
    return {"half-normal 0.5": exact, "half-normal 1.0": _exact(smd, P.HalfNormal(1.0)),
            "half-Cauchy 0.5": _exact(smd, P.HalfCauchy(0.5))}


@pytest.fixture(scope="module")
def relevance(exact, sensitivity):
    return bayesmeta.clinical_relevance(exact, mcid=0.4, sd_ref=2.0, rope=(-0.1, 0.1),
                                        sd_ref_grid=(1.5, 2.0, 2.5),
                                        prior_sensitivity=sensitivity)


@pytest.fixture(scope="module")
def draws(exact) -> BayesResult:
    """A draws-based result shaped like a NUTS fit, without paying for a compile: exact joint
    posterior draws (tau by inverse CDF on a fine grid, then mu, theta_i, theta_new given tau),
    wrapped in the same BayesResult / DrawsPosterior / InferenceData types the NUTS engine
    returns, with the marginal study log-likelihood the NUTS model stores."""
    rng = np.random.default_rng(20240611)
    chains, n_draw = 4, 500
    n = chains * n_draw
    y, v = exact.yi, exact.vi
    grid = np.linspace(0.0, exact.quantile("tau", 1 - 1e-6), 4000)
    tau = np.interp(rng.uniform(size=n), exact.cdf("tau", grid), grid)
    cond = conditional_moments(y, v, tau, P.Normal(0, 4))
    mu = cond.mu_mean + np.sqrt(cond.mu_var) * rng.standard_normal(n)
    prec = 1 / v[None, :] + 1 / tau[:, None] ** 2
    theta = (y / v + mu[:, None] / tau[:, None] ** 2) / prec \
        + rng.standard_normal(prec.shape) / np.sqrt(prec)
    s2 = v + tau[:, None] ** 2
    sh = (chains, n_draw)
    post = {"mu": mu.reshape(sh), "tau": tau.reshape(sh), "theta": theta.reshape(*sh, -1),
            "theta_new": (mu + tau * rng.standard_normal(n)).reshape(sh),
            "linpred": np.repeat(mu[:, None], y.size, axis=1).reshape(*sh, -1)}
    y_rep = theta + np.sqrt(v) * rng.standard_normal(theta.shape)
    loglik = -0.5 * np.log(2 * np.pi * s2) - 0.5 * (y - mu[:, None]) ** 2 / s2
    idata = az.from_dict(posterior=post, posterior_predictive={"y": y_rep.reshape(*sh, -1)},
                         log_likelihood={"y": loglik.reshape(*sh, -1)}, observed_data={"y": y},
                         coords={"study": list(exact.labels)},
                         dims={"theta": ["study"], "linpred": ["study"], "y": ["study"]})
    flat = {p: post[p] for p in ("mu", "tau", "theta_new")}
    flat.update({lab: post["theta"][..., i] for i, lab in enumerate(exact.labels)})
    table = diagnostics_table({p: post[p] for p in ("mu", "tau")})
    diag = Diagnostics(rhat_max=float(table["r_hat"].max()),
                       ess_bulk_min=float(table["ess_bulk"].min()),
                       ess_tail_min=float(table["ess_tail"].min()), n_divergent=0,
                       ebfmi_min=1.0, passed=True, table=table)
    return BayesResult(posterior=DrawsPosterior(flat), engine="nuts", model="pooled", yi=y,
                       vi=v, labels=exact.labels, measure="SMD", priors=exact.priors,
                       frequentist=exact.frequentist, idata=idata, diagnostics=diag)


@pytest.fixture(scope="module")
def ppc(draws) -> PPCResult:
    return posterior_predictive_check(draws, n_draws=2000)


@pytest.fixture(scope="module")
def known_ppc() -> PPCResult:
    """A check with hand-chosen numbers, so each drawn value can be compared exactly."""
    studies = pd.DataFrame({"y": [0.1, 0.5, -0.2], "ppp_conditional": [0.40, 0.55, 0.30],
                            "ppp_mixed": [0.20, 0.99, 0.10], "loo_pit": [0.25, 0.97, 0.12],
                            "pareto_k": [0.1, 0.9, 0.45]},
                           index=pd.Index(["A", "B", "C"], name="study"))
    return PPCResult(studies=studies, q_obs=17.25, q_rep=np.linspace(0.0, 40.0, 500),
                     ppp_q=0.57, elpd_loo=-3.0, elpd_loo_se=1.0, p_loo=1.5)


@pytest.fixture(scope="module")
def regression(data):
    return bayesmeta.rma("yi", "vi", data=data, mods="~ weeks + setting", labels="label")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


class _TestResult:
    """Stands in for an Egger / rank test result: the funnel plot reads ``to_dict()`` only."""

    def __init__(self, **values):
        self.values = values

    def to_dict(self):
        return dict(self.values)


# ---------------------------------------------------------------------------------------------
# the public-signature contract (every plot: ax=None keyword, returns Axes or array of Axes)

# name -> (call, number of Axes the plot draws on)
CASES = {
    "plot_forest": (lambda f, ax: plots.plot_forest(f["exact"], ax=ax), 1),
    "plot_funnel": (lambda f, ax: plots.plot_funnel(f["exact"].frequentist, ax=ax), 1),
    "plot_bubble": (lambda f, ax: plots.plot_bubble(f["regression"], moderator="weeks",
                                                    ax=ax), 1),
    "plot_posterior": (lambda f, ax: plots.plot_posterior(f["exact"], relevance=f["relevance"],
                                                          ax=ax), 1),
    "plot_tau": (lambda f, ax: plots.plot_tau(f["draws"], ax=ax), 1),
    "plot_mcid_curve": (lambda f, ax: plots.plot_mcid_curve(f["relevance"], ax=ax), 1),
    "plot_study_pvalues": (lambda f, ax: plots.plot_study_pvalues(f["ppc"], ax=ax), 1),
    "plot_q_discrepancy": (lambda f, ax: plots.plot_q_discrepancy(f["ppc"], ax=ax), 1),
    "plot_pareto_k": (lambda f, ax: plots.plot_pareto_k(f["ppc"], ax=ax), 1),
    "plot_ppc": (lambda f, ax: plots.plot_ppc(f["ppc"], ax=ax), 3),
    "plot_prior_sensitivity": (lambda f, ax: plots.plot_prior_sensitivity(
        f["sensitivity"], relevance=f["relevance"], ax=ax), 4),
    "plot_trace": (lambda f, ax: plots.plot_trace(f["draws"], ax=ax), 4),
    "plot_rank": (lambda f, ax: plots.plot_rank(f["draws"], ax=ax), 2),
}


@pytest.fixture(scope="module")
def fx(exact, draws, ppc, relevance, sensitivity, regression) -> dict:
    return {"exact": exact, "draws": draws, "ppc": ppc, "relevance": relevance,
            "sensitivity": sensitivity, "regression": regression}


def _axes_list(out) -> list[Axes]:
    return list(np.asarray(out, dtype=object).ravel())


def test_every_public_plot_is_in_the_contract():
    assert set(plots.__all__) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_public_plot_signature(name):
    sig = inspect.signature(getattr(plots, name))
    ax = sig.parameters["ax"]
    assert ax.kind is inspect.Parameter.KEYWORD_ONLY
    assert ax.default is None
    # a few named decisions, not a keyword explosion
    assert len(sig.parameters) <= 6


@pytest.mark.parametrize("name", sorted(CASES))
def test_plot_returns_axes_and_saves_png(name, fx, tmp_path):
    call, n_axes = CASES[name]
    out = call(fx, None)
    axes = _axes_list(out)
    assert isinstance(out, Axes) == (n_axes == 1)
    assert len(axes) == n_axes and all(isinstance(a, Axes) for a in axes)
    path = tmp_path / f"{name}.png"
    axes[0].figure.savefig(path, dpi=40)
    head = path.read_bytes()[:8]
    assert head == PNG_MAGIC
    assert path.stat().st_size > 2000


@pytest.mark.parametrize("name", sorted(CASES))
def test_plot_draws_on_the_given_axes(name, fx):
    call, n_axes = CASES[name]
    shape = (2, 2) if name == "plot_trace" else (n_axes,)
    fig, given = plt.subplots(*shape, squeeze=False)
    given = given.reshape(shape)
    out = call(fx, given if n_axes > 1 else given.ravel()[0])
    returned = _axes_list(out)
    assert [id(a) for a in returned] == [id(a) for a in given.ravel()]
    assert all(a.figure is fig for a in returned)
    for a in returned:
        assert len(a.lines) + len(a.patches) + len(a.collections) > 0


def test_wrong_number_of_axes_is_an_error(fx):
    _, given = plt.subplots(1, 2)
    with pytest.raises(InputError, match="sequence of 3 matplotlib Axes"):
        plots.plot_ppc(fx["ppc"], ax=given)
    with pytest.raises(InputError, match="matplotlib Axes"):
        plots.plot_forest(fx["exact"], ax="not an axes")


def test_agg_backend_is_used():
    assert matplotlib.get_backend().lower() == "agg"


# ---------------------------------------------------------------------------------------------
# forest


def _tick_labels(ax: Axes) -> list[str]:
    """Y tick labels from the top row down."""
    ticks = ax.get_yticks()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    return [lab for _, lab in sorted(zip(ticks, labels, strict=True), reverse=True)]


POOLED_ROWS = ["Pooled estimate (REML)", "Prediction interval (REML)",
               "Mean effect mu (Bayes)", "New study theta_new (Bayes)"]


def test_forest_rows_in_data_order(exact):
    ax = plots.plot_forest(exact)
    assert _tick_labels(ax) == list(exact.labels) + POOLED_ROWS


def test_forest_rows_sorted_by_effect_and_by_explicit_order(exact):
    ax = plots.plot_forest(exact, order="effect")
    expected = [exact.labels[i] for i in np.argsort(exact.yi, kind="stable")]
    assert _tick_labels(ax)[:exact.k] == expected
    assert exact.yi[list(exact.labels).index(expected[0])] == exact.yi.min()
    custom = list(reversed(exact.labels))
    assert _tick_labels(plots.plot_forest(exact, order=custom))[:exact.k] == custom


def test_forest_bad_order_names_the_unknown_label(exact):
    with pytest.raises(InputError, match="unknown: Nobody 1999"):
        plots.plot_forest(exact, order=[*exact.labels[:-1], "Nobody 1999"])
    with pytest.raises(InputError, match="order"):
        plots.plot_forest(exact, order="alphabetical")


def test_forest_without_prediction_and_reml_only(exact):
    ax = plots.plot_forest(exact, show_prediction=False)
    assert _tick_labels(ax)[exact.k:] == ["Pooled estimate (REML)", "Mean effect mu (Bayes)"]
    ax = plots.plot_forest(exact.frequentist)
    assert _tick_labels(ax) == list(exact.labels) + POOLED_ROWS[:2]


def test_forest_x_limits_hold_every_interval(exact):
    ax = plots.plot_forest(exact)
    lo, hi = ax.get_xlim()
    z = stats.norm.ppf(0.975)
    ends = [exact.yi - z * np.sqrt(exact.vi), exact.yi + z * np.sqrt(exact.vi)]
    ends += [np.array(exact.interval(p)) for p in ("mu", "theta_new", *exact.labels)]
    d = exact.frequentist.to_dict()
    ends.append(np.array([d["ci_low"], d["ci_high"], d["pi_low"], d["pi_high"]]))
    allx = np.concatenate([np.ravel(e) for e in ends])
    assert lo <= allx.min() and allx.max() <= hi


def test_forest_draws_the_numbers_of_the_results(exact):
    ax = plots.plot_forest(exact)
    d = exact.frequentist.to_dict()
    diamond = next(p for p in ax.patches if p.get_gid() == "reml")
    xs = diamond.get_xy()[:, 0]
    assert xs.min() == pytest.approx(d["ci_low"], rel=1e-12)
    assert xs.max() == pytest.approx(d["ci_high"], rel=1e-12)
    pi = next(line for line in ax.lines if line.get_gid() == "reml_pi")
    assert list(pi.get_xdata()) == pytest.approx([d["pi_low"], d["pi_high"]], rel=1e-12)
    for gid in ("mu", "theta_new"):
        line = next(line for line in ax.lines if line.get_gid() == gid)
        assert list(line.get_xdata()) == pytest.approx(list(exact.interval(gid)), rel=1e-12)
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert "95% equal-tailed" in legend and "95% CI" in legend


def test_forest_labels_follow_the_result_level(smd):
    res90 = _exact(smd, P.HalfNormal(0.5), level=0.9)
    ax = plots.plot_forest(res90)
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    # the Bayesian rows and the observed CIs follow the result's level; the REML rows say the
    # level their twin was fitted at (each label names what is drawn)
    assert "90% equal-tailed" in legend and "Observed effect, 90% CI" in legend
    assert f"REML pooled estimate, {100 * res90.frequentist.level:g}% CI" in legend
    line = next(line for line in ax.lines if line.get_gid() == "mu")
    assert list(line.get_xdata()) == pytest.approx(list(res90.interval("mu", 0.9)), rel=1e-12)


def test_forest_height_grows_with_k(smd, exact):
    small = bayesmeta.bayes_rma(np.array(smd["yi"][:5]), np.array(smd["vi"][:5]),
                                tau_prior=P.HalfNormal(0.5), mu_prior=P.Normal(0, 4),
                                engine="exact", labels=smd["label"][:5], measure="SMD")
    h_small = plots.plot_forest(small).figure.get_figheight()
    h_big = plots.plot_forest(exact).figure.get_figheight()
    assert h_big > h_small + 3.0


def test_forest_refuses_a_meta_regression(regression):
    with pytest.raises(InputError, match="plot_bubble"):
        plots.plot_forest(regression)


# ---------------------------------------------------------------------------------------------
# funnel and bubble


def test_funnel_estimate_region_and_test_annotation(exact):
    fit = exact.frequentist
    egger = _TestResult(zval=1.2345, pval=0.0217, limit_estimate=0.01)
    rank = _TestResult(tau=0.123, pval=0.456)
    ax = plots.plot_funnel(fit, egger=egger, rank=rank)
    est = next(line for line in ax.lines if line.get_gid() == "estimate")
    assert est.get_xdata()[0] == pytest.approx(fit.to_dict()["estimate"], rel=1e-12)
    region = next(line for line in ax.lines if line.get_gid() == "region")
    x, y = np.asarray(region.get_xdata()), np.asarray(region.get_ydata())
    z = stats.norm.ppf(0.975)
    assert x[-1] == pytest.approx(fit.to_dict()["estimate"] - z * y[-1], rel=1e-12)
    assert y[-1] >= np.sqrt(fit.vi).max()
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # standard error axis points down
    text = next(t for t in ax.texts if t.get_gid() == "tests").get_text()
    assert "Egger's test: z = 1.23, p = 0.0217" in text
    assert "Kendall's tau = 0.123, p = 0.456" in text
    knha = plots.plot_funnel(fit, egger=_TestResult(tval=-2.5, pval=0.03))
    assert "t = -2.5" in next(t for t in knha.texts if t.get_gid() == "tests").get_text()
    with pytest.raises(InputError, match="pval"):
        plots.plot_funnel(fit, rank=_TestResult(tau=0.1))


def test_bubble_line_is_the_fits_prediction(regression):
    ax = plots.plot_bubble(regression, moderator="weeks")
    line = next(line for line in ax.lines if line.get_gid() == "line")
    grid = np.asarray(line.get_xdata())
    j = regression.terms.index("weeks")
    rows = np.tile(regression.X.mean(axis=0), (grid.size, 1))
    rows[:, j] = grid
    assert np.asarray(line.get_ydata()) == pytest.approx(
        regression.predict(rows)["pred"].to_numpy(), rel=1e-12)
    assert grid.min() == regression.X[:, j].min() and grid.max() == regression.X[:, j].max()
    bubbles = next(c for c in ax.collections if c.get_gid() == "studies")
    assert len(bubbles.get_offsets()) == regression.k
    sizes = bubbles.get_sizes()
    assert np.argmax(sizes) == np.argmax(regression.weights)
    assert "other moderators at their means" in ax.get_title(loc="left")


def test_bubble_refuses_unknown_or_binary_moderators(regression, exact):
    with pytest.raises(InputError, match="weeks"):
        plots.plot_bubble(regression, moderator="age")
    binary = next(t for t in regression.terms if t.startswith("setting"))
    with pytest.raises(InputError, match="continuous"):
        plots.plot_bubble(regression, moderator=binary)
    with pytest.raises(InputError, match="intercept-only"):
        plots.plot_bubble(exact.frequentist, moderator="weeks")


# ---------------------------------------------------------------------------------------------
# posterior densities and the MCID


def _vline_x(ax: Axes, gid: str) -> float:
    line = next(line for line in ax.lines if line.get_gid() == gid)
    xs = np.asarray(line.get_xdata(), float)
    assert xs.min() == xs.max()
    return float(xs[0])


def _span(ax: Axes, gid: str) -> tuple[float, float]:
    """x-extent of a shaded vertical band (axvspan) in data coordinates."""
    patch = next(p for p in ax.patches if p.get_gid() == gid)
    return patch.get_x(), patch.get_x() + patch.get_width()


def test_posterior_mcid_line_and_band(exact, relevance):
    ax = plots.plot_posterior(exact, relevance=relevance)
    assert relevance.mcid_smd == pytest.approx(0.2)
    assert _vline_x(ax, "mcid") == pytest.approx(-relevance.mcid_smd, rel=1e-12)
    band = _span(ax, "mcid_band")
    assert band == pytest.approx((ax.get_xlim()[0], -relevance.mcid_smd))
    assert _span(ax, "rope") == pytest.approx((-0.05, 0.05))
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert f"P(mu beyond) = {relevance.p_mu_mcid:.2f}" in legend
    assert "95% equal-tailed" in legend


def test_posterior_mcid_higher_is_better(exact):
    rel = bayesmeta.clinical_relevance(exact, mcid=0.3, sd_ref=1.5, direction="higher")
    ax = plots.plot_posterior(exact, relevance=rel)
    assert _vline_x(ax, "mcid") == pytest.approx(0.2, rel=1e-12)
    assert _span(ax, "mcid_band") == pytest.approx((0.2, ax.get_xlim()[1]))


def test_posterior_density_is_the_engines(exact, draws):
    ax = plots.plot_posterior(exact, params=["mu"])
    line = next(line for line in ax.lines if line.get_gid() == "density_mu")
    x = np.asarray(line.get_xdata())
    assert np.asarray(line.get_ydata()) == pytest.approx(exact.posterior.pdf("mu", x), rel=1e-12)
    assert x[0] == pytest.approx(exact.quantile("mu", 0.001))
    # draws: arviz's KDE, which integrates to 1 and peaks near the exact posterior's mode
    ax = plots.plot_posterior(draws, params=["mu"])
    line = next(line for line in ax.lines if line.get_gid() == "density_mu")
    x, dens = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    assert np.trapezoid(dens, x) == pytest.approx(1.0, abs=0.01)
    assert x[np.argmax(dens)] == pytest.approx(exact.median("mu"), abs=0.05)


def test_posterior_rejects_other_scales_and_parameters(exact):
    md = bayesmeta.reanalyse(-1.2, -2.0, -0.4, measure="MD")
    rel_md = bayesmeta.clinical_relevance(md, mcid=1.5)
    with pytest.raises(InputError, match="scale"):
        plots.plot_posterior(exact, relevance=rel_md)
    with pytest.raises(InputError, match="not a parameter"):
        plots.plot_posterior(exact, params=["sigma"])
    # a reanalysis without k and I2 has mu only: the default shows what exists
    ax = plots.plot_posterior(md, relevance=rel_md)
    assert [line.get_gid() for line in ax.lines if str(line.get_gid()).startswith("density")] \
        == ["density_mu"]


def test_tau_prior_posterior_and_reml(exact, smd):
    ax = plots.plot_tau(exact)
    prior = next(line for line in ax.lines if line.get_gid() == "prior")
    x = np.asarray(prior.get_xdata())
    assert np.asarray(prior.get_ydata()) == pytest.approx(P.HalfNormal(0.5).pdf(x), rel=1e-12)
    post = next(line for line in ax.lines if line.get_gid() == "posterior")
    px = np.asarray(post.get_xdata())
    assert np.asarray(post.get_ydata()) == pytest.approx(exact.posterior.pdf("tau", px),
                                                         rel=1e-12)
    assert _vline_x(ax, "reml") == pytest.approx(exact.frequentist.tau, rel=1e-12)
    flat = _exact(smd, P.ImproperUniform())
    ax = plots.plot_tau(flat)
    assert not any(line.get_gid() == "prior" for line in ax.lines)
    assert "improper" in " ".join(t.get_text() for t in ax.get_legend().get_texts())
    with pytest.raises(InputError, match="tau"):
        plots.plot_tau(bayesmeta.reanalyse(-0.3, -0.5, -0.1))


# ---------------------------------------------------------------------------------------------
# MCID curve


def test_mcid_curve_draws_the_curve_table(relevance):
    ax = plots.plot_mcid_curve(relevance)
    curve = relevance.curve
    p_mu = next(line for line in ax.lines if line.get_gid() == "p_mu")
    assert np.asarray(p_mu.get_xdata()) == pytest.approx(curve["threshold_vas"].to_numpy())
    assert np.asarray(p_mu.get_ydata()) == pytest.approx(curve["p_mu"].to_numpy())
    p_new = next(line for line in ax.lines if line.get_gid() == "p_new")
    assert np.asarray(p_new.get_ydata()) == pytest.approx(curve["p_new"].to_numpy())
    assert _vline_x(ax, "mcid") == relevance.mcid
    # the top axis is the SMD scale: points / sd_ref
    top = next(c for c in ax.child_axes)
    ax.figure.canvas.draw()  # a secondary axis takes its limits at draw time
    assert top.get_xlim() == pytest.approx(np.array(ax.get_xlim()) / relevance.sd_ref)


def test_mcid_curve_on_the_points_scale_has_no_second_axis():
    md = bayesmeta.reanalyse(-1.2, -2.0, -0.4, k=10, i2_percent=50, measure="MD")
    ax = plots.plot_mcid_curve(bayesmeta.clinical_relevance(md, mcid=1.5))
    assert not ax.child_axes
    with pytest.raises(InputError, match="clinical_relevance"):
        plots.plot_mcid_curve(md)


# ---------------------------------------------------------------------------------------------
# posterior predictive checks


def test_q_discrepancy_line_at_observed_q(known_ppc, ppc):
    ax = plots.plot_q_discrepancy(known_ppc)
    assert _vline_x(ax, "q_obs") == 17.25
    assert "0.570" in ax.get_title(loc="left")
    ax = plots.plot_q_discrepancy(ppc)
    assert _vline_x(ax, "q_obs") == pytest.approx(ppc.q_obs, rel=1e-12)
    assert sum(p.get_height() for p in ax.patches) == ppc.q_rep.size


def test_study_pvalues_and_pareto_k_are_the_checks_numbers(known_ppc):
    ax = plots.plot_study_pvalues(known_ppc)
    assert _tick_labels(ax) == ["A", "B", "C"]
    for col in ("ppp_mixed", "ppp_conditional", "loo_pit"):
        line = next(line for line in ax.lines if line.get_gid() == col)
        assert list(line.get_xdata()) == list(known_ppc.studies[col])
    assert _span(ax, "tails") == pytest.approx((0.0, 0.025))
    ax = plots.plot_pareto_k(known_ppc)
    high = next(line for line in ax.lines if line.get_gid() == "pareto_k_high")
    assert list(high.get_xdata()) == [0.9]
    assert _vline_x(ax, "threshold") == 0.7
    assert "1 study" in " ".join(t.get_text() for t in ax.get_legend().get_texts())


def test_ppc_without_loo_has_two_panels(known_ppc):
    no_loo = PPCResult(studies=known_ppc.studies.drop(columns=["pareto_k", "loo_pit"]),
                       q_obs=3.0, q_rep=np.arange(10.0), ppp_q=0.6, elpd_loo=None,
                       elpd_loo_se=None, p_loo=None)
    assert len(plots.plot_ppc(no_loo)) == 2
    with pytest.raises(InputError, match="NUTS"):
        plots.plot_pareto_k(no_loo)
    with pytest.raises(InputError, match="posterior_predictive_check"):
        plots.plot_ppc(no_loo.studies)


# ---------------------------------------------------------------------------------------------
# prior sensitivity and diagnostics


def test_prior_sensitivity_one_row_per_prior(sensitivity, relevance):
    axes = plots.plot_prior_sensitivity(sensitivity, relevance=relevance)
    names = list(sensitivity)
    assert _tick_labels(axes[0]) == names
    for panel, p in zip(axes[:3], ("mu", "tau", "theta_new"), strict=True):
        assert panel.get_title() == p
        intervals = [line for line in panel.lines if line.get_gid() == "interval"]
        assert len(intervals) == len(names)
        for line, name in zip(intervals, names, strict=True):
            assert list(line.get_xdata()) == pytest.approx(list(sensitivity[name].interval(p)))
    table = relevance.prior_sensitivity.set_index("prior")
    p_mu = next(line for line in axes[3].lines if line.get_gid() == "p_mu_mcid")
    assert list(p_mu.get_xdata()) == pytest.approx(list(table.loc[names, "p_mu_mcid"]))
    assert _vline_x(axes[0], "reml") == pytest.approx(sensitivity[names[0]].frequentist.beta[0])
    assert len(plots.plot_prior_sensitivity(sensitivity, params=["tau"])) == 1


def test_prior_sensitivity_names_must_match(sensitivity, relevance):
    fewer = dict(list(sensitivity.items())[:2])
    with pytest.raises(InputError, match="must be the same"):
        plots.plot_prior_sensitivity(fewer, relevance=relevance)
    with pytest.raises(InputError, match="BayesResult"):
        plots.plot_prior_sensitivity({"a": 1.0})


def test_trace_and_rank_titles_carry_the_gate_numbers(draws, exact):
    axes = plots.plot_trace(draws)
    assert axes.shape == (2, 2)
    r_hat = draws.diagnostics.table.loc["tau", "r_hat"]
    assert f"R-hat {r_hat:.3f}" in axes[1, 0].get_title()
    assert len(axes[0, 1].lines) >= 4  # one trace per chain
    ranks = plots.plot_rank(draws, params=["mu"])
    assert ranks.shape == (1,) and ranks[0].get_title().startswith("mu: R-hat")
    with pytest.raises(InputError, match="NUTS fit"):
        plots.plot_trace(exact)
    with pytest.raises(InputError, match="available"):
        plots.plot_rank(draws, params=["sigma"])


def test_real_ppc_of_the_draws_result(ppc, draws):
    axes = plots.plot_ppc(ppc)
    assert len(axes) == 3
    assert _tick_labels(axes[0]) == list(draws.labels)
    assert _vline_x(axes[1], "q_obs") == pytest.approx(ppc.q_obs)
