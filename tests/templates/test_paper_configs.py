"""The paper grids: the Llama-2 config and its Mistral twin under the paper-literal rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptst import templates as T
from tests.templates import families as F

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _grid(name: str):
    import yaml

    return yaml.safe_load((CONFIGS / name).read_text(encoding="utf-8"))


def test_mistral_grid_renders_the_llama2_strings_the_official_code_used():
    g = _grid("paper-mistral-gsm8k.yaml")
    assert g["model"] == "mistralai/Mistral-7B-Instruct-v0.2" and g["train_templates"] == g["test_templates"]
    for name in g["train_templates"]:
        t = T.get_template(name)
        assert (t.rendering == "paper-literal") == (t.mode == "chat"), name
    if not F.available():
        pytest.skip(f"chat-template fixtures not found at {F.FIXTURES}")
    tok = F.tokenizer("mistral-v0.2")
    got = T.render(T.get_template("paper:gsm:chat:llama"), tok, "%s").text
    assert got == f"<s>[INST] <<SYS>>\n{T.LLAMA_BASE_PROMPT}\n<</SYS>>\n\nQuestion: %s [/INST]"  # protocol notes §2.1


def test_the_llama2_grid_keeps_its_keys():
    """Native rendering stays the default: the Llama-2 grid's templates and fingerprints are unchanged by the
    paper-literal mode (fingerprints pinned from before it existed, on the tiny Llama-2 tokenizer)."""
    from ptst.testing import tiny_tokenizer

    tok = tiny_tokenizer("llama2")
    g = _grid("paper-llama2-gsm8k.yaml")
    assert all(T.get_template(n).rendering == "native" for n in g["train_templates"] + g["test_templates"])
    assert {n: T.fingerprint(T.get_template(n), tok)[:16] for n in g["train_templates"]} == PINNED


PINNED = {"gsm:text:vanilla": "36922ba2a093b596", "gsm:text:alpaca": "86fd650f9cda4c00",
          "gsm:chat:vanilla": "146a3f9f1070efdc", "gsm:chat:alpaca": "ea901af6e22938b1",
          "gsm:chat:llama": "e7603260acb0a6b8"}


def test_an_api_backend_refuses_paper_literal_rendering(tmp_path, monkeypatch):
    """An OpenAI-compatible endpoint renders messages with its own chat template: the paper's literal strings
    cannot reach the model that way, so a `paper:` template is one clear error there, and nothing is written."""
    from ptst.data.types import Dataset
    from ptst.errors import PtstError
    from ptst.generate.runner import run
    from ptst.records import Example
    from ptst.specs.generate import GenerateConfig

    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    ds = Dataset("d", "test", (Example("a", "hi"),), "s", "x", False, "x")
    cfg = GenerateConfig(data="d", template="paper:chat:llama", backend="openai", base_url="http://127.0.0.1:9/v1",
                         api_model="m")
    with pytest.raises(PtstError, match="paper's literal strings.*own chat template"):
        run(cfg, tmp_path / "g.jsonl", dataset=ds, progress=False)
    assert not list(tmp_path.iterdir())


def test_openai_export_refuses_paper_literal_rendering(tmp_path):
    from ptst.errors import PtstError
    from ptst.train.export import export_openai

    data = tmp_path / "d.jsonl"
    data.write_text('{"input": "q", "response": "a"}\n')
    with pytest.raises(PtstError, match="literal Llama-2 strings"):
        export_openai(f"jsonl:{data}", "paper:gpt:llama", tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()
