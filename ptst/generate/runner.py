"""`run(cfg, out_path)`: answer a data set under a test template and write resumable Generation records."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, Protocol

from ptst import __version__
from ptst.adapters import adapter_base
from ptst.data import load_dataset
from ptst.data.load import DataIdentity
from ptst.errors import PtstError
from ptst.generate.backends import BACKENDS
from ptst.generate.base import Backend, Completion, PromptItem
from ptst.generate.key import generation_key
from ptst.generate.store import GenerationsFile, finalize, meta_path, open_for_resume, write_meta
from ptst.io import JsonlAppender
from ptst.models import ALIASES, BASE_RECORD, base_identity, load_tokenizer, materialize, resolve
from ptst.records import Example, Generation
from ptst.runtime import cpu
from ptst.specs.generate import GenerateConfig
from ptst.templates import Template, get_template, render


class DatasetLike(Protocol):
    """What the generation stage reads from a loaded data set (ptst.data.Dataset has it)."""

    @property
    def name(self) -> str: ...

    @property
    def split(self) -> str | None: ...

    @property
    def sha256(self) -> str: ...

    @property
    def examples(self) -> Sequence[Example]: ...


def say(msg: str) -> None:
    print(f"ptst generate: {msg}", file=sys.stderr)


def load_examples(cfg: GenerateConfig) -> DatasetLike:
    ds: DatasetLike = load_dataset(cfg.data, cfg.split, data_dir=cfg.data_dir, limit=cfg.limit, seed=cfg.seed)
    return ds


def _norm_ref(p: str) -> str:
    return str(Path(p).expanduser().resolve()) if Path(p).expanduser().exists() else p.rstrip("/").lower()


def _arch(cfg_dir: str) -> dict[str, Any] | None:
    f = Path(cfg_dir) / "config.json"
    if not f.is_file():
        return None
    c = json.loads(f.read_text())
    return {k: c.get(k) for k in ("model_type", "hidden_size", "num_hidden_layers", "vocab_size")}


def recorded_base(adapter: str | Path) -> tuple[str, str] | None:
    """(content identity, the model as given to training) of the base `adapter` was trained on: its
    ptst_base.json, else the spec.json of the ptst training run it sits in (RUN/adapter/ or
    RUN/checkpoints/step-N/adapter/). None for an adapter from an older ptst or another tool."""
    a = Path(adapter).expanduser().resolve()
    record = a / BASE_RECORD
    if record.is_file():
        doc = _read_json(record)
        if not isinstance(doc, dict) or not isinstance(doc.get("base_model_id"), str):
            raise PtstError(f"{record} is not a ptst base record (no base_model_id): delete it to check the adapter "
                            "by the base model name in adapter_config.json instead")
        return doc["base_model_id"], str(doc.get("base_model") or doc["base_model_id"])
    in_ckpt = re.fullmatch(r"step-\d+", a.parent.name) and a.parent.parent.name == "checkpoints"
    spec = (a.parents[2] if in_ckpt else a.parent) / "spec.json"
    doc = _read_json(spec) if a.name == "adapter" and spec.is_file() else None
    if not isinstance(doc, dict) or doc.get("kind") != "ptst.train" or doc.get("method") != "lora":
        return None
    ident, given = doc.get("base_model_id"), doc.get("base_model")
    if not isinstance(ident, str) or not ident:
        return None
    if ident in ALIASES:  # spec.json records an alias by its name (model_id): the content is its GGUF file's
        with suppress(PtstError):
            ident = base_identity(ident)
    return ident, str(given or ident)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        if path.name == "spec.json":
            return None  # only a fallback: the name check decides
        raise PtstError(f"{path} is not readable JSON ({e})") from None


def _is_content(ident: str) -> bool:
    return ident.startswith(("dir:", "gguf:"))


def _short(ident: str) -> str:
    kind, _, digest = ident.partition(":")
    return f"{kind}:{digest[:12]}..."


def _hint(want: str, given: str) -> str:
    """How to fix it: the recorded base, where it still holds the same weights."""
    try:
        same = base_identity(given) == want
    except PtstError:
        return f"; pass --model with the model it was trained on ({given} is not found from here)"
    return f"; pass --model {given}" if same else f"; pass --model with those weights ({given} holds others now)"


def check_adapter_base(adapter: str, model: str) -> None:
    """Refuse, in one line and before any weights load, an adapter trained on another base model. The identity
    recorded at training time (`recorded_base`) is compared with `model`'s (`ptst.models.base_identity`: the
    weights' content for a directory, GGUF file or alias; the id for a hub model). An adapter without a record,
    or a hub id against local weights, falls back to the names: an adapter_config.json naming a different base is
    refused when the two are comparable (same hub id / path, or two local checkpoints with their config.json).
    Otherwise PEFT's own shape check at load time decides (ptst.adapters.apply_adapter)."""
    base = adapter_base(adapter)
    recorded = recorded_base(adapter)
    if recorded is not None:
        want, given = recorded
        have = base_identity(model)
        if _is_content(want) == _is_content(have):
            if want == have or (not _is_content(want) and want.casefold() == have.casefold()):
                return
            trained = f"{_short(want)} ({given})" if _is_content(want) else given
            given_now = f"{model} ({_short(have)})" if _is_content(have) else model
            raise PtstError(f"adapter {adapter} was trained on {trained}, not on {given_now}{_hint(want, given)}")
    if not base:
        return
    ref = resolve(model)
    names = {_norm_ref(model), _norm_ref(ref.path)}
    if ref.gguf_file:
        names.add(_norm_ref(materialize(ref)))
    if _norm_ref(base) in names:
        return
    here = materialize(ref) if ref.is_local else None
    base_local = Path(base).expanduser().is_dir()
    if base_local and here is not None:
        a, b = _arch(base), _arch(here)
        if a is not None and b is not None and a != b:
            diff = ", ".join(f"{k} {a[k]} vs {b[k]}" for k in a if a[k] != b[k])
            raise PtstError(f"adapter {adapter} was trained on {base}, not on {model} ({diff})")
    elif not base_local and not ref.is_local and "/" in base:
        raise PtstError(f"adapter {adapter} was trained on {base}, not on {model}; pass --model {base}")


def run_key(cfg: GenerateConfig, template: Template, tok: Any, ds: DatasetLike) -> dict[str, Any]:
    """Everything that identifies these answers (`ptst.generate.key`), for a data set already loaded."""
    return generation_key(cfg, template, DataIdentity(ds.name, str(ds.split), ds.sha256), tok)


def _check_ids(ds: DatasetLike) -> None:
    seen: set[str] = set()
    for ex in ds.examples:
        if ex.id in seen:
            raise PtstError(f"data set {ds.name}: duplicate example id {ex.id!r} (resume works by id)")
        seen.add(ex.id)


def _items(examples: Sequence[Example], template: Template, tok: Any) -> list[PromptItem]:
    render_text = tok is not None or template.mode == "text"
    return [PromptItem(ex.id, render(template, tok, ex.input).text if render_text else "",
                       tuple(template.messages(ex.input))) for ex in examples]


def _record(ex: Example, c: Completion, key: dict[str, Any], cfg: GenerateConfig, template: Template,
            ds: DatasetLike) -> dict[str, Any]:
    meta = {**ex.meta, "dataset": ds.name, "split": ds.split, "dataset_sha256": ds.sha256, "backend": cfg.backend}
    return Generation(
        id=ex.id, prompt=ex.input, answer=c.text, template=template.name,
        template_fingerprint=key["template_fingerprint"], model=key["model"], adapter_hash=key["adapter_hash"],
        decoding=cfg.decoding.to_dict(), reference=ex.reference, meta=meta, finish_reason=c.finish_reason,
        n_tokens=c.n_tokens,
    ).to_dict()


def run(cfg: GenerateConfig, out_path: str | Path, *, dataset: DatasetLike | None = None,
        backend: Backend | None = None, progress: bool = True) -> GenerationsFile:
    """Generate an answer for every example not yet in `out_path`; returns the file with its key.

    `dataset`: examples already loaded (then cfg.data/split/limit are not read). `backend`: a ready backend
    (e.g. one loaded model reused across data sets); it must be the model cfg names, since cfg makes the key.
    """
    out = Path(out_path)
    ds = dataset if dataset is not None else load_examples(cfg)
    _check_ids(ds)
    template = get_template(cfg.template)
    spec = BACKENDS.get(cfg.backend)
    if cfg.adapter and cfg.model:  # before the tokenizer or any weights load
        check_adapter_base(cfg.adapter, cfg.model)
    tok = load_tokenizer(cfg.model) if spec.needs_model and cfg.model else None
    key = run_key(cfg, template, tok, ds)
    info = {"template": template.name, "ptst_version": __version__, "n_examples": len(ds.examples),
            "data_spec": cfg.data, "data_fingerprint": getattr(ds, "fingerprint", None)}
    done, info = open_for_resume(out, key, info)
    ids = [ex.id for ex in ds.examples]
    pending = [ex for ex in ds.examples if ex.id not in done]
    if not pending:
        n = finalize(out, ids)
        write_meta(out, key, info, complete=True, n_records=n)
        say(f"{out}: complete, all {len(ids)} answers already there; nothing to generate")
        return GenerationsFile(out, key, n)
    if done:
        say(f"{out}: resuming, {len(ids) - len(pending)} of {len(ids)} answers already there")
    backend = backend if backend is not None else spec.build(cfg, tok, progress)
    if hasattr(backend, "prepare"):  # a lazily loaded backend: the model loads before the clock starts
        backend = backend.prepare()
    tokens = [0]

    def write(i: int, c: Completion) -> None:
        tokens[0] += c.n_tokens or 0
        w.write(_record(pending[i], c, key, cfg, template, ds))

    start = time.perf_counter()
    with JsonlAppender(out) as w:
        backend.generate(_items(pending, template, tok), cfg.decoding, on_done=write)
    speed = throughput(backend, cfg, len(pending), tokens[0], time.perf_counter() - start)
    n = finalize(out, ids)
    write_meta(out, key, {**info, "throughput": speed}, complete=True, n_records=n)
    say(f"wrote {len(pending)} answers to {out} ({n} in the file; key in {meta_path(out).name}); "
        f"{describe_throughput(speed)}")
    return GenerationsFile(out, key, n)


def throughput(backend: Backend, cfg: GenerateConfig, answers: int, tokens: int, seconds: float) -> dict[str, Any]:
    """How fast these answers were made, and on what: recorded beside the key (never in it), shown by the log
    line, `ptst status` and the report (ptst.runs.hardware). Answers depend on the kernels of the hardware that
    computed them (bf16 most), so it is named: `hardware` the device the model ran on (vLLM: the GPU torch sees;
    None for an API backend, whose server computed them), `cpu` this machine's CPU."""
    engine = getattr(backend, "engine", None)
    fused = getattr(getattr(backend, "fast", None), "native", None) is not None  # ptst.runtime.native's kernels
    model = getattr(backend, "model", None)  # a torch model (hf), else the backend says (openvino)
    dtype = str(getattr(model, "dtype", "") or getattr(backend, "dtype", "")).removeprefix("torch.") or None
    dev = getattr(model, "device", None) or getattr(backend, "device", None)
    hardware = None if cfg.backend == "openai" else cpu.here() if cfg.backend == "vllm" else \
        cpu.device(dev) if dev is not None else None
    return {"answers": answers, "tokens": tokens, "seconds": round(seconds, 2),
            "tok_s": round(tokens / seconds, 1) if seconds > 0 else None, "backend": cfg.backend,
            "engine": engine, "kernels": "fused" if fused else None, "dtype": dtype, "batch_size": cfg.batch_size,
            "cpu": cpu.describe(), "hardware": hardware}


def how_made(t: dict[str, Any]) -> str:
    """What made a throughput record's answers: 'hf fast float32, batch 48; Intel(R) Xeon(R) ..., amx_bf16' (the log
    line and `ptst status` both say it this way; 'hf fast+fused bfloat16, ...' on ptst's fused kernels)."""
    engine = f"{t.get('engine')}+{t['kernels']}" if t.get("kernels") and t.get("engine") else t.get("engine")
    what = " ".join(str(x) for x in (t.get("backend"), engine, t.get("dtype")) if x)
    return f"{what}, batch {t.get('batch_size')}; {t.get('hardware') or t.get('cpu')}"


def describe_throughput(t: dict[str, Any]) -> str:
    """'1503 tokens in 3.9 s: 390.6 tok/s (hf fast float32, batch 48; Intel(R) Xeon(R) ..., amx_bf16)'."""
    return f"{t.get('tokens')} tokens in {t.get('seconds')} s: {t.get('tok_s')} tok/s ({how_made(t)})"
