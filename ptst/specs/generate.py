"""The generation stage's config (GenerateConfig), validated up front, and the registry of backends it names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ptst.errors import PtstError
from ptst.registry import Registry
from ptst.specs.decoding import Decoding

if TYPE_CHECKING:
    from ptst.generate.base import Backend


@dataclass(frozen=True)
class GenerateConfig:
    """One generation run: which model (and adapter) answers which data set under which test template.

    `seed` picks the data subset when `limit` samples; `decoding.seed` seeds sampling (unused when greedy).
    `base_url`/`api_model`/... are read by the openai backend only; `device`/`dtype` by hf, vllm and openvino.
    """

    data: str
    template: str
    model: str | None = None
    adapter: str | None = None
    split: str | None = None
    limit: int | None = None
    seed: int = 0
    data_dir: str | None = None
    backend: str = "hf"
    batch_size: int = 16
    decoding: Decoding = field(default_factory=Decoding)
    base_url: str | None = None
    api_model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    max_retries: int = 5
    timeout_s: float = 120.0
    device: str | None = None
    dtype: str | None = None

    def __post_init__(self) -> None:
        spec = BACKENDS.get(self.backend)  # unknown names fail here, with "did you mean"
        if not isinstance(self.decoding, Decoding):
            raise PtstError("decoding must be a Decoding")
        if self.batch_size < 1 or self.concurrency < 1:
            raise PtstError("batch_size and concurrency must be >= 1")
        if self.limit is not None and self.limit < 1:
            raise PtstError("limit must be >= 1 (or unset for the whole split)")
        if spec.needs_model and not self.model:
            raise PtstError(f"the {self.backend} backend needs a model (--model: HF id, directory, .gguf or alias)")
        if not spec.needs_model:
            if not self.base_url or not self.api_model:
                raise PtstError(f"the {self.backend} backend needs --base-url and --api-model")
            if self.adapter:
                raise PtstError(f"the {self.backend} backend cannot load an adapter: serve the adapted model "
                                "(e.g. `vllm serve BASE --enable-lora --lora-modules NAME=DIR`) and name it in "
                                "--api-model")
        if spec.device and self.device not in (None, "auto", spec.device):
            raise PtstError(f"the {self.backend} backend runs on {spec.device} only, not on device {self.device!r}")
        if self.dtype not in (None, "auto", "bf16", "bfloat16", "fp16", "float16", "fp32", "float32"):
            raise PtstError(f"unknown dtype {self.dtype!r}; use auto, bf16, fp16 or fp32")


@dataclass(frozen=True)
class BackendSpec:
    """`build(cfg, tokenizer, progress)`; `needs_model`: renders prompts with the model's tokenizer (hf, vllm)
    rather than sending chat messages to an endpoint that applies its own template (openai)."""

    name: str
    build: Callable[[GenerateConfig, Any, bool], Backend]
    needs_model: bool
    description: str
    device: str | None = None  # the one device it runs on (openvino: "cpu"): the key's "auto" dtype is that device's


# ptst's own backends register in ptst.generate.backends, imported the first time a name is looked up.
BACKENDS: Registry[BackendSpec] = Registry("generation backend", builtins="ptst.generate.backends")
