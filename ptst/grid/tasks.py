"""What a Ray worker runs: one stage of one cell (align, train, evaluate) with the usual stage function, in
node-local scratch, returned as a tar. Workers never write the run directory; the driver does."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ptst.errors import PtstError
from ptst.grid.artifacts import pack_dir, unpack
from ptst.io import atomic_dir, write_json_atomic
from ptst.runtime import threads


@dataclass(frozen=True)
class Input:
    """A run-directory input of a task (the aligned model, a training cell's adapter): its path on the driver,
    a content key, and its tar (an object-store reference) when it is shipped, None when read in place."""

    path: str
    key: str
    data: Any = None


@dataclass(frozen=True)
class Result:
    """A finished task: the cell's directory as a tar, and where and how it ran."""

    data: bytes
    host: str
    pid: int
    seconds: float
    model: str | None = None  # the base model path the task trained on (a shipped input's is node-local)
    workdir: str | None = None  # where the cell was made on the node (files that record paths name it)


def scratch_root(scratch_dir: str | None) -> Path:
    return Path(scratch_dir or tempfile.gettempdir()) / f"ptst-{getpass.getuser()}"


@contextmanager
def _workdir(scratch_dir: str | None, run_key: str, name: str) -> Iterator[Path]:
    """Fixed per (run, cell, config): a retry on the same node resumes the killed attempt's checkpoints. The
    lock makes a new attempt wait while an old one still runs (a rerun right after the driver died); the
    kernel drops it when the process dies. The directory is removed once its result has been packed."""
    import fcntl

    d = scratch_root(scratch_dir) / run_key / name
    d.mkdir(parents=True, exist_ok=True)
    with open(d.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        write_json_atomic(d / "task.json", {"cell": name, "pid": os.getpid(), "host": socket.gethostname(),
                                            "started": time.time()})
        yield d
        shutil.rmtree(d, ignore_errors=True)


def materialise(inp: Input, scratch_dir: str | None) -> str:
    """The input's path on this node: in place (`ray.inputs: shared`), or unpacked once per node and content."""
    if inp.data is None:
        if not Path(inp.path).exists():
            raise PtstError(f"{inp.path} is not visible on node {socket.gethostname()} (ray.inputs: shared needs "
                            "the run directory on every node); set ray.inputs: ship")
        return inp.path
    import ray

    dest = scratch_root(scratch_dir) / "inputs" / inp.key.replace(":", "-")[:80]
    if not dest.exists():
        data = inp.data if isinstance(inp.data, bytes) else ray.get(inp.data)
        with atomic_dir(dest, keep_existing=True, unique=True) as tmp:  # another task on this node may win
            unpack(data, tmp)
    return str(dest)


def _result(d: Path, started: float, model: str | None = None, skip: tuple[str, ...] = ()) -> Result:
    data = pack_dir(d, skip=("task.json", *skip))
    return Result(data, socket.gethostname(), os.getpid(), time.time() - started, model, str(d))


def align_task(spec: Any, model: str, run_key: str, scratch_dir: str | None, data_dir: str | None,
               exclude: set[str], generate: dict[str, Any]) -> Result:
    from ptst.align import run as align  # lazy: Ray task body, resolved on the worker

    threads.bounded_spin()  # as `ptst` does before torch loads (ptst.cli.main)
    started = time.time()
    with _workdir(scratch_dir, run_key, "align") as d:
        align(spec, model, d / "align", data_dir=data_dir, exclude=exclude, generate=generate)
        return _result(d / "align", started)


def train_task(tcfg: Any, cell: str, run_key: str, scratch_dir: str | None, base: Input | None) -> Result:
    from ptst.train.runner import run as train  # lazy: Ray task body, resolved on the worker

    threads.bounded_spin()  # as `ptst` does before torch loads (ptst.cli.main)
    started = time.time()
    with _workdir(scratch_dir, run_key, cell) as d:
        if base is not None:
            tcfg = replace(tcfg, model=materialise(base, scratch_dir))
        train(tcfg, d / cell, resume=True, progress=False)
        return _result(d / cell, started, tcfg.model)


def eval_task(ecfg: Any, path: str, run_key: str, scratch_dir: str | None, base: Input | None,
              adapter: Input | None) -> Result:
    from ptst.evaluate import run as evaluate  # lazy: Ray task body, resolved on the worker

    threads.bounded_spin()  # as `ptst` does before torch loads (ptst.cli.main)
    started = time.time()
    with _workdir(scratch_dir, run_key, path.replace("/", "__")) as d:
        if base is not None:
            ecfg = replace(ecfg, model=materialise(base, scratch_dir))
        if adapter is not None:
            ecfg = replace(ecfg, adapter=materialise(adapter, scratch_dir))
        evaluate(ecfg, d / "cell")
        return _result(d / "cell", started)
