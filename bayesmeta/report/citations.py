"""References the methods paragraph cites (closed table, by method or prior family)."""

from __future__ import annotations

#: prior family -> reference (presets carry their own ``citation``)
PRIOR_REFERENCES = {
    "HalfNormal": "Friede T, Röver C, Wandel S, Neuenschwander B (2017). Meta-analysis of few "
                  "small studies in orphan diseases. Res Synth Methods 8(1):79-91.",
    "HalfCauchy": "Gelman A (2006). Prior distributions for variance parameters in hierarchical "
                  "models. Bayesian Anal 1(3):515-534. doi:10.1214/06-BA117A",
    "Normal": "Röver C (2020). Bayesian random-effects meta-analysis using the bayesmeta R "
              "package. J Stat Softw 93(6). doi:10.18637/jss.v093.i06",
}

METHODS = {
    "model": "Röver C (2020). Bayesian random-effects meta-analysis using the bayesmeta R "
             "package. J Stat Softw 93(6). doi:10.18637/jss.v093.i06",
    "bmr": "Röver C, Friede T (2023). Using the bayesmeta R package for Bayesian "
           "random-effects meta-regression. Comput Methods Programs Biomed 229:107303. "
           "doi:10.1016/j.cmpb.2022.107303",
    "reml": "Viechtbauer W (2010). Conducting meta-analyses in R with the metafor package. "
            "J Stat Softw 36(3). doi:10.18637/jss.v036.i03",
    "qprofile": "Viechtbauer W (2007). Confidence intervals for the amount of heterogeneity in "
                "meta-analysis. Stat Med 26:37-52. doi:10.1002/sim.2514",
    "egger": "Egger M, Davey Smith G, Schneider M, Minder C (1997). Bias in meta-analysis "
             "detected by a simple, graphical test. BMJ 315:629-634. "
             "doi:10.1136/bmj.315.7109.629",
    "rank": "Begg CB, Mazumdar M (1994). Operating characteristics of a rank correlation test "
            "for publication bias. Biometrics 50:1088-1101. doi:10.2307/2533446",
    "influence": "Viechtbauer W, Cheung MWL (2010). Outlier and influence diagnostics for "
                 "meta-analysis. Res Synth Methods 1:112-125. doi:10.1002/jrsm.11",
    "gate": "Vehtari A, Gelman A, Simpson D, Carpenter B, Bürkner PC (2021). Rank-"
            "normalization, folding, and localization: an improved R-hat. Bayesian Anal "
            "16(2):667-718. doi:10.1214/20-BA1221",
    "loo": "Vehtari A, Gelman A, Gabry J (2017). Practical Bayesian model evaluation using "
           "leave-one-out cross-validation and WAIC. Stat Comput 27:1413-1432. "
           "doi:10.1007/s11222-016-9696-4",
    "ppc": "Marshall EC, Spiegelhalter DJ (2007). Identifying outliers in Bayesian "
           "hierarchical models: a simulation-based approach. Bayesian Anal 2(2):409-444. "
           "doi:10.1214/07-BA211",
    "hedges": "Hedges LV (1981). Distribution theory for Glass's estimator of effect size and "
              "related estimators. J Educ Stat 6(2):107-128. doi:10.3102/10769986006002107",
    "bonett": "Bonett DG (2009). Meta-analytic interval estimation for standardized and "
              "unstandardized mean differences. Psychol Methods 14(3):225-238. "
              "doi:10.1037/a0016619",
    "imputation": "Cochrane (2022). Cochrane Handbook for Systematic Reviews of Interventions, "
                  "version 6.3 (Higgins JPT, Thomas J et al., eds.), section 6.5.2.8.",
    "reanalysis": "Spiegelhalter DJ, Abrams KR, Myles JP (2004). Bayesian Approaches to Clinical "
                  "Trials and Health-Care Evaluation. Wiley. doi:10.1002/0470092602",
    "nutpie": "Abril-Pla O, Andreani V, Carroll C, et al. (2023). PyMC: a modern and "
              "comprehensive probabilistic programming framework in Python. PeerJ Comput Sci "
              "9:e1516. doi:10.7717/peerj-cs.1516 (sampled with nutpie, PyMC Labs)",
}


#: effect measure -> key of :data:`METHODS` for the estimator escalc computes (the
#: textbook measures without an entry, e.g. log risk or odds ratios, get no citation)
MEASURE_REFERENCES = {"SMD": "hedges", "SMDH": "bonett"}


def short_citation(full: str) -> str:
    """``"Rhodes KM, Turner RM, Higgins JPT (2015). ..."`` -> ``"Rhodes et al. 2015"``."""
    import re

    m = re.match(r"\s*([^\s,(]+)([^()]*)\((\d{4})\)", full)
    if m is None:
        return full.split(".")[0]
    surname, rest, year = m.groups()
    authors = rest.count(",") + 1 if rest.strip() else 1
    if authors == 1:
        return f"{surname} {year}"
    if authors == 2:
        second = rest.split(",")[-1].split()[0]
        return f"{surname} & {second} {year}"
    return f"{surname} et al. {year}"


class References:
    """Collects the references a text cites, in order of first citation."""

    def __init__(self) -> None:
        self.used: dict[str, str] = {}

    def cite(self, key_or_full: str) -> str:
        """The short form of ``METHODS[key]`` (or of a full reference), remembered."""
        full = METHODS.get(key_or_full, key_or_full)
        short = short_citation(full)
        self.used.setdefault(short, full)
        return short

    def listing(self) -> tuple[str, ...]:
        return tuple(self.used.values())
