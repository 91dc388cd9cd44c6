"""`ptst serve`: an OpenAI-compatible server that enforces the test template (the "safe testing" half of PTST)."""

from __future__ import annotations

from typing import Any

from ptst.serve.config import POLICIES, ServeConfig, check_bind, is_loopback

__all__ = ["POLICIES", "ServeConfig", "check_bind", "create_app", "is_loopback", "run"]


def create_app(cfg: ServeConfig, backend: Any = None, tokenizer: Any = None) -> Any:
    """The FastAPI app; `backend`/`tokenizer` default to the HF model named by `cfg` (tests inject tiny ones)."""
    from ptst.serve.app import create_app as _create  # heavy: fastapi

    return _create(cfg, backend=backend, tokenizer=tokenizer)


def run(cfg: ServeConfig) -> None:
    """Load the model, build the app and serve it with uvicorn until interrupted."""
    from ptst.serve.app import run as _run  # heavy: fastapi

    _run(cfg)
