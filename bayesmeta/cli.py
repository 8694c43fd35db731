"""The ``bayesmeta`` command line.

Exit codes: 0 success, 1 an analysis ran but a check failed (e.g. diagnostics gate), 2 bad input
or usage (the message names the row, column and value), 3 an unexpected internal error.
"""

from __future__ import annotations

import argparse
import sys
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


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="bayesmeta",
        description="Bayesian hierarchical meta-analysis with a metafor-validated REML twin.",
    )
    parser.add_argument("--version", action="version", version=f"bayesmeta {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("validate", help="check a study table (CSV, XLSX, parquet) against the schema")
    p.add_argument("path", help="the study table")
    p.set_defaults(func=_cmd_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import InputError

    parser = build_parser()
    args = parser.parse_args(argv)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
