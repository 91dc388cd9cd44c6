"""ptst's own generation backends, registered in `ptst.specs.generate.BACKENDS`: how each is built from a
GenerateConfig."""

from __future__ import annotations

from typing import Any

from ptst.generate.base import Backend
from ptst.models import dtype_name, load_model, materialize, resolve
from ptst.openai_client import Endpoint
from ptst.specs.generate import BACKENDS, BackendSpec, GenerateConfig


def _build_hf(cfg: GenerateConfig, tokenizer: Any, progress: bool) -> Backend:
    from ptst.generate.hf import HFBackend  # lazy: backend plugin, loaded when chosen

    assert cfg.model is not None
    # LoRA merged into the base weights for inference: no adapter matmuls per layer and step (1.18x tokens/s on
    # SmolLM2 with an all-linear r16 adapter, fp32 CPU; 16/16 greedy answers identical to the unmerged model)
    model = load_model(cfg.model, adapter=cfg.adapter, device=cfg.device, dtype=cfg.dtype, merge=bool(cfg.adapter))
    return HFBackend(model, tokenizer, batch_size=cfg.batch_size, progress=progress)


def _build_vllm(cfg: GenerateConfig, tokenizer: Any, progress: bool) -> Backend:
    from ptst.generate.vllm_backend import VLLMBackend, import_vllm  # lazy: backend plugin, loaded when chosen

    import_vllm()  # the clear "not installed" line before any model work
    assert cfg.model is not None
    return VLLMBackend(materialize(resolve(cfg.model)), tokenizer, adapter=cfg.adapter, dtype=cfg.dtype or "auto",
                       seed=cfg.decoding.seed)


def _build_openvino(cfg: GenerateConfig, tokenizer: Any, progress: bool) -> Backend:
    from ptst.generate.openvino_backend import OpenVINOBackend, exported, import_genai, lora_scale  # lazy: plugin

    import_genai()  # the clear "not installed" line before any export
    assert cfg.model is not None
    if cfg.adapter:
        lora_scale(cfg.adapter)  # an adapter it cannot fuse is refused before the export
    return OpenVINOBackend(exported(cfg.model), tokenizer, adapter=cfg.adapter, dtype=dtype_name(cfg.dtype, "cpu"),
                           batch_size=cfg.batch_size, progress=progress)


def _build_openai(cfg: GenerateConfig, tokenizer: Any, progress: bool) -> Backend:
    from ptst.generate.openai_backend import OpenAIBackend  # lazy: backend plugin, loaded when chosen

    assert cfg.base_url is not None and cfg.api_model is not None
    endpoint = Endpoint(base_url=cfg.base_url, model=cfg.api_model, api_key_env=cfg.api_key_env,
                        timeout_s=cfg.timeout_s, max_retries=cfg.max_retries, concurrency=cfg.concurrency)
    return OpenAIBackend(endpoint, progress=progress)


BACKENDS.register("hf", BackendSpec("hf", _build_hf, True, "transformers on CPU/GPU: batched, left-padded, KV cache"))
BACKENDS.register("vllm", BackendSpec("vllm", _build_vllm, True, "vLLM offline engine (GPU), LoRA via LoRARequest"))
BACKENDS.register("openvino", BackendSpec(
    "openvino", _build_openvino, True, "OpenVINO GenAI on CPU: the model exported once, LoRA fused at load (optional)",
    device="cpu"))
BACKENDS.register("openai", BackendSpec("openai", _build_openai, False,
                                        "any OpenAI-compatible endpoint (OpenAI, vllm serve, ptst serve)"))
