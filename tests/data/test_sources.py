"""Where files come from: data_dir > $PTST_DATA_DIR > cache > checksummed download (real loopback HTTP)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import threading
import zipfile
from pathlib import Path

import pytest

from ptst.data import DatasetSpec, FileSpec, Row, download_file, load_dataset
from ptst.data.sources import extract_from_archive
from ptst.errors import PtstError
from tests.data.fakes import use_spec

BODY = b'{"input": "hello"}\n{"input": "world"}\n'
SHA = hashlib.sha256(BODY).hexdigest()


def _lines(paths: list[Path], split: str) -> list[Row]:
    return [Row(i, line) for i, line in enumerate(paths[0].read_text().split())]


def toy_spec(sha: str | None = SHA, url: str | None = "https://example.org/toy.txt", **kw) -> DatasetSpec:
    f = FileSpec("toy/data.txt", sha, url, **kw)
    return DatasetSpec(name="toy", kind="safety-eval", splits=("test",), files={"test": (f,)}, licence="MIT",
                       non_commercial=False, loader=_lines, source="https://example.org")


def _put(root: Path, text: str) -> Path:
    p = root / "toy" / "data.txt"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_lookup_order_data_dir_then_env_then_cache(tmp_path, monkeypatch):
    use_spec(monkeypatch, toy_spec(sha=None))
    _put(tmp_path / "a", "from-arg")
    b = _put(tmp_path / "b", "from-env")
    c = _put(tmp_path / "cache" / "data", "from-cache")
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PTST_DATA_DIR", str(tmp_path / "b"))
    assert load_dataset("toy", data_dir=str(tmp_path / "a"))[0].input == "from-arg"
    assert load_dataset("toy", data_dir=str(tmp_path / "empty")).paths == (str(b),)  # not in data_dir: env next
    monkeypatch.delenv("PTST_DATA_DIR")
    assert load_dataset("toy").paths == (str(c),)


def test_data_dir_must_exist(tmp_path):
    with pytest.raises(PtstError, match="is not a directory"):
        load_dataset("gsm8k", data_dir=str(tmp_path / "nope"))


def test_missing_offline_is_one_clear_error(tmp_path, monkeypatch):
    (tmp_path / "dd").mkdir()
    with pytest.raises(PtstError) as e:
        load_dataset("gsm8k", "test", data_dir=str(tmp_path / "dd"))
    msg = str(e.value)
    assert "\n" not in msg
    assert "gsm8k/test.jsonl not found" in msg and str(tmp_path / "dd") in msg
    assert "PTST_OFFLINE" in msg and "PTST_DATA_DIR" in msg and "--data-dir" in msg
    assert "https://raw.githubusercontent.com/openai/grade-school-math/" in msg


def test_missing_without_url_says_there_is_no_download(monkeypatch):
    monkeypatch.delenv("PTST_OFFLINE")
    use_spec(monkeypatch, toy_spec(url=None))
    with pytest.raises(PtstError, match="no public download URL.*Canonical URL: none"):
        load_dataset("toy")


def test_local_checksum_mismatch_is_refused(tmp_path, monkeypatch):
    use_spec(monkeypatch, toy_spec())
    _put(tmp_path / "dd", "tampered")
    with pytest.raises(PtstError, match=f"checksum mismatch: .*data.txt has sha256 [0-9a-f]{{64}}, expected {SHA}"):
        load_dataset("toy", data_dir=str(tmp_path / "dd"))


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """A real HTTP server on 127.0.0.1 serving a temp folder; proxies bypassed, downloads switched on."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    for var in ("PTST_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_download_file_verifies_and_writes_atomically(http_root, tmp_path):
    root, base = http_root
    (root / "ok.jsonl").write_bytes(BODY)
    dest = tmp_path / "out" / "ok.jsonl"
    assert download_file(f"{base}/ok.jsonl", dest, SHA) == SHA
    assert dest.read_bytes() == BODY


def test_download_checksum_mismatch_leaves_nothing(http_root, tmp_path):
    root, base = http_root
    (root / "bad.jsonl").write_bytes(BODY + b"tampered\n")
    dest = tmp_path / "out" / "bad.jsonl"
    with pytest.raises(PtstError, match=f"checksum mismatch downloading {base}/bad.jsonl: .*expected {SHA}"):
        download_file(f"{base}/bad.jsonl", dest, SHA)
    assert not dest.exists() and list(dest.parent.iterdir()) == []  # temp file removed too


def test_load_dataset_downloads_into_cache_once(http_root, tmp_path, monkeypatch):
    root, base = http_root
    (root / "toy.txt").write_text("alpha beta")
    sha = hashlib.sha256(b"alpha beta").hexdigest()
    use_spec(monkeypatch, toy_spec(sha=sha, url=f"{base}/toy.txt"))
    ds = load_dataset("toy")
    cached = tmp_path / "cache" / "data" / "toy" / "data.txt"
    assert ds.paths == (str(cached),) and [e.input for e in ds] == ["alpha", "beta"] and ds.sha256 == sha
    (root / "toy.txt").unlink()  # the second load must not need the server
    assert load_dataset("toy").sha256 == sha


def test_download_http_error_is_the_missing_file_error(http_root, monkeypatch):
    _, base = http_root
    use_spec(monkeypatch, toy_spec(url=f"{base}/absent.txt"))
    with pytest.raises(PtstError, match=r"toy/data.txt not found .*download failed \(HTTPError: HTTP Error 404"):
        load_dataset("toy")


def test_zip_members_are_extracted_and_checked(http_root, tmp_path):
    root, base = http_root
    with zipfile.ZipFile(root / "bundle.zip", "w") as z:
        z.writestr("top/a.txt", "A")
        z.writestr("top/b.txt", "B")
    sha = {k: hashlib.sha256(k.encode()).hexdigest() for k in "AB"}
    url = f"{base}/bundle.zip"
    a = FileSpec("z/a.txt", sha["A"], url, member="top/a.txt")
    b = FileSpec("z/b.txt", sha["B"], url, member="top/b.txt")
    extract_from_archive(url, [a, b])
    data = tmp_path / "cache" / "data"
    assert (data / "z/a.txt").read_text() == "A" and (data / "z/b.txt").read_text() == "B"
    assert not (data / ".archives" / "bundle.zip").exists()
    wrong = FileSpec("z/c.txt", sha["B"], url, member="top/a.txt")
    with pytest.raises(PtstError, match="checksum mismatch for top/a.txt"):
        extract_from_archive(url, [wrong])
    assert not (data / "z/c.txt").exists()


def test_status_and_dry_run_download_nothing(http_root, tmp_path, monkeypatch):
    """Inside no_downloads (ptst status, --dry-run) a set not on this machine is reported, not fetched; its key
    (data_identity) is the pinned sha256, read without the file."""
    from ptst.data.load import data_identity
    from ptst.io import no_downloads

    root, base = http_root
    (root / "toy.txt").write_text("alpha beta")
    sha = hashlib.sha256(b"alpha beta").hexdigest()
    use_spec(monkeypatch, toy_spec(sha=sha, url=f"{base}/toy.txt"))
    for var in ("PTST_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    with no_downloads():
        assert data_identity("toy").sha256 == sha
        with pytest.raises(PtstError, match=r"downloads are off \(PTST_OFFLINE is set\)"):
            load_dataset("toy")
    assert not (tmp_path / "cache" / "data" / "toy").exists()
    assert "PTST_OFFLINE" not in os.environ  # restored: the run itself may download
    assert load_dataset("toy").sha256 == sha
