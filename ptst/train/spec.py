"""spec.json: everything that identifies a trained model, for the cache keys of every later stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ptst import __version__
from ptst.io import stable_hash
from ptst.models import adapter_hash, model_id
from ptst.runtime import native
from ptst.specs.train import TrainConfig, identity

HYPER_KEYS = ("seed", "epochs", "lr", "batch_size", "grad_accum", "max_len", "weight_decay", "schedule",
              "warmup_ratio", "min_lr_ratio", "max_grad_norm", "full", "gradient_checkpointing", "group_by_length")


def build_spec(cfg: TrainConfig, out: Path, lm: Any, data: Any, result: Any, precision: str, world: int,
               wall: float, hardware: str | None = None) -> dict[str, Any]:
    """spec.json's content. `precision`: what `cfg.precision` resolved to on this machine; `hardware`: the machine
    (ptst.runtime.cpu.device), recorded beside the key, which names neither (ptst.runs.hardware)."""
    from datetime import datetime, timezone

    from ptst.train.dropout import masks
    from ptst.train.model import count_params, weights_sha256  # heavy: torch

    base_id = model_id(cfg.model)
    method = "full" if cfg.full else "lora"
    weights = weights_sha256(out / "model") if cfg.full else str(adapter_hash(out / "adapter"))
    artefact = {"model_dir": "model", "adapter": None} if cfg.full else {"adapter": "adapter", "model_dir": None}
    main, mixes = data.parts[0], data.parts[1:]
    hyper = {k: getattr(cfg, k) for k in HYPER_KEYS}
    hyper.update(effective_batch_size=cfg.batch_size * cfg.grad_accum * world, precision=precision,
                 world_size=world, lora=None if cfg.full else identity(cfg)["lora"],
                 lora_dropout_masks=None if cfg.full else masks(lm), kernels=kernels())
    prog = result.progress
    return {
        "kind": "ptst.train",
        "ptst_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model_id": f"{base_id}+{method}:{weights[:16]}",
        "base_model": cfg.model,
        "base_model_id": base_id,
        "method": method,
        **artefact,
        "adapter_sha256": None if cfg.full else weights,
        "weights_sha256": weights,
        "config_sha256": stable_hash(identity(cfg)),
        "data": _part(main, cfg.seed),
        "template": {"name": main.template, "fingerprint": main.fingerprint,
                     "train_format_sha256": main.train_format_sha256, "train_format": main.train_format},
        "mix": [_part(p, cfg.seed) | {"n": p.limit, "template": p.template, "fingerprint": p.fingerprint,
                                      "train_format_sha256": p.train_format_sha256} for p in mixes],
        "non_commercial": any(p.non_commercial for p in data.parts),  # any NC licence taints the weights
        "examples": len(data.examples),
        "response_tokens": data.response_tokens,
        "total_tokens": data.total_tokens,
        "hyperparameters": hyper,
        "hardware": hardware,
        "params": count_params(lm),
        "steps": result.steps,
        "trained_tokens": prog.tokens,
        "trained_response_tokens": prog.response_tokens,
        "first_loss": prog.first_loss,
        "final_loss": prog.last_loss,
        "train_time_s": round(prog.elapsed_s, 3),
        "wall_time_s": round(wall, 3),
        "resumed_from_step": result.resumed_from,
    }


def kernels() -> str | None:
    """Which of ptst's fused kernels training could run here (their version, and `portable` without the AVX-512
    path, where the head's loss and attention keep torch's operations), or None where they do not build
    (`PTST_NATIVE=0`, no C compiler): adapters trained with and without them differ by float rounding."""
    if not native.available():
        return None
    return f"ptst-native v{native.VERSION}" + ("" if native.wide() else " portable")


def _part(p: Any, seed: int) -> dict[str, Any]:
    return {"data": p.data, "name": p.name, "split": p.split, "sha256": p.sha256,
            "rows_fingerprint": p.rows_fingerprint, "limit": p.limit, "seed": seed,
            "licence": p.licence, "non_commercial": p.non_commercial, "examples_loaded": p.n_loaded,
            "examples": p.n_used, "dropped_truncated": p.n_dropped_truncated, "response_tokens": p.response_tokens,
            "total_tokens": p.total_tokens}
