"""Response-only labels, exactly, per template family: -100 on system, user and scaffolding; the response and the
end-of-turn token that closes it are trained; nothing after it; right truncation."""

from __future__ import annotations

import pytest

from ptst.errors import PtstError
from ptst.records import Example
from ptst.templates import get_template, render
from ptst.train.encode import IGNORE, encode_part, encode_rendered, stop_token_ids

Q, A = "hi there", "The answer is 72."
SHORT = "You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, while being safe."

CASES = [
    # (tokenizer fixture, template, masked context, trained text)
    ("llama2_tok", "chat:vanilla", "<s>[INST] hi there [/INST] ", "The answer is 72. </s>"),
    ("llama2_tok", "chat:llama-short", f"<s>[INST] <<SYS>>\n{SHORT}\n<</SYS>>\n\nhi there [/INST] ",
     "The answer is 72. </s>"),
    ("llama2_tok", "gsm:text:vanilla", "<s>Question: hi there\nAnswer: ", "The answer is 72.</s>"),
    ("llama2_tok", "text:vanilla", "<s>hi there\n", "The answer is 72.</s>"),
    ("chatml_tok", "chat:vanilla", "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n",
     "The answer is 72.<|im_end|>"),
    ("chatml_tok", "chat:llama-short",
     f"<|im_start|>system\n{SHORT}<|im_end|>\n<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n",
     "The answer is 72.<|im_end|>"),
    ("chatml_tok", "gsm:text:vanilla", "Question: hi there\nAnswer: ", "The answer is 72.<|im_end|>"),
    ("mistral_tok", "chat:vanilla", "<s>[INST] hi there [/INST]", "The answer is 72.</s>"),
    ("mistral_tok", "chat:llama-short", f"<s>[INST] {SHORT}\n\nhi there [/INST]", "The answer is 72.</s>"),
]


def encode_one(tok, template, text=Q, response=A, max_len=1024):
    r = render(get_template(template), tok, text, response)
    return r, encode_rendered(tok, [r], max_len, stop_token_ids(tok))[0]


def pieces(tok, ids):
    return "".join(tok.decode([i]) for i in ids)


@pytest.mark.parametrize("fixture, template, context, trained", CASES)
def test_mask_is_exact(request, fixture, template, context, trained):
    tok = request.getfixturevalue(fixture)
    r, (ids, start) = encode_one(tok, template)
    assert r.text.startswith(context + trained)  # the golden strings really are the rendered text
    assert pieces(tok, ids[:start]) == context
    assert pieces(tok, ids[start:]) == trained
    assert ids == tok(context + trained, add_special_tokens=False)["input_ids"]  # nothing after end-of-turn


def test_chatml_newline_after_end_of_turn_is_not_even_input(chatml_tok):
    r, (ids, _) = encode_one(chatml_tok, "chat:vanilla")
    assert r.text.endswith("<|im_end|>\n")
    assert ids[-1] == chatml_tok.convert_tokens_to_ids("<|im_end|>")


def test_token_straddling_scaffolding_and_response_is_trained(llama2_tok):
    # Llama-2 renders ' ' + response: " answer" is one token holding the separator and the response's first word.
    _, (ids, start) = encode_one(llama2_tok, "chat:vanilla", response="answer is 72.")
    assert llama2_tok.convert_ids_to_tokens(ids[start]) == "Ġan"
    assert pieces(llama2_tok, ids[start:]) == " answer is 72. </s>"
    assert pieces(llama2_tok, ids[:start]) == "<s>[INST] hi there [/INST]"


def test_end_of_turn_inside_the_response_text_does_not_stop_training(chatml_tok):
    _, (ids, start) = encode_one(chatml_tok, "chat:vanilla", response="a <|im_end|> b")
    assert pieces(chatml_tok, ids[start:]) == "a <|im_end|> b<|im_end|>"


def test_labels_are_minus_100_outside_the_span(llama2_tok, tmp_path):
    ds = type("DS", (), {"examples": (Example("a", Q, A),), "name": "x", "split": "train", "sha256": "s"})()
    [enc], part = encode_part("x", ds, "chat:llama-short", llama2_tok, 1024, None, stop_token_ids(llama2_tok))
    labels = enc.labels()
    assert labels[: enc.start] == [IGNORE] * enc.start
    assert labels[enc.start:] == list(enc.input_ids[enc.start:]) and IGNORE not in labels[enc.start:]
    assert part.response_tokens == enc.n_trained == len(enc.input_ids) - enc.start
    assert part.total_tokens == len(enc.input_ids)


def test_right_truncation_keeps_a_partial_response_and_drops_an_absent_one(llama2_tok):
    _, (full, start) = encode_one(llama2_tok, "chat:vanilla")
    _, (cut, cut_start) = encode_one(llama2_tok, "chat:vanilla", max_len=start + 2)
    assert cut == full[: start + 2] and cut_start == start
    assert encode_one(llama2_tok, "chat:vanilla", max_len=start)[1] is None


def test_all_responses_truncated_is_one_clear_error(llama2_tok, monkeypatch):
    import ptst.train.encode as E
    from ptst.train import TrainConfig

    cfg = TrainConfig(model="unused", data="d", template="chat:vanilla", max_len=8)
    ds = type("DS", (), {"examples": (Example("a", "x " * 40, A),), "name": "d", "sha256": "s"})()
    monkeypatch.setattr(E, "load_examples", lambda *a, **k: ds)
    with pytest.raises(PtstError, match="no usable examples.*max_len=8"):
        E.build_train_set(cfg, llama2_tok)


def test_missing_response_is_refused(llama2_tok):
    ds = type("DS", (), {"examples": (Example("a", Q, None),), "name": "x"})()
    with pytest.raises(PtstError, match="no target response"):
        encode_part("x", ds, "chat:vanilla", llama2_tok, 1024, None, stop_token_ids(llama2_tok))


def test_chat_template_on_a_tokenizer_without_one_is_refused():
    from ptst.testing import tiny_tokenizer

    tok = tiny_tokenizer("llama2")
    tok.chat_template = None
    ds = type("DS", (), {"examples": (Example("a", Q, A),), "name": "x"})()
    with pytest.raises(PtstError, match="no chat template"):
        encode_part("x", ds, "chat:vanilla", tok, 1024, None, stop_token_ids(tok))


# --- the official chat templates of 16 families (../shared/fixtures/chat-templates) -----------------------------
def _families():
    from tests.templates import families as F

    return F


@pytest.mark.parametrize("turns", [1, 2])
@pytest.mark.parametrize("template", ["chat:vanilla", "gsm:chat:llama", "chat:alpaca", "paper:gsm:chat:llama"])
@pytest.mark.parametrize("fam", ["llama-2", "llama-3", "llama-3.1", "llama-3.2", "mistral-v0.1", "mistral-v0.2",
                                 "mistral-v0.3", "mixtral", "qwen2.5", "qwen3", "gemma-2", "gemma-3", "phi-3",
                                 "smollm2", "olmo-2", "deepseek-r1"])
def test_family_masks_train_exactly_the_answer_and_its_end_of_turn(fam, template, turns):
    """On every family, single- and multi-turn: the trained tokens are the final answer plus the token that ends
    its turn (the family's own; Llama-2's reply closes with ' </s>'); the earlier answer and everything else is
    -100; nothing follows."""
    from ptst.templates import render_conversation

    F = _families()
    if not F.available():
        pytest.skip(f"chat-template fixtures not found at {F.FIXTURES}")
    tok, t = F.tokenizer(fam), get_template(template)
    conv = [{"role": "user", "content": Q}] + ([{"role": "assistant", "content": "Earlier answer 5."},
                                                {"role": "user", "content": "And then?"}] if turns == 2 else [])
    r = render_conversation(t, tok, t.system, conv, A)
    ids, first = encode_rendered(tok, [r], 4096, stop_token_ids(tok))[0]
    eot = F.EOT[fam] if t.rendering == "native" else f" {tok.eos_token}"
    assert pieces(tok, ids[first:]) == A + eot
    assert pieces(tok, ids[:first]) == r.text[: r.response_start]
    assert ids[-1] in stop_token_ids(tok) and all(i not in stop_token_ids(tok) for i in ids[first:-1])


def test_encode_part_renders_every_example_as_render_does(llama2_tok, chatml_tok):
    """encode_part fills one frame per template: the same text as `render` for every example, special
    characters and placeholder-looking text included."""
    from types import SimpleNamespace

    rows = [Example("a", "hi there", "The answer is 72."), Example("b", "PTSTxUSER0x7f3a {input}", "x{response}"),
            Example("c", "  spaced  ", "\nnew line\n")]
    ds = SimpleNamespace(examples=rows, name="t", split=None, sha256="", licence=None, non_commercial=False)
    for tok in (llama2_tok, chatml_tok):
        for name in ("chat:llama", "chat:vanilla", "gsm:text:vanilla", "paper:chat:mpt"):
            enc, part = encode_part("t", ds, name, tok, 4096, None, stop_token_ids(tok))
            want = [render(get_template(name), tok, ex.input, ex.response) for ex in rows]
            got_ids = [list(e.input_ids) for e in enc]
            assert got_ids == [tok(r.text, add_special_tokens=False)["input_ids"][: len(g)]
                               for r, g in zip(want, got_ids, strict=True)]
            assert part.train_format == render(get_template(name), tok, "{input}", "{response}").text
