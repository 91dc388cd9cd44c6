"""`--executor ray` on a local 2-CPU Ray cluster: the same results as the local executor, a worker killed in the
middle of a training cell (one line on the console, not Ray's report), a driver killed and rerun, a cluster of its
own that listens on loopback only, and every bad input refused before anything is written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from ptst.cli import main
from ptst.errors import PtstError
from ptst.grid.artifacts import INCOMING
from ptst.grid.cells import load_grid
from ptst.grid.runner import run
from ptst.io import stable_hash
from ptst.specs.train import identity, load_train_config
from ptst.testing import align_yaml, grid_yaml, tiny_data
from tests.grid.test_grid import _results

ray = pytest.importorskip("ray")

# Long enough (12 optimizer steps per cell, a checkpoint every 2) that a kill lands inside training, not around it.
EPOCHS = 4


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One local cluster per module. Its workers inherit this environment: the tests' cache, and the hub's
    offline mode as this process's transformers read it at import (a saved tokenizer records it, in
    tokenizer_config.json's local_files_only, which is part of a model directory's content id)."""
    from huggingface_hub import constants

    env = {"PTST_CACHE_DIR": str(tmp_path_factory.mktemp("ray-cache")), "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1" if constants.HF_HUB_OFFLINE else "0"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        ctx = ray.init(num_cpus=2, object_store_memory=200 * 2**20, include_dashboard=False,
                       logging_level="ERROR", log_to_driver=False)
    yield ctx.address_info["gcs_address"]
    ray.shutdown()


def run_local(cfg, out):
    """The local executor with the intra-op threads of a 1-CPU Ray task (Ray sets OMP_NUM_THREADS to a task's
    num_cpus): a float sum split over another number of threads rounds differently, and so do the weights."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run(cfg, out)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ref(tmp_path_factory, tiny_model_dir):
    """A grid (no alignment) and the results of the local executor on it."""
    d = tmp_path_factory.mktemp("ref")
    data = tiny_data(d / "data")
    cfg_path = grid_yaml(d, tiny_model_dir, data)
    cfg_path.write_text(cfg_path.read_text().replace("epochs: 2", f"epochs: {EPOCHS}"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PTST_CACHE_DIR", str(d / "cache"))
        run_local(load_grid(cfg_path), d / "local")
    return cfg_path, _results(d / "local")


def _finished(root: Path) -> dict[str, int]:
    """Done markers and everything beside them, with their mtimes; not the staging area (.ptst-incoming), where a
    killed driver can leave an unpacked artifact that the next run clears."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")
            if p.is_file() and p.name not in ("grid.yaml", "plan.json") and INCOMING not in p.relative_to(root).parts}


def _listing(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*")) if d.exists() else []


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_address_is_refused_in_seconds(ref, tmp_path, capsys, monkeypatch):
    """Without the probe Ray retries for minutes. (No cluster fixture: the driver must not be connected.)"""
    if ray.is_initialized():
        pytest.skip("this process is connected to a cluster")
    cfg_path, _ = ref
    port = _free_port()
    started = time.time()
    assert main(["run", str(cfg_path), "--out", str(tmp_path / "run"), "--executor", "ray",
                 "--address", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ptst: error: ray address 127.0.0.1:{port}: cannot reach 127.0.0.1:{port}")
    assert "ray start --head" in err and err.count("\n") == 1 and time.time() - started < 30
    assert not (tmp_path / "run").exists()


def test_ray_not_installed_is_one_line(ref, tmp_path, capsys, monkeypatch):
    cfg_path, _ = ref
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["run", str(cfg_path), "executor=ray", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err == "ptst: error: --executor ray needs Ray, which is not installed: pip install 'ptst[ray]'\n"
    assert not (tmp_path / "run").exists()
    assert main(["run", str(cfg_path), "--out", str(tmp_path / "run"), "--address", "h:1"]) == 2
    assert "--address is for --executor ray" in capsys.readouterr().err


def test_ray_grid_with_alignment_equals_the_local_run(cluster, tmp_path, tiny_model_dir, capsys):
    """Shipped inputs (the default): the aligned model and adapters travel through the object store, and the
    files naming the base model read as a local run's."""
    data = tiny_data(tmp_path / "data")
    scratch = tmp_path / "scratch"
    cfg = load_grid(grid_yaml(tmp_path, tiny_model_dir, data, align_yaml(data)), [f"ray.scratch_dir={scratch}"])
    run_local(cfg, tmp_path / "local")
    capsys.readouterr()
    run(cfg, tmp_path / "ray", executor="ray")
    err = capsys.readouterr().err
    assert "grid tiny [ray]: 8 done, 0 running, 0 pending (of 8 cells)" in err
    assert "[ray]: 0 done, 4 running, 4 pending" in err  # 2 training + 2 baseline cells; 4 evals wait on training
    local, remote = _results(tmp_path / "local"), _results(tmp_path / "ray")
    grid = [k for k in local if not k.startswith("align/")]
    assert len(grid) == 26 and remote == local  # 6 metrics.json, 18 generation/judgement files, 2 adapters
    texts = {d: {str(p.relative_to(tmp_path / d)): p.read_text().replace(str(tmp_path / d), "ROOT")
                 for p in (tmp_path / d).rglob("*") if p.suffix in (".json", ".yaml", ".md")} for d in ("local", "ray")}
    assert texts["local"].keys() == texts["ray"].keys()
    # no node-local path is left (grid.yaml is the config, which names ray.scratch_dir)
    assert not [rel for rel, text in texts["ray"].items() if str(scratch) in text and rel != "grid.yaml"]
    rels = ["chat-llama.s0/config.yaml", "align/align.json", "align/train/config.yaml", "align/model/config.json",
            "chat-llama.s0/eval/chat-vanilla/eval.json", "chat-llama.s0/adapter/README.md",
            "chat-llama.s0/adapter/ptst_base.json", *[r for r in texts["local"] if "/scores/" in r]]
    assert len(rels) == 7 + 6 * 2 + 4 * 4  # a score file per set and scorer: 6 grid cells, 4 measuring cells
    for rel in rels:
        assert texts["local"][rel] == texts["ray"][rel], rel
    # PEFT writes target_modules from a set: its order varies between any two processes
    cfg_l, cfg_r = (json.loads((tmp_path / d / "chat-llama.s0/adapter/adapter_config.json").read_text()
                               .replace(str(tmp_path / d), "ROOT")) for d in ("local", "ray"))
    assert sorted(cfg_l.pop("target_modules")) == sorted(cfg_r.pop("target_modules")) and cfg_l == cfg_r
    spec_l, spec_r = (json.loads((tmp_path / d / "chat-llama.s0/spec.json").read_text()) for d in ("local", "ray"))
    plan = {c["id"]: c for c in json.loads((tmp_path / "ray" / "plan.json").read_text())["train_cells"]}
    assert spec_r["config_sha256"] == plan["chat-llama.s0"]["config_sha256"]  # the config with the run's paths
    align_train = tmp_path / "ray" / "align" / "train"  # its parts moved from the task's directory, its key too
    assert json.loads((align_train / "spec.json").read_text())["config_sha256"] == \
        stable_hash(identity(load_train_config(align_train / "config.yaml")))
    assert spec_r["base_model_id"] == spec_l["base_model_id"] and spec_r["base_model"].startswith(str(tmp_path))
    assert not (tmp_path / "ray" / ".ptst-incoming").exists()
    before = _finished(tmp_path / "ray")
    run(cfg, tmp_path / "ray", executor="ray")
    assert "nothing to do: all 6 cells are done" in capsys.readouterr().err
    assert _finished(tmp_path / "ray") == before
    assert main(["status", str(tmp_path / "ray")]) == 0
    assert "6/6 evaluation cells done" in capsys.readouterr().out


def _kill_mid_training(scratch: Path, cell: str, killed: list[tuple[int, list[str]]], stop: threading.Event) -> None:
    """Once the cell's task has finished saving a checkpoint, freeze its worker (SIGSTOP), note what it had written, and
    SIGKILL it."""
    while not stop.is_set():
        for task in scratch.glob(f"ptst-*/*/{cell}-*/task.json"):
            out = task.parent / task.parent.name
            ckpts = out / "checkpoints"
            # a finished checkpoint: renamed into place as step-N (`.step-N.tmp` is one still being written)
            if ckpts.exists() and any(c.name.startswith("step-") and (c / "state.pt").exists()
                                      for c in ckpts.iterdir()):
                pid = json.loads(task.read_text())["pid"]
                assert pid != os.getpid()
                os.kill(pid, signal.SIGSTOP)
                state = sorted(p.name for p in out.iterdir()) + sorted(p.name for p in ckpts.iterdir())
                os.kill(pid, signal.SIGKILL)
                killed.append((pid, state))
                return
        time.sleep(0.005)


@contextmanager
def killing_mid_training(scratch: Path, cell: str) -> Iterator[list[tuple[int, list[str]]]]:
    """While the block runs, a watcher kills the worker training `cell` once (after its first checkpoint); the
    list it yields gets (pid, files the cell had) for each kill."""
    killed: list[tuple[int, list[str]]] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_kill_mid_training, args=(scratch, cell, killed, stop))
    watcher.start()
    try:
        yield killed
    finally:
        stop.set()
        watcher.join()


# What Ray would print for a dead worker (its raylet's report, then its retry notice), on the driver's stdout
RAY_REPORT = ("A worker died or was killed", "Worker exit type", "(raylet)", "retries remaining")


def test_a_worker_killed_mid_training_is_retried_and_the_grid_is_identical(cluster, ref, tmp_path, capfd):
    cfg_path, local = ref
    cfg = load_grid(cfg_path, [f"ray={{scratch_dir: {tmp_path / 'scratch'}, max_retries: 2}}"])
    with killing_mid_training(tmp_path / "scratch", "chat-llama.s0") as killed:
        run(cfg, tmp_path / "ray", executor="ray")
    assert len(killed) == 1 and "spec.json" not in killed[0][1], f"killed after training: raise EPOCHS {killed}"
    assert _results(tmp_path / "ray") == local
    spec = json.loads((tmp_path / "ray" / "chat-llama.s0" / "spec.json").read_text())
    assert spec["resumed_from_step"], f"the retry on the same node resumes the killed attempt's checkpoint {killed}"
    time.sleep(1)  # Ray's listener thread prints what it receives a moment later: it would have by now
    out, err = capfd.readouterr()
    assert "FAILED" not in err
    assert [line for line in err.splitlines() if line.startswith("ptst run: cell")] == \
        ["ptst run: cell chat-llama.s0 (train): worker died, retry 1 of 2"]
    assert not [s for s in RAY_REPORT if s in out + err], out + err


def test_a_cell_that_fails_for_good_is_named_the_rest_finish_and_a_rerun_retries_it(cluster, ref, tmp_path,
                                                                                     capsys):
    cfg_path, local = ref
    cfg = load_grid(cfg_path, [f"ray={{scratch_dir: {tmp_path / 'scratch'}, max_retries: 0}}"])
    with killing_mid_training(tmp_path / "scratch", "chat-llama.s0"), pytest.raises(PtstError) as e:
        run(cfg, tmp_path / "ray", executor="ray")
    msg = str(e.value)
    assert msg.startswith("1 of 8 cells failed (chat-llama.s0: worker died (1 attempt: ray.max_retries=0)") and \
        "\n" not in msg, msg
    assert msg.endswith("; 2 evaluation cells of failed training cells not run; finished cells are kept: rerun to "
                        "retry"), msg
    assert len(list((tmp_path / "ray").glob("*/eval/*/metrics.json"))) == 4  # base and chat-vanilla.s0 finished
    assert not (tmp_path / "ray" / "chat-llama.s0" / "spec.json").exists()
    capsys.readouterr()
    run(cfg, tmp_path / "ray", executor="ray")
    assert "of 3 cells" in capsys.readouterr().err  # the failed training cell and its 2 evaluations only
    assert _results(tmp_path / "ray") == local


def test_a_killed_driver_reruns_without_recomputing_anything_finished(cluster, ref, tmp_path, capsys):
    cfg_path, local = ref
    root = tmp_path / "ray"
    cmd = [sys.executable, "-m", "ptst", "run", str(cfg_path), "--out", str(root), "--no-report",
           "--executor", "ray", "--address", cluster]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not list(root.glob("*/eval/*/metrics.json")):
        time.sleep(0.05)
    assert proc.poll() is None, "the driver finished before the kill"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {k: v for k, v in _finished(root).items() if "/eval/" in k or k.endswith(("spec.json", ".safetensors"))}
    assert any(k.endswith("metrics.json") for k in finished)
    done_cells = {k.rsplit("/", 1)[0] for k in finished if k.endswith("metrics.json")}
    run(load_grid(cfg_path, ["ray.inputs=shared"]), root, executor="ray")  # adapters read in place this time
    err = capsys.readouterr().err
    after = _finished(root)
    assert {k: after.get(k) for k in finished} == finished  # nothing finished was rewritten
    assert all(f"eval {c} done" not in err for c in done_cells)
    assert _results(root) == local


def _loopback(ip: str) -> bool:
    import ipaddress

    addr = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(addr, "ipv4_mapped", None)  # ::ffff:127.0.0.1, a dual-stack socket bound to 127.0.0.1
    return (mapped or addr).is_loopback


def test_a_cluster_of_its_own_listens_on_loopback_only(ref, tmp_path):
    """`ptst run --executor ray` without an address starts a local cluster: no Ray port of it (GCS, raylet, object
    manager, runtime-env agent, each worker, the driver's own) may listen on 0.0.0.0, :: or a network interface,
    where anyone who reaches it could run code. Ray's processes descend from the driver: their sockets are listed
    while the run goes on."""
    import psutil
    from huggingface_hub import constants

    cfg_path, _ = ref

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(PTST_CACHE_DIR=str(tmp_path / "cache"), TOKENIZERS_PARALLELISM="false",
               HF_HUB_OFFLINE="1" if constants.HF_HUB_OFFLINE else "0")
    cmd = [sys.executable, "-m", "ptst", "run", str(cfg_path), "ray={num_cpus: 2, object_store_memory: 200000000}",
           "--out", str(tmp_path / "run"), "--no-report", "--executor", "ray", "--cell", "chat-vanilla.s0"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    driver = psutil.Process(proc.pid)
    listening: set[tuple[str, str]] = set()
    while proc.poll() is None:
        try:
            procs = [driver, *driver.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for p in procs:
            with suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                listening |= {(p.name(), c.laddr.ip) for c in p.net_connections("inet")
                              if c.status == psutil.CONN_LISTEN}
        time.sleep(0.05)
    err = proc.communicate()[1]
    assert proc.returncode == 0, err
    names = {name for name, _ in listening}
    assert {"gcs_server", "raylet"} <= names and any(n.startswith("ray::") for n in names), listening
    assert not [(name, ip) for name, ip in listening if not _loopback(ip)], listening


@pytest.mark.parametrize("args,msg", [
    (["--shard", "0/2"], "--executor ray schedules every cell itself: drop --shard"),
    (["ray.train.num_gpus=1"], "ray.train asks for CPU 1, GPU 1 per task, but no node of the cluster has that much "
                               "(largest: CPU 2"),
    (["ray.eval.custom={A100: 1}"], "ray.eval asks for CPU 1, A100 1 per task"),
    (["ray.inputs=nfs"], "ray.inputs must be one of ship, shared, got 'nfs'"),
])
def test_bad_ray_input_is_one_line_and_writes_nothing(cluster, ref, tmp_path, capsys, args, msg):
    cfg_path, _ = ref
    root = tmp_path / "run"
    root.mkdir()
    (root / "keep.txt").write_text("x")
    overrides, flags = [a for a in args if "=" in a], [a for a in args if "=" not in a]
    assert main(["run", str(cfg_path), *overrides, "--out", str(root), "--executor", "ray", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ptst: error: ") and msg in err and err.count("\n") == 1, err
    assert _listing(root) == ["keep.txt"]


