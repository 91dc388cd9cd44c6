"""The alignment stage's config: safety-tune an unaligned small model before the grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ptst.config import section
from ptst.errors import PtstError
from ptst.specs.train import TrainConfig


@dataclass(frozen=True)
class AlignSpec:
    """Optional safety-alignment stage run before the grid (for models that ship unaligned, like SmolLM2)."""

    safety: str = "safety"
    n_safety: int = 400
    benign: str = "gsm8k"
    benign_split: str = "train"
    n_benign: int = 400
    templates: list[str] = field(default_factory=lambda: ["chat:vanilla", "chat:llama"])
    train: dict[str, Any] = section(TrainConfig)
    heldout: str = "strongreject"
    heldout_limit: int = 64
    overrefusal: str = "xstest"
    overrefusal_limit: int = 64
    decontaminate: list[str] = field(default_factory=lambda: ["advbench", "directharm4", "xstest", "strongreject"])

    def __post_init__(self) -> None:
        if not self.templates:
            raise PtstError("align.templates must name at least one template")
        empty = [i for i, t in enumerate(self.templates) if not isinstance(t, str) or not t.strip()]
        if empty:
            raise PtstError(f"align.templates[{empty[0]}] is an empty template name")
        if self.n_safety < 1:
            raise PtstError("align.n_safety must be >= 1")


