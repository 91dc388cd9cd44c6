"""Which of a grid run's finished numbers are still today's: every evaluation cell checked against the run's own
grid.yaml with today's code, data, model and adapters, by the same artifacts `ptst status` and the runner ask
(ptst.grid.cells). `ptst report` shows only what is current; what changed is named, never kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ptst.errors import PtstError
from ptst.evaluate.key import EvalArtifact
from ptst.grid.cells import align_status, eval_config, load_grid, model_path, train_status, trained_on_other_data
from ptst.grid.config import GridConfig
from ptst.grid.plan import EvalCell, TrainCell, expand
from ptst.io import no_downloads, read_json
from ptst.runs.keys import NEW_SET
from ptst.runs.layout import RunDir
from ptst.runs.state import WHOLE, Currency, State

NOT_IN_GRID = "not a cell of the run's grid.yaml"


def currency(run_dir: str | Path) -> Currency:
    """The run's finished cells (or sets of them) that are stale, and those that could not be checked here (an
    input not on this machine: nothing is downloaded). A directory without grid.yaml is not checked."""
    run = RunDir(Path(run_dir))
    if not run.grid_yaml.exists():
        return Currency({}, {}, note="no grid.yaml (not a `ptst run` directory), so no cell was checked against "
                                     "today's inputs")
    with no_downloads():
        try:
            cfg = load_grid(run.grid_yaml)
        except PtstError as e:
            return Currency({}, {}, note=f"its grid.yaml cannot be read ({e}), so no cell was checked")
        return _check(cfg, run)


def _check(cfg: GridConfig, run: RunDir) -> Currency:
    stale: dict[str, dict[str, str]] = {}
    unchecked: dict[str, str] = {}
    finished = {str(e.path.relative_to(run.path)) for e in run.eval_dirs() if e.metrics.exists()}
    upstream, align = _alignment(cfg, run.path)
    model = model_path(cfg, run.path)
    toks: dict[str, Any] = {}  # the tokenizer each training text is rendered with again, loaded once
    plan = expand(cfg)
    for c in plan:
        cells = [e for e in c.evals if e.path in finished]
        why = upstream
        if cells and not why and c.template is not None:
            try:
                why = _training(cfg, run, c, model, toks)
            except PtstError as err:
                unchecked.update({e.path: f"its training cell cannot be checked here: {err}" for e in cells})
                continue
        for e in cells:
            if why:
                stale[e.path] = {WHOLE: why}
                continue
            found = _changes(cfg, run.path, e, model)
            if isinstance(found, str):
                unchecked[e.path] = found
            elif found:
                stale[e.path] = found
    known = {e.path for c in plan for e in c.evals}
    unchecked.update({p: NOT_IN_GRID for p in sorted(finished - known)})
    return Currency(stale, unchecked, align=align)


def _training(cfg: GridConfig, run: RunDir, cell: TrainCell, model: str, toks: dict[str, Any]) -> str:
    """Why a training cell's adapter is not today's ("" when it is): its config changed, or the data or the
    rendered training text it was trained on did (`ptst run` refuses to go on over such a cell)."""
    st = train_status(cfg, run.path, cell, model)
    if st.state is State.DIFFERENT:
        return f"its training cell {cell.id} changed: {st.detail}"
    changed = trained_on_other_data(cfg, run.path, cell, model, st, toks)
    return f"its training cell {cell.id} was trained on other data: {changed}" if changed else ""


def _changes(cfg: GridConfig, root: Path, cell: EvalCell, model: str) -> dict[str, str] | str:
    """{set label, or WHOLE: what changed} of a finished cell ({} when current); why it cannot be checked, as a
    string, when an input is not on this machine. A set new today leaves the others current."""
    d = RunDir(root).eval(cell.train_cell, cell.id)
    try:
        found = EvalArtifact(d, eval_config(cfg, model, cell, root)).changes()
        sets = set(read_json(d.metrics).get("evals") or {})
    except PtstError as err:
        return f"not checked here: {err}"
    out: dict[str, str] = {}
    for ch in found:
        if ch.what == NEW_SET:
            continue
        label = ch.label if ch.label in sets else WHOLE
        out[label] = "; ".join(filter(None, (out.get(label), ch.why)))
    return out


def _alignment(cfg: GridConfig, root: Path) -> tuple[str, str]:
    """(why every cell is stale, why the alignment's own refusal figures cannot be shown): an alignment made by
    another config stales everything trained or evaluated on its model; a stale measurement only its figures."""
    if cfg.align is None:
        return "", ""
    try:
        st = align_status(cfg, root)
    except PtstError as e:  # its key holds the fine-tuning rows: data not on this machine
        return "", f"not checked here: {e}"
    if st.state is State.DIFFERENT:
        return f"the alignment stage changed: {st.detail}", st.detail
    return "", st.detail if st.state is State.PARTIAL else ""
