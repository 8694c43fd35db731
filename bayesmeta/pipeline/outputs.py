"""Write a run's outputs: index.html, report.md, tables/*.csv, idata/*.nc, figures/, run.json.

Everything is written into a temporary folder beside the target, which then replaces the
target in two renames (an earlier report is moved aside first and deleted last), so a reader
never sees half a report and a failed run leaves the previous report in place.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import DEFAULTS
from ..errors import InputError
from ..results import canonical_json
from .parallel import run_jobs
from .runner import RunResult
from .tables import build_tables


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def _write_tables(tables: dict[str, Any], folder: Path) -> list[str]:
    folder.mkdir()
    names = []
    for name, df in tables.items():
        path = folder / f"{name}.csv"
        df.to_csv(path, index=False)
        names.append(path.name)
    return names


def _save(fit: Any, path: Path) -> tuple[str | None, str | None]:
    """Save one result; a result the file format cannot hold is a note, not a crash."""
    try:
        fit.save(path)
    except (InputError, NotImplementedError) as exc:
        return None, f"{path.name} not written: {exc}"
    return path.name, None


def _idata_jobs(run: RunResult, folder: Path) -> list[Callable[[], Any]]:
    folder.mkdir()
    jobs = []
    for r in run.analyses:
        for label, fit in r.bayes_fits().items():
            path = folder / f"{_slug(r.name)}__{_slug(label)}.nc"
            jobs.append(functools.partial(_save, fit, path))
    return jobs


def _swap_in(tmp: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rmdir(old)
        os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        if old is not None:
            os.rename(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_outputs(run: RunResult, out: Path, *, started: float,
                  workers: int = DEFAULTS.output_workers) -> RunResult:
    """Write every output of ``run`` into ``out`` (atomically) and return the run with its
    ``info`` completed (report timings, outputs, wall time) and ``out_dir`` set."""
    from ..report import build_document, render_html, render_markdown
    from ..report.figures import draw, fill_figures

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    os.chmod(tmp, 0o755)  # mkdtemp's 0700 would make the report private after the rename
    timings: dict[str, float] = {}
    try:
        t = time.perf_counter()
        tables = build_tables(run)
        table_files = _write_tables(tables, tmp / "tables")
        timings["tables"] = time.perf_counter() - t

        t = time.perf_counter()
        saved, pool_notes = run_jobs(_idata_jobs(run, tmp / "idata"), workers)
        idata_files = sorted(name for name, _ in saved if name)
        idata_notes = [note for _, note in saved if note]
        timings["idata"] = time.perf_counter() - t

        t = time.perf_counter()
        files = {"tables/": table_files, "idata/": idata_files}
        doc, figure_jobs = build_document(run, tables, files=files)
        drawn_list, notes = run_jobs([functools.partial(draw, job) for job in figure_jobs],
                                     workers)
        pool_notes += notes
        drawn = {d.key: d for d in drawn_list}
        figure_notes = [n for d in drawn_list for n in d.notes]
        doc = fill_figures(doc, drawn)
        timings["figures"] = time.perf_counter() - t

        t = time.perf_counter()
        fig_dir = tmp / "figures"
        fig_dir.mkdir()
        figure_files = []
        for fig in doc.figures():
            (fig_dir / fig.filename).write_bytes(fig.png)
            figure_files.append(fig.filename)
        (tmp / "index.html").write_text(render_html(doc), encoding="utf-8")
        (tmp / "report.md").write_text(render_markdown(doc), encoding="utf-8")
        timings["render"] = time.perf_counter() - t

        info = json.loads(canonical_json(dict(run.info)))
        info["timings"]["report"] = {k: round(v, 3) for k, v in timings.items()}
        info["timings"]["wall_seconds"] = round(time.perf_counter() - started, 3)
        info["outputs"] = {"index.html": True, "report.md": True, "tables": table_files,
                           "idata": idata_files, "figures": figure_files,
                           "not_written": idata_notes, "figure_notes": figure_notes,
                           "workers": workers, "pool_notes": pool_notes}
        (tmp / "run.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n",
                                      encoding="utf-8")
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return replace(run, info=info, out_dir=out)
