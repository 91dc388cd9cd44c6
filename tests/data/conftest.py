"""Fixtures for the data-stage tests: an isolated cache, downloads off, and a synthetic data dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data.fakes import write_fake_data_dir


@pytest.fixture(autouse=True)
def _data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own cache, no PTST_DATA_DIR, and downloads switched off unless it opts in."""
    monkeypatch.setenv("PTST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("PTST_DATA_DIR", raising=False)
    monkeypatch.setenv("PTST_OFFLINE", "1")


@pytest.fixture
def fake_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir with the real layout holding small synthetic files; the specs are re-pinned to them."""
    return write_fake_data_dir(tmp_path / "fake-data", monkeypatch)
