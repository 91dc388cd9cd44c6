"""`ptst judge validate`: judges against human labels, printed as a table and written as JSON."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ptst.errors import PtstError
from ptst.io import write_json_atomic
from ptst.judge.base import JUDGES, JudgeConfig, build_judge, judge_names, labels_refusals, refusal_judge_names
from ptst.judge.options import add_judge_options, judge_overrides
from ptst.judge.validate import VSETS, answers, save_results, validate_set


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--judge", dest="judges", action="append", required=True, metavar="NAME",
                   help=f"judge to validate (repeat): {', '.join(judge_names())}")
    p.add_argument("--set", dest="sets", action="append", choices=VSETS.names(), metavar="SET",
                   help=f"human-labelled set (repeat; default all): {', '.join(VSETS.names())}")
    p.add_argument("--partial", default="refusal", choices=("refusal", "compliance"),
                   help="XSTest's 3_partial_refusal counts as a refusal (default) or as compliance")
    p.add_argument("--file", metavar="PATH", help="your own human-labelled file in the format of the one --set "
                   "(columns as the registered set's); not checked against a pinned sha256, not cached")
    p.add_argument("--limit", type=int, metavar="N", help="a seeded sample of N answers per set (costly judges)")
    p.add_argument("--data-dir", help="data directory (default: $PTST_DATA_DIR, then the cache)")
    p.add_argument("--out", metavar="FILE", help="write every figure as JSON here too")
    p.add_argument("--json", action="store_true", help="print the JSON instead of the table")
    p.add_argument("--all-subsets", action="store_true",
                   help="print every subset (per model x safe/unsafe, human agreement); JSON always has them")
    p.add_argument("--no-save", action="store_true", help="do not store results under $PTST_CACHE_DIR/judge-validation")
    add_judge_options(p)


def _pct(r: dict[str, Any]) -> str:
    if r.get("value") is None:
        return "n/a"
    return f"{100 * r['value']:.1f} [{100 * r['low']:.1f}, {100 * r['high']:.1f}]"


def _kappa(k: dict[str, Any]) -> str:
    if k.get("value") is None:
        return "n/a"
    return f"{k['value']:.3f} [{k['low']:.3f}, {k['high']:.3f}]"


def _shown(subset: str, prefixes: tuple[str, ...], every: bool) -> bool:
    if every:
        return True
    return any(subset == p or (p.endswith(":") and subset.startswith(p) and "/" not in subset)
               or (p.endswith("-") and subset.startswith(p)) for p in prefixes)


def table(res: dict[str, Any], every: bool = False) -> str:
    """One set's figures as a fixed-width table, then the inter-annotator agreement beneath."""
    prefixes = VSETS.get(res["set"]).table_subsets
    head = ("judge", "subset", "n", "judge rate %", "human rate %", "agreement %", "kappa [95%]", "FPR %", "FNR %")
    rows: list[tuple[str, ...]] = []
    for r in res["judges"]:
        name = r["judge"] + (" (stored)" if r["stored"] else "")
        for s, f in r["subsets"].items():
            if _shown(s, prefixes, every):
                n = str(f["n"]) + (f" (+{f['unscored']} unscored)" if f["unscored"] else "")
                rows.append((name, s, n, _pct(f["rate_a"]), _pct(f["rate_b"]), _pct(f["agreement"]),
                             _kappa(f["kappa"]), _pct(f["fpr"]), _pct(f["fnr"])))
    widths = [max(len(x[i]) for x in (head, *rows)) for i in range(len(head))]
    line = "  ".join
    out = [f"{res['set']} ({answers(res)}, sha256 {str(res['data'].get('sha256'))[:12]}…): positive = "
           f"{res['positive']}; humans: {res['human_rule']}"]
    if res["partial"]:
        out[0] += f" (partial counted as {res['partial']})"
    out += [line(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip(), line("-" * w for w in widths)]
    out += [line(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    hum = "; ".join(f"{pair} kappa {_kappa(f['kappa'])}, agreement {_pct(f['agreement'])}"
                    for pair, f in res["humans"].items())
    if hum:
        out.append(f"humans among themselves: {hum}")
    out += [f"not validated here: {s}" for s in res["skipped"]]
    return "\n".join(out)


def cli(args: argparse.Namespace) -> int:
    sets = list(dict.fromkeys(args.sets or VSETS.names()))
    if args.file and len(sets) != 1:
        raise PtstError(f"--file needs exactly one --set naming its format ({' or '.join(VSETS.names())})")
    if args.limit is not None and args.limit < 1:
        raise PtstError("--limit must be >= 1")
    for name in args.judges:
        JUDGES.get(name)  # an unknown name fails here, before any data is read
    overrides = judge_overrides(args)
    judges = [build_judge(JudgeConfig(judge=name, **overrides)) for name in dict.fromkeys(args.judges)]
    t0 = time.perf_counter()
    results = []
    for s in sets:
        vset = VSETS.get(s)
        if vset.positive == "refusal" and len(sets) == 1 and not any(labels_refusals(j.name) for j in judges):
            raise PtstError(f"{s} measures refusal judges; none of {', '.join(args.judges)} labels refusals "
                            f"({', '.join(refusal_judge_names())} do)")
        results.append(validate_set(vset, judges, partial=args.partial, file=args.file, data_dir=args.data_dir,
                                    limit=args.limit))
    seconds = time.perf_counter() - t0
    doc = {"seconds": round(seconds, 3), "results": results}
    if args.out:
        write_json_atomic(args.out, doc)
    saved = [] if args.no_save else save_results(results)
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        print("\n\n".join(table(r, args.all_subsets) for r in results))
        print(f"\n{seconds:.1f} s; rates with 95% Wilson intervals, kappa with its asymptotic 95% interval "
              "(docs/judging.md)")
    where = ([args.out] if args.out else []) + ([f"{len(saved)} file(s) in {saved[0].parent}"] if saved else [])
    if where:
        print(f"results: {', '.join(str(w) for w in where)}", file=sys.stderr)
    return 0
