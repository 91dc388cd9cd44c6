"""KV-cache helpers: which cache layout a model's layers use, and the keyword its forward takes the cache under."""

from __future__ import annotations

from typing import Any


def cache_kind(model: Any) -> str:
    """"full": every layer a plain DynamicLayer (rows can be dropped, a shared prefix reused); "sliding": some
    sliding-window layers (rows can be dropped; a prefix is not reused, as padding after it would eat into the
    window); "other": recurrent/quantized/unknown caches, which go through `model.generate`."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

    try:
        layers = DynamicCache(config=model.config).layers
    except Exception:  # noqa: BLE001 - an exotic config: let generate() handle it
        return "other"
    kinds = {type(layer) for layer in layers}
    if kinds <= {DynamicLayer}:
        return "full"
    return "sliding" if kinds <= {DynamicLayer, DynamicSlidingWindowLayer} else "other"


def cache_arg(module: Any) -> str:
    """The keyword `module.forward` takes its KV cache under: `cache` in transformers releases that renamed it
    (passing `past_key_values` there warns), `past_key_values` before (and for wrappers that take **kwargs)."""
    import inspect

    try:
        params = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params and "past_key_values" not in params else "past_key_values"
