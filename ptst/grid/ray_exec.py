"""`executor: ray`: the grid as Ray tasks (alignment, then each training cell, then its evaluation cells), retried
when a worker dies. The driver alone writes the run directory: each finished cell comes back as a tar and is
placed atomically under its usual path, so a rerun (or `ptst status`) sees exactly what a local run leaves."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptst.errors import PtstError
from ptst.grid.config import GridConfig, RaySpec, Resources
from ptst.grid.plan import EvalCell, TrainCell
from ptst.grid.tasks import Input, Result
from ptst.runs.layout import RunDir, TrainDir


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise PtstError("--executor ray needs Ray, which is not installed: pip install 'ptst[ray]'") from None
    return ray


def check_address(address: str | None, timeout: float = 5.0) -> None:
    """Ray keeps retrying an unreachable cluster for minutes: probe its GCS port first, in seconds."""
    if not address or address == "auto":
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise PtstError(f"ray address {address!r}: expected host:port (e.g. 10.0.0.1:6379) or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise PtstError(f"ray address {address}: cannot reach {host}:{port} ({e.strerror or e}); is "
                        "`ray start --head` running there?") from None


def _fmt(req: dict[str, float]) -> str:
    return ", ".join(f"{k} {v / 2**30:.1f} GiB" if k == "memory" else f"{k} {v:g}" for k, v in req.items())


def check_resources(requests: dict[str, Resources], nodes: list[dict[str, Any]]) -> None:
    """Refuse a request no alive node can hold: Ray would queue such a task forever."""
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive", n.get("alive", True))]
    for what, res in requests.items():
        req = res.request()
        if not any(all(node.get(k, 0.0) >= v for k, v in req.items()) for node in alive):
            biggest: dict[str, float] = max(alive, key=lambda n: (n.get("GPU", 0.0), n.get("CPU", 0.0)), default={})
            have = _fmt({k: biggest[k] for k in ("CPU", "GPU", "memory", *res.custom) if k in biggest})
            raise PtstError(f"ray.{what} asks for {_fmt(req)} per task, but no node of the cluster has that much "
                            f"(largest: {have or 'none'}); lower ray.{what} or add such a node")


@dataclass
class Session:
    """A connection to a Ray cluster; `owned`: this process started it (and shuts it down)."""

    ray: Any
    owned: bool

    def close(self) -> None:
        if self.owned:
            self.ray.shutdown()


def connect(spec: RaySpec, address: str | None = None) -> Session:
    """Connect (or start a local cluster) and check the resource requests; raises before anything is written."""
    ray = require_ray()
    owned = False
    if not ray.is_initialized():
        addr = address or spec.address
        check_address(addr)
        kw: dict[str, Any] = {"include_dashboard": False, "logging_level": "ERROR", "log_to_driver": False}
        if not addr:
            kw.update(num_cpus=spec.num_cpus, object_store_memory=spec.object_store_memory)
        try:
            ray.init(address=addr or None, **kw)
        except Exception as e:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError...
            raise PtstError(f"cannot connect to Ray at {addr or 'a new local cluster'}: "
                            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        owned = True
    session = Session(ray, owned)
    try:
        check_resources({"train": spec.train, "eval": spec.eval, "align": spec.align or spec.train}, ray.nodes())
    except PtstError:
        session.close()
        raise
    return session


def _why(e: BaseException) -> str:
    """One line for a failed task: the stage's own PtstError when it raised one, else Ray's first line."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, PtstError):
        return str(cause)
    text = str(cause or e).strip().splitlines()
    return f"{type(cause or e).__name__}: {text[-1] if text else ''}"


def _replace_paths(d: Path, pairs: list[tuple[str, str]]) -> None:
    """Name the run directory's paths where the node-local ones were recorded (config.yaml, spec.json,
    align.json, adapter configs), so those files read as a local run's."""
    pairs = [(json.dumps(a)[1:-1], json.dumps(b)[1:-1]) for a, b in pairs if a and a != b]
    for p in d.rglob("*"):
        if pairs and p.is_file() and p.suffix in (".json", ".yaml", ".md"):
            text = p.read_text(encoding="utf-8")
            new = text
            for a, b in pairs:
                new = new.replace(a, b)
            if new != text:
                p.write_text(new, encoding="utf-8")


def _rebase(d: Path, tcfg: Any, res: Result) -> None:
    """A training cell made on a shipped (node-local) copy of the aligned model: the run directory's path in
    its files, and spec.json's config_sha256 of the config with that path."""
    from ptst.io import stable_hash
    from ptst.specs.train import identity
    from ptst.train.runner import base_ref

    if not res.model or res.model == tcfg.model:
        return
    _replace_paths(d, [(base_ref(res.model), base_ref(tcfg.model)), (res.model, tcfg.model)])
    spec = TrainDir(d).spec
    if spec.exists():
        doc = json.loads(spec.read_text(encoding="utf-8"))
        doc["config_sha256"] = stable_hash(identity(tcfg))
        spec.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


@dataclass
class _State:
    total: int
    done: int = 0
    failed: list[str] = field(default_factory=list)
    running: dict[Any, tuple[str, Any]] = field(default_factory=dict)  # object ref -> (kind, cell)
    last: str = ""


class Scheduler:
    """Submits every unfinished cell, places each result as it arrives, and reports progress."""

    def __init__(self, cfg: GridConfig, root: Path, session: Session, run_key: str) -> None:
        from ptst.grid.cells import model_path

        self.cfg, self.root, self.ray, self.run_key = cfg, root, session.ray, run_key
        self.spec = cfg.ray or RaySpec()
        self.model = model_path(cfg, root)
        self._base: Input | None = None
        self._shipped: dict[str, Input] = {}
        self.state = _State(0)

    def _remote(self, fn: Any, res: Resources) -> Any:
        return self.ray.remote(fn).options(max_retries=self.spec.max_retries, retry_exceptions=False,
                                           name=fn.__name__, **res.options())

    def _input(self, path: Path, key: str) -> Input:
        """Shipped: packed and put in the object store once per content, however many tasks read it."""
        from ptst.grid.artifacts import pack_dir

        if self.spec.inputs != "ship":
            return Input(str(path), key)
        if key not in self._shipped:
            self._shipped[key] = Input(str(path), key, self.ray.put(pack_dir(path)))
        return self._shipped[key]

    def base(self) -> Input | None:
        """The aligned model as a task input (None: the grid's model, which every node resolves itself)."""
        if self.cfg.align is None:
            return None
        if self._base is None:
            from ptst.models import model_id

            path = RunDir(self.root).align.model
            self._base = self._input(path, model_id(str(path)))
        return self._base

    def progress(self, pending: int) -> None:
        s = self.state
        failed = f", {len(s.failed)} failed" if s.failed else ""
        line = f"grid {self.cfg.name} [ray]: {s.done} done, {len(s.running)} running, {pending} pending{failed} " \
               f"(of {s.total} cells)"
        if line != s.last and s.total:
            from ptst.grid.cells import say

            say(line)
            s.last = line

    def align(self, exclude: set[str]) -> None:
        from ptst.grid.artifacts import place_dir
        from ptst.grid.cells import say
        from ptst.grid.tasks import align_task

        assert self.cfg.align is not None
        say(f"== align (ray, {_fmt((self.spec.align or self.spec.train).request())})")
        ref = self._remote(align_task, self.spec.align or self.spec.train).remote(
            self.cfg.align, self.cfg.model, self.run_key, self.spec.scratch_dir, self.cfg.data_dir, exclude,
            self.cfg.generate)
        try:
            res: Result = self.ray.get(ref)
        except Exception as e:  # noqa: BLE001 - every cell depends on it: stop here
            raise PtstError(f"alignment failed: {_why(e)}") from None
        target = RunDir(self.root).align.path
        place_dir(self.root, res.data, target, lambda d: _replace_paths(d, [(res.workdir or "", str(target))]))
        say(f"== align done on {res.host} in {res.seconds:.0f} s")

    def submit_train(self, tc: TrainCell) -> None:
        from ptst.grid.cells import train_config
        from ptst.grid.tasks import train_task
        from ptst.io import stable_hash
        from ptst.specs.train import identity

        tcfg = train_config(self.cfg, self.model, tc)
        name = f"{tc.id}-{stable_hash(identity(tcfg))[:12]}"
        ref = self._remote(train_task, self.spec.train).remote(tcfg, name, self.run_key, self.spec.scratch_dir,
                                                              self.base())
        self.state.running[ref] = ("train", tc)

    def submit_eval(self, ec: EvalCell) -> None:
        from ptst.grid.cells import eval_config
        from ptst.grid.tasks import eval_task
        from ptst.io import stable_hash
        from ptst.models import adapter_hash

        ecfg = eval_config(self.cfg, self.model, ec, self.root)
        adapter = None
        if ecfg.adapter is not None:
            path = Path(ecfg.adapter)
            if not path.exists():
                raise PtstError(f"{ec.train_cell}: no adapter at {path} (is step {ec.checkpoint} a multiple of "
                                "save_every and within the run?)")
            adapter = self._input(path, f"adapter-{adapter_hash(path)}")
        base = self.base()
        name = f"{ec.path}-{stable_hash([repr(ecfg), adapter and adapter.key, base and base.key])[:12]}"
        ref = self._remote(eval_task, self.spec.eval).remote(ecfg, name, self.run_key, self.spec.scratch_dir,
                                                            base, adapter)
        self.state.running[ref] = ("eval", ec)

    def finish(self, ref: Any) -> list[EvalCell] | None:
        """Place a finished task's cell; a training cell returns its evaluation cells, now ready to run."""
        from ptst.grid.artifacts import place_dir, place_train_cell
        from ptst.grid.cells import say, train_config

        kind, cell = self.state.running.pop(ref)
        label = cell.id if kind == "train" else cell.path
        try:
            res: Result = self.ray.get(ref)
        except Exception as e:  # noqa: BLE001 - a cell that failed after its retries: the others go on
            why = _why(e)
            if not isinstance(getattr(e, "cause", None), PtstError):  # a dead worker or node: Ray retried it
                why += f" ({1 + self.spec.max_retries} attempts: ray.max_retries={self.spec.max_retries})"
            self.state.failed.append(f"{label}: {why}")
            say(f"== {kind} {label} FAILED: {why}")
            return None
        if kind == "train":
            tcfg = train_config(self.cfg, self.model, cell)
            target = RunDir(self.root).train(cell.id).path
            place_train_cell(self.root, res.data, target, lambda d: _rebase(d, tcfg, res))
        else:
            target = RunDir(self.root).eval(cell.train_cell, cell.id).path
            place_dir(self.root, res.data, target, lambda d: _replace_paths(d, [(res.workdir or "", str(target))]))
        self.state.done += 1
        say(f"== {kind} {label} done on {res.host} in {res.seconds:.0f} s")
        return list(cell.evals) if kind == "train" else None


def run_grid(cfg: GridConfig, root: Path, cells: list[TrainCell], exclude: set[str], session: Session,
             align_only: bool = False) -> None:
    """Run every unfinished stage of `cells` on the cluster; raise one line naming the cells that failed."""
    from ptst.grid.artifacts import clear_incoming
    from ptst.grid.cells import align_status, eval_status, train_status
    from ptst.io import stable_hash

    clear_incoming(root)
    run_key = stable_hash({"host": socket.gethostname(), "root": str(root.resolve())})[:16]
    sched = Scheduler(cfg, root, session, run_key)
    if not align_status(cfg, root, exclude).done:  # a different one was refused by the runner's checks
        sched.align(exclude)
    if align_only:
        return
    waiting: list[TrainCell] = []
    ready: list[EvalCell] = []
    for tc in cells:
        if not train_status(cfg, root, tc, sched.model).done:
            waiting.append(tc)
        else:
            ready += [ec for ec in tc.evals if not eval_status(cfg, root, ec, sched.model).done]
    later = sum(len(tc.evals) for tc in waiting)
    sched.state.total = len(waiting) + later + len(ready)
    try:  # a submission that raises (an eval cell without its adapter) cancels the tasks already submitted
        for tc in waiting:
            sched.submit_train(tc)
        for ec in ready:
            sched.submit_eval(ec)
        while sched.state.running:
            sched.progress(later)
            done, _ = session.ray.wait(list(sched.state.running), num_returns=1, timeout=60)
            for ref in done:
                evals = sched.finish(ref)
                if evals is not None:
                    later -= len(evals)
                    for ec in evals:
                        if not eval_status(cfg, root, ec, sched.model).done:
                            sched.submit_eval(ec)
                        else:
                            sched.state.done += 1
        sched.progress(later)
    except BaseException:
        for ref in list(sched.state.running):
            session.ray.cancel(ref, force=True)
        raise
    finally:
        clear_incoming(root)
    failed = sched.state.failed
    if failed:
        skipped = f"; {later} evaluation cells of failed training cells not run" if later else ""
        raise PtstError(f"{len(failed)} of {sched.state.total} cells failed ({'; '.join(failed[:3])}"
                        f"{' ...' if len(failed) > 3 else ''}){skipped}; finished cells are kept: rerun to retry")
