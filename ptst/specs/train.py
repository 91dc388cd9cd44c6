"""The training stage's config: frozen dataclasses, validated on construction; YAML in, resolved YAML out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptst.config import deep_merge, from_dict, parse_overrides, read_yaml, to_dict
from ptst.errors import PtstError

SCHEDULES = ("cosine", "constant")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
# Keys that change how a run is carried out but not what it computes: a run directory whose config differs
# only in these is the same run (so `--resume` may change them). `share_prefix` and `padding_free` compute the
# same loss and gradients up to float rounding (tests/train/test_prefix.py, tests/runtime/test_packing.py).
OPERATIONAL_KEYS = ("save_every", "keep_checkpoints", "log_every", "share_prefix", "padding_free")


@dataclass(frozen=True)
class LoraConfig:
    """LoRA adapter shape. Defaults follow llama-recipes (r 8, alpha 32, dropout 0.05, q_proj + v_proj)."""

    r: int = 8
    alpha: int = 32
    dropout: float = 0.05
    targets: tuple[str, ...] = ("q_proj", "v_proj")  # or ("all-linear",)

    def __post_init__(self) -> None:
        raw = (self.targets,) if isinstance(self.targets, str) else tuple(self.targets)
        # `--lora-targets q_proj,v_proj` and YAML `targets: q_proj,v_proj` both mean two modules.
        object.__setattr__(self, "targets", tuple(x.strip() for t in raw for x in str(t).split(",") if x.strip()))
        if self.r < 1:
            raise PtstError(f"lora.r must be >= 1, got {self.r}")
        if self.alpha <= 0:
            raise PtstError(f"lora.alpha must be > 0, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise PtstError(f"lora.dropout must be in [0, 1), got {self.dropout}")
        if not self.targets or any(not t for t in self.targets):
            raise PtstError("lora.targets must name at least one module (e.g. q_proj,v_proj or all-linear)")
        if "all-linear" in self.targets and len(self.targets) > 1:
            raise PtstError("lora.targets: 'all-linear' cannot be combined with module names")


@dataclass(frozen=True)
class MixSpec:
    """`n` examples of another data set shuffled into training, rendered with `template` (None: the main one)."""

    data: str
    n: int
    template: str | None = None
    split: str | None = None

    def __post_init__(self) -> None:
        if not self.data:
            raise PtstError("mix: data set name is empty")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise PtstError(f"mix {self.data}: n must be a positive integer, got {self.n!r}")

    @classmethod
    def from_text(cls, text: str) -> MixSpec:
        """A mix entry as written on the command line or in YAML: `safety:500`, `jsonl:PATH:20:chat:llama`."""
        return parse_mix(text)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a training run computes (plus three operational knobs)."""

    model: str
    data: str
    template: str
    split: str | None = None
    data_dir: str | None = None
    limit: int | None = None
    mix: tuple[MixSpec, ...] = ()
    seed: int = 0
    epochs: int = 3
    lr: float = 1e-4
    batch_size: int = 4
    grad_accum: int = 1
    max_len: int = 1024
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_ratio: float = 0.03
    min_lr_ratio: float = 0.0
    max_grad_norm: float = 1.0
    full: bool = False
    lora: LoraConfig = field(default_factory=LoraConfig)
    precision: str = "auto"
    gradient_checkpointing: bool = False
    group_by_length: bool = True
    share_prefix: bool = True  # a prompt prefix every row of a micro-batch shares goes through the model once
    padding_free: bool = True  # a micro-batch's rows run concatenated in one row, attention per row: no padding
    save_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 1

    def __post_init__(self) -> None:
        for name in ("model", "data", "template"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise PtstError(f"train: {name} is required (a non-empty string)")
        checks = [
            (self.limit is None or self.limit >= 1, f"limit must be >= 1, got {self.limit}"),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.lr > 0 and self.lr < 1, f"lr must be in (0, 1), got {self.lr}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.grad_accum >= 1, f"grad_accum must be >= 1, got {self.grad_accum}"),
            (self.max_len >= 8, f"max_len must be >= 8, got {self.max_len}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"),
            (0 <= self.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}"),
            (0 <= self.min_lr_ratio <= 1, f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}"),
            (self.max_grad_norm > 0, f"max_grad_norm must be > 0, got {self.max_grad_norm}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"),
            (self.save_every >= 0, f"save_every must be >= 0 (0: no intermediate checkpoints), got {self.save_every}"),
            (self.keep_checkpoints >= 0, f"keep_checkpoints must be >= 0 (0: keep all), got {self.keep_checkpoints}"),
            (self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise PtstError(f"train: {msg}")
        if self.seed < 0:
            raise PtstError(f"train: seed must be >= 0, got {self.seed}")
        names = [m.data for m in self.mix]
        if len(set(names)) != len(names):
            raise PtstError("train: the same data set appears twice in mix; give it once with the total n")

    @property
    def template_for(self) -> dict[str, str]:
        """Each mixed set's effective template name."""
        return {m.data: m.template or self.template for m in self.mix}


def parse_mix(text: str) -> MixSpec:
    """'safety:500', 'safety:500:chat:llama', 'jsonl:/p/x.jsonl:20' -> MixSpec (the first all-digit part is n)."""
    parts = text.split(":")
    for i, part in enumerate(parts[1:], 1):
        if part.isdigit():
            return MixSpec(":".join(parts[:i]), int(part), ":".join(parts[i + 1:]) or None)
    raise PtstError(f"--mix {text!r}: expected DATA:N[:TEMPLATE], e.g. safety:500 or safety:500:chat:llama")


def to_yaml_dict(cfg: TrainConfig) -> dict[str, Any]:
    return dict(to_dict(cfg))


def identity(cfg: TrainConfig) -> dict[str, Any]:
    """The resolved config minus operational keys: two runs with equal identities compute the same thing."""
    d = to_yaml_dict(cfg)
    for k in OPERATIONAL_KEYS:
        d.pop(k, None)
    return d


def load_train_config(path: str | Path | None = None, flags: dict[str, Any] | None = None,
                      overrides: list[str] | None = None) -> TrainConfig:
    """Defaults < YAML file < explicit CLI flags < key=value overrides (the most specific wins)."""
    data: dict[str, Any] = read_yaml(path) if path is not None else {}
    data = deep_merge(data, {k: v for k, v in (flags or {}).items() if v is not None})
    data = deep_merge(data, parse_overrides(overrides or []))
    missing = [k for k in ("model", "data", "template") if not data.get(k)]
    if missing:
        where = f" or in {path}" if path else ""
        raise PtstError(f"train: missing {', '.join(missing)} (give --{missing[0]}{where})")
    return from_dict(TrainConfig, data, str(path) if path else "train")


def to_yaml_dict_mix(m: MixSpec) -> dict[str, Any]:
    return {k: v for k, v in to_dict(m).items() if v is not None}
