"""The Ray executor's pieces that need no cluster: cell artifacts placed atomically, the resource check, the
address probe, the executor keys as operational config, and `import ptst` without Ray."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from ptst.errors import PtstError
from ptst.grid.artifacts import INCOMING, clear_incoming, pack_dir, place_dir, place_train_cell, unpack
from ptst.grid.cells import load_grid
from ptst.grid.checks import grid_changes
from ptst.grid.config import Resources
from ptst.grid.ray_exec import check_address, check_resources
from ptst.grid.relocate import replace_paths
from ptst.testing import grid_yaml, tiny_data


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _cell(d: Path, marker: str = "metrics.json") -> Path:
    (d / "generations").mkdir(parents=True)
    (d / "generations" / "harm.jsonl").write_text('{"id": "h0"}\n')
    (d / "eval.json").write_text("{}")
    (d / marker).write_text('{"key": "k"}')
    return d


def test_a_packed_cell_unpacks_to_the_same_files(tmp_path):
    src = _cell(tmp_path / "src")
    (src / "task.json").write_text("{}")
    data = pack_dir(src, skip=("task.json",))
    out = unpack(data, tmp_path / "out")
    assert _tree(out) == {k: v for k, v in _tree(src).items() if k != "task.json"}


def test_an_artifact_naming_a_path_outside_its_cell_is_refused(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(Exception):  # noqa: B017 - tarfile's OutsideDestinationError or our ValueError
        unpack(buf.getvalue(), tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


def test_place_dir_replaces_a_stale_cell_whole_and_leaves_no_incoming(tmp_path):
    root = tmp_path / "run"
    target = root / "base" / "eval" / "chat-llama"
    target.mkdir(parents=True)
    (target / "stale.jsonl").write_text("old partial answers")
    data = pack_dir(_cell(tmp_path / "new"))
    place_dir(root, data, target)
    assert _tree(target) == _tree(tmp_path / "new")
    assert not any((root / INCOMING).iterdir())
    clear_incoming(root)
    assert not (root / INCOMING).exists()


def test_place_train_cell_keeps_the_evaluations_and_puts_spec_json_last(tmp_path, monkeypatch):
    root = tmp_path / "run"
    cell = root / "chat-llama.s0"
    (cell / "eval" / "chat-llama").mkdir(parents=True)
    (cell / "eval" / "chat-llama" / "metrics.json").write_text("{}")
    (cell / "checkpoints" / "step-2").mkdir(parents=True)  # a local run's partial state: replaced
    new = tmp_path / "new"
    (new / "adapter").mkdir(parents=True)
    (new / "adapter" / "adapter_model.safetensors").write_bytes(b"w")
    (new / "config.yaml").write_text("model: /node/local/path\n")
    (new / "spec.json").write_text(json.dumps({"base_model": "/node/local/path"}))
    order: list[str] = []
    import os

    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (order.append(Path(b).name), real(a, b))[1])
    place_train_cell(root, pack_dir(new), cell, lambda d: replace_paths(d, [("/node/local/path", "/run/x")]))
    assert order[-1] == "spec.json" and set(order) == {"adapter", "config.yaml", "spec.json"}
    assert (cell / "eval" / "chat-llama" / "metrics.json").exists() and not (cell / "checkpoints").exists()
    assert (cell / "config.yaml").read_text() == "model: /run/x\n"
    assert json.loads((cell / "spec.json").read_text()) == {"base_model": "/run/x"}


NODES = [{"Alive": True, "Resources": {"CPU": 8.0, "GPU": 1.0, "memory": 64e9, "A100": 1.0}},
         {"Alive": True, "Resources": {"CPU": 32.0, "memory": 128e9}},
         {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}}]


@pytest.mark.parametrize("res,ok", [
    (Resources(num_cpus=8, num_gpus=1), True),
    (Resources(num_cpus=16), True),
    (Resources(num_cpus=16, num_gpus=1), False),  # the cluster has both, no single node does
    (Resources(num_gpus=2), False),  # only a dead node has 2
    (Resources(num_gpus=1, custom={"A100": 1}), True),
    (Resources(num_gpus=1, custom={"H100": 1}), False),
    (Resources(num_cpus=1, memory=100 * 10**9), True),
    (Resources(num_cpus=8, num_gpus=1, memory=100 * 10**9), False),
])
def test_a_request_must_fit_one_alive_node(res, ok):
    if ok:
        check_resources({"train": res}, NODES)
    else:
        with pytest.raises(PtstError, match=r"^ray\.train asks for .* but no node of the cluster has that much "
                                            r"\(largest: CPU 8, GPU 1, memory 59\.6 GiB"):
            check_resources({"train": res}, NODES)


@pytest.mark.parametrize("address,msg", [
    ("nohost", "expected host:port"),
    ("10.0.0.1:port", "expected host:port"),
])
def test_a_malformed_address_is_refused(address, msg):
    with pytest.raises(PtstError, match=msg):
        check_address(address)


def test_executor_and_ray_keys_are_operational(tmp_path, tiny_model_dir):
    cfg_path = grid_yaml(tmp_path, tiny_model_dir, tiny_data(tmp_path / "data"))
    old = load_grid(cfg_path)
    new = load_grid(cfg_path, ["executor=ray", "ray={address: auto, max_retries: 5, train: {num_gpus: 1}}"])
    assert new.ray is not None and new.ray.train.num_gpus == 1.0 and new.ray.address == "auto"
    assert grid_changes(old, new) == [] and grid_changes(new, old) == []
    with pytest.raises(PtstError, match="executor must be one of local, ray, got 'slurm'"):
        load_grid(cfg_path, ["executor=slurm"])
    with pytest.raises(PtstError, match=r"ray.train: unknown key 'gpus' \(did you mean 'num_gpus'\?\)"):
        load_grid(cfg_path, ["ray={train: {gpus: 1}}"])


def test_import_ptst_and_the_grid_does_not_import_ray():
    code = ("import sys, ptst, ptst.cli, ptst.grid.runner, ptst.grid.ray_exec, ptst.grid.tasks; "
            "sys.exit('ray' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_dry_run_shows_the_ray_settings_and_contacts_nothing(tmp_path, tiny_model_dir, capsys):
    from ptst.cli import main

    cfg_path = grid_yaml(tmp_path, tiny_model_dir, tiny_data(tmp_path / "data"))
    assert main(["run", str(cfg_path), "ray.eval.num_gpus=1", "--dry-run", "--executor", "ray",
                 "--address", "10.255.255.1:6379"]) == 0
    out = capsys.readouterr().out
    assert out.endswith("executor: ray at 10.255.255.1:6379; per task: train CPU 1, eval CPU 1, GPU 1; "
                        "max_retries 3; inputs ship (a dry run contacts no cluster)\n")
    assert main(["run", str(cfg_path), "--dry-run"]) == 0
    assert "executor" not in capsys.readouterr().out


def test_an_input_a_node_cannot_see_is_one_line_naming_the_fix(tmp_path):
    from ptst.grid.tasks import Input, materialise

    there = tmp_path / "adapter"
    there.mkdir()
    assert materialise(Input(str(there), "adapter-x"), None) == str(there)  # shared: read in place
    with pytest.raises(PtstError, match=r"/nowhere/adapter is not visible on node .*; set ray.inputs: ship$"):
        materialise(Input("/nowhere/adapter", "adapter-x"), None)


def test_a_shipped_input_is_unpacked_once_per_node_and_content(tmp_path):
    from ptst.grid.tasks import Input, materialise

    src = _cell(tmp_path / "src")
    inp = Input("/driver/path", "adapter-abc", pack_dir(src))
    first = materialise(inp, str(tmp_path / "scratch"))
    assert _tree(Path(first)) == _tree(src) and first.startswith(str(tmp_path / "scratch"))  # renamed in whole
    assert [p.name for p in Path(first).parent.iterdir()] == [Path(first).name]  # no staging left beside it
    (Path(first) / "eval.json").write_text("touched")
    assert materialise(inp, str(tmp_path / "scratch")) == first  # not unpacked again
    assert (Path(first) / "eval.json").read_text() == "touched"


class _FakeRay:
    """Just enough of `ray` for the scheduler's submissions: each `.remote()` returns a new ref."""

    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.cancelled: list[str] = []

    def remote(self, fn):
        ray = self

        class _Options:
            def options(self, **_kw):
                return self

            def remote(self, *_args):
                ray.submitted.append(f"{fn.__name__}#{len(ray.submitted)}")
                return ray.submitted[-1]

        return _Options()

    def cancel(self, ref, force=False):
        self.cancelled.append(ref)


def test_a_submission_that_fails_cancels_the_tasks_already_submitted(tmp_path, tiny_model_dir, monkeypatch):
    import ptst.grid.ray_exec as grid_cells  # the state functions as the executor imported them
    from ptst.grid.plan import expand
    from ptst.grid.ray_exec import Session, run_grid
    from ptst.runs.state import State, Status

    cfg = load_grid(grid_yaml(tmp_path, tiny_model_dir, tiny_data(tmp_path / "data")))
    cells = expand(cfg)
    done = next(tc for tc in cells if tc.template == "chat:vanilla")  # "finished", but its adapter is gone
    monkeypatch.setattr(grid_cells, "train_status",
                        lambda _cfg, _root, tc, *_a: Status(State.DONE if tc.id in (done.id, "base") else State.NEW))
    monkeypatch.setattr(grid_cells, "eval_status", lambda *_a: Status(State.NEW))
    monkeypatch.setattr(grid_cells, "align_status", lambda *_a: Status(State.DONE))
    ray = _FakeRay()
    with pytest.raises(PtstError, match="no adapter at"):
        run_grid(cfg, tmp_path / "run", cells, set(), Session(ray, owned=False))
    assert ray.submitted and sorted(ray.cancelled) == sorted(ray.submitted)
    assert not (tmp_path / "run" / INCOMING).exists()
