"""Refusals before any work: the whole grid config validated, and a run directory's earlier grid.yaml compared."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ptst.align import train_config as align_train_config
from ptst.config import to_dict
from ptst.data import DATASETS
from ptst.data.custom import parse_custom
from ptst.data.load import split_spec
from ptst.errors import PtstError
from ptst.evaluate.kinds import check_spec
from ptst.grid.cells import load_grid, train_config
from ptst.grid.config import GridConfig
from ptst.grid.plan import expand
from ptst.judge import JUDGES
from ptst.models import resolve
from ptst.runs.layout import RunDir
from ptst.specs.eval import EvalConfig
from ptst.specs.train import OPERATIONAL_KEYS
from ptst.templates import get_template

# Grid lists that only add cells or columns when every old entry is kept: what is finished stays valid.
ADDITIVE = ("train_templates", "test_templates", "evals", "judges", "seeds", "mixes")
# How the grid is executed or reported, never what it computes: a grid started locally may be finished on Ray and back.
OPERATIONAL = ("executor", "ray", "report")
# What only the evaluation cells are computed from: a change is not refused; every evaluation cell it touches finds
# its inputs changed and is recomputed, its stale files moved aside (training, hours of work, is never redone).
EVALUATION = ("evals", "checkpoint_evals", "checkpoint_tests", "judges", "judge", "decoding", "generate", "eval_seed")


def _where(where: str, fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except PtstError as e:
        raise PtstError(f"{where}: {e}") from None


def check_data_name(spec: str, split: str | None, where: str) -> None:
    """A registered set (and split) or an existing custom file; nothing is read or downloaded."""
    def check() -> None:
        custom = parse_custom(spec)
        if custom is not None:
            if not custom[1].is_file():
                raise PtstError(f"no such file {custom[1]}")
            return
        name, sp = split_spec(spec, split)
        DATASETS.get(name).resolve_split(sp)

    _where(where, check)


def _templates(names: list[str], what: str) -> None:
    for i, name in enumerate(names):
        _where(f"{what}[{i}]", get_template, name)


def validate(cfg: GridConfig, model: str) -> None:
    """Everything a grid names, checked in seconds without loading data or models: templates, data set names,
    every training cell's TrainConfig (with the would-be model path), eval sets, judges, decoding, generate."""
    resolve(cfg.model)
    _templates(cfg.train_templates, "train_templates")
    _templates(cfg.test_templates, "test_templates")
    tc = [train_config(cfg, model, c) for c in expand(cfg) if c.template is not None][0]  # every cell's config
    check_data_name(tc.data, tc.split, "train.data")
    for i, m in enumerate(tc.mix):
        check_data_name(m.data, m.split, f"train.mix[{i}]")
        if m.template:
            _where(f"train.mix[{i}].template", get_template, m.template)
    for i, e in enumerate(cfg.evals):
        check_data_name(e.data, e.split, f"evals[{i}]")
    specs = [e.resolved() for e in cfg.evals]
    _eval_settings(cfg, model, specs)
    for i, row in enumerate(cfg.mixes):
        check_data_name(row.data, row.split, f"mixes[{i}].data")
        if row.template != "task":
            _where(f"mixes[{i}].template", get_template, row.template)
    if cfg.align is not None:
        _align(cfg)


def _eval_settings(cfg: GridConfig, model: str, specs: list[Any]) -> None:
    ecfg = EvalConfig(model=model, template=cfg.test_templates[0], evals=cfg.evals, judges=cfg.judges,
                      judge=cfg.judge, decoding=cfg.decoding, generate=cfg.generate, data_dir=cfg.data_dir,
                      seed=cfg.eval_seed)
    for i, s in enumerate(specs):
        check_spec(s, f"evals[{i}]")
        ecfg.generate_config(s)  # decoding and generate keys, the backend
    for i, name in enumerate(cfg.judges):
        _where(f"judges[{i}]", JUDGES.get, name)
        ecfg.judge_config(name)


def _align(cfg: GridConfig) -> None:
    a = cfg.align
    assert a is not None
    _templates(a.templates, "align.templates")
    names = [(a.safety, None, "align.safety"), (a.benign, a.benign_split, "align.benign"),
             (a.heldout, None, "align.heldout"), (a.overrefusal, None, "align.overrefusal")]
    names += [(d, None, f"align.decontaminate[{i}]") for i, d in enumerate(a.decontaminate)]
    for spec, split, where in names:
        check_data_name(spec, split, where)
    parts = [{"data": f"align-part-{i}", "template": t, "n": 1} for i, t in enumerate(a.templates)]
    align_train_config(a, cfg.model, parts)


def _leaves(key: str, old: Any, new: Any) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [p for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)
                for p in _leaves(f"{key}.{k}", old.get(k), new.get(k))]
    return [key]


def grid_changes(old: GridConfig, new: GridConfig, *, evaluation: bool = False) -> list[str]:
    """The dotted keys in which `new` differs from `old` in a way that changes finished training results
    (`evaluation`: in a way that changes evaluation cells, which are recomputed). Additive changes pass: more
    train/test templates, seeds (every old entry kept), the baseline turned on, the operational training knobs."""
    a, b = to_dict(old), to_dict(new)
    for k in (*ADDITIVE, "checkpoint_evals", "checkpoint_tests"):  # an empty list may be left out (omit_empty)
        a.setdefault(k, [])
        b.setdefault(k, [])
    changed: list[str] = []
    if not evaluation:  # lists where empty means every one: narrowing one drops finished cells, as removing a template
        changed += ["checkpoint_tests"] * _narrowed(a["checkpoint_tests"], b["checkpoint_tests"])
        rows = {r["name"]: r for r in b["mixes"]}
        changed += [f"mixes.{r['name']}.train_templates" for r in a["mixes"] if r["name"] in rows
                    and _narrowed(r.get("train_templates", []), rows[r["name"]].get("train_templates", []))]
    for x in (a, b):  # a mixing row that only gains training templates adds cells: compared without them
        x["mixes"] = [{k: v for k, v in r.items() if k != "train_templates"} for r in x["mixes"]]
    for k in a:
        if a[k] == b.get(k) or k in OPERATIONAL or (k in EVALUATION) != evaluation:
            continue
        if k in ADDITIVE and all(x in b[k] for x in a[k]):
            continue
        if k == "baseline" and b[k]:
            continue
        changed += _leaves(k, a[k], b[k])
    return [p for p in changed if p not in {f"train.{o}" for o in OPERATIONAL_KEYS}]


def _narrowed(old: list[Any], new: list[Any]) -> bool:
    """Whether a list where empty means "every one" lost an entry."""
    return bool(new) and (not old or any(x not in new for x in old))


def has_results(root: Path) -> bool:
    """Whether a run directory holds anything a changed config would contradict (not just a failed start)."""
    run = RunDir(root)
    if run.align.manifest.exists() or run.align.train.config.exists():
        return True
    return any(t.config.exists() for t in run.train_dirs()) or any(e.metrics.exists() for e in run.eval_dirs())


def check_grid_yaml(cfg: GridConfig, root: Path) -> None:
    """Refuse a run directory whose grid.yaml differs from `cfg` in a key that changes its finished results."""
    path = RunDir(root).grid_yaml
    if not path.exists() or not has_results(root):
        return
    try:
        old = load_grid(path)
    except PtstError as e:
        raise PtstError(f"{path} cannot be read ({e}); use another --out") from None
    changed = grid_changes(old, cfg)
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise PtstError(f"{root} holds training results of a different grid config (changed: {shown}); use another "
                        "--out (adding train/test templates or seeds, and any change to evals, judges, decoding or "
                        "generation, is fine: evaluation cells are recomputed)")
    recomputed = grid_changes(old, cfg, evaluation=True)
    if recomputed:
        shown = ", ".join(recomputed[:5]) + (f" and {len(recomputed) - 5} more" if len(recomputed) > 5 else "")
        print(f"ptst run: {path.name} changed ({shown}): the evaluation cells these touch will be recomputed",
              file=sys.stderr)
