"""Server settings, validated once: bind address, API key, system-message policy, batching and limits."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ptst.errors import PtstError

POLICIES = ("prepend", "reject", "ignore")


def is_loopback(host: str) -> bool:
    """True only for addresses that provably stay on this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a hostname or wildcard could resolve anywhere


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to expose a model beyond loopback without an API key."""
    if not is_loopback(host) and not api_key:
        raise PtstError(
            f"refusing to bind {host!r} without an API key: pass --api-key or set PTST_API_KEY "
            "(only 127.0.0.1/::1/localhost may run without one)"
        )


@dataclass(frozen=True)
class ServeConfig:
    """Everything `ptst serve` needs. `model_name` is the id clients send (defaults to `model`)."""

    model: str
    template: str = "chat:llama"
    adapter: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    system_policy: str = "prepend"
    max_batch: int = 16
    max_wait_ms: float = 10.0
    max_queue: int = 256
    max_new_tokens_limit: int = 1024
    default_max_tokens: int = 256
    max_context: int | None = None  # None: the model config's max_position_embeddings
    model_name: str | None = None
    device: str | None = None
    dtype: str | None = None
    log_level: str = "info"

    def __post_init__(self) -> None:
        if self.system_policy not in POLICIES:
            raise PtstError(f"system_policy must be one of {', '.join(POLICIES)}, got {self.system_policy!r}")
        if not 0 <= self.port <= 65535:
            raise PtstError(f"port must be in 0..65535, got {self.port}")
        for name in ("max_batch", "max_queue", "max_new_tokens_limit", "default_max_tokens"):
            if getattr(self, name) < 1:
                raise PtstError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise PtstError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if self.max_context is not None and self.max_context < 2:
            raise PtstError(f"max_context must be >= 2, got {self.max_context}")
        check_bind(self.host, self.api_key)

    @property
    def served_name(self) -> str:
        return self.model_name or self.model
