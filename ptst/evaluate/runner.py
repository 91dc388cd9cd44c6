"""The evaluation stage's `run(cfg, out_dir)`: generate → judge → score for several sets, then one metrics.json."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ptst import __version__
from ptst.errors import PtstError
from ptst.evaluate.key import EvalArtifact, judgement_stamp
from ptst.evaluate.kinds import KINDS, check_spec
from ptst.generate.backends import BACKENDS
from ptst.generate.runner import check_adapter_base, load_examples
from ptst.generate.runner import run as generate
from ptst.generate.store import meta_path
from ptst.io import clear_stale_tmp, read_json, write_json_atomic
from ptst.judge import build_judge
from ptst.models import load_tokenizer
from ptst.runs.keys import KEY_SCHEME, CellInputs, SetInputs, judge_files, set_files
from ptst.runs.layout import EvalDir
from ptst.runs.results import Fingerprints, MetricsDoc, SetResult, metrics_from_json
from ptst.runs.supersede import supersede
from ptst.specs.eval import EvalConfig


class _LazyBackend:
    """Loads the model only when some generation is actually pending, then reuses it across eval sets."""

    name = "lazy"

    def __init__(self, gcfg: Any) -> None:
        self._gcfg = gcfg
        self._backend: Any = None

    def prepare(self) -> Any:
        """The real backend, built on first use (`ptst.generate.run` calls this before it starts its clock)."""
        if self._backend is None:
            spec = BACKENDS.get(self._gcfg.backend)
            tok = load_tokenizer(self._gcfg.model) if spec.needs_model else None
            self._backend = spec.build(self._gcfg, tok, True)
        return self._backend

    def generate(self, items: Any, decoding: Any, on_done: Any = None) -> Any:
        return self.prepare().generate(items, decoding, on_done=on_done)


def _describe(cfg: EvalConfig, inputs: CellInputs, versions: dict[str, str]) -> dict[str, Any]:
    """eval.json: the cell's key and inputs, with the config's names beside them (what the report shows)."""
    first = inputs.sets[0].generation
    return {"key_scheme": KEY_SCHEME, "key": inputs.key(), "model": first.get("model"),
            "adapter_hash": first.get("adapter_hash"), "template": cfg.template,
            "evals": [vars(e.resolved()) for e in cfg.evals], "decoding": cfg.decoding, "generate": cfg.generate,
            "seed": cfg.seed, "judges": versions,
            "inputs": inputs.to_dict(), "ptst_version": __version__}


def _stale_on_disk(cell: EvalDir, s: SetInputs) -> list[tuple[list[Path], str]]:
    """Files of one set whose recorded key is not today's (an interrupted recompute, a cell made before key
    scheme 2): answers of another key (and everything judged or scored from them), verdicts of another judge
    setting or of other answers."""
    gmeta = meta_path(cell.generations(s.label))
    if gmeta.exists() and read_json(gmeta).get("key") != s.generation:
        return [(set_files(cell, s.label), "answers made under another key")]
    out = []
    for j in s.judges:
        stamp = judgement_stamp(cell.judgements(s.label, j))
        if stamp is not None and (stamp[0] != s.judges[j] or stamp[1] not in (None, s.generation_key)):
            out.append((judge_files(cell, s.label, j), f"verdicts of judge {j} made under another key"))
    return out


def _supersede(cell: EvalDir, stale: list[tuple[list[Path], str]]) -> None:
    files = [f for paths, _ in stale for f in paths]
    moved = supersede(cell.path, cell.superseded_dir, files, [why for _, why in stale])
    if moved is not None:
        for paths, why in stale:
            rel = [p.relative_to(cell.path) for p in paths]
            names = ", ".join(str(r) for r in rel if (moved / r).exists())
            if names:
                print(f"{cell.path}: {why}: moved {names} to {moved.relative_to(cell.path)}/", file=sys.stderr)


def run(cfg: EvalConfig, out_dir: str | Path) -> Path:
    """Evaluate one cell into out_dir; metrics.json (written last) is the done marker. Returns its path.

    A finished cell whose inputs changed is recomputed: metrics.json and every file the change made stale are
    moved to superseded/STAMP/ first (with why.txt), so no number outlives what made it."""
    out = Path(out_dir)
    cell = EvalDir(out)
    if cfg.adapter:  # an adapter on another base is refused before a tokenizer loads or a file is written
        check_adapter_base(cfg.adapter, cfg.model)
    artifact = EvalArtifact(cell, cfg)
    found = artifact.changes()  # what a finished cell's inputs changed in (read once: the state and the stale files)
    if cell.metrics.exists() and not found:
        print(f"{out}: already evaluated (same key); nothing to do", file=sys.stderr)
        return cell.metrics
    versions = {j: build_judge(cfg.judge_config(j)).version for j in cfg.judges}  # an unknown judge: one line
    specs = [e.resolved() for e in cfg.evals]
    for spec in specs:
        check_spec(spec, f"eval {spec.label}")
    gcfgs = [cfg.generate_config(spec) for spec in specs]
    sets = [load_examples(gcfg) for gcfg in gcfgs]  # every input read (and checked) before anything is written
    inputs = artifact.inputs
    clear_stale_tmp(out)  # a cell is evaluated by one process at a time: leftovers are a killed run's
    if found:
        _supersede(cell, [([cell.metrics, cell.manifest], "the finished cell's inputs changed")]
                   + [(list(c.stale), c.why) for c in found])
    for s in inputs.sets:
        _supersede(cell, _stale_on_disk(cell, s))
    write_json_atomic(cell.manifest, _describe(cfg, inputs, versions))
    backend = _LazyBackend(gcfgs[0])
    evals: dict[str, SetResult] = {}
    for spec, gcfg, ds, s in zip(specs, gcfgs, sets, inputs.sets, strict=True):
        # The generations file may also hold answers for ids outside this sample (an earlier, larger --limit):
        # judge and score exactly this sample's ids.
        ids = [ex.id for ex in ds.examples]
        made = generate(gcfg, cell.generations(spec.label), dataset=ds, backend=backend)
        if made.key != s.generation:
            raise PtstError(f"{made.path}: the answers' key is not the one this cell computed (a ptst bug)")
        body = KINDS[str(spec.kind)](cfg, spec, made.path, cell, ids, made.key_sha256)
        cats = body.get("by_category")
        evals[spec.label] = SetResult(
            kind=str(spec.kind), data=spec.data, split=spec.split, data_sha256=s.generation["data"]["sha256"],
            n=len(ids), metrics=metrics_from_json(body["metrics"]),
            by_category=None if cats is None else {m: metrics_from_json(per) for m, per in cats.items()},
            judge_agreement=body.get("judge_agreement"))
    first = inputs.sets[0]
    doc = MetricsDoc(ptst_version=__version__, cell=cfg.cell or {"test_template": cfg.template}, key=inputs.key(),
                     model=first.generation["model"], adapter_hash=first.generation["adapter_hash"],
                     template_fingerprints=Fingerprints(train=cfg.cell.get("train_fingerprint"),
                                                        test=first.generation["template_fingerprint"]),
                     judges=versions,
                     judge_keys={j: k for s in inputs.sets for j, k in s.judges.items()}, evals=evals,
                     key_scheme=KEY_SCHEME, inputs=inputs.to_dict())
    return write_json_atomic(cell.metrics, doc.to_dict())
