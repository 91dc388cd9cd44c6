"""The alignment stage's artifact: its key (spec, base model content, fine-tuning rows kept out) and the state of
its directory, refused when made with another key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ptst.errors import PtstError
from ptst.io import read_json, stable_hash
from ptst.models import model_id
from ptst.runs.layout import AlignDir
from ptst.runs.state import State, Status
from ptst.specs.align import AlignSpec


def align_key(spec: AlignSpec, model: str, exclude: set[str] | None = None) -> str:
    """What identifies an alignment: its spec, the base model and the fine-tuning rows kept out of its data."""
    return stable_hash({"spec": vars(spec), "model": model_id(model), "exclude": sorted(exclude or ())})


@dataclass(frozen=True)
class AlignArtifact:
    """An alignment directory for one AlignSpec, base model and set of fine-tuning rows kept out of its data.
    align.json, written last, carries the key; a directory made with another key is refused."""

    dir: AlignDir
    spec: AlignSpec
    model: str
    exclude: frozenset[str] = frozenset()
    on_different: ClassVar[str] = "refused: use another run directory"

    @property
    def path(self) -> Path:
        return self.dir.path

    def key(self) -> str:
        return align_key(self.spec, self.model, set(self.exclude))

    def state(self) -> Status:
        d = self.dir
        if d.manifest.exists():
            if read_json(d.manifest).get("key") != self.key():
                return Status(State.DIFFERENT, "made with a different align: section, base model or fine-tuning data")
            return Status(State.DONE) if (d.model / "config.json").exists() else Status(State.PARTIAL, "no model/")
        started = [p.name for p in (d.data_dir, d.train.path, d.model) if p.exists()]
        return Status(State.PARTIAL, ", ".join(started) + " written") if started else Status(State.NEW)

    def checked_state(self) -> Status:
        """state(), refusing an alignment made with another key (`ptst align` and `ptst run` alike)."""
        status = self.state()
        if status.state is State.DIFFERENT:
            raise PtstError(f"{self.path} holds an alignment made with a different config ({status.detail}); use "
                            "another directory (ptst run: another --out)")
        return status
