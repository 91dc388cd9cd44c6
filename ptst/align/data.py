"""The alignment's data: decontaminated refusals and benign answers, split over the templates, and its TrainConfig."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from ptst.config import from_dict
from ptst.data import Dataset, load_dataset, remove_overlap
from ptst.errors import PtstError
from ptst.runs.layout import AlignDir
from ptst.specs.align import AlignSpec
from ptst.specs.train import TrainConfig


def _pick(ds: Any, n: int, exclude: set[str], seed: int) -> list[Any]:
    pool = [e for e in ds.examples if e.id not in exclude]
    if len(pool) < n:
        raise PtstError(f"alignment wants {n} examples of {ds.name} but only {len(pool)} remain after "
                        "decontamination and exclusions")
    rng = random.Random(seed)
    return rng.sample(pool, n)


def build_parts(spec: AlignSpec, out: Path, data_dir: str | None, exclude: set[str]) -> tuple[list[Any], dict]:
    """Decontaminated safety + benign examples, split round-robin over the templates into JSONL parts."""
    safety = load_dataset(spec.safety, data_dir=data_dir)
    benign = load_dataset(spec.benign, spec.benign_split, data_dir=data_dir)
    evals = [load_dataset(name, data_dir=data_dir) for name in spec.decontaminate]
    if spec.heldout not in spec.decontaminate:
        evals.append(load_dataset(spec.heldout, data_dir=data_dir))
    safety, n_s = remove_overlap(safety, evals)
    benign, n_b = remove_overlap(benign, evals)
    chosen = _pick(safety, spec.n_safety, exclude, 1) + _pick(benign, spec.n_benign, exclude, 2)
    random.Random(3).shuffle(chosen)
    parts = []
    for i, template in enumerate(spec.templates):
        rows = tuple(chosen[i:: len(spec.templates)])
        part = Dataset(name=f"align-{i}", split="train", examples=rows, sha256="", licence="", non_commercial=True,
                       source="ptst align")
        path = part.to_jsonl(AlignDir(out).part(i))
        parts.append({"data": f"jsonl:{path.resolve()}", "template": template, "n": len(rows)})
    info = {"safety": {"name": safety.name, "sha256": safety.sha256, "removed_as_eval_duplicates": n_s,
                       "used": spec.n_safety},
            "benign": {"name": benign.name, "sha256": benign.sha256, "removed_as_eval_duplicates": n_b,
                       "used": spec.n_benign, "excluded_fine_tuning_rows": len(exclude)},
            "decontaminated_against": sorted({d.name for d in evals})}
    return parts, info


def train_config(spec: AlignSpec, model: str, parts: list[dict[str, Any]]) -> TrainConfig:
    d: dict[str, Any] = {"epochs": 1, "lr": 1e-4, "batch_size": 8, "lora": {"r": 16, "alpha": 32,
                         "targets": ["all-linear"]}, **spec.train}
    d.update(model=model, data=parts[0]["data"], template=parts[0]["template"],
             mix=[{"data": p["data"], "n": p["n"], "template": p["template"]} for p in parts[1:]])
    return from_dict(TrainConfig, d, "align.train")
