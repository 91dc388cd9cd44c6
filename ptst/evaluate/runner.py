"""The evaluation stage's `run(cfg, out_dir)`: generate → judge → score for several sets, then one metrics.json."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ptst import __version__
from ptst.evaluate.key import EvalArtifact
from ptst.evaluate.kinds import KINDS, check_spec
from ptst.io import clear_stale_tmp, read_json, write_json_atomic
from ptst.runs.layout import EvalDir
from ptst.runs.results import Fingerprints, MetricsDoc, SetResult, metrics_from_json
from ptst.specs.eval import EvalConfig


class _LazyBackend:
    """Loads the model only when some generation is actually pending, then reuses it across eval sets."""

    name = "lazy"

    def __init__(self, gcfg: Any) -> None:
        self._gcfg = gcfg
        self._backend: Any = None

    def generate(self, items: Any, decoding: Any, on_done: Any = None) -> Any:
        if self._backend is None:
            from ptst.generate.backends import BACKENDS
            from ptst.models import load_tokenizer

            spec = BACKENDS.get(self._gcfg.backend)
            tok = load_tokenizer(self._gcfg.model) if spec.needs_model else None
            self._backend = spec.build(self._gcfg, tok, True)
        return self._backend.generate(items, decoding, on_done=on_done)


def run(cfg: EvalConfig, out_dir: str | Path) -> Path:
    """Evaluate one cell into out_dir; metrics.json (written last) is the done marker. Returns its path."""
    from ptst.generate.runner import load_examples
    from ptst.generate.runner import run as generate
    from ptst.generate.store import meta_path

    out = Path(out_dir)
    cell = EvalDir(out)
    artifact = EvalArtifact(cell, cfg)
    if artifact.state().done:
        print(f"{out}: already evaluated (same key); nothing to do", file=sys.stderr)
        return cell.metrics
    key, key_hash, jkeys = artifact.parts, artifact.key(), artifact.judge_keys
    specs = [e.resolved() for e in cfg.evals]
    for spec in specs:
        check_spec(spec, f"eval {spec.label}")
    gcfgs = [cfg.generate_config(spec) for spec in specs]
    sets = [load_examples(gcfg) for gcfg in gcfgs]  # every input read (and checked) before anything is written
    clear_stale_tmp(out)  # a cell is evaluated by one process at a time: leftovers are a killed run's
    write_json_atomic(cell.manifest, {**key, "ptst_version": __version__})
    backend = _LazyBackend(gcfgs[0])
    evals: dict[str, SetResult] = {}
    fingerprint = None
    for spec, gcfg, ds in zip(specs, gcfgs, sets, strict=True):
        # The generations file may also hold answers for ids outside this sample (an earlier, larger --limit):
        # judge and score exactly this sample's ids.
        ids = [ex.id for ex in ds.examples]
        gpath = generate(gcfg, cell.generations(spec.label), dataset=ds, backend=backend)
        gmeta = read_json(meta_path(gpath))
        fingerprint = gmeta.get("key", {}).get("template_fingerprint", fingerprint)
        body = KINDS[str(spec.kind)](cfg, spec, gpath, cell, ids)
        cats = body.get("by_category")
        evals[spec.label] = SetResult(
            kind=str(spec.kind), data=spec.data, split=spec.split,
            data_sha256=gmeta.get("key", {}).get("data", {}).get("sha256"), n=len(ids),
            metrics=metrics_from_json(body["metrics"]),
            by_category=None if cats is None else {m: metrics_from_json(per) for m, per in cats.items()},
            judge_agreement=body.get("judge_agreement"))
    doc = MetricsDoc(ptst_version=__version__, cell=cfg.cell or {"test_template": cfg.template}, key=key_hash,
                     model=key["model"], adapter_hash=key["adapter_hash"],
                     template_fingerprints=Fingerprints(train=cfg.cell.get("train_fingerprint"), test=fingerprint),
                     judges=key["judges"], judge_keys=jkeys, evals=evals)
    return write_json_atomic(cell.metrics, doc.to_dict())


