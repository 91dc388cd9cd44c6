"""Resumable checkpoints: `checkpoints/step-N/` = trainable weights, optimizer, scheduler, RNG and plan position."""

from __future__ import annotations

import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptst.errors import PtstError
from ptst.io import atomic_dir

STEP_DIR = re.compile(r"^step-(\d+)$")


@dataclass(frozen=True)
class Progress:
    """Where a run stands: optimizer steps done, tokens seen, seconds spent (across resumed segments)."""

    step: int = 0
    tokens: int = 0
    response_tokens: int = 0
    elapsed_s: float = 0.0
    last_loss: float | None = None
    first_loss: float | None = None


def checkpoints(out: Path) -> list[tuple[int, Path]]:
    root = out / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := STEP_DIR.match(p.name)) and p.is_dir()]
    return sorted(f for f in found if (f[1] / "state.pt").exists())


def latest(out: Path) -> Path | None:
    found = checkpoints(out)
    return found[-1][1] if found else None


def _rng_state() -> dict[str, Any]:
    import torch

    version, internal, gauss = random.getstate()
    state = {"torch": torch.get_rng_state(), "python": [version, list(internal), gauss]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(out: Path, lm: Any, optimizer: Any, scheduler: Any, progress: Progress, plan_sha: str,
         keep: int) -> Path:
    """Write step-N atomically (temp dir + rename), then prune all but the newest `keep` (0: keep all)."""
    import torch
    from safetensors.torch import save_file

    from ptst.train.model import save_adapter, trainable_state

    dst = out / "checkpoints" / f"step-{progress.step}"
    with atomic_dir(dst) as tmp:
        save_file(trainable_state(lm), str(tmp / "trainable.safetensors"))
        if hasattr(lm, "peft_config"):  # a usable adapter for evaluating intermediate steps
            save_adapter(lm, tmp / "adapter")
        state = {"progress": progress.__dict__, "plan_sha": plan_sha, "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "rng": _rng_state()}
        torch.save(state, tmp / "state.pt")
    if keep:
        for _, old in checkpoints(out)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return dst


def load(ckpt: Path, lm: Any, optimizer: Any, scheduler: Any, plan_sha: str) -> Progress:
    """Restore weights, optimizer, scheduler and RNG; refuse a checkpoint made for a different plan."""
    import torch
    from safetensors.torch import load_file

    from ptst.train.model import load_trainable_state

    try:
        state = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as e:
        raise PtstError(f"cannot read checkpoint {ckpt}: {e}") from None
    if state.get("plan_sha") != plan_sha:
        raise PtstError(f"checkpoint {ckpt} was made for a different data order (other data, batch size or number "
                        "of processes); start over with --overwrite")
    load_trainable_state(lm, load_file(str(ckpt / "trainable.safetensors")))
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"])
    return Progress(**state["progress"])
