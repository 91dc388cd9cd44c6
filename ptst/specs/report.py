"""The grid config's `report:` section (operational: it changes no result): its keys checked, and read back from a
run directory's grid.yaml by `ptst report`. A spec, below both the grid's config and the report, which import it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ptst.errors import PtstError
from ptst.io import not_utf8
from ptst.runs.layout import RunDir

KEYS = ("compare", "kappa_threshold")
ARROW = re.compile(r"->|→")

PathName = tuple[str, str]  # (train, test) of a frontier path; train as the report names rows (`chat:llama + safety`)


def parse_path(text: Any, where: str) -> PathName:
    """`TRAIN -> TEST` (or `TRAIN → TEST`) as (train, test); a PtstError naming `where` otherwise."""
    parts = ARROW.split(text) if isinstance(text, str) else []
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise PtstError(f"{where}: expected a path 'TRAIN -> TEST' with both sides named, got {text!r}")
    return parts[0].strip(), parts[1].strip()


def compare_pairs(value: Any) -> list[tuple[PathName, PathName]]:
    """`report.compare` checked and parsed: a list of two-element lists [A, B] of `TRAIN -> TEST` paths, each pair
    compared at equal helpfulness by the report's frontier section (ptst.report.strategies)."""
    if not isinstance(value, list):
        raise PtstError(f"report.compare must be a list of [A, B] pairs of 'TRAIN -> TEST' paths, got {value!r}")
    out = []
    for i, pair in enumerate(value):
        where = f"report.compare[{i}]"
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise PtstError(f"{where}: expected a two-element list [A, B] of 'TRAIN -> TEST' paths, got {pair!r}")
        a, b = parse_path(pair[0], f"{where}[0]"), parse_path(pair[1], f"{where}[1]")
        if a == b:
            raise PtstError(f"{where}: A and B are the same path {pair[0]!r}")
        out.append((a, b))
    return out


def check(report: Any) -> None:
    """One clear PtstError for a `report:` section this version cannot use."""
    if not isinstance(report, dict):
        raise PtstError(f"report must be a mapping (known keys: {', '.join(KEYS)}), got {report!r}")
    unknown = sorted(set(report) - set(KEYS))
    if unknown:
        raise PtstError(f"report: unknown key {unknown[0]!r} (known: {', '.join(KEYS)})")
    k = report.get("kappa_threshold", 0.6)
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not -1 <= k <= 1:
        raise PtstError(f"report.kappa_threshold must be a number in [-1, 1], got {k!r}")
    compare_pairs(report.get("compare", []))


def of_run(run_dir: str | Path | None) -> dict[str, Any]:
    """The `report:` mapping of a run directory's grid.yaml; {} when there is none or it cannot be read (a report
    of a bare directory of cells); one error line when it is not UTF-8 text. Editing it there is how a finished
    run's report is re-aimed."""
    import yaml

    if run_dir is None:
        return {}
    path = RunDir(Path(run_dir)).grid_yaml
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    except (OSError, yaml.YAMLError):
        return {}
    report = doc.get("report") if isinstance(doc, dict) else None
    return report if isinstance(report, dict) else {}
