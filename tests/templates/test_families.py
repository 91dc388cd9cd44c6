"""Golden renderings on the official chat templates of 16 model families (../shared/fixtures/chat-templates).

What each test compares against is the family's own `apply_chat_template` on the equivalent plain messages, or
an explicit golden string where no message list reproduces ptst's documented choice (a dropped default)."""

from __future__ import annotations

import dataclasses

import pytest

from ptst import templates as T
from tests.templates import families as F

pytestmark = pytest.mark.skipif(not F.available(), reason=f"chat-template fixtures not found at {F.FIXTURES}")

Q, Q1, A0, RESP = "Natalia sold 48 clips. How many?", "And in May?", "She sold 72.", "The answer is 72."
PAPER = [n for n in T.TEMPLATES.names()]  # every registered paper template: text/chat/gsm:/gpt: styles
# How each family's own template places a system message (README of the fixtures; Gemma-2 raises on one).
PLACEMENT = {
    "llama-2": "first-user", "llama-3": "own-turn", "llama-3.1": "own-turn", "llama-3.2": "own-turn",
    "mistral-v0.1": "first-user", "mistral-v0.2": "first-user", "mistral-v0.3": "last-user", "mixtral": "first-user",
    "qwen2.5": "own-turn", "qwen3": "own-turn", "gemma-2": "none", "gemma-3": "first-user", "phi-3": "own-turn",
    "smollm2": "own-turn", "olmo-2": "own-turn", "deepseek-r1": "after-bos",
}
DEFAULTS = {"qwen2.5": "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
            "smollm2": "You are a helpful AI assistant named SmolLM, trained by Hugging Face"}
# default_system: drop on the families that inject a default: no system turn at all (golden, by hand).
DROPPED = {"qwen2.5": "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n",
           "smollm2": "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"}


# What the family puts between the prompt and a reply it renders (Qwen3: an empty think block, a non-thinking
# answer as its own template formats one; kept as untrained context).
GAP = {"llama-2": " ", "mistral-v0.1": " ", "mistral-v0.2": " ", "mistral-v0.3": " ", "mixtral": " ",
       "qwen3": "<think>\n\n</think>\n\n"}


def family_render(tok, messages, gen=True):
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen, date_string=T.DATE_STRING)


def verbatim(rendered: str, *contents: str) -> str:
    """ptst inserts system and user text verbatim where a family trims it (Llama-2's strip, Gemma's trim): put the
    untrimmed text back into the family's rendering (a no-op where the family keeps it)."""
    for c in contents:
        if c not in rendered and c.strip() in rendered:
            rendered = rendered.replace(c.strip(), c, 1)
    return rendered


def equivalent(fam: str, tok, system: str | None, turns: list[dict[str, str]]) -> list[dict[str, str]]:
    """The plain messages a user of this family would send: a system message, or (no system role) the system
    prompt folded into the FIRST user turn as system + blank line + user."""
    if system is None:
        return turns
    if PLACEMENT[fam] != "none":
        return [{"role": "system", "content": system}, *turns]
    if not system:  # an empty system prompt (gpt:vanilla) folds to nothing, not to a leading blank line
        return turns
    first = {"role": "user", "content": f"{system}\n\n{turns[0]['content']}"}
    return [first, *turns[1:]]


@pytest.mark.parametrize("fam", list(F.FAMILIES))
def test_placement_is_probed(fam):
    assert T.inspect_family(F.tokenizer(fam)).placement == PLACEMENT[fam]
    assert T.inspect_family(F.tokenizer(fam)).default_system == DEFAULTS.get(fam)


@pytest.mark.parametrize("name", PAPER)
@pytest.mark.parametrize("fam", list(F.FAMILIES))
def test_prompt_is_the_familys_own_rendering(fam, name):
    t, tok = T.get_template(name), F.tokenizer(fam)
    got = T.render(t, tok, Q).text
    user = t.format_user(Q)
    if t.mode == "text":
        assert got == (tok.bos_token if fam in F.ADD_BOS else "") + user
    elif t.system is None and fam in DROPPED:
        assert got == DROPPED[fam].format(q=user)
    else:
        msgs = equivalent(fam, tok, t.system, [{"role": "user", "content": user}])
        assert got == verbatim(family_render(tok, msgs), *(m["content"] for m in msgs))


@pytest.mark.parametrize("fam", list(F.FAMILIES))
def test_no_system_prompt_three_renderings(fam):
    """No system turn at all (drop, the default), the family's default kept, an empty system turn: explicit."""
    tok, base = F.tokenizer(fam), T.get_template("chat:vanilla")
    got = {d: T.render(dataclasses.replace(base, default_system=d), tok, Q).text for d in ("drop", "keep", "empty")}
    plain = family_render(tok, [{"role": "user", "content": Q}])
    if fam in DEFAULTS:
        assert DEFAULTS[fam] in plain and DEFAULTS[fam] not in got["drop"]
        assert got["drop"] == DROPPED[fam].format(q=Q)
        assert got["keep"] == plain
        assert got["empty"] == family_render(tok, [{"role": "system", "content": ""}, {"role": "user", "content": Q}])
        assert got["empty"] == f"<|im_start|>system\n<|im_end|>\n{got['drop']}"
    else:  # nothing injected: all three are the plain user-only rendering
        assert got["drop"] == got["keep"] == got["empty"] == plain


@pytest.mark.parametrize("fam", list(F.FAMILIES))
def test_multi_turn_system_placement(fam):
    """Two user turns: the system prompt lands where the family puts it (Mistral v0.3: the last user turn), and
    where a family has no system role ptst folds it into the first user turn, never the last."""
    tok, t = F.tokenizer(fam), T.get_template("chat:llama-short")
    turns = [{"role": "user", "content": Q}, {"role": "assistant", "content": A0}, {"role": "user", "content": Q1}]
    got = T.render_conversation(t, tok, t.system, turns).text
    msgs = equivalent(fam, tok, t.system, turns)
    assert got == verbatim(family_render(tok, msgs), *(m["content"] for m in msgs))
    sys_at, q0_at, q1_at = got.index(T.LLAMA_SHORT_PROMPT), got.index(Q), got.index(Q1)
    assert got.count(T.LLAMA_SHORT_PROMPT) == 1
    assert (sys_at > q0_at) == (PLACEMENT[fam] == "last-user")
    if PLACEMENT[fam] in ("first-user", "none"):
        assert got[sys_at + len(T.LLAMA_SHORT_PROMPT): q0_at] in ("\n\n", "\n<</SYS>>\n\n")
    assert q0_at < q1_at


@pytest.mark.parametrize("fam", list(F.FAMILIES))
@pytest.mark.parametrize("name", ["chat:llama", "gsm:chat:vanilla", "gsm:chat:alpaca", "gsm:text:vanilla"])
@pytest.mark.parametrize("turns", [1, 2])
def test_trained_prompt_is_the_tested_prompt(fam, name, turns):
    """The training text starts with the exact prompt tested, and the response span is the response: also on
    Mistral v0.3 (whose template drops a system prompt once a reply follows) and DeepSeek-R1 (`<think>\\n`)."""
    tok, t = F.tokenizer(fam), T.get_template(name)
    if t.mode == "text" and turns == 2:
        pytest.skip("text templates render one turn")
    conv = [{"role": "user", "content": Q}] if turns == 1 else [
        {"role": "user", "content": Q}, {"role": "assistant", "content": A0}, {"role": "user", "content": Q1}]
    prompt = T.render_conversation(t, tok, t.system, conv).text
    r = T.render_conversation(t, tok, t.system, conv, RESP)
    assert r.text[r.response_start: r.response_end] == RESP
    assert r.text.startswith(prompt)
    assert r.text[len(prompt): r.response_start] == (GAP.get(fam, "") if t.mode == "chat" else t.response_sep)
    assert r.text[r.response_end:].startswith(F.EOT[fam] if t.mode == "chat" else tok.eos_token)
    if t.system is not None:
        assert r.text.count(t.system) == 1


def test_mistral_v03_training_keeps_the_system_prompt_its_template_would_drop():
    tok, t = F.tokenizer("mistral-v0.3"), T.get_template("chat:llama")
    family = family_render(tok, [{"role": "system", "content": t.system}, {"role": "user", "content": Q},
                                 {"role": "assistant", "content": RESP}], gen=False)
    assert t.system not in family  # the official template: system only when a user turn is last
    got = T.render(t, tok, Q, RESP).text
    assert got == f"<s>[INST] {t.system}\n\n{Q}[/INST] {RESP}</s>"


def test_llama32_date_is_pinned():
    """Llama 3.2 would print today's date: pinned, so a prompt (and its fingerprint) is the same every day."""
    text = T.render(T.get_template("chat:vanilla"), F.tokenizer("llama-3.2"), Q).text
    assert f"Today Date: {T.DATE_STRING}\n" in text


# --- paper-literal rendering ------------------------------------------------------------------------------------
LITERAL = "<s>[INST] <<SYS>>\n{sys}\n<</SYS>>\n\nQuestion: {q} [/INST]"


@pytest.mark.parametrize("name", [n for n in PAPER if T.get_template(n).mode == "chat"])
def test_paper_literal_is_native_on_llama2(name):
    tok, t = F.tokenizer("llama-2"), T.get_template(name)
    lit = T.get_template(f"paper:{name}")
    assert lit.rendering == "paper-literal" and lit.name == f"paper:{name}"
    assert T.render(lit, tok, Q).text == T.render(t, tok, Q).text
    assert T.render(lit, tok, Q, RESP) == T.render(t, tok, Q, RESP)
    assert T.fingerprint(lit, tok) != T.fingerprint(t, tok)  # the mode is part of the key


@pytest.mark.parametrize("fam", ["mistral-v0.2", "mistral-v0.3", "gemma-2", "qwen2.5", "llama-3.1"])
def test_paper_literal_ignores_the_familys_template(fam):
    tok = F.tokenizer(fam)
    bos = tok.bos_token if fam in F.ADD_BOS else ""
    got = T.render(T.get_template("paper:gsm:chat:llama"), tok, Q).text
    assert got == LITERAL.format(sys=T.LLAMA_BASE_PROMPT, q=Q).replace("<s>", bos, 1)
    native = T.render(T.get_template("gsm:chat:llama"), tok, Q).text
    assert got != native


def test_paper_literal_multi_turn_and_training_text():
    tok, t = F.tokenizer("mistral-v0.2"), T.get_template("paper:chat:mpt")
    conv = [{"role": "user", "content": Q}, {"role": "assistant", "content": A0}, {"role": "user", "content": Q1}]
    r = T.render_conversation(t, tok, t.system, conv, RESP)
    assert r.text == (f"<s>[INST] <<SYS>>\n{T.MPT_PROMPT}\n<</SYS>>\n\n{Q} [/INST] {A0} </s>"
                      f"<s>[INST] {Q1} [/INST] {RESP} </s>")
    assert r.text[r.response_start: r.response_end] == RESP


def test_serving_renders_through_the_same_function():
    from ptst.serve.prompt import Conversation, render_conversation

    for fam in F.FAMILIES:
        tok = F.tokenizer(fam)
        for name in ("gsm:chat:llama", "chat:vanilla", "paper:chat:llama"):
            t = T.get_template(name)
            turns = ({"role": "user", "content": Q}, {"role": "assistant", "content": A0},
                     {"role": "user", "content": Q1})
            assert render_conversation(t, tok, Conversation(t.system, turns)) == \
                T.render_conversation(t, tok, t.system, list(turns)).text


def test_qwen3_thinking_off_through_chat_template_kwargs(tmp_path):
    """`chat_template_kwargs: {enable_thinking: false}`: the prompt carries Qwen3's empty think block, so the
    trained prompt is the tested prompt byte for byte (the default keeps thinking on and the block in training
    context only); the kwargs are part of what is rendered, hence of the fingerprint."""
    f = tmp_path / "q.yaml"
    f.write_text("name: q3:chat:llama\nmode: chat\nuser: '{input}'\nsystem: S\n"
                 "chat_template_kwargs: {enable_thinking: false}\n")
    t, tok = T.get_template(f"{f}:q3:chat:llama"), F.tokenizer("qwen3")
    prompt = T.render(t, tok, Q).text
    assert prompt == f"<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n{Q}<|im_end|>\n<|im_start|>assistant\n" \
                     "<think>\n\n</think>\n\n"
    r = T.render(t, tok, Q, RESP)
    assert r.text == prompt + RESP + "<|im_end|>\n" and r.response_start == len(prompt)
    on = dataclasses.replace(t, chat_template_kwargs=())
    assert T.fingerprint(t, tok) != T.fingerprint(on, tok)
    assert t.to_dict()["chat_template_kwargs"] == {"enable_thinking": False} and "chat_template_kwargs" not in \
        on.to_dict()
