"""Server-side prompt assembly: the client-system-message policy and multi-turn rendering under the test template.

The rendered prompt always comes from the configured template: its system prompt first, its user format around
every user turn (applied once, even if the client already did), the model's own chat template around everything.
For a single user message this is byte-identical to `ptst.templates.render` (what the evaluation stage feeds the
model). Both come from one renderer, `ptst.templates.frame`, so a family's system placement (own turn, first or
last user turn, bare after BOS, folded by ptst) is the same here as in training and evaluation. Client text never
adds a control token to it (ptst.serve.controls).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ptst.records import Message
from ptst.serve.controls import ControlTokens
from ptst.serve.protocol import invalid
from ptst.templates import INPUT, ChatTokenizer, RenderError, Template, frame


@dataclass(frozen=True)
class Conversation:
    """What the model is given: the effective system text (None: no system turn) and alternating turns."""

    system: str | None
    turns: tuple[Message, ...]

    def messages(self) -> list[Message]:
        head = [{"role": "system", "content": self.system}] if self.system is not None else []
        return head + [dict(m) for m in self.turns]


def _client_extra(template_system: str | None, texts: list[str]) -> str:
    """The client's system text minus a copy of the template's own prompt (clients that already send it,
    like ptst's own OpenAI backend, must not get it twice): prepending is idempotent."""
    extra = "\n\n".join(texts)
    if template_system:
        if extra == template_system:
            return ""
        if extra.startswith(template_system + "\n\n"):
            return extra[len(template_system) + 2:]
    return extra


def raw_input(t: Template, content: str) -> str:
    """The user's text without the template's user format when a client already applied it (ptst's own OpenAI
    backend sends `template.messages(x)`): wrapping is idempotent, never `Question: Question: x`."""
    pre, _, post = t.user.partition(INPUT)
    if (pre or post) and len(content) >= len(pre) + len(post) and content.startswith(pre) and content.endswith(post):
        return content[len(pre): len(content) - len(post)]
    return content


def apply_policy(t: Template, messages: Sequence[Message], policy: str) -> Conversation:
    """Merge client system messages into the template's system prompt per `policy` (prepend | reject | ignore).

    prepend: template prompt first, then a blank line, then the client's system text, in one system turn.
    reject: any client system text (other than an exact copy of the template's prompt) is a 400.
    ignore: client system messages are dropped.
    """
    texts = [m["content"] for m in messages if m["role"] == "system"]
    turns = tuple(m for m in messages if m["role"] != "system")
    check_turns(turns)
    extra = _client_extra(t.system, texts)
    if not extra or policy == "ignore":
        return Conversation(t.system, turns)
    if policy == "reject":
        raise invalid(f"client system messages are not accepted: this server enforces template {t.name!r} and its "
                      "system prompt (system policy 'reject')", "messages", "system_message_not_allowed")
    if t.mode == "text":
        raise invalid(f"template {t.name!r} is a text template with no system turn to append a client system "
                      "message to; drop it (or run the server with --system-policy ignore)", "messages",
                      "system_message_not_allowed")
    return Conversation(f"{t.system}\n\n{extra}" if t.system else extra, turns)


def check_turns(turns: Sequence[Message]) -> None:
    if not turns:
        raise invalid("messages must contain at least one user message", "messages")
    for i, m in enumerate(turns):
        want = "user" if i % 2 == 0 else "assistant"
        if m["role"] != want:
            raise invalid("after system messages, roles must alternate user/assistant starting with user; "
                          f"turn {i} is {m['role']!r}", "messages")
    if turns[-1]["role"] != "user":
        raise invalid("the last message must be from the user (assistant prefill is not supported)", "messages")


def encode_prompt(t: Template, tok: Any, conv: Conversation, controls: ControlTokens) -> tuple[str, list[int]]:
    """The prompt text and its token ids, tokenized as every backend does (add_special_tokens=False, special
    tokens parsed); a 400 unless its control tokens are exactly the ones the template and chat template put there."""
    text, bare = _render(t, tok, conv)
    ids, bare_ids = (list(tok(s, add_special_tokens=False)["input_ids"]) for s in (text, bare))
    controls.check_prompt(ids, bare_ids)
    return text, ids


def render_conversation(t: Template, tok: ChatTokenizer | None, conv: Conversation) -> str:
    """The exact prompt text (tokenized with add_special_tokens=False) for `conv` under template `t`."""
    return _render(t, tok, conv)[0]


def _render(t: Template, tok: ChatTokenizer | None, conv: Conversation) -> tuple[str, str]:
    """The prompt for `conv`, and the same prompt with the client's text left out (what the control-token check
    compares against): one frame from `ptst.templates.frame` (the renderer training and evaluation use), filled
    twice."""
    if t.mode == "text" and len(conv.turns) != 1:
        raise invalid(f"template {t.name!r} is a text template: it renders a single user message, got "
                      f"{len(conv.turns)} turns", "messages")
    try:
        f = frame(t, tok, conv.system is not None, [m["role"] for m in conv.turns])
    except RenderError as e:
        raise invalid(f"the model's chat template cannot render this conversation ({e})", "messages") from None
    contents = [raw_input(t, m["content"]) if m["role"] == "user" else m["content"] for m in conv.turns]
    bare_system = None if conv.system is None else (t.system or "")
    return f.fill(conv.system, contents).text, f.fill(bare_system, [""] * len(contents)).text
