"""LoRA adapters on disk: the base they name, their weights (safetensors only), and wrapping a model with one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ptst.errors import PtstError


def adapter_base(adapter: str | Path) -> str | None:
    """The base model the adapter's config names (`base_model_name_or_path`), or None."""
    cfg = Path(adapter) / "adapter_config.json"
    if not cfg.exists():
        raise PtstError(f"not a PEFT adapter directory (no adapter_config.json): {adapter}")
    return json.loads(cfg.read_text()).get("base_model_name_or_path")


def apply_adapter(model: Any, adapter: str | Path) -> Any:
    """Wrap `model` with a saved LoRA adapter; refuses one trained for different shapes."""
    from peft import PeftModel
    from safetensors import SafetensorError

    adapter_base(adapter)
    weights = adapter_weights(adapter)
    try:
        return PeftModel.from_pretrained(model, str(adapter))
    except SafetensorError as e:
        raise PtstError(f"{weights} is not a valid safetensors file ({e}): corrupt or truncated") from None
    except (RuntimeError, ValueError, KeyError) as e:
        msg = str(e).splitlines()[0][:200]
        raise PtstError(f"adapter {adapter} does not fit this base model ({msg})") from None


def adapter_weights(adapter: str | Path) -> Path:
    """The adapter's safetensors weights; a pickle-only adapter (adapter_model.bin) is refused."""
    p = Path(adapter)
    if (p / "adapter_model.safetensors").exists():
        return p / "adapter_model.safetensors"
    if (p / "adapter_model.bin").exists():
        src, dst = p / "adapter_model.bin", p / "adapter_model.safetensors"
        raise PtstError(
            f"adapter {adapter} has only adapter_model.bin (a PyTorch pickle; loading one can run arbitrary code); "
            "ptst loads safetensors adapters only: convert it once, in an environment you trust, with: python -c "
            f"\"import torch, safetensors.torch as s; s.save_file(torch.load('{src}'), '{dst}')\""
        )
    raise PtstError(f"no adapter weights in {adapter} (expected adapter_model.safetensors)")
