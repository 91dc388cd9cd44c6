"""A generations file's key: everything that identifies its answers, computed from the config, the tokenizer
and the data's identity, without loading the model or the data (so `ptst status` and the evaluation cell's key
read the same key the generation stage writes into FILE.meta.json)."""

from __future__ import annotations

from typing import Any

from ptst.data.load import DataIdentity
from ptst.errors import PtstError
from ptst.generate.backends import BACKENDS
from ptst.io import stable_hash
from ptst.models import adapter_hash, model_id, pick_device, pick_dtype
from ptst.specs.decoding import Decoding
from ptst.specs.generate import GenerateConfig
from ptst.templates import INPUT, Template, fingerprint


def decoding_key(d: Decoding) -> dict[str, Any]:
    """The decoding part of the key; greedy ignores seed and top_p, so they do not split a greedy cache."""
    k = d.to_dict()
    if d.greedy:
        k.pop("seed")
        k.pop("top_p")
    return k


def template_fingerprint(cfg: GenerateConfig, template: Template, tok: Any) -> str:
    """The rendered prompt format's sha256 on this tokenizer; for an API backend (the endpoint renders), the
    messages sent."""
    if BACKENDS.get(cfg.backend).needs_model:
        return fingerprint(template, tok)
    if template.rendering != "native":
        raise PtstError(f"template {template.name!r} renders the paper's literal strings, which needs the "
                        f"model's tokenizer; backend {cfg.backend!r} sends messages that the endpoint renders "
                        "with its own chat template: use the template without 'paper:' or a local backend")
    return stable_hash(template.messages(INPUT))


def generation_key(cfg: GenerateConfig, template: Template, tok: Any, data: DataIdentity) -> dict[str, Any]:
    """Everything that identifies these answers; a resumed file must have been written under the same key."""
    if BACKENDS.get(cfg.backend).needs_model:
        assert cfg.model is not None
        model = model_id(cfg.model)
        dtype: str | None = str(pick_dtype(cfg.dtype, pick_device(cfg.device))).removeprefix("torch.")
    else:
        model, dtype = f"{cfg.api_model}@{cfg.base_url}", None
    return {"model": model, "adapter_hash": adapter_hash(cfg.adapter),
            "template_fingerprint": template_fingerprint(cfg, template, tok), "decoding": decoding_key(cfg.decoding),
            "data": {"name": data.name, "split": data.split, "sha256": data.sha256}, "backend": cfg.backend,
            "dtype": dtype}
