"""The Bayesian layer: priors, PyMC model builders, NUTS sampling, the exact posterior."""

from .api import bayes_rma, load

__all__ = ["bayes_rma", "load"]
