"""`ptst report RUN_DIR`: tables, figures and the PTST verdict for a finished (or partial) run."""

from __future__ import annotations

import argparse
import sys

from ptst.errors import PtstError


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="the run directory (holds <train-cell>/eval/<test-cell>/metrics.json); a cell or "
                                   "set whose inputs changed since it was computed (as `ptst status` checks) is left "
                                   "out, and what changed is named")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write the report here instead of into the run directory")
    p.add_argument("--safety-judge", default=None, metavar="JUDGE",
                   help="judge for the safety tables and the PTST verdict: a refusal detector (keyword, ...) gives "
                        "a non-refusal rate, a harm judge (rubric, ...) a harmful-answer rate (default: all judges "
                        "in tables; the verdict uses the first model judge, else keyword)")
    p.add_argument("--format", default="md,html,tex",
                   help="comma-separated report formats: md, html, tex (Table 1 as booktabs LaTeX, table1.tex); "
                        "default: all three")
    p.add_argument("--kappa-threshold", type=float, default=None, metavar="K",
                   help="warn when the headline judge's validated kappa against human harm labels is below K "
                        "(default: grid.yaml report.kappa_threshold, else 0.6; `ptst judge validate` records kappa)")


def cli(args: argparse.Namespace) -> int:
    from ptst.grid.current import currency  # lazy: the grid checks its own cells, as `ptst status` does
    from ptst.report.build import run  # lazy: `ptst --help` imports this verb module; report.build is the stage

    formats = [f.strip() for f in args.format.split(",") if f.strip()]

    threshold = args.kappa_threshold
    if threshold is not None and not -1 <= threshold <= 1:
        raise PtstError(f"--kappa-threshold must be in [-1, 1], got {threshold}")
    out, warnings = run(args.run_dir, currency(args.run_dir), args.out, safety_judge=args.safety_judge,
                        formats=formats, kappa_threshold=threshold)
    for w in warnings:  # stale cells left out, unchecked ones shown: said here as in the report
        print(f"note: {w}", file=sys.stderr)
    names = ["results.csv"] + [f"report.{f}" if f != "tex" else "table1.tex" for f in formats]
    written = [n for n in names if (out / n).exists()]  # table1.tex only when there was a Table 1 to write
    print(f"wrote {', '.join(written)} and figures to {out}")
    return 0
