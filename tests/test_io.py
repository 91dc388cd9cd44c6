"""ptst.io: stale temporaries of atomic writes a killed process left behind."""

from __future__ import annotations

import os
import tempfile

import pytest

from ptst.io import clear_stale_tmp, write_json_atomic


def test_clear_stale_tmp_removes_only_atomic_write_leftovers(tmp_path):
    write_json_atomic(tmp_path / "eval.json", {"a": 1})
    (tmp_path / "sub").mkdir()
    # what a SIGKILL between mkstemp and os.replace leaves (the same names write_bytes_atomic makes)
    left = [tempfile.mkstemp(prefix=".eval.json.", suffix=".tmp", dir=d)[1] for d in (tmp_path, tmp_path / "sub")]
    keep = [tmp_path / ".adapter.tmp", tmp_path / "notes.tmp", tmp_path / "sub" / ".hidden"]
    keep[0].mkdir()  # training's temporary directory is the trainer's business
    for p in keep[1:]:
        p.write_text("x")
    assert clear_stale_tmp(tmp_path, recursive=False) == 1
    assert clear_stale_tmp(tmp_path) == 1
    assert not any(os.path.exists(p) for p in left)
    assert all(p.exists() for p in keep) and (tmp_path / "eval.json").read_text() == '{\n  "a": 1\n}\n'
    assert clear_stale_tmp(tmp_path / "missing") == 0


def test_atomic_dir_is_whole_or_absent(tmp_path):
    from ptst.io import atomic_dir

    final = tmp_path / "model"
    with pytest.raises(RuntimeError), atomic_dir(final) as tmp:
        (tmp / "half").write_text("x")
        raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no staging left, nothing in place
    (tmp_path / ".model.tmp").mkdir()  # a killed writer's staging
    (tmp_path / ".model.tmp" / "stale").write_text("x")
    with atomic_dir(final) as tmp:
        (tmp / "weights").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["weights"] and sorted(os.listdir(tmp_path)) == ["model"]
    with atomic_dir(final) as tmp:  # replaces what is there
        (tmp / "weights").write_text("newer")
    assert (final / "weights").read_text() == "newer"
    with atomic_dir(final, keep_existing=True, unique=True) as tmp:  # another writer's equal result stands
        (tmp / "weights").write_text("mine")
    assert (final / "weights").read_text() == "newer" and sorted(os.listdir(tmp_path)) == ["model"]


def test_a_unique_writer_removes_the_staging_of_this_host_s_dead_writers_only(tmp_path):
    import socket
    import subprocess
    import sys

    from ptst.io import atomic_dir

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()  # a process that has ended
    host = socket.gethostname()
    final = tmp_path / "model"
    kept = [f".model.tmp{host}-{os.getpid()}x", f".model.tmpother-host-{dead}", f".model.tmp{host}-{os.getppid()}"]
    for name in [f".model.tmp{host}-{dead}", *kept]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "weights.bin").write_text("partial")
    with atomic_dir(final, unique=True) as tmp:
        assert tmp.name == f".model.tmp{host}-{os.getpid()}"
        (tmp / "weights").write_text("w")
    # the dead local writer's staging is gone; another host's (a shared file system), a live process's and a
    # name that is not a writer's are left alone
    assert sorted(os.listdir(tmp_path)) == sorted(["model", *kept])
