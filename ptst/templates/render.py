"""Rendering: one function turns a template, a tokenizer and a conversation into the exact text the model sees
(training and serving both call it), plus the response's character span for the loss mask."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ptst.errors import PtstError
from ptst.io import sha256_text
from ptst.templates.family import (
    _A,
    _S,
    PLACEMENT_WORDS,
    ChatTokenizer,
    Family,
    RenderError,
    _first_line,
    apply,
    bos_text,
    drop_default,
    inspect_family,
)
from ptst.templates.spec import INPUT, PAPER_PREFIX, Template

Turn = dict[str, str]  # {"role": "user" | "assistant", "content": ...}
B_INST, E_INST, B_SYS, E_SYS = "[INST] ", " [/INST]", "<<SYS>>\n", "\n<</SYS>>\n\n"  # the paper's Llama-2 strings


# Bump when ptst's rendering logic changes in a way a template's definition does not show (how BOS, a reply's
# separator or a folded system prompt are placed): part of every evaluation cell's key (ptst.runs.keys).
RENDER_VERSION = "1"


@dataclass(frozen=True)
class Rendered:
    """A rendered conversation: `text` is tokenized with add_special_tokens=False; the response is
    text[response_start:response_end] (both -1 for a prompt without a response)."""

    text: str
    response_start: int = -1
    response_end: int = -1


def _key(i: int, role: str) -> str:
    return f"PTSTx{role.upper()}{i}x7f3a"


@dataclass(frozen=True)
class Frame:
    """A conversation's rendering with a placeholder for every string a user or data set supplies: rendered once,
    filled any number of times (serving fills it with the client's text and with nothing, to check control tokens).
    `fold`: ptst itself put the system prompt into the first user turn (a family with no system role)."""

    template: Template
    skeleton: str
    roles: tuple[str, ...]
    fold: bool

    def fill(self, system: str | None, contents: Sequence[str], response: str | None = None) -> Rendered:
        """`contents`: the raw user inputs (the template's user format is applied here) and assistant replies."""
        t = self.template
        fills = {_S: system or ""}
        for i, (role, text) in enumerate(zip(self.roles, contents, strict=True)):
            head = f"{system}\n\n" if self.fold and i == 0 and system else ""
            fills[_key(i, role)] = head + t.format_user(text) if role == "user" else text
        if response is not None:
            fills[_A] = response
        # One pass, so text that looks like a placeholder is never substituted.
        out, pos, start = [], 0, -1
        for mt in re.finditer("|".join(re.escape(k) for k in fills), self.skeleton):
            out.append(self.skeleton[pos: mt.start()])
            if mt.group(0) == _A:
                start = sum(map(len, out))
            out.append(fills[mt.group(0)])
            pos = mt.end()
        out.append(self.skeleton[pos:])
        text = "".join(out)
        return Rendered(text, start, start + len(response)) if response is not None else Rendered(text)


def frame(t: Template, tok: ChatTokenizer | None, has_system: bool, roles: Sequence[str],
          response: bool = False) -> Frame:
    """The placeholder rendering of a conversation under `t`: a system prompt or not, then `roles` (alternating,
    starting and ending with "user"), then optionally the trained response."""
    roles = tuple(roles)
    if not roles or roles[-1] != "user" or any(r != ("user", "assistant")[i % 2] for i, r in enumerate(roles)):
        raise PtstError(f"template {t.name!r}: a conversation alternates user/assistant turns and ends with a user "
                        "turn")
    if t.mode == "text":
        if len(roles) != 1:
            raise PtstError(f"template {t.name!r} is a text template: it renders a single user turn")
        bos = bos_text(tok) if tok is not None else ""
        eos = str(getattr(tok, "eos_token", "") or "") if tok is not None else ""
        tail = f"{t.response_sep}{_A}{eos}" if response else ""
        return Frame(t, bos + _key(0, "user") + tail, roles, False)
    if t.rendering == "paper-literal":
        return _literal(t, tok, has_system, roles, response)
    if tok is None:
        raise PtstError(f"template {t.name!r} is a chat template: rendering it needs a model's tokenizer")
    fam = inspect_family(tok)
    if not fam.has_chat_template:
        raise PtstError(f"template {t.name!r}: this tokenizer has no chat template; use a text: template or a chat "
                        f"model (or {PAPER_PREFIX}{t.name} for the paper's literal Llama-2 strings)")
    msgs: list[Turn] = []
    if has_system and fam.supports_system:
        msgs.append({"role": "system", "content": _S})
    elif not has_system and fam.default_system is not None and t.default_system == "empty":
        msgs.append({"role": "system", "content": ""})
    msgs += [{"role": r, "content": _key(i, r)} for i, r in enumerate(roles)]
    prompt = _native(t, tok, fam, msgs, True, has_system)
    if response:
        prompt = _with_reply(t, tok, fam, msgs, prompt, has_system)
    return Frame(t, prompt, roles, has_system and not fam.supports_system)


def _native(t: Template, tok: ChatTokenizer, fam: Family, msgs: list[Turn], gen: bool, has_system: bool) -> str:
    try:
        out = apply(tok, msgs, gen, dict(t.chat_template_kwargs))
    except Exception as e:  # noqa: BLE001 - jinja raise_exception and friends
        why = _first_line(e)
        raise RenderError(f"template {t.name!r}: the model's chat template cannot render it ({why})") from None
    if not has_system and fam.default_system is not None and t.default_system == "drop":
        out = drop_default(tok, fam, out, t.name)
    return out


def _with_reply(t: Template, tok: ChatTokenizer, fam: Family, msgs: list[Turn], prompt: str, has_system: bool) -> str:
    """The prompt followed by the response placeholder and what the family closes a reply with.

    The trained prompt is always the tested prompt: where the family renders a conversation with a reply
    differently from the bare prompt (Mistral v0.3 drops a system prompt unless a user turn is last; DeepSeek-R1's
    generation prompt adds `<think>\\n`), the reply is joined to the generation prompt, not to the family's variant."""
    full = _native(t, tok, fam, [*msgs, {"role": "assistant", "content": _A}], False, has_system)
    if _A not in full:
        raise RenderError(f"template {t.name!r}: the model's chat template drops the assistant's reply")
    head, tail = full.split(_A, 1)
    if head.startswith(prompt):  # the usual case: the family's own training text
        return head + _A + tail
    if prompt.startswith(head):  # the generation prompt opens the reply further
        return prompt + _A + tail
    # Same conversation without the system turn, to learn what joins a prompt to its reply (" " in Mistral v0.3).
    bare = [m for m in msgs if m["role"] != "system"]
    p = _native(t, tok, fam, bare, True, True)
    h = _native(t, tok, fam, [*bare, {"role": "assistant", "content": _A}], False, True).split(_A, 1)[0]
    if not h.startswith(p):
        raise RenderError(f"template {t.name!r}: cannot join a reply to this chat template's prompt (the template "
                          "renders the conversation differently once a reply follows)")
    return prompt + h[len(p):] + _A + tail


def _literal(t: Template, tok: ChatTokenizer | None, has_system: bool, roles: tuple[str, ...], response: bool) -> Frame:
    """The official code's strings: `[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user} [/INST]`, BOS as the tokenizer
    adds it, replies as Llama-2-chat closes them (` reply </s>`), whatever the model's own chat template."""
    bos = bos_text(tok) if tok is not None else ""
    eos = str(getattr(tok, "eos_token", "") or "") if tok is not None else ""
    out = []
    for i, r in enumerate(roles):
        if r == "user":
            sys_block = f"{B_SYS}{_S}{E_SYS}" if i == 0 and has_system else ""
            out.append(f"{bos}{B_INST}{sys_block}{_key(i, r)}{E_INST}")
        else:
            out.append(f" {_key(i, r)} {eos}")
    if response:
        out.append(f" {_A} {eos}")
    return Frame(t, "".join(out), roles, False)


def render_conversation(t: Template, tok: ChatTokenizer | None, system: str | None, turns: Sequence[Turn],
                        response: str | None = None) -> Rendered:
    """The exact text for `turns` (raw user inputs and assistant replies) under `t`, with `system` as the system
    prompt (None: no system turn), optionally followed by the trained `response`."""
    f = frame(t, tok, system is not None, [m["role"] for m in turns], response is not None)
    return f.fill(system, [m["content"] for m in turns], response)


def render(t: Template, tok: ChatTokenizer | None, text: str, response: str | None = None) -> Rendered:
    """Render `text` (and optionally the target `response`) exactly as the model will see it."""
    return render_conversation(t, tok, t.system, [{"role": "user", "content": text}], response)


def prompt_format(t: Template, tok: ChatTokenizer | None) -> str:
    """The rendered prompt with the literal placeholder `{input}` in place of the user input."""
    return render(t, tok, INPUT).text


def fingerprint(t: Template, tok: ChatTokenizer | None) -> str:
    """sha256 of the rendered prompt format: what identifies a template on a given tokenizer. A non-default
    rendering mode is part of it even where it renders the same bytes (paper-literal on Llama-2)."""
    head = "" if t.rendering == "native" else f"rendering={t.rendering}\n"
    return sha256_text(head + prompt_format(t, tok))


def placement(t: Template, tok: ChatTokenizer | None) -> str:
    """One line: how the system prompt (or its absence) was placed for `t` on `tok`."""
    if t.mode == "text":
        return "text template: a raw string, no chat markers and no system turn"
    if t.rendering == "paper-literal":
        where = "in the <<SYS>> block of the first [INST] turn" if t.system is not None else "none: no <<SYS>> block"
        return ("paper-literal rendering (the official code's Llama-2 strings, not the model's template): "
                f"system prompt {where}")
    if tok is None:
        return "no tokenizer: OpenAI-style messages"
    fam = inspect_family(tok)
    if t.system is not None:
        sys_word = "an empty system prompt" if t.system == "" else "system prompt"
        return f"{sys_word} placed {PLACEMENT_WORDS[fam.placement]}"
    if fam.default_system is None:
        return "no system prompt: no system turn (the family injects no default)"
    d = fam.default_system if len(fam.default_system) <= 80 else fam.default_system[:77] + "..."
    what = {"drop": "dropped, no system turn at all", "keep": "kept as the system turn",
            "empty": "replaced by an empty system turn"}[t.default_system]
    return f"no system prompt: the family injects default system prompt {d!r}; policy {t.default_system}: {what}"
