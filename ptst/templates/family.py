"""What a tokenizer's chat template does with a system message, found by rendering probes (never from a name)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ptst.errors import PtstError

# Llama 3.1's own default for `date_string`; Llama 3.2 would otherwise print today's date (strftime_now), so the
# same template would render, and fingerprint, differently every day.
DATE_STRING = "26 Jul 2024"

_S, _U, _A = "PTSTxSYSTEMx7f3a", "PTSTxUSERx7f3a", "PTSTxASSISTANTx7f3a"
_U0, _A0, _U1 = "PTSTxUSER0x7f3a", "PTSTxASSISTANT0x7f3a", "PTSTxUSER1x7f3a"

# Where the family's own template puts a system message: in a turn of its own; inside the first or the last user
# turn; bare right after BOS with no role marker; or nowhere because it has no system role ("none": ptst then
# folds it into the first user turn itself).
Placement = Literal["own-turn", "first-user", "last-user", "after-bos", "none"]


class ChatTokenizer(Protocol):
    """The part of a Hugging Face tokenizer that rendering needs."""

    chat_template: Any
    bos_token: Any
    eos_token: Any

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...


class RenderError(PtstError):
    """The model's chat template refused a conversation (serving answers it with a 400)."""


@dataclass(frozen=True)
class Family:
    """What a tokenizer's chat template does, found by rendering probes."""

    has_chat_template: bool
    supports_system: bool
    default_system: str | None  # the system prompt it injects when none is given
    bos_text: str  # the BOS text a plain tokenizer call would add ("" if none)
    placement: Placement = "none"


def apply(tok: ChatTokenizer, messages: list[dict[str, str]], gen: bool, extra: dict[str, Any] | None = None) -> str:
    """One chat-template render to text, with the date pinned (see DATE_STRING) unless `extra` sets it."""
    kwargs = {"date_string": DATE_STRING, **(extra or {})}
    out = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen, **kwargs)
    return str(out)


def bos_text(tok: Any) -> str:
    bos_id = getattr(tok, "bos_token_id", None)
    if bos_id is None or not getattr(tok, "bos_token", None):
        return ""
    try:
        ids = tok("a", add_special_tokens=True)["input_ids"]
    except Exception:  # noqa: BLE001 - a tokenizer that cannot encode has no BOS to add
        return ""
    return str(tok.bos_token) if ids and ids[0] == bos_id else ""


def _first_line(e: BaseException) -> str:
    text = (str(e).strip().splitlines() or [""])[0][:200]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


_FAMILY_CACHE: dict[tuple[str, str, str], Family] = {}


def inspect_family(tok: ChatTokenizer) -> Family:
    """Probe `tok`'s chat template once (cached on the template text and the BOS/EOS tokens)."""
    key = (str(getattr(tok, "chat_template", None)), str(tok.bos_token), str(tok.eos_token))
    if key in _FAMILY_CACHE:
        return _FAMILY_CACHE[key]
    bos = bos_text(tok)
    fam = Family(False, False, None, bos) if not getattr(tok, "chat_template", None) else _probe(tok, bos)
    _FAMILY_CACHE[key] = fam
    return fam


def _probe(tok: ChatTokenizer, bos: str) -> Family:
    user = [{"role": "user", "content": _U}]
    try:
        plain = apply(tok, user, True)
    except Exception as e:  # noqa: BLE001 - jinja raise_exception and friends
        raise PtstError(f"the tokenizer's chat template cannot render a single user message ({_first_line(e)}): "
                        "there is no way to place a prompt in it, with or without a system prompt") from None
    if plain == apply(tok, user, False):
        _check_opens_reply(tok, user, plain)
    try:
        with_sys = apply(tok, [{"role": "system", "content": _S}, *user], True)
    except Exception:  # noqa: BLE001 - templates reject a system role by raising
        with_sys = ""
    if _S not in with_sys:
        return Family(True, False, None, bos, "none")
    default = None
    pre, post = with_sys.split(_S, 1)
    if plain.startswith(pre) and plain.endswith(post) and len(plain) > len(pre) + len(post):
        default = plain[len(pre): len(plain) - len(post)]
    return Family(True, True, default, bos, _placement(tok, default, with_sys, plain))


def _check_opens_reply(tok: ChatTokenizer, user: list[dict[str, str]], prompt: str) -> None:
    """A template that ignores add_generation_prompt must still end its prompt where the reply starts (Llama-2's
    `[/INST]`): if a rendered reply has more than whitespace between that prompt and the reply (ChatML's
    `<|im_start|>assistant` header), the template has no generation prompt and a prompt would end in the user's turn."""
    try:
        full = apply(tok, [*user, {"role": "assistant", "content": _A}], False)
    except Exception:  # noqa: BLE001 - cannot tell; rendering a reply will say what is wrong
        return
    head = full.split(_A, 1)[0]
    if _A in full and head.startswith(prompt) and not head[len(prompt):].strip():
        return
    raise PtstError("the tokenizer's chat template has no generation prompt: add_generation_prompt adds nothing, so "
                    "a prompt would end inside the user's turn, before the assistant's header; give the model a chat "
                    "template that opens the assistant's turn, or use a text: template")


def _placement(tok: ChatTokenizer, default: str | None, with_sys: str, plain: str) -> Placement:
    """Where the system message lands, from a two-user-turn probe with and without it (one turn if that raises)."""
    turns = [{"role": "user", "content": _U0}, {"role": "assistant", "content": _A0}, {"role": "user", "content": _U1}]
    try:
        m = apply(tok, [{"role": "system", "content": _S}, *turns], True)
        n = apply(tok, turns, True)
    except Exception:  # noqa: BLE001 - a template without multi-turn support: the single-turn probe decides
        m = n = ""
    if _S not in m:
        m, n = with_sys.replace(_U, _U0), plain.replace(_U, _U0)
    if default is not None and n.replace(default, _S, 1) == m:
        return "own-turn"  # the system turn the family fills with its default when given none
    marks = {_S: "\ue000", _U0: "\ue001", _A0: "\ue002", _U1: "\ue003"}  # one character each: a diff never splits
    for k, v in marks.items():
        m, n = m.replace(k, v), n.replace(k, v)
    p = next((i for i, (a, b) in enumerate(zip(m, n, strict=False)) if a != b), min(len(m), len(n)))
    rest = n[p:]
    if rest.startswith(marks[_U0]):
        return "first-user"
    if rest.startswith(marks[_U1]):
        return "last-user"
    before = m[: m.index(marks[_S])]
    if before in ("", str(tok.bos_token or "")):
        return "after-bos"
    return "own-turn"


PLACEMENT_WORDS = {
    "own-turn": "in its own system turn",
    "first-user": "inside the first user turn, by the family's own template",
    "last-user": "inside the last user turn, by the family's own template (it moves to each new user turn)",
    "after-bos": "bare right after BOS, with no role marker, by the family's own template",
    "none": "by ptst inside the first user turn, as system + blank line + user (the family has no system role)",
}


def drop_default(tok: ChatTokenizer, fam: Family, text: str, name: str) -> str:
    """`text` without the family's injected default system turn (default_system: drop)."""
    assert fam.default_system is not None
    try:
        block = apply(tok, [{"role": "system", "content": fam.default_system}], False)
    except Exception:  # noqa: BLE001
        block = ""
    if fam.bos_text and block.startswith(fam.bos_text) and text.startswith(fam.bos_text):
        block = block[len(fam.bos_text):]
    if not block or block not in text:
        raise PtstError(
            f"template {name!r}: cannot drop this tokenizer's default system prompt; set default_system to "
            "'keep' or 'empty'"
        )
    return text.replace(block, "", 1)
