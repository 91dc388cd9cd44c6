"""vLLM backend (optional, GPU): offline batched generation with LoRA adapters through LoRARequest."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ptst.errors import PtstError
from ptst.generate.base import Completion, Decoding, OnDone, PromptItem
from ptst.generate.stops import stop_token_ids, truncate_at_stop

VLLM_MISSING = (
    "the vllm backend needs vLLM, which is not installed: pip install 'ptst[vllm]' (Linux with a CUDA GPU), "
    "or use --backend hf, or serve the model with `vllm serve` and use --backend openai"
)


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise PtstError(VLLM_MISSING) from None
    return vllm


def adapter_rank(adapter: str | Path) -> int:
    cfg = Path(adapter) / "adapter_config.json"
    if not cfg.exists():
        raise PtstError(f"not a PEFT adapter directory (no adapter_config.json): {adapter}")
    return int(json.loads(cfg.read_text()).get("r") or 8)


class VLLMBackend:
    """Wraps `vllm.LLM`. Prompts go in as token ids (tokenized without special tokens, like the HF backend), so
    vLLM never adds a second BOS to a template that already has one."""

    name = "vllm"

    def __init__(self, model_path: str, tokenizer: Any, adapter: str | None = None, dtype: str = "auto",
                 seed: int = 0, chunk_size: int = 1024, **engine_kwargs: Any) -> None:
        vllm = import_vllm()
        self.chunk_size = chunk_size
        self.tokenizer = tokenizer
        self.adapter = adapter
        lora: dict[str, Any] = {}
        if adapter:
            lora = {"enable_lora": True, "max_lora_rank": max(8, adapter_rank(adapter)), "max_loras": 1}
        vllm_dtype = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}.get(dtype, dtype)
        self.llm = vllm.LLM(model=model_path, tokenizer=model_path, dtype=vllm_dtype, seed=seed,
                            **lora, **engine_kwargs)
        self.stop_ids = stop_token_ids(tokenizer, None)

    def sampling_params(self, d: Decoding) -> Any:
        from vllm import SamplingParams

        return SamplingParams(
            n=1, temperature=d.temperature, top_p=d.top_p, repetition_penalty=1.0,  # top_k: off by default
            max_tokens=d.max_new_tokens, seed=None if d.greedy else d.seed, stop=list(d.stop) or None,
            stop_token_ids=self.stop_ids, skip_special_tokens=True,
        )

    def lora_request(self) -> Any:
        if not self.adapter:
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest("ptst-adapter", 1, str(Path(self.adapter).resolve()))

    def generate(self, items: Sequence[PromptItem], decoding: Decoding,
                 on_done: OnDone | None = None) -> list[Completion]:
        """vLLM schedules each chunk itself (continuous batching); chunks bound the work a kill can lose."""
        params, lora = self.sampling_params(decoding), self.lora_request()
        results: list[Completion] = []
        for start in range(0, len(items), self.chunk_size):
            chunk = items[start: start + self.chunk_size]
            ids = self.tokenizer([it.rendered for it in chunk], add_special_tokens=False)["input_ids"]
            outs = self.llm.generate([{"prompt_token_ids": list(r)} for r in ids], params, lora_request=lora,
                                     use_tqdm=True)
            for i, out in enumerate(outs, start):
                o = out.outputs[0]
                text, cut = truncate_at_stop(o.text, decoding.stop)
                c = Completion(text=text, finish_reason="stop" if cut else o.finish_reason,
                               n_tokens=len(o.token_ids))
                results.append(c)
                if on_done is not None:
                    on_done(i, c)
        return results
