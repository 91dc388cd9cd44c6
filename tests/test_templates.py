"""Golden renderings: every paper template, byte for byte, on a Llama-2-chat tokenizer, plus other families."""

from __future__ import annotations

import pytest

from ptst import templates as T
from ptst.errors import PtstError

SYS = "[INST] <<SYS>>\n{}\n<</SYS>>\n\n"
ALPACA_BODY = "### Instruction:\n%s\n\n### Response:\n"
# The official strings of vfleaking/PTST prompt_utils.py (gsm: variants) and the generic `text`/`chat` keys.
OFFICIAL = {
    "gsm:text:vanilla": "Question: %s\nAnswer:",
    "gsm:text:alpaca": T.ALPACA_PROMPT + "\n\n" + ALPACA_BODY,
    "gsm:chat:vanilla": "[INST] Question: %s [/INST]",
    "gsm:chat:alpaca": SYS.format(T.ALPACA_PROMPT) + ALPACA_BODY + " [/INST]",
    "gsm:chat:llama": SYS.format(T.LLAMA_BASE_PROMPT) + "Question: %s [/INST]",
    "gsm:chat:llama-short": SYS.format(T.LLAMA_SHORT_PROMPT) + "Question: %s [/INST]",
    "gsm:chat:mpt": SYS.format(T.MPT_PROMPT) + "Question: %s [/INST]",
    "text:vanilla": "%s",
    "chat:vanilla": "[INST] %s [/INST]",
    "text:alpaca": T.ALPACA_PROMPT + "\n\n" + ALPACA_BODY,
    "chat:alpaca": SYS.format(T.ALPACA_PROMPT) + ALPACA_BODY + " [/INST]",
    "chat:llama": SYS.format(T.LLAMA_BASE_PROMPT) + "%s [/INST]",
    "chat:llama-short": SYS.format(T.LLAMA_SHORT_PROMPT) + "%s [/INST]",
    "chat:mpt": SYS.format(T.MPT_PROMPT) + "%s [/INST]",
    "chat:mistral": SYS.format(T.MISTRAL_PROMPT) + "%s [/INST]",
}
QUERY = "Natalia sold clips to 48 of her friends. How many?  "


def test_system_prompt_constants_are_the_papers():
    assert T.LLAMA_BASE_PROMPT.startswith("You are a helpful, respectful and honest assistant. Always answer")
    assert "positive in nature. If a question" in T.LLAMA_BASE_PROMPT  # single space, as in the official repo
    assert T.LLAMA_BASE_PROMPT.endswith("please don't share false information.")
    assert T.GPT_LLAMA_PROMPT.startswith("Be helpful, respectful and honest. Always answer as helpfully")
    assert T.GPT_LLAMA_PROMPT.endswith(T.LLAMA_BASE_PROMPT[-60:])
    assert T.MISTRAL_PROMPT.startswith("Always assist with care, respect, and truth.")


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_llama2_renders_official_string_byte_for_byte(llama2_tok, name):
    got = T.render(T.get_template(name), llama2_tok, QUERY).text
    assert got == "<s>" + OFFICIAL[name] % QUERY


def test_inputs_with_braces_and_percent_are_inserted_verbatim(llama2_tok):
    q = "Use {input} and %s and {0} literally"
    assert T.render(T.get_template("chat:llama"), llama2_tok, q).text.endswith(q + " [/INST]")


def test_chatml_default_system_is_dropped_kept_or_emptied(chatml_tok):
    fam = T.inspect_family(chatml_tok)
    assert fam.default_system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    base = T.get_template("chat:vanilla")
    dropped = T.render(base, chatml_tok, "hi").text
    assert dropped == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    kept = T.render(T.Template("k", "chat", "{input}", default_system="keep"), chatml_tok, "hi").text
    assert kept.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    empty = T.render(T.Template("e", "chat", "{input}", default_system="empty"), chatml_tok, "hi").text
    assert empty.startswith("<|im_start|>system\n<|im_end|>\n<|im_start|>user\nhi")


def test_chatml_safety_prompt_is_the_system_turn(chatml_tok):
    got = T.render(T.get_template("chat:llama"), chatml_tok, "hi").text
    assert got == f"<|im_start|>system\n{T.LLAMA_BASE_PROMPT}<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n" \
                  "<|im_start|>assistant\n"


def test_family_without_system_role_folds_it_into_first_user_turn(mistral_tok):
    fam = T.inspect_family(mistral_tok)
    assert not fam.supports_system
    got = T.render(T.get_template("chat:mistral"), mistral_tok, "hi").text
    assert got == f"<s>[INST] {T.MISTRAL_PROMPT}\n\nhi [/INST]"


@pytest.mark.parametrize("fam,tail", [("llama2_tok", " </s>"), ("chatml_tok", "<|im_end|>\n"), ("mistral_tok", "</s>")])
def test_response_span_is_exact(request, fam, tail):
    tok = request.getfixturevalue(fam)
    r = T.render(T.get_template("chat:llama"), tok, "q", "The answer is 4.\n#### 4")
    assert r.text[r.response_start:r.response_end] == "The answer is 4.\n#### 4"
    assert r.text[r.response_end:] == tail
    assert r.text[: r.response_start].startswith(T.render(T.get_template("chat:llama"), tok, "q").text)


def test_text_mode_appends_separator_response_and_eos(llama2_tok):
    r = T.render(T.get_template("gsm:text:vanilla"), llama2_tok, "2+2?", "4")
    assert r.text == "<s>Question: 2+2?\nAnswer: 4</s>"
    assert r.text[r.response_start:r.response_end] == "4"


def test_fingerprint_is_stable_and_distinguishes(llama2_tok, chatml_tok):
    a = T.fingerprint(T.get_template("chat:llama"), llama2_tok)
    assert a == T.fingerprint(T.get_template("chat:llama"), llama2_tok)
    assert a != T.fingerprint(T.get_template("chat:vanilla"), llama2_tok)
    assert a != T.fingerprint(T.get_template("chat:llama"), chatml_tok)
    assert len(a) == 64


def test_gpt_variants_are_messages():
    msgs = T.get_template("gpt:alpaca").messages("x")
    assert msgs == [{"role": "system", "content": T.ALPACA_PROMPT},
                    {"role": "user", "content": "### Instruction:\nx\n\n### Response:\n"}]
    assert T.get_template("gpt:vanilla").messages("x")[0] == {"role": "system", "content": ""}


def test_unknown_template_suggests():
    with pytest.raises(PtstError, match=r"did you mean 'chat:llama'"):
        T.get_template("chat:lama")


def test_chat_template_without_tokenizer_is_an_error():
    with pytest.raises(PtstError, match="needs a model's tokenizer"):
        T.render(T.get_template("chat:llama"), None, "x")


def test_custom_yaml_templates(tmp_path, llama2_tok):
    f = tmp_path / "mine.yaml"
    f.write_text("templates:\n  - name: my:med\n    mode: chat\n    system: Be careful.\n    user: 'Patient: {input}'\n"
                 "  - name: my:text\n    mode: text\n    user: 'Q: {input}\\nA:'\n")
    t = T.get_template(f"{f}:my:med")
    assert T.render(t, llama2_tok, "ache").text == "<s>[INST] <<SYS>>\nBe careful.\n<</SYS>>\n\nPatient: ache [/INST]"
    assert T.get_template(f"{f}:my:text").mode == "text"
    with pytest.raises(PtstError, match="holds 2 templates"):
        T.get_template(str(f))


@pytest.mark.parametrize("body,msg", [
    ("name: x\nmode: chat\nuser: no placeholder\n", "exactly once"),
    ("name: x\nmode: chat\nusr: '{input}'\n", "did you mean 'user'"),
    ("name: x\nmode: [unclosed\n", "malformed template YAML"),
    ("name: x\nmode: chatty\nuser: '{input}'\n", "mode must be"),
])
def test_malformed_template_yaml_is_one_clear_error(tmp_path, body, msg):
    f = tmp_path / "bad.yaml"
    f.write_text(body)
    with pytest.raises(PtstError, match=msg):
        T.load_templates_file(f)


def test_template_without_chat_template_tokenizer(llama2_tok):
    import copy

    tok = copy.deepcopy(llama2_tok)
    tok.chat_template = None
    with pytest.raises(PtstError, match="no chat template"):
        T.render(T.get_template("chat:llama"), tok, "x")


@pytest.mark.parametrize("line,msg", [
    ("user: 7", r"user must be a string, got int 7"),
    ("safety_prompt: 'no'", r"safety_prompt must be true or false, got str 'no'"),
    ("system: [1, 2]", r"system must be a string or null, got list \[1, 2\]"),
    ("description:", r"description must be a string, got NoneType None"),
    ("default_system: 0", r"default_system must be a string, got int 0"),
])
def test_template_yaml_values_are_type_checked(tmp_path, line, msg):
    f = tmp_path / "typed.yaml"
    body = {"name": "name: x", "mode": "mode: chat", "user": "user: '{input}'"}
    body[line.split(":")[0]] = line
    f.write_text("\n".join(body.values()) + "\n")
    with pytest.raises(PtstError, match=rf"typed.yaml\[0\]: template 'x': {msg}"):
        T.load_templates_file(f)


def test_template_name_must_be_a_string():
    with pytest.raises(PtstError, match="template name must be a non-empty string, got int 7"):
        T.template_from_dict({"name": 7, "mode": "chat", "user": "{input}"})


@pytest.mark.parametrize("body,where", [
    ("name: x\nmode: [unclosed\n", "line 2 (end of file)"),  # YAML's end-of-stream mark says "line 3"
    ("name: x\nmode: [unclosed", "line 2 (end of file)"),
    ("name: x\nuser: 'open quote\n\n", "line 3 (end of file)"),
    ("name: x\n mode: chat\nuser: y\n", "line 2"),
])
def test_malformed_yaml_names_a_line_of_the_file(tmp_path, body, where):
    f = tmp_path / "bad.yaml"
    f.write_text(body)
    with pytest.raises(PtstError) as e:
        T.load_templates_file(f)
    assert str(e.value).startswith(f"{f}: {where}: malformed template YAML (")


def _show(capsys, *args: str) -> tuple[str, str]:
    from ptst.cli import main

    assert main(["templates", "show", *args]) == 0
    got = capsys.readouterr()
    return got.out, got.err


def test_show_prints_the_exact_prompt_with_nothing_added(capsys, tiny_chatml_dir):
    from ptst.models import load_tokenizer

    want = T.render(T.get_template("chat:llama"), load_tokenizer(str(tiny_chatml_dir)), "hi").text
    assert want.endswith("<|im_start|>assistant\n")
    out, err = _show(capsys, "chat:llama", "--model", str(tiny_chatml_dir), "--input", "hi")
    head, _, prompt = out.partition(" no newline added ----\n")
    assert prompt == want and f"{len(want)} characters" in head and "fingerprint" in head and "tokens" in head
    assert err.startswith("# ---- end; the text ends with '") and "assistant\\n' ----" in err
    raw, err = _show(capsys, "chat:llama", "--model", str(tiny_chatml_dir), "--input", "hi", "--raw")
    assert raw == want and err == ""
    raw, _ = _show(capsys, "gsm:text:vanilla", "--model", str(tiny_chatml_dir), "--input", "2+2?", "--raw")
    assert raw == "Question: 2+2?\nAnswer:"


# --- paper-literal rendering (paper: names) ---------------------------------------------------------------------
def test_paper_prefix_selects_the_literal_rendering(llama2_tok, chatml_tok):
    t = T.get_template("paper:gsm:chat:llama")
    assert (t.name, t.rendering, t.system, t.safety_prompt) == ("paper:gsm:chat:llama", "paper-literal",
                                                                T.LLAMA_BASE_PROMPT, True)
    want = "<s>" + OFFICIAL["gsm:chat:llama"] % QUERY
    assert T.render(t, llama2_tok, QUERY).text == want  # the official string, as on Llama-2-chat natively
    assert T.render(t, chatml_tok, QUERY).text == want.removeprefix("<s>")  # no BOS added by this tokenizer
    assert T.fingerprint(t, llama2_tok) != T.fingerprint(T.get_template("gsm:chat:llama"), llama2_tok)
    assert "rendering" not in T.get_template("gsm:chat:llama").to_dict()  # the default stays out of dicts
    assert T.get_template(t) is t and T.paper_literal(t) is t


def test_paper_prefix_errors_are_one_line():
    with pytest.raises(PtstError, match="text template"):
        T.get_template("paper:text:vanilla")
    with pytest.raises(PtstError, match="did you mean"):
        T.get_template("paper:chat:lama")


def test_rendering_field_in_yaml(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text("name: x\nmode: chat\nuser: '{input}'\nsystem: S\nrendering: paper-literal\n")
    t = T.get_template(str(f))
    assert t.rendering == "paper-literal" and T.render(t, None, "q").text == "[INST] <<SYS>>\nS\n<</SYS>>\n\nq [/INST]"
    f.write_text("name: x\nmode: chat\nuser: '{input}'\nrendering: literal\n")
    with pytest.raises(PtstError, match="rendering must be native or paper-literal, got 'literal'"):
        T.load_templates_file(f)
    f.write_text("name: x\nmode: text\nuser: '{input}'\nrendering: paper-literal\n")
    with pytest.raises(PtstError, match="paper-literal applies to chat templates only"):
        T.load_templates_file(f)


@pytest.mark.parametrize(("value", "match"), [
    ("[1, 2]", "chat_template_kwargs must map names to strings, numbers or booleans"),
    ("{x: [1]}", "chat_template_kwargs must map names to strings, numbers or booleans"),
    ("{1: true}", "chat_template_kwargs must map names"),
])
def test_chat_template_kwargs_types_are_checked(tmp_path, value, match):
    f = tmp_path / "t.yaml"
    f.write_text(f"name: x\nmode: chat\nuser: '{{input}}'\nchat_template_kwargs: {value}\n")
    with pytest.raises(PtstError, match=match):
        T.load_templates_file(f)
