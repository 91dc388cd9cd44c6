"""The dry-run time estimate's pieces: generation throughput by batch size, template cost per training row."""

from __future__ import annotations

import pytest

from ptst.grid.estimate import _template_chars, batched_rate


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


def test_rates_by_cpu_kind_scale_with_batch_and_bf16_generation(monkeypatch):
    from types import SimpleNamespace

    from ptst.grid import estimate
    from ptst.runtime import cpu

    monkeypatch.setattr(cpu, "kind", lambda: "avx2")
    (fast, slow), assumed = estimate.cpu_rates(SimpleNamespace(generate={"batch_size": 48, "dtype": "bf16"}))
    assert assumed == "avx2 CPU, fp32 generation"  # bf16 asked for, but this CPU has no fast bf16
    assert (fast.train, fast.generate) == (192.0, 225.0) and fast.train > slow.train and fast.generate > slow.generate
    monkeypatch.setattr(cpu, "kind", lambda: "amx_bf16")
    (only,), assumed = estimate.cpu_rates(SimpleNamespace(generate={"batch_size": 12, "dtype": "bf16"}))
    assert assumed == "amx_bf16 CPU, bf16 generation"
    assert only.generate == pytest.approx(270.0 * estimate.BF16_GENERATION * 0.5)  # batch 12: half of batch 48
