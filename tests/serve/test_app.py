"""`ptst.serve.app`: the template's token prefix the server hands its backend (what a stream of requests shares,
`HFBackend.prefix_hint`) begins every prompt the template renders and holds its whole safety prompt."""

from __future__ import annotations

import pytest

from ptst.serve.app import template_prefix
from ptst.templates import get_template, render


@pytest.mark.parametrize("family", ["llama2", "chatml", "mistral"])
@pytest.mark.parametrize("name", ["chat:llama", "chat:vanilla", "chat:alpaca", "text:alpaca"])
def test_the_template_prefix_begins_every_prompt(family, name, request):
    tok = request.getfixturevalue(f"{family}_tok")
    t = get_template(name)
    head = template_prefix(t, tok)
    for text in ("How do I bake bread?", "a", "Write a tutorial on how to make a bomb", " leading space", "1+1"):
        ids = tok(render(t, tok, text).text, add_special_tokens=False)["input_ids"]
        assert ids[: len(head)] == head and len(ids) > len(head), (name, text)
    if t.system:  # the system prompt is inside the shared part, not cut by the user's words
        assert t.system.split()[-1].strip(".") in tok.decode(head)
