"""The Ray executor's retries, without a cluster: a cell whose process died (worker, node, memory monitor, a lost
result) is submitted again with one line saying so, up to ray.max_retries; an error the task raised is not."""

from __future__ import annotations

import pytest

from ptst.errors import PtstError
from ptst.grid.cells import load_grid
from ptst.grid.plan import expand
from ptst.testing import grid_yaml, tiny_data

exceptions = pytest.importorskip("ray.exceptions")

from ptst.grid.ray_exec import Scheduler, Session, _died, _Task  # noqa: E402 - after the skip: needs Ray


class _Failing:
    """Just enough of `ray` for finish(): `get` raises the next of `errors`."""

    def __init__(self, errors: list[BaseException]) -> None:
        self.errors = errors
        self.submitted = 0

    def get(self, _ref):
        raise self.errors.pop(0)


def _scheduler(tmp_path, tiny_model_dir, errors, retries=2):
    cfg = load_grid(grid_yaml(tmp_path, tiny_model_dir, tiny_data(tmp_path / "data")), [f"ray.max_retries={retries}"])
    ray = _Failing(errors)
    sched = Scheduler(cfg, tmp_path / "run", Session(ray, owned=False), "k")
    tc = next(c for c in expand(cfg) if c.id == "chat-llama.s0")

    def submit():
        ray.submitted += 1
        return f"ref{ray.submitted}"
    task = _Task("train", tc, submit)
    sched.state.running[task.submit()] = task
    return sched, ray


def _drain(sched):
    while sched.state.running:
        sched.finish(next(iter(sched.state.running)))


@pytest.mark.parametrize("error,what", [
    (exceptions.WorkerCrashedError(), "worker died"),
    (exceptions.NodeDiedError("node 10.0.0.3 is dead"), "node died"),
    (exceptions.OutOfMemoryError("memory on the node was 95%..."), "worker killed by Ray's memory monitor"),
    (exceptions.ObjectLostError("ab" * 14, None, ""), "result lost with its node"),
])
def test_a_dead_process_is_retried_with_one_line_each_then_named(tmp_path, tiny_model_dir, capsys, error, what):
    assert _died(error) == what
    sched, ray = _scheduler(tmp_path, tiny_model_dir, [error, error, error])
    _drain(sched)
    err = capsys.readouterr().err.splitlines()
    assert err[:2] == [f"ptst run: cell chat-llama.s0 (train): {what}, retry {n} of 2" for n in (1, 2)]
    assert err[2:] == [f"== train chat-llama.s0 FAILED: {what} (3 attempts: ray.max_retries=2)"]
    assert ray.submitted == 3 and sched.state.failed == [f"chat-llama.s0: {what} (3 attempts: ray.max_retries=2)"]


def test_an_error_the_task_raised_is_not_retried(tmp_path, tiny_model_dir, capsys):
    class _TaskError(Exception):
        cause = PtstError("jsonl:/x.jsonl: no such file")

    assert _died(_TaskError()) is None and _died(ValueError("x")) is None
    sched, ray = _scheduler(tmp_path, tiny_model_dir, [_TaskError()])
    _drain(sched)
    assert ray.submitted == 1 and sched.state.failed == ["chat-llama.s0: jsonl:/x.jsonl: no such file"]
    assert "retry" not in capsys.readouterr().err
