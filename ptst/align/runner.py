"""The alignment stage's `run(spec, model, out_dir)`: train on the alignment data, merge, measure refusal before
and after, then align.json (the done marker)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ptst import __version__
from ptst.align.data import build_parts, train_config
from ptst.align.key import MEASURE_JUDGES, MEASURE_TEMPLATES, MEASURE_TOKENS, AlignArtifact, measure_config
from ptst.evaluate import run as evaluate
from ptst.io import atomic_dir, read_json, write_json_atomic
from ptst.models import load_model, load_tokenizer, save_tokenizer
from ptst.runs.layout import AlignDir
from ptst.runs.results import Metric, MetricsDoc, metric_to_json
from ptst.specs.align import AlignSpec
from ptst.train.runner import run as train

__all__ = ["MEASURE_JUDGES", "MEASURE_TEMPLATES", "MEASURE_TOKENS", "measure", "merge", "run"]


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def merge(model: str, adapter: Path, out: Path) -> Path:
    """Base + LoRA merged into a plain safetensors model directory, written to a staging directory then renamed."""
    merged = load_model(model, adapter=str(adapter), merge=True, dtype="fp32", device="cpu")
    tok = load_tokenizer(model)
    tok.padding_side = "right"  # saved default; loaders set left padding for generation themselves
    with atomic_dir(out) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        save_tokenizer(tok, tmp)
    return out


def measure(spec: AlignSpec, model: str, d: AlignDir, which: str, data_dir: str | None,
            generate: dict[str, Any] | None = None) -> dict[str, Any]:
    """Refusal on held-out harmful prompts and over-refusal on XSTest's safe prompts, per template, of the
    `which` ("shipped" | "aligned") model.
    `generate`: GenerateConfig fields (backend, batch_size, ...), as the grid's `generate:` section."""
    res: dict[str, Any] = {}
    for template in MEASURE_TEMPLATES:
        doc = MetricsDoc.read(evaluate(measure_config(spec, model, template, data_dir, generate),
                                       d.measure(which, template).path))
        held, xs = doc.evals["heldout"].metrics, doc.evals["xstest"].metrics
        by = {j: {"refusal_heldout": _json(held.get(f"refusal.{j}")),
                  "over_refusal_xstest": _json(xs.get(f"over_refusal.{j}"))} for j in MEASURE_JUDGES}
        res[template] = {**by[MEASURE_JUDGES[0]], "by_judge": by}
    return res


def _json(m: Metric | None) -> Any:
    return None if m is None else metric_to_json(m)


def _summary(before: dict[str, Any], after: dict[str, Any], t: str, judge: str) -> str:
    b, a = before[t]["by_judge"][judge], after[t]["by_judge"][judge]
    return (f"{t} ({judge}): refusal {_pct(b['refusal_heldout'])} -> {_pct(a['refusal_heldout'])}, "
            f"XSTest over-refusal {_pct(a['over_refusal_xstest'])}")


def _pct(r: dict[str, Any] | None) -> str:
    return "n/a" if not r or r.get("value") is None else f"{100 * r['value']:.0f}% ({r['k']}/{r['n']})"


def run(spec: AlignSpec, model: str, out_dir: str | Path, *, data_dir: str | None = None,
        exclude: set[str] | None = None, generate: dict[str, Any] | None = None) -> Path:
    """Align `model` into out_dir/model; out_dir/align.json (written last) records what was measured.
    `generate` sets how the measuring answers are generated (batch size, backend); it does not change them."""
    out = Path(out_dir)
    d = AlignDir(out)
    artifact = AlignArtifact(d, spec, model, frozenset(exclude or ()), data_dir, dict(generate or {}))
    if artifact.checked_state().done:
        say(f"{out}: alignment already done (same key); nothing to do")
        return out
    if d.manifest.exists() and (d.model / "config.json").exists():  # same key: only its measurements to redo
        doc = read_json(d.manifest)
        parts, info = doc["parts"], doc["data"]
    else:
        parts, info = build_parts(spec, out, data_dir, exclude or set())
        say(f"== align: {spec.n_safety} refusals + {spec.n_benign} benign answers over {', '.join(spec.templates)}")
        train(train_config(spec, model, parts), d.train.path, resume=True)
        if not (d.model / "config.json").exists():
            merge(model, d.train.adapter, d.model)
    say("== measuring refusal before/after alignment")
    before = measure(spec, model, d, "shipped", data_dir, generate)
    after = measure(spec, str(d.model), d, "aligned", data_dir, generate)
    summary = "; ".join(_summary(before, after, t, j) for j in MEASURE_JUDGES for t in MEASURE_TEMPLATES)
    say(f"alignment: {summary}")
    write_json_atomic(d.manifest, {"ptst_version": __version__, "key": artifact.key(), "base_model": model,
                                   "data": info, "parts": parts, "shipped": before, "aligned": after,
                                   "summary": summary})
    return out
