"""`ptst report`: paper-ready tables, figures and the PTST verdict from a run directory's metrics."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def run(run_dir: str | Path, out_dir: str | Path | None = None, safety_judge: str | None = None,
        formats: Sequence[str] | None = None, kappa_threshold: float | None = None) -> Path:
    """Write results.csv, fig-*.png, report.md, report.html and table1.tex (or only the `formats` named: md, html,
    tex) for `run_dir` into `out_dir` (default: the run directory), atomically, and return that directory.
    `kappa_threshold`: warn below it when the headline judge has a validated human agreement (default: the run's
    grid.yaml `report.kappa_threshold`, else 0.6). Only current numbers are shown: a cell or set whose inputs
    changed since it was computed (ptst.grid.current, `ptst status`'s check) is left out, with what changed.
    Imported lazily so `ptst --help` stays fast."""
    from ptst.grid.current import currency  # lazy: the grid checks its own cells, as `ptst status` does
    from ptst.report.build import FORMATS  # lazy: `ptst --help` imports ptst.report (report.cli)
    from ptst.report.build import run as _run  # lazy: `ptst --help` imports ptst.report (report.cli)

    return _run(run_dir, currency(run_dir), out_dir, safety_judge=safety_judge,
                formats=FORMATS if formats is None else formats, kappa_threshold=kappa_threshold)[0]


__all__ = ["run"]
