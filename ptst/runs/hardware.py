"""What hardware and precision made a run directory's results: recorded beside them (spec.json's `hardware` and
`hyperparameters.precision`, each generations file's `throughput`), never in their keys.

A result's key names what it means (model, adapter, template, data, decoding, dtype), not the machine: a
bf16-trained adapter is a valid result of `precision: auto` wherever it is read. But the machine decides what
`auto` becomes (bf16 on a CPU with fast bf16, fp32 elsewhere) and the rounding of every product, so a grid
finished on two machines can hold cells that differ for that reason alone. These readers let the report list
the hardware of every cell, `ptst status` show it, and `ptst run` say so before it adds cells made elsewhere."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptst.io import read_json
from ptst.runs.layout import EvalDir, RunDir, TrainDir


@dataclass(frozen=True)
class Made:
    """How one result was computed: its precision ('bf16', 'fp32'; for answers the model's dtype, 'float32')
    and hardware ('Intel(R) Xeon(R) Processor, 2 cores, amx_bf16', 'cuda: NVIDIA H100 80GB HBM3'; None in files
    written before ptst recorded it)."""

    precision: str | None
    hardware: str | None
    tok_s: float | None = None  # training: trained tokens over training time, where spec.json records them

    def describe(self) -> str:
        return f"{self.precision or '?'} on {self.hardware or 'unrecorded hardware'}"


def _doc(path: Path) -> dict[str, Any] | None:
    try:
        doc = read_json(path) if path.exists() else None
    except Exception:  # noqa: BLE001 - an unreadable record is reported as unknown, never fatal to a report
        return None
    return doc if isinstance(doc, dict) else None


def trained(train_dir: Path) -> Made | None:
    """How a finished training run (its spec.json) was computed; None when it has not finished."""
    doc = _doc(TrainDir(train_dir).spec)
    if doc is None:
        return None
    hyper = doc.get("hyperparameters")
    precision = hyper.get("precision") if isinstance(hyper, dict) else None
    hardware = doc.get("hardware")
    tokens, seconds = _number(doc.get("trained_tokens")), _number(doc.get("train_time_s"))
    return Made(str(precision) if precision else None, str(hardware) if hardware else None,
                tokens / seconds if tokens is not None and seconds is not None and seconds > 0 else None)


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def generated(eval_dir: Path) -> list[Made]:
    """How each of an evaluation cell's finished generations files was computed (in file order). API backends'
    answers were computed by the server: their hardware is not known here (None)."""
    out = []
    for meta in sorted(EvalDir(eval_dir).generations_dir.glob("*.meta.json")):
        doc = _doc(meta)
        t = doc.get("throughput") if doc else None
        if not isinstance(t, dict):
            continue
        dtype = t.get("dtype")
        hardware = t.get("hardware")
        if "hardware" not in t and t.get("engine") == "fast":  # before `hardware`: the fast engine runs on the CPU only
            hardware = t.get("cpu")
        out.append(Made(str(dtype) if dtype else None, str(hardware) if hardware else None))
    return out


def finished_elsewhere(run_dir: Path, here: Callable[[], str]) -> str | None:
    """One line when results in `run_dir` were made on hardware other than this machine's (`here()`, e.g.
    `ptst.runtime.cpu.here`, asked only when some result names its hardware: it imports torch), None otherwise or
    when this machine cannot be named:
    what was made where, and what that means for cells computed elsewhere."""
    run = RunDir(run_dir)
    made: list[tuple[str, str, str]] = []  # (hardware, what was made how, what it is)
    for d in [run.align.train, *run.train_dirs()]:
        m = trained(d.path)
        if m is not None and m.hardware is not None:
            made.append((m.hardware, f"trained in {m.precision or '?'} on {m.hardware}", "training run"))
    measured = sorted(e for e in run.align.path.glob("eval-*/*") if e.is_dir())
    for ev in [*(e.path for e in run.eval_dirs()), *measured]:
        made += [(g.hardware, f"answered in {g.precision or '?'} on {g.hardware}", "generations file")
                 for g in generated(ev) if g.hardware is not None]
    if not made:
        return None
    this = here()
    if this == "cuda":  # a GPU torch could not name: nothing to compare with
        return None
    others = Counter((what, noun) for hardware, what, noun in made if hardware != this)
    if not others:
        return None
    parts = "; ".join(f"{n} {noun}{'' if n == 1 else 's'} {what}" for (what, noun), n in sorted(others.items()))
    return (f"note: this run directory holds results made on other hardware than this machine ({this}): {parts}. "
            "They are kept (their keys do not name the machine), but cells computed on different hardware may "
            "differ from them by rounding, or by precision where `precision: auto` resolves differently; the "
            "report lists every cell's hardware")
