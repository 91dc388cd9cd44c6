"""A grid's cells as stage configs and artifacts: what each cell's stage is given, and where each stands.

The runner, the Ray executor, `--dry-run` and `ptst status` all ask these functions, so they cannot disagree
about which cell is done."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from ptst.align import AlignArtifact
from ptst.config import from_dict, load_config
from ptst.data import load_dataset
from ptst.errors import PtstError
from ptst.evaluate.key import EvalArtifact, answers
from ptst.grid.config import GridConfig
from ptst.grid.plan import EvalCell, TrainCell
from ptst.runs.layout import RunDir
from ptst.runs.results import row_name
from ptst.runs.state import State, Status
from ptst.runs.trained import TrainSpec
from ptst.specs.eval import EvalConfig
from ptst.specs.train import TrainConfig, parse_mix
from ptst.templates import get_template
from ptst.train.artifact import TrainArtifact, data_change


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load_grid(path: str | Path, overrides: list[str] | None = None) -> GridConfig:
    return load_config(GridConfig, path, overrides)


def model_path(cfg: GridConfig, root: Path) -> str:
    """The model every cell starts from: the aligned one (under the run directory) or the config's."""
    return str(RunDir(root).align.model) if cfg.align is not None else cfg.model


def train_config(cfg: GridConfig, model: str, cell: TrainCell) -> TrainConfig:
    d: dict[str, Any] = {"data": "gsm8k", "split": "train", **cfg.train}
    d["mix"] = [parse_mix(m) if isinstance(m, str) else m for m in d.get("mix", [])]
    d["mix"] = [m if isinstance(m, dict) else {"data": m.data, "n": m.n, "template": m.template, "split": m.split}
                for m in d["mix"]]
    d.update(model=model, template=cell.template, seed=cell.seed, data_dir=cfg.data_dir)
    if cell.mix is not None:  # a safety-mixing row: its examples shuffled in, under its template
        assert cell.template is not None
        m = next(m for m in cfg.mixes if m.name == cell.mix)
        d["mix"] = [*d["mix"], {"data": m.data, "n": m.n, "template": m.template_for(cell.template),
                                "split": m.split}]
    if cfg.checkpoints:
        d["save_every"] = math.gcd(*cfg.checkpoints)
        d["keep_checkpoints"] = 0
    return from_dict(TrainConfig, d, "train")


def eval_config(cfg: GridConfig, model: str, cell: EvalCell, root: Path) -> EvalConfig:
    tdir = RunDir(root).train(cell.train_cell)
    adapter = tdir.adapter_at(cell.checkpoint) if cell.train_template is not None else None
    train_fp = None
    if cell.train_template is not None and tdir.spec.exists():
        train_fp = TrainSpec.read(tdir.path).template_fingerprint
    labels = {"experiment": cfg.name, "train_template": row_name(cell.train_template, cell.mix),
              "test_template": cell.test_template,
              "seed": cell.seed, "checkpoint": cell.checkpoint, "train_cell": cell.train_cell,
              "train_fingerprint": train_fp,
              "train_safety_prompt": get_template(cell.train_template).safety_prompt if cell.train_template else None,
              "test_safety_prompt": get_template(cell.test_template).safety_prompt}
    if cell.mix is not None:
        labels["mix"] = cell.mix
    return EvalConfig(model=model, template=cell.test_template, evals=cfg.evals_at(cell.checkpoint),
                      adapter=str(adapter) if adapter else None, judges=cfg.judges, judge=cfg.judge,
                      decoding=cfg.decoding, generate=cfg.generate, data_dir=cfg.data_dir, seed=cfg.eval_seed,
                      cell=labels)


def finetune_ids(cfg: GridConfig) -> set[str]:
    """Ids of the fine-tuning rows of every seed, kept out of the alignment data (part of the alignment key)."""
    t = cfg.train
    ids: set[str] = set()
    for seed in cfg.seeds:
        ds = load_dataset(t.get("data", "gsm8k"), t.get("split", "train"), data_dir=cfg.data_dir,
                          limit=t.get("limit"), seed=seed)
        ids |= {e.id for e in ds.examples}
    return ids


def train_status(cfg: GridConfig, root: Path, cell: TrainCell, model: str | None = None) -> Status:
    """The training cell's state (the no-fine-tuning cell has nothing to train: always done)."""
    if cell.template is None:
        return Status(State.DONE, "no training")
    tcfg = train_config(cfg, model or model_path(cfg, root), cell)
    return TrainArtifact(RunDir(root).train(cell.id), tcfg).state()


def eval_status(cfg: GridConfig, root: Path, cell: EvalCell, model: str | None = None) -> Status:
    """The evaluation cell's state; one whose inputs are not there yet (its adapter) is new or partial."""
    d = RunDir(root).eval(cell.train_cell, cell.id)
    try:
        return EvalArtifact(d, eval_config(cfg, model or model_path(cfg, root), cell, root)).state()
    except PtstError as e:  # e.g. its training cell has not made the adapter yet
        if d.metrics.exists():  # finished, but its inputs cannot be read here (a tokenizer or data not local)
            return Status(State.PARTIAL, f"finished earlier, not checked here: {e}")
        n = answers(d)
        return Status(State.PARTIAL, f"{n} answers; waiting for its inputs") if n else Status(State.NEW)


def align_artifact(cfg: GridConfig, root: Path, exclude: set[str] | None = None) -> AlignArtifact | None:
    """The grid's alignment (None without an `align:` section); `exclude` (the fine-tuning rows, part of its
    key) is read from the data when not given."""
    if cfg.align is None:
        return None
    ids = finetune_ids(cfg) if exclude is None else exclude
    return AlignArtifact(RunDir(root).align, cfg.align, cfg.model, frozenset(ids), cfg.data_dir, dict(cfg.generate))


def align_status(cfg: GridConfig, root: Path, exclude: set[str] | None = None) -> Status:
    """The alignment's state; without an `align:` section there is nothing to align: done."""
    artifact = align_artifact(cfg, root, exclude)
    return Status(State.DONE, "no alignment") if artifact is None else artifact.state()


def trained_on_other_data(cfg: GridConfig, root: Path, cell: TrainCell, model: str, status: Status,
                          toks: dict[str, Any] | None = None) -> str:
    """For a finished training cell (`status` its state), what changed in the data or the rendered training text it
    was trained on ("" when nothing did, or it is not finished); `toks`: the caller's tokenizer cache."""
    return data_change(RunDir(root).train(cell.id).path, train_config(cfg, model, cell), toks) if status.done else ""


def check_cells(cfg: GridConfig, root: Path, cells: list[TrainCell], data: bool = False) -> None:
    """Refuse training cells already in `root` that were made by another config (or, with `data`, from data
    whose sha256 has changed since)."""
    model = model_path(cfg, root)
    if cfg.align is not None and not RunDir(root).align.manifest.exists():
        return  # nothing downstream can exist yet
    toks: dict[str, Any] = {}  # the tokenizer each rendering is checked with, loaded once
    for cell in cells:
        if cell.template is None:
            continue
        status = train_status(cfg, root, cell, model)
        tdir = RunDir(root).train(cell.id).path
        if status.state is State.DIFFERENT:
            raise PtstError(f"{tdir} was made by a different config ({status.detail}); use another --out "
                            "or remove that cell")
        changed = trained_on_other_data(cfg, root, cell, model, status, toks) if data else ""
        if changed:
            raise PtstError(f"{tdir} was trained on different data ({changed}); use another --out "
                            "or remove that cell")


def pending(cfg: GridConfig, root: Path, cells: list[TrainCell]) -> bool:
    """Whether any selected training or evaluation cell still has work to do."""
    model = model_path(cfg, root)
    return any(not train_status(cfg, root, tc, model).done or
               not all(eval_status(cfg, root, ec, model).done for ec in tc.evals) for tc in cells)
