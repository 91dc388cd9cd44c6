"""The trainable model: base LM (+ PEFT LoRA), the response-only loss module, and saving. Imported lazily."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ptst.errors import PtstError
from ptst.io import atomic_dir, sha256_file, stable_hash, write_json_atomic
from ptst.models import BASE_RECORD, base_identity, load_errors, materialize, resolve, save_tokenizer
from ptst.runs.layout import TrainDir
from ptst.runtime import packing
from ptst.runtime.cache import cache_arg, cache_kind
from ptst.train import loss as chunked_loss
from ptst.train.dropout import use_native_dropout
from ptst.train.fused import use_fused_layers


def resolve_precision(precision: str, device_type: str) -> str:
    """auto -> bf16 where the hardware has fast bf16 (CUDA with bf16, CPUs with AVX512-BF16/AMX), else fp32."""
    if precision == "fp16" and device_type != "cuda":
        raise PtstError("precision fp16 needs a CUDA GPU; use bf16 or fp32 on CPU")
    if precision != "auto":
        return precision
    if device_type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    mkldnn_bf16 = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return "bf16" if device_type == "cpu" and mkldnn_bf16 is not None and mkldnn_bf16() else "fp32"


def autocast(precision: str, device_type: str) -> Any:
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device_type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def load_trainable(cfg: Any, precision: str, base_ref: str, kernels: bool = True) -> Any:
    """The base model with LoRA injected (or fully trainable with `full`), in train mode.

    With LoRA the frozen base weights are stored in the compute dtype (no per-step casts; PEFT keeps the adapter
    weights in fp32); full fine-tuning keeps fp32 master weights and relies on autocast. `kernels`: LoRA's dropout,
    the RMSNorms, SiLU products and rotary embeddings on ptst's training kernels where they build; False keeps the
    model's and PEFT's own modules (the benchmarks' naive baseline; the head's loss and attention keep theirs)."""
    from transformers import AutoModelForCausalLM

    dtype = torch.float32
    if not cfg.full and precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with load_errors(cfg.model):
        model = AutoModelForCausalLM.from_pretrained(materialize(resolve(cfg.model)), dtype=dtype,
                                                     use_safetensors=True)
    model.config.use_cache = False
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.full:
        model.requires_grad_(True)
        return model.train()
    from peft import LoraConfig, get_peft_model

    targets: Any = "all-linear" if cfg.lora.targets == ("all-linear",) else list(cfg.lora.targets)
    torch.manual_seed(cfg.seed)  # LoRA A matrices are randomly initialised: seed them
    pc = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout, target_modules=targets,
                    bias="none", task_type="CAUSAL_LM")
    try:
        with warnings.catch_warnings():  # PEFT reads transformers' deprecated alias: not the user's to fix
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            peft_model: Any = get_peft_model(model, pc)
    except ValueError as e:
        raise PtstError(f"lora.targets {','.join(cfg.lora.targets)}: {str(e).splitlines()[0][:300]}") from None
    if dtype != torch.float32:
        keep_input_dtype(peft_model)
    if kernels:
        use_native_dropout(peft_model)  # LoRA's dropout masks drawn in the fused kernel on CPU (ptst.train.dropout)
        use_fused_layers(peft_model)  # RMSNorms, SiLU products, rotations: on the kernels (ptst.train.fused)
    peft_model.peft_config["default"].base_model_name_or_path = base_ref  # not the GGUF cache path
    # The content identity of the base, written beside every saved adapter: serving it on other weights is refused.
    peft_model.ptst_base = base_record(cfg.model)
    return peft_model.train()


def keep_input_dtype(lm: Any) -> None:
    """Let each LoRA layer take its input in the frozen weights' dtype. PEFT casts it to the adapter's fp32 first,
    and autocast, under which every training forward runs, casts it straight back for the product: a round trip
    that changes no bit (the loss and all 420 LoRA gradients of a SmolLM2-shaped bf16 step measured equal) and
    costs two copies per adapted layer and pass. Outside autocast a bf16 input now meets the fp32 LoRA weight and
    the product refuses, loudly, instead of computing in another precision. (`cast_input_dtype_enabled`: PEFT >=
    0.14; older PEFT ignores the attribute and keeps casting.)"""
    for m in lm.modules():
        if hasattr(m, "lora_A"):
            m.cast_input_dtype_enabled = False


def base_record(model: str) -> dict[str, str]:
    """What `ptst_base.json` holds: the base model's content identity and the model as it was given."""
    return {"base_model_id": base_identity(model), "base_model": model}


# Below this width, eager attention (bf16 matmuls + fp32 softmax) beats SDPA's CPU flash kernel; above it, the
# flash kernel wins (SmolLM2-135M, bf16, 2 Zen 4 cores: -10..20% step time at 137-255 tokens, +30% at 446).
CPU_EAGER_MAX_WIDTH = 256


class ResponseLoss(torch.nn.Module):
    """Summed next-token cross-entropy over the trained positions only.

    Runs the decoder to hidden states, gathers the positions that predict a trained token and applies the LM
    head to those rows alone: with a 49k vocabulary the full logits tensor costs more than the decoder. A frozen
    head runs a chunk of rows at a time, its backward pass recomputing each chunk (`ptst.train.loss`;
    `chunked_head=False`: the full logits). A module of its own so that DDP / FSDP see one forward.

    With `prefix_ids` (a prompt prefix every row shares, see `batching.collate`) the prefix runs once, its KV
    cache is repeated over the batch, and the rows run after it; gradients flow back through the shared cache,
    so the loss and gradients are those of the full rows up to float rounding.

    With a packed row (`position_ids` and `segments`, see `ptst.runtime.packing`) the decoder runs on the real
    tokens only, attention row by row; with a prefix too, the prefix's cache stays at batch size one and every
    row attends to it."""

    def __init__(self, lm: Any, chunked_head: bool = True) -> None:
        super().__init__()
        self.lm = lm
        self.attention = getattr(self.core().config, "_attn_implementation", None)
        self.can_share_prefix = _can_share_prefix(self.core())
        self.can_pack = packing.can_pack(self.core())
        if self.can_pack:
            packing.register()
        self.cache_kw = cache_arg(self.core().get_decoder())  # the keyword the decoder takes its KV cache under
        self.chunked_head = chunked_head  # `ptst.train.loss`; False: the full logits through F.cross_entropy

    def core(self) -> Any:
        return self.lm.get_base_model() if hasattr(self.lm, "get_base_model") else self.lm

    def _use_attention(self, want: str) -> bool:
        core = self.core()
        if core.config._attn_implementation == want:
            return True
        try:
            core.set_attn_implementation(want)
        except (ValueError, ImportError):  # a model that offers only one implementation keeps it
            return False
        return True

    def restore_attention(self) -> None:
        if self.attention is not None:
            self._use_attention(self.attention)

    def forward(self, input_ids: torch.Tensor, gather: torch.Tensor, targets: torch.Tensor,
                prefix_ids: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                segments: torch.Tensor | None = None) -> torch.Tensor:
        """`position_ids` and `segments` come with a packed row (`batching.collate(pack=True)`)."""
        core = self.core()
        p = 0 if prefix_ids is None else prefix_ids.shape[1]
        extra: dict[str, Any] = {}
        if segments is not None:
            if not self._use_attention(packing.ATTENTION):
                raise PtstError(f"{type(core).__name__} cannot run packed rows: set padding_free: false")
            extra[packing.SEGMENTS] = segments.tolist()
        elif input_ids.device.type == "cpu" and self.attention == "sdpa":
            if not self._use_attention("eager" if p + input_ids.shape[1] <= CPU_EAGER_MAX_WIDTH else "sdpa"):
                self.attention = None
        elif self.attention is not None:
            self._use_attention(self.attention)
        decoder = core.get_decoder()
        if prefix_ids is None:
            hidden = decoder(input_ids=input_ids, position_ids=position_ids, use_cache=False, **extra).last_hidden_state
        else:
            from transformers import DynamicCache

            cache = DynamicCache(config=core.config)
            decoder(input_ids=prefix_ids, **{self.cache_kw: cache}, use_cache=True,
                    **({packing.SEGMENTS: [0, p]} if segments is not None else {}))
            if segments is None:
                cache.batch_repeat_interleave(input_ids.shape[0])
                position_ids = torch.arange(p, p + input_ids.shape[1], device=input_ids.device)[None].expand(
                    input_ids.shape[0], -1)
            hidden = decoder(input_ids=input_ids, position_ids=position_ids, **{self.cache_kw: cache},
                             use_cache=True, **extra).last_hidden_state
        rows = hidden.reshape(-1, hidden.shape[-1]).index_select(0, gather)
        head = core.get_output_embeddings()
        cap = getattr(core.config, "final_logit_softcapping", None)
        if self.chunked_head and chunked_loss.supported(head, cap):  # the logits a chunk of rows at a time
            return chunked_loss.head_loss(rows, head, targets)
        logits = head(rows)
        if cap:  # Gemma-2 style soft-capping, as the model's own forward does
            logits = torch.tanh(logits / cap) * cap
        return F.cross_entropy(logits.float(), targets, reduction="sum")


def _can_share_prefix(core: Any) -> bool:
    """A shared prefix needs a plain per-layer KV cache (no sliding windows, recurrent or quantized layers) and
    no activation checkpointing (which turns the cache off)."""
    ckpt = getattr(core, "is_activation_checkpointing", None)
    if ckpt is None:  # transformers before the rename
        ckpt = getattr(core, "is_gradient_checkpointing", False)
    return not ckpt and cache_kind(core) == "full"


def trainable_state(lm: Any) -> dict[str, torch.Tensor]:
    return {n: p.detach().to("cpu", copy=True).contiguous() for n, p in lm.named_parameters() if p.requires_grad}


def load_trainable_state(lm: Any, state: dict[str, torch.Tensor]) -> None:
    params = dict(lm.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in state]
    if missing or any(n not in params for n in state):
        raise PtstError(f"checkpoint does not match this model ({len(missing)} trainable tensors missing)")
    with torch.no_grad():
        for n, t in state.items():
            params[n].copy_(t)


def save_adapter(lm: Any, dst: Path) -> None:
    """The PEFT adapter, plus `ptst_base.json` (the base's identity) when `load_trainable` made `lm`. `adapter_hash`
    reads adapter_model.safetensors only: the record does not change it."""
    # LoRA never trains the embeddings; saying so skips PEFT's look-up of the base config by name (an alias).
    lm.save_pretrained(dst, safe_serialization=True, save_embedding_layers=False)
    record = getattr(lm, "ptst_base", None)
    if record is not None:
        write_json_atomic(Path(dst) / BASE_RECORD, record)


def save_final(lm: Any, tok: Any, out: Path, full: bool) -> None:
    """`adapter/` (PEFT, loadable with PeftModel.from_pretrained) or, for full fine-tuning, `model/` with the
    tokenizer, written whole into place (ptst.io.atomic_dir)."""
    d = TrainDir(out)
    with atomic_dir(d.model if full else d.adapter) as tmp:
        if full:
            lm.save_pretrained(tmp, safe_serialization=True)

            save_tokenizer(tok, tmp)
        else:
            save_adapter(lm, tmp)


def weights_sha256(model_dir: Path) -> str:
    """sha256 of a full model's weights: the single file's, or of the sorted shard hashes."""
    shards = sorted(model_dir.glob("*.safetensors"))
    if len(shards) == 1:
        return sha256_file(shards[0])
    return stable_hash({p.name: sha256_file(p) for p in shards})


def count_params(lm: Any) -> dict[str, int]:
    core = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    emb = core.get_input_embeddings().weight.numel()
    total = sum(p.numel() for p in lm.parameters())
    trainable = sum(p.numel() for p in lm.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable, "embedding": emb}
