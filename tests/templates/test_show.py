"""`ptst templates show NAME --model DIR`: the exact prompt and one line on where the system prompt went, on
tokenizer directories saved from the family fixtures (what a user has locally); bad input is one line, exit 2."""

from __future__ import annotations

import pytest

from ptst import templates as T
from ptst.cli import main
from tests.templates import families as F

pytestmark = pytest.mark.skipif(not F.available(), reason=f"chat-template fixtures not found at {F.FIXTURES}")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return lambda fam: str(F.save(fam, root / fam)) if not (root / fam).exists() else str(root / fam)


def show(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["templates", "show", *args])
    got = capsys.readouterr()
    return rc, got.out, got.err


@pytest.mark.parametrize(("fam", "name", "line"), [
    ("mistral-v0.3", "chat:llama", "# system prompt placed inside the last user turn, by the family's own template"),
    ("mistral-v0.2", "chat:llama", "# system prompt placed inside the first user turn, by the family's own template"),
    ("gemma-2", "chat:llama", "# system prompt placed by ptst inside the first user turn, as system + blank line"),
    ("deepseek-r1", "chat:mpt", "# system prompt placed bare right after BOS, with no role marker"),
    ("llama-3", "chat:llama", "# system prompt placed in its own system turn"),
    ("qwen2.5", "chat:vanilla", "# no system prompt: the family injects default system prompt 'You are Qwen, "
                                "created by Alibaba Cloud. You are a helpful assistant.'; policy drop: dropped, no "
                                "system turn at all"),
    ("llama-2", "chat:vanilla", "# no system prompt: no system turn (the family injects no default)"),
    ("mistral-v0.2", "paper:gsm:chat:llama", "# paper-literal rendering (the official code's Llama-2 strings"),
    ("gemma-3", "gsm:text:vanilla", "# text template: a raw string, no chat markers and no system turn"),
])
def test_show_says_where_the_system_prompt_went(capsys, saved, fam, name, line):
    rc, out, _ = show(capsys, name, "--model", saved(fam), "--input", "hi")
    assert rc == 0
    assert [ln for ln in out.splitlines() if ln.startswith(line)], out
    prompt = out.partition(" no newline added ----\n")[2]
    assert prompt == T.render(T.get_template(name), F.tokenizer(fam), "hi").text


def test_show_with_a_jinja_file_overrides_the_tokenizers_template(capsys, saved, tmp_path):
    jinja = F.FIXTURES / f"{F.FAMILIES['mistral-v0.3']}.jinja"
    rc, out, _ = show(capsys, "chat:llama-short", "--model", saved("llama-2"), "--chat-template", str(jinja), "--raw",
                      "--input", "hi")
    assert rc == 0 and out == f"<s>[INST] {T.LLAMA_SHORT_PROMPT}\n\nhi[/INST]"


def test_show_paper_literal_without_a_model(capsys):
    rc, out, _ = show(capsys, "paper:gsm:chat:vanilla", "--raw", "--input", "hi")
    assert rc == 0 and out == "[INST] Question: hi [/INST]"  # no tokenizer: no BOS


def _one_line_error(capsys, args, *needles):
    rc, out, err = show(capsys, *args)
    assert rc == 2 and out == ""
    assert err.startswith("ptst: error: ") and err.count("\n") == 1, err
    for n in needles:
        assert n in err
    return err


def _tok_dir(tmp_path, template: str):
    tok = F.tokenizer("smollm2")
    d = tmp_path / "tok"
    tok.save_pretrained(d)
    from transformers import AutoTokenizer

    t = AutoTokenizer.from_pretrained(d)
    t.chat_template = template
    t.save_pretrained(d)
    return str(d)


def test_a_template_that_raises_on_every_placement_is_one_line(capsys, tmp_path):
    d = _tok_dir(tmp_path, "{{ raise_exception('I render nothing') }}")
    _one_line_error(capsys, ["chat:llama", "--model", d], "cannot render a single user message",
                    "I render nothing")


def test_a_family_with_no_generation_prompt_is_one_line(capsys, tmp_path):
    chatml_no_gen = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
                     "{% endfor %}")
    d = _tok_dir(tmp_path, chatml_no_gen)
    _one_line_error(capsys, ["chat:vanilla", "--model", d], "has no generation prompt")


def test_an_unknown_model_id_offline_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _one_line_error(capsys, ["chat:llama", "--model", "ptst-test/no-such-model-7b"],
                    "ptst-test/no-such-model-7b is not a local directory", "offline")


def test_paper_literal_of_a_text_template_is_refused(capsys):
    _one_line_error(capsys, ["paper:gsm:text:vanilla"], "text template")
