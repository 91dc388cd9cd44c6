"""The dry-run time estimate's pieces: generation throughput by batch size, template cost per training row."""

from __future__ import annotations

import pytest

from ptst.grid.status import _template_chars, batched_rate


def test_generation_rate_grows_with_the_batch():
    assert batched_rate(190.0, 48) == pytest.approx(190.0)
    assert batched_rate(190.0, 12) == pytest.approx(95.0)
    assert batched_rate(45.0, 1) < batched_rate(45.0, 16) < batched_rate(45.0, 64) == batched_rate(45.0, 256)


def test_a_system_prompt_costs_each_row_its_share_of_the_batch():
    vanilla, llama = _template_chars("chat:vanilla", 4), _template_chars("chat:llama", 4)
    system = len("You are a helpful, respectful and honest assistant.")
    assert llama - vanilla > system / 4  # the Llama-2 safety prompt is much longer than its first sentence
    assert _template_chars("chat:llama", 1) - _template_chars("chat:llama", 4) > 0
    assert _template_chars("no-such-template", 4) == 0.0
