"""The decoding loop's pieces (`ptst.runtime.rows`, `ptst.runtime.decode`): left padding, the shared prefix, and a
prefill without padding that leaves the padded prefill's state. The whole loop is tested through `HFBackend`
(tests/generate/test_hf.py)."""

from __future__ import annotations

import pytest

from ptst.runtime.rows import left_pad, shared_prefix
from tests.generate.conftest import PROMPTS, lively_llama


@pytest.fixture(scope="module")
def lively_rows(llama2_tok):
    """The lively tiny Llama and the generation tests' prompts rendered under chat:llama, as token rows."""
    from ptst.templates import get_template, render

    t = get_template("chat:llama")
    rows = [llama2_tok(render(t, llama2_tok, p).text, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    return lively_llama(llama2_tok), rows


def test_left_pad_pads_on_the_left_and_masks_the_pads():
    ids, mask = left_pad([[7, 8, 9], [5]], pad_id=0)
    assert ids == [[7, 8, 9], [0, 0, 5]] and mask == [[1, 1, 1], [0, 0, 1]]


def test_shared_prefix_leaves_each_row_a_token_of_its_own(lively_rows):
    assert shared_prefix([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == 2
    assert shared_prefix([[1, 2, 3], [1, 2, 3]]) == 2
    assert shared_prefix([[1], [1, 2]]) == 0
    _, rows = lively_rows
    assert shared_prefix(rows) > 100  # the chat:llama system prompt: what prefix caching saves


@pytest.mark.parametrize("with_prefix", [False, True])
def test_packed_prefill_leaves_the_state_of_the_padded_one(lively_rows, with_prefix):
    """Prompts of different lengths prefilled without padding give the padded prefill's next-token logits,
    attention mask and positions, and its keys and values at every real position (pads are masked)."""
    import torch

    from ptst.runtime.decode import _prefill, _prefill_packed

    model, rows = lively_rows
    assert len({len(r) for r in rows}) > 1
    prefix = shared_prefix(rows) if with_prefix else 0
    with torch.inference_mode():
        ref, got = _prefill(model, rows, 0, prefix), _prefill_packed(model, rows, 0, prefix)
    (c1, m1, l1, g1), (c2, m2, l2, g2) = ref, got
    assert torch.equal(m1, m2) and torch.equal(l1, l2)
    torch.testing.assert_close(g2, g1, rtol=1e-4, atol=1e-4)
    real = m1.bool()
    for a, b in zip(c1.layers, c2.layers, strict=True):
        assert a.keys.shape == b.keys.shape
        for x, y in ((a.keys, b.keys), (a.values, b.values)):
            torch.testing.assert_close(y.transpose(1, 2)[real], x.transpose(1, 2)[real], rtol=1e-4, atol=1e-5)
    assert model.config._attn_implementation != "ptst_varlen"  # the model's own attention again
