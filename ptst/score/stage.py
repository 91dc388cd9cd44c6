"""The score stage's `run`: one generations file scored by one registered scorer into a metrics JSON."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from ptst.errors import PtstError
from ptst.io import sha256_file, stable_hash, write_json_atomic
from ptst.records import Generation, read_generations, select_ids
from ptst.score.base import SCORERS, ScoreConfig


def _provenance(gens: Sequence[Generation]) -> dict[str, Any]:
    def uniq(vals: Any) -> list[Any]:
        return sorted({v for v in vals if v}, key=str)

    return {"models": uniq(g.model for g in gens), "templates": uniq(g.template for g in gens),
            "template_fingerprints": uniq(g.template_fingerprint for g in gens),
            "adapter_hashes": uniq(g.adapter_hash for g in gens),
            "decoding_keys": uniq(stable_hash(g.decoding)[:16] for g in gens if g.decoding)}


def default_out(generations_path: str | Path, scorer: str) -> Path:
    p = Path(generations_path)
    if p.parent.name == "generations":
        return p.parent.parent / "metrics" / f"{p.stem}.{scorer}.json"
    return p.with_name(f"{p.stem}.{scorer}.metrics.json")


def run(cfg: ScoreConfig, generations_path: str | Path, out_path: str | Path | None = None, *,
        ids: Collection[str] | None = None) -> Path:
    """Score one generations file (only the records of `ids`, when given: `ptst eval` passes its sample's ids)
    and write the metrics JSON atomically; returns its path."""
    spec = SCORERS.get(cfg.scorer)
    every = read_generations(generations_path)
    gens = select_ids(every, ids, generations_path)
    if not gens:
        raise PtstError(f"{generations_path}: no generations to score")
    result = spec.fn(gens, cfg)
    source: dict[str, Any] = {"path": str(generations_path), "sha256": sha256_file(generations_path), "n": len(gens)}
    if ids is not None:
        source["n_in_file"] = len(every)
    doc = {"scorer": cfg.scorer, "scorer_version": spec.version, "generations": source,
           "provenance": _provenance(gens), **result}
    for name in ("judgements", "baseline"):
        src = getattr(cfg, name)
        if src:
            doc.setdefault("inputs", {})[name] = {"path": str(src), "sha256": sha256_file(src)}
    return write_json_atomic(Path(out_path) if out_path else default_out(generations_path, cfg.scorer), doc)
