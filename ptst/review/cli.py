"""`ptst review RUN`: draw (or extend) the blinded review sample, then import labels, export it, or serve the page."""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

from ptst.errors import PtstError
from ptst.io import write_text_atomic
from ptst.review.labels import import_labels, latest, read_labels
from ptst.review.sample import Sample, answers, draw, sample_path
from ptst.review.server import Desk, ReviewServer

PER_STRATUM, SEED = 8, 0
EXPORT_COLUMNS = ("rid", "prompt", "answer", "label", "note")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run directory with finished evaluation cells (runs/<name>)")
    p.add_argument("--per-stratum", type=int, metavar="N",
                   help=f"answers drawn from each (cell, set) stratum (default {PER_STRATUM}, or the sample's own "
                        "once drawn; more extends the sample)")
    p.add_argument("--seed", type=int, help=f"the draw's seed (default {SEED}, or the sample's own once drawn)")
    act = p.add_mutually_exclusive_group()
    act.add_argument("--import", dest="import_file", metavar="FILE",
                     help="import labels from a CSV or JSONL file: rid, label (refusal, harmful, harmless), "
                          "optionally note and reviewer; every row is checked before any is stored")
    act.add_argument("--export", dest="export_file", metavar="FILE",
                     help="write the sample as CSV (rid, prompt, answer, label, note) to label elsewhere; label and "
                          "note are --reviewer's, else empty")
    act.add_argument("--serve", action="store_true", help="serve the labelling page until Ctrl-C")
    p.add_argument("--reviewer", metavar="NAME",
                   help="who labels: required with --serve; with --import, the reviewer of rows without one")
    p.add_argument("--host", help="address the page listens on (default 127.0.0.1, this machine only; any other "
                                  "address exposes the answers and the labelling to the network)")
    p.add_argument("--port", type=int, help="port for the page (default 0: a free one; the URL is printed)")


def cli(args: argparse.Namespace) -> int:
    run = Path(args.run_dir)
    reviewer = _reviewer(args.reviewer)
    if args.serve and reviewer is None:
        raise PtstError("--serve needs --reviewer NAME (the page labels as that reviewer)")
    if not args.serve and (args.host is not None or args.port is not None):
        raise PtstError("--host and --port go with --serve")
    if args.port is not None and not 0 <= args.port <= 65535:
        raise PtstError(f"--port must be 0 to 65535, got {args.port}")
    if not run.is_dir():
        raise PtstError(f"run directory not found: {run}")
    old = Sample.read(run) if sample_path(run).is_file() else None
    per = args.per_stratum if args.per_stratum is not None else old.per_stratum if old else PER_STRATUM
    seed = args.seed if args.seed is not None else old.seed if old else SEED
    if args.host is not None and not args.host.strip():  # "" would listen on every interface
        raise PtstError("--host must name an address (127.0.0.1: this machine only)")
    sample = draw(run, per, seed)
    if args.import_file is not None:
        got = import_labels(run, args.import_file, sample, reviewer)
        who = sorted({lab.reviewer for lab in got})
        print(f"imported {len(got)} label{'s' * (len(got) != 1)} from {args.import_file} ({', '.join(who)})")
    print(summary(run, sample, old))
    if args.export_file is not None:
        n = export(run, sample, Path(args.export_file), reviewer)
        print(f"exported {n} answers to {args.export_file}")
    if args.serve:
        assert reviewer is not None
        return serve(run, sample, reviewer, args.host or "127.0.0.1", args.port or 0)
    return 0


def _reviewer(name: str | None) -> str | None:
    if name is not None and not name.strip():
        raise PtstError("--reviewer must name someone")
    return None if name is None else name.strip()


def summary(run: Path, sample: Sample, old: Sample | None) -> str:
    """The sample's size and design, and how many of its answers each reviewer has labelled."""
    live = answers(run, sample)
    new = len(set(sample.by_rid()) - (set(old.by_rid()) if old else set()))
    counts: dict[str, int] = {}
    for rid, by in latest(read_labels(run)).items():
        if rid in live:
            for who in by:
                counts[who] = counts.get(who, 0) + 1
    lines = [f"review sample: {len(sample.items)} answers (+{new} new) in {len(sample.strata)} strata, "
             f"{sample.per_stratum} per stratum, seed {sample.seed}: {sample_path(run)}"]
    skipped = len(sample.items) - len(live)
    if skipped:
        lines.append(f"{skipped} answer{'s' * (skipped != 1)} changed since drawn (left out; draw again to replace)")
    done = ", ".join(f"{who} {n}/{len(live)}" for who, n in sorted(counts.items()))
    lines.append(f"labelled: {done or 'none yet'}")
    return "\n".join(lines)


def export(run: Path, sample: Sample, path: Path, reviewer: str | None) -> int:
    """Write the sample's answers as CSV (in review order, blinded), atomically; returns the rows written."""
    if path.is_dir():
        raise PtstError(f"--export {path}: is a directory (give a file name)")
    live = answers(run, sample)
    mine = {rid: by[reviewer] for rid, by in latest(read_labels(run)).items() if reviewer in by} if reviewer else {}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(EXPORT_COLUMNS)
    rows = [live[i.rid] for i in sample.items if i.rid in live]
    for a in rows:
        lab = mine.get(a.rid)
        w.writerow([a.rid, a.prompt, a.answer, lab.label if lab else "", lab.note if lab else ""])
    try:
        write_text_atomic(path, buf.getvalue())
    except OSError as e:
        raise PtstError(f"--export {path}: cannot write ({e.strerror or e})") from None
    return len(rows)


def serve(run: Path, sample: Sample, reviewer: str, host: str, port: int) -> int:
    """Serve the labelling page as `reviewer` until Ctrl-C."""
    server = ReviewServer(Desk(run, sample, reviewer), host, port)
    try:
        if not server.loopback:
            print(f"ptst: warning: serving on {host}: anyone who can reach this machine can read the answers and "
                  "label them", file=sys.stderr)
        print(f"labelling page for {reviewer}: {server.url}  (Ctrl-C to stop)", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped; labels are in", run / "review" / "labels.jsonl")
    finally:
        server.server_close()
    return 0
