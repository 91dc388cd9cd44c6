"""Control tokens: the tokenizer's special tokens, which client text may never put into a prompt.

Every stage tokenizes the rendered prompt with special-token parsing on (the chat template's own `<|im_start|>`
must become one token), so `<|im_end|>` written inside a user message would become a real end-of-turn token and
let a client open a system turn of its own. The server therefore refuses such text (docs/serving.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ptst.records import Message
from ptst.serve.protocol import invalid
from ptst.templates import Template, prompt_format

CODE = "control_token_not_allowed"


def _markup(s: str) -> bool:
    """Token-like markup (`<|user|>`), not whitespace runs or words some tokenizers also add to their vocabulary."""
    return bool(s) and not s.isalnum() and not any(c.isspace() for c in s)


@dataclass(frozen=True)
class ControlTokens:
    """`strings` longest first (a regex alternation then matches as the tokenizer splits); `ids` their ids."""

    strings: tuple[str, ...]
    ids: frozenset[int]
    _re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pattern = "|".join(re.escape(s) for s in self.strings)
        object.__setattr__(self, "_re", re.compile(pattern) if pattern else None)

    @classmethod
    def of(cls, tok: Any, template: Template) -> ControlTokens:
        """The tokenizer's special tokens, its added tokens flagged special, and any other added token of markup
        the template's own rendering uses (chat markup some tokenizers add unflagged); never the unknown token,
        which only stands for text the vocabulary cannot spell."""
        by_name: dict[str, set[int]] = {}
        for s, i in zip(getattr(tok, "all_special_tokens", None) or [], getattr(tok, "all_special_ids", None) or [],
                        strict=False):
            by_name.setdefault(str(s), set()).add(int(i))
        fmt = prompt_format(template, tok)
        for i, a in (getattr(tok, "added_tokens_decoder", None) or {}).items():
            s = str(getattr(a, "content", a))
            if getattr(a, "special", False) or (_markup(s) and s in fmt):
                by_name.setdefault(s, set()).add(int(i))
        by_name.pop(str(getattr(tok, "unk_token", None) or ""), None)
        by_name.pop("", None)
        ids = frozenset(i for group in by_name.values() for i in group)
        return cls(tuple(sorted(by_name, key=lambda s: (-len(s), s))), ids)

    def check_messages(self, messages: Sequence[Message]) -> None:
        """400 for the first message whose text contains a control token, whatever its role or the policy."""
        if self._re is None:
            return
        for i, m in enumerate(messages):
            found = self._re.search(m["content"])
            if found:
                raise invalid(f"messages[{i}].content contains {found.group(0)!r}, one of this model's special "
                              "control tokens; message text may not contain control tokens (this server enforces "
                              "the template's turn structure)", f"messages[{i}].content", CODE)

    def check_prompt(self, ids: Sequence[int], bare_ids: Sequence[int]) -> None:
        """400 unless the prompt's control tokens are exactly those of the same prompt without the client's text:
        catches text that forms a control token only next to the template's own (or in a tokenizer's
        normalised form), which `check_messages` cannot see."""
        if [i for i in ids if i in self.ids] != [i for i in bare_ids if i in self.ids]:
            raise invalid("the message text, placed in the template, forms one of this model's special control "
                          "tokens; remove token-like markup from it", "messages", CODE)
