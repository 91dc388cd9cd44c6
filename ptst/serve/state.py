"""What one running server holds: config, the enforced template and its fingerprint, tokenizer and batcher."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ptst.serve.batcher import Batcher
from ptst.serve.config import ServeConfig
from ptst.serve.controls import ControlTokens
from ptst.templates import Template


@dataclass
class ServerState:
    cfg: ServeConfig
    template: Template
    fingerprint: str  # sha256 of the rendered test-template prompt format on this tokenizer
    tokenizer: Any  # the server's own copy: HF fast tokenizers must not be shared across threads
    batcher: Batcher
    max_context: int | None
    controls: ControlTokens  # what client text may never contain
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def name(self) -> str:
        return self.cfg.served_name

    @property
    def system_fingerprint(self) -> str:
        return f"ptst-{self.fingerprint[:16]}"

    def model_card(self) -> dict[str, Any]:
        return {"id": self.name, "object": "model", "created": self.created, "owned_by": "ptst",
                "ptst": {"template": self.template.name, "template_fingerprint": self.fingerprint,
                         "safety_prompt": self.template.safety_prompt, "system_policy": self.cfg.system_policy,
                         "max_new_tokens_limit": self.cfg.max_new_tokens_limit, "max_context": self.max_context}}
