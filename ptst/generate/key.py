"""A generations file's key: everything that identifies its answers, computed from the config, the tokenizer
and the data's identity, without loading the model or the data (so `ptst status` and the evaluation cell's key
read the same key the generation stage writes into FILE.meta.json)."""

from __future__ import annotations

import os
from contextlib import suppress
from typing import Any

from ptst.data.load import DataIdentity
from ptst.errors import PtstError
from ptst.generate.backends import BACKENDS
from ptst.io import stable_hash, write_text_atomic
from ptst.models import GPU_DEVICES, adapter_hash, base_identity, cache_dir, dtype_name, load_tokenizer, model_id
from ptst.specs.decoding import Decoding
from ptst.specs.generate import GenerateConfig
from ptst.templates import INPUT, RENDER_VERSION, Template, fingerprint

# The hf backend's half-precision arithmetic, part of its bf16/fp16 generations files' keys and of no other: 2 since
# 2026-12-07 (on CPU the fast engine's residual stream and greedy choice in fp32; an adapter merged into fp32-stored
# weights in fp32, rounded once; before, other answers). Raise it when that arithmetic changes again.
HALF_NUMERICS = 2
# 3: bf16 on CPU where ptst's fused kernels build (ptst.runtime.native; the fast engine's step on them, other
# summation orders than the eager step's, so other answers). Where they do not build (no C compiler, PTST_NATIVE=0)
# the key says 2, and the eager step runs.
FUSED_NUMERICS = 3
# fp32 answers carry no numerics field where the eager engines made them (generate's answers, token for token); 1
# where the fast engine ran on the fused kernels (a CPU where they build with their AVX-512 path, `native.wide`):
# the same fp32 arithmetic in other summation orders, so possibly other answers at a near tie (docs/performance.md).
FUSED_FP32_NUMERICS = 1


def decoding_key(d: Decoding) -> dict[str, Any]:
    """The decoding part of the key; greedy ignores seed and top_p, so they do not split a greedy cache."""
    k = d.to_dict()
    if d.greedy:
        k.pop("seed")
        k.pop("top_p")
    return k


def template_fingerprint(cfg: GenerateConfig, template: Template, tok: Any = None) -> str:
    """The rendered prompt format's sha256 on the model's tokenizer (loaded when `tok` is None); for an API
    backend (the endpoint renders), the messages sent. For a model known by its content (a local directory, a
    GGUF file) the fingerprint is remembered in the cache under (model content, template definition,
    RENDER_VERSION), so a cell's key is computed without loading transformers again."""
    if not BACKENDS.get(cfg.backend).needs_model:
        if template.rendering != "native":
            raise PtstError(f"template {template.name!r} renders the paper's literal strings, which needs the "
                            f"model's tokenizer; backend {cfg.backend!r} sends messages that the endpoint renders "
                            "with its own chat template: use the template without 'paper:' or a local backend")
        return stable_hash(template.messages(INPUT))
    assert cfg.model is not None
    ident = base_identity(cfg.model)
    memo = None
    if ident.startswith(("dir:", "gguf:")):  # a hub id's tokenizer can change under the same name: not remembered
        what = stable_hash({"model": ident, "template": template.to_dict(), "render": RENDER_VERSION})
        memo = cache_dir() / "fingerprints" / f"{what[:32]}.txt"
        with suppress(OSError):
            return memo.read_text(encoding="utf-8").strip()
    fp = fingerprint(template, tok if tok is not None else load_tokenizer(cfg.model))
    if memo is not None:
        with suppress(OSError):  # a read-only cache: render again next time
            write_text_atomic(memo, fp + "\n")
    return fp


def generation_key(cfg: GenerateConfig, template: Template, data: DataIdentity, tok: Any = None) -> dict[str, Any]:
    """Everything that identifies these answers; a resumed file must have been written under the same key.
    `tok`: the model's tokenizer where the caller has it loaded (else it is loaded only if needed)."""
    spec = BACKENDS.get(cfg.backend)
    if spec.needs_model:
        assert cfg.model is not None
        model: str = model_id(cfg.model)
        dtype: str | None = dtype_name(cfg.dtype, spec.device or cfg.device)
    else:
        model, dtype = f"{cfg.api_model}@{cfg.base_url}", None
    key: dict[str, Any] = {
        "model": model, "adapter_hash": adapter_hash(cfg.adapter),
        "template_fingerprint": template_fingerprint(cfg, template, tok), "decoding": decoding_key(cfg.decoding),
        "data": {"name": data.name, "split": data.split, "sha256": data.sha256}, "backend": cfg.backend,
        "dtype": dtype}
    n = numerics(dtype, cfg.device) if cfg.backend == "hf" and dtype is not None else None
    if n is not None:
        key["numerics"] = n
    return key


def numerics(dtype: str, device: str | None) -> int | None:
    """The hf backend's arithmetic version for `dtype` on `device` (resolved as `pick_device` would, without
    importing torch): for bf16 on a CPU whose fused kernels build FUSED_NUMERICS, for other half precision
    HALF_NUMERICS; for fp32 FUSED_FP32_NUMERICS where they also have their AVX-512 path, else None (no field: the
    eager engines' answers)."""
    if dtype not in ("bfloat16", "float16", "float32"):
        return None
    explicit = device and device != "auto"
    on_cpu = device == "cpu" if explicit else not any(map(os.path.exists, GPU_DEVICES))
    if dtype in ("bfloat16", "float32") and on_cpu:
        from ptst.runtime import native  # lazy: builds the kernels at first use (about a second; no torch)

        if native.runs(dtype):  # the fast engine's own decision (fp32: only with the kernels' AVX-512 path)
            return FUSED_NUMERICS if dtype == "bfloat16" else FUSED_FP32_NUMERICS
    return None if dtype == "float32" else HALF_NUMERICS
