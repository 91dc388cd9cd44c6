"""`executor: ray`: the grid as Ray tasks (alignment, then each training cell, then its evaluation cells), each
submitted again when its worker or node dies. The driver alone writes the run directory: each finished cell comes
back as a tar and is placed atomically under its usual path, so a rerun (or `ptst status`) sees exactly what a
local run leaves."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptst.errors import PtstError
from ptst.grid.artifacts import clear_incoming, pack_dir, place_dir, place_train_cell
from ptst.grid.cells import align_status, eval_config, eval_status, model_path, say, train_config, train_status
from ptst.grid.config import GridConfig, RaySpec, Resources
from ptst.grid.plan import EvalCell, TrainCell
from ptst.grid.relocate import rebase, replace_paths
from ptst.grid.tasks import Input, Result, align_task, eval_task, train_task
from ptst.io import stable_hash
from ptst.models import adapter_hash, model_id
from ptst.runs.layout import RunDir
from ptst.specs.train import identity


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


LOOPBACK = "127.0.0.1"


@dataclass
class Session:
    """A connection to a Ray cluster; `owned`: this process started it (and shuts it down); `restore`: undoes
    what connect() changed in this process's Ray (its console output)."""
    ray: Any
    owned: bool
    restore: Callable[[], None] | None = None

    def close(self) -> None:
        if self.owned:
            self.ray.shutdown()
        if self.restore is not None:
            self.restore()


@contextmanager
def _cluster_mode_off(ray: Any) -> Iterator[None]:
    """Ray's servers (GCS, raylet and object manager, every worker, the runtime-env agent) listen on loopback
    only when the node's IP is exactly 127.0.0.1, but on Linux ray.init turns 127.0.0.1 into the machine's
    outward address unless Ray's cluster mode is off (its macOS and Windows default), a constant read from
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when ray is imported. Off for the start only; connect() checks the outcome."""
    consts = ray._private.ray_constants
    was = consts.ENABLE_RAY_CLUSTER
    consts.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        consts.ENABLE_RAY_CLUSTER = was


def _quiet(ray: Any) -> Callable[[], None]:
    """Ray prints every error report the cluster publishes (a dead worker's page of exit details, each retry) on
    the driver's stdout from a thread of its own, whatever log_to_driver says; the scheduler prints one line per
    retry instead, and the reports stay in Ray's session logs (gcs_server.out, events/). Returns the undo."""
    worker = ray._private.worker
    if not hasattr(worker, "_worker_logs_enabled"):  # another Ray: its reports are printed, nothing breaks
        return lambda: None
    was = worker._worker_logs_enabled
    worker._worker_logs_enabled = False

    def restore() -> None:
        worker._worker_logs_enabled = was
    return restore


def _init(ray: Any, addr: str | None, spec: RaySpec) -> None:
    """Connect to `addr`, or start a local cluster on 127.0.0.1 and check that it listens nowhere else."""
    kw: dict[str, Any] = {"include_dashboard": False, "logging_level": "ERROR", "log_to_driver": False}
    try:
        if addr:
            ray.init(address=addr, **kw)
            return
        with _cluster_mode_off(ray):  # "local": a new cluster, whatever RAY_ADDRESS says
            ctx = ray.init(address="local", _node_ip_address=LOOPBACK, num_cpus=spec.num_cpus,
                           object_store_memory=spec.object_store_memory, **kw)
    except Exception as e:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError...
        raise PtstError(f"cannot connect to Ray at {addr or 'a new local cluster'}: "
                        f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    ip = ctx.address_info.get("node_ip_address")
    if ip != LOOPBACK:
        ray.shutdown()
        raise PtstError(f"the local Ray cluster would listen on {ip}, not on {LOOPBACK} only (anyone who reaches "
                        "an open Ray port runs code on it); start one with `ray start --head` and pass --address")


def connect(spec: RaySpec, address: str | None = None) -> Session:
    """Connect (or start a local cluster, on loopback only) and check the resource requests; raises before
    anything is written."""
    ray = require_ray()
    owned = False
    if not ray.is_initialized():
        addr = address or spec.address or os.environ.get("RAY_ADDRESS") or None
        check_address(addr)
        _init(ray, addr, spec)
        owned = True
    session = Session(ray, owned, _quiet(ray))
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


def _died(e: BaseException) -> str | None:
    """What took a task's process away (its worker, its node, the memory monitor): worth another attempt. None:
    the task itself raised, and would again."""
    from ray import exceptions as x

    if isinstance(e, x.NodeDiedError):
        return "node died"
    if isinstance(e, x.OutOfMemoryError):
        return "worker killed by Ray's memory monitor"
    if isinstance(e, x.WorkerCrashedError):
        return "worker died"
    if isinstance(e, x.ObjectLostError) and not isinstance(e, x.OwnerDiedError):
        return "result lost with its node"
    return None


@dataclass
class _Task:
    """A submitted cell: `submit` sends it (again: the same arguments, so the same scratch directory on a node);
    `attempt` counts the retries so far."""
    kind: str  # align | train | eval
    cell: Any
    submit: Callable[[], Any]  # -> a new object ref
    attempt: int = 0

    @property
    def label(self) -> str:
        return "align" if self.kind == "align" else self.cell.id if self.kind == "train" else self.cell.path


@dataclass
class _State:
    total: int
    done: int = 0
    failed: list[str] = field(default_factory=list)
    running: dict[Any, _Task] = field(default_factory=dict)  # object ref -> its task
    last: str = ""


class Scheduler:
    """Submits every unfinished cell, places each result as it arrives, retries a cell whose worker or node died
    (the driver does, not Ray: it knows which cell that was), and reports progress."""
    def __init__(self, cfg: GridConfig, root: Path, session: Session, run_key: str) -> None:
        self.cfg, self.root, self.ray, self.run_key = cfg, root, session.ray, run_key
        self.spec = cfg.ray or RaySpec()
        self.model = model_path(cfg, root)
        self._base: Input | None = None
        self._shipped: dict[str, Input] = {}
        self.state = _State(0)

    def _task(self, kind: str, cell: Any, fn: Any, res: Resources, *args: Any) -> _Task:
        remote = self.ray.remote(fn).options(max_retries=0, retry_exceptions=False, name=fn.__name__,
                                             **res.options())
        return _Task(kind, cell, lambda: remote.remote(*args))

    def _start(self, task: _Task) -> None:
        self.state.running[task.submit()] = task

    def _retry(self, task: _Task, e: BaseException) -> bool:
        """Submit `task` again when its process died and retries are left (one line says so); False: it failed."""
        died = _died(e)
        if died is None or task.attempt >= self.spec.max_retries:
            return False
        task.attempt += 1
        say(f"ptst run: cell {task.label} ({task.kind}): {died}, retry {task.attempt} of {self.spec.max_retries}")
        return True

    def _failure(self, task: _Task, e: BaseException) -> str:
        died = _died(e)
        if died is None:
            return _why(e)
        n = task.attempt + 1
        return f"{died} ({n} attempt{'s' if n > 1 else ''}: ray.max_retries={self.spec.max_retries})"

    def _input(self, path: Path, key: str) -> Input:
        """Shipped: packed and put in the object store once per content, however many tasks read it."""
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

            path = RunDir(self.root).align.model
            self._base = self._input(path, model_id(str(path)))
        return self._base

    def progress(self, pending: int) -> None:
        s = self.state
        failed = f", {len(s.failed)} failed" if s.failed else ""
        line = f"grid {self.cfg.name} [ray]: {s.done} done, {len(s.running)} running, {pending} pending{failed} " \
               f"(of {s.total} cells)"
        if line != s.last and s.total:

            say(line)
            s.last = line

    def align(self, exclude: set[str]) -> None:
        assert self.cfg.align is not None
        res_spec = self.spec.align or self.spec.train
        say(f"== align (ray, {_fmt(res_spec.request())})")
        task = self._task("align", None, align_task, res_spec, self.cfg.align, self.cfg.model, self.run_key,
                          self.spec.scratch_dir, self.cfg.data_dir, exclude, self.cfg.generate)
        while True:
            try:
                res: Result = self.ray.get(task.submit())
                break
            except Exception as e:  # noqa: BLE001 - every cell depends on it: stop here
                if not self._retry(task, e):
                    raise PtstError(f"alignment failed: {self._failure(task, e)}") from None
        target = RunDir(self.root).align.path
        place_dir(self.root, res.data, target, lambda d: replace_paths(d, [(res.workdir or "", str(target))]))
        say(f"== align done on {res.host} in {res.seconds:.0f} s")

    def submit_train(self, tc: TrainCell) -> None:
        tcfg = train_config(self.cfg, self.model, tc)
        name = f"{tc.id}-{stable_hash(identity(tcfg))[:12]}"
        self._start(self._task("train", tc, train_task, self.spec.train, tcfg, name, self.run_key,
                               self.spec.scratch_dir, self.base()))

    def submit_eval(self, ec: EvalCell) -> None:
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
        self._start(self._task("eval", ec, eval_task, self.spec.eval, ecfg, name, self.run_key,
                               self.spec.scratch_dir, base, adapter))

    def finish(self, ref: Any) -> list[EvalCell] | None:
        """Place a finished task's cell; a training cell returns its evaluation cells, now ready to run."""
        task = self.state.running.pop(ref)
        kind, cell, label = task.kind, task.cell, task.label
        try:
            res: Result = self.ray.get(ref)
        except Exception as e:  # noqa: BLE001 - a cell that failed for good: the others go on
            if self._retry(task, e):
                self._start(task)
                return None
            why = self._failure(task, e)
            self.state.failed.append(f"{label}: {why}")
            say(f"== {kind} {label} FAILED: {why}")
            return None
        if kind == "train":
            tcfg = train_config(self.cfg, self.model, cell)
            target = RunDir(self.root).train(cell.id).path
            place_train_cell(self.root, res.data, target, lambda d: rebase(d, tcfg, res))
        else:
            target = RunDir(self.root).eval(cell.train_cell, cell.id).path
            place_dir(self.root, res.data, target, lambda d: replace_paths(d, [(res.workdir or "", str(target))]))
        self.state.done += 1
        say(f"== {kind} {label} done on {res.host} in {res.seconds:.0f} s")
        return list(cell.evals) if kind == "train" else None


def run_grid(cfg: GridConfig, root: Path, cells: list[TrainCell], exclude: set[str], session: Session,
             align_only: bool = False) -> None:
    """Run every unfinished stage of `cells` on the cluster; raise one line naming the cells that failed."""
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
