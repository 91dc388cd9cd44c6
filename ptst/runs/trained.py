"""spec.json, a finished training run's record, as the later stages read it (the training stage writes it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptst.errors import PtstError
from ptst.io import read_json
from ptst.runs.layout import TrainDir


@dataclass(frozen=True)
class TrainSpec:
    """What a finished training run made: its directory, the base model (as given and by content), the method
    and weights, the config's key, the training template and its rendered fingerprint. `doc`: the whole file."""

    path: Path
    base_model: str
    base_model_id: str
    method: str  # "lora" | "full"
    weights_sha256: str
    config_sha256: str
    template: str | None
    template_fingerprint: str | None
    non_commercial: bool
    doc: dict[str, Any]

    @property
    def dir(self) -> TrainDir:
        return TrainDir(self.path)

    @property
    def weights(self) -> Path:
        """The adapter directory (LoRA) or the full model's."""
        return self.dir.model if self.method == "full" else self.dir.adapter

    @classmethod
    def read(cls, run_dir: str | Path) -> TrainSpec:
        """A training run's spec.json; a missing file or one without the fields below is one PtstError."""
        d = TrainDir(Path(run_dir))
        doc = read_json(d.spec)
        if not isinstance(doc, dict) or doc.get("kind") != "ptst.train":
            raise PtstError(f"{d.spec}: not a ptst training record (kind is not ptst.train)")
        missing = [k for k in ("base_model", "base_model_id", "method", "weights_sha256", "config_sha256")
                   if not isinstance(doc.get(k), str)]
        if missing:
            raise PtstError(f"{d.spec}: {missing[0]} is missing or not a string")
        t = doc.get("template")
        template: dict[str, Any] = t if isinstance(t, dict) else {}
        return cls(path=d.path, base_model=doc["base_model"], base_model_id=doc["base_model_id"],
                   method=doc["method"], weights_sha256=doc["weights_sha256"], config_sha256=doc["config_sha256"],
                   template=template.get("name"), template_fingerprint=template.get("fingerprint"),
                   non_commercial=bool(doc.get("non_commercial")), doc=doc)
