"""The ``bayesmeta`` command line.

Commands::

    bayesmeta validate DATA.csv
    bayesmeta run models/lbp_review.toml [--out DIR] [--engine nuts|exact] [--quick]
    bayesmeta fit DATA.csv --measure SMD --outcome pain [--comparator active]
                  [--follow-up short] [--tau-prior HalfNormal:scale=0.5] [--mu-prior ...]
                  [--mcid 1.5 --sd-ref 2.0] [--engine nuts|exact] [--out DIR]
    bayesmeta fit dat.bcg.csv --measure RR --inputs ai=tpos,bi=tneg,ci=cpos,di=cneg
                  [--subgroup alloc] [--mods "~ ablat"] ...
    bayesmeta fit Rubin1981.csv --measure GEN --yi effect --sei stderr
                  --tau-prior HalfCauchy:scale=25 ...

``fit`` reads a study table of the extraction schema (``--outcome`` selects its rows) or any
table whose effects are named by column: precomputed (``--yi`` with ``--vi`` or ``--sei``) or
arm-level inputs of escalc (``--inputs keyword=column,...``; a bare keyword is a column of the
same name, e.g. ``--inputs m1i,sd1i,n1i,m2i,sd2i,n2i``).

Exit codes: 0 success, 1 an analysis ran but a check failed (a NUTS fit failed the diagnostics
gate, or a published cell was not reproduced; the report lists which), 2 bad input or usage
(the message names the row, column and value), 3 an unexpected internal error.
Progress lines of long runs go to stderr (``--quiet`` silences them).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


def _cmd_validate(args: argparse.Namespace) -> int:
    from .io import read_studies

    table = read_studies(args.path)
    attrs = table.attrs
    print(f"{args.path}: {len(table)} rows valid (schema {attrs['schema_version']})")
    for written, name in attrs["column_aliases"].items():
        print(f"  column {written!r} read as {name}")
    if attrs["unknown_columns"]:
        print("  kept, outside the schema: " + ", ".join(attrs["unknown_columns"]))
    for item in attrs["excluded"]:
        print(f"  kept out: row {item['row']} ({item['study_id']}): {item['reason']}")
    return EXIT_OK


def _summarise(run: object) -> int:
    from .pipeline import RunResult

    assert isinstance(run, RunResult)
    failed = [c for c in run.checks if not c.passed and c.enforced]
    where = run.out_dir / "index.html" if run.out_dir is not None else None
    print(f"report: {where}")
    print(f"{len(run.analyses)} analyses, {len(run.checks)} checks, {len(run.warnings)} "
          f"warnings; wall time {run.info['timings']['wall_seconds']:.1f} s")
    if run.provenance.synthetic:
        print("note: the study table is SYNTHETIC (see the report's banner)")
    for c in failed:
        print(f"CHECK FAILED: {c.name}: {c.message}", file=sys.stderr)
    return EXIT_OK if not failed else EXIT_CHECK_FAILED


def _cmd_run(args: argparse.Namespace) -> int:
    from .pipeline import run_spec

    run = run_spec(args.spec, out_dir=args.out, engine=args.engine, quick=args.quick,
                   progress=not args.quiet)
    return _summarise(run)


def parse_inputs_option(text: str) -> dict[str, str]:
    """``"ai=tpos,bi=tneg"`` -> ``{"ai": "tpos", "bi": "tneg"}``; a bare keyword (``m1i``)
    names the column of the same name. The keywords are checked against the measure later."""
    from .errors import InputError, Problem

    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, eq, column = (part.strip() for part in item.partition("="))
        if not key or (eq and not column) or key in out:
            raise InputError(Problem("expected keyword=column,... with each escalc keyword "
                                     "once (e.g. ai=tpos,bi=tneg,ci=cpos,di=cneg, or "
                                     "m1i,sd1i,n1i,m2i,sd2i,n2i for columns named as the "
                                     "keywords)", column="--inputs", value=text))
        out[key] = column if eq else key
    if not out:
        raise InputError(Problem("no keyword given", column="--inputs", value=text))
    return out


def _cmd_fit(args: argparse.Namespace) -> int:
    from .pipeline import one_off_spec, run_spec

    spec = one_off_spec(args.data, measure=args.measure, outcome=args.outcome,
                        comparator=args.comparator, follow_up=args.follow_up,
                        tau_prior=args.tau_prior, mu_prior=args.mu_prior, mcid=args.mcid,
                        sd_ref=args.sd_ref, direction=args.direction, engine=args.engine,
                        seed=args.seed, prepost_r=args.prepost_r, yi=args.yi, vi=args.vi,
                        sei=args.sei, inputs=None if args.inputs is None
                        else parse_inputs_option(args.inputs),
                        subgroup=args.subgroup, mods=args.mods)
    run = run_spec(spec, out_dir=args.out, quick=args.quick, progress=not args.quiet)
    if not any(r.ok for r in run.analyses):
        for r in run.analyses:
            print(f"bayesmeta: {r.name}: " + "; ".join(r.notes), file=sys.stderr)
        return EXIT_BAD_INPUT
    for r in run.analyses:
        if r.ok and r.analysis.model != "pooled":
            print(f"{r.name}: k = {r.k}; {r.analysis.model.replace('_', '-')} model "
                  f"({r.bayes.engine if r.bayes is not None else 'not fitted'}); see the report")
        elif r.reml is not None and r.bayes is not None:
            d = r.reml.to_dict()
            lo, hi = r.bayes.interval("mu")
            print(f"{r.name}: k = {r.k}; REML {d['estimate']:.3f} [{d['ci_low']:.3f}, "
                  f"{d['ci_high']:.3f}], tau2 {d['tau2']:.4f}, I2 {d['i2']:.1f}%; Bayes "
                  f"({r.bayes.engine}) mu {r.bayes.median('mu'):.3f} [{lo:.3f}, {hi:.3f}]")
            if r.relevance is not None:
                print(f"  P(mu beyond the MCID) = {r.relevance.p_mu_mcid:.3f}; "
                      f"P(theta_new beyond the MCID) = {r.relevance.p_new_mcid:.3f}")
    return _summarise(run)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="bayesmeta",
        description="Bayesian hierarchical meta-analysis with a metafor-validated REML twin.",
        epilog="Exit codes: 0 ok; 1 a check failed (diagnostics gate, published cell not "
               "reproduced); 2 bad input; 3 internal error.",
    )
    parser.add_argument("--version", action="version", version=f"bayesmeta {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("validate",
                       help="check a study table (CSV, XLSX, parquet) against the schema")
    p.add_argument("path", help="the study table")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("run", help="run an analysis plan (models/*.toml) and write its report",
                       description="Run every analysis of a plan and write index.html, "
                                   "report.md, tables/, idata/ and run.json.")
    p.add_argument("spec", help="the analysis plan, e.g. models/lbp_review.toml")
    p.add_argument("--out", help="output folder (default: reports/<plan name>)")
    p.add_argument("--engine", choices=("nuts", "exact"),
                   help="engine of the primary priors (default: the plan's engine.primary)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: exact engine wherever it exists, short NUTS runs "
                        "otherwise (the report says so)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("fit", help="one pooled analysis of a study table, with its report",
                       description="Pool one outcome (optionally one comparator and follow-up) "
                                   "of a study table by REML and by the Bayesian model; "
                                   "optionally a subgroup model and a meta-regression. The "
                                   "table follows the extraction schema (--outcome selects its "
                                   "rows), or any table names its effects with --yi and --vi "
                                   "(or --sei), or its escalc inputs with --inputs.")
    p.add_argument("data", help="the study table (CSV, XLSX, parquet)")
    p.add_argument("--measure", required=True,
                   help="effect measure (metafor's names), e.g. SMD, MD, OR, RR; GEN for "
                        "generic precomputed effects")
    p.add_argument("--outcome", help="the outcome to pool, e.g. pain (required for a study "
                                     "table of the extraction schema; otherwise it only names "
                                     "the outcome, e.g. for --mcid)")
    p.add_argument("--yi", help="column of precomputed effects (any table)")
    p.add_argument("--vi", help="column of their sampling variances (with --yi)")
    p.add_argument("--sei", help="column of their standard errors (with --yi, instead of --vi)")
    p.add_argument("--inputs", help="escalc inputs as keyword=column,... e.g. "
                                    "ai=tpos,bi=tneg,ci=cpos,di=cneg (any table); a bare "
                                    "keyword names a column of the same name")
    p.add_argument("--subgroup", help="also fit a subgroup model by this column")
    p.add_argument("--mods", help='also fit a meta-regression, e.g. "~ ablat"')
    p.add_argument("--comparator", help="only rows with this comparator (default: all)")
    p.add_argument("--follow-up", dest="follow_up", help="only rows at this follow-up")
    p.add_argument("--tau-prior", dest="tau_prior",
                   help="family or family:key=value,... e.g. HalfNormal:scale=0.5 or "
                        "rhodes:outcome=pain_function (default for standardised measures: "
                        "HalfNormal:scale=0.5)")
    p.add_argument("--mu-prior", dest="mu_prior",
                   help="Normal:mean=0,sd=1 or Flat (default for standardised measures: "
                        "Normal:mean=0,sd=4)")
    p.add_argument("--mcid", type=float, help="MCID in outcome points (adds clinical relevance)")
    p.add_argument("--sd-ref", dest="sd_ref", type=float,
                   help="reference SD converting the MCID to the SMD scale")
    p.add_argument("--direction", default="lower", choices=("lower", "higher"),
                   help="direction of benefit (default: lower)")
    p.add_argument("--prepost-r", dest="prepost_r", type=float,
                   help="pre-post correlation for imputing missing change SDs")
    p.add_argument("--engine", default="nuts", choices=("nuts", "exact"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output folder (default: reports/<data stem>[_<outcome>])")
    p.add_argument("--quick", action="store_true", help="exact engine (smoke test)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_cmd_fit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import InputError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 0 for --help/--version, 2 for a usage error
        return int(exc.code or 0)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_OK
    try:
        return func(args)
    except InputError as exc:
        print(f"bayesmeta: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FileNotFoundError as exc:
        print(f"bayesmeta: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("bayesmeta: interrupted", file=sys.stderr)
        return EXIT_INTERNAL
    except Exception:  # noqa: BLE001 - the documented exit code 3, with the traceback shown
        traceback.print_exc()
        print("bayesmeta: internal error (exit code 3); please report it with the traceback "
              "above", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
