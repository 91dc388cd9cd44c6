"""`ptst data list|show|check|contamination`: which sets exist, what they hold, whether local copies are intact."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ptst.data.catalog import DATASETS, EXTRA_FILES
from ptst.data.contamination import find_overlap
from ptst.data.load import load_dataset
from ptst.data.sources import file_sha256, find_local
from ptst.data.types import FileSpec
from ptst.errors import PtstError

SPEC_HELP = "a registered set (NAME or NAME:SPLIT) or a custom file (jsonl:PATH, json:PATH, csv:PATH)"


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="list registered data sets and whether they are available locally")
    show = sub.add_parser("show", help="print examples of a data set")
    show.add_argument("name", help=SPEC_HELP)
    show.add_argument("--split", help="split (default: the set's first split)")
    show.add_argument("--limit", type=int, default=5, help="a seeded sample of N rows (default 5)")
    show.add_argument("--all", action="store_true", help="print every row (overrides --limit)")
    show.add_argument("--seed", type=int, default=0, help="seed of the --limit sample (default 0)")
    show.add_argument("--field", action="append", default=[], metavar="KEY=COLUMN",
                      help="custom files: map an Example field (input, response, reference, id) to a column")
    check = sub.add_parser("check", help="verify the sha256 of every local data file; exit 1 on a mismatch")
    check.add_argument("names", nargs="*", help="only these sets (default: all, plus auxiliary files)")
    cont = sub.add_parser("contamination", help="find training inputs that duplicate evaluation inputs")
    cont.add_argument("--train", required=True, help="training set: " + SPEC_HELP)
    cont.add_argument("--eval", required=True, help="comma-separated evaluation sets")
    cont.add_argument("--show", type=int, default=10, metavar="N", help="print the first N overlaps (default 10)")
    cont.add_argument("--fail-on-overlap", action="store_true", help="exit 1 when any overlap is found")
    for q in (ls, show, check, cont):
        q.add_argument("--data-dir", help="folder laid out like shared/data (before $PTST_DATA_DIR and the cache)")
        q.add_argument("--json", action="store_true", help="machine-readable output")


def cli(args: argparse.Namespace) -> int:
    return {"list": _list, "show": _show, "check": _check, "contamination": _contamination}[args.action](args)


def _table(rows: list[list[str]], wrap: dict[int, int] | None = None) -> None:
    """Left-aligned columns; a cell longer than wrap[column] wraps onto continuation lines (nothing is cut)."""
    import textwrap

    wrap = wrap or {}
    cells = [[(textwrap.wrap(c, wrap[i], break_on_hyphens=False) or [""]) if i in wrap else [c]
              for i, c in enumerate(r)] for r in rows]
    widths = [max(len(line) for r in cells for line in r[i]) for i in range(len(rows[0]) - 1)]
    for r in cells:
        for k in range(max(len(c) for c in r)):
            parts = [c[k] if k < len(c) else "" for c in r]
            print(("  ".join(p.ljust(w) for p, w in zip(parts, widths, strict=False)) + "  " + parts[-1]).rstrip())


def _list(args: argparse.Namespace) -> int:
    out: list[dict[str, Any]] = []
    for name in DATASETS:
        spec = DATASETS.get(name)
        files = spec.all_files()
        have = sum(find_local(f, args.data_dir) is not None for f in files)
        local = "yes" if have == len(files) else ("partial" if have else "no")
        out.append({
            "name": name, "kind": spec.kind, "splits": {s: spec.sizes.get(s) for s in spec.splits}, "local": local,
            "downloadable": all(f.url for f in files), "non_commercial": spec.non_commercial,
            "licence": spec.licence, "scorer": spec.scorer, "description": spec.description,
        })
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    rows = [["NAME", "KIND", "LOCAL", "NC", "LICENCE", "SPLITS (ROWS)"]]
    for d in out:
        splits = " ".join(f"{s}({n})" if n is not None else s for s, n in d["splits"].items())
        rows.append([d["name"], d["kind"], d["local"], "NC" if d["non_commercial"] else "-", d["licence"], splits])
    _table(rows, wrap={4: 28, 5: 60})
    return 0


def _fields(pairs: list[str]) -> dict[str, str] | None:
    out = {}
    for pair in pairs:
        key, sep, col = pair.partition("=")
        if not sep or not key or not col:
            raise PtstError(f"--field expects KEY=COLUMN, got {pair!r}")
        out[key] = col
    return out or None


def _show(args: argparse.Namespace) -> int:
    ds = load_dataset(args.name, args.split, data_dir=args.data_dir, limit=None if args.all else args.limit,
                      seed=args.seed, fields=_fields(args.field))
    if args.json:
        for ex in ds:
            print(json.dumps(ex.to_dict(), ensure_ascii=False))
        return 0
    nc = "  NON-COMMERCIAL" if ds.non_commercial else ""
    print(f"# {ds.name}:{ds.split} ({ds.kind})  {len(ds)} rows shown (limit {ds.limit}, seed {ds.seed})")
    print(f"# sha256 {ds.sha256}  licence {ds.licence}{nc}")
    for ex in ds:
        print(f"\n=== {ex.id} ===\n[input]\n{ex.input}")
        if ex.response is not None:
            print(f"[response]\n{ex.response}")
        if ex.reference is not None:
            print(f"[reference] {ex.reference}")
        if ex.meta:
            print(f"[meta] {json.dumps(ex.meta, ensure_ascii=False)}")
    return 0


def check_files(names: list[str], data_dir: str | None) -> list[dict[str, Any]]:
    """One record per registered file: ok / mismatch / unpinned (no pinned sha256) / missing."""
    files: dict[str, FileSpec] = {}
    for name in names or list(DATASETS):
        for f in DATASETS.get(name).all_files():
            files.setdefault(f.path, f)
    if not names:
        files.update({f.path: f for f in EXTRA_FILES})
    out = []
    for f in files.values():
        path = find_local(f, data_dir)
        got = file_sha256(path) if path else None
        if got is None or f.sha256 is None:
            status = "missing" if got is None else "unpinned"
        else:
            status = "ok" if got == f.sha256 else "mismatch"
        out.append({"path": f.path, "status": status, "local": str(path) if path else None, "sha256": got,
                    "expected": f.sha256})
    return out


def _check(args: argparse.Namespace) -> int:
    results = check_files(args.names, args.data_dir)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            note = f"  sha256 {r['sha256']} != pinned {r['expected']}" if r["status"] == "mismatch" else ""
            note = note or (f"  sha256 {r['sha256']} (not pinned)" if r["status"] == "unpinned" else "")
            status = r["status"].upper() if r["status"] == "mismatch" else r["status"]
            print(f"{status:<9} {r['local'] or r['path']}{note}")
        counts = {s: sum(r["status"] == s for r in results) for s in ("ok", "mismatch", "unpinned", "missing")}
        print(", ".join(f"{n} {s}" for s, n in counts.items()))
    return 1 if any(r["status"] == "mismatch" for r in results) else 0


def _contamination(args: argparse.Namespace) -> int:
    train = load_dataset(args.train, data_dir=args.data_dir)
    evals = [load_dataset(n.strip(), data_dir=args.data_dir) for n in args.eval.split(",") if n.strip()]
    found = find_overlap(train, evals)
    summary = []
    for ev in evals:
        label = f"{ev.name}:{ev.split}"
        mine = [o for o in found if o.eval_set == label]
        summary.append({"eval": label, "eval_rows": len(ev), "exact": sum(o.match == "exact" for o in mine),
                        "normalised": sum(o.match == "normalised" for o in mine),
                        "train_examples": len({o.train_id for o in mine})})
    if args.json:
        print(json.dumps({"train": f"{train.name}:{train.split}", "train_rows": len(train), "summary": summary,
                          "overlaps": [o.__dict__ for o in found]}, indent=2, ensure_ascii=False))
    else:
        print(f"# train {train.name}:{train.split} ({len(train)} rows)")
        for s in summary:
            print(f"{s['eval']} ({s['eval_rows']} rows): {s['exact']} exact, {s['normalised']} normalised; "
                  f"{s['train_examples']} training examples affected")
        for o in found[: max(args.show, 0)]:
            print(f"  {o.match:<10} {o.train_id} ~ {o.eval_id}: {o.text[:100]!r}")
        if len(found) > args.show > 0:
            print(f"  ... {len(found) - args.show} more (--show N or --json)")
    return 1 if args.fail_on_overlap and found else 0
