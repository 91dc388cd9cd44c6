"""OpenAI chat-format export: message shape per gpt: template, validation, token count and cost, atomic write."""

from __future__ import annotations

import json

import pytest

from ptst.errors import PtstError
from ptst.templates import GPT_LLAMA_PROMPT
from ptst.train.export import TOKENS_PER_EXAMPLE, TOKENS_PER_MESSAGE, chars_over_4, export_openai, validate
from tests.train.conftest import write_rows


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_gpt_llama_rows_are_system_user_assistant(data_file, tmp_path):
    out = tmp_path / "ft.jsonl"
    stats = export_openai(f"jsonl:{data_file}", "gpt:llama", out)
    first = rows(out)[0]["messages"]
    assert first == [{"role": "system", "content": GPT_LLAMA_PROMPT},
                     {"role": "user", "content": "What is 0 plus 0?"},
                     {"role": "assistant", "content": "The answer is 0."}]
    assert stats.examples == 12 and stats.token_counter == "chars/4 estimate"
    want = sum(TOKENS_PER_EXAMPLE + sum(TOKENS_PER_MESSAGE + chars_over_4(m["content"]) for m in r["messages"])
               for r in rows(out))
    assert stats.tokens == want
    assert stats.cost_per_epoch == pytest.approx(want / 1e6 * 8.0)


def test_gpt_vanilla_keeps_the_official_empty_system_message(data_file, tmp_path):
    out = tmp_path / "ft.jsonl"
    export_openai(f"jsonl:{data_file}", "gpt:vanilla", out, limit=2)
    assert [m["role"] for m in rows(out)[0]["messages"]] == ["system", "user", "assistant"]
    assert rows(out)[0]["messages"][0]["content"] == ""


def test_model_tokenizer_counts_when_given(data_file, tmp_path, tiny_model_dir):
    stats = export_openai(f"jsonl:{data_file}", "gpt:llama", tmp_path / "a.jsonl", model=str(tiny_model_dir))
    assert stats.token_counter.startswith("tokenizer of") and stats.tokens > 0


def test_empty_response_is_refused_and_nothing_is_written(tmp_path):
    data = write_rows(tmp_path / "d.jsonl", [{"id": "a", "input": "q", "response": "ok"},
                                             {"id": "b", "input": "q2", "response": "  "}])
    out = tmp_path / "ft.jsonl"
    with pytest.raises(PtstError, match="example b: empty assistant message"):
        export_openai(f"jsonl:{data}", "gpt:llama", out)
    assert not out.exists()


def test_text_template_is_refused(data_file, tmp_path):
    with pytest.raises(PtstError, match="text template"):
        export_openai(f"jsonl:{data_file}", "gsm:text:vanilla", tmp_path / "x.jsonl")


@pytest.mark.parametrize("messages, needle", [
    ([{"role": "user", "content": "q"}], "roles"),
    ([{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}], "roles"),
    ([{"role": "user", "content": ""}, {"role": "assistant", "content": "a"}], "empty user"),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": 3}], "string content"),
    ([{"role": "user", "content": "q", "name": "x"}, {"role": "assistant", "content": "a"}], "exactly"),
])
def test_validate(messages, needle):
    with pytest.raises(PtstError, match=needle):
        validate(messages, "x")
