"""The convergence gate applied after every NUTS fit.

Criteria (Vehtari, Gelman, Simpson, Carpenter & Bürkner 2021, doi:10.1214/20-BA1221; Betancourt
2016, arXiv:1604.00695 for E-BFMI), thresholds from :data:`bayesmeta.config.DEFAULTS`:
rank-normalised split R-hat <= 1.01, bulk and tail ESS >= 400, no divergent transitions,
E-BFMI >= 0.3 in every chain.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..config import DEFAULTS
from ..results import Diagnostics


def diagnostics_table(draws: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per-parameter R-hat, bulk/tail ESS and MCSE of the mean; ``draws[p]`` is (chain, draw)."""
    import arviz as az

    ds = az.convert_to_dataset({name: np.asarray(x, float) for name, x in draws.items()})
    stats = {
        "mcse_mean": az.mcse(ds, method="mean"),
        "ess_bulk": az.ess(ds, method="bulk"),
        "ess_tail": az.ess(ds, method="tail"),
        "r_hat": az.rhat(ds),
    }
    table = pd.DataFrame(
        {col: [float(res[name].values) for name in draws] for col, res in stats.items()},
        index=pd.Index(list(draws), name="param"))
    return table


def ebfmi(energy: np.ndarray) -> np.ndarray:
    """E-BFMI per chain from the Hamiltonian energy, shape (chain, draw)."""
    import arviz as az

    return np.atleast_1d(az.bfmi(np.asarray(energy, float)))


def assess(draws: dict[str, np.ndarray], diverging: np.ndarray, energy: np.ndarray,
           attempts: Sequence[dict] = ()) -> Diagnostics:
    """Apply the gate to the parameters in ``draws`` (the ones a report shows: coefficients,
    tau and the study effects)."""
    table = diagnostics_table(draws)
    n_div = int(np.asarray(diverging).sum())
    bfmi = ebfmi(energy)
    rhat = float(table["r_hat"].max())
    ess_b = float(table["ess_bulk"].min())
    ess_t = float(table["ess_tail"].min())
    messages = []
    if not rhat <= DEFAULTS.rhat_max:
        worst = table["r_hat"].idxmax()
        messages.append(f"R-hat {rhat:.3f} > {DEFAULTS.rhat_max} (worst: {worst})")
    if not ess_b >= DEFAULTS.ess_min:
        messages.append(f"bulk ESS {ess_b:.0f} < {DEFAULTS.ess_min:.0f} "
                        f"(worst: {table['ess_bulk'].idxmin()})")
    if not ess_t >= DEFAULTS.ess_min:
        messages.append(f"tail ESS {ess_t:.0f} < {DEFAULTS.ess_min:.0f} "
                        f"(worst: {table['ess_tail'].idxmin()})")
    if n_div > 0:
        messages.append(f"{n_div} divergent transition{'s' if n_div != 1 else ''}")
    if not float(bfmi.min()) >= DEFAULTS.ebfmi_min:
        messages.append(f"E-BFMI {float(bfmi.min()):.2f} < {DEFAULTS.ebfmi_min}")
    return Diagnostics(
        rhat_max=rhat,
        ess_bulk_min=ess_b,
        ess_tail_min=ess_t,
        n_divergent=n_div,
        ebfmi_min=float(bfmi.min()),
        passed=not messages,
        messages=tuple(messages),
        attempts=tuple(attempts),
        table=table,
    )
