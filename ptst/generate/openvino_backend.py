"""OpenVINO GenAI backend (optional, CPU): the model exported once to OpenVINO IR, a LoRA adapter fused into its
weights when the pipeline loads, prompts decoded by openvino_genai's continuous-batching pipeline.

Why it exists: on SmolLM2-135M (2-core Xeon with AMX) its fused kernels generated the whole-story quickstart's
evaluation answers 1.24x faster than ptst's own engine in the same hour (the evaluation stage 1.08x), 4,475 of
4,480 fp32 answers identical token for token (the rest part at near-ties; docs/performance.md). Why it is not the
default: the export needs optimum-intel, which pins an older transformers than ptst's own venv runs.

- **Export** (`exported`): optimum-intel's `optimum-cli export openvino` in a child process (the model traced once
  through torch), fp32 weights, into ptst's cache under the weights' content hash (`ptst.models.base_identity`; a
  hub model is downloaded and hashed first) and the exporting openvino and optimum-intel versions, written whole
  or not at all. Other weights never reuse it; the same weights do, in every run, with any adapter or precision.
- **Adapter**: PEFT LoRA weights fused into the exported weights at load (`AdapterConfig.Mode.MODE_FUSE`, scale
  lora_alpha / r as PEFT's): the merged model ptst's HF backend runs, without a second export. DoRA, per-module
  rank or alpha patterns, LoRA biases and `modules_to_save` are refused in one line.
- **Decoding**: prompts in as the HF tokenizer's ids (no special tokens added, as the HF backend); precision and
  KV cache both bf16 or both fp32 (`dtype`; auto is fp32, as ptst's CPU default); the safety prompt every row
  shares runs once, its cached blocks reused by the batch (the first row runs alone for one token first).
  Sampling seeds each request from (decoding.seed, the item's id): the same answer on a rerun or resume, and
  independent draws across prompts.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata, util
from pathlib import Path
from typing import Any

from ptst.errors import PtstError
from ptst.generate.base import Completion, Decoding, OnDone, PromptItem
from ptst.generate.progress import GenProgress
from ptst.generate.stops import completion, stop_checker, stop_token_ids
from ptst.io import atomic_dir, stable_hash
from ptst.models import MODEL_FILE_GLOBS, base_identity, cache_dir, dir_fingerprint, materialize, resolve
from ptst.runtime.rows import shared_prefix

GENAI_MISSING = ("the openvino backend needs openvino-genai, which is not installed: pip install openvino-genai, "
                 "and optimum-intel to export models (docs/generation.md, 'openvino': it pins an older transformers)")
EXPORT_MISSING = ("the openvino backend exports the model once with optimum-intel, which is not installed: "
                  "pip install --no-deps optimum-intel plus its dependencies (docs/generation.md, 'openvino')")
EXPORT_FORMAT = 1  # bump when the export's command or settings change: every cached IR is then made again
PRECISIONS = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}
MIN_SHARED_PREFIX = 8  # as the HF backend: shorter shared prefixes are not worth a request of their own


def import_genai() -> Any:
    try:
        import openvino_genai
    except ImportError:
        raise PtstError(GENAI_MISSING) from None
    return openvino_genai


def exported(model: str) -> Path:
    """The model's OpenVINO IR (fp32 weights, optimum-intel's layout), exported on first use and cached under its
    weights' identity."""
    ident = base_identity(model)
    src = materialize(resolve(model))
    if not ident.startswith(("dir:", "gguf:")):  # a hub id: the snapshot's content, not the name, keys the export
        from huggingface_hub import snapshot_download

        try:
            src = snapshot_download(model, allow_patterns=list(MODEL_FILE_GLOBS))
        except Exception as e:  # noqa: BLE001 - offline, no such repo, no access: one line, not a traceback
            raise PtstError(f"the openvino backend could not fetch {model} to export it: {type(e).__name__}: "
                            f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}") from None
        ident = f"dir:{dir_fingerprint(Path(src))}"
    if util.find_spec("optimum") is None or util.find_spec("optimum.intel") is None:
        raise PtstError(EXPORT_MISSING)
    tools = {name: _version(name) for name in ("openvino", "optimum-intel")}
    key = stable_hash({"model": ident, "format": EXPORT_FORMAT, "weights": "fp32", "tools": tools})
    out = cache_dir() / "openvino" / key[:32]
    if (out / "ptst-done").exists():
        return out
    with atomic_dir(out, keep_existing=True, unique=True) as tmp:
        cmd = [sys.executable, "-m", "optimum.commands.optimum_cli", "export", "openvino", "--task",
               "text-generation-with-past", "--weight-format", "fp32", "--model", str(src), str(tmp)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not (tmp / "openvino_model.xml").is_file():
            last = next((ln for ln in reversed(done.stderr.splitlines()) if ln.strip()), "no output")
            raise PtstError(f"exporting {model} to OpenVINO IR failed (optimum-cli exit {done.returncode}): {last}")
        (tmp / "ptst-done").write_text(json.dumps({"model": ident, "format": EXPORT_FORMAT, "tools": tools}) + "\n")
    return out


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def lora_scale(adapter: str | Path) -> float:
    """PEFT's scale for a plain LoRA adapter (lora_alpha / r, or / sqrt(r) with rsLoRA); anything a single fused
    scale cannot reproduce is refused."""
    path = Path(adapter) / "adapter_config.json"
    if not path.is_file() or not (Path(adapter) / "adapter_model.safetensors").is_file():
        raise PtstError(f"the openvino backend needs a PEFT LoRA adapter directory with adapter_config.json and "
                        f"adapter_model.safetensors: {adapter}")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PtstError(f"unreadable adapter config {path}: {e}") from None
    if not isinstance(cfg, dict):
        raise PtstError(f"unreadable adapter config {path}: not a JSON object")
    unsupported = [k for k in ("use_dora", "lora_bias", "modules_to_save", "rank_pattern", "alpha_pattern")
                   if cfg.get(k)]
    if cfg.get("peft_type", "LORA") != "LORA" or cfg.get("bias", "none") != "none" or unsupported:
        what = ", ".join(unsupported) or f"peft_type {cfg.get('peft_type')}, bias {cfg.get('bias')}"
        raise PtstError(f"the openvino backend fuses plain LoRA adapters only; {adapter} uses {what}: use the hf "
                        "backend")
    r = int(cfg.get("r") or 8)
    alpha = float(cfg.get("lora_alpha") or 8)  # PEFT's default lora_alpha
    return alpha / (math.sqrt(r) if cfg.get("use_rslora") else r)


class OpenVINOBackend:
    """One exported model (and fused adapter) in one precision; `generate` as the HF backend's, `on_done` after each
    chunk of `4 * batch_size` items (what a kill can lose)."""

    name = "openvino"
    engine = "genai"  # OpenVINO GenAI's continuous-batching pipeline
    device = "cpu"  # what the throughput record names as the hardware

    def __init__(self, ir_dir: str | Path, tokenizer: Any, adapter: str | None = None, dtype: str = "float32",
                 batch_size: int = 16, progress: bool = True) -> None:
        if dtype not in PRECISIONS:
            raise PtstError(f"the openvino backend runs float32, bfloat16 or float16, not {dtype}")
        genai = import_genai()
        self.genai, self.tokenizer, self.batch_size, self.progress = genai, tokenizer, batch_size, progress
        self.dtype = dtype
        self.stop_ids = stop_token_ids(tokenizer, None)
        gen_cfg = Path(ir_dir) / "generation_config.json"
        if gen_cfg.is_file():  # the model's own end tokens, as the HF backend reads them from the model
            eos = json.loads(gen_cfg.read_text(encoding="utf-8")).get("eos_token_id")
            self.stop_ids = sorted({*self.stop_ids, *([eos] if isinstance(eos, int) else eos or [])})
        if not self.stop_ids:
            raise PtstError("the tokenizer has no EOS or end-of-turn token: generation could never stop early")
        hint = PRECISIONS[dtype]
        props: dict[str, Any] = {"INFERENCE_PRECISION_HINT": hint, "KV_CACHE_PRECISION": hint}
        self.adapters = None
        if adapter:
            scale = lora_scale(adapter)
            self.adapters = genai.AdapterConfig(genai.Adapter(str(Path(adapter) / "adapter_model.safetensors")),
                                                scale, genai.AdapterConfig.Mode.MODE_FUSE)
            props["adapters"] = self.adapters
        sched = genai.SchedulerConfig()
        sched.max_num_seqs, sched.enable_prefix_caching, sched.dynamic_split_fuse = batch_size, True, True
        try:
            self.pipe = genai.ContinuousBatchingPipeline(str(ir_dir), sched, "CPU", props)
        except RuntimeError as e:  # a bad IR or an adapter whose layers the model does not have
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            what = f"{ir_dir} with {adapter}" if adapter else str(ir_dir)
            raise PtstError(f"OpenVINO could not load {what}: {first}") from None

    def _config(self, d: Decoding, max_new: int, item_id: str = "") -> Any:
        cfg = self.genai.GenerationConfig()
        cfg.max_new_tokens, cfg.stop_token_ids = max_new, set(self.stop_ids)
        cfg.do_sample = not d.greedy
        if not d.greedy:  # each request its own generator: seeded from (seed, item id), as stable as the id
            cfg.temperature, cfg.top_p = d.temperature, d.top_p
            cfg.rng_seed = int(stable_hash([d.seed, item_id])[:8], 16)
        # OpenVINO matches a stop string with its edge whitespace trimmed (it stops at "p4" for "p4 "): only the
        # strings without any end there early; every row is cut below as the HF backend's loop cuts it
        early = {x for x in d.stop if x == x.strip()}
        if early:
            cfg.stop_strings, cfg.include_stop_str_in_output = early, True
        if self.adapters is not None:
            cfg.adapters = self.adapters
        return cfg

    def _run(self, rows: list[list[int]], cfgs: list[Any]) -> list[list[int]]:
        import numpy as np
        import openvino

        ids = [openvino.Tensor(np.array([r], dtype=np.int64)) for r in rows]
        try:
            return [[int(t) for t in r.m_generation_ids[0]] for r in self.pipe.generate(ids, cfgs)]
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise PtstError(f"OpenVINO generation failed: {first}") from None

    def _cut(self, out: list[int], check: Any) -> list[int]:
        """A row as the HF backend's loop leaves it: after its first stop token, or after the token whose text
        completes a stop string (`check`: `stop_checker`), whichever comes first."""
        end = next((k for k, t in enumerate(out) if t in self.stop_ids), len(out) - 1)
        if check is not None:
            end = next((k for k in range(end + 1) if check(out[: k + 1])), end)
        return out[: end + 1]

    def generate(self, items: Sequence[PromptItem], decoding: Decoding,
                 on_done: OnDone | None = None) -> list[Completion]:
        rows = [list(r) for r in self.tokenizer([it.rendered for it in items], add_special_tokens=False)["input_ids"]]
        for it, row in zip(items, rows, strict=True):
            if not row:
                raise PtstError(f"item {it.id}: the rendered prompt is empty")
        results: list[Completion] = []
        step, check = 4 * self.batch_size, stop_checker(self.tokenizer, decoding.stop)
        with GenProgress(len(items), "generating", self.progress) as bar:
            for start in range(0, len(rows), step):
                chunk = rows[start: start + step]
                if len(chunk) > 1 and shared_prefix(chunk) >= MIN_SHARED_PREFIX:
                    self._run(chunk[:1], [self._config(decoding, 1)])  # the shared prefix's blocks, cached once
                cfgs = [self._config(decoding, decoding.max_new_tokens, it.id) for it in items[start: start + step]]
                for i, out in enumerate(self._run(chunk, cfgs), start):
                    c = completion(self.tokenizer, self.stop_ids, self._cut(out, check), decoding, None)
                    results.append(c)
                    bar.advance(prompts=1, tokens=c.n_tokens or 0)
                    if on_done is not None:
                        on_done(i, c)
        return results
