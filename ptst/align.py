"""The alignment stage (`ptst align`): safety-tune an unaligned small model so the PTST effect can be studied."""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ptst import __version__
from ptst.config import from_dict
from ptst.errors import PtstError
from ptst.io import read_json, stable_hash, write_json_atomic
from ptst.runs.layout import AlignDir
from ptst.runs.state import State, Status
from ptst.specs.align import AlignSpec
from ptst.specs.eval import EvalConfig, EvalSpec

# What the alignment is measured under: no system prompt and the Llama-2 safety prompt.
MEASURE_TEMPLATES = ("chat:vanilla", "chat:llama")
MEASURE_TOKENS = 32  # new tokens per measured answer: a refusal shows in its first sentence
# Refusal judges for the measurements: keyword first (the fields before `by_judge`, as before), then XSTest's own
# string match, which agrees best with XSTest's human labels (kappa 0.77 vs 0.67 on 2,250 answers; docs/judging.md)
MEASURE_JUDGES = ("keyword", "xstest-strmatch")


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _pick(ds: Any, n: int, exclude: set[str], seed: int) -> list[Any]:
    pool = [e for e in ds.examples if e.id not in exclude]
    if len(pool) < n:
        raise PtstError(f"alignment wants {n} examples of {ds.name} but only {len(pool)} remain after "
                        "decontamination and exclusions")
    rng = random.Random(seed)
    return rng.sample(pool, n)


def build_parts(spec: AlignSpec, out: Path, data_dir: str | None, exclude: set[str]) -> tuple[list[Any], dict]:
    """Decontaminated safety + benign examples, split round-robin over the templates into JSONL parts."""
    from ptst.data import Dataset, load_dataset, remove_overlap

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


def train_config(spec: AlignSpec, model: str, parts: list[dict[str, Any]]) -> Any:
    from ptst.specs.train import TrainConfig

    d: dict[str, Any] = {"epochs": 1, "lr": 1e-4, "batch_size": 8, "lora": {"r": 16, "alpha": 32,
                         "targets": ["all-linear"]}, **spec.train}
    d.update(model=model, data=parts[0]["data"], template=parts[0]["template"],
             mix=[{"data": p["data"], "n": p["n"], "template": p["template"]} for p in parts[1:]])
    return from_dict(TrainConfig, d, "align.train")


def merge(model: str, adapter: Path, out: Path) -> Path:
    """Base + LoRA merged into a plain safetensors model directory, written to a temp dir then renamed."""
    from ptst.models import load_model, load_tokenizer, save_tokenizer

    for stale in out.parent.glob(f"{out.name}.tmp*"):  # left by a merge killed mid-save (another pid)
        shutil.rmtree(stale, ignore_errors=True)
    merged = load_model(model, adapter=str(adapter), merge=True, dtype="fp32", device="cpu")
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    merged.save_pretrained(tmp, safe_serialization=True)
    tok = load_tokenizer(model)
    tok.padding_side = "right"  # saved default; loaders set left padding for generation themselves
    save_tokenizer(tok, tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def measure(spec: AlignSpec, model: str, d: AlignDir, which: str, data_dir: str | None,
            generate: dict[str, Any] | None = None) -> dict[str, Any]:
    """Refusal on held-out harmful prompts and over-refusal on XSTest's safe prompts, per template, of the
    `which` ("shipped" | "aligned") model.
    `generate`: GenerateConfig fields (backend, batch_size, ...), as the grid's `generate:` section."""
    from ptst.evaluate import run as evaluate

    evals = [EvalSpec(spec.heldout, kind="safety", limit=spec.heldout_limit, name="heldout",
                      max_new_tokens=MEASURE_TOKENS),
             EvalSpec(spec.overrefusal, kind="over-refusal", limit=spec.overrefusal_limit, name="xstest",
                      max_new_tokens=MEASURE_TOKENS)]
    res: dict[str, Any] = {}
    for template in MEASURE_TEMPLATES:
        doc = read_json(evaluate(EvalConfig(model=model, template=template, evals=evals, data_dir=data_dir,
                                            decoding={"max_new_tokens": 64}, generate=dict(generate or {}),
                                            judges=list(MEASURE_JUDGES)),
                                 d.measure(which, template).path))
        ev = doc["evals"]
        by = {j: {"refusal_heldout": ev["heldout"]["metrics"].get(f"refusal.{j}"),
                  "over_refusal_xstest": ev["xstest"]["metrics"].get(f"over_refusal.{j}")} for j in MEASURE_JUDGES}
        res[template] = {**by[MEASURE_JUDGES[0]], "by_judge": by}
    return res


def _summary(before: dict[str, Any], after: dict[str, Any], t: str, judge: str) -> str:
    b, a = before[t]["by_judge"][judge], after[t]["by_judge"][judge]
    return (f"{t} ({judge}): refusal {_pct(b['refusal_heldout'])} -> {_pct(a['refusal_heldout'])}, "
            f"XSTest over-refusal {_pct(a['over_refusal_xstest'])}")


def _pct(r: dict[str, Any] | None) -> str:
    return "n/a" if not r or r.get("value") is None else f"{100 * r['value']:.0f}% ({r['k']}/{r['n']})"


def align_key(spec: AlignSpec, model: str, exclude: set[str] | None = None) -> str:
    """What identifies an alignment: its spec, the base model and the fine-tuning rows kept out of its data."""
    from ptst.models import model_id

    return stable_hash({"spec": vars(spec), "model": model_id(model), "exclude": sorted(exclude or ())})


@dataclass(frozen=True)
class AlignArtifact:
    """An alignment directory for one AlignSpec, base model and set of fine-tuning rows kept out of its data.
    align.json, written last, carries the key; a directory made with another key is refused."""

    dir: AlignDir
    spec: AlignSpec
    model: str
    exclude: frozenset[str] = frozenset()
    on_different: ClassVar[str] = "refused: use another run directory"

    @property
    def path(self) -> Path:
        return self.dir.path

    def key(self) -> str:
        return align_key(self.spec, self.model, set(self.exclude))

    def state(self) -> Status:
        d = self.dir
        if d.manifest.exists():
            if read_json(d.manifest).get("key") != self.key():
                return Status(State.DIFFERENT, "made with a different align: section, base model or fine-tuning data")
            return Status(State.DONE) if (d.model / "config.json").exists() else Status(State.PARTIAL, "no model/")
        started = [p.name for p in (d.data_dir, d.train.path, d.model) if p.exists()]
        return Status(State.PARTIAL, ", ".join(started) + " written") if started else Status(State.NEW)

    def checked_state(self) -> Status:
        """state(), refusing an alignment made with another key (`ptst align` and `ptst run` alike)."""
        status = self.state()
        if status.state is State.DIFFERENT:
            raise PtstError(f"{self.path} holds an alignment made with a different config ({status.detail}); use "
                            "another directory (ptst run: another --out)")
        return status


def run(spec: AlignSpec, model: str, out_dir: str | Path, *, data_dir: str | None = None,
        exclude: set[str] | None = None, generate: dict[str, Any] | None = None) -> Path:
    """Align `model` into out_dir/model; out_dir/align.json (written last) records what was measured.
    `generate` sets how the measuring answers are generated (batch size, backend); it does not change them."""
    from ptst.train.runner import run as train

    out = Path(out_dir)
    d = AlignDir(out)
    artifact = AlignArtifact(d, spec, model, frozenset(exclude or ()))
    if artifact.checked_state().done:
        say(f"{out}: alignment already done (same key); nothing to do")
        return out
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


# ---- CLI: `ptst align` ----

def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="the model to align (HF id, directory, .gguf, alias)")
    p.add_argument("--out", required=True, help="output directory (model/ = the aligned model)")
    p.add_argument("--config", help="YAML with AlignSpec keys (safety, n_safety, benign, n_benign, templates, train)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override AlignSpec keys, e.g. n_safety=200")
    p.add_argument("--data-dir", help="data directory (default: $PTST_DATA_DIR, then the cache)")
    p.add_argument("--batch-size", type=int, help="prompts per generation batch when measuring refusal "
                   "(default 16; larger is faster on a CPU)")


def cli(args: argparse.Namespace) -> int:
    from ptst.config import load_config

    spec = load_config(AlignSpec, args.config, args.overrides)
    gen = {"batch_size": args.batch_size} if args.batch_size else None
    out = run(spec, args.model, args.out, data_dir=args.data_dir, generate=gen)
    print(read_json(AlignDir(out).manifest)["summary"])
    print(f"aligned model: {AlignDir(out).model}")
    return 0

