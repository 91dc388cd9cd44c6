"""`ptst run CONFIG`: the grid from the command line, then its report. A verb module of its own, above both the grid
and the report (the report checks the grid's cells; running a grid ends by writing its report)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ptst.grid.cells import load_grid
from ptst.grid.config import RaySpec
from ptst.grid.runner import check_options, run
from ptst.grid.status import print_plan
from ptst.judge.validate import validate_offline
from ptst.report import run as report


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="grid YAML (see configs/quickstart.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys, e.g. train.lr=2e-4")
    p.add_argument("--out", help="run directory (default: runs/<name>)")
    p.add_argument("--dry-run", action="store_true", help="print the plan with a time estimate; run nothing")
    p.add_argument("--shard", metavar="i/n", help="run every n-th training cell starting at i (0-based)")
    p.add_argument("--cell", metavar="ID", help="run one training cell (and its evaluations)")
    p.add_argument("--align-only", action="store_true",
                   help="run only the alignment stage (once, before parallel --shard / --cell processes)")
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    p.add_argument("--executor", choices=("local", "ray"),
                   help="local: this process, one cell after another (default); ray: every cell a Ray task, "
                        "retried when a worker dies (pip install 'ptst[ray]'; settings under `ray:` in the config)")
    p.add_argument("--address", metavar="ADDR",
                   help="with --executor ray: a running cluster (host:port or auto); default: ray.address, "
                        "else a new local cluster")


def cli(args: argparse.Namespace) -> int:
    cfg = load_grid(args.config, args.overrides)
    out = Path(args.out or Path("runs") / cfg.name)
    check_options(cfg, args.executor, shard=args.shard, cell=args.cell, align_only=args.align_only,
                  address=args.address)
    if args.dry_run:
        print_plan(cfg, out, args.shard, args.cell)
        if (args.executor or cfg.executor) == "ray":
            from ptst.grid.ray_exec import _fmt  # lazy: the Ray executor, loaded only for executor: ray

            r = cfg.ray or RaySpec()
            print(f"executor: ray at {args.address or r.address or 'a new local cluster'}; per task: train "
                  f"{_fmt(r.train.request())}, eval {_fmt(r.eval.request())}; max_retries {r.max_retries}; "
                  f"inputs {r.inputs} (a dry run contacts no cluster)")
        return 0
    run(cfg, out, shard=args.shard, cell=args.cell, align_only=args.align_only, executor=args.executor,
        address=args.address)
    if not args.no_report and args.shard is None and args.cell is None and not args.align_only:
        # the report shows each judge's agreement with human labels: the offline judges can be measured here
        for line in validate_offline(cfg.judges, cfg.judge, cfg.data_dir, run_dir=out):
            print(f"note: judge validation skipped ({line})", file=sys.stderr)

        path = report(out)
        page = path / "report.html"
        print(f"report: {page if page.exists() else path / 'report.md'}")
    return 0
